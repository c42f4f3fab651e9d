"""Bring images onto a model's grid and intensity scale, and bring predicted masks back onto the image's grid.

A prepared image is reoriented to the model's orientation code (a permutation and flip of axes, no
interpolation), resampled to the target spacing (B-spline for intensities, nearest neighbour for labels) and
normalised (CT windowing or MR z-score). Arrays are in numpy order: ``(z, y, x, channels)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from radiobio.errors import GeometryError
from radiobio.imaging import as_label_map, resample_to_spacing
from radiobio.segmentation.config import IntensitySettings, SegmentationConfig


@dataclass(frozen=True)
class Grid:
    """An image grid without its pixels: size (x, y, z) voxels, spacing (mm), origin (mm), direction cosines."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        """The grid of ``image``."""
        return cls(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    def resample(self, image: sitk.Image, is_label: bool = True) -> sitk.Image:
        """Resample ``image`` (physical space) onto this grid; nearest neighbour for labels, linear otherwise."""
        interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
        return sitk.Resample(image, self.size, sitk.Transform(), interpolator, self.origin, self.spacing,
                             self.direction, 0, image.GetPixelID())


@dataclass
class PreparedImage:
    """A normalised image array on the model's grid, with the grids needed to map a prediction back."""

    array: np.ndarray  # (z, y, x, channels) float32; (1, y, x, channels) for a 2D image
    grid: Grid  # the prepared (model) grid
    original: Grid  # the input image's grid
    foreground: np.ndarray | None = None  # (z, y, x) bool: the body (CT) or non-zero region (MR); None: everything
    crop: bool = False  # inference skips the windows outside ``foreground``


def check_image(image: sitk.Image, config: SegmentationConfig, name: str = "image", *,
                model_name: str | None = None) -> None:
    """Raise :class:`GeometryError` when ``image`` cannot feed the model: a 2D image or a single slice for a 3D
    model, or another channel count. ``model_name`` names the model in the message."""
    channels = image.GetNumberOfComponentsPerPixel()
    model = f"model {model_name}" if model_name else "this model"
    if config.dims == 3 and image.GetDimension() != 3:
        raise GeometryError(f"{name} is {image.GetDimension()}D but {model} is a 3D {config.model.architecture}; "
                            f"give it a 3D volume (or use a 2D model for single slices)")
    if image.GetDimension() not in (2, 3):
        raise GeometryError(f"{name} is {image.GetDimension()}D; only 2D and 3D images can be segmented")
    if config.dims == 3 and min(image.GetSize()) == 1:
        size = " x ".join(str(s) for s in image.GetSize())
        raise GeometryError(f"{name}: the image has 1 slice ({size} voxels); {model} is 3D and needs a volume; "
                            f"give the DICOM folder, not one file")
    if channels != config.model.in_channels:
        raise GeometryError(f"{name} has {channels} channel(s) per voxel but {model} expects "
                            f"{config.model.in_channels}; give images with {config.model.in_channels} channel(s) "
                            f"(e.g. one MR sequence, not an RGB screenshot)")


def reorient(image: sitk.Image, orientation: str) -> sitk.Image:
    """Permute and flip axes so the image has ``orientation`` (e.g. ``LPS``); no interpolation.

    An image already in that orientation is returned as is (no copy).
    """
    if image.GetDimension() != 3:
        return image
    current = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    if current == orientation.upper() and np.allclose(np.abs(image.GetDirection()), np.eye(3).ravel()):
        return image
    return sitk.DICOMOrient(image, orientation.upper())


def resample(image: sitk.Image, spacing: tuple[float, ...] | None, is_label: bool = False) -> sitk.Image:
    """Resample to ``spacing`` (mm, x-y[-z]); a 2-value spacing on a 3D image changes only the in-plane axes."""
    if spacing is None:
        return image
    spacing = tuple(spacing)
    if image.GetDimension() == 3 and len(spacing) == 2:
        spacing = (*spacing, image.GetSpacing()[2])
    if image.GetDimension() == 2:
        spacing = spacing[:2]
    if np.allclose(image.GetSpacing(), spacing, rtol=1e-6, atol=0):
        return image
    return resample_to_spacing(image, spacing, is_label=is_label)


#: Above this many voxels, percentiles and z-score statistics come from a regular subsample (memory, time).
STATISTICS_SAMPLE = 2_000_000


