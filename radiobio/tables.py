"""Result and manifest tables on disk: one reader, one writer, one rule per suffix.

* ``.parquet`` / ``.pq``: Parquet; provenance in the file's schema metadata.
* ``.csv``: comma-separated; provenance in ``<name>.csv.provenance.json`` beside it.
* ``.tsv``: tab-separated (provenance as for CSV).
* ``.txt`` (read only): tab-separated when its header line holds a tab, else comma-separated.

Reading keeps ``case_id`` (and PyRadiomics' ``ID``) as the strings they are, so ``003``, ``NA`` or ``null`` stay
identifiers, and restores ``""`` in the ``error`` and ``note`` columns, so ``table["error"] != ""`` selects the
failures after any round trip. Writing a table with path columns (``image``, ``mask``, ``mask_*``) rebases them on
the file's folder: a path below that folder is written relative to it, any other path absolute, so the manifest
stays valid wherever it is read from (:func:`radiobio.read_cohort` resolves relative paths against the manifest's
folder). Resumable batches keep finished cases in a :class:`PartStore`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc  # noqa: F401 - registers pa.ipc
import pyarrow.parquet as pq

from radiobio.atomic import atomic_path, write_text_atomic
from radiobio.errors import CohortError, SettingsError

PROVENANCE_KEY = b"radiobio"
#: Suffixes :func:`write_table` accepts.
WRITE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv")
#: Suffixes :func:`read_table` accepts.
READ_SUFFIXES = (*WRITE_SUFFIXES, ".txt")
#: Columns read as text whatever they hold (identifiers).
ID_COLUMNS = ("case_id", "ID", "series_uid")
#: Columns whose empty cells mean "nothing to report" and read back as "".
STATUS_COLUMNS = ("error", "note")


def check_table_suffix(path: str | os.PathLike, what: str = "output") -> Path:
    """Return ``path`` as a Path; raise :class:`SettingsError` unless it ends in a suffix :func:`write_table`
    writes. Stages call this before their first case, so a wrong ``-o`` fails in a second, not after the cohort."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_SUFFIXES:
        raise SettingsError(f"{what} {str(path)!r} must end in {', '.join(WRITE_SUFFIXES)} (not "
                            f"{path.suffix or 'no suffix'!r})")
    return path


def is_path_column(name: str) -> bool:
    """True for the columns of a manifest that hold file paths: ``image``, ``mask`` and ``mask_<name>``."""
    return name in ("image", "mask") or name.startswith("mask_")


