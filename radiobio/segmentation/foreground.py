"""Where a prepared image holds anything to segment: the body of a CT, the non-zero region of an MR.

Sliding-window inference crops the network input to the bounding box of this foreground and skips every window
that holds none of it (:func:`radiobio.segmentation.inference.predict_labels`). Both masks are computed on the
prepared array (the model's grid and intensity scale), so they describe exactly what the network would see:

* **CT** (intensity mode ``ct``): voxels above :data:`BODY_THRESHOLD_HU` (``-500`` HU, halfway between air and
  soft tissue; the bottom of the model's window when that lies higher), the largest 3D connected component (the
  patient, not the couch or a blanket), with holes filled slice by slice (lungs, bowel gas and airways belong to
  the body even where the trachea connects them to the outside air);
* **MR and unnormalised images** (modes ``zscore`` and ``none``): every voxel whose value differs from the image's
  minimum (the zero background of an MR scan, after normalisation) by more than :data:`ZERO_TOLERANCE` of the
  intensity range.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from radiobio.errors import GeometryError
from radiobio.segmentation.config import IntensitySettings

#: The CT body threshold (HU): air is about -1000, fat -100, soft tissue 0 to 60.
BODY_THRESHOLD_HU = -500.0
#: Fraction of the intensity range above the minimum counted as "non-zero" in MR (B-spline resampling ringing).
ZERO_TOLERANCE = 1e-3


def foreground_mask(volume: np.ndarray, intensity: IntensitySettings) -> np.ndarray:
    """Boolean ``(z, y, x)`` foreground of a prepared ``(z, y, x, channels)`` volume (see the module text).

    ``intensity`` is the model's normalisation (it tells CT from MR and maps HU to the prepared scale). Channels
    are combined: a voxel is foreground when any channel is.
    """
    if volume.ndim != 4:
        raise GeometryError(f"foreground_mask needs a prepared (z, y, x, channels) array, got shape {volume.shape}; "
                            f"give the array of prepare_image()")
    if intensity.mode == "ct":
        return body_mask(volume, intensity.window)
    return nonzero_mask(volume)


def body_mask(volume: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """The patient's body in a prepared CT ``(z, y, x, channels)``: threshold, largest component, holes filled.

    ``window`` (HU, low and high) is the CT window the volume was normalised with (onto [-1, 1]); ``None`` means
    the volume is in HU. Returns an all-False mask when nothing lies above the threshold.
    """
    threshold = BODY_THRESHOLD_HU
    if window is not None:
        low, high = float(window[0]), float(window[1])
        centre, half = (low + high) / 2.0, max((high - low) / 2.0, 1e-6)
        threshold = (min(max(threshold, low), high) - centre) / half
        # at the window's bottom (everything darker was clipped onto it) "above" must be strict
        threshold += 1e-6
    above = np.any(volume > threshold, axis=-1)
    if not above.any():
        return above
    components = sitk.ConnectedComponent(sitk.GetImageFromArray(above.astype(np.uint8)), False)
    largest = sitk.GetArrayViewFromImage(sitk.RelabelComponent(components, sortByObjectSize=True)) == 1
    body = np.empty_like(largest)
    for z in range(largest.shape[0]):
        if not largest[z].any():
            body[z] = False
            continue
        slice_ = sitk.BinaryFillhole(sitk.GetImageFromArray(largest[z].astype(np.uint8)), fullyConnected=False,
                                     foregroundValue=1)
        body[z] = sitk.GetArrayViewFromImage(slice_).astype(bool)
    return body


def nonzero_mask(volume: np.ndarray) -> np.ndarray:
    """Voxels of a ``(z, y, x, channels)`` volume above its minimum by more than :data:`ZERO_TOLERANCE` of its
    range in any channel (an MR scan's non-zero region); all-False for a constant image."""
    mask = np.zeros(volume.shape[:3], dtype=bool)
    for c in range(volume.shape[-1]):
        channel = volume[..., c]
        low, high = float(channel.min()), float(channel.max())
        if high > low:
            mask |= channel > low + ZERO_TOLERANCE * (high - low)
    return mask


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (one slice per axis) holding every True voxel of ``mask``, or None when it is empty."""
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)
