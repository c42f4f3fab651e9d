"""Batch PyRadiomics extraction: cohort table in, feature table out (one row per ``case_id`` × ``label``).

Cases run through :func:`radiobio.batch.run_batch` (this process, a local pool or a Dask ``Client``); a failing case
or label becomes a row with an ``error``; with ``out=`` every finished case is written atomically and a re-run
resumes where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radiobio.batch import Case, load_cases, order_like, run_batch
from radiobio.errors import CohortError, SettingsError
from radiobio.features.ibsi import IBSI_FAMILIES, IbsiSettings, check_convention, ibsi_settings
from radiobio.features.settings import load_params, params_hash, preset_name
from radiobio.labels import label_map
from radiobio.provenance import manifest_path
from radiobio.tables import PartStore, check_table_suffix, read_table, write_table

LabelSpec = None | int | Sequence[int] | Mapping[str, int]
ID_COLUMNS = ("case_id", "label", "label_name", "note", "error")
#: PyRadiomics feature classes: a feature column is ``<image type>_<class>_<feature>``.
FEATURE_CLASSES = {"shape", "shape2D", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}


@dataclass(frozen=True)
class ExtractionSettings:
    """What every case of one extraction shares: the parameters, their hash and the columns to read."""

    params: dict[str, Any]
    params_key: str
    image_column: str
    mask_column: str
    preset: str | None = None
    labels: dict[str, int] | None = None  #: NamedLabels renumber each mask by its own label names
    convention: str = "pyradiomics"
    ibsi: IbsiSettings | None = None  #: the checked IBSI processing when ``convention`` is ``"ibsi"``


def extract_features(cohort: Any, *, params: str | os.PathLike | dict[str, Any] = "ct", mask_column: str = "mask",
                     image_column: str = "image", labels: LabelSpec = None, jobs: int | None = None,
                     executor: Any = None, out: str | os.PathLike | None = None, progress: bool = False,
                     resample_masks: bool = False, convention: str = "pyradiomics") -> pd.DataFrame:
    """Extract radiomics features for every case and label of a cohort.

    ``cohort``: a cohort table or manifest path (see :func:`radiobio.read_cohort`). ``params``: a preset
    (``"ct"``, ``"mr"``, ``"ibsi-ct"``, ``"ibsi-config-a"``..., any case), a PyRadiomics YAML file, or a dict.
    ``labels``: ``None`` for every
    non-zero label of each mask, a list of label values, or ``{name: value}``; the ``label_name`` column names each
    label (the number as text without names). A requested label absent from a case's mask gives a row without
    features and a ``note``, not an error. A cohort column ``label`` (PyRadiomics batch files) selects labels per
    row. ``jobs``: ``None`` or 1 in this process, N local processes, -1 all cores; ``executor``: a Dask
    ``distributed.Client`` (or any ``concurrent.futures`` executor) instead. ``out``: a ``.parquet``, ``.csv`` or
    ``.tsv`` path, checked before the first case; finished cases are saved as they complete and skipped when the
    same command runs again with the same parameters. ``resample_masks``: a mask on another grid is resampled onto
    the image (PyRadiomics' ``correctMask``). ``convention``: ``"pyradiomics"`` (PyRadiomics' names, definitions and
    image processing) or ``"ibsi"`` (IBSI 1 image processing, tags and definitions; see :mod:`radiobio.features.ibsi`
    and the ``ibsi-*`` presets).

    Returns one row per (``case_id``, ``label``): cohort columns, ``label``, ``label_name``, ``note``, ``error``
    (``""`` when the label succeeded) and features: under ``"pyradiomics"`` named as PyRadiomics names them, in
    PyRadiomics' units (mm, mm², mm³ for shape); under ``"ibsi"`` named ``original_<IBSI tag>`` in IBSI's units (mm,
    mm², mm³ for morphology), with ``diagnostics_<IBSI tag>`` columns when the ``diag`` family is asked for.
    Provenance (convention, parameters, preset, labels, hash, versions) is in ``attrs["provenance"]`` and in the
    output file's metadata; resuming a table made under the other convention is refused.
    """
    check_convention(convention)
    out_path = check_table_suffix(out) if out is not None else None
    parameters = load_params(params)
    if resample_masks:
        parameters.setdefault("setting", {})["correctMask"] = True
    ibsi = None
    if convention == "ibsi":
        ibsi = ibsi_settings(parameters)
    elif "ibsi" in parameters:
        raise SettingsError(f"parameters {_params_name(params)} have an ibsi section, which only the IBSI convention "
                            f"reads: pass convention='ibsi' (radiobio extract --convention ibsi)")
    key = params_hash(parameters) if convention == "pyradiomics" else params_hash({**parameters,
                                                                                  "convention": convention})
    wanted = label_map(labels)
    table = load_cases(cohort, stage="extract", required=(image_column, mask_column))
    if mask_column not in table.columns:  # pragma: no cover - load_cases raised already
        raise CohortError(f"cohort has no mask column {mask_column!r}")
    frame = _case_rows(table, image_column, mask_column, wanted)
    settings = ExtractionSettings(parameters, key, image_column, mask_column, preset_name(params), wanted,
                                  convention, ibsi)

    store = PartStore(out_path, key) if out_path is not None else None
    previous = _previous_rows(out_path, store, key, convention)
    done = set(previous.loc[previous["error"] == "", "case_id"]) if len(previous) else set()
    todo = frame[~frame["case_id"].isin(done)]
    todo = todo.iloc[np.argsort([-_file_bytes(p) for p in todo[image_column]], kind="stable")]  # largest first

    rows = run_batch(todo, extract_case, settings, stage="extract", jobs=jobs, executor=executor,
                     progress=progress, on_case=store.write if store is not None else None)
    fresh_ids = set(todo["case_id"])
    kept = previous[~previous["case_id"].isin(fresh_ids)] if len(previous) else previous
    features = _assemble(table, kept, rows, wanted)
    features.attrs["provenance"] = provenance(parameters, key, mask_column, preset=preset_name(params),
                                              labels=wanted, cohort=cohort, resumed_cases=len(frame) - len(todo),
                                              convention=convention)
    if out_path is not None:
        write_table(features, out_path)
        store.clear()
    return features


def read_feature_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a feature table written by :func:`extract_features` (provenance restored into ``attrs``; ``error`` and
    ``note`` are ``""`` where empty)."""
    return read_table(path, what="feature table")


