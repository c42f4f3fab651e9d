"""The PyTorch inference runner (``radiobio.segmentation.runtime``) computes what Keras' own ``predict_on_batch``
computes, layer kinds and graph shapes included, and segments the shipped hippocampus bundle's held-out cases with
the same Dice as TensorFlow.

Keras picks its backend at import time, so the checks run in a subprocess with ``KERAS_BACKEND=torch``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from .helpers import REPO

SCRIPT = textwrap.dedent("""
    import json, sys
    import keras
    import numpy as np
    from keras import layers
    from radiobio.segmentation import build_model
    from radiobio.segmentation.runtime import TorchGraphRunner, batch_predictor
    assert keras.backend.backend() == "torch", keras.backend.backend()
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)

    def compare(name, model, shape):
        x = rng.normal(size=shape).astype("float32")
        runner = batch_predictor(model)
        assert isinstance(runner, TorchGraphRunner), type(runner)
        ref = model.predict_on_batch(x)
        ref = ref[0] if isinstance(ref, list) else ref
        before = x.copy()
        got = runner(x)
        return name, {"max_abs": float(np.abs(np.asarray(ref) - got).max()),
                      "scale": float(np.abs(np.asarray(ref)).max()),
                      "shape_equal": list(np.shape(ref)) == list(got.shape),
                      "input_untouched": bool(np.array_equal(before, x)),
                      "fast": runner.fast_steps, "steps": len(runner.steps),
                      "all_outputs_steps": len(TorchGraphRunner(model, first_output_only=False).steps)}

    def with_moving_stats(model):
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                n = layer.moving_mean.shape[0]
                layer.moving_mean.assign(rng.normal(size=n).astype("float32"))
                layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
        return model

    results = dict([
        compare("unet2d_instance", build_model({"architecture": "unet2d", "num_classes": 3, "depth": 3,
                                                "base_filters": 8}), (2, 48, 40, 1)),
        compare("unet2d_batch_dropout", with_moving_stats(build_model({
            "architecture": "unet2d", "num_classes": 2, "depth": 3, "base_filters": 8,
            "normalization": "batch", "dropout": 0.3})), (2, 32, 32, 1)),
        compare("unet3d_group_deep", build_model({"architecture": "unet3d", "num_classes": 3, "depth": 4,
                                                  "base_filters": 8, "normalization": "group",
                                                  "deep_supervision": True}), (1, 16, 24, 32, 1)),
        compare("mobilenet_unet", with_moving_stats(build_model({
            "architecture": "applications_unet2d", "backbone": "MobileNetV2", "num_classes": 2,
            "base_filters": 8})), (1, 64, 64, 1)),
    ])

    # strided and even-kernel "same" convolutions on odd sizes, average pooling, nearest up-sampling, and a
    # tensor used twice after an identity layer: an in-place activation must not overwrite the skip
    inp = keras.Input((None, None, 2))
    a = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inp)
    b = layers.Conv2D(6, 4, padding="same")(a)
    c = layers.Dropout(0.5)(b)
    d = layers.LeakyReLU(0.2)(c)
    e = layers.Concatenate()([d, b, layers.AveragePooling2D(1)(b)])
    f = layers.UpSampling2D(2)(layers.Activation("sigmoid")(e))
    g = layers.Conv2D(3, 3, strides=3, padding="same", dilation_rate=1, activation="softmax")(f)
    results.update([compare("odd_shapes", keras.Model(inp, g), (2, 33, 35, 2))])
    inp3 = keras.Input((None, None, None, 1))
    h = layers.Conv3D(4, 3, strides=2, padding="same", activation="tanh")(inp3)
    h = layers.Conv3DTranspose(4, 2, strides=2, use_bias=True, activation="relu")(h)
    h = layers.MaxPooling3D((1, 2, 2))(h)
    results.update([compare("conv3d_strided", keras.Model(inp3, h), (1, 9, 11, 13, 1))])
    print(json.dumps(results))
""")

HIPPOCAMPUS = textwrap.dedent("""
    import json, sys
    import keras
    import pandas as pd
    from radiobio.segmentation import evaluate, segment
    assert keras.backend.backend() == "torch"
    bundle, data, out, cases = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    cohort = pd.DataFrame({"case_id": cases, "image": [f"{data}/images/{c}.nii.gz" for c in cases],
                           "truth": [f"{data}/labels/{c}.nii.gz" for c in cases]})
    result = segment(cohort, model=bundle, out_dir=out, mask_column="predicted", progress=False)
    scores = evaluate(result, pred_column="predicted", ref_column="truth", labels=[1, 2])
    print(json.dumps({"errors": list(result["error"]), "dice": scores["dice"].tolist()}))
""")


def _run_torch(script: str, *args: str, timeout: int = 280) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(300)
def test_torch_runner_equals_keras_predict():
    pytest.importorskip("torch")
    results = _run_torch(SCRIPT)
    assert set(results) == {"unet2d_instance", "unet2d_batch_dropout", "unet3d_group_deep", "mobilenet_unet",
                            "odd_shapes", "conv3d_strided"}
    for name, result in results.items():
        assert result["shape_equal"], name
        assert result["input_untouched"], name
        assert result["max_abs"] <= 1e-4 * max(1.0, result["scale"]), (name, result)
    # radiobio's own U-Nets run entirely on the channels-last kernels ...
    for name in ("unet2d_instance", "unet2d_batch_dropout", "unet3d_group_deep", "odd_shapes", "conv3d_strided"):
        assert results[name]["fast"] == results[name]["steps"], (name, results[name])
    # ... a keras.applications encoder mixes them with Keras layers (depthwise convolutions, ReLU6, padding)
    assert 0 < results["mobilenet_unet"]["fast"] < results["mobilenet_unet"]["steps"]
    # deep-supervision heads are not computed when only the main output is used
    assert results["unet3d_group_deep"]["steps"] < results["unet3d_group_deep"]["all_outputs_steps"]


@pytest.mark.timeout(600)
def test_torch_runner_segments_hippocampus_like_tensorflow(hippocampus_bundle, hippocampus_data, tmp_path):
    """The shipped bundle on 3 held-out real cases: the same Dice per case and label as under TensorFlow."""
    pytest.importorskip("torch")
    import pandas as pd

    from radiobio.segmentation import evaluate, segment

    card = json.loads((hippocampus_bundle / "model_card.json").read_text())
    cases = card["training_data"]["validation_cases"][4:7]
    torch_result = _run_torch(HIPPOCAMPUS, str(hippocampus_bundle), str(hippocampus_data), str(tmp_path / "torch"),
                              ",".join(cases), timeout=580)
    assert torch_result["errors"] == ["", "", ""]
    cohort = pd.DataFrame({"case_id": cases,
                           "image": [str(hippocampus_data / "images" / f"{c}.nii.gz") for c in cases],
                           "truth": [str(hippocampus_data / "labels" / f"{c}.nii.gz") for c in cases]})
    result = segment(cohort, model=hippocampus_bundle, out_dir=tmp_path / "tf", mask_column="predicted", progress=False)
    tf_dice = evaluate(result, pred_column="predicted", ref_column="truth", labels=[1, 2])["dice"].to_numpy()
    assert min(tf_dice) > 0.7
    np.testing.assert_allclose(torch_result["dice"], tf_dice, atol=0.005)
