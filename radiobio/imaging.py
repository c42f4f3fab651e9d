"""SimpleITK image I/O and geometry: read images and masks, check that grids agree, resample masks when asked.

Every image radiobio handles is a ``SimpleITK.Image``: it carries spacing (mm), origin (mm) and direction cosines,
so every measurement downstream is in physical units.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radiobio.atomic import atomic_path
from radiobio.errors import GeometryError, ImageReadError, MaskError

PathLike = str | os.PathLike

#: Pixel types that hold label maps without loss.
INTEGER_PIXEL_TYPES = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
    sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64,
}


def dicom_series(folder: PathLike) -> dict[str, list[str]]:
    """Return ``{series_instance_uid: [file, ...]}`` for every DICOM series in ``folder`` (files sorted by position)."""
    folder = str(folder)
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    return {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in uids}


def read_image(path: PathLike, series_uid: str | None = None) -> sitk.Image:
    """Read an image from a file (NIfTI, NRRD, MHA, any SimpleITK format) or a DICOM series folder.

    Spacing is in mm, origin in mm. A folder holding several DICOM series needs ``series_uid``; the error lists them.
    Raises :class:`ImageReadError` for a missing, unreadable or truncated file and :class:`GeometryError` for an
    image whose spacing is NaN, infinite or not positive.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder; check the path (relative paths resolve against the "
                             f"cohort manifest's folder)")
    try:
        if path.is_dir():
            image = _read_dicom_folder(path, series_uid)
        else:
            image = sitk.ReadImage(str(path))
    except ImageReadError:
        raise
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reader error"
        if "spacing" in first_line.lower():
            raise GeometryError(f"{path}: invalid voxel spacing in the header ({first_line}); every spacing must be "
                                f"a positive number (fix the file header)") from exc
        raise ImageReadError(f"{path}: cannot be read ({first_line}); the file may be truncated or not an image "
                             f"format SimpleITK knows") from exc
    check_spacing(image, str(path))
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_complete(path)
    return image


def _check_nifti_complete(path: Path) -> None:
    """Refuse a truncated NIfTI file: ITK fills the missing voxels with zeros instead of failing."""
    import gzip
    import struct
    import zlib

    compressed = path.name.lower().endswith(".gz")
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        header = handle.read(348)
    if len(header) < 348:
        raise ImageReadError(f"{path}: truncated NIfTI header; the file is incomplete (copy it again)")
    endian = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
    if struct.unpack(endian + "i", header[:4])[0] != 348:
        return  # NIfTI-2 or not NIfTI-1: no size check
    dims = struct.unpack(endian + "8h", header[40:56])
    bitpix = struct.unpack(endian + "h", header[72:74])[0]
    vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
    voxels = int(np.prod([max(1, d) for d in dims[1:1 + max(1, dims[0])]], dtype=np.int64))
    expected = max(vox_offset, 348) + voxels * bitpix // 8
    if not compressed:
        actual = path.stat().st_size
    else:
        with open(path, "rb") as raw:
            raw.seek(-4, 2)
            if struct.unpack("<I", raw.read(4))[0] == expected % 2**32:
                return
        # the gzip trailer disagrees (or the file has several gzip members): count the real bytes
        actual = 0
        try:
            with gzip.open(path, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    actual += len(chunk)
        except (EOFError, OSError, zlib.error):
            actual = -1
    if actual < expected:
        raise ImageReadError(f"{path}: truncated file (expected {expected} bytes of image data, found "
                             f"{max(actual, 0) if actual >= 0 else 'an incomplete gzip stream'}); copy it again")


def _read_dicom_folder(folder: Path, series_uid: str | None) -> sitk.Image:
    series = dicom_series(folder)
    if not series:
        raise ImageReadError(f"{folder}: folder holds no DICOM series; give an image file or a DICOM series folder")
    if series_uid is None:
        if len(series) > 1:
            listing = ", ".join(f"{uid} ({len(files)} files)" for uid, files in series.items())
            raise ImageReadError(f"{folder}: folder holds {len(series)} DICOM series: {listing}; choose one with "
                                 f"series_uid=... (or put each series in its own folder)")
        series_uid = next(iter(series))
    if series_uid not in series:
        raise ImageReadError(f"{folder}: no DICOM series {series_uid}; found {', '.join(series)}")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series[series_uid])
    return reader.Execute()


def check_spacing(image: sitk.Image, name: str = "image") -> None:
    """Raise :class:`GeometryError` when any spacing (mm) is NaN, infinite, zero or negative."""
    spacing = image.GetSpacing()
    if any(not math.isfinite(s) or s <= 0 for s in spacing):
        raise GeometryError(f"{name}: invalid voxel spacing {spacing} mm; every spacing must be a positive number "
                            f"(fix the file header)")


