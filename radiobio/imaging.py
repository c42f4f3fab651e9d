"""SimpleITK image I/O and geometry: read images and masks, check that grids agree, resample masks when asked.

Every image radiobio handles is a ``SimpleITK.Image``: it carries spacing (mm), origin (mm) and direction cosines,
so every measurement downstream is in physical units. Inputs are checked at the door: a header whose spacing is
zero or NaN, a truncated NIfTI, a folder of several DICOM series without a choice, a DICOM series with missing
slices, tilted, sheared or mixed slice planes or several frames of reference is refused with a message that names
the file and the fix, before any computation runs. One file of a DICOM series reads the whole series.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radiobio.atomic import atomic_path
from radiobio.errors import DicomWarning, GeometryError, ImageReadError, MaskError, SettingsError

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
#
# Series are found and checked from their headers (pydicom, no pixel data: radiobio.dicom.source.read_header), then
# read by SimpleITK (GDCM), which applies RescaleSlope/RescaleIntercept (CT in HU) and decodes compressed transfer
# syntaxes (JPEG, JPEG 2000, RLE). Enhanced (multi-frame) CT/MR files are read by SimpleITK too: its geometry comes
# from the per-frame PlanePositionSequence and the shared PixelMeasures/PlaneOrientation groups.

#: Modalities of DICOM objects that are not images to segment or measure; never series candidates. RTDOSE is a dose
#: grid: a candidate only when asked for with ``modality="RTDOSE"``.
NON_IMAGE_MODALITIES = frozenset({"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "RTIMAGE", "SR", "PR", "KO",
                                  "REG", "RWV", "DOC", "PLAN", "FID", "AU", "ECG"})

#: Files that sit in DICOM folders without being part of a series: skipped, never counted as non-DICOM files.
_SKIPPED_NAMES = frozenset({"dicomdir", "thumbs.db", "desktop.ini"})

#: Suffixes of files known not to be DICOM (no header read is attempted).
_NOT_DICOM_SUFFIXES = _NON_DICOM_SUFFIXES + (".txt", ".csv", ".tsv", ".json", ".md", ".xml", ".html", ".pdf", ".zip",
                                             ".gz", ".py", ".log", ".yaml", ".yml", ".parquet", ".npy", ".npz")

#: Slice-geometry tolerances: orientation cosines, slice step variation (relative) before a warning, a gap (steps
#: larger than this × the median step are missing slices), and the slant of slice positions off the normal.
_ORIENTATION_TOLERANCE = 1e-3
_UNEVEN_STEP = 0.01
_GAP_FACTOR = 1.5
_SHEAR_TOLERANCE = 1e-3  # tangent of the angle (≈ 0.06°) between the slice-to-slice offsets and the slice normal
_SHEAR_ROUNDING = 0.02  # mm of sideways drift tolerated whatever the extent (positions written with few digits)

_SELECT_HINT = ("choose one with read_image(path, series_uid=..., modality=..., series_description=...) in Python "
                "or a 'series_uid', 'modality' or 'series_description' column in the cohort table (a description "
                "matches as a case-insensitive substring, or as a regular expression written 're:<pattern>'); or "
                "put each series in its own folder")


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM image series found in a folder: its identifiers, as read from its first file, and its files.

    ``files`` are sorted along the slice normal (ascending); a multi-frame (enhanced) file is a series of its own
    with ``frames`` > 1. ``folder`` is the folder the files lie in.
    """

    uid: str
    number: str
    description: str
    modality: str
    files: tuple[str, ...]
    folder: str = ""
    frames: int = 1
    headers: tuple = field(default=(), repr=False, compare=False)

    def describe(self) -> str:
        """A one-line description: number, description, modality, file count and UID."""
        parts = [f"series {self.number}" if self.number else "series (no number)"]
        if self.description:
            parts.append(repr(self.description))
        if self.modality:
            parts.append(self.modality)
        parts.append(f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}")
        if self.frames != len(self.files):
            parts.append(f"{self.frames} frames")
        parts.append(f"series_uid={self.uid!r}" if self.uid else "no SeriesInstanceUID")
        return ", ".join(parts)


