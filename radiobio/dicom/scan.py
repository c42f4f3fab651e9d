"""Scan a DICOM tree (a PACS export, a TCIA download) into one table: a row per image series, a row per RTSTRUCT,
SEG, RTDOSE or other non-image object, with the columns a user needs to pick series for a cohort and to define
acquisition batches (scanner, kernel, slice thickness, contrast).

Only headers are read (pydicom, ``stop_before_pixels``), so a tree of thousands of files scans in seconds.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiobio.errors import CohortError, DicomWarning, GeometryError, ImageReadError

PathLike = str | os.PathLike

#: The columns of :func:`scan_dicom`, in order.
SCAN_COLUMNS = (
    "path", "patient_id", "study_uid", "study_description", "series_uid", "frame_of_reference_uid", "modality",
    "sop_class", "series_number", "series_description", "instances", "files", "rows", "columns",
    "pixel_spacing_row", "pixel_spacing_column", "slice_thickness", "slice_spacing", "convolution_kernel",
    "manufacturer", "manufacturer_model", "acquisition_date", "contrast_agent", "kvp", "referenced_series_uid",
    "non_dicom_files", "note",
)

_TEXT_COLUMNS = ("path", "patient_id", "study_uid", "study_description", "series_uid", "frame_of_reference_uid",
                 "modality", "sop_class", "series_description", "convolution_kernel", "manufacturer",
                 "manufacturer_model", "acquisition_date", "contrast_agent", "referenced_series_uid", "note")
_COUNT_COLUMNS = ("series_number", "instances", "files", "rows", "columns", "non_dicom_files")


def scan_dicom(root: PathLike, *, jobs: int | None = None, progress: bool = False) -> pd.DataFrame:
    """One row per DICOM image series found anywhere under ``root``, plus one row per RTSTRUCT, SEG, RTDOSE, RTPLAN,
    SR or other non-image DICOM file.

    Files are grouped by folder and SeriesInstanceUID (an empty UID groups a folder's files without one; a multi-frame
    file is a series of its own). Columns (:data:`SCAN_COLUMNS`):

    * ``path``: the series folder (for a multi-frame image or a non-image object: the file), joined to ``root`` as
      given (a relative ``root`` gives relative paths); a cohort's ``image`` cell may be this path.
    * ``patient_id`` (PatientID), ``study_uid``, ``study_description``, ``series_uid``, ``frame_of_reference_uid``,
      ``modality``, ``sop_class`` (its name, e.g. ``CT Image Storage``), ``series_number``, ``series_description``.
    * ``instances``: images in the series (files; frames of a multi-frame file); ``files``: files.
    * ``rows``, ``columns`` (pixels); ``pixel_spacing_row``, ``pixel_spacing_column`` (mm, PixelSpacing: between
      rows, between columns); ``slice_thickness`` (mm, SliceThickness); ``slice_spacing`` (mm, the median step of the
      slice positions along the slice normal; NaN for one slice).
    * ``convolution_kernel``, ``manufacturer``, ``manufacturer_model``, ``acquisition_date`` (ISO ``YYYY-MM-DD``, from
      AcquisitionDate, else SeriesDate, else StudyDate), ``contrast_agent`` (ContrastBolusAgent), ``kvp`` (kV).
    * ``referenced_series_uid``: for an RTSTRUCT (ReferencedFrameOfReferenceSequence / RTReferencedStudySequence /
      RTReferencedSeriesSequence) or a SEG (ReferencedSeriesSequence), the image series it was drawn on (several
      joined by ``\\``); ``""`` for image series.
    * ``non_dicom_files``: files in the same folder that are not DICOM (hidden files and ``DICOMDIR`` are not
      counted); :func:`~radiobio.imaging.read_image` refuses a series folder with such files, so move them out.
    * ``note``: ``""``, or the geometry problem :func:`~radiobio.imaging.read_image` would raise or warn about
      (missing slices, uneven spacing, gantry tilt, mixed orientations, several frames of reference).

    Rows are sorted by patient, study and series number. Privacy: patient names, birth dates and other identifying
    header values are not read into the table; a cohort identifies a case by its ``case_id``, and ``patient_id`` is
    the export's own identifier (drop the column before sharing the table if it is not pseudonymous).
    Non-DICOM files are counted, never fatal: a :class:`~radiobio.errors.DicomWarning` says how many were skipped.
    ``jobs`` scans folders in parallel processes (see :func:`radiobio.parallel.resolve_jobs`); ``progress`` shows a
    bar over folders. ``attrs["provenance"]`` is ``{"stage": "scan", "root": ..., "radiobio": version}``.
    Raises :class:`~radiobio.errors.CohortError` when ``root`` is not a folder.
    """
    from radiobio import __version__
    from radiobio.parallel import map_cases, resolve_jobs
    from radiobio.progress import progress_bar

    resolve_jobs(jobs)
    root_text = os.fspath(root)
    if not os.path.isdir(root_text):
        what = "is a file, not a folder" if os.path.isfile(root_text) else "no such folder"
        raise CohortError(f"{root_text}: {what}; scan_dicom takes the folder of a DICOM tree (a PACS export)")
    folders = list(_folders(root_text))
    rows: list[dict[str, Any]] = []
    non_dicom: list[str] = []
    unreadable: list[str] = []
    bar = progress_bar(len(folders), enabled=progress, desc="scan", unit="folder")
    try:
        for found, others, problem in map_cases(_scan_folder, folders, jobs=jobs):
            rows.extend(found)
            non_dicom.extend(others)
            if problem:
                unreadable.append(problem)
            bar.update(1)
    finally:
        bar.close()
    if non_dicom:
        shown = ", ".join(non_dicom[:3]) + (f" and {len(non_dicom) - 3} more" if len(non_dicom) > 3 else "")
        warnings.warn(f"{root_text}: {len(non_dicom)} file(s) are not DICOM and were skipped ({shown}); the "
                      f"non_dicom_files column counts them per series folder", DicomWarning, stacklevel=2)
    for problem in unreadable:
        warnings.warn(problem, DicomWarning, stacklevel=2)
    frame = _as_frame(rows)
    frame.attrs["provenance"] = {"stage": "scan", "root": str(Path(root_text).resolve()), "radiobio": __version__}
    return frame


def _folders(root: str) -> Iterable[str]:
    for folder, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield os.path.normpath(folder)


def _scan_folder(folder: str) -> tuple[list[dict[str, Any]], list[str], str]:
    """The rows of one folder, its non-DICOM files, and a note when it could not be listed."""
    from radiobio.imaging import dicom_folder_headers, group_dicom_series, is_image_header

    try:
        items, others = dicom_folder_headers(folder)
    except ImageReadError as exc:
        return [], [], f"skipped: {exc}"
    other_names = [str(p) for p in others]
    rows = []
    for series in group_dicom_series(items, folder=folder):
        row = _series_row(series)
        row["non_dicom_files"] = len(others)
        if others and not (series.frames > 1 and len(series.files) == 1):
            refused = (f"the folder also holds {len(others)} non-DICOM file(s) (e.g. {others[0].name}); read_image "
                       f"refuses it until they are moved out")
            row["note"] = f"{row['note']}; {refused}" if row["note"] else refused
        rows.append(row)
    for path, header in items:
        if not is_image_header(header):
            row = _object_row(str(path), header)
            row["non_dicom_files"] = len(others)
            rows.append(row)
    return rows, other_names, ""


def _text(header: Any, keyword: str) -> str:
    from radiobio.imaging import _dicom_text

    return _dicom_text(header, keyword)


def _number(header: Any, keyword: str) -> float:
    try:
        value = header.get(keyword)
        return float(value) if value not in (None, "") else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _integer(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def _iso_date(text: str) -> str:
    digits = text.replace("-", "").replace(".", "").strip()
    if len(digits) >= 8 and digits[:8].isdigit():
        return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"
    return text


def _sop_class(header: Any) -> str:
    uid = header.get("SOPClassUID")
    if not uid:
        return ""
    name = getattr(uid, "name", "") or str(uid)
    return str(name)


def _pixel_measures(header: Any) -> tuple[float, float, float]:
    """(row spacing, column spacing, slice thickness) in mm, from the header or a multi-frame file's shared (else
    first per-frame) PixelMeasuresSequence."""
    spacing = header.get("PixelSpacing")
    thickness = _number(header, "SliceThickness")
    if spacing is None:
        for sequence in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            groups = header.get(sequence)
            if groups and "PixelMeasuresSequence" in groups[0] and groups[0].PixelMeasuresSequence:
                measures = groups[0].PixelMeasuresSequence[0]
                spacing = measures.get("PixelSpacing")
                if np.isnan(thickness):
                    thickness = _number(measures, "SliceThickness")
                break
    try:
        row, column = (float(v) for v in spacing) if spacing is not None else (float("nan"), float("nan"))
    except (TypeError, ValueError):
        row, column = float("nan"), float("nan")
    return row, column, thickness


def _common(header: Any) -> dict[str, Any]:
    row_spacing, column_spacing, thickness = _pixel_measures(header)
    date = _text(header, "AcquisitionDate") or _text(header, "SeriesDate") or _text(header, "StudyDate")
    return {
        "patient_id": _text(header, "PatientID"), "study_uid": _text(header, "StudyInstanceUID"),
        "study_description": _text(header, "StudyDescription"), "series_uid": _text(header, "SeriesInstanceUID"),
        "frame_of_reference_uid": _text(header, "FrameOfReferenceUID"), "modality": _text(header, "Modality"),
        "sop_class": _sop_class(header), "series_number": _integer(_text(header, "SeriesNumber")),
        "series_description": _text(header, "SeriesDescription"),
        "rows": _integer(_text(header, "Rows")), "columns": _integer(_text(header, "Columns")),
        "pixel_spacing_row": row_spacing, "pixel_spacing_column": column_spacing, "slice_thickness": thickness,
        "convolution_kernel": _text(header, "ConvolutionKernel"), "manufacturer": _text(header, "Manufacturer"),
        "manufacturer_model": _text(header, "ManufacturerModelName"), "acquisition_date": _iso_date(date),
        "contrast_agent": _text(header, "ContrastBolusAgent"), "kvp": _number(header, "KVP"),
        "referenced_series_uid": "", "note": "",
    }


def _series_row(series: Any) -> dict[str, Any]:
    from radiobio.imaging import series_geometry

    row = _common(series.headers[0])
    multi_frame = series.frames > 1 and len(series.files) == 1
    row["path"] = series.files[0] if multi_frame else series.folder
    row["instances"] = series.frames
    row["files"] = len(series.files)
    try:
        geometry = series_geometry(series)
        positions = np.asarray(geometry.positions, dtype=float)
        row["note"] = "; ".join(_without_where(n, series) for n in geometry.notes)
    except GeometryError as exc:
        positions = _positions_anyway(series)
        row["note"] = _without_where(str(exc), series)
    steps = np.diff(np.sort(positions)) if positions.size > 1 else np.array([])
    row["slice_spacing"] = float(np.median(steps)) if steps.size else float("nan")
    return row


def _positions_anyway(series: Any) -> np.ndarray:
    """Slice positions along the first slice's normal (mm), for a series whose geometry check failed."""
    try:
        first = series.headers[0]
        orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        return np.array([float(np.dot(np.asarray(h.ImagePositionPatient, dtype=float), normal))
                         for h in series.headers])
    except (AttributeError, TypeError, ValueError):
        return np.array([])


