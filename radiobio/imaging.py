"""SimpleITK image I/O and geometry: read images and masks, check that grids agree, resample masks when asked.

Every image radiobio handles is a ``SimpleITK.Image``: it carries spacing (mm), origin (mm) and direction cosines,
so every measurement downstream is in physical units. Inputs are checked at the door: a header whose spacing is
zero or NaN, a truncated NIfTI, a lone slice of a DICOM series or a folder of several series is refused with a
message that names the file and the fix, before any computation runs.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

#: Index-axis names used in messages (ITK order: x, y, z).
_AXIS_NAMES = "xyzt"

#: File suffixes that are never DICOM (no DICOM-series check for them).
_NON_DICOM_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr", ".img", ".img.gz", ".tif",
                       ".tiff", ".png", ".jpg", ".jpeg", ".vtk", ".gipl", ".gipl.gz", ".mnc", ".mgh", ".mgz")

#: How far (in voxels) two voxel centres may lie apart and still count as the same voxel for a flip or permutation.
_VOXEL_MATCH = 1e-2

_DICOM_UID, _DICOM_SOP_CLASS = "0020|000e", "0008|0016"


@contextmanager
def itk_warnings_hidden() -> Iterator[None]:
    """Hide ITK's raw ``WARNING: In .../itk*.cxx`` console output inside the ``with`` block; restore it after.

    radiobio reports the same problems itself, as errors that name the file and the fix.
    """
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


# ---------------------------------------------------------------------------------------------------------------
# DICOM series


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series found in a folder: its identifiers, as read from the first file, and its files."""

    uid: str
    number: str
    description: str
    modality: str
    files: tuple[str, ...]

    def describe(self) -> str:
        """A one-line description: number, description, modality, file count and UID."""
        parts = [f"series {self.number}" if self.number else "series (no number)"]
        if self.description:
            parts.append(repr(self.description))
        if self.modality:
            parts.append(self.modality)
        parts.append(f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}")
        parts.append(f"series_uid={self.uid!r}" if self.uid else "no SeriesInstanceUID")
        return ", ".join(parts)


def dicom_series(folder: PathLike) -> dict[str, list[str]]:
    """Return ``{series_instance_uid: [file, ...]}`` for every DICOM series directly in ``folder`` (files sorted by
    position); empty when there is none. ITK's raw warnings are not printed."""
    folder = str(folder)
    with itk_warnings_hidden():
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
        return {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in uids}


def dicom_series_info(folder: PathLike) -> list[DicomSeries]:
    """Every DICOM series directly in ``folder``, with SeriesNumber, SeriesDescription, Modality and files, in
    SeriesNumber order; ``series_uid`` of :func:`read_image` picks one of them."""
    found = [_series_info(uid, files) for uid, files in dicom_series(folder).items()]
    return sorted(found, key=lambda s: (_number_key(s.number), s.description, s.uid))


def _number_key(number: str) -> tuple[int, float, str]:
    try:
        return (0, float(number), "")
    except ValueError:
        return (1, 0.0, number)