def _is_skipped(name: str) -> bool:
    return name.startswith(".") or name.lower() in _SKIPPED_NAMES


def dicom_folder_headers(folder: PathLike) -> tuple[list[tuple[Path, object]], list[Path]]:
    """The DICOM files directly in ``folder`` with their headers (pydicom datasets, no pixel data), and its other
    (non-DICOM) files. Hidden files, ``DICOMDIR`` and subfolders are skipped."""
    from radiobio.dicom.source import read_header

    headers: list[tuple[Path, object]] = []
    others: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise ImageReadError(f"{folder}: cannot list the folder ({exc})") from exc
    for entry in entries:
        if _is_skipped(entry.name) or not entry.is_file():
            continue
        path = Path(entry.path)
        header = None if entry.name.lower().endswith(_NOT_DICOM_SUFFIXES) else read_header(path)
        if header is None:
            others.append(path)
        else:
            headers.append((path, header))
    return headers, others


def _dicom_text(header: object, keyword: str) -> str:
    from radiobio.dicom.source import text

    try:
        return text(header, keyword)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a malformed value in a header read leniently
        return ""


def _frame_count(header: object) -> int:
    try:
        return max(1, int(header.get("NumberOfFrames", 1) or 1))  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return 1


def is_image_header(header: object, *, modality: str | None = None) -> bool:
    """Whether a DICOM header describes image pixels (Rows and Columns, a modality that is an image): SEG,
    RTSTRUCT, RTPLAN, SR... are not; RTDOSE only when ``modality`` asks for it."""
    found = _dicom_text(header, "Modality").upper()
    if modality is not None and found == modality.upper():
        return "Rows" in header and "Columns" in header  # type: ignore[operator]
    if found in NON_IMAGE_MODALITIES:
        return False
    return "Rows" in header and "Columns" in header  # type: ignore[operator]


def group_dicom_series(items: list[tuple[Path, object]], *, folder: PathLike,
                       modality: str | None = None) -> list[DicomSeries]:
    """Group the image headers (``(file, header)`` pairs, from :func:`dicom_folder_headers`) of one ``folder`` into
    series: by SeriesInstanceUID (an empty UID is a series too); a
    multi-frame file is a series of its own. Slices are sorted along the slice normal."""
    groups: dict[tuple[str, str], list[tuple[Path, object]]] = {}
    for path, header in items:
        if not is_image_header(header, modality=modality):
            continue
        key = (_dicom_text(header, "SeriesInstanceUID"), str(path) if _frame_count(header) > 1 else "")
        groups.setdefault(key, []).append((path, header))
    found = []
    for (uid, _single), members in groups.items():
        members = _sorted_slices(members)
        first = members[0][1]
        found.append(DicomSeries(uid=uid, number=_dicom_text(first, "SeriesNumber"),
                                 description=_dicom_text(first, "SeriesDescription"),
                                 modality=_dicom_text(first, "Modality"), files=tuple(str(p) for p, _ in members),
                                 folder=str(folder), frames=sum(_frame_count(h) for _, h in members),
                                 headers=tuple(h for _, h in members)))
    return sorted(found, key=lambda s: (_number_key(s.number), s.description, s.uid, s.files))


def _sorted_slices(members: list[tuple[Path, object]]) -> list[tuple[Path, object]]:
    """Members sorted by position along the first slice's normal (stable; files without geometry keep their order)."""
    try:
        orientation = np.asarray(members[0][1].ImageOrientationPatient, dtype=float)  # type: ignore[attr-defined]
        normal = np.cross(orientation[:3], orientation[3:])
        keys = [float(np.dot(np.asarray(h.ImagePositionPatient, dtype=float), normal))  # type: ignore[attr-defined]
                for _, h in members]
    except (AttributeError, TypeError, ValueError, IndexError):
        return members
    order = np.argsort(keys, kind="stable")
    return [members[i] for i in order]


