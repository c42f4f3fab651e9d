"""The one batch driver of every per-case stage (segmentation, evaluation, extraction, biomarkers, QC).

A stage supplies a *measure* function ``measure(settings, case) -> list[dict]`` (one dict per output row of that
case) and a picklable ``settings`` object; :func:`run_batch` does the rest, the same way for every stage:

* the cohort is read once (:func:`radiobio.read_cohort` with ``errors="mark"``) and the columns the stage needs are
  checked before any case runs (:func:`require_columns`);
* each row becomes a :class:`Case` (cached reads, geometry checks, notes); a row that already carries an ``error``
  (a bad cohort row, or a case an earlier stage failed) is passed on with that error, so the root cause reaches the
  end of the pipeline;
* a case whose measure raises becomes one row with the error text of :func:`radiobio.errors.describe`; the others
  complete;
* cases run in this process, on a local pool or on Dask (:func:`radiobio.parallel.map_cases`), with one progress
  bar; ``on_case`` sees each case's rows as soon as it finishes (atomic parts of resumable batches);
* rows come back in cohort order, with ``note`` and ``error`` columns and the clinical columns carried along.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.cohort import CohortSource, path_columns, read_cohort, split_roi
from radiobio.errors import CohortError, MaskError, describe
from radiobio.imaging import geometry_differences, grid_axis_map, read_image
from radiobio.labels import NamedLabels
from radiobio.masks import on_image_grid, read_case_mask
from radiobio.parallel import map_cases
from radiobio.progress import progress_bar
from radiobio.tables import is_missing, is_path_column

#: Status columns every batch table ends with.
STATUS_COLUMNS = ("note", "error")
#: Cohort columns that steer how a case is read rather than describe the patient.
READ_COLUMNS = ("series_uid", "series_description")

Measure = Callable[[Any, "Case"], list[dict[str, Any]]]
__all__ = ["Case", "Measure", "carried_columns", "case_counts", "case_file_name", "is_missing", "load_cases",
           "order_like", "require_columns", "run_batch"]


@dataclass
class Case:
    """One cohort row while a stage works on it: cached reads, geometry checks and notes.

    Every image or mask read with ``check=True`` must share the grid of the first one read (the case's reference),
    so a mask drawn on another grid raises :class:`~radiobio.errors.GeometryError` naming both columns; with
    ``resample_masks`` a mask on another grid is resampled (nearest neighbour) onto the reference instead, which is
    lossless when the grids differ only by a flip or permutation of axes.
    """

    case_id: str
    row: dict[str, Any]
    resample_masks: bool = False
    notes: list[str] = field(default_factory=list)
    #: ``{column: {label value: label name}}`` of masks that carry their label names (segmenter outputs, DICOM).
    label_names: dict[str, dict[int, str]] = field(default_factory=dict)
    #: Labels the stage chose by name: every mask read is renumbered to them (:meth:`Segmentation.renumbered`).
    named_labels: NamedLabels | None = None
    _cache: dict[tuple[str, str], sitk.Image] = field(default_factory=dict, repr=False)
    _reference: tuple[str, sitk.Image] | None = field(default=None, repr=False)

    def value(self, column: str | None) -> Any:
        """The cohort cell ``column`` of this case, or ``None`` when the column is absent or the cell is empty."""
        if column is None:
            return None
        value = self.row.get(column)
        return None if is_missing(value) else value

    def path(self, column: str, what: str = "file") -> str:
        """The path in ``column``; an empty cell raises :class:`MaskError` naming the column."""
        value = self.value(column)
        if value is None:
            raise MaskError(f"no {what} for this case: column {column!r} is empty; fill it in or drop the case")
        return str(value)

    def image(self, column: str = "image", check: bool = True) -> sitk.Image:
        """Read (once) the intensity image in ``column`` (the ``series_uid`` cell chooses among DICOM series)."""
        return self._read(column, "image", check)

    def series_filters(self) -> dict[str, Any]:
        """The cohort cells that choose this case's DICOM series: ``series_uid``, ``modality`` and
        ``series_description`` (keywords of :func:`radiobio.read_image`; empty cells choose nothing)."""
        return {column: self.value(column) for column in ("series_uid", "modality", "series_description")}

    def mask(self, column: str, check: bool = True, what: str = "mask") -> sitk.Image:
        """Read (once) the label map in ``column`` as an integer image."""
        return self._read(column, what, check)

    def array(self, column: str, check: bool = True) -> np.ndarray:
        """The voxels (numpy order z, y, x) of the mask in ``column``; read-only view of the cached image."""
        return sitk.GetArrayViewFromImage(self.mask(column, check))

    def note(self, text: str) -> None:
        """Record a remark for this case's ``note`` column (a value that is NaN on purpose, an assumption made)."""
        if text not in self.notes:
            self.notes.append(text)

    def _read(self, column: str, kind: str, check: bool) -> sitk.Image:
        path = self.path(column, what=kind)
        key = (path, kind)
        if key not in self._cache:
            if kind != "image" and self.resample_masks and check and self._reference is None \
                    and self.value("image") is not None:
                self.image("image")  # the image is the grid masks are resampled onto
            if kind == "image":
                image = read_image(path, **self.series_filters())
            else:
                segmentation = read_case_mask(path, image=self.value("image"), **self.series_filters())
                if self.named_labels is not None:
                    segmentation = segmentation.renumbered(self.named_labels, name=f"{column} {path}")
                image = segmentation.mask
                if segmentation.label_names:
                    self.label_names[column] = segmentation.label_names
            self._cache[key] = image
        image = self._cache[key]
        if check:
            if self._reference is None:
                self._reference = (column, image)
            elif self._reference[1] is not image:
                image = self._on_reference_grid(key, column, image)
        return image

    def _on_reference_grid(self, key: tuple[str, str], column: str, image: sitk.Image) -> sitk.Image:
        """The cached ``image`` moved onto the reference grid: exactly for a flip or permutation of axes (noted),
        by nearest neighbour with ``resample_masks``; otherwise the geometry error names every difference."""
        reference_column, reference = self._reference  # type: ignore[misc]
        if not geometry_differences(reference, image):
            return image
        mapping = grid_axis_map(reference, image)
        moved = on_image_grid(image, reference, resample=self.resample_masks, name=column, image_name=reference_column)
        if mapping is not None:
            axes, flipped = mapping
            flips = "".join("xyz"[axes[j]] for j in range(len(axes)) if flipped[j])
            how = (f"axis {flips} flipped" if len(flips) == 1 else f"axes {flips} flipped") if flips else ""
            if list(axes) != sorted(axes):
                how = f"{how}, axes permuted" if how else "axes permuted"
            self.note(f"{column} reoriented onto the {reference_column} grid ({how}; exact, voxel for voxel)")
        else:
            self.note(f"{column} resampled onto the {reference_column} grid (nearest neighbour)")
        self._cache[key] = moved
        return moved


def require_columns(frame: pd.DataFrame, columns: Iterable[str | None], *, stage: str) -> None:
    """Raise :class:`CohortError` naming every column of ``columns`` (``None`` entries ignored) missing from
    ``frame``, the columns present, and the stage that needs them."""
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        present = [c for c in frame.columns if c not in STATUS_COLUMNS]
        raise CohortError(f"cohort has no column {', '.join(map(repr, missing))} needed by {stage} (columns: "
                          f"{present}); add it or name another column")


def load_cases(cohort: CohortSource, *, stage: str, required: Iterable[str | None] = (),
               require_image: bool = True) -> pd.DataFrame:
    """Read ``cohort`` for a batch stage: bad rows are marked in ``error`` (not raised), upstream errors are kept,
    and the columns in ``required`` must exist (:class:`CohortError` otherwise, before any case runs); a file missing
    from a required path column marks its row."""
    frame = read_cohort(cohort, errors="mark", check_files=False, require_image=require_image)
    require_columns(frame, required, stage=stage)
    for column in dict.fromkeys(c for c in required if c is not None and is_path_column(c)):
        for i, value in frame[column].items():
            if not frame.at[i, "error"] and not is_missing(value) and not os.path.exists(split_roi(str(value))[0]):
                frame.at[i, "error"] = f"CohortError: {column} file not found: {value}"
    return frame


def carried_columns(frame: pd.DataFrame, carry: bool | Sequence[str], exclude: Iterable[str] = ()) -> list[str]:
    """The clinical columns of ``frame`` to copy into a result table (never paths, ``case_id`` or status)."""
    if carry is False:
        return []
    excluded = {"case_id", *STATUS_COLUMNS, *READ_COLUMNS, *path_columns(frame), *exclude}
    if carry is True:
        return [c for c in frame.columns if c not in excluded]
    unknown = [c for c in carry if c not in frame.columns]
    if unknown:
        raise CohortError(f"cannot carry {unknown}: not columns of the cohort ({list(frame.columns)})")
    return [c for c in carry if c not in excluded]


def run_batch(frame: pd.DataFrame, measure: Measure, settings: Any, *, stage: str, carry: Sequence[str] = (),
              jobs: int | None = None, executor: Any = None, progress: bool = False, resample_masks: bool = False,
              on_case: Callable[[str, list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Run ``measure(settings, case)`` on every row of ``frame`` (from :func:`load_cases`); return all rows in
    cohort order, each with ``case_id``, the measure's keys, the ``carry`` columns, ``note`` and ``error``.

    ``measure`` and ``settings`` must be picklable when ``jobs > 1`` or an ``executor`` is given (a module-level
    function and a dataclass). ``on_case(case_id, rows)`` is called in this process as each case finishes.
    """
    items = list(enumerate(frame.to_dict("records")))
    worker = partial(_run_one, measure, settings, tuple(carry), resample_masks)
    results: dict[int, list[dict[str, Any]]] = {}
    bar = progress_bar(len(items), enabled=progress, desc=stage)
    try:
        for index, rows in map_cases(worker, items, jobs=jobs, executor=executor):
            results[index] = rows
            if on_case is not None:
                on_case(str(items[index][1]["case_id"]), rows)
            bar.update(1)
    finally:
        bar.close()
    return [row for index in sorted(results) for row in results[index]]


def _run_one(measure: Measure, settings: Any, carried: tuple[str, ...], resample_masks: bool,
             item: tuple[int, dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    index, row = item
    case = Case(str(row["case_id"]), row, resample_masks=resample_masks, named_labels=_named_labels(settings))
    clinical = {c: row.get(c) for c in carried}
    if not is_missing(row.get("error")):
        return index, [{"case_id": case.case_id, **clinical, "note": "", "error": str(row["error"])}]
    try:
        rows = measure(settings, case)
    except Exception as exc:  # a batch never dies for one case: the error becomes data
        return index, [{"case_id": case.case_id, **clinical, "note": "; ".join(case.notes), "error": describe(exc)}]
    note = "; ".join(case.notes)
    return index, [{"case_id": case.case_id, **r, **clinical, "note": _join(note, r.get("note")),
                    "error": r.get("error") or ""} for r in rows]


def _named_labels(settings: Any) -> NamedLabels | None:
    """The :class:`NamedLabels` among a stage's settings fields, if the stage's labels were chosen by name."""
    if dataclasses.is_dataclass(settings):
        for item in dataclasses.fields(settings):
            value = getattr(settings, item.name)
            if isinstance(value, NamedLabels):
                return value
    return None


def _join(*texts: str | None) -> str:
    return "; ".join(t for t in texts if t)


def case_counts(table: pd.DataFrame) -> tuple[int, int]:
    """``(ok, failed)``: number of distinct cases of a result table without and with an ``error``."""
    errors = table["error"].fillna("").astype(str) != ""
    failed = table.loc[errors, "case_id"].unique()
    return int(table["case_id"].nunique() - len(failed)), int(len(failed))


def case_file_name(case_id: str) -> str:
    """A file name (without suffix) for a case, distinct for distinct ``case_id``: the id itself when it is made of
    ASCII letters, digits, ``-``, ``_`` and ``.`` only (and does not start with a dot), else the id with every other
    character replaced by ``_`` plus the first 8 hex digits of its SHA-1 (``"P1 a"`` → ``P1_a-…``, never the file of
    ``"P1_a"``)."""
    case_id = str(case_id)
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in case_id)
    if safe == case_id and safe not in ("", ".", "..") and not safe.startswith("."):
        return safe
    digest = hashlib.sha1(case_id.encode("utf-8")).hexdigest()[:8]
    return f"{safe.lstrip('.') or 'case'}-{digest}"


def order_like(table: pd.DataFrame, cohort: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """``table`` sorted into the order of ``cohort``'s ``case_id`` (stable), then by ``extra`` columns."""
    order = {case_id: i for i, case_id in enumerate(cohort["case_id"])}
    keyed = table.assign(_order=table["case_id"].map(order))
    return keyed.sort_values(["_order", *extra], kind="stable").drop(columns="_order").reset_index(drop=True)