def _without_where(message: str, series: Any) -> str:
    for where in (series.folder, *series.files):
        if where and message.startswith(f"{where}: "):
            return message[len(where) + 2:]
    return message


def _object_row(path: str, header: Any) -> dict[str, Any]:
    row = _common(header)
    row["path"] = path
    frames = header.get("NumberOfFrames")
    try:
        row["instances"] = max(1, int(frames)) if frames not in (None, "") else 1
    except (TypeError, ValueError):
        row["instances"] = 1
    row["files"] = 1
    row["slice_spacing"] = float("nan")
    references = _referenced_series(header)
    row["referenced_series_uid"] = "\\".join(references)
    if not row["frame_of_reference_uid"]:
        for item in header.get("ReferencedFrameOfReferenceSequence") or []:
            if item.get("FrameOfReferenceUID"):
                row["frame_of_reference_uid"] = str(item.FrameOfReferenceUID).strip()
                break
    return row


def _referenced_series(header: Any) -> list[str]:
    """SeriesInstanceUIDs an RTSTRUCT (through its referenced frames of reference) or a SEG, SR or presentation
    state (ReferencedSeriesSequence) references, in order, without repeats."""
    found: list[str] = []

    def add(item: Any) -> None:
        uid = str(item.get("SeriesInstanceUID", "") or "").strip()
        if uid and uid not in found:
            found.append(uid)

    try:
        for frame in header.get("ReferencedFrameOfReferenceSequence") or []:
            for study in frame.get("RTReferencedStudySequence") or []:
                for series in study.get("RTReferencedSeriesSequence") or []:
                    add(series)
        for series in header.get("ReferencedSeriesSequence") or []:
            add(series)
        for evidence in header.get("CurrentRequestedProcedureEvidenceSequence") or []:
            for series in evidence.get("ReferencedSeriesSequence") or []:
                add(series)
    except (AttributeError, TypeError):
        pass
    return found


def _as_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(SCAN_COLUMNS))
    for column in _TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    for column in _COUNT_COLUMNS:
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64") if len(frame) else \
            pd.array([], dtype="Int64")
    for column in ("pixel_spacing_row", "pixel_spacing_column", "slice_thickness", "slice_spacing", "kvp"):
        frame[column] = frame[column].astype(float)
    frame = frame.sort_values(["patient_id", "study_uid", "series_number", "modality", "series_uid", "path"],
                              na_position="last", kind="stable")
    return frame.reset_index(drop=True)
