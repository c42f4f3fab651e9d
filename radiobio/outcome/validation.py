"""Checks at the boundary of every outcome function: durations, events, binary targets, covariates and patients.

Each check raises :class:`~radiobio.errors.OutcomeError` naming the column and the fix, so a bad table fails before
any model is fitted. Tables are read with :func:`radiobio.tables.read_table` (one reader for the whole package).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from radiobio.errors import OutcomeError, OutcomeWarning

__all__ = ["OutcomeWarning", "check_covariates", "check_durations", "check_events", "check_features",
           "check_patients", "check_survival", "check_target", "drop_failed_rows", "require_columns"]

#: The column that names the patient (or case) of a row in radiobio's tables.
CASE_COLUMN = "case_id"


def require_columns(df: pd.DataFrame, *, columns: Sequence[str], role: str = "column") -> None:
    """Raise :class:`OutcomeError` when ``df`` is not a DataFrame or any of ``columns`` is missing from it."""
    if not isinstance(df, pd.DataFrame):
        raise OutcomeError(f"expected a pandas DataFrame, got {type(df).__name__}; load the table with "
                           f"radiobio.tables.read_table or pandas first")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise OutcomeError(f"{role} {missing} not in the table (columns: {list(df.columns)}); check the spelling")


def check_durations(df: pd.DataFrame, *, duration_column: str) -> np.ndarray:
    """Return ``df[duration_column]`` as floats (any time unit); raise on missing, non-numeric, NaN or negative
    values."""
    require_columns(df, columns=[duration_column], role="duration column")
    raw = df[duration_column]
    values = pd.to_numeric(raw, errors="coerce")
    bad_text = values.isna() & raw.notna()
    if bad_text.any():
        raise OutcomeError(f"duration column {duration_column!r} has {int(bad_text.sum())} non-numeric value(s) "
                           f"(e.g. {raw[bad_text].iloc[0]!r}); convert it to numbers of days/months")
    if values.isna().any():
        raise OutcomeError(f"duration column {duration_column!r} has {int(values.isna().sum())} missing value(s); "
                           f"drop those rows or fill in the follow-up time")
    if not np.isfinite(values).all():
        raise OutcomeError(f"duration column {duration_column!r} has infinite values; use the last follow-up time "
                           f"instead")
    if (values < 0).any():
        raise OutcomeError(f"duration column {duration_column!r} has {int((values < 0).sum())} negative value(s) "
                           f"(min {values.min()}); durations are times since baseline, check the date arithmetic")
    return values.to_numpy(dtype=float)


def check_events(df: pd.DataFrame, *, event_column: str, event_value: Any = None) -> np.ndarray:
    """Return ``df[event_column]`` as 0/1 integers.

    Without ``event_value`` every value must be 0/1 (or True/False). With it, a row is an event when its value
    equals ``event_value`` and censored otherwise (R's 1 = censored / 2 = dead coding: ``event_value=2``); a text
    ``event_value`` such as ``"2"`` (from the command line) matches a numeric column by value.
    """
    if event_value is None:
        return _check_binary(df, event_column, "event column", "1 = event (death, progression), 0 = censored",
                             hint="or give the value that means an event (event_value=2, CLI --event-value 2)")
    require_columns(df, columns=[event_column], role="event column")
    raw = df[event_column]
    if raw.isna().any():
        raise OutcomeError(f"event column {event_column!r} has {int(raw.isna().sum())} missing value(s); drop those "
                           f"rows or code them")
    target = _same_kind(event_value, raw)
    events = (raw == target).to_numpy()
    if not events.any():
        present = sorted({str(v) for v in raw.unique()})[:8]
        raise OutcomeError(f"event column {event_column!r} holds no value {event_value!r} (values: {present}); "
                           f"give one of them as the event value")
    return events.astype(int)


def _same_kind(value: Any, column: pd.Series) -> Any:
    """``value`` converted to the kind of ``column``: a number for a numeric column, else text."""
    if pd.api.types.is_bool_dtype(column):
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise OutcomeError(f"event value {value!r} does not match a True/False column; give true or false")
    if pd.api.types.is_numeric_dtype(column):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise OutcomeError(f"event value {value!r} is not a number, but the event column is numeric; give "
                               f"one of its values") from None
    return str(value) if not isinstance(value, str) else value


def check_target(df: pd.DataFrame, *, target_column: str) -> np.ndarray:
    """Return a binary endpoint ``df[target_column]`` as 0/1 integers; raise unless it is 0/1 with both classes."""
    values = _check_binary(df, target_column, "target column", "1 = outcome present, 0 = absent",
                           hint="e.g. df[...] = (df[...] == <positive value>).astype(int)")
    if len(np.unique(values)) < 2:
        raise OutcomeError(f"target column {target_column!r} holds only the value {values[0]}; a binary endpoint "
                           f"needs both classes")
    return values


def _check_binary(df: pd.DataFrame, column: str, role: str, meaning: str, *, hint: str) -> np.ndarray:
    require_columns(df, columns=[column], role=role)
    raw = df[column]
    if raw.isna().any():
        raise OutcomeError(f"{role} {column!r} has {int(raw.isna().sum())} missing value(s); drop those rows or "
                           f"code them as 0/1 ({meaning})")
    if raw.dtype == bool:
        return raw.to_numpy(dtype=int)
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = numeric.isna() | ~numeric.isin([0, 1])
    if bad.any():
        examples = sorted({str(v) for v in raw[bad].unique()})[:5]
        raise OutcomeError(f"{role} {column!r} must hold only 0/1 ({meaning}); found {examples}: recode it, {hint}")
    return numeric.to_numpy(dtype=int)


def check_survival(df: pd.DataFrame, *, duration_column: str, event_column: str,
                   event_value: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a survival endpoint; return (durations, events) and raise when there is no event at all."""
    durations = check_durations(df, duration_column=duration_column)
    events = check_events(df, event_column=event_column, event_value=event_value)
    if events.sum() == 0:
        raise OutcomeError(f"event column {event_column!r} has no events (all 0 = censored); survival models need "
                           f"at least one event: check the coding (1 = event, or give event_value)")
    return durations, events


def check_patients(df: pd.DataFrame, *, patient_column: str | None = None) -> np.ndarray:
    """The patient of every row, as text: ``df[patient_column]`` when given, else one patient per row.

    Without ``patient_column`` a table whose ``case_id`` repeats (a feature table with one row per case × label) is
    refused: its rows are not independent patients, and splitting them across folds leaks. Give the patient column
    to group by, or make one row per patient with :func:`radiobio.features.to_wide`.
    """
    if patient_column is not None:
        require_columns(df, columns=[patient_column], role="patient column")
        ids = df[patient_column]
        if ids.isna().any():
            raise OutcomeError(f"patient column {patient_column!r} has {int(ids.isna().sum())} missing value(s); give "
                               f"every row its patient")
        return ids.astype(str).to_numpy()
    if CASE_COLUMN in df.columns:
        ids = df[CASE_COLUMN].astype(str)
        repeated = ids[ids.duplicated(keep=False)]
        if len(repeated):
            examples = list(dict.fromkeys(repeated))[:3]
            raise OutcomeError(
                f"{CASE_COLUMN!r} repeats ({repeated.nunique()} patients on several rows, e.g. {examples}): rows of "
                f"one patient are not independent and must stay in one fold. Give patient_column={CASE_COLUMN!r} "
                f"(CLI --patient-column {CASE_COLUMN}) to group them, or make one row per patient with "
                f"radiobio.features.to_wide(features)")
        return ids.to_numpy()
    return np.arange(len(df)).astype(str)


def check_covariates(df: pd.DataFrame, *, covariates: Sequence[str], allow_missing: bool = False) -> pd.DataFrame:
    """Return the numeric covariate table (categorical columns one-hot encoded, first level dropped).

    Raises on missing columns, missing values (unless ``allow_missing``) and constant covariates.
    """
    covariates = list(covariates)
    if not covariates:
        raise OutcomeError("no covariates given; pass at least one column name")
    require_columns(df, columns=covariates, role="covariate")
    if len(set(covariates)) != len(covariates):
        raise OutcomeError(f"covariates listed twice: {sorted({c for c in covariates if covariates.count(c) > 1})}")
    parts = []
    for column in covariates:
        values = df[column]
        if not allow_missing and values.isna().any():
            raise OutcomeError(f"covariate {column!r} has {int(values.isna().sum())} missing value(s); drop those "
                               f"rows (df.dropna(subset=[{column!r}])) or impute them")
        if values.nunique(dropna=True) < 2:
            value = values.dropna().iloc[0] if values.notna().any() else "all missing"
            raise OutcomeError(f"covariate {column!r} is constant ({value}); it carries no information: remove it "
                               f"from the covariates")
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            parts.append(values.astype(float).rename(column))
        else:
            dummies = pd.get_dummies(values.astype("category"), prefix=column, prefix_sep="=", drop_first=True,
                                     dtype=float)
            parts.append(dummies)
    return pd.concat(parts, axis=1)


def check_features(df: pd.DataFrame, *, features: Sequence[str]) -> list[str]:
    """Validate feature columns for modelling: present, numeric (NaN allowed, imputed later), not all missing."""
    features = list(features)
    if not features:
        raise OutcomeError("no feature columns given; pass the radiomics / biomarker columns to model")
    require_columns(df, columns=features, role="feature")
    non_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(df[f])]
    if non_numeric:
        raise OutcomeError(f"feature columns {non_numeric[:5]} are not numeric; encode them as numbers or leave them "
                           f"out of `features`")
    empty = [f for f in features if df[f].isna().all()]
    if empty:
        raise OutcomeError(f"feature columns {empty[:5]} are entirely missing; leave them out of `features`")
    constant = [f for f in features if df[f].nunique(dropna=True) < 2]
    if constant:
        warnings.warn(f"{len(constant)} constant feature column(s) (e.g. {constant[:3]}) carry no information; the "
                      f"variance filter removes them in every fold", OutcomeWarning, stacklevel=3)
    return features


def drop_failed_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop rows of a feature table whose ``error`` column is filled (failed extractions); return (table, dropped)."""
    if "error" not in table.columns:
        return table, 0
    failed = table["error"].fillna("").astype(str).str.len() > 0
    return table.loc[~failed].reset_index(drop=True), int(failed.sum())
