"""The input's foreground, so that inference spends no work on air: the body of a CT, the non-zero region of an MR.

Computed on the prepared image's raw intensities (after resampling onto the model's grid, before normalisation):

- CT (intensity mode ``ct``): voxels above :data:`BODY_THRESHOLD_HU`, the largest 3D connected component (the body,
  not the table or the blanket), with holes filled slice by slice so air inside the body (lungs, bowel gas, airways)
  belongs to it;
- MR and other images: voxels whose value is not the image's background (0, or the minimum when nothing is 0),
  with holes filled slice by slice.

A sliding window then tiles its windows afresh over the foreground's bounding box
(:func:`foreground_window_starts`), placed from the box's edge so they sit where they would on the same body in any
field of view, and skips those holding no foreground voxel (a 2D model: every slice without it). Voxels outside the
box are labelled background. On a CT of a realistic abdomen this runs half the windows of the full grid; the labels
inside the body are not the full grid's voxel for voxel (a network's output depends on where its window lies), and
``benchmarks/inference.py --foreground`` measures both the time and the agreement. Whole-slice 2D inputs are not
cropped in-plane: a network's zero padding at a crop's edge reads as water in a CT window and changes its output
(measured on the L3 demo model: Dice 0.41 against the whole slice with a 20 mm margin).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: HU above which a CT voxel is body (fat is about -100 HU, lung parenchyma -850 HU is inside holes filled later).
BODY_THRESHOLD_HU = -500.0


def foreground_mask(array: np.ndarray, mode: str) -> np.ndarray:
    """Boolean foreground ``(z, y, x)`` of a raw ``(z, y, x, channels)`` array (intensity units as read: HU for
    CT). ``mode`` is the bundle's intensity mode (``"ct"``, ``"mr"``, ``"none"``)."""
    values = array[..., 0] if array.ndim == 4 else array
    if mode == "ct":
        body = values > BODY_THRESHOLD_HU
        labelled, count = ndimage.label(body)
        if count > 1:
            sizes = np.bincount(labelled.ravel())
            sizes[0] = 0
            body = labelled == int(np.argmax(sizes))
    else:
        channels = array if array.ndim == 4 else array[..., None]
        flat = channels.reshape(-1, channels.shape[-1])
        background = 0.0 if np.any(flat == 0) else float(flat.min())
        body = np.any(channels != background, axis=-1)
    for z in range(body.shape[0]):
        body[z] = ndimage.binary_fill_holes(body[z])
    return body


def foreground_window_starts(foreground: np.ndarray, window: tuple[int, int, int],
                             overlap: float) -> list[list[int]] | None:
    """Per axis (z, y, x), the start indices of windows tiled afresh over the foreground's bounding box, or None
    when there is no foreground.

    Each axis is tiled like the full grid (:func:`~radiobio.segmentation.inference.window_starts`) but over the
    box only, with starts counted from the box's edge, so the windows sit where they would on the same body in any
    field of view. Windows still read the image beyond the box (no window sees an edge the image does not have); a
    box shorter than the window gets one window centred on it, moved inside the image when it would stick out. An
    axis the box spans whole keeps the full grid's starts."""
    from radiobio.segmentation.inference import window_starts

    found = ndimage.find_objects(foreground.view(np.uint8), max_label=1)
    if not found or found[0] is None:
        return None
    starts = []
    for (n, w), box in zip(zip(foreground.shape, window), found[0]):
        lo, hi = box.start, box.stop
        if n <= w:
            starts.append([0])
        elif hi - lo <= w:
            starts.append([min(max(lo - (w - (hi - lo)) // 2, 0), n - w)])
        else:  # counted from the box's edge; a box spanning the axis gives the full grid's starts
            starts.append([lo + s for s in window_starts(hi - lo, w, overlap if w > 1 else 0.0)])
    return starts


def window_has_foreground(foreground: np.ndarray, start: tuple[int, int, int], window: tuple[int, int, int]) -> bool:
    """True when the window at ``start`` (z, y, x) holds a foreground voxel."""
    z, y, x = start
    return bool(foreground[z:z + window[0], y:y + window[1], x:x + window[2]].any())