def read_mask(path: PathLike, reference: sitk.Image | None = None, resample: bool = False,
              tolerance: float = 1e-5) -> sitk.Image:
    """Read a label map as an integer image; optionally check it against (or resample it onto) ``reference``.

    A floating-point mask whose values are all whole numbers is converted to integers; any other non-integer mask
    raises :class:`MaskError`. With ``reference`` the grids are checked (:func:`check_geometry`) unless
    ``resample=True``, which resamples the mask onto the reference grid with nearest-neighbour interpolation.
    """
    mask = as_label_map(read_image(path), str(path))
    if reference is not None:
        if resample:
            mask = resample_mask(mask, reference)
        else:
            check_geometry(reference, mask, tolerance=tolerance, names=("image", str(path)))
    return mask


def as_label_map(mask: sitk.Image, name: str = "mask") -> sitk.Image:
    """Return ``mask`` with an integer pixel type; raise :class:`MaskError` if it holds fractional values."""
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise MaskError(f"{name}: mask has {mask.GetNumberOfComponentsPerPixel()} components per voxel; "
                        f"a label map has one")
    if mask.GetPixelID() in INTEGER_PIXEL_TYPES:
        return mask
    values = sitk.GetArrayViewFromImage(mask)
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise MaskError(f"{name}: mask holds non-integer values (e.g. probabilities); threshold it into an integer "
                        f"label map first")
    if values.min() < 0 or values.max() > np.iinfo(np.uint32).max:
        raise MaskError(f"{name}: mask labels must lie in 0..{np.iinfo(np.uint32).max}")
    return sitk.Cast(mask, sitk.sitkUInt32)


def check_geometry(image: sitk.Image, mask: sitk.Image, tolerance: float = 1e-5,
                   names: tuple[str, str] = ("image", "mask")) -> None:
    """Raise :class:`GeometryError` unless ``image`` and ``mask`` share size, spacing, origin and direction.

    ``tolerance`` is relative for spacing and absolute in mm for origin (scaled by spacing) and for direction
    cosines. The message names the first property that differs and both values.
    """
    a, b = names
    if image.GetDimension() != mask.GetDimension():
        raise GeometryError(f"{a} is {image.GetDimension()}D but {b} is {mask.GetDimension()}D")
    if image.GetSize() != mask.GetSize():
        raise GeometryError(f"size differs: {a} {image.GetSize()} vs {b} {mask.GetSize()} voxels; resample the mask "
                            f"onto the image (resample=True) only if it was drawn on a different grid")
    spacing_a, spacing_b = np.array(image.GetSpacing()), np.array(mask.GetSpacing())
    if not np.allclose(spacing_a, spacing_b, rtol=tolerance, atol=0):
        raise GeometryError(f"spacing differs: {a} {tuple(spacing_a)} mm vs {b} {tuple(spacing_b)} mm")
    origin_tol = tolerance * max(1.0, float(spacing_a.max()))
    if not np.allclose(image.GetOrigin(), mask.GetOrigin(), rtol=0, atol=origin_tol):
        raise GeometryError(f"origin differs: {a} {image.GetOrigin()} mm vs {b} {mask.GetOrigin()} mm")
    if not np.allclose(image.GetDirection(), mask.GetDirection(), rtol=0, atol=tolerance):
        raise GeometryError(f"direction differs: {a} {image.GetDirection()} vs {b} {mask.GetDirection()}")


def resample_mask(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Resample a label map onto ``reference``'s grid with nearest-neighbour interpolation (labels stay labels)."""
    return sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())


def resample_to_spacing(image: sitk.Image, spacing: tuple[float, ...], is_label: bool = False,
                        default_value: float = 0.0) -> sitk.Image:
    """Resample ``image`` to ``spacing`` (mm) keeping origin, direction and physical extent.

    Labels use nearest neighbour, intensities B-spline (order 3).
    """
    old_spacing = np.array(image.GetSpacing())
    new_spacing = np.array(spacing, dtype=float)
    new_size = np.maximum(1, np.round(np.array(image.GetSize()) * old_spacing / new_spacing)).astype(int)
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkBSpline
    return sitk.Resample(image, [int(s) for s in new_size], sitk.Transform(), interpolator, image.GetOrigin(),
                         tuple(new_spacing), image.GetDirection(), default_value, image.GetPixelID())


def labels_present(mask: sitk.Image) -> list[int]:
    """Return the sorted non-zero labels of a label map."""
    values = np.unique(sitk.GetArrayViewFromImage(mask))
    return [int(v) for v in values if v != 0]


def bounding_box(mask_array: np.ndarray, label: int) -> tuple[slice, ...] | None:
    """Return the index slices (numpy order, z-y-x) of ``label``'s bounding box, or ``None`` if it is absent."""
    hits = np.nonzero(mask_array == label)
    if hits[0].size == 0:
        return None
    return tuple(slice(int(h.min()), int(h.max()) + 1) for h in hits)


def voxel_volume_mm3(image: sitk.Image) -> float:
    """Return the volume of one voxel in mm³ (area in mm² for a 2D image)."""
    return float(np.prod(image.GetSpacing()))


def write_image(image: sitk.Image, path: PathLike, compress: bool = True) -> Path:
    """Write ``image`` atomically: to a temporary file beside ``path``, then renamed, so no half file is ever seen."""
    path = Path(path)
    with atomic_path(path, suffix="".join(path.suffixes) or ".nii.gz") as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return path
