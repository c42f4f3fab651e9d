"""QC gallery of a cohort: one overlay PNG per case, a montage of them all and a table saying which case failed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiobio.cohort import CohortSource, read_cohort
from radiobio.errors import CohortError, describe
from radiobio.parallel import map_cases
from radiobio.report.overlays import (
    Window,
    extract_slice,
    legend_entries,
    montage,
    picture_figure,
    render,
    save_figure,
)

#: Columns of the QC table written as ``qc.csv``.
QC_COLUMNS = ("case_id", "png", "slice", "error")


@dataclass(frozen=True)
class QCTask:
    """What one worker needs to draw one case."""

    case_id: str
    image: str
    mask: str
    slice: int | None
    png: str
    view: str
    window: Window
    colours: dict[int, Any] | None
    label_names: dict[int, str] | None
    height: int | None
    fill: float
    error: str = ""


def write_qc(cohort: CohortSource, folder: str | os.PathLike, mask_column: str = "mask", image_column: str = "image",
             slice_column: str | None = None, view: str = "axial", window: Window = "auto",
             colours: Mapping[int, Any] | None = None, label_names: Mapping[int, str] | None = None,
             height: int | None = None, fill: float = 0.0, montage_columns: int = 4, tile_height: int = 256,
             jobs: int | None = 1, executor: Any = None) -> pd.DataFrame:
    """Draw every case's mask on its image into ``folder``: ``<case_id>.png``, ``montage.png`` and ``qc.csv``.

    ``slice_column`` names a cohort column with the slice index of each case (e.g. ``l3_slice`` of a sarcopenia
    table joined to the cohort); without it (or where it is empty) each case shows its slice with the most labelled
    voxels. Other options as in :func:`radiobio.report.overlays.overlay`. A case that cannot be drawn (missing file,
    grids that differ...) gets an ``error`` and no picture; the others are drawn. Returns the QC table
    (``case_id``, ``png`` path relative to ``folder``, ``slice``, ``error``).
    """
    table = read_cohort(cohort, errors="mark")
    for column in (image_column, mask_column, slice_column):
        if column is not None and column not in table.columns:
            raise CohortError(f"cohort has no column {column!r} (columns: {list(table.columns)})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [QCTask(case_id=row["case_id"], image=str(row[image_column]), mask=str(row[mask_column]),
                    slice=_slice_value(row.get(slice_column)) if slice_column else None,
                    png=str(folder / f"{_file_name(row['case_id'])}.png"), view=view, window=window,
                    colours=dict(colours) if colours else None,
                    label_names=dict(label_names) if label_names else None, height=height, fill=fill,
                    error=_missing(row, image_column, mask_column))
             for _, row in table.iterrows()]
    results = {case_id: result for case_id, result in map_cases(draw_case, tasks, jobs=jobs, executor=executor)}
    rows = [results[t.case_id] for t in tasks]
    qc = pd.DataFrame(rows, columns=list(QC_COLUMNS))
    qc["slice"] = qc["slice"].astype("Int64")
    tiles = {}
    for task, row in zip(tasks, rows):
        if not row["error"]:
            from matplotlib.image import imread

            tiles[task.case_id] = (imread(task.png)[..., :3] * 255).astype(np.uint8)
    if tiles:
        montage(tiles, folder / "montage.png", columns=montage_columns, tile_height=tile_height)
    qc.to_csv(folder / "qc.csv", index=False)
    return qc


def draw_case(task: QCTask) -> tuple[str, dict[str, Any]]:
    """Draw one case (the worker of :func:`write_qc`); errors come back as data."""
    row: dict[str, Any] = {"case_id": task.case_id, "png": "", "slice": task.slice, "error": task.error}
    if task.error:
        return task.case_id, row
    try:
        cut = extract_slice(task.image, task.mask, task.slice, task.view)
        rgb = render(cut, task.window, task.colours, task.height, None, task.fill)
        present = [int(v) for v in np.unique(cut.mask) if v != 0]
        title = task.case_id + (f" · slice {cut.index}" if cut.index is not None else "")
        figure = picture_figure(rgb, cut.extent_mm, title, legend_entries(present, task.colours, task.label_names))
        save_figure(figure, task.png)
        row.update(png=Path(task.png).name, slice=cut.index)
    except Exception as exc:  # noqa: BLE001 - one failing case never stops the batch
        row["error"] = describe(exc)
    return task.case_id, row


def _slice_value(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return int(value)


def _missing(row: pd.Series, image_column: str, mask_column: str) -> str:
    if row.get("error"):
        return str(row["error"])
    for column in (image_column, mask_column):
        if pd.isna(row[column]) or not str(row[column]):
            return f"CohortError: no {column} for this case"
    return ""


def _file_name(case_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_id) or "case"
