"""Inference kept to the input's foreground: the body of a CT (holes filled, table dropped), the non-zero region of an
MR; windows (2D: slices) without foreground are skipped with the labels inside it unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radiobio.segmentation.foreground import foreground_mask
from radiobio.segmentation.inference import segment_image, sliding_window


def _ct_with_lung_and_table() -> tuple[np.ndarray, np.ndarray]:
    """A CT-like (z, y, x, 1) volume: air, an elliptical body (40 HU) holding a lung (-850 HU), a table (200 HU)
    under it with an air gap; and the body's true extent (the ellipse, lung included)."""
    z, y, x = np.ogrid[:6, :64, :80]
    body = ((x - 40) / 30.0) ** 2 + ((y - 28) / 18.0) ** 2 <= 1
    lung = ((x - 30) / 8.0) ** 2 + ((y - 26) / 6.0) ** 2 <= 1
    volume = np.full((6, 64, 80), -1000.0, np.float32)
    volume[:, body[0]] = 40.0
    volume[:, lung[0]] = -850.0
    volume[:, 52:56, 5:75] = 200.0  # the table: rows 52-55, below the body (rows 10-46), air between
    return volume[..., None], np.broadcast_to(body, (6, 64, 80))


def test_ct_body_includes_the_lung_and_leaves_out_the_table() -> None:
    volume, truth = _ct_with_lung_and_table()
    mask = foreground_mask(volume, "ct")
    np.testing.assert_array_equal(mask, truth)


def test_mr_foreground_is_the_non_zero_region() -> None:
    volume = np.zeros((5, 20, 20, 1), np.float32)
    volume[1:4, 5:15, 6:12] = 3.0
    volume[2, 8, 8] = 0.0  # a zero voxel inside is a hole, filled
    mask = foreground_mask(volume, "zscore")
    assert mask.sum() == 3 * 10 * 6 and mask[2, 8, 8]


def test_skipped_windows_leave_the_labels_inside_the_foreground_unchanged() -> None:
    # A predictor whose output depends on each window's whole content: skipping windows or moving the window grid
    # would change labels; skipping windows without foreground must not change any label inside it.
    volume, _ = _ct_with_lung_and_table()
    volume = np.repeat(volume, 6, axis=0) / 1000.0  # 36 slices
    volume[10:26] = -1.0  # 16 slices of air: whole rows of windows are skipped

    def predict(tiles: np.ndarray) -> np.ndarray:
        local = tiles[..., 0]
        context = local.mean(axis=(1, 2, 3), keepdims=True)
        scores = np.stack([np.zeros_like(local), local - context, 0.5 * local], axis=-1)
        return np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)

    foreground = foreground_mask(volume * 1000.0, "ct")
    full = sliding_window(predict, volume, (8, 16, 16), 0.5, 0.125, 3, 2)
    kept = sliding_window(predict, volume, (8, 16, 16), 0.5, 0.125, 3, 2, foreground=foreground)
    np.testing.assert_array_equal(kept[foreground], full[foreground])
    assert not kept[~foreground].any() or set(np.unique(kept[~foreground])) <= set(np.unique(full))


def test_hippocampus_model_gives_the_same_mask_with_and_without_cropping(hippocampus_data: Path) -> None:
    image = sitk.ReadImage(str(hippocampus_data / "images" / "hippocampus_003.nii.gz"))
    cropped = sitk.GetArrayFromImage(segment_image(image, "hippocampus-3d"))
    full = sitk.GetArrayFromImage(segment_image(image, "hippocampus-3d", crop=False))
    assert cropped.any()
    np.testing.assert_array_equal(cropped, full)


def test_l3_model_on_a_synthetic_slice_agrees_with_the_full_slice() -> None:
    from radiobio.synthetic.l3 import l3_phantom

    phantom = l3_phantom(seed=3)
    cropped = sitk.GetArrayFromImage(segment_image(phantom.image, "l3-muscle-demo"))
    full = sitk.GetArrayFromImage(segment_image(phantom.image, "l3-muscle-demo", crop=False))
    foreground = foreground_mask(sitk.GetArrayFromImage(phantom.image)[..., None].astype(np.float32), "ct")
    assert (full > 0).sum() > 1000 and foreground.sum() > 10000
    np.testing.assert_array_equal(cropped[foreground], full[foreground])


def test_a_padded_mr_skips_the_windows_outside_its_non_zero_region(hippocampus_data: Path) -> None:
    # The hippocampus crop inside a field of view three times larger, filled with 0: windows of only zeros are not
    # run, and every label inside the non-zero region is the full sliding window's.
    image = sitk.ReadImage(str(hippocampus_data / "images" / "hippocampus_003.nii.gz"))
    padded = sitk.ConstantPad(image, [40, 40, 40], [40, 40, 40], 0.0)
    cropped = sitk.GetArrayFromImage(segment_image(padded, "hippocampus-3d"))
    full = sitk.GetArrayFromImage(segment_image(padded, "hippocampus-3d", crop=False))
    inside = sitk.GetArrayFromImage(padded) != 0
    assert (full[inside] > 0).sum() > 500
    np.testing.assert_array_equal(cropped[inside], full[inside])