def write_table(frame: pd.DataFrame, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write a result table atomically to ``.parquet`` (provenance in metadata), ``.csv`` or ``.tsv`` (provenance in
    a ``.provenance.json`` beside it); path columns are rebased on the file's folder (see module docs).

    ``provenance`` defaults to ``frame.attrs["provenance"]``. Raises :class:`SettingsError` for another suffix.
    """
    path = check_table_suffix(path)
    if provenance is None:
        provenance = frame.attrs.get("provenance")
    frame = rebase_paths(frame, path.parent, frame.attrs.get("cohort_base_dir"))
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        plain = frame.copy(deep=False)
        plain.attrs = {}  # provenance goes in explicitly below; other attrs may not be JSON-serialisable
        table = pa.Table.from_pandas(plain, preserve_index=False)
        if provenance is not None:
            metadata = dict(table.schema.metadata or {})
            metadata[PROVENANCE_KEY] = json.dumps(provenance, default=str).encode()
            table = table.replace_schema_metadata(metadata)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")
    sidecar = provenance_sidecar(path)
    if provenance is not None:
        write_text_atomic(json.dumps(provenance, indent=2, default=str), sidecar)
    elif sidecar.is_file():
        sidecar.unlink()  # a stale sidecar would describe another table
    return path


def provenance_sidecar(path: str | os.PathLike) -> Path:
    """The JSON file beside a CSV/TSV table that holds its provenance."""
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


def rebase_paths(frame: pd.DataFrame, folder: str | os.PathLike,
                 base_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """A copy of ``frame`` whose path columns are relative to ``folder`` where the file lies below it, absolute
    elsewhere. Relative input paths are taken relative to ``base_dir`` (default: the working directory)."""
    columns = [c for c in frame.columns if is_path_column(str(c))]
    if not columns:
        return frame
    target = Path(folder).resolve()
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    out = frame.copy()
    for column in columns:
        out[column] = [_rebase(value, target, base) for value in out[column]]
    return out


def _rebase(value: Any, target: Path, base: Path) -> Any:
    if value is None or not isinstance(value, str | os.PathLike) or str(value) == "":
        return value
    path = Path(os.path.expanduser(str(value)))
    absolute = Path(os.path.abspath(path if path.is_absolute() else base / path))
    try:
        return absolute.relative_to(target).as_posix()
    except ValueError:
        return str(absolute)


def read_table(path: str | os.PathLike, what: str = "table") -> pd.DataFrame:
    """Read a table written by :func:`write_table` (or any CSV/TSV/Parquet table), provenance restored into
    ``attrs["provenance"]``; raises :class:`CohortError` naming the file when it cannot be read as a table."""
    path = Path(path)
    if path.is_dir():
        found = [p.name for p in sorted(path.iterdir()) if p.suffix.lower() in READ_SUFFIXES][:5]
        hint = (f"; it holds {found[0]}: give that file" if len(found) == 1 else
                f"; it holds {', '.join(found)}: give one of them" if found else "")
        raise CohortError(f"{path} is a folder, not a {what}{hint}")
    if not path.is_file():
        raise CohortError(f"{path}: {what} not found")
    suffix = path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise CohortError(f"{path}: unknown {what} format {suffix!r}; use {', '.join(READ_SUFFIXES)}")
    if suffix in (".parquet", ".pq"):
        frame, provenance = _read_parquet(path, what)
    else:
        frame = _read_text(path, suffix, what)
        sidecar = provenance_sidecar(path)
        provenance = json.loads(sidecar.read_text()) if sidecar.is_file() else None
    for column in STATUS_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].map(lambda v: "" if is_missing(v) else str(v))
    for column in ID_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].map(lambda v: "" if v is None or v is pd.NA else str(v))
    frame.attrs = {"provenance": provenance} if provenance else {}
    return frame


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN, ``pd.NA``, ``NaT`` and empty or blank strings: a table cell that holds nothing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    return isinstance(value, float | np.floating) and math.isnan(value)


def _read_parquet(path: Path, what: str) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CohortError(f"{path}: cannot read this Parquet {what} ({exc})") from exc
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    if nested:
        raise CohortError(f"{path}: column(s) {nested} hold lists or nested records; a {what} holds one value per "
                          f"cell (one path, one number): flatten them before saving")
    try:
        frame = table.to_pandas()
    except (ValueError, TypeError, KeyError, IndexError, pa.ArrowException) as exc:
        raise CohortError(f"{path}: the pandas metadata of this Parquet file is broken ({type(exc).__name__}: "
                          f"{exc}); rewrite it with pandas' to_parquet, or drop the metadata with pyarrow") from exc
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY)
    return frame, json.loads(raw) if raw else None


def _read_text(path: Path, suffix: str, what: str) -> pd.DataFrame:
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError as exc:
        raise CohortError(f"{path}: cannot read {what} ({exc})") from exc
    sep = "\t" if suffix == ".tsv" or (suffix == ".txt" and "\t" in header) else ","
    names = [n.strip().strip('"') for n in header.rstrip("\r\n").split(sep)]
    if sep == "," and len(names) == 1 and ";" in header:
        raise CohortError(f"{path}: the header {header.strip()!r} is separated by semicolons (a European Excel "
                          f"export); save the sheet as CSV with commas (or as .tsv)")
    converters = {c: str for c in ID_COLUMNS if c in names}
    try:
        return pd.read_csv(path, sep=sep, converters=converters, encoding="utf-8-sig")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CohortError(f"{path}: cannot parse {what} ({exc})") from exc


class PartStore:
    """A folder of one Arrow file per finished case, written atomically, for a given parameter hash.

    A batch killed at any moment leaves only complete parts; the next run reads them and skips those cases.
    """

    def __init__(self, out: str | os.PathLike, params_key: str) -> None:
        self.folder = Path(f"{out}.parts")
        self.params_key = params_key

    def _path(self, case_id: str) -> Path:
        digest = hashlib.sha1(case_id.encode()).hexdigest()[:20]
        return self.folder / f"{digest}-{self.params_key}.arrow"

    def write(self, case_id: str, rows: list[dict[str, Any]]) -> None:
        """Write the rows of one case atomically (Arrow IPC to a temporary file, then rename)."""
        table = pa.Table.from_pylist(rows)
        with atomic_path(self._path(case_id)) as tmp, pa.OSFile(str(tmp), "wb") as sink, \
                pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    def read_all(self) -> pd.DataFrame:
        """All parts written with the current parameters, as one table (empty when there are none)."""
        paths = sorted(self.folder.glob(f"*-{self.params_key}.arrow")) if self.folder.is_dir() else []
        frames = [pa.ipc.open_file(str(p)).read_all().to_pandas() for p in paths]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def clear(self) -> None:
        """Remove the parts folder (after the final table has been written)."""
        shutil.rmtree(self.folder, ignore_errors=True)