def _dicom_tags(file: str) -> dict[str, str] | None:
    """The tags of one file's header as ``{"gggg|eeee": text}``, or None when it is not a readable image file."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        with itk_warnings_hidden():
            reader.ReadImageInformation()
    except RuntimeError:
        return None
    return {key: reader.GetMetaData(key).strip().strip("\x00").strip() for key in reader.GetMetaDataKeys()}


def _series_info(uid: str, files: list[str]) -> DicomSeries:
    tags = (_dicom_tags(files[0]) or {}) if files else {}
    return DicomSeries(uid=uid, number=tags.get("0020|0011", ""), description=tags.get("0008|103e", ""),
                       modality=tags.get("0008|0060", ""), files=tuple(files))


def _series_listing(series: list[DicomSeries], folder: Path | None = None) -> str:
    lines = []
    for item in series:
        where = ""
        if folder is not None and item.files:
            where = f"{os.path.relpath(os.path.dirname(item.files[0]), folder)}/: "
        lines.append(f"  {where}{item.describe()}")
    return "\n".join(lines)


def _series_in_subfolders(folder: Path, max_depth: int = 3, max_folders: int = 500) -> list[DicomSeries]:
    found: list[DicomSeries] = []
    visited = 0
    for root, dirs, _files in os.walk(folder):
        dirs.sort()
        depth = len(Path(root).relative_to(folder).parts)
        if depth >= max_depth:
            dirs[:] = []
        if depth == 0:
            continue
        visited += 1
        if visited > max_folders:
            break
        found.extend(dicom_series_info(root))
    return found


def _read_dicom_folder(folder: Path, series_uid: str | None) -> sitk.Image:
    series = dicom_series_info(folder)
    if not series:
        below = _series_in_subfolders(folder)
        if below:
            raise ImageReadError(
                f"{folder}: folder holds no DICOM series directly; its subfolders hold {len(below)} series:\n"
                f"{_series_listing(below, folder)}\ngive the folder of one series (e.g. "
                f"{os.path.dirname(below[0].files[0])})")
        raise ImageReadError(f"{folder}: folder holds no DICOM series; give an image file or a DICOM series folder")
    how = ("choose one with read_image(path, series_uid=...) in Python or a 'series_uid' column in the cohort "
           "table (or put each series in its own folder)")
    if series_uid is None:
        if len(series) > 1:
            raise ImageReadError(f"{folder}: folder holds {len(series)} DICOM series:\n{_series_listing(series)}\n"
                                 f"{how}")
        chosen = series[0]
    else:
        matches = [s for s in series if s.uid == series_uid]
        if not matches:
            raise ImageReadError(f"{folder}: holds no DICOM series with series_uid={series_uid!r}; it holds:\n"
                                 f"{_series_listing(series)}")
        chosen = matches[0]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(chosen.files))
    return reader.Execute()


def _check_lone_dicom_slice(path: Path) -> None:
    """Refuse one file of a multi-file DICOM series: read alone it is a one-slice volume."""
    name = path.name.lower()
    if name.endswith(_NON_DICOM_SUFFIXES):
        return
    tags = _dicom_tags(str(path))
    if tags is None or (_DICOM_UID not in tags and _DICOM_SOP_CLASS not in tags):
        return
    uid = tags.get(_DICOM_UID, "")
    folder = path.parent
    with itk_warnings_hidden():
        files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
    others = [f for f in files if os.path.abspath(f) != os.path.abspath(path)]
    if not others or len(others) == len(files):
        return
    info = _series_info(uid, files)
    label = info.description or info.modality or "without description"
    raise ImageReadError(f"{path}: this file is 1 of {len(files)} slices of series {label!r} "
                         f"({'series_uid=' + repr(uid) if uid else 'no SeriesInstanceUID'}); give the folder "
                         f"{folder} to read the whole series")


# ---------------------------------------------------------------------------------------------------------------
# Reading


def read_image(path: PathLike, *, series_uid: str | None = None) -> sitk.Image:
    """Read an image from a file (NIfTI, NRRD, MHA, any SimpleITK format) or a DICOM series folder.

    Spacing is in mm, origin in mm. A folder holding several DICOM series needs ``series_uid`` (the
    SeriesInstanceUID, e.g. from a cohort's ``series_uid`` column; ``None``, ``""`` or NaN mean "the only series");
    the error lists every series with its number, description, modality and file count.
    Raises :class:`ImageReadError` for a missing, unreadable or truncated file, a single file of a multi-file DICOM
    series, and a folder without a series, and :class:`GeometryError` for an image whose spacing is NaN, infinite or
    not positive, including a NIfTI header whose ``pixdim`` is zero or NaN (which ITK alone reads as 1 mm).
    """
    series_uid = _clean_series_uid(series_uid)
    path = Path(path)
    if not path.exists():
        if os.path.islink(path):
            raise ImageReadError(f"{path}: a broken symbolic link or a symlink loop; point it at the image")
        raise ImageReadError(f"{path}: no such file or folder; check the path (relative paths resolve against the "
                             f"cohort manifest's folder)")
    nifti_version = None
    try:
        if path.is_dir():
            image = _read_dicom_folder(path, series_uid)
        else:
            if series_uid is not None:
                raise ImageReadError(f"{path}: series_uid={series_uid!r} selects a series in a DICOM folder, but this "
                                     f"is a file; give the series' folder (or leave series_uid empty)")
            if path.name.lower().endswith((".nii", ".nii.gz")):
                nifti_version = check_nifti_header(path)
            elif path.name.lower().endswith(".hdr"):  # NIfTI-1 / Analyze pair: the header lies beside the data
                nifti_version = check_nifti_header(path, check_size=False)
            else:
                _check_lone_dicom_slice(path)
            image = sitk.ReadImage(str(path))
    except (ImageReadError, GeometryError):
        raise
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reader error"
        if nifti_version == 2:
            raise ImageReadError(f"{path}: a NIfTI-2 file, which this SimpleITK ({sitk.Version.VersionString()}) "
                                 f"cannot read ({first_line}); save it as NIfTI-1, e.g. with nibabel: "
                                 f"img = nib.load(path); nib.save(nib.Nifti1Image(np.asarray(img.dataobj), "
                                 f"img.affine), 'image.nii.gz')") from exc
        if "spacing" in first_line.lower():
            raise GeometryError(f"{path}: invalid voxel spacing in the header ({first_line}); every spacing must be "
                                f"a positive number (fix the file header)") from exc
        raise ImageReadError(f"{path}: cannot be read ({first_line}); the file may be truncated or not an image "
                             f"format SimpleITK knows") from exc
    check_spacing(image, str(path))
    return image


def _clean_series_uid(series_uid: object) -> str | None:
    if series_uid is None or (isinstance(series_uid, float) and math.isnan(series_uid)):
        return None
    text = str(series_uid).strip()
    return text or None


def check_nifti_header(path: PathLike, *, check_size: bool = True) -> int | None:
    """Check a NIfTI-1 or NIfTI-2 file's raw header (``.nii``, ``.nii.gz``, or the ``.hdr`` of a pair) before ITK
    reads it; return the NIfTI version (1 or 2; an Analyze 7.5 ``.hdr`` counts as 1), or None when the file is not
    NIfTI-1/2 (left to ITK).

    Raises :class:`GeometryError` when a voxel spacing ``pixdim[1..3]`` (mm) is zero, NaN or infinite (ITK reads it
    as 1 mm without a word), and :class:`ImageReadError` when the header or the voxel data are truncated (ITK fills
    missing voxels with zeros; ``check_size=False`` skips this, for a ``.hdr`` whose voxels lie in the ``.img``).
    """
    import gzip
    import struct
    import zlib

    path = Path(path)
    compressed = path.name.lower().endswith(".gz")
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(540)
    except (EOFError, OSError, zlib.error) as exc:
        raise ImageReadError(f"{path}: cannot read the NIfTI header ({exc}); the file is damaged or not "
                             f"{'gzip-compressed' if compressed else 'NIfTI'}") from exc
    if len(header) < 348:
        raise ImageReadError(f"{path}: truncated NIfTI header; the file is incomplete (copy it again)")
    for endian in "<>":
        sizeof_hdr = struct.unpack(endian + "i", header[:4])[0]
        if sizeof_hdr in (348, 540):
            break
    else:
        return None  # not NIfTI-1/2: ITK decides
    if sizeof_hdr == 348:
        dims = struct.unpack(endian + "8h", header[40:56])
        bitpix = struct.unpack(endian + "h", header[72:74])[0]
        pixdim = struct.unpack(endian + "8f", header[76:108])
        vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
        minimum_offset = 348
    else:
        if len(header) < 540:
            raise ImageReadError(f"{path}: truncated NIfTI-2 header; the file is incomplete (copy it again)")
        bitpix = struct.unpack(endian + "h", header[14:16])[0]
        dims = struct.unpack(endian + "8q", header[16:80])
        pixdim = struct.unpack(endian + "8d", header[104:168])
        vox_offset = struct.unpack(endian + "q", header[168:176])[0]
        minimum_offset = 540
    version = 1 if sizeof_hdr == 348 else 2
    rank = dims[0]
    if not 1 <= rank <= 7:
        return version  # a broken dim[0]: ITK reports it
    spatial = [float(v) for v in pixdim[1:1 + min(rank, 3)]]
    if any(not math.isfinite(v) or v == 0 for v in spatial):
        shown = ", ".join(_format_number(v) for v in spatial)
        raise GeometryError(f"{path}: the NIfTI header's voxel spacing (pixdim[1..{len(spatial)}]) is ({shown}) mm; "
                            f"every spacing must be a finite number > 0 (ITK would silently read a zero or NaN as "
                            f"1 mm). Fix the header with the true spacing, e.g. image = sitk.ReadImage(path); "
                            f"image.SetSpacing((sx, sy, sz)); sitk.WriteImage(image, path)")
    if not check_size:
        return version
    voxels = int(np.prod([max(1, d) for d in dims[1:1 + rank]], dtype=np.int64))
    expected = max(vox_offset, minimum_offset) + voxels * bitpix // 8
    if not compressed:
        actual = path.stat().st_size
    else:
        with open(path, "rb") as raw:
            raw.seek(-4, 2)
            if struct.unpack("<I", raw.read(4))[0] == expected % 2**32:
                return version
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
    return version


def check_spacing(image: sitk.Image, name: str = "image") -> None:
    """Raise :class:`GeometryError` when any spacing (mm) is NaN, infinite, zero or negative."""
    spacing = image.GetSpacing()
    if any(not math.isfinite(s) or s <= 0 for s in spacing):
        raise GeometryError(f"{name}: invalid voxel spacing {_format_tuple(spacing)} mm; every spacing must be a "
                            f"finite number > 0 (fix the file header)")


def read_mask(path: PathLike, *, reference: sitk.Image | None = None, resample: bool = False,
              tolerance: float = 1e-5) -> sitk.Image:
    """Read a label map as an integer image; optionally check it against (or resample it onto) ``reference``.

    A floating-point mask whose values are all whole numbers is converted to integers; any other non-integer mask
    raises :class:`MaskError`. With ``reference`` the grids are checked (:func:`check_geometry`, ``tolerance`` as
    there) unless ``resample=True``, which puts the mask on the reference grid (:func:`resample_mask`): exactly,
    voxel for voxel, when the grids differ only by flipped or permuted axes, else by nearest-neighbour resampling.
    """
    mask = as_label_map(read_image(path), str(path))
    if reference is not None:
        if resample:
            mask = resample_mask(mask, reference, name=str(path))
        else:
            check_geometry(reference, mask, tolerance=tolerance, names=("image", str(path)))
    return mask


def as_label_map(mask: sitk.Image | PathLike, name: str | None = None) -> sitk.Image:
    """Return ``mask`` (an image, or a path read with :func:`read_mask`) as an integer label map.

    Integer pixel types pass through unchanged; a floating-point mask whose values are all whole numbers in
    0..2**32-1 is cast to UInt32. Raises :class:`MaskError` for several components per voxel or fractional,
    non-finite or negative values. ``name`` (default: the path, or ``"mask"``) names the mask in messages.
    """
    if not isinstance(mask, sitk.Image):
        return read_mask(mask)
    name = name or "mask"
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise MaskError(f"{name}: mask has {mask.GetNumberOfComponentsPerPixel()} components per voxel; "
                        f"a label map has one")
    if mask.GetPixelID() in INTEGER_PIXEL_TYPES:
        return mask
    values = sitk.GetArrayViewFromImage(mask)
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise MaskError(f"{name}: mask holds non-integer values (e.g. probabilities); threshold it into an integer "
                        f"label map first")
    if values.size and (values.min() < 0 or values.max() > np.iinfo(np.uint32).max):
        raise MaskError(f"{name}: mask labels must lie in 0..{np.iinfo(np.uint32).max}")
    return sitk.Cast(mask, sitk.sitkUInt32)


# ---------------------------------------------------------------------------------------------------------------
# Geometry


def _format_number(value: float, digits: int = 4) -> str:
    if not math.isfinite(value):
        return str(value)
    rounded = round(float(value), digits)
    return repr(rounded if rounded != 0 else 0.0)


def _format_tuple(values: tuple[float, ...] | list[float] | np.ndarray, digits: int = 4) -> str:
    return "(" + ", ".join(_format_number(v, digits) for v in values) + ")"


def _format_pair(first: tuple[float, ...] | np.ndarray, second: tuple[float, ...] | np.ndarray) -> tuple[str, str]:
    """Both tuples rounded for reading, with more digits where the rounding would hide their difference."""
    for digits in (4, 8, 17):
        shown = _format_tuple(first, digits), _format_tuple(second, digits)
        if shown[0] != shown[1]:
            return shown
    return shown


def _direction_matrix(image: sitk.Image) -> np.ndarray:
    dim = image.GetDimension()
    return np.array(image.GetDirection(), dtype=float).reshape(dim, dim)


def grid_axis_map(reference: sitk.Image, moving: sitk.Image) -> tuple[tuple[int, ...], tuple[bool, ...]] | None:
    """How ``moving``'s voxel grid lies on ``reference``'s, when both have exactly the same voxels.

    Returns ``(axes, flipped)``: index axis ``j`` of ``moving`` runs along axis ``axes[j]`` of ``reference``,
    in the opposite direction when ``flipped[j]``, and every voxel centre of one grid lies on a voxel centre of the
    other (within 1/100 voxel). Returns None when the grids are not such a flip or permutation of each other (other
    size, spacing, region or an oblique rotation). ``((0, 1, 2), (False, False, False))`` means the same grid.
    """
    dim = reference.GetDimension()
    if moving.GetDimension() != dim:
        return None
    relation = _direction_matrix(reference).T @ _direction_matrix(moving)  # column j: moving axis j in ref axes
    axes = tuple(int(np.argmax(np.abs(relation[:, j]))) for j in range(dim))
    if sorted(axes) != list(range(dim)):
        return None
    for j, i in enumerate(axes):
        others = np.delete(relation[:, j], i)
        if abs(abs(relation[i, j]) - 1) > 1e-4 or (others.size and np.abs(others).max() > 1e-4):
            return None
    flipped = tuple(bool(relation[axes[j], j] < 0) for j in range(dim))
    ref_size, ref_spacing = reference.GetSize(), reference.GetSpacing()
    mov_size, mov_spacing = moving.GetSize(), moving.GetSpacing()
    for j, i in enumerate(axes):
        if mov_size[j] != ref_size[i] or not math.isclose(mov_spacing[j], ref_spacing[i], rel_tol=1e-4):
            return None
    start = reference.TransformPhysicalPointToContinuousIndex(moving.GetOrigin())
    expected = [0.0] * dim
    for j, i in enumerate(axes):
        expected[i] = ref_size[i] - 1 if flipped[j] else 0
    if any(abs(s - e) > _VOXEL_MATCH for s, e in zip(start, expected, strict=True)):
        return None
    return axes, flipped


def _physical_box(image: sitk.Image) -> np.ndarray:
    """(lower corner, upper corner) of the region the image's voxels cover, in physical mm (2 × dim)."""
    dim, size = image.GetDimension(), image.GetSize()
    corners = []
    for code in range(2 ** dim):
        index = [(size[a] - 0.5) if code >> a & 1 else -0.5 for a in range(dim)]
        corners.append(image.TransformContinuousIndexToPhysicalPoint(index))
    points = np.array(corners)
    return np.stack([points.min(axis=0), points.max(axis=0)])


def _describe_axis_map(axes: tuple[int, ...], flipped: tuple[bool, ...], names: tuple[str, str]) -> str:
    a, b = names
    flips = [_AXIS_NAMES[axes[j]] for j in range(len(axes)) if flipped[j]]
    parts = []
    if list(axes) != sorted(axes):
        parts.append(f"axes permuted ({b} axes {', '.join(_AXIS_NAMES[j] for j in range(len(axes)))} lie along "
                     f"{a} axes {', '.join(_AXIS_NAMES[i] for i in axes)})")
    if flips:
        parts.append(f"axis flipped ({', '.join(flips)})" if len(flips) == 1 else
                     f"axes flipped ({', '.join(flips)})")
    return ", ".join(parts) if parts else "the same voxels"


_RESAMPLE_HINT = ("resample_masks=True in Python, --resample-masks in the CLI (or read_mask(path, reference=image, "
                 "resample=True))")


def geometry_differences(image: sitk.Image, mask: sitk.Image, tolerance: float = 1e-5,
                         names: tuple[str, str] = ("image", "mask")) -> list[str]:
    """Every grid property that differs between ``image`` and ``mask``, as texts (empty when the grids agree).

    Checks dimension, size (voxels), spacing (mm, relative ``tolerance``), origin (mm, absolute ``tolerance`` scaled
    by the largest spacing) and direction cosines (absolute ``tolerance``).
    """
    a, b = names
    if image.GetDimension() != mask.GetDimension():
        return [f"{a} is {image.GetDimension()}D but {b} is {mask.GetDimension()}D"]
    found = []
    if image.GetSize() != mask.GetSize():
        found.append(f"size differs: {a} {image.GetSize()} vs {b} {mask.GetSize()} voxels")
    spacing_a, spacing_b = np.array(image.GetSpacing()), np.array(mask.GetSpacing())
    if not np.allclose(spacing_a, spacing_b, rtol=tolerance, atol=0):
        shown = _format_pair(spacing_a, spacing_b)
        found.append(f"spacing differs: {a} {shown[0]} mm vs {b} {shown[1]} mm")
    origin_tol = tolerance * max(1.0, float(np.nanmax(spacing_a)) if np.isfinite(spacing_a).any() else 1.0)
    if not np.allclose(image.GetOrigin(), mask.GetOrigin(), rtol=0, atol=origin_tol):
        shown = _format_pair(image.GetOrigin(), mask.GetOrigin())
        found.append(f"origin differs: {a} {shown[0]} mm vs {b} {shown[1]} mm")
    if not np.allclose(image.GetDirection(), mask.GetDirection(), rtol=0, atol=tolerance):
        shown = _format_pair(image.GetDirection(), mask.GetDirection())
        found.append(f"direction differs: {a} {shown[0]} vs {b} {shown[1]}")
    return found


def check_geometry(image: sitk.Image, mask: sitk.Image, *, tolerance: float = 1e-5,
                   names: tuple[str, str] = ("image", "mask")) -> None:
    """Raise :class:`GeometryError` unless ``image`` and ``mask`` share size, spacing, origin and direction.

    ``tolerance`` is relative for spacing and absolute in mm for origin (scaled by the largest spacing) and for
    direction cosines. The message names every property that differs with both values (``size differs: ...;
    origin differs: ...``), then says how the grids relate and the fix: for a mask on the same voxels with axes
    flipped or permuted ("same physical extent, axis flipped (y)"), resampling with ``resample_masks=True``
    (``--resample-masks`` in the CLI) is lossless; for a mask on another grid it is nearest-neighbour.
    """
    for item, label in ((image, names[0]), (mask, names[1])):
        check_spacing(item, label)
    differences = geometry_differences(image, mask, tolerance=tolerance, names=names)
    if not differences:
        return
    text = "; ".join(differences)
    if image.GetDimension() != mask.GetDimension():
        raise GeometryError(text)
    a, b = names
    mapping = grid_axis_map(image, mask)
    if mapping is not None:
        how = _describe_axis_map(*mapping, names)
        raise GeometryError(f"{text}; same physical extent, {how}: resample the mask onto the image with "
                            f"{_RESAMPLE_HINT}; for a flip or permutation this resampling is lossless (every voxel "
                            f"moves onto exactly one voxel)")
    box_a, box_b = _physical_box(image), _physical_box(mask)
    scale = max(max(image.GetSpacing()), max(mask.GetSpacing()))
    if np.allclose(box_a, box_b, rtol=0, atol=0.05 * scale):
        raise GeometryError(f"{text}; same physical extent on another voxel grid: {_RESAMPLE_HINT} resamples the "
                            f"mask onto the image with nearest neighbour (approximate: check the volumes after)")
    raise GeometryError(f"{text}; the grids cover different regions: check that the {b} belongs to this {a}; if it "
                        f"was drawn on another grid of the same scan, {_RESAMPLE_HINT} resamples it with nearest "
                        f"neighbour")


def resample_mask(mask: sitk.Image, reference: sitk.Image, *, name: str = "mask") -> sitk.Image:
    """Put a label map on ``reference``'s grid; labels stay labels.

    When the grids have the same voxels with axes flipped or permuted (:func:`grid_axis_map`), the voxels are
    reordered exactly (every label's voxel count is kept). Otherwise the mask is resampled with nearest-neighbour
    interpolation (0 outside the mask). Raises :class:`GeometryError` for masks of another dimension and
    :class:`MaskError` when a non-empty mask lies entirely outside the reference grid.
    """
    if mask.GetDimension() != reference.GetDimension():
        raise GeometryError(f"{name} is {mask.GetDimension()}D but the image is {reference.GetDimension()}D; "
                            f"resampling cannot change the dimension")
    mapping = grid_axis_map(reference, mask)
    if mapping is not None:
        axes, flipped = mapping
        dim = mask.GetDimension()
        values = sitk.GetArrayFromImage(mask).transpose(tuple(reversed(range(dim))))  # ITK index order
        flip_axes = tuple(j for j in range(dim) if flipped[j])
        if flip_axes:
            values = np.flip(values, axis=flip_axes)
        values = np.transpose(values, tuple(int(j) for j in np.argsort(axes)))  # reference index order
        out = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(tuple(reversed(range(dim))))))
        out.CopyInformation(reference)
        return out
    out = sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
    if np.any(sitk.GetArrayViewFromImage(mask)) and not np.any(sitk.GetArrayViewFromImage(out)):
        raise MaskError(f"{name}: the mask lies entirely outside the image's grid (image box "
                        f"{_format_box(reference)} mm, mask box {_format_box(mask)} mm); it belongs to another scan")
    return out


