"""The cohort table contract: one row per scan, ``case_id`` + ``image`` + mask columns + clinical columns.

``read_cohort`` reads CSV / Parquet manifests (and PyRadiomics batch CSVs with ``ID``/``Image``/``Mask``/``Label``),
resolves relative paths against the manifest's folder and validates every row at once. An optional ``series_uid``
column picks one DICOM series of a folder that holds several (:func:`radiobio.imaging.read_image`).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Literal

import pandas as pd

from radiobio.errors import CohortError, SettingsError
from radiobio.tables import is_missing, read_table

CohortSource = str | os.PathLike | pd.DataFrame

#: PyRadiomics batch-file columns and their radiobio names.
PYRADIOMICS_BATCH_COLUMNS = {"ID": "case_id", "Image": "image", "Mask": "mask", "Label": "label"}

#: The optional column naming the DICOM series to read from a folder of several.
SERIES_UID_COLUMN = "series_uid"

_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def is_mask_column(name: str) -> bool:
    """Return True for ``mask`` and ``mask_<name>`` columns."""
    return name == "mask" or name.startswith("mask_")


def path_columns(frame: pd.DataFrame) -> list[str]:
    """Return the columns that hold file paths: ``image`` and every mask column."""
    return [c for c in frame.columns if c == "image" or is_mask_column(c)]


def read_cohort(source: CohortSource, *, errors: Literal["raise", "mark"] = "raise",
                base_dir: str | os.PathLike | None = None, check_files: bool = True,
                require_image: bool = True) -> pd.DataFrame:
    """Read and validate a cohort table.

    ``source`` is a CSV, TSV or Parquet manifest (read with :func:`radiobio.tables.read_table`), or a DataFrame.
    Relative paths resolve against the manifest's folder (or ``base_dir``; the working directory for a DataFrame);
    relative paths written with backslashes (``images\\case.nii.gz``) are read as forward-slash paths on POSIX.
    ``case_id`` is kept as text: ``003``, ``NA``, ``None`` and ``null`` are identifiers. A ``series_uid`` column is
    kept as text, empty cells as None. Clinical columns pass through untouched.
    With ``errors="raise"`` one :class:`CohortError` lists every bad row (empty or duplicate ``case_id``, missing
    file, symlink loop, a Windows drive-letter path); with ``errors="mark"`` bad rows get an ``error`` text (empty
    string for good rows) and the table is returned whole. ``require_image=False`` accepts mask-only cohorts (e.g.
    cardiac phases), for stages that measure masks alone. A manifest that cannot be read as a table (a folder, a
    semicolon-separated CSV, a Parquet file with list columns or broken pandas metadata) is a :class:`CohortError`.
    """
    if errors not in ("raise", "mark"):
        raise SettingsError(f"errors must be 'raise' or 'mark', not {errors!r}")
    frame, folder = _load(source)
    if base_dir is not None:
        folder = Path(base_dir)
    frame = _rename_pyradiomics_batch(frame)
    if "case_id" not in frame.columns:
        raise CohortError(f"cohort has no 'case_id' column (columns: {list(frame.columns)}); add one with a unique "
                          f"identifier per scan (or use PyRadiomics' 'ID')")
    if "image" not in frame.columns and require_image:
        raise CohortError(f"cohort has no 'image' column (columns: {list(frame.columns)}); add the path of each "
                          f"scan")
    frame = frame.copy()
    frame["case_id"] = frame["case_id"].map(lambda v: "" if pd.isna(v) else str(v))
    for column in path_columns(frame):
        frame[column] = frame[column].map(lambda v: _resolve(v, folder))
    if SERIES_UID_COLUMN in frame.columns:
        frame[SERIES_UID_COLUMN] = frame[SERIES_UID_COLUMN].map(_clean_text)
    problems = _row_problems(frame, check_files, require_image)
    if errors == "raise":
        if problems:
            lines = "\n".join(f"  row {i} ({frame.at[i, 'case_id'] or '<no case_id>'}): {'; '.join(p)}"
                              for i, p in problems.items())
            raise CohortError(f"{len(problems)} bad row(s) in the cohort:\n{lines}")
        frame.attrs["cohort_base_dir"] = str(folder)
        return frame
    upstream = frame["error"] if "error" in frame.columns else pd.Series("", index=frame.index)
    frame["error"] = [_upstream_error(upstream[i]) or (("CohortError: " + "; ".join(problems[i])) if i in problems
                                                       else "") for i in frame.index]
    frame.attrs["cohort_base_dir"] = str(folder)
    return frame


def _upstream_error(value: object) -> str:
    """The ``error`` a previous stage left in a cohort row ("" for none): it is kept, so the root cause of a
    failure travels down the pipeline instead of turning into "no mask" downstream."""
    return "" if is_missing(value) else str(value)


def _load(source: CohortSource) -> tuple[pd.DataFrame, Path]:
    if isinstance(source, pd.DataFrame):
        base = source.attrs.get("cohort_base_dir")
        return source.reset_index(drop=True), Path(base) if base else Path.cwd()
    path = Path(source)
    loop = _symlink_loop(path)
    if loop:
        raise CohortError(f"{path}: cohort manifest path is a symlink loop ({loop}); fix the link")
    frame = read_table(path, what="cohort manifest")
    frame.attrs = {}
    try:
        folder = path.resolve().parent
    except (RuntimeError, OSError) as exc:
        raise CohortError(f"{path}: cannot resolve the cohort manifest's folder ({exc})") from exc
    return frame.reset_index(drop=True), folder


def _rename_pyradiomics_batch(frame: pd.DataFrame) -> pd.DataFrame:
    if "case_id" in frame.columns or not {"Image", "Mask"} <= set(frame.columns):
        return frame
    frame = frame.rename(columns=PYRADIOMICS_BATCH_COLUMNS)
    if "case_id" not in frame.columns:
        frame.insert(0, "case_id", [f"case_{i + 1}" for i in range(len(frame))])
    return frame


def _clean_text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


#: Separator between a DICOM structure-set file and a ROI name in a cohort cell (``rt/RS.dcm#GTV-1``).
ROI_SEPARATOR = "#"


def split_roi(cell: str | os.PathLike) -> tuple[str, str | None]:
    """Split a cohort cell ``path#ROI`` into ``(path, roi)``; ``roi`` is ``None`` without a ``#`` that follows an
    existing file (a file name that itself holds ``#`` stays whole)."""
    text = os.fspath(cell)
    if ROI_SEPARATOR not in text or os.path.exists(text):
        return text, None
    path, _, roi = text.rpartition(ROI_SEPARATOR)
    return path, roi.strip() or None


def looks_like_windows_path(value: str) -> bool:
    """True for a drive-letter (``C:\\data``, ``C:/data``) or UNC (``\\\\server\\share``) path."""
    return bool(_WINDOWS_ABSOLUTE.match(value))


def _resolve(value: object, folder: Path) -> object:
    if is_missing(value):
        return None
    text = str(value).strip()
    if os.sep == "/" and looks_like_windows_path(text):
        return text  # not a path on this machine: kept as written, flagged by the file check
    if os.sep == "/" and "\\" in text and not (folder / text).exists():
        text = text.replace("\\", "/")
    path = Path(os.path.expanduser(text))
    absolute = path if path.is_absolute() else folder / path
    try:
        resolved = absolute.resolve()
    except (RuntimeError, OSError):  # a symlink loop: kept unresolved, flagged by the file check
        return os.path.abspath(absolute)
    # a missing file keeps the name the manifest gave (a broken link is named, not its target)
    return str(resolved) if resolved.exists() else os.path.abspath(absolute)


def _symlink_loop(path: str | os.PathLike) -> str | None:
    """The OS's message when ``path`` (or a folder on the way) is a symlink loop, else None."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return exc.strerror or "too many levels of symbolic links"
    return None


def _missing_file_problem(column: str, value: str) -> str:
    if os.sep == "/" and looks_like_windows_path(value):
        return (f"{column} file not found: {value}: looks like a Windows path; give the path as this machine sees "
                f"it (e.g. the share's mount point) or a path relative to the manifest's folder")
    loop = _symlink_loop(value)
    if loop:
        return f"{column} path is a symlink loop: {value} ({loop}); fix the link"
    if os.path.islink(value):
        return f"{column} file not found: {value} is a broken symbolic link to {os.readlink(value)}"
    return f"{column} file not found: {value}"


def _row_problems(frame: pd.DataFrame, check_files: bool, require_image: bool = True) -> dict[int, list[str]]:
    problems: dict[int, list[str]] = {}
    duplicated = frame["case_id"].duplicated(keep=False) & (frame["case_id"] != "")
    has_label_column = "label" in frame.columns
    for i, row in frame.iterrows():
        row_problems = []
        if row["case_id"] == "":
            row_problems.append("empty case_id")
        elif duplicated[i] and not has_label_column:
            row_problems.append(f"duplicate case_id {row['case_id']!r}; case_id must be unique per scan")
        if require_image and row.get("image") is None:
            row_problems.append("no image path")
        if check_files:
            for column in path_columns(frame):
                if row[column] is not None and not os.path.exists(split_roi(row[column])[0]):
                    row_problems.append(_missing_file_problem(column, row[column]))
        if row_problems:
            problems[i] = row_problems
    if has_label_column:
        pairs = frame[["case_id", "label"]].astype(str).duplicated(keep=False) & (frame["case_id"] != "")
        for i in frame.index[pairs]:
            problems.setdefault(i, []).append(
                f"duplicate (case_id, label) ({frame.at[i, 'case_id']!r}, {frame.at[i, 'label']})")
    return dict(sorted(problems.items()))
