"""Batch PyRadiomics extraction: cohort table in, feature table out (one row per ``case_id`` × ``label``).

Cases run on a local process pool or any Dask ``Client``; a failing case or label becomes a row with an ``error``;
with ``out=`` every finished case is written atomically and a re-run resumes where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radiobio.cohort import read_cohort
from radiobio.errors import CohortError, RadiobioError, SettingsError, describe
from radiobio.features.settings import load_params, params_hash
from radiobio.tables import PartStore, read_table, write_table
from radiobio.parallel import map_cases

LabelSpec = None | Iterable[int] | Mapping[str, int]
ID_COLUMNS = ("case_id", "label", "label_name", "error")


@dataclass(frozen=True)
class CaseTask:
    """The work of one case: paths, labels to extract (None = all present), and the parameters."""

    case_id: str
    image: str | None
    mask: str | None
    labels: tuple[int, ...] | None
    params: dict[str, Any]
    params_key: str
    cohort_error: str = ""


def extract_features(cohort: Any, params: str | os.PathLike | dict[str, Any] = "ct", mask_column: str = "mask",
                     labels: LabelSpec = None, jobs: int | None = None, executor: Any = None,
                     out: str | os.PathLike | None = None, progress: bool = True) -> pd.DataFrame:
    """Extract PyRadiomics features for every case and label of a cohort.

    ``cohort``: a cohort table or manifest path (see :func:`radiobio.read_cohort`). ``params``: a preset
    (``"ct"``, ``"mr"``, ``"ibsi"``), a PyRadiomics YAML file, or a dict. ``labels``: ``None`` for every non-zero
    label of each mask, a list of label values, or ``{name: value}`` (adds a ``label_name`` column); a cohort column
    ``label`` (PyRadiomics batch files) selects labels per row. ``jobs``: local processes (default: all cores);
    ``executor``: a Dask ``distributed.Client`` (or any ``concurrent.futures`` executor) instead.
    ``out``: a ``.parquet`` or ``.csv`` path; finished cases are saved as they complete and skipped when the same
    command runs again with the same parameters.

    Returns one row per (``case_id``, ``label``): cohort columns, ``label``, ``error`` (empty when the label
    succeeded) and features named as PyRadiomics names them, in PyRadiomics' units (mm, mm², mm³ for shape).
    Provenance (parameters, hash, versions) is in ``attrs["provenance"]`` and in the output file's metadata.
    """
    table = read_cohort(cohort, errors="mark")
    if mask_column not in table.columns:
        raise CohortError(f"cohort has no mask column {mask_column!r}; mask columns present: "
                          f"{[c for c in table.columns if c.startswith('mask')] or 'none'}")
    parameters = load_params(params)
    key = params_hash(parameters)
    label_values, label_names = _normalise_labels(labels)
    tasks = _build_tasks(table, mask_column, label_values, parameters, key)

    store = PartStore(out, key) if out is not None else None
    previous = _previous_rows(out, store, key)
    done = set(previous.loc[previous["error"].fillna("") == "", "case_id"]) if len(previous) else set()
    todo = [t for t in tasks if t.case_id not in done]
    todo.sort(key=_image_bytes, reverse=True)  # largest first: workers finish together

    rows: list[dict[str, Any]] = []
    bar = _progress_bar(len(todo), progress)
    for case_id, case_rows in map_cases(run_case, todo, jobs=jobs, executor=executor):
        if store is not None:
            store.write(case_id, case_rows)
        rows.extend(case_rows)
        bar.update(1)
    bar.close()

    fresh_ids = {t.case_id for t in todo}
    kept = previous[~previous["case_id"].isin(fresh_ids)] if len(previous) else previous
    features = _assemble(table, kept, rows, mask_column, label_names)
    features.attrs["provenance"] = provenance(parameters, key, mask_column)
    features.attrs["resumed_cases"] = len(tasks) - len(todo)
    if out is not None:
        write_table(features, out, features.attrs["provenance"])
        store.clear()
    return features


def read_feature_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a feature table written by :func:`extract_features` (provenance restored into ``attrs``)."""
    return read_table(path)