def provenance(parameters: dict[str, Any], key: str, mask_column: str, *, preset: str | None = None,
               labels: Mapping[str, int] | None = None, cohort: Any = None,
               resumed_cases: int = 0, convention: str = "pyradiomics") -> dict[str, Any]:
    """Convention, parameters, preset, labels, their hash and the versions of radiobio, PyRadiomics, SimpleITK and
    NumPy."""
    import radiomics
    import SimpleITK as sitk

    from radiobio import __version__

    return {"stage": "extract", "convention": convention, "params": parameters, "preset": preset, "params_hash": key,
            "labels": dict(labels) if labels else None, "mask_column": mask_column,
            "cohort": manifest_path(cohort), "resumed_cases": resumed_cases,
            "radiobio": __version__, "pyradiomics": radiomics.__version__, "SimpleITK": sitk.Version_VersionString(),
            "numpy": np.__version__, "pandas": pd.__version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def extract_case(settings: ExtractionSettings, case: Case) -> list[dict[str, Any]]:
    """Extract one case (the measure of :func:`extract_features`): one row per label, each with its ``error`` or
    ``note``; a case that cannot be read at all raises and becomes one error row."""
    from radiobio.features.engine import extract_case_features

    labels = case.row["_labels"]
    image = case.image(settings.image_column, check=False)  # the series the cohort's series columns choose
    mask = case.mask(settings.mask_column, check=False)  # label files, segmenter folders, SEG, RS.dcm#ROI
    features, errors, done, notes = extract_case_features(image, mask, list(labels) if labels else None,
                                                          settings.params, settings.params_key, ibsi=settings.ibsi)
    mismatch = _modality_mismatch(settings.preset, case.value("modality"))
    if mismatch:
        case.note(mismatch)
    rows = []
    for label in done:
        row: dict[str, Any] = {"label": label, "error": errors.get(label, ""), "note": notes.get(label, "")}
        row.update({name: _as_float(value) for name, value in features.get(label, {}).items()})
        rows.append(row)
    return rows


#: The modality each preset was made for, and the ``modality`` cohort values (DICOM codes and plain words) of each.
PRESET_MODALITIES = {"ct": {"CT"}, "mr": {"MR", "MRI"}, "ibsi-ct": {"CT"},
                     **{f"ibsi-config-{c}": {"CT"} for c in "abcde"}}


def _modality_mismatch(preset: str | None, modality: Any) -> str:
    """A note when the cohort's ``modality`` says the image is not what the preset was made for."""
    if preset not in PRESET_MODALITIES or modality is None:
        return ""
    value = str(modality).strip().upper()
    known = {m for values in PRESET_MODALITIES.values() for m in values}
    if value in known and value not in PRESET_MODALITIES[preset]:
        made_for = "/".join(sorted(PRESET_MODALITIES[preset]))
        return f"preset {preset!r} is made for {made_for} images, but modality is {modality!r}"
    return ""


def _params_name(params: Any) -> str:
    if isinstance(params, dict):
        return "(a dict)"
    preset = preset_name(params)
    return f"of preset {preset!r}" if preset else repr(str(params))


def _file_bytes(path: Any) -> int:
    try:
        return os.path.getsize(path) if isinstance(path, str) and os.path.isfile(path) else 0
    except OSError:
        return 0


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _label_int(value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"label {value!r} is not a number; labels are the integer values of the mask") from None
    if number != int(number) or number <= 0:
        raise SettingsError(f"label {value!r} must be a positive integer (0 is background)")
    return int(number)


def _case_rows(table: pd.DataFrame, image_column: str, mask_column: str,
               wanted: Mapping[str, int] | None) -> pd.DataFrame:
    """One row per (case_id, image, mask) with the labels to extract in ``_labels``: rows of a PyRadiomics batch
    that differ only by ``label`` are merged, so each image is read once for all its labels."""
    grouped: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    for row in table.to_dict("records"):
        key = (row["case_id"], row[image_column], row[mask_column])
        entry = grouped.setdefault(key, {**row, "_labels": [], "_all": False, "error": row.get("error", "")})
        if "label" in table.columns and not pd.isna(row["label"]):
            try:
                entry["_labels"].append(_label_int(row["label"]))
            except SettingsError as exc:
                entry["error"] = entry["error"] or f"SettingsError: {exc}"
        else:
            entry["_all"] = True
    wanted_values = tuple(wanted.values()) if wanted else None
    records = []
    for entry in grouped.values():
        labels = wanted_values if entry.pop("_all") else tuple(dict.fromkeys(entry["_labels"]))
        records.append({**entry, "_labels": labels})
    return pd.DataFrame.from_records(records, columns=[*table.columns, "_labels"])


def _previous_rows(out: os.PathLike | None, store: PartStore | None, key: str, convention: str) -> pd.DataFrame:
    """The finished rows of an earlier run of the same parameters (its output and its parts); raises
    :class:`SettingsError` when the earlier output holds features of the other convention, which this run would
    otherwise overwrite with names and values that differ."""
    if out is None or store is None:
        return pd.DataFrame()
    frames = []
    if os.path.exists(out):
        try:
            finished = read_table(out)
        except Exception:  # an unreadable earlier output is simply recomputed
            finished = pd.DataFrame()
        made = finished.attrs.get("provenance") or {}
        if made.get("stage") == "extract" and made.get("convention", "pyradiomics") != convention:
            raise SettingsError(f"{out} holds features of the {made.get('convention', 'pyradiomics')!r} convention; "
                                f"this run uses {convention!r}, whose names and values differ: write to another "
                                f"file, or delete {out} to replace it")
        if made.get("params_hash") == key:
            frames.append(finished)
    parts = store.read_all()
    if len(parts):
        frames.append(parts)
    if not frames:
        return pd.DataFrame()
    merged = pd.concat(frames, ignore_index=True)
    merged["case_id"] = merged["case_id"].astype(str)
    for column in ("error", "note"):
        merged[column] = merged[column].fillna("").astype(str) if column in merged else ""
    # parts are newer than a finished output: keep the last occurrence of each (case_id, label)
    return merged.drop_duplicates(subset=["case_id", "label"], keep="last")


def _assemble(table: pd.DataFrame, previous: pd.DataFrame, rows: list[dict[str, Any]],
              wanted: Mapping[str, int] | None) -> pd.DataFrame:
    fresh = pd.DataFrame(rows)
    if len(previous):
        keep = [c for c in previous.columns if c in ID_COLUMNS or _is_feature(c)]
        fresh = pd.concat([previous[keep], fresh], ignore_index=True)
    for column in ("label", "note", "error"):
        if column not in fresh.columns:
            fresh[column] = pd.Series(dtype=object)
    fresh = fresh[[c for c in fresh.columns if c in ID_COLUMNS or _is_feature(c)]]
    fresh["label"] = pd.array(fresh["label"], dtype="Int64")
    for column in ("note", "error"):
        fresh[column] = fresh[column].fillna("").astype(str)
    names = {value: name for name, value in (wanted or {}).items()}
    fresh["label_name"] = [None if pd.isna(v) else names.get(int(v), str(int(v))) for v in fresh["label"]]
    clinical = table.drop(columns=[c for c in ("error", "note", "label") if c in table.columns])
    clinical = clinical.drop_duplicates(subset="case_id", keep="first")
    fresh = order_like(fresh, table, extra=["label"])
    merged = clinical.merge(fresh, on="case_id", how="right")
    first = [*clinical.columns, "label", "label_name", "note", "error"]
    features = [c for c in merged.columns if c not in first]
    return merged[first + features].reset_index(drop=True)


def _is_feature(column: str) -> bool:
    """True for feature names: PyRadiomics' ``<image type>_<feature class>_<feature>``, IBSI's ``<image
    type>_<family>_<feature>`` and the IBSI diagnostics ``diagnostics_<tag>``."""
    parts = str(column).split("_")
    if len(parts) >= 3 and parts[0] == "diagnostics":
        return True
    return len(parts) >= 3 and (parts[1] in FEATURE_CLASSES or parts[1] in IBSI_FAMILIES)
