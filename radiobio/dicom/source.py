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


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_source_series(path: PathLike, *, series_uid: str | None = None) -> SourceSeries:
    """Read the headers of a single-frame DICOM image series: a series folder, or any one file of the series
    (the whole series in its folder is then read).

    A folder of several series needs ``series_uid``. Raises :class:`ImageReadError` for a folder without image
    slices, several series without a choice, or slices without position, orientation or spacing.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such DICOM file or folder")
    wanted = series_uid
    if path.is_file():
        header = read_header(path)
        if header is None:
            raise ImageReadError(f"{path}: not a DICOM file")
        wanted = wanted or text(header, "SeriesInstanceUID") or None
        folder = path.parent
        candidates = _image_files(folder) if wanted is not None else [path]
    else:
        folder = path
        candidates = _image_files(folder)
    by_series: dict[str, list[tuple[Path, Dataset]]] = {}
    for file in candidates:
        header = read_header(file)
        if header is None or not all(tag in header for tag in _GEOMETRY_TAGS):
            continue
        if int(header.get("NumberOfFrames", 1) or 1) > 1:
            continue
        by_series.setdefault(text(header, "SeriesInstanceUID"), []).append((file, header))
    if wanted is not None:
        by_series = {uid: items for uid, items in by_series.items() if uid == wanted}
    if not by_series:
        which = f" of series_uid={wanted!r}" if wanted else ""
        raise ImageReadError(f"{path}: holds no single-frame DICOM image slices{which} (with position, orientation "
                             f"and pixel spacing); give the folder of the image series the masks lie on")
    if len(by_series) > 1:
        listing = "\n".join(f"  series_uid={uid!r}: {len(items)} files" for uid, items in by_series.items())
        raise ImageReadError(f"{path}: holds {len(by_series)} DICOM image series:\n{listing}\nchoose one with "
                             f"series_uid=...")
    items = next(iter(by_series.values()))
    return _sorted_series(folder, items)


def _sorted_series(folder: Path, items: list[tuple[Path, Dataset]]) -> SourceSeries:
    first = items[0][1]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    row_cosine, column_cosine = orientation[:3], orientation[3:]
    normal = np.cross(row_cosine, column_cosine)
    positions = [float(np.dot(np.asarray(h.ImagePositionPatient, dtype=float), normal)) for _, h in items]
    order = np.argsort(positions, kind="stable")
    items = [items[i] for i in order]
    positions = [positions[i] for i in order]
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    if len(items) > 1:
        slice_step = float(np.median(np.diff(positions)))
    else:
        slice_step = float(first.get("SpacingBetweenSlices", 0) or first.get("SliceThickness", 0) or 1.0)
    if slice_step <= 0:
        raise ImageReadError(f"{folder}: two slices of the series share the position {positions[0]:.3f} mm along the "
                             f"slice normal; the series holds duplicate slices")
    matrix = np.column_stack([row_cosine, column_cosine, normal])
    origin = tuple(float(v) for v in items[0][1].ImagePositionPatient)
    return SourceSeries(
        folder=folder, files=tuple(p for p, _ in items), headers=tuple(h for _, h in items),
        origin=origin,  # type: ignore[arg-type]
        spacing=(column_spacing, row_spacing, slice_step),
        direction=tuple(float(v) for v in matrix.flatten()),
        size=(int(first.Columns), int(first.Rows), len(items)),
    )
