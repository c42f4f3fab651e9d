"""Training data: foreground-aware sampling, augmentation keeps image and labels aligned, PyDataset batches."""

from __future__ import annotations

import keras
import numpy as np

from radiobio.segmentation.config import as_config
from radiobio.segmentation.data import SegmentationDataset, TrainingCase, extract_patch
from radiobio.segmentation.preprocessing import prepare_image, prepare_mask

from .helpers import sphere_cases, tiny_config


def _cases(config, count=3):
    cases = []
    for i, phantom in enumerate(sphere_cases(count)):
        prepared = prepare_image(phantom.image, config)
        cases.append(TrainingCase(f"c{i}", prepared.array, prepare_mask(phantom.mask, prepared, config)))
    return cases


def test_dataset_is_a_pydataset_with_fixed_shapes():
    config = as_config(tiny_config())
    data = SegmentationDataset(_cases(config), config, training=True, seed=1)
    assert isinstance(data, keras.utils.PyDataset)
    images, labels = data[0]
    assert images.shape == (4, 16, 16, 16, 1) and images.dtype == np.float32
    assert labels.shape == (4, 16, 16, 16, 1)
    again, _ = SegmentationDataset(_cases(config), config, training=True, seed=1)[0]
    np.testing.assert_array_equal(images, again)  # seeded


def test_foreground_fraction_one_always_hits_foreground():
    raw = tiny_config()
    raw["training"].update(foreground_fraction=1.0, samples_per_epoch=16)
    raw["preprocessing"]["patch_size"] = [8, 8, 8]
    config = as_config(raw)
    data = SegmentationDataset(_cases(config), config, training=True, seed=3)
    for i in range(len(data)):
        _, labels = data[i]
        assert all(patch.any() for patch in labels)


def test_augmentation_keeps_image_and_labels_aligned():
    raw = tiny_config()
    raw["training"]["augmentation"].update(probability=1.0, rotation_degrees=20, noise_sd=0.0,
                                           intensity_shift=0.0, intensity_scale=0.0)
    config = as_config(raw)
    data = SegmentationDataset(_cases(config), config, training=True, seed=5)
    images, labels = data[0]
    inside = images[labels[..., 0] == 1].mean()
    outside = images[labels[..., 0] == 0].mean()
    assert inside > outside + 1.0  # the bright sphere stays under its label after rotation and flips


def test_2d_slices_and_validation_patches():
    raw = tiny_config()
    raw["model"]["architecture"] = "unet2d"
    raw["training"]["augmentation"]["flip_axes"] = ["x", "y"]
    raw["preprocessing"]["patch_size"] = [16, 16]
    config = as_config(raw)
    cases = _cases(config, 2)
    train = SegmentationDataset(cases, config, training=True, seed=0)
    assert train[0][0].shape == (4, 16, 16, 1)
    val = SegmentationDataset(cases, config, training=False)
    assert val[0][0].shape[1:] == (16, 16, 1)


def test_identity_transform_matches_a_plain_crop():
    config = as_config(tiny_config())
    case = _cases(config, 1)[0]
    centre = np.array([9.0, 11.0, 10.0])
    plain = extract_patch(case, centre, (16, 16, 16))
    mapped = extract_patch(case, centre, (16, 16, 16), np.eye(3))
    np.testing.assert_allclose(plain[0], mapped[0], atol=1e-5)
    np.testing.assert_array_equal(plain[1], mapped[1])
