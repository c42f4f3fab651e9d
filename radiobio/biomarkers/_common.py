"""What every biomarker stage shares: loop over a cohort's cases, read their images and masks once, turn each
failure into a row.

A stage supplies one *measure* function ``measure(settings, case) -> list[dict]`` (one dict per output row of that
case); :func:`run_cases` does the rest: cohort validation, geometry checks between everything one case reads,
parallel execution with :func:`radiobio.parallel.map_cases`, ``note`` / ``error`` columns, clinical columns carried
along, and provenance in ``DataFrame.attrs['provenance']``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import partial
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio import __version__
from radiobio.cohort import CohortSource, path_columns, read_cohort
from radiobio.errors import CohortError, GeometryError, MaskError, SettingsError, describe
from radiobio.imaging import check_geometry, read_image, read_mask
from radiobio.parallel import map_cases

STATUS_COLUMNS = ("note", "error")

Measure = Callable[[Any, "Case"], list[dict[str, Any]]]


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN, ``pd.NA`` and empty strings: a cohort cell that holds nothing."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:  # pragma: no cover - exotic scalar types
        return False


@dataclass
class Case:
    """One cohort row while it is being measured: cached reads, geometry checks and notes.

    Every image or mask read with ``check=True`` must share the grid of the first one read (the case's reference),
    so a mask drawn on another grid raises :class:`~radiobio.errors.GeometryError` naming both columns.
    """

    case_id: str
    row: dict[str, Any]
    notes: list[str] = field(default_factory=list)
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
        """Read (once) the intensity image in ``column``."""
        return self._read(column, "image", check)

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
            self._cache[key] = read_image(path) if kind == "image" else read_mask(path)
        image = self._cache[key]
        if check:
            if self._reference is None:
                self._reference = (column, image)
            elif self._reference[1] is not image:
                check_geometry(self._reference[1], image, names=(self._reference[0], column))
        return image


def run_cases(cohort: CohortSource, measure: Measure, settings: Any, *, kind: str, columns: Sequence[str],
              required: Iterable[str | None] = (), carry: bool | Sequence[str] = True,
              dtypes: Mapping[str, str] | None = None, jobs: int | None = 1, executor: Any = None) -> pd.DataFrame:
    """Measure every case of ``cohort``; return one table, one or more rows per case, in cohort order.

    ``columns`` are the measure's output columns in order (present even when every case fails), float64 unless
    ``dtypes`` says otherwise (``Int64``, ``boolean``, ``string``: nullable); ``required`` the
    cohort columns the stage cannot do without (missing ones raise :class:`CohortError` at once). ``carry``:
    clinical columns to copy into the result (``True``: all non-path columns). A case whose measure raises gets one
    row with the error text of :func:`radiobio.errors.describe` and NaN measurements; the others complete.
    """
    required = tuple(required)
    frame = read_cohort(cohort, errors="mark", check_files=False, require_image="image" in required)
    missing = [c for c in required if c is not None and c not in frame.columns]
    if missing:
        raise CohortError(f"cohort has no column {', '.join(map(repr, missing))} needed by biomarkers {kind!r} "
                          f"(columns: {[c for c in frame.columns if c != 'error']}); add it or name another column")
    carried = carried_columns(frame, carry, exclude=columns)
    items = [(i, row) for i, row in enumerate(frame.to_dict("records"))]
    worker = partial(_measure_one, measure, settings, tuple(carried))
    results = dict(map_cases(worker, items, jobs=jobs, executor=executor))
    records = [row for i in sorted(results) for row in results[i]]
    table = pd.DataFrame.from_records(records, columns=["case_id", *columns, *carried, *STATUS_COLUMNS])
    for column in columns:
        table[column] = table[column].astype((dtypes or {}).get(column, "float64"))
    table["note"] = table["note"].fillna("")
    table["error"] = table["error"].fillna("")
    table.attrs["provenance"] = {"stage": "biomarkers", "kind": kind, "settings": _jsonable(settings),
                                 "radiobio_version": __version__}
    return table


def _measure_one(measure: Measure, settings: Any, carried: tuple[str, ...],
                 item: tuple[int, dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    index, row = item
    case = Case(str(row["case_id"]), row)
    clinical = {c: row.get(c) for c in carried}
    if not is_missing(row.get("error")):
        return index, [{"case_id": case.case_id, **clinical, "note": "", "error": row["error"]}]
    try:
        rows = measure(settings, case)
    except Exception as exc:  # a batch never dies for one case: the error becomes data
        return index, [{"case_id": case.case_id, **clinical, "note": "; ".join(case.notes), "error": describe(exc)}]
    note = "; ".join(case.notes)
    return index, [{"case_id": case.case_id, **r, **clinical, "note": _join(note, r.get("note")), "error": ""}
                   for r in rows]


def _join(*texts: str | None) -> str:
    return "; ".join(t for t in texts if t)


def carried_columns(frame: pd.DataFrame, carry: bool | Sequence[str], exclude: Iterable[str] = ()) -> list[str]:
    """The clinical columns of ``frame`` to copy into a result table (never paths, ``case_id`` or ``error``)."""
    if carry is False:
        return []
    excluded = {"case_id", *STATUS_COLUMNS, *path_columns(frame), *exclude}
    if carry is True:
        return [c for c in frame.columns if c not in excluded]
    unknown = [c for c in carry if c not in frame.columns]
    if unknown:
        raise CohortError(f"cannot carry {unknown}: not columns of the cohort ({list(frame.columns)})")
    return [c for c in carry if c not in excluded]


def case_counts(table: pd.DataFrame) -> tuple[int, int]:
    """``(ok, failed)``: number of cases of a biomarker table without and with an ``error``."""
    failed = table.loc[table["error"].astype(bool), "case_id"].unique()
    return int(table["case_id"].nunique() - len(failed)), int(len(failed))


def label_map(labels: int | Sequence[int] | Mapping[str, int] | None, what: str = "labels") -> dict[str, int] | None:
    """Normalise a labels argument to ``{name: label}`` (names ``'1'``, ``'2'``... for bare numbers); ``None`` stays.

    Labels must be positive integers; names must be unique. Raises :class:`SettingsError` otherwise.
    """
    if labels is None:
        return None
    if isinstance(labels, Mapping):
        pairs = [(str(k), v) for k, v in labels.items()]
    elif isinstance(labels, int | np.integer):
        pairs = [(str(int(labels)), labels)]
    else:
        pairs = [(str(v), v) for v in labels]
    result: dict[str, int] = {}
    for name, value in pairs:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise SettingsError(f"{what}: {name!r} -> {value!r} is not a positive integer label")
        result[name] = int(value)
    if not result:
        raise SettingsError(f"{what}: empty; give at least one label or None for all labels present")
    return result


def select(array: np.ndarray, label: int | None) -> np.ndarray:
    """Boolean selection of ``label`` in a label array (``None``: every non-zero voxel)."""
    return array > 0 if label is None else array == label


def package_table(name: str) -> pd.DataFrame:
    """Read a data table shipped with the package (``radiobio/biomarkers/<name>``)."""
    with resources.files("radiobio.biomarkers").joinpath(name).open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def mm3_to_ml(volume_mm3: float) -> float:
    """1 mL = 1 cm³ = 1000 mm³."""
    return volume_mm3 / 1000.0


def require_3d(image: sitk.Image, column: str, hint: str = "") -> None:
    """Raise :class:`~radiobio.errors.GeometryError` unless ``image`` is 3D."""
    if image.GetDimension() != 3:
        raise GeometryError(f"{column} is {image.GetDimension()}D; a volume needs a 3D image{hint}")


def _jsonable(settings: Any) -> Any:
    if is_dataclass(settings):
        settings = asdict(settings)
    if isinstance(settings, Mapping):
        return {str(k): _jsonable(v) for k, v in settings.items()}
    if isinstance(settings, list | tuple):
        return [_jsonable(v) for v in settings]
    if isinstance(settings, pd.DataFrame):
        return settings.to_dict("records")
    if isinstance(settings, np.generic):
        return settings.item()
    if settings is None or isinstance(settings, str | int | float | bool):
        return settings
    return str(settings)
