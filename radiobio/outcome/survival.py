"""Survival analysis on a table: Kaplan-Meier curves with log-rank tests, and Cox proportional-hazards models.

All fitting is lifelines'; this module validates the table, calls lifelines and returns tidy DataFrames with the
fitted lifelines objects attached.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from radiobio.errors import OutcomeError
from radiobio.outcome.validation import check_covariates, check_survival, require_columns

#: Column names of a Cox result table.
COX_COLUMNS = ["covariate", "coef", "se", "hr", "hr_lower_95", "hr_upper_95", "z", "p"]


@dataclass
class KaplanMeierResult:
    """Kaplan-Meier estimates: ``table`` (one row per group and time), ``medians`` (one row per group),
    ``logrank`` (one row, or None for a single group) and the lifelines ``fitters`` by group name."""

    table: pd.DataFrame
    medians: pd.DataFrame
    logrank: pd.DataFrame | None
    fitters: dict[str, object] = field(repr=False)
    duration: str = "duration"
    event: str = "event"
    group: str | None = None


@dataclass
class CoxResult:
    """A fitted Cox model: ``table`` (``covariate, hr, hr_lower_95, hr_upper_95, p`` ...), the lifelines ``fitter``,
    Harrell's ``concordance`` on the fitting data and the proportional-hazards test ``ph_test`` (one row per
    covariate, Schoenfeld-residual test against rank-transformed time)."""

    table: pd.DataFrame
    fitter: object = field(repr=False)
    concordance: float = float("nan")
    ph_test: pd.DataFrame | None = None
    n: int = 0
    events: int = 0

    @property
    def ph_violations(self) -> list[str]:
        """Covariates whose proportional-hazards test has p < 0.05."""
        if self.ph_test is None:
            return []
        return self.ph_test.loc[self.ph_test["p"] < 0.05, "covariate"].tolist()


def kaplan_meier(df: pd.DataFrame, duration: str, event: str, group: str | None = None,
                 alpha: float = 0.05) -> KaplanMeierResult:
    """Kaplan-Meier survival per group, median survival with its (1 - ``alpha``) CI, and a log-rank test.

    ``duration`` is in any time unit (medians come back in the same unit); ``event`` is 1 for an event, 0 for
    censoring. With ``group`` given, one curve per group and a (multivariate) log-rank test across all groups.
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

    durations, events = check_survival(df, duration, event)
    if group is None:
        labels = np.array(["all"] * len(df), dtype=object)
    else:
        require_columns(df, [group], "group column")
        if df[group].isna().any():
            raise OutcomeError(f"group column {group!r} has {int(df[group].isna().sum())} missing value(s); drop "
                               f"those rows or give them a group")
        labels = df[group].astype(str).to_numpy(dtype=object)
    tables, medians, fitters = [], [], {}
    for name in sorted(pd.unique(labels), key=str):
        inside = labels == name
        kmf = KaplanMeierFitter(alpha=alpha, label=str(name))
        kmf.fit(durations[inside], events[inside])
        fitters[str(name)] = kmf
        ci = kmf.confidence_interval_survival_function_
        curve = pd.DataFrame({
            "group": str(name), "time": kmf.event_table.index.to_numpy(dtype=float),
            "at_risk": kmf.event_table["at_risk"].to_numpy(), "events": kmf.event_table["observed"].to_numpy(),
            "censored": kmf.event_table["censored"].to_numpy(),
            "survival": kmf.survival_function_.iloc[:, 0].to_numpy(),
            "lower_95": ci.iloc[:, 0].to_numpy(), "upper_95": ci.iloc[:, 1].to_numpy()})
        tables.append(curve)
        median_ci = median_survival_times(kmf.confidence_interval_)
        medians.append({"group": str(name), "n": int(inside.sum()), "events": int(events[inside].sum()),
                        "median": float(kmf.median_survival_time_), "lower_95": float(median_ci.iloc[0, 0]),
                        "upper_95": float(median_ci.iloc[0, 1])})
    logrank = None
    if len(fitters) >= 2:
        test = multivariate_logrank_test(durations, labels, events)
        logrank = pd.DataFrame([{"test": "log-rank", "groups": len(fitters), "test_statistic": test.test_statistic,
                                 "df": int(test.degrees_of_freedom), "p": test.p_value}])
    return KaplanMeierResult(pd.concat(tables, ignore_index=True), pd.DataFrame(medians), logrank, fitters,
                             duration, event, group)


