"""Feature-table storage: atomic per-case parts for resumable batches, and Parquet/CSV files with provenance."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.ipc  # noqa: F401 - registers pa.ipc
import pyarrow.parquet as pq

from radiobio.atomic import atomic_path, write_text_atomic

PROVENANCE_KEY = b"radiobio"


class PartStore:
    """A folder of one Parquet file per finished case, written atomically, for a given parameter hash.

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


def atomic_write_parquet(frame: pd.DataFrame, path: str | os.PathLike,
                         provenance: dict[str, Any] | None = None) -> Path:
    """Write ``frame`` to Parquet atomically; ``provenance`` goes into the file's schema metadata."""
    path = Path(path)
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


def write_table(frame: pd.DataFrame, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write a result table to ``.parquet`` (provenance in metadata) or ``.csv`` (provenance in ``.json`` beside)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return atomic_write_parquet(frame, path, provenance)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: output must end in .parquet or .csv")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    if provenance is not None:
        write_text_atomic(json.dumps(provenance, indent=2, default=str), path.with_name(path.name + ".provenance.json"))
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`write_table`, restoring its provenance into ``DataFrame.attrs``."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pq.read_table(path)
        frame = table.to_pandas()
        raw = (table.schema.metadata or {}).get(PROVENANCE_KEY)
        frame.attrs = {"provenance": json.loads(raw)} if raw else {}
        return frame
    frame = pd.read_csv(path, dtype={"case_id": str})
    sidecar = path.with_name(path.name + ".provenance.json")
    frame.attrs = {"provenance": json.loads(sidecar.read_text())} if sidecar.is_file() else {}
    return frame
