"""Bad input gives typed errors that say what to do; nothing is written half."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.errors import GeometryError, ModelBundleError
from radiobio.imaging import read_image, write_image
from radiobio.segmentation import load_bundle, read_bundle, segment, segment_image
from radiobio.segmentation.preprocessing import prepare_image

from .helpers import HIPPOCAMPUS_BUNDLE, sphere_cases


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


def _reoriented(image: sitk.Image) -> sitk.Image:
    """The same physical image stored with x and y swapped and z flipped (other direction cosines)."""
    array = sitk.GetArrayFromImage(image)  # (z, y, x)
    moved = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (0, 2, 1))[::-1]))
    sx, sy, sz = image.GetSpacing()
    moved.SetSpacing((sy, sx, sz))
    # new index (i, j, k) = old (j, i, nz - 1 - k): columns of the direction matrix are the new axes
    d = np.array(image.GetDirection()).reshape(3, 3)
    direction = np.stack([d[:, 1], d[:, 0], -d[:, 2]], axis=1)
    moved.SetDirection(tuple(direction.ravel()))
    corner = image.TransformIndexToPhysicalPoint((0, 0, image.GetSize()[2] - 1))
    moved.SetOrigin(corner)
    return moved


def test_other_orientation_segments_the_same_anatomy(tiny_bundle):
    phantom = sphere_cases(1, seed=11)[0]
    reference = segment_image(phantom.image, tiny_bundle)
    other = _reoriented(phantom.image)
    assert other.GetDirection() != phantom.image.GetDirection()
    assert np.allclose(other.TransformIndexToPhysicalPoint((3, 5, 7)),
                       phantom.image.TransformIndexToPhysicalPoint((5, 3, other.GetSize()[2] - 1 - 7)))
    mask = segment_image(other, tiny_bundle)
    assert mask.GetDirection() == other.GetDirection() and mask.GetSize() == other.GetSize()
    back = sitk.Resample(mask, phantom.image, sitk.Transform(), sitk.sitkNearestNeighbor)
    assert _dice(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(reference)) > 0.97
    assert _dice(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(phantom.mask)) > 0.8


def test_2d_image_and_wrong_channels_for_a_3d_model(tiny_bundle, tmp_path):
    flat = sitk.Image(32, 32, sitk.sitkFloat32)
    with pytest.raises(GeometryError, match="2D.*3D"):
        segment_image(flat, tiny_bundle)
    colour = sitk.Image([16, 16, 16], sitk.sitkVectorFloat32, 3)
    with pytest.raises(GeometryError, match="channel"):
        segment_image(colour, tiny_bundle)
    good = sphere_cases(1)[0].image
    cohort = pd.DataFrame({
        "case_id": ["flat", "good"],
        "image": [str(write_image(flat, tmp_path / "flat.nii.gz")), str(write_image(good, tmp_path / "g.nii.gz"))],
    })
    result = segment(cohort, model=tiny_bundle, out_dir=tmp_path / "seg", progress=False)
    assert result.loc[0, "mask"] is None and result.loc[0, "error"].startswith("GeometryError")
    assert result.loc[1, "error"] == "" and (tmp_path / "seg" / "masks" / "good.nii.gz").is_file()
    assert not (tmp_path / "seg" / "masks" / "flat.nii.gz").exists()
    assert not [p for p in (tmp_path / "seg" / "masks").iterdir() if p.name.startswith(".")]


def test_masks_appear_only_when_complete_and_batches_resume(tiny_bundle, tmp_path, monkeypatch):
    image = sphere_cases(1)[0].image
    cohort = pd.DataFrame({"case_id": ["a"], "image": [str(write_image(image, tmp_path / "a.nii.gz"))]})

    def broken_write(img, path, compress=True):
        with open(path, "wb") as handle:
            handle.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken_write)
    result = segment(cohort, model=tiny_bundle, out_dir=tmp_path / "seg", progress=False)
    assert "disk full" in result.loc[0, "error"]
    assert list((tmp_path / "seg" / "masks").iterdir()) == []
    monkeypatch.undo()
    first = segment(cohort, model=tiny_bundle, out_dir=tmp_path / "seg", progress=False)
    written = tmp_path / "seg" / "masks" / "a.nii.gz"
    stamp = written.stat().st_mtime_ns
    again = segment(cohort, model=tiny_bundle, out_dir=tmp_path / "seg", progress=False)
    assert written.stat().st_mtime_ns == stamp and again.loc[0, "mask"] == first.loc[0, "mask"]


def test_missing_and_corrupt_bundles(tiny_bundle, tmp_path):
    with pytest.raises(ModelBundleError, match="not found"):
        load_bundle(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "model.keras").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelBundleError, match="corrupt"):
        load_bundle(broken)
    (broken / "model.keras").unlink()
    with pytest.raises(ModelBundleError, match="model file missing"):
        load_bundle(broken)
    (broken / "model_card.json").write_text("{not json")
    with pytest.raises(ModelBundleError, match="JSON"):
        load_bundle(broken)
    with pytest.raises(ModelBundleError):
        segment(pd.DataFrame({"case_id": ["a"], "image": ["x.nii.gz"]}), model=broken, out_dir=tmp_path / "out")


def test_lambda_layer_is_refused_by_safe_mode(tiny_bundle, tmp_path):
    unsafe = tmp_path / "unsafe"
    shutil.copytree(tiny_bundle, unsafe)
    inputs = keras.Input((None, None, None, 1))
    outputs = keras.layers.Lambda(lambda x: keras.ops.concatenate([x * 0, x], axis=-1))(inputs)
    keras.Model(inputs, outputs).save(unsafe / "model.keras")
    with pytest.raises(ModelBundleError, match="safe mode"):
        load_bundle(unsafe)


def test_unknown_card_keys_are_refused(tiny_bundle, tmp_path):
    odd = tmp_path / "odd"
    shutil.copytree(tiny_bundle, odd)
    card = json.loads((odd / "model_card.json").read_text())
    card["threshold"] = 0.3
    (odd / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelBundleError, match="unknown key.*threshold"):
        load_bundle(odd)
    card.pop("threshold")
    card["architecture"]["archtecture"] = "unet3d"
    (odd / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelBundleError, match="archtecture"):
        load_bundle(odd)


def test_single_slice_is_refused_for_a_3d_model(tmp_path):
    bundle = read_bundle(HIPPOCAMPUS_BUNDLE)  # the card only: the network never runs
    assert bundle.config.dims == 3
    one = sitk.Image([35, 51, 1], sitk.sitkFloat32)
    one.SetSpacing((1.0, 1.0, 1.0))
    image = read_image(write_image(one, tmp_path / "one_slice.nii.gz"))
    assert image.GetDimension() == 3 and image.GetSize() == (35, 51, 1)
    with pytest.raises(GeometryError, match=r"case h1: the image has 1 slice \(35 x 51 x 1 voxels\); model "
                                            r"hippocampus-3d is 3D and needs a volume; give the DICOM folder, not "
                                            r"one file"):
        prepare_image(image, bundle.config, "case h1", model_name=bundle.name)
    with pytest.raises(GeometryError, match="1 slice.*this model is 3D"):
        prepare_image(image, bundle.config)
    two = sitk.Image([35, 51, 2], sitk.sitkFloat32)  # two slices are a (thin) volume: prepared, not refused
    assert prepare_image(two, bundle.config).array.shape[:3] == (2, 51, 35)
    l3 = read_bundle("l3-muscle-demo")  # a 2D model takes a single slice
    assert l3.config.dims == 2 and prepare_image(one, l3.config).array.ndim == 4
