"""Preprocessing: reorientation, resampling, intensity normalisation, restoring masks to the input grid."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radiobio.errors import GeometryError
from radiobio.segmentation.config import IntensitySettings, as_config
from radiobio.segmentation.preprocessing import (
    normalize_intensity,
    prepare_image,
    prepare_mask,
    restore_mask,
)
from radiobio.synthetic import sphere_phantom


def _config(**preprocessing):
    return as_config({"labels": {1: "a"}, "preprocessing": {"patch_size": [16, 16, 16], **preprocessing}})


def test_ct_window_maps_onto_unit_range():
    array = np.array([[-2000.0], [-160.0], [40.0], [240.0], [3000.0]], "float32")
    out = normalize_intensity(array, IntensitySettings(mode="ct", window=(-160, 240)))
    np.testing.assert_allclose(out[:, 0], [-1, -1, 0, 1, 1])


def test_mr_zscore_has_zero_mean_unit_sd():
    array = np.random.default_rng(0).gamma(2.0, 100.0, (1000, 1)).astype("float32")
    out = normalize_intensity(array, IntensitySettings(mode="zscore", clip_percentiles=None))
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-4


def test_resampling_and_restoring_keep_the_input_grid():
    phantom = sphere_phantom(radius_mm=8, size=(30, 28, 20), spacing=(0.8, 0.8, 1.6))
    phantom.image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))  # rotated 90° in-plane
    phantom.mask.CopyInformation(phantom.image)
    config = _config(target_spacing=[1.6, 1.6, 1.6])
    prepared = prepare_image(phantom.image, config)
    assert prepared.grid.spacing == (1.6, 1.6, 1.6)
    assert prepared.array.shape[-1] == 1
    labels = prepare_mask(phantom.mask, prepared, config)
    assert labels.shape == prepared.array.shape[:3]
    restored = restore_mask(labels, prepared)
    for getter in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(restored, getter)() == getattr(phantom.image, getter)()
    truth = sitk.GetArrayFromImage(phantom.mask).astype(bool)
    back = sitk.GetArrayFromImage(restored).astype(bool)
    assert 2 * (truth & back).sum() / (truth.sum() + back.sum()) > 0.9


def test_reorientation_is_exact_and_reversible():
    phantom = sphere_phantom(radius_mm=6, size=(20, 18, 16))
    phantom.image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    phantom.mask.CopyInformation(phantom.image)
    config = _config(orientation="LPS")
    prepared = prepare_image(phantom.image, config)
    assert prepared.grid.direction == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    labels = prepare_mask(phantom.mask, prepared, config)
    restored = restore_mask(labels, prepared)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(restored), sitk.GetArrayFromImage(phantom.mask))


def test_image_checks_name_the_fix():
    config = _config()
    flat = sitk.Image(16, 16, sitk.sitkFloat32)
    with pytest.raises(GeometryError, match="2D.*3D"):
        prepare_image(flat, config)
    rgb = sitk.Image([8, 8, 8], sitk.sitkVectorFloat32, 3)
    with pytest.raises(GeometryError, match="3 channel"):
        prepare_image(rgb, config)
