"""Checks at the boundary of every outcome function: durations, events, binary targets and covariates.

Each check raises :class:`~radiobio.errors.OutcomeError` naming the column and the fix, so a bad table fails before
any model is fitted.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from radiobio.errors import OutcomeError, OutcomeWarning


def require_columns(df: pd.DataFrame, columns: Sequence[str], role: str = "column") -> None:
    """Raise :class:`OutcomeError` when any of ``columns`` is missing from ``df``."""
    if not isinstance(df, pd.DataFrame):
        raise OutcomeError(f"expected a pandas DataFrame, got {type(df).__name__}; load the table with pandas first")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise OutcomeError(f"{role} {missing} not in the table (columns: {list(df.columns)}); check the spelling")


def check_durations(df: pd.DataFrame, duration: str) -> np.ndarray:
    """Return ``df[duration]`` as floats (any time unit); raise on missing, non-numeric, NaN or negative values."""
    require_columns(df, [duration], "duration column")
    values = pd.to_numeric(df[duration], errors="coerce")
    bad_text = values.isna() & df[duration].notna()
    if bad_text.any():
        raise OutcomeError(f"duration column {duration!r} has {int(bad_text.sum())} non-numeric value(s) "
                           f"(e.g. {df.loc[bad_text, duration].iloc[0]!r}); convert it to numbers of days/months")
    if values.isna().any():
        raise OutcomeError(f"duration column {duration!r} has {int(values.isna().sum())} missing value(s); drop "
                           f"those rows or fill in the follow-up time")
    if not np.isfinite(values).all():
        raise OutcomeError(f"duration column {duration!r} has infinite values; use the last follow-up time instead")
    if (values < 0).any():
        raise OutcomeError(f"duration column {duration!r} has {int((values < 0).sum())} negative value(s) "
                           f"(min {values.min()}); durations are times since baseline, check the date arithmetic")
    return values.to_numpy(dtype=float)


def check_events(df: pd.DataFrame, event: str) -> np.ndarray:
    """Return ``df[event]`` as 0/1 integers; raise unless every value is 0/1 (or True/False)."""
    return _check_binary(df, event, "event column", "1 = event (death, progression), 0 = censored")


def check_target(df: pd.DataFrame, target: str) -> np.ndarray:
    """Return a binary endpoint ``df[target]`` as 0/1 integers; raise unless it is 0/1 with both classes present."""
    values = _check_binary(df, target, "target column", "1 = outcome present, 0 = absent")
    if len(np.unique(values)) < 2:
        raise OutcomeError(f"target column {target!r} holds only the value {values[0]}; a binary endpoint needs "
                           f"both classes")
    return values


def _check_binary(df: pd.DataFrame, column: str, role: str, meaning: str) -> np.ndarray:
    require_columns(df, [column], role)
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
        raise OutcomeError(f"{role} {column!r} must hold only 0/1 ({meaning}); found {examples}: recode it, "
                           f"e.g. df[{column!r}] = (df[{column!r}] == <event value>).astype(int)")
    return numeric.to_numpy(dtype=int)


def check_survival(df: pd.DataFrame, duration: str, event: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a survival endpoint; return (durations, events) and raise when there is no event at all."""
    durations = check_durations(df, duration)
    events = check_events(df, event)
    if events.sum() == 0:
        raise OutcomeError(f"event column {event!r} has no events (all 0 = censored); survival models need at least "
                           f"one event: check the coding (1 = event)")
    return durations, events


def check_covariates(df: pd.DataFrame, covariates: Sequence[str], allow_missing: bool = False) -> pd.DataFrame:
    """Return the numeric covariate table (categorical columns one-hot encoded, first level dropped).

    Raises on missing columns, missing values (unless ``allow_missing``) and constant covariates.
    """
    covariates = list(covariates)
    if not covariates:
        raise OutcomeError("no covariates given; pass at least one column name")
    require_columns(df, covariates, "covariate")
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
        if pd.api.types.is_bool_dtype(values):
            parts.append(values.astype(float).rename(column))
        elif pd.api.types.is_numeric_dtype(values):
            parts.append(values.astype(float).rename(column))
        else:
            dummies = pd.get_dummies(values.astype("category"), prefix=column, prefix_sep="=", drop_first=True,
                                     dtype=float)
            parts.append(dummies)
    return pd.concat(parts, axis=1)


def check_features(df: pd.DataFrame, features: Sequence[str]) -> list[str]:
    """Validate feature columns for modelling: present, numeric (NaN allowed, imputed later), not all missing."""
    features = list(features)
    if not features:
        raise OutcomeError("no feature columns given; pass the radiomics / biomarker columns to model")
    require_columns(df, features, "feature")
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


def read_table(path: str) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet table (e.g. a feature or clinical table) for the outcome commands."""
    import os

    if not os.path.exists(path):
        raise OutcomeError(f"table {path!r} does not exist; check the path")
    lower = str(path).lower()
    if lower.endswith(".parquet") or lower.endswith(".pq"):
        return pd.read_parquet(path)
    if lower.endswith(".tsv") or lower.endswith(".txt"):
        return pd.read_csv(path, sep="\t")
    if lower.endswith(".csv") or lower.endswith(".csv.gz"):
        return pd.read_csv(path)
    raise OutcomeError(f"cannot read {path!r}: use a .csv, .tsv or .parquet table")


def drop_failed_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop rows of a feature table whose ``error`` column is filled (failed extractions); return (table, dropped)."""
    if "error" not in table.columns:
        return table, 0
    failed = table["error"].fillna("").astype(str).str.len() > 0
    return table.loc[~failed].reset_index(drop=True), int(failed.sum())