def normalize_intensity(array: np.ndarray, settings: IntensitySettings, in_place: bool = False) -> np.ndarray:
    """Normalise intensities per channel of ``(..., channels)``: CT window onto [-1, 1], MR z-score after
    percentile clipping. ``in_place=True`` overwrites ``array`` (float32) instead of allocating a copy."""
    out = array if in_place and array.dtype == np.float32 else array.astype(np.float32)
    if settings.mode == "none":
        return out
    for c in range(out.shape[-1]):
        channel = out[..., c]
        if settings.mode == "ct":
            low, high = settings.window
            centre, half = (low + high) / 2.0, max((high - low) / 2.0, 1e-6)
            np.clip(channel, low, high, out=channel)
            channel -= centre
            channel /= half
            continue
        sample = channel.ravel()[::max(1, channel.size // STATISTICS_SAMPLE)]
        if settings.clip_percentiles is not None:
            low, high = np.percentile(sample, settings.clip_percentiles)
            np.clip(channel, low, high, out=channel)
            sample = np.clip(sample, low, high)
        mean, std = float(sample.mean(dtype=np.float64)), float(sample.std(dtype=np.float64))
        channel -= mean
        channel /= std if std > 1e-8 else 1.0
    return out


def image_array(image: sitk.Image) -> np.ndarray:
    """Pixels as ``(z, y, x, channels)`` float32 (``(1, y, x, channels)`` for a 2D image)."""
    array = sitk.GetArrayViewFromImage(image).astype(np.float32)  # one float32 copy, no intermediate
    if image.GetNumberOfComponentsPerPixel() == 1:
        array = array[..., None]
    if image.GetDimension() == 2:
        array = array[None]
    return array


def prepare_image(image: sitk.Image, config: SegmentationConfig, name: str = "image", *,
                  model_name: str | None = None, crop: bool = False, foreground: bool | None = None) -> PreparedImage:
    """Reorient, resample and normalise ``image`` for the model; validates it first (:func:`check_image`: a single
    slice or a 2D image for a 3D model, the channel count), naming ``model_name`` in the message. ``crop``: also
    find the input's foreground (:mod:`radiobio.segmentation.foreground`) so inference skips what lies outside
    (inference asks for it; training does not need it). ``foreground``: find it without cropping (the quality
    signals compare the intensities inside it); None = as ``crop``."""
    from radiobio.segmentation.foreground import foreground_mask

    check_image(image, config, name, model_name=model_name)
    original = Grid.of(image)
    moved = resample(reorient(image, config.preprocessing.orientation), config.preprocessing.target_spacing)
    raw = image_array(moved)
    find = crop if foreground is None else (foreground or crop)
    body = foreground_mask(raw, config.preprocessing.intensity.mode) if find else None
    array = normalize_intensity(raw, config.preprocessing.intensity, in_place=True)
    return PreparedImage(array, Grid.of(moved), original, body, crop)


def prepare_mask(mask: sitk.Image, prepared: PreparedImage, config: SegmentationConfig) -> np.ndarray:
    """Bring a label map onto a prepared image's grid; return it as ``(z, y, x)`` uint8 (2D: ``(1, y, x)``)."""
    mask = as_label_map(mask)
    moved = reorient(mask, config.preprocessing.orientation)
    if Grid.of(moved) != prepared.grid:
        moved = prepared.grid.resample(moved, is_label=True)
    array = sitk.GetArrayFromImage(moved)
    if array.max(initial=0) > 255:
        raise GeometryError(f"mask labels up to {array.max()} do not fit the 255 labels a model can predict")
    array = array.astype(np.uint8)
    return array[None] if array.ndim == 2 else array


def restore_mask(labels: np.ndarray, prepared: PreparedImage) -> sitk.Image:
    """Put a predicted ``(z, y, x)`` label array back onto the input image's grid (size, spacing, origin,
    direction identical to the input)."""
    dims = len(prepared.grid.size)
    mask = sitk.GetImageFromArray(labels[0] if dims == 2 else labels)
    mask.SetSpacing(prepared.grid.spacing)
    mask.SetOrigin(prepared.grid.origin)
    mask.SetDirection(prepared.grid.direction)
    if prepared.grid != prepared.original:
        mask = prepared.original.resample(mask, is_label=True)
    return mask