def provenance(parameters: dict[str, Any], key: str, mask_column: str) -> dict[str, Any]:
    """Parameters, their hash and the versions of radiobio, PyRadiomics, SimpleITK and NumPy."""
    import radiomics
    import SimpleITK as sitk

    from radiobio import __version__

    return {"params": parameters, "params_hash": key, "mask_column": mask_column,
            "radiobio": __version__, "pyradiomics": radiomics.__version__, "SimpleITK": sitk.Version_VersionString(),
            "numpy": np.__version__, "pandas": pd.__version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def run_case(task: CaseTask) -> tuple[str, list[dict[str, Any]]]:
    """Extract one case; never raises for bad input: failures come back as rows with an ``error`` text."""
    from radiobio.features.engine import extract_case_features

    if task.cohort_error:
        return task.case_id, _error_rows(task, task.cohort_error)
    if task.mask is None:
        return task.case_id, _error_rows(task, "CohortError: no mask path for this case; segment it first or give "
                                               "one in the mask column")
    try:
        features, errors, labels = extract_case_features(task.image, task.mask, list(task.labels)
                                                         if task.labels is not None else None,
                                                         task.params, task.params_key)
    except RadiobioError as exc:
        return task.case_id, _error_rows(task, describe(exc))
    except Exception as exc:  # an unexpected library failure still must not stop the batch
        return task.case_id, _error_rows(task, f"{type(exc).__name__}: {exc}")
    rows = []
    for label in labels:
        row: dict[str, Any] = {"case_id": task.case_id, "label": label, "error": errors.get(label, "")}
        row.update({name: _as_float(value) for name, value in features.get(label, {}).items()})
        rows.append(row)
    return task.case_id, rows


def _image_bytes(task: CaseTask) -> int:
    try:
        return os.path.getsize(task.image) if task.image and os.path.isfile(task.image) else 0
    except OSError:
        return 0


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _error_rows(task: CaseTask, message: str) -> list[dict[str, Any]]:
    labels = task.labels if task.labels is not None else (None,)
    return [{"case_id": task.case_id, "label": label, "error": message} for label in labels]


def _normalise_labels(labels: LabelSpec) -> tuple[tuple[int, ...] | None, dict[int, str]]:
    if labels is None:
        return None, {}
    if isinstance(labels, Mapping):
        names = {_label_int(v): str(k) for k, v in labels.items()}
        return tuple(names), names
    if isinstance(labels, (int, np.integer)):
        return (_label_int(labels),), {}
    return tuple(_label_int(v) for v in labels), {}


def _label_int(value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"label {value!r} is not a number; labels are the integer values of the mask") from None
    if number != int(number) or number <= 0:
        raise SettingsError(f"label {value!r} must be a positive integer (0 is background)")
    return int(number)


def _build_tasks(table: pd.DataFrame, mask_column: str, labels: tuple[int, ...] | None,
                 parameters: dict[str, Any], key: str) -> list[CaseTask]:
    """One task per (case_id, image, mask): rows of a PyRadiomics batch that differ only by ``Label`` are merged,
    so each image is read once for all its labels."""
    grouped: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    for _, row in table.iterrows():
        key_ = (row["case_id"], row["image"], row[mask_column])
        entry = grouped.setdefault(key_, {"labels": [], "all": False, "error": ""})
        entry["error"] = entry["error"] or (row.get("error", "") or "")
        if "label" in table.columns and not pd.isna(row["label"]):
            try:
                entry["labels"].append(_label_int(row["label"]))
            except SettingsError as exc:
                entry["error"] = entry["error"] or describe(exc)
        else:
            entry["all"] = True
    tasks = []
    for (case_id, image, mask), entry in grouped.items():
        row_labels = labels if entry["all"] else tuple(dict.fromkeys(entry["labels"]))
        tasks.append(CaseTask(case_id, image, mask, row_labels, parameters, key, entry["error"]))
    return tasks


def _previous_rows(out: str | os.PathLike | None, store: PartStore | None, key: str) -> pd.DataFrame:
    if out is None or store is None:
        return pd.DataFrame()
    frames = []
    if os.path.exists(out):
        try:
            finished = read_table(out)
        except Exception:  # an unreadable earlier output is simply recomputed
            finished = pd.DataFrame()
        if finished.attrs.get("provenance", {}).get("params_hash") == key:
            frames.append(finished)
    parts = store.read_all()
    if len(parts):
        frames.append(parts)
    if not frames:
        return pd.DataFrame()
    merged = pd.concat(frames, ignore_index=True)
    merged["case_id"] = merged["case_id"].astype(str)
    # parts are newer than a finished output: keep the last occurrence of each (case_id, label)
    return merged.drop_duplicates(subset=["case_id", "label"], keep="last")


def _assemble(table: pd.DataFrame, previous: pd.DataFrame, rows: list[dict[str, Any]], mask_column: str,
              label_names: dict[int, str]) -> pd.DataFrame:
    fresh = pd.DataFrame(rows)
    if len(previous):
        keep = [c for c in previous.columns if c in ID_COLUMNS or _is_feature(c)]
        fresh = pd.concat([previous[keep], fresh], ignore_index=True)
    if fresh.empty:
        fresh = pd.DataFrame(columns=["case_id", "label", "error"])
    fresh["label"] = pd.array(fresh["label"], dtype="Int64")
    fresh["error"] = fresh["error"].fillna("").astype(str)
    if label_names:
        fresh["label_name"] = fresh["label"].map(lambda v: label_names.get(int(v)) if not pd.isna(v) else None)
    clinical = table.drop(columns=[c for c in ("error", "label") if c in table.columns])
    clinical = clinical.drop_duplicates(subset="case_id", keep="first")
    order = {case_id: i for i, case_id in enumerate(table["case_id"])}
    fresh["_order"] = fresh["case_id"].map(order)
    fresh = fresh.sort_values(["_order", "label"], kind="stable").drop(columns="_order")
    merged = clinical.merge(fresh, on="case_id", how="right")
    first = list(clinical.columns) + [c for c in ("label", "label_name", "error") if c in merged.columns]
    features = [c for c in merged.columns if c not in first]
    return merged[first + features].reset_index(drop=True)


FEATURE_CLASSES = {"shape", "shape2D", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}


def _is_feature(column: str) -> bool:
    """True for PyRadiomics feature names: ``<image type>_<feature class>_<feature>``."""
    parts = column.split("_")
    return len(parts) >= 3 and parts[1] in FEATURE_CLASSES


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="case", desc="extract")