def _format_box(image: sitk.Image) -> str:
    box = _physical_box(image)
    return f"{_format_tuple(box[0])}..{_format_tuple(box[1])}"


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


def labels_present(mask: sitk.Image | np.ndarray) -> list[int]:
    """Return the sorted non-zero labels of a label map (a SimpleITK image or its voxel array)."""
    values = np.unique(sitk.GetArrayViewFromImage(mask) if isinstance(mask, sitk.Image) else np.asarray(mask))
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
    """Write ``image`` atomically: to a temporary file beside ``path``, then renamed, so no half file is ever seen.

    DICOM header values that an image read from a DICOM file carries (``"0010|0010"`` patient name, birth date,
    IDs...) are never written: NRRD and MHA headers would keep them. The case is identified by its ``case_id``.
    """
    path = Path(path)
    dicom_keys = [key for key in image.GetMetaDataKeys() if _DICOM_TAG_KEY.match(key)]
    if dicom_keys:
        image = sitk.Image(image)
        for key in dicom_keys:
            image.EraseMetaData(key)
    with atomic_path(path, suffix="".join(path.suffixes) or ".nii.gz") as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return path


#: A SimpleITK metadata key that holds a DICOM header value (``gggg|eeee``).
_DICOM_TAG_KEY = re.compile(r"^[0-9a-fA-F]{4}\|[0-9a-fA-F]{4}$")
