"""Inference on a second Keras backend: a bundle trained with TensorFlow segments identically under PyTorch.

Keras picks its backend at import time, so the PyTorch run happens in a subprocess with ``KERAS_BACKEND=torch``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import SimpleITK as sitk

from radiobio.imaging import write_image
from radiobio.segmentation import segment_image

from .helpers import REPO, sphere_cases

SCRIPT = textwrap.dedent("""
    import json, sys
    import keras
    import SimpleITK as sitk
    from radiobio.errors import SettingsError
    from radiobio.segmentation import build_model, segment_image
    assert keras.backend.backend() == "torch", keras.backend.backend()
    bundle, image, out = sys.argv[1:4]
    sitk.WriteImage(segment_image(sitk.ReadImage(image), bundle), out)
    try:
        build_model({"architecture": "sm", "num_classes": 2})
        sm_error = ""
    except SettingsError as exc:
        sm_error = str(exc)
    unet = build_model({"architecture": "unet2d", "num_classes": 2, "depth": 2, "base_filters": 4})
    print(json.dumps({"sm_error": sm_error, "unet2d_outputs": unet.output_shape[-1]}))
""")


@pytest.mark.timeout(300)
def test_torch_backend_segments_like_tensorflow(tiny_bundle, tmp_path):
    pytest.importorskip("torch")
    image = sphere_cases(1, seed=21)[0].image
    image_path = write_image(image, tmp_path / "image.nii.gz")
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_bundle), str(image_path),
                           str(tmp_path / "torch.nii.gz")], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "TensorFlow" in report["sm_error"] and "'torch'" in report["sm_error"]
    assert report["unet2d_outputs"] == 2
    torch_mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "torch.nii.gz")))
    tf_mask = sitk.GetArrayFromImage(segment_image(image, tiny_bundle))
    agreement = np.mean(torch_mask == tf_mask)
    assert agreement > 0.999