def dicom_series(folder: PathLike) -> dict[str, list[str]]:
    """Return ``{series_instance_uid: [file, ...]}`` for every DICOM image series directly in ``folder`` (files
    sorted along the slice normal); empty when there is none."""
    found: dict[str, list[str]] = {}
    for series in dicom_series_info(folder):
        found.setdefault(series.uid, []).extend(series.files)
    return found


def dicom_series_info(folder: PathLike) -> list[DicomSeries]:
    """Every DICOM image series directly in ``folder``, with SeriesNumber, SeriesDescription, Modality and files, in
    SeriesNumber order; ``series_uid`` of :func:`read_image` picks one of them."""
    items, _others = dicom_folder_headers(folder)
    return group_dicom_series(items, folder=folder)


def _number_key(number: str) -> tuple[int, float, str]:
    try:
        return (0, float(number), "")
    except ValueError:
        return (1, 0.0, number)


def _series_listing(series: list[DicomSeries], base: Path | None = None) -> str:
    lines = []
    for item in series:
        where = item.folder
        if base is not None and where:
            relative = os.path.relpath(where, base)
            where = "./" if relative == "." else f"{relative}/"
        lines.append(f"  {where}: {item.describe()}" if where else f"  {item.describe()}")
    return "\n".join(lines)


def _series_under(folder: Path, modality: str | None) -> tuple[list[DicomSeries], dict[str, list[Path]]]:
    """Every image series in ``folder`` and its subfolders (any depth), and each folder's non-DICOM files."""
    found: list[DicomSeries] = []
    others: dict[str, list[Path]] = {}
    for root, dirs, _files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        items, non_dicom = dicom_folder_headers(root)
        series = group_dicom_series(items, folder=root, modality=modality)
        found.extend(series)
        if series:
            others[root] = non_dicom
    return found, others


def _description_matches(pattern: str, description: str) -> bool:
    if pattern.startswith("re:"):
        return re.search(pattern[3:], description, flags=re.IGNORECASE) is not None
    return pattern.casefold() in description.casefold()


def _filters_text(series_uid: str | None, modality: str | None, series_description: str | None) -> str:
    parts = [f"{name}={value!r}" for name, value in (("series_uid", series_uid), ("modality", modality),
                                                       ("series_description", series_description)) if value]
    return ", ".join(parts)


def select_dicom_series(candidates: list[DicomSeries], *, series_uid: str | None = None,
                        modality: str | None = None, series_description: str | None = None) -> list[DicomSeries]:
    """The candidates that match every filter given: ``series_uid`` exactly, ``modality`` case-insensitively,
    ``series_description`` as a case-insensitive substring or, written ``'re:<pattern>'``, a regular expression
    searched case-insensitively."""
    chosen = candidates
    if series_uid is not None:
        chosen = [s for s in chosen if s.uid == series_uid]
    if modality is not None:
        chosen = [s for s in chosen if s.modality.upper() == modality.upper()]
    if series_description is not None:
        chosen = [s for s in chosen if _description_matches(series_description, s.description)]
    return chosen