def cox(df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str], strata: Sequence[str] | None = None,
        penalizer: float = 0.0, l1_ratio: float = 0.0, ph_test: bool = True) -> CoxResult:
    """Fit a Cox proportional-hazards model with lifelines' ``CoxPHFitter`` (Efron ties).

    Hazard ratios are per unit of each covariate (categorical covariates are one-hot encoded against their first
    level, named ``column=level``). ``strata`` columns get separate baseline hazards. ``penalizer`` /
    ``l1_ratio`` are passed to lifelines (elastic-net penalty on the coefficients). Returns a :class:`CoxResult`.
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning
    from lifelines.statistics import proportional_hazard_test

    durations, events = check_survival(df, duration, event)
    strata = list(strata or [])
    require_columns(df, strata, "strata column")
    for column in strata:
        if df[column].isna().any():
            raise OutcomeError(f"strata column {column!r} has {int(df[column].isna().sum())} missing value(s); drop "
                               f"those rows or give them a stratum")
    overlap = set(strata) & set(covariates)
    if overlap or duration in covariates or event in covariates:
        raise OutcomeError(f"covariates overlap the duration/event/strata columns ({sorted(overlap) or duration}); "
                           f"list each column in one role only")
    design = check_covariates(df, covariates)
    if penalizer == 0 and design.shape[1] >= len(df):
        raise OutcomeError(f"{design.shape[1]} covariates for {len(df)} rows: an unpenalised Cox model is not "
                           f"identifiable; use fewer covariates, penalizer > 0, or radiobio.outcome.nested_cv "
                           f"with feature selection")
    frame = design.copy()
    frame["__duration__"] = durations
    frame["__event__"] = events
    for column in strata:
        frame[column] = df[column].to_numpy()
    fitter = CoxPHFitter(penalizer=penalizer, l1_ratio=l1_ratio)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            fitter.fit(frame, "__duration__", "__event__", strata=strata or None)
        except ConvergenceError as exc:
            raise OutcomeError(_separation_message(design, durations, events, str(exc))) from exc
    for w in caught:
        text = str(w.message).lower()
        if issubclass(w.category, ConvergenceWarning) and ("failed to converge" in text or "separation" in text):
            raise OutcomeError(_separation_message(design, durations, events, str(w.message)))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    summary = fitter.summary
    table = pd.DataFrame({
        "covariate": summary.index.astype(str), "coef": summary["coef"].to_numpy(),
        "se": summary["se(coef)"].to_numpy(), "hr": summary["exp(coef)"].to_numpy(),
        "hr_lower_95": summary["exp(coef) lower 95%"].to_numpy(),
        "hr_upper_95": summary["exp(coef) upper 95%"].to_numpy(), "z": summary["z"].to_numpy(),
        "p": summary["p"].to_numpy()})
    ph = None
    if ph_test:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test = proportional_hazard_test(fitter, frame, time_transform="rank")
        ph = pd.DataFrame({"covariate": [str(i[-1]) if isinstance(i, tuple) else str(i) for i in test.summary.index],
                           "test_statistic": test.summary["test_statistic"].to_numpy(),
                           "p": test.summary["p"].to_numpy()})
    return CoxResult(table, fitter, float(fitter.concordance_index_), ph, len(df), int(events.sum()))


def _separation_message(design: pd.DataFrame, durations: np.ndarray, events: np.ndarray, detail: str) -> str:
    suspects = [c for c in design.columns if _monotone_likelihood(design[c].to_numpy(), durations, events)]
    named = f"covariate(s) {suspects}" if suspects else f"one of the covariates {list(design.columns)}"
    first_line = detail.strip().splitlines()[0] if detail.strip() else "no detail"
    return (f"the Cox model did not converge: {named} may perfectly order the events (monotone likelihood, an "
            f"infinite hazard ratio). Fix: refit with penalizer=0.1, or drop / coarsen that covariate. "
            f"(lifelines: {first_line})")


def _monotone_likelihood(values: np.ndarray, durations: np.ndarray, events: np.ndarray) -> bool:
    """True when at every event time the failing case has the highest (or every time the lowest) value of the
    covariate in its risk set: the partial likelihood then increases without bound (perfect separation)."""
    highest = lowest = True
    for i in np.flatnonzero(events == 1):
        at_risk = values[durations >= durations[i]]
        highest &= bool(values[i] >= at_risk.max())
        lowest &= bool(values[i] <= at_risk.min())
    return highest or lowest
