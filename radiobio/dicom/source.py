"""The source series of a DICOM RTSTRUCT or SEG: its headers, its voxel grid and its identity.

A structure set or a segmentation refers to the images it was drawn on by SOP Instance UID, and lies on their
voxel grid. :class:`SourceSeries` holds one single-frame image series read header-only with pydicom (no pixel
data), its slices sorted along the slice normal, so that readers can rasterise contours onto the grid SimpleITK
reads the same series onto, and writers can reference every slice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radiobio.errors import ImageReadError

PathLike = str | os.PathLike

#: Image storage SOP classes (the ones a mask can be drawn on) are recognised by having pixel geometry tags.
_GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")

#: Identity tags a written RTSTRUCT or SEG copies from its source, with their (group,element) for messages.
REQUIRED_UIDS = {
    "SOPClassUID": "(0008,0016)",
    "SOPInstanceUID": "(0008,0018)",
    "StudyInstanceUID": "(0020,000D)",
    "SeriesInstanceUID": "(0020,000E)",
    "FrameOfReferenceUID": "(0020,0052)",
}


def read_header(path: PathLike) -> Dataset | None:
    """Read one file's DICOM header without pixel data; ``None`` when the file is not DICOM.

    Files without the 128-byte preamble and ``DICM`` prefix (older exports) are read too when they parse into a
    dataset that has a SOP Class UID or a Modality.
    """
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        pass
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
        return None
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - pydicom raises anything on arbitrary bytes read with force=True
        return None
    try:
        if "SOPClassUID" in dataset or "Modality" in dataset:
            return dataset
    except Exception:  # noqa: BLE001 - a forced parse of non-DICOM bytes can fail on first access
        return None
    return None


def text(dataset: Dataset, keyword: str) -> str:
    """The value of ``keyword`` in ``dataset`` as stripped text; ``""`` when absent or empty."""
    value = dataset.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


@dataclass(frozen=True)
class SourceSeries:
    """One single-frame DICOM image series, header only, slices sorted along the slice normal.

    ``origin`` (mm), ``spacing`` (mm, x = column step, y = row step, z = slice step) and ``direction`` (row-major
    3×3, columns: row cosine, column cosine, slice normal) describe the same grid SimpleITK reads the series onto.
    """

    folder: Path
    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]
    size: tuple[int, int, int]

    @property
    def series_uid(self) -> str:
        """SeriesInstanceUID (0020,000E) of the series; ``""`` when empty."""
        return text(self.headers[0], "SeriesInstanceUID")

    @property
    def frame_of_reference_uid(self) -> str:
        """FrameOfReferenceUID (0020,0052); ``""`` when empty."""
        return text(self.headers[0], "FrameOfReferenceUID")

    @property
    def sop_instance_uids(self) -> tuple[str, ...]:
        """SOPInstanceUID of every slice, in slice order."""
        return tuple(text(h, "SOPInstanceUID") for h in self.headers)

    @property
    def slice_positions(self) -> np.ndarray:
        """Position of every slice along the slice normal (mm), ascending."""
        normal = np.asarray(self.direction, dtype=float).reshape(3, 3)[:, 2]
        return np.array([float(np.dot(np.asarray(h.ImagePositionPatient, dtype=float), normal))
                         for h in self.headers])

    def slice_index(self, sop_instance_uid: str) -> int | None:
        """Index (0-based, along the slice normal) of the slice with this SOP Instance UID; ``None`` if absent."""
        try:
            return self.sop_instance_uids.index(str(sop_instance_uid).strip())
        except ValueError:
            return None

    def reference_image(self) -> sitk.Image:
        """An empty UInt8 image on the series' grid (for masks and geometry checks)."""
        image = sitk.Image([int(v) for v in self.size], sitk.sitkUInt8)
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image

    def physical_to_index(self, points_mm: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (x, y, z) of patient-space points (N×3, mm)."""
        matrix = np.asarray(self.direction, dtype=float).reshape(3, 3)
        offsets = np.asarray(points_mm, dtype=float) - np.asarray(self.origin)
        return (offsets @ matrix) / np.asarray(self.spacing)

    def index_to_physical(self, indices: np.ndarray) -> np.ndarray:
        """Patient-space points (mm) of continuous voxel indices (N×3, x, y, z)."""
        matrix = np.asarray(self.direction, dtype=float).reshape(3, 3)
        return np.asarray(self.origin) + (np.asarray(indices, dtype=float) * np.asarray(self.spacing)) @ matrix.T

    def missing_uids(self) -> list[str]:
        """The identity tags (``"SOPInstanceUID (0008,0018)"``...) that are empty in some slice of the series."""
        missing = []
        for keyword, tag in REQUIRED_UIDS.items():
            if any(not text(h, keyword) for h in self.headers):
                missing.append(f"{keyword} {tag}")
        return missing

    def require_uids(self, purpose: str) -> None:
        """Raise :class:`ImageReadError` naming every empty identity tag; ``purpose`` says what needs them."""
        missing = self.missing_uids()
        if missing:
            raise ImageReadError(
                f"{self.folder}: the DICOM series has empty {', '.join(missing)}; {purpose} must reference its "
                f"source images by these UIDs. Give the series UIDs first (e.g. with pydicom: "
                f"ds.SOPInstanceUID = pydicom.uid.generate_uid() for every file, one SeriesInstanceUID and "
                f"StudyInstanceUID for all) or write the mask as NIfTI")


def read_source_series(path: PathLike, *, series_uid: str | None = None, modality: str | None = None,
                       series_description: str | None = None) -> SourceSeries:
    """Read the headers of a single-frame DICOM image series, found as :func:`radiobio.read_image` finds it: a series
    folder, a study or patient folder with exactly one matching series, or one file of the series (its whole series
    is read). ``series_uid``, ``modality`` and ``series_description`` choose among several series.

    The slice grid is checked as :func:`radiobio.read_image` checks it (missing slices, tilt, mixed orientations,
    several frames of reference raise :class:`GeometryError`), so the grid here is the grid the image is read onto.
    Raises :class:`ImageReadError` for a multi-frame image (RTSTRUCT and SEG written here reference single-frame
    series) and for slices without position, orientation or pixel spacing.
    """
    from radiobio.imaging import find_dicom_series, series_geometry

    series = find_dicom_series(path, series_uid=series_uid, modality=modality, series_description=series_description)
    if series.frames > 1 and len(series.files) == 1:
        raise ImageReadError(f"{series.files[0]}: a multi-frame (enhanced) image; structure sets and segmentations "
                             f"here reference single-frame series; convert it to single-frame files first")
    headers = list(series.headers) or [read_header(f) for f in series.files]
    for file, header in zip(series.files, headers, strict=True):
        if header is None or not all(tag in header for tag in _GEOMETRY_TAGS):
            raise ImageReadError(f"{file}: has no {', '.join(_GEOMETRY_TAGS)}; a mask cannot be placed on it")
    geometry = series_geometry(series)
    return _series_from_headers(Path(series.folder or Path(series.files[0]).parent),
                                [(Path(f), h) for f, h in zip(series.files, headers, strict=True)], geometry.step)


def _series_from_headers(folder: Path, items: list[tuple[Path, Dataset]], step: float) -> SourceSeries:
    """The grid of slices already sorted along the normal (as :func:`radiobio.imaging.find_dicom_series` gives)."""
    first = items[0][1]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    row_cosine, column_cosine = orientation[:3], orientation[3:]
    normal = np.cross(row_cosine, column_cosine)
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    if step <= 0:
        step = float(first.get("SpacingBetweenSlices", 0) or first.get("SliceThickness", 0) or 1.0)
    matrix = np.column_stack([row_cosine, column_cosine, normal])
    origin = tuple(float(v) for v in items[0][1].ImagePositionPatient)
    return SourceSeries(
        folder=folder, files=tuple(p for p, _ in items), headers=tuple(h for _, h in items),
        origin=origin,  # type: ignore[arg-type]
        spacing=(column_spacing, row_spacing, float(step)),
        direction=tuple(float(v) for v in matrix.flatten()),
        size=(int(first.Columns), int(first.Rows), len(items)),
    )