def _clean_filter(name: str, value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    if name == "series_description" and text.startswith("re:"):
        try:
            re.compile(text[3:])
        except re.error as exc:
            raise SettingsError(f"series_description={text!r}: not a valid regular expression ({exc}); write "
                                f"'re:<pattern>' with a Python regular expression, or give a plain substring") from exc
    return text


def find_dicom_series(path: PathLike, *, series_uid: str | None = None, modality: str | None = None,
                      series_description: str | None = None) -> DicomSeries:
    """The one DICOM image series ``path`` names, found as :func:`read_image` finds it: a series folder, a study or
    patient folder holding exactly one series that matches the filters (subfolders are searched), or one file of a
    series (its whole series in that folder). Headers only; files sorted along the slice normal.

    Raises :class:`ImageReadError` listing every candidate when several match, and when none does.
    """
    return _find_series(Path(path), _clean_filter("series_uid", series_uid), _clean_filter("modality", modality),
                        _clean_filter("series_description", series_description))[0]


def _find_series(path: Path, series_uid: str | None, modality: str | None,
                 series_description: str | None) -> tuple[DicomSeries, list[Path]]:
    """The one image series a path names (a series, study or patient folder, or one file of a series), and the
    non-DICOM files of its folder."""
    from radiobio.dicom.source import read_header

    filters = _filters_text(series_uid, modality, series_description)
    if path.is_file():
        header = read_header(path)
        if header is None:
            raise ImageReadError(f"{path}: not a DICOM file nor an image format SimpleITK reads")
        found = _dicom_text(header, "Modality")
        if not is_image_header(header, modality=modality):
            if found.upper() == "RTDOSE":
                raise ImageReadError(f"{path}: a DICOM RTDOSE dose grid, not an image series; read it with "
                                     f"modality='RTDOSE' if you mean the dose grid")
            raise ImageReadError(f"{path}: a DICOM {found or 'non-image'} object, not an image; give the image "
                                 f"series it belongs to (an RTSTRUCT or SEG goes in a mask column)")
        items, others = dicom_folder_headers(path.parent)
        candidates = [s for s in group_dicom_series(items, folder=path.parent, modality=modality)
                      if str(path) in s.files or os.path.abspath(path) in map(os.path.abspath, s.files)]
        if not candidates:  # the file's own header was readable, the folder listing did not show it
            candidates = group_dicom_series([(path, header)], folder=path.parent, modality=modality)
        chosen = select_dicom_series(candidates, series_uid=series_uid, modality=modality,
                                     series_description=series_description)
        if not chosen:
            raise ImageReadError(f"{path}: this file's series does not match {filters}:\n"
                                 f"{_series_listing(candidates)}\ngive the file or folder of the series you mean, or "
                                 f"leave the filters empty")
        return chosen[0], others
    candidates, others_by_folder = _series_under(path, modality)
    if not candidates:
        raise ImageReadError(f"{path}: folder holds no DICOM series (in it or its subfolders); give an image file or "
                             f"a DICOM series folder")
    chosen = select_dicom_series(candidates, series_uid=series_uid, modality=modality,
                                 series_description=series_description)
    if not chosen:
        raise ImageReadError(f"{path}: holds no DICOM series with {filters}; it holds:\n"
                             f"{_series_listing(candidates, path)}")
    if len(chosen) > 1:
        which = f" matching {filters}" if filters else ""
        raise ImageReadError(f"{path}: folder holds {len(chosen)} DICOM series{which}:\n"
                             f"{_series_listing(chosen, path)}\n{_SELECT_HINT}")
    return chosen[0], others_by_folder.get(chosen[0].folder, [])


# ---------------------------------------------------------------------------------------------------------------
# DICOM slice geometry


@dataclass(frozen=True)
class SliceGeometry:
    """The slice grid of a DICOM series as checked by :func:`check_slice_geometry`.

    ``order`` sorts the slices (files or frames) along the normal; ``positions`` are their positions along it (mm,
    ascending); ``step`` is the slice spacing (mm): the mean step (first to last slice over ``n - 1``), or 0 for one
    slice; ``notes`` are the warned, documented handlings (uneven spacing).
    """

    order: tuple[int, ...]
    positions: tuple[float, ...]
    step: float
    notes: tuple[str, ...]


def check_slice_geometry(positions: list, *, orientations: list, frames_of_reference: list[str] | None = None,
                         tilt: float = 0.0, where: str = "DICOM series") -> SliceGeometry:
    """Check the slices of one DICOM series from ImagePositionPatient (``positions``, mm), ImageOrientationPatient
    and FrameOfReferenceUID of every slice; ``tilt`` is GantryDetectorTilt (degrees); ``where`` names the series in
    messages.

    Raises :class:`GeometryError` for several frames of reference, mixed orientations, slice positions that do not
    lie along the slice normal (gantry tilt or a sheared grid: radiobio does not resample such series; a non-zero
    GantryDetectorTilt whose slices do lie along the normal of their (tilted) planes is a regular oblique grid and is
    read), two slices at one position, and missing slices (a step larger than 1.5 × the median step; the message
    names the positions around each gap in mm and how many slices are missing). Steps that differ from the median by
    more than 1 % without a gap are read as they are, with the mean step as the slice spacing, and noted in
    ``notes`` (warned as :class:`~radiobio.errors.DicomWarning` by :func:`read_image`).
    """
    count = len(positions)
    frames_of_reference = list(frames_of_reference or [])
    if count == 0:
        raise GeometryError(f"{where}: the DICOM series has no slices")
    uids = sorted({uid for uid in frames_of_reference if uid})
    if len(uids) > 1:
        counts = {uid: sum(1 for u in frames_of_reference if u == uid) for uid in uids}
        listing = ", ".join(f"{uid!r} ({n} slices)" for uid, n in counts.items())
        raise GeometryError(f"{where}: one DICOM series with {len(uids)} frames of reference (FrameOfReferenceUID "
                            f"(0020,0052): {listing}); its slices do not share one patient coordinate system. Split "
                            f"the series into one folder per frame of reference")
    try:
        points = np.asarray(positions, dtype=float).reshape(count, 3)
        cosines = np.asarray(orientations, dtype=float).reshape(count, 6)
    except (TypeError, ValueError) as exc:
        raise GeometryError(f"{where}: a slice lacks ImagePositionPatient (0020,0032) or ImageOrientationPatient "
                            f"(0020,0037), or holds a malformed one ({exc}); the slice grid cannot be built") from exc
    distinct = [cosines[0]]
    for row in cosines[1:]:
        if not any(np.abs(row - seen).max() <= _ORIENTATION_TOLERANCE for seen in distinct):
            distinct.append(row)
    if len(distinct) > 1:
        shown = "; ".join(_format_tuple(v, 3) for v in distinct[:4])
        raise GeometryError(f"{where}: the DICOM series mixes {len(distinct)} slice orientations "
                            f"(ImageOrientationPatient {shown}), e.g. a localiser with axial, coronal and sagittal "
                            f"planes; a 3D volume needs one orientation. Give a series acquired in one plane, or split "
                            f"its files by orientation into separate folders")
    normal = np.cross(cosines[0][:3], cosines[0][3:])
    along = points @ normal
    order = np.argsort(along, kind="stable")
    along = along[order]
    if count == 1:
        return SliceGeometry(order=(0,), positions=(float(along[0]),), step=0.0, notes=())
    steps = np.diff(along)
    median = float(np.median(steps))
    duplicate = np.nonzero(steps <= max(1e-4, 1e-3 * abs(median)))[0]
    if duplicate.size:
        at = ", ".join(_format_number(float(along[i]), 3) for i in duplicate[:5])
        raise GeometryError(f"{where}: {duplicate.size} pair(s) of slices share a position along the slice normal "
                            f"(at {at} mm): the series holds several images per position (time points, echoes, "
                            f"duplicates). Keep one image per position, or split them into separate series folders")
    offsets = points[order] - points[order][0]
    perpendicular = np.linalg.norm(offsets - np.outer(offsets @ normal, normal), axis=1)
    extent = float(along[-1] - along[0])
    if perpendicular.max() > _SHEAR_ROUNDING + _SHEAR_TOLERANCE * extent:
        worst = int(np.argmax(perpendicular))
        angle = math.degrees(math.atan2(float(perpendicular[worst]), float(along[worst] - along[0])))
        tilt_text = f" (GantryDetectorTilt (0018,1120) = {_format_number(tilt, 3)}°)" if tilt else ""
        raise GeometryError(f"{where}: the slice positions do not lie along the slice normal: they drift "
                            f"{_format_number(float(perpendicular.max()), 3)} mm sideways, a slant of "
                            f"{_format_number(angle, 2)}° from the normal{tilt_text}. This is a gantry-tilted or "
                            f"sheared acquisition; read as a rectangular grid every slice would be misplaced, and "
                            f"radiobio does not resample it. Correct the tilt first (e.g. dcm2niix, which writes a "
                            f"tilt-corrected NIfTI, or 3D Slicer's acquisition geometry regularisation) and give the "
                            f"corrected image")
    gaps = np.nonzero(steps > _GAP_FACTOR * median)[0]
    if gaps.size:
        described = []
        total = 0
        for i in gaps:
            missing = max(1, int(round(float(steps[i]) / median)) - 1)
            total += missing
            below, above = _format_number(float(along[i]), 3), _format_number(float(along[i + 1]), 3)
            described.append(f"between {below} and {above} mm (~{missing} slice{'s' if missing != 1 else ''} "
                             f"missing)")
        raise GeometryError(f"{where}: missing slices: {count} slices with a median step of "
                            f"{_format_number(median, 3)} mm, but a gap {'; a gap '.join(described)}; about "
                            f"{total} slice(s) are missing in all. "
                            f"Export the complete series again (or give only a contiguous run of slices)")
    notes: list[str] = []
    variation = float(np.abs(steps - median).max() / median)
    mean_step = float((along[-1] - along[0]) / (count - 1))
    if variation > _UNEVEN_STEP:
        notes.append(f"{where}: uneven slice spacing: steps from {_format_number(float(steps.min()), 3)} to "
                     f"{_format_number(float(steps.max()), 3)} mm (median {_format_number(median, 3)} mm, "
                     f"{_format_number(100 * variation, 1)} % off); read with the mean step "
                     f"{_format_number(mean_step, 4)} mm as the slice spacing")
    return SliceGeometry(order=tuple(int(i) for i in order), positions=tuple(float(v) for v in along),
                         step=mean_step, notes=tuple(notes))


def series_geometry(series: DicomSeries) -> SliceGeometry:
    """Check the slice grid of a series found by :func:`dicom_series_info` (see :func:`check_slice_geometry`); a
    multi-frame file is checked frame by frame (PerFrameFunctionalGroupsSequence / SharedFunctionalGroupsSequence)."""
    where = series.files[0] if series.frames > 1 and len(series.files) == 1 else series.folder or series.files[0]
    headers = series.headers
    if len(headers) == 1 and series.frames > 1:
        positions, orientations, frames = _frame_geometry(headers[0], where)
        return check_slice_geometry(positions, orientations=orientations, frames_of_reference=frames, where=where)
    positions, orientations, frames = [], [], []
    tilt = 0.0
    for file, header in zip(series.files, headers, strict=True):
        if "ImagePositionPatient" not in header or "ImageOrientationPatient" not in header:
            if len(headers) == 1:
                return SliceGeometry(order=(0,), positions=(0.0,), step=0.0, notes=())
            raise GeometryError(f"{file}: the slice has no ImagePositionPatient (0020,0032) or ImageOrientationPatient "
                                f"(0020,0037); the series' slice grid cannot be built (a secondary capture or a "
                                f"scout?). Give a series whose slices carry their position")
        positions.append(list(header.ImagePositionPatient))
        orientations.append(list(header.ImageOrientationPatient))
        frames.append(_dicom_text(header, "FrameOfReferenceUID"))
        try:
            tilt = tilt or float(header.get("GantryDetectorTilt", 0) or 0)
        except (TypeError, ValueError):
            pass
    return check_slice_geometry(positions, orientations=orientations, frames_of_reference=frames, tilt=tilt,
                                where=where)


def _frame_geometry(header: object, where: str) -> tuple[list, list, list[str]]:
    shared = header.get("SharedFunctionalGroupsSequence")  # type: ignore[attr-defined]
    shared_item = shared[0] if shared else None
    per_frame = header.get("PerFrameFunctionalGroupsSequence") or []  # type: ignore[attr-defined]
    frame_uid = _dicom_text(header, "FrameOfReferenceUID")

    def pick(item: object, sequence: str, keyword: str) -> object:
        for source in (item, shared_item):
            if source is not None and sequence in source and source[sequence].value:
                value = source[sequence].value[0].get(keyword)
                if value is not None:
                    return value
        return header.get(keyword)  # type: ignore[attr-defined]

    positions, orientations = [], []
    for index, item in enumerate(per_frame):
        position = pick(item, "PlanePositionSequence", "ImagePositionPatient")
        orientation = pick(item, "PlaneOrientationSequence", "ImageOrientationPatient")
        if position is None or orientation is None:
            raise GeometryError(f"{where}: frame {index + 1} of the multi-frame image has no PlanePositionSequence or "
                                f"PlaneOrientationSequence; the frames cannot be placed in patient space")
        positions.append(list(position))
        orientations.append(list(orientation))
    if not positions and "GridFrameOffsetVector" in header and "ImagePositionPatient" in header \
            and "ImageOrientationPatient" in header:  # type: ignore[operator]
        # a legacy multi-frame grid (RTDOSE): frames offset along the normal from the first (mm)
        orientation = [float(v) for v in header.ImageOrientationPatient]  # type: ignore[attr-defined]
        normal = np.cross(orientation[:3], orientation[3:])
        start = np.asarray(header.ImagePositionPatient, dtype=float)  # type: ignore[attr-defined]
        offsets = [float(v) for v in header.GridFrameOffsetVector]  # type: ignore[attr-defined]
        positions = [list(start + offset * normal) for offset in offsets]
        orientations = [orientation] * len(positions)
    if not positions:
        raise GeometryError(f"{where}: the multi-frame image has no PerFrameFunctionalGroupsSequence (5200,9230); "
                            f"its frames cannot be placed in patient space")
    return positions, orientations, [frame_uid] * len(positions)


def _read_dicom(path: Path, series_uid: str | None, modality: str | None, series_description: str | None) -> sitk.Image:
    series, others = _find_series(path, series_uid, modality, series_description)
    multi_frame = series.frames > 1 and len(series.files) == 1
    if others and not multi_frame:  # a multi-frame file holds its whole series: other files beside it do not matter
        names = ", ".join(str(p) for p in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ImageReadError(f"{series.folder}: the DICOM series folder also holds {len(others)} file(s) that are not "
                             f"DICOM: {names}; move them out of the series folder (hidden files and DICOMDIR are "
                             f"skipped)")
    geometry = series_geometry(series)
    for note in geometry.notes:
        warnings.warn(note, DicomWarning, stacklevel=3)
    with itk_warnings_hidden():
        if multi_frame:
            image = sitk.ReadImage(series.files[0])
            ordered = list(geometry.order)
            if ordered != sorted(ordered) and ordered != sorted(ordered, reverse=True):
                raise GeometryError(f"{series.files[0]}: the frames of the multi-frame image are not stored in "
                                    f"position order; convert it to single-frame files (e.g. dcmqi or highdicom's "
                                    f"legacy conversion) and give their folder")
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(list(series.files))
            image = reader.Execute()
    if multi_frame:
        _check_frames_placed(image, geometry, series.files[0])
    if image.GetDimension() == 3 and image.GetSize()[2] > 1 and geometry.step > 0:
        spacing = list(image.GetSpacing())
        if not math.isclose(spacing[2], geometry.step, rel_tol=1e-4):
            spacing[2] = geometry.step
            image.SetSpacing(spacing)
    return image


def _check_frames_placed(image: sitk.Image, geometry: SliceGeometry, file: str) -> None:
    """The multi-frame image as read lies where its per-frame positions say (ITK places frames from the first)."""
    if image.GetDimension() != 3 or image.GetSize()[2] != len(geometry.positions):
        raise ImageReadError(f"{file}: the multi-frame image was read as {image.GetSize()} voxels but has "
                             f"{len(geometry.positions)} frames; it cannot be read as one volume")
    matrix = _direction_matrix(image)
    normal = np.cross(matrix[:, 0], matrix[:, 1])  # the normal of the frames' planes, as in check_slice_geometry
    read = np.sort([float(np.dot(image.TransformIndexToPhysicalPoint((0, 0, k)), normal))
                    for k in range(image.GetSize()[2])])
    expected = np.sort(np.asarray(geometry.positions, dtype=float))
    tolerance = 0.01 * max(geometry.step, 1e-3) + 1e-3
    if read.size > 1 and np.abs(read - expected).max() > tolerance:
        raise GeometryError(f"{file}: SimpleITK places the frames of this multi-frame image at "
                            f"{_format_tuple(read, 3)} mm along the normal, but its per-frame positions are "
                            f"{_format_tuple(expected, 3)} mm; convert it to single-frame files (e.g. with highdicom "
                            f"or dcmqi) and give their folder")


# ---------------------------------------------------------------------------------------------------------------
# Reading


def read_image(path: PathLike, *, series_uid: str | None = None, modality: str | None = None,
               series_description: str | None = None) -> sitk.Image:
    """Read an image from a file (NIfTI, NRRD, MHA, any SimpleITK format) or a DICOM series.

    Spacing is in mm, origin in mm; DICOM pixel values have RescaleSlope and RescaleIntercept applied (CT in HU).
    A DICOM ``path`` may be a series folder, a study or patient folder holding exactly one matching series in it or
    in its subfolders, one file of a series (the whole series in that file's folder is read; a series of one file
    is a one-slice image) or a multi-frame (enhanced) CT/MR file. Several candidate series are chosen among with
    ``series_uid`` (SeriesInstanceUID), ``modality`` (e.g. ``"CT"``, case-insensitive) and ``series_description``
    (a case-insensitive substring, or ``'re:<pattern>'``, a regular expression); ``None``, ``""`` or NaN mean "no
    filter" (empty cohort cells). The error for several candidates lists each (number, description, modality,
    file count, folder). SEG, RTSTRUCT and other non-image objects are never candidates (RTDOSE only with
    ``modality="RTDOSE"``). For a file that is not DICOM, ``modality`` and ``series_description`` (which describe
    the scan in a cohort) choose nothing; ``series_uid`` is refused.

    Every DICOM series read is checked from its headers (:func:`check_slice_geometry`): missing slices, gantry tilt
    or sheared slices, mixed orientations, several frames of reference and duplicate positions raise
    :class:`GeometryError`; an uneven slice spacing (steps > 1 % apart, no gap) is read with the mean step as the
    slice spacing and warned as :class:`~radiobio.errors.DicomWarning`. A non-DICOM file in the series folder raises
    :class:`ImageReadError` naming it (hidden files and ``DICOMDIR`` are skipped).
    Raises :class:`ImageReadError` for a missing, unreadable or truncated file, a folder without a series and an
    ambiguous choice, and :class:`GeometryError` for an image whose spacing is NaN, infinite or not positive,
    including a NIfTI header whose ``pixdim`` is zero or NaN (which ITK alone reads as 1 mm).
    """
    series_uid = _clean_filter("series_uid", series_uid)
    modality = _clean_filter("modality", modality)
    series_description = _clean_filter("series_description", series_description)
    path = Path(path)
    if not path.exists():
        if os.path.islink(path):
            raise ImageReadError(f"{path}: a broken symbolic link or a symlink loop; point it at the image")
        raise ImageReadError(f"{path}: no such file or folder; check the path (relative paths resolve against the "
                             f"cohort manifest's folder)")
    nifti_version = None
    try:
        if path.is_dir():
            image = _read_dicom(path, series_uid, modality, series_description)
        else:
            name = path.name.lower()
            if name.endswith((".nii", ".nii.gz")):
                nifti_version = check_nifti_header(path)
            elif name.endswith(".hdr"):  # NIfTI-1 / Analyze pair: the header lies beside the data
                nifti_version = check_nifti_header(path, check_size=False)
            if name.endswith(_NON_DICOM_SUFFIXES) or not _looks_like_dicom(path):
                if series_uid is not None:  # modality and description describe the scan; only a UID must match
                    raise ImageReadError(f"{path}: series_uid={series_uid!r} selects a DICOM series, but this is not "
                                         f"a DICOM file; leave series_uid empty for it")
                image = sitk.ReadImage(str(path))
            else:
                image = _read_dicom(path, series_uid, modality, series_description)
    except (ImageReadError, GeometryError, SettingsError):
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


def _looks_like_dicom(path: Path) -> bool:
    """A file with the DICM prefix, or one that parses as a DICOM header (older exports without preamble)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    from radiobio.dicom.source import read_header

    return read_header(path) is not None


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
