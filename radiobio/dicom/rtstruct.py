"""DICOM RT Structure Sets (RTSTRUCT): list their ROIs, rasterise them onto the image series they were drawn on,
and write label maps back as RTSTRUCT for a planning system or a viewer.

Written directly on pydicom: rt-utils, platipy and dcmrtstruct2nii either pin pydicom < 3 or fail under it, and
rt-utils writes files that ``dciodvfy`` rejects (and loses area on small structures).

Contour convention (reader and writer alike): a voxel belongs to a ROI when its **centre** lies inside an odd number
of the ROI's closed contours on its slice (even-odd rule, so a contour inside another is a hole). The writer puts
contour points on **voxel edges**: it traces the boundary of every 2D region and of its holes along pixel edges and
drops collinear points, so a written mask read back gives exactly the same voxels.

Coordinates are patient-space millimetres (DICOM LPS); volumes are millilitres.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from radiobio.atomic import atomic_path
from radiobio.dicom.names import label_names, match_rois, standard_name
from radiobio.dicom.source import SourceSeries, read_header, read_source_series, text
from radiobio.errors import DicomWarning, GeometryError, ImageReadError, MaskError, SettingsError
from radiobio.imaging import as_label_map, check_geometry, geometry_differences, grid_axis_map, resample_mask

PathLike = str | os.PathLike

#: A contour plane may lie this fraction of the slice step away from a slice and still be put on it.
PLANE_TOLERANCE = 0.2
#: Study Component Management / Detached Study Management SOP Class referenced by RT Referenced Study items.
_STUDY_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"
_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 128, 0),
            (128, 0, 255), (0, 128, 255), (128, 255, 0), (255, 0, 128), (0, 255, 128))


@dataclass
class _Contour:
    kind: str
    points: np.ndarray  # N×3 mm
    sop_uids: tuple[str, ...]


@dataclass
class _Roi:
    number: int
    name: str
    frame_of_reference_uid: str
    contours: list[_Contour] = field(default_factory=list)

    @property
    def closed(self) -> list[_Contour]:
        return [c for c in self.contours if c.kind == "CLOSED_PLANAR"]


# ---------------------------------------------------------------------------------------------------------------
# Reading the structure set


def _read_dataset(rtstruct: PathLike | Dataset) -> tuple[Dataset, str]:
    if isinstance(rtstruct, Dataset):
        return rtstruct, str(getattr(rtstruct, "filename", None) or "RTSTRUCT dataset")
    path = Path(rtstruct)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such RTSTRUCT file")
    dataset = read_header(path)  # also reads files without the DICM preamble (pydicom's force=True)
    if dataset is None:
        raise ImageReadError(f"{path}: not a DICOM file; give an RTSTRUCT (RT Structure Set) file")
    if "SpecificCharacterSet" in dataset and not text(dataset, "SpecificCharacterSet"):
        del dataset.SpecificCharacterSet  # an empty value means the default character set (ISO-IR 6)
    modality = text(dataset, "Modality").upper()
    if "StructureSetROISequence" not in dataset or (modality and modality != "RTSTRUCT"):
        raise ImageReadError(f"{path}: is a DICOM {modality or text(dataset, 'SOPClassUID') or 'file'}, not an "
                             f"RTSTRUCT (no Structure Set ROI Sequence (3006,0020)); give the RT Structure Set file")
    return dataset, str(path)


def _rois(dataset: Dataset, where: str) -> list[_Roi]:
    rois: dict[int, _Roi] = {}
    for item in dataset.get("StructureSetROISequence", []):
        try:
            number = int(item.ROINumber)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ImageReadError(f"{where}: a Structure Set ROI item has no ROI Number (3006,0022)") from exc
        frame = text(item, "ReferencedFrameOfReferenceUID")
        rois[number] = _Roi(number, text(item, "ROIName") or f"ROI {number}", frame)
    for item in dataset.get("ROIContourSequence", []):
        roi = rois.get(int(item.get("ReferencedROINumber", -1)))
        if roi is None:
            continue
        for contour in item.get("ContourSequence", []):
            data = contour.get("ContourData")
            if data is None or len(data) < 3:
                continue
            points = np.asarray([float(v) for v in data], dtype=float)
            if points.size % 3:
                raise ImageReadError(f"{where}: ROI {roi.name!r} has a contour with {points.size} Contour Data "
                                     f"(3006,0050) values, not a multiple of 3 (x, y, z)")
            uids = tuple(text(ref, "ReferencedSOPInstanceUID") for ref in contour.get("ContourImageSequence", []))
            kind = text(contour, "ContourGeometricType").upper() or "CLOSED_PLANAR"
            roi.contours.append(_Contour(kind, points.reshape(-1, 3), tuple(u for u in uids if u)))
    return list(rois.values())


def _referenced_series(dataset: Dataset) -> dict[str, str]:
    """Referenced series UID -> frame of reference UID, from the Referenced Frame of Reference Sequence."""
    found: dict[str, str] = {}
    for frame in dataset.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                uid = text(series, "SeriesInstanceUID")
                if uid:
                    found[uid] = text(frame, "FrameOfReferenceUID")
    return found


def _plane_normal(points: np.ndarray) -> np.ndarray:
    """Newell's normal of a polygon (length = twice its area, mm²)."""
    following = np.roll(points, -1, axis=0)
    return np.cross(points, following).sum(axis=0)


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Whether 2D ``point`` lies inside 2D ``polygon`` (crossing rule)."""
    x, y = point
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return bool(np.count_nonzero(crosses & (at > x)) % 2)


def _roi_volumes(rois: list[_Roi]) -> tuple[dict[int, float], dict[int, int]]:
    """Volume (mL) and number of contoured planes of every ROI, from its closed contours alone."""
    closed = [c for roi in rois for c in roi.closed if len(c.points) >= 3]
    if not closed:
        return {roi.number: 0.0 for roi in rois}, {roi.number: 0 for roi in rois}
    largest = max(closed, key=lambda c: float(np.linalg.norm(_plane_normal(c.points))))
    normal = _plane_normal(largest.points)
    normal = normal / (np.linalg.norm(normal) or 1.0)
    if normal[np.argmax(np.abs(normal))] < 0:
        normal = -normal
    u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    positions = np.unique(np.round([float(c.points[0] @ normal) for c in closed], 2))
    step = float(np.median(np.diff(positions))) if len(positions) > 1 else 0.0
    volumes, planes = {}, {}
    for roi in rois:
        by_plane: dict[float, list[np.ndarray]] = {}
        for contour in roi.closed:
            if len(contour.points) < 3:
                continue
            key = round(float(contour.points[0] @ normal), 2)
            by_plane.setdefault(key, []).append(contour.points)
        total = 0.0
        for polygons in by_plane.values():
            flat = [np.column_stack([p @ u, p @ v]) for p in polygons]
            for i, polygon in enumerate(polygons):
                area = 0.5 * abs(float(_plane_normal(polygon) @ normal))
                depth = sum(_inside(flat[i][0], flat[j]) for j in range(len(flat)) if j != i)
                total += area if depth % 2 == 0 else -area
        volumes[roi.number] = total * step / 1000.0
        planes[roi.number] = len(by_plane)
    return volumes, planes


def rtstruct_rois(rtstruct: PathLike | Dataset) -> pd.DataFrame:
    """One row per ROI of an RTSTRUCT, read from the structure set alone (no image series needed).

    Columns: ``roi_number``, ``roi_name``, ``label_name`` (TG-263 standard name when known, else the cleaned ROI
    name; the names :func:`read_rtstruct` gives with ``rois=None``), ``standard_name`` (``""`` when unknown),
    ``contours`` (number of contours), ``contour_types`` (e.g. ``"CLOSED_PLANAR"``, comma-separated),
    ``slices`` (planes with a closed contour), ``frame_of_reference_uid``, ``series_uid`` (the image series the
    structure set references for that frame of reference), ``volume_ml``: the sum over closed contours of their
    shoelace area (mm², a contour inside an odd number of others of the same ROI on its plane is a hole) times
    the spacing of the contour planes (mm; the median step between the planes of the whole structure set), in mL.
    """
    dataset, where = _read_dataset(rtstruct)
    rois = _rois(dataset, where)
    volumes, planes = _roi_volumes(rois)
    series_by_frame: dict[str, str] = {}
    for series_uid, frame_uid in _referenced_series(dataset).items():
        series_by_frame.setdefault(frame_uid, series_uid)
    labels = label_names([roi.name for roi in rois])
    rows = []
    for roi, label in zip(rois, labels):
        rows.append({
            "roi_number": roi.number, "roi_name": roi.name, "label_name": label,
            "standard_name": standard_name(roi.name) or "",
            "contours": len(roi.contours),
            "contour_types": ",".join(sorted({c.kind for c in roi.contours})),
            "slices": planes[roi.number],
            "frame_of_reference_uid": roi.frame_of_reference_uid,
            "series_uid": series_by_frame.get(roi.frame_of_reference_uid, ""),
            "volume_ml": volumes[roi.number],
        })
    columns = ["roi_number", "roi_name", "label_name", "standard_name", "contours", "contour_types", "slices",
               "frame_of_reference_uid", "series_uid", "volume_ml"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------------------------------------------
# RTSTRUCT -> masks


def _source(series: PathLike | SourceSeries, series_uid: str | None, referenced: Mapping[str, str]) -> SourceSeries:
    if isinstance(series, SourceSeries):
        return series
    if series_uid is None and len(referenced) == 1 and Path(series).is_dir():
        try:
            return read_source_series(series, series_uid=next(iter(referenced)))
        except ImageReadError:
            pass  # read it as given: the reference check below names what the folder holds
    return read_source_series(series, series_uid=series_uid)


def _check_references(where: str, dataset: Dataset, source: SourceSeries, rois: list[_Roi]) -> None:
    referenced = _referenced_series(dataset)
    series_uid, frame_uid = source.series_uid, source.frame_of_reference_uid
    if referenced and series_uid:
        if series_uid in referenced:
            frame = referenced[series_uid] or next((r.frame_of_reference_uid for r in rois), "")
            if frame and frame_uid and frame != frame_uid:
                warnings.warn(f"{where}: references series {series_uid} in frame of reference {frame}, but the "
                              f"series' images carry frame of reference {frame_uid}; contours are placed by the "
                              f"series reference", DicomWarning, stacklevel=3)
            return
        raise ImageReadError(
            f"{where}: the structure set references image series {', '.join(referenced)}, not the series given "
            f"({source.folder}, SeriesInstanceUID {series_uid}); give the folder of the referenced series (or "
            f"series_uid= to pick it in a folder of several)")
    frames = {r.frame_of_reference_uid for r in rois if r.frame_of_reference_uid} | {
        f for f in referenced.values() if f}
    if frame_uid and frames and frame_uid not in frames:
        raise ImageReadError(
            f"{where}: the structure set lies in frame of reference {', '.join(sorted(frames))}, not in the series' "
            f"frame of reference {frame_uid} ({source.folder}); give the image series the contours were drawn on")


def _slice_of(where: str, roi: _Roi, contour: _Contour, source: SourceSeries, positions: np.ndarray,
              normal: np.ndarray, step: float) -> int:
    for uid in contour.sop_uids:
        index = source.slice_index(uid)
        if index is not None:
            return index
    if contour.sop_uids:
        raise ImageReadError(
            f"{where}: a contour of ROI {roi.name!r} references image SOP Instance UID {contour.sop_uids[0]}, "
            f"which is not in the series {source.folder} (SeriesInstanceUID {source.series_uid or 'empty'}); "
            f"give the complete image series the structure set was drawn on")
    position = float(np.mean(contour.points @ normal))
    nearest = int(np.argmin(np.abs(positions - position)))
    if abs(positions[nearest] - position) > PLANE_TOLERANCE * step + 1e-3:
        point = ", ".join(f"{v:.2f}" for v in contour.points[0])
        raise ImageReadError(
            f"{where}: a contour of ROI {roi.name!r} lies at {position:.2f} mm along the slice normal (first point "
            f"({point}) mm), {abs(positions[nearest] - position):.2f} mm from the nearest slice of {source.folder} "
            f"(slices {positions[0]:.2f}..{positions[-1]:.2f} mm); give the image series the contours were drawn on")
    return nearest


def _fill_slice(polygons: list[np.ndarray], rows: int, columns: int) -> np.ndarray:
    """Even-odd fill of 2D polygons (continuous voxel indices x, y) on a rows × columns slice: a voxel is inside
    when its centre lies inside an odd number of polygons (crossings of the ray from the centre towards -x)."""
    x0 = np.concatenate([p[:, 0] for p in polygons])
    y0 = np.concatenate([p[:, 1] for p in polygons])
    x1 = np.concatenate([np.roll(p[:, 0], -1) for p in polygons])
    y1 = np.concatenate([np.roll(p[:, 1], -1) for p in polygons])
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.clip(np.ceil(low), 0, rows).astype(np.int64)  # rows j with low <= j < high
    last = np.clip(np.ceil(high), 0, rows).astype(np.int64)
    count = np.maximum(last - first, 0)
    keep = count > 0
    if not keep.any():
        return np.zeros((rows, columns), dtype=bool)
    x0, y0, x1, y1, first, count = x0[keep], y0[keep], x1[keep], y1[keep], first[keep], count[keep]
    edge = np.repeat(np.arange(len(count)), count)
    offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    row = first[edge] + offsets
    crossing = x0[edge] + (row - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    column = np.clip(np.floor(crossing).astype(np.int64) + 1, 0, columns)  # voxels with x > crossing toggle
    toggles = np.bincount(row * (columns + 1) + column, minlength=rows * (columns + 1)).reshape(rows, columns + 1)
    return (np.cumsum(toggles[:, :columns], axis=1) % 2).astype(bool)


def read_rtstruct(rtstruct: PathLike | Dataset, series: PathLike | SourceSeries, *,
                  rois: str | Sequence[str] | Mapping[str, str] | None = None,
                  series_uid: str | None = None) -> dict[str, sitk.Image]:
    """Rasterise the ROIs of an RTSTRUCT onto its image series: ``{label_name: binary UInt8 mask}`` on the grid
    SimpleITK reads ``series`` onto (a series folder, any one file of it, or a :class:`SourceSeries`;
    ``series_uid`` picks a series in a folder of several, default: the one the structure set references).

    ``rois`` chooses ROIs and their label names (:func:`radiobio.dicom.names.match_rois`): ``None`` = every ROI
    with contours, named by TG-263 standard name when known; a list of names or patterns (exact, ``'re:<regex>'``
    or a TG-263 name such as ``'GTVp'`` matching 'GTV-1'); or ``{label_name: pattern}``.

    Contours go to the slice their Contour Image Sequence references, else to the slice whose plane they lie on
    (within 0.2 slice steps); oblique series are handled through the series' direction cosines. A voxel is in the
    mask when its centre lies inside an odd number of the ROI's closed contours on its slice (holes by even-odd
    filling). POINT and OPEN_PLANAR contours are skipped with a :class:`DicomWarning`; with ``rois=None`` a ROI
    without closed contours is left out with a :class:`DicomWarning`.

    Raises :class:`MaskError` for a requested ROI without closed contours or a pattern matching no ROI (the message
    lists the ROIs), and :class:`ImageReadError` when the structure set references another series, another frame of
    reference, images missing from the series, or planes off the series' slices (naming the file, UID and fix).
    """
    dataset, where = _read_dataset(rtstruct)
    all_rois = _rois(dataset, where)
    by_name = {roi.name: roi for roi in all_rois}
    chosen = match_rois([roi.name for roi in all_rois], rois)
    source = _source(series, series_uid, _referenced_series(dataset))
    _check_references(where, dataset, source, [by_name[name] for name in chosen.values()])
    columns, rows, depth = source.size
    normal = np.asarray(source.direction, dtype=float).reshape(3, 3)[:, 2]
    positions = source.slice_positions
    step = float(source.spacing[2])
    masks: dict[str, sitk.Image] = {}
    for label, name in chosen.items():
        roi = by_name[name]
        skipped = sorted({c.kind for c in roi.contours if c.kind != "CLOSED_PLANAR"})
        if skipped:
            count = len(roi.contours) - len(roi.closed)
            warnings.warn(f"{where}: ROI {name!r}: {count} {'/'.join(skipped)} contour(s) skipped; only "
                          f"CLOSED_PLANAR contours enclose voxels", DicomWarning, stacklevel=2)
        closed = [c for c in roi.closed if len(c.points) >= 3]
        if not closed:
            if rois is None:
                warnings.warn(f"{where}: ROI {name!r} has no closed contours; left out", DicomWarning, stacklevel=2)
                continue
            raise MaskError(f"{where}: ROI {name!r} has no closed contours (it is empty in the structure set); "
                            f"choose another ROI: {', '.join(repr(r.name) for r in all_rois if r.closed)}")
        per_slice: dict[int, list[np.ndarray]] = {}
        for contour in closed:
            index = _slice_of(where, roi, contour, source, positions, normal, step)
            per_slice.setdefault(index, []).append(source.physical_to_index(contour.points)[:, :2])
        volume = np.zeros((depth, rows, columns), dtype=np.uint8)
        for index, polygons in per_slice.items():
            volume[index] = _fill_slice(polygons, rows, columns)
        image = sitk.GetImageFromArray(volume)
        image.CopyInformation(source.reference_image())
        masks[label] = image
    return masks


# ---------------------------------------------------------------------------------------------------------------
# Masks -> RTSTRUCT


def _trace(region: np.ndarray) -> list[np.ndarray]:
    """Closed loops along the pixel edges bounding ``region`` (rows × columns, bool): outer boundaries and holes,
    as arrays of corner coordinates (x, y; pixel (i, j) spans corners i..i+1, j..j+1), collinear points dropped."""
    padded = np.pad(region, 1)
    inner = padded[1:-1, 1:-1]
    starts, ends = [], []
    # each boundary side of a foreground pixel is an edge with the pixel on its left (screen view, y down)
    for (dy, dx), start, end in (((-1, 0), (1, 0), (0, 0)),   # top: (x+1, y) -> (x, y)
                                 ((1, 0), (0, 1), (1, 1)),    # bottom: (x, y+1) -> (x+1, y+1)
                                 ((0, -1), (0, 0), (0, 1)),   # left: (x, y) -> (x, y+1)
                                 ((0, 1), (1, 1), (1, 0))):   # right: (x+1, y+1) -> (x+1, y)
        neighbour = padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx]
        y, x = np.nonzero(inner & ~neighbour)
        starts.append(np.column_stack([x + start[0], y + start[1]]))
        ends.append(np.column_stack([x + end[0], y + end[1]]))
    start, end = np.concatenate(starts), np.concatenate(ends)
    if not len(start):
        return []
    width = region.shape[1] + 2
    start_key = start[:, 1] * width + start[:, 0]
    end_key = end[:, 1] * width + end[:, 0]
    order = np.argsort(start_key, kind="stable")
    sorted_keys = start_key[order]
    first = np.searchsorted(sorted_keys, end_key, side="left")
    count = np.searchsorted(sorted_keys, end_key, side="right") - first
    following = order[np.minimum(first, len(order) - 1)]
    saddles = np.nonzero(count == 2)[0]
    if len(saddles):
        direction = end - start
        a, b = order[first[saddles]], order[first[saddles] + 1]
        incoming = direction[saddles]
        turn_a = incoming[:, 0] * direction[a][:, 1] - incoming[:, 1] * direction[a][:, 0]
        following[saddles] = np.where(turn_a < 0, a, b)  # turn towards the pixel being walked round
    loops = []
    seen = np.zeros(len(start), dtype=bool)
    following_list = following.tolist()
    for edge in range(len(start)):
        if seen[edge]:
            continue
        path = []
        current = edge
        while not seen[current]:
            seen[current] = True
            path.append(current)
            current = following_list[current]
        points = start[path]
        before = points - np.roll(points, 1, axis=0)
        after = np.roll(points, -1, axis=0) - points
        corner = (before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]) != 0
        loops.append(points[corner].astype(float))
    return loops


def format_ds(value: float) -> str:
    """``value`` as a DICOM decimal string of at most 16 characters (as many decimals as fit, trailing zeros
    dropped)."""
    value = float(value)
    if not np.isfinite(value):
        raise SettingsError(f"cannot write {value} as a DICOM decimal string")
    for decimals in range(6, -1, -1):
        shown = f"{value:.{decimals}f}"
        if "." in shown:
            shown = shown.rstrip("0").rstrip(".")
        if shown in ("-0", ""):
            shown = "0"
        if len(shown) <= 16:
            return shown
    shown = f"{value:.9e}"
    return shown if len(shown) <= 16 else f"{value:.6e}"


def _interpreted_type(name: str) -> str:
    standard = standard_name(name) or ""
    for prefix, kind in (("GTV", "GTV"), ("CTV", "CTV"), ("ITV", "CTV"), ("PTV", "PTV")):
        if standard.startswith(prefix):
            return kind
    if standard == "External":
        return "EXTERNAL"
    return "ORGAN"


def _names(names: Mapping[int, str] | Sequence[str]) -> dict[int, str]:
    if isinstance(names, Mapping):
        items = list(names.items())
    elif isinstance(names, Sequence) and not isinstance(names, str):
        items = list(enumerate(names, start=1))
    else:
        raise SettingsError(f"names={names!r}: give {{label value: name}} or a list of names in label order (1, 2...)")
    if not items:
        raise SettingsError("names is empty: give {label value: name} for the labels to write")
    out: dict[int, str] = {}
    for value, name in items:
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"names: label {value!r} is not an integer label value") from exc
        if number <= 0 or number != value:
            raise SettingsError(f"names: label {value!r} must be a positive integer (0 is background)")
        if not isinstance(name, str) or not name.strip():
            raise SettingsError(f"names: label {number} has no name ({name!r}); give each label a ROI name")
        if len(name.strip()) > 64:
            raise SettingsError(f"names: ROI name {name!r} of label {number} is longer than 64 characters (the LO "
                                f"limit of ROI Name (3006,0026)); shorten it")
        out[number] = name.strip()
    if len(set(out.values())) != len(out):
        raise SettingsError(f"names: two labels share a ROI name ({out}); give every label its own name")
    return out


def _lo(value: object, limit: int = 64) -> str:
    return str(value)[:limit]


def _mask_on_source(mask: sitk.Image | PathLike, source: SourceSeries) -> np.ndarray:
    image = as_label_map(mask)
    reference = source.reference_image()
    if image.GetDimension() != 3:
        raise GeometryError(f"mask is {image.GetDimension()}D; an RTSTRUCT is written from a 3D label map on the "
                            f"series' grid")
    if geometry_differences(reference, image, tolerance=1e-4, names=("series", "mask")):
        if grid_axis_map(reference, image) is not None:
            image = resample_mask(image, reference)  # a flip or permutation of the series' grid: exact reordering
        else:
            check_geometry(reference, image, tolerance=1e-4, names=("series", "mask"))
    return sitk.GetArrayFromImage(image)


def _copy(target: Dataset, source: Dataset, keywords: Sequence[str], empty: bool = True) -> None:
    for keyword in keywords:
        if keyword in source and source[keyword].value not in (None, ""):
            target[keyword] = source[keyword]
        elif empty:
            setattr(target, keyword, "")


def write_rtstruct(mask: sitk.Image | PathLike, series: PathLike | SourceSeries,
                   names: Mapping[int, str] | Sequence[str], out: PathLike, *,
                   algorithm: Mapping[str, Any] | None = None, label: str = "radiobio",
                   series_uid: str | None = None) -> Path:
    """Write a label map as a DICOM RT Structure Set referencing its source image series; returns ``out``.

    ``mask``: a SimpleITK label map (or a mask file) on ``series``' grid (a series folder, one of its files, or a
    :class:`SourceSeries`; ``series_uid`` picks one in a folder of several). A mask on the same voxels with axes
    flipped or permuted is reordered exactly; any other grid raises :class:`GeometryError`. ``names``:
    ``{label value: ROI name}`` or a list of names for labels 1, 2...; labels not named are not written, a named
    label absent from the mask is written as a ROI without contours (with a :class:`DicomWarning`).

    Contour points lie on voxel **edges**: each connected 2D region of a label on a slice and each of its holes is
    traced along pixel edges, collinear points dropped, so that :func:`read_rtstruct` (voxel centre inside an odd
    number of contours) reads back exactly the same voxels.

    The file copies patient and study identity from the source (PACS files it there), gets a new Series and SOP
    Instance UID, references every slice of the series (and each contour its slice), and marks the ROIs
    ``AUTOMATIC`` with ``algorithm`` (``{"name": ..., "version": ...}``, e.g. from a model card) in ROI Generation
    Description (3006,0038). ``label`` is the Structure Set Label. Raises :class:`ImageReadError` for a source
    series with empty identity UIDs (naming the tag). Written atomically.
    """
    names = _names(names)
    if not isinstance(label, str) or not label.strip():
        raise SettingsError(f"label={label!r}: give a Structure Set Label (text, at most 16 characters)")
    if algorithm is not None and (not isinstance(algorithm, Mapping) or not str(algorithm.get("name", "")).strip()):
        raise SettingsError(f"algorithm={algorithm!r}: give {{'name': ..., 'version': ...}} (e.g. from the model "
                            f"card) or None")
    out = Path(out)
    source = series if isinstance(series, SourceSeries) else read_source_series(series, series_uid=series_uid)
    source.require_uids("an RTSTRUCT")
    values = _mask_on_source(mask, source)
    first = source.headers[0]
    sop_class = text(first, "SOPClassUID")
    slice_uids = source.sop_instance_uids
    now = _dt.datetime.now()
    date, clock = now.strftime("%Y%m%d"), now.strftime("%H%M%S")

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, clock
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = generate_uid()
    _copy(ds, first, ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"))
    _copy(ds, first, ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                      "AccessionNumber"))
    _copy(ds, first, ("StudyDescription", "PatientAge"), empty=False)
    ds.FrameOfReferenceUID = source.frame_of_reference_uid
    _copy(ds, first, ("PositionReferenceIndicator",))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 999
    ds.SeriesDate, ds.SeriesTime = date, clock
    ds.SeriesDescription = _lo(f"{label} structures")
    ds.OperatorsName = ""
    ds.Manufacturer = "radiobio"
    try:
        from radiobio import __version__ as version
    except ImportError:  # pragma: no cover - the package always has a version
        version = "0"
    ds.SoftwareVersions = _lo(version)
    ds.StructureSetLabel = label.strip()[:16]
    ds.StructureSetName = _lo(label.strip())
    ds.StructureSetDate, ds.StructureSetTime = date, clock

    contour_images = DicomSequence()
    for uid in slice_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = uid
        contour_images.append(item)
    series_item = Dataset()
    series_item.SeriesInstanceUID = source.series_uid
    series_item.ContourImageSequence = contour_images
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = _STUDY_SOP_CLASS
    study_item.ReferencedSOPInstanceUID = text(first, "StudyInstanceUID")
    study_item.RTReferencedSeriesSequence = DicomSequence([series_item])
    frame_item = Dataset()
    frame_item.FrameOfReferenceUID = source.frame_of_reference_uid
    frame_item.RTReferencedStudySequence = DicomSequence([study_item])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_item])

    description = ""
    if algorithm is not None:
        description = _lo(" ".join(str(algorithm.get(k, "")).strip() for k in ("name", "version")).strip())
    roi_items, contour_items, observation_items = DicomSequence(), DicomSequence(), DicomSequence()
    for number, (value, name) in enumerate(sorted(names.items()), start=1):
        roi_item = Dataset()
        roi_item.ROINumber = number
        roi_item.ReferencedFrameOfReferenceUID = source.frame_of_reference_uid
        roi_item.ROIName = name
        roi_item.ROIGenerationAlgorithm = "AUTOMATIC" if algorithm is not None else ""
        if description:
            roi_item.ROIGenerationDescription = description
        roi_items.append(roi_item)
        contours = DicomSequence()
        voxels = values == value
        for index in np.nonzero(voxels.reshape(voxels.shape[0], -1).any(axis=1))[0]:
            for loop in _trace(voxels[index]):
                corners = np.column_stack([loop - 0.5, np.full(len(loop), float(index))])
                points = source.index_to_physical(corners)
                image_item = Dataset()
                image_item.ReferencedSOPClassUID = sop_class
                image_item.ReferencedSOPInstanceUID = slice_uids[index]
                contour = Dataset()
                contour.ContourImageSequence = DicomSequence([image_item])
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = len(points)
                contour.ContourNumber = len(contours) + 1
                contour.ContourData = [format_ds(v) for v in points.ravel()]
                contours.append(contour)
        if not contours:
            warnings.warn(f"write_rtstruct: label {value} ({name!r}) is empty in the mask; written as a ROI "
                          f"without contours", DicomWarning, stacklevel=2)
        contour_item = Dataset()
        contour_item.ReferencedROINumber = number
        contour_item.ROIDisplayColor = list(_COLOURS[(number - 1) % len(_COLOURS)])
        if contours:
            contour_item.ContourSequence = contours
        contour_items.append(contour_item)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = _interpreted_type(name)
        observation.ROIInterpreter = ""
        observation_items.append(observation)
    ds.StructureSetROISequence = roi_items
    ds.ROIContourSequence = contour_items
    ds.RTROIObservationsSequence = observation_items

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = _lo(f"RADIOBIO_{version}", 16)
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    with atomic_path(out, suffix=".dcm") as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return out
