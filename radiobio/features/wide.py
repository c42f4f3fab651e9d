"""One row per patient from a feature table with one row per case × label.

:func:`radiobio.extract_features` writes one row per ``case_id`` × ``label``. Models of patient outcome need one
row per patient: :func:`to_wide` spreads the features of each label into their own columns, named
``<label name>__<feature>`` (``anterior__original_shape_VoxelVolume``), and keeps the clinical columns once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from radiobio.errors import CohortError, SettingsError

#: Columns that describe a row of the long table rather than the patient or a feature.
BOOKKEEPING = ("label", "error")
#: Ways :func:`to_wide` handles cases with a failed label.
ERROR_MODES = ("mark", "drop", "raise")


def to_wide(features: pd.DataFrame, *, label_column: str = "label_name", case_column: str = "case_id",
            feature_columns: Sequence[str] | None = None, errors: str = "mark",
            separator: str = "__") -> pd.DataFrame:
    """Turn a feature table (one row per case × label) into one row per case.

    Each feature column becomes one column per label, named ``<label><separator><feature>``: the label is the row's
    ``label_column`` value (``anterior``), or its ``label`` number (``1``) where that is absent or empty. A
    case without a row for some label gets NaN in that label's columns. Feature columns are, by default, those
    named as PyRadiomics names features (``<image type>_<class>_<feature>``, e.g. ``original_glcm_Contrast``,
    in PyRadiomics' units) and ``diagnostics_*``; give ``feature_columns`` for other per-label tables (e.g.
    ``["volume_ml"]``). Every other column (age, os_days, image, ...) is a clinical column, kept once: it must
    hold the same value on every row of a case, else :class:`~radiobio.errors.CohortError` names the case and
    column.

    Failed rows (a filled ``error`` column): with ``errors="mark"`` (default) the case is kept, the failed label's
    features are NaN, and the case's ``error`` column lists the failures as ``<label>: <error>`` joined by ``"; "``
    (so ``wide[wide["error"] == ""]`` selects the complete cases, and ``radiobio signature`` leaves the others
    out); ``errors="drop"`` leaves every case with a failed label out; ``errors="raise"`` raises
    :class:`~radiobio.errors.CohortError` listing them.

    Returns ``case_column``, the clinical columns, ``error``, then the features label by label (labels in their
    order of first appearance). Provenance in ``attrs`` is kept, with the settings added under ``"to_wide"``.
    """
    _check_arguments(features, label_column, case_column, errors, separator)
    table = features.reset_index(drop=True)
    prefixes = _prefixes(table, label_column)
    failure = table["error"].map(_text) if "error" in table.columns else pd.Series("", index=table.index)
    unlabelled = prefixes.isna()
    if (unlabelled & (failure == "")).any():
        example = table.loc[unlabelled & (failure == ""), case_column].iloc[0]
        raise CohortError(f"case {example!r} has a row without a label ({label_column!r} and 'label' empty) and "
                          f"without an error; give every row its label")
    duplicated = table[~unlabelled].assign(_prefix=prefixes).duplicated([case_column, "_prefix"])
    if duplicated.any():
        row = table[~unlabelled].loc[duplicated].iloc[0]
        raise CohortError(f"case {row[case_column]!r} has several rows for label {prefixes[row.name]!r}; give each "
                          f"case one row per label (drop repeated extractions first)")
    per_label = _feature_columns(table, feature_columns)
    roles = {case_column, label_column, *BOOKKEEPING}
    clinical = [c for c in table.columns if c not in roles and c not in per_label]
    _check_clinical(table, case_column, clinical)

    cases = list(dict.fromkeys(table[case_column]))
    wide = table.drop_duplicates(case_column).set_index(case_column)[clinical].reindex(cases)
    messages = (prefixes.fillna("case").astype(str) + ": " + failure).where(failure != "", "")
    wide["error"] = messages.groupby(table[case_column]).agg(lambda m: "; ".join(v for v in m if v)).reindex(cases)
    blocks = []
    for prefix in dict.fromkeys(prefixes.dropna()):
        rows = table[(prefixes == prefix)].set_index(case_column)[per_label]
        rows.loc[failure[(prefixes == prefix)].to_numpy() != ""] = float("nan")
        blocks.append(rows.add_prefix(f"{prefix}{separator}").reindex(cases))
    wide = pd.concat([wide, *blocks], axis=1).rename_axis(case_column).reset_index()
    failed = wide["error"] != ""
    if errors == "raise" and failed.any():
        listed = "; ".join(f"{c} ({m})" for c, m in zip(wide.loc[failed, case_column], wide.loc[failed, "error"],
                                                          strict=True))
        raise CohortError(f"{int(failed.sum())} case(s) have a failed label: {listed[:500]}; fix or drop them, or use "
                          f"errors='mark' (keep them, flagged) or errors='drop'")
    if errors == "drop":
        wide = wide.loc[~failed].reset_index(drop=True)
    provenance = dict(features.attrs.get("provenance") or {})
    provenance["to_wide"] = {"label_column": label_column, "labels": list(dict.fromkeys(prefixes.dropna())),
                             "errors": errors, "separator": separator}
    wide.attrs = {"provenance": provenance}
    return wide


def _check_arguments(features: Any, label_column: str, case_column: str, errors: str, separator: str) -> None:
    if not isinstance(features, pd.DataFrame):
        raise SettingsError(f"to_wide takes a feature table (DataFrame), not {type(features).__name__}; read it "
                            f"with radiobio.tables.read_table")
    if errors not in ERROR_MODES:
        raise SettingsError(f"errors must be one of {ERROR_MODES}, not {errors!r}")
    if not separator:
        raise SettingsError("separator must be a non-empty text, e.g. '__'")
    if case_column not in features.columns:
        raise CohortError(f"feature table has no {case_column!r} column (columns: {list(features.columns)[:8]}...); "
                          f"give case_column=")
    if label_column not in features.columns and "label" not in features.columns:
        raise CohortError(f"feature table has neither a {label_column!r} nor a 'label' column: it has one row per "
                          f"case already, or give label_column=")


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) or value is pd.NA else str(value)


def _prefixes(table: pd.DataFrame, label_column: str) -> pd.Series:
    """The column prefix of every row: its label name, else the name other rows give its label number (failed rows
    often lack the name), else the label number, else NA."""
    names = table[label_column].map(_text) if label_column in table.columns else pd.Series("", index=table.index)
    if "label" in table.columns:
        numbers = table["label"].map(lambda v: "" if _text(v) == "" else _label_text(v))
    else:
        numbers = pd.Series("", index=table.index)
    named = (numbers != "") & (names != "")
    known = dict(zip(numbers[named], names[named], strict=True))
    prefix = names.where(names != "", numbers.map(lambda n: known.get(n, n)))
    return prefix.where(prefix != "", None)


def _label_text(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


def _feature_columns(table: pd.DataFrame, feature_columns: Sequence[str] | None) -> list[str]:
    if feature_columns is not None:
        if isinstance(feature_columns, str):
            raise SettingsError(f"feature_columns must be a list of column names, not the text {feature_columns!r}")
        missing = [c for c in feature_columns if c not in table.columns]
        if missing:
            raise CohortError(f"feature columns {missing[:5]} not in the table (columns: "
                              f"{list(table.columns)[:8]}...)")
        return list(feature_columns)
    from radiobio.features.extraction import FEATURE_CLASSES

    def is_feature(name: str) -> bool:
        parts = str(name).split("_")
        return str(name).startswith("diagnostics_") or (len(parts) >= 3 and parts[1] in FEATURE_CLASSES)

    found = [c for c in table.columns if is_feature(c)]
    if not found:
        raise CohortError("no PyRadiomics feature column (e.g. original_shape_VoxelVolume) in the table; give "
                          "feature_columns= for other per-label tables")
    return found


def _check_clinical(table: pd.DataFrame, case_column: str, clinical: list[str]) -> None:
    if not clinical:
        return
    varying = table.groupby(case_column, sort=False)[clinical].nunique(dropna=False) > 1
    if varying.to_numpy().any():
        case = varying.index[varying.any(axis=1)][0]
        column = varying.columns[varying.loc[case]][0]
        values = list(dict.fromkeys(table.loc[table[case_column] == case, column].map(_text)))[:4]
        raise CohortError(f"column {column!r} differs between the labels of case {case!r} ({values}); a clinical "
                          f"column holds one value per case: fix it, or list it in feature_columns= to spread it "
                          f"per label")
