"""Inference kept to the input's foreground: the body of a CT (holes filled, table dropped), the non-zero region of an
MR; windows tiled over its bounding box (the same windows on the same body in any field of view), those (2D: slices)
without foreground skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radiobio.segmentation.foreground import foreground_mask, foreground_window_starts, window_has_foreground
from radiobio.segmentation.inference import segment_image, sliding_window, window_starts


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


def _context_predict(tiles: np.ndarray) -> np.ndarray:
    """Probabilities that depend on each window's whole content (its mean), as a network's do."""
    local = tiles[..., 0]
    context = local.mean(axis=(1, 2, 3), keepdims=True)
    scores = np.stack([np.zeros_like(local), local - context, 0.5 * local], axis=-1)
    return np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)


def test_windows_are_tiled_over_the_foreground_box() -> None:
    foreground = np.zeros((40, 300, 400), bool)
    foreground[:, 50:250, 20:380] = True
    # z: the box spans the axis, so the full grid's starts (step 8); y: 200 voxels from row 50 need 3 windows of
    # 128 with half overlap (0, 36, 72 from the box's edge); x: 360 voxels from column 20 need 5 (steps of 58)
    assert foreground_window_starts(foreground, (16, 128, 128), 0.5) == [
        [0, 8, 16, 24], [50, 86, 122], [20, 78, 136, 194, 252]]
    assert window_starts(40, 16, 0.5) == [0, 8, 16, 24]


def test_a_box_shorter_than_the_window_gets_one_centred_window_inside_the_image() -> None:
    foreground = np.zeros((4, 300, 300), bool)
    foreground[:, 100:140, 0:30] = True  # y: 40 rows, centred window starts 44 rows above; x: at the image's edge
    assert foreground_window_starts(foreground, (4, 128, 128), 0.5) == [[0], [56], [0]]
    foreground[:] = False
    foreground[:, 280:300, 100:140] = True  # y: the centred window would end past row 300: moved up to 172
    assert foreground_window_starts(foreground, (4, 128, 128), 0.5)[1] == [172]
    assert foreground_window_starts(np.zeros((4, 30, 30), bool), (4, 16, 16), 0.5) is None


def test_a_realistic_abdomen_runs_half_the_windows_of_the_full_grid() -> None:
    # A 512 x 512 slice of a 410 mm field of view holding a 340 x 240 mm abdomen (0.8 mm voxels): the full grid of
    # 128-voxel windows at half overlap is 7 x 7, 45 of them touching the body; over the body's box (425 x 300
    # voxels) 6 x 4 windows cover it.
    y, x = np.ogrid[:512, :512]
    body = (((x - 256) / 212.5) ** 2 + ((y - 256) / 150.0) ** 2 <= 1)[None]
    full = [(0, a, b) for a in window_starts(512, 128, 0.5) for b in window_starts(512, 128, 0.5)]
    starts = foreground_window_starts(body, (1, 128, 128), 0.5)
    boxed = [(0, a, b) for a in starts[1] for b in starts[2]]
    assert len(full) == 49 and sum(window_has_foreground(body, w, (1, 128, 128)) for w in full) == 45
    assert len(boxed) == 24 and all(window_has_foreground(body, w, (1, 128, 128)) for w in boxed)
    covered = np.zeros_like(body)
    for _, a, b in boxed:
        covered[0, a:a + 128, b:b + 128] = True
    assert covered[body].all()


def test_windows_over_the_body_give_the_same_labels_in_any_field_of_view() -> None:
    # The same body with more air around it, unevenly: the windows over its box sit on the same voxels of the body,
    # so every label inside it is unchanged; the full grid moves with the field of view and changes them.
    volume, _ = _ct_with_lung_and_table()
    volume = np.repeat(volume, 4, axis=0) / 1000.0  # 24 slices
    padded = np.pad(volume, ((0, 0), (7, 12), (5, 20), (0, 0)), constant_values=-1.0)
    inner = (slice(None), slice(7, -12), slice(5, -20))
    body = foreground_mask(volume * 1000.0, "ct")
    labels = {}
    for name, image in (("plain", volume), ("padded", padded)):
        foreground = foreground_mask(image * 1000.0, "ct")
        labels[name, "box"] = sliding_window(_context_predict, image, (8, 16, 16), 0.5, 0.125, 3, 2,
                                             foreground=foreground, tile_box=True)
        labels[name, "full"] = sliding_window(_context_predict, image, (8, 16, 16), 0.5, 0.125, 3, 2)
    assert labels["plain", "box"][body].any()
    np.testing.assert_array_equal(labels["padded", "box"][inner][body], labels["plain", "box"][body])
    assert (labels["padded", "full"][inner][body] != labels["plain", "full"][body]).any()


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * ((a == b) & (a > 0)).sum() / ((a > 0).sum() + (b > 0).sum()))


def test_a_padded_mr_is_segmented_as_well_as_the_crop_itself(hippocampus_data: Path) -> None:
    # The hippocampus crop inside a field of view three times larger, filled with 0. Kept to the non-zero region
    # the model sees the crop as in training: against the manual labels it scores as on the crop itself, and
    # better than the full sliding window, whose windows are mostly padding (measured: 0.915 / 0.919 / 0.895).
    image = sitk.ReadImage(str(hippocampus_data / "images" / "hippocampus_003.nii.gz"))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(hippocampus_data / "labels" / "hippocampus_003.nii.gz")))
    padded = sitk.ConstantPad(image, [40, 40, 40], [40, 40, 40], 0.0)
    inner = (slice(40, -40),) * 3
    plain = sitk.GetArrayFromImage(segment_image(image, "hippocampus-3d"))
    kept = sitk.GetArrayFromImage(segment_image(padded, "hippocampus-3d"))
    full = sitk.GetArrayFromImage(segment_image(padded, "hippocampus-3d", crop=False))
    assert _dice(truth, kept[inner]) >= _dice(truth, plain) - 0.02
    assert _dice(truth, kept[inner]) > _dice(truth, full[inner])
    assert _dice(plain, kept[inner]) >= 0.97
