"""Survival analysis on a table: Kaplan-Meier curves with log-rank tests, and Cox proportional-hazards models.

All fitting is lifelines'; this module validates the table, calls lifelines and returns results that present
themselves as lifelines' do: a tidy ``summary`` DataFrame, ``print_summary()``, a short HTML view in Jupyter and
``plot()``, with the fitted lifelines objects attached (``fitters``, ``fitter``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radiobio.errors import OutcomeError, SettingsError
from radiobio.outcome.validation import check_covariates, check_survival, require_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: A numeric group column with more distinct values than this is split at its median by :func:`kaplan_meier`.
MAX_KM_GROUPS = 6
#: Columns of :attr:`CoxResult.ph_test`.
PH_TEST_COLUMNS = ["covariate", "test_statistic", "p"]


@dataclass(repr=False, kw_only=True)
class KaplanMeierResult:
    """Kaplan-Meier estimates of :func:`kaplan_meier`.

    ``summary``: one row per group (``group, n, events, median, lower_95, upper_95``; medians in the duration's
    unit). ``curves``: one row per group and time (``group, time, at_risk, events, censored, survival, lower_95,
    upper_95``). ``logrank``: one row (``test, groups, test_statistic, df, p``), None for a single group.
    ``fitters``: the lifelines ``KaplanMeierFitter`` of each group, by group. ``labels``: the legend text of each
    group (``"horTh = yes"``, ``"pnodes > 3"``). ``cutoff``: the value a numeric group column was split at (None
    when its values were used as groups).
    """

    summary: pd.DataFrame
    curves: pd.DataFrame
    logrank: pd.DataFrame | None
    fitters: dict[str, Any]
    duration_column: str
    event_column: str
    group_column: str | None = None
    cutoff: float | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of patients."""
        return int(self.summary["n"].sum())

    @property
    def events(self) -> int:
        """Number of events."""
        return int(self.summary["events"].sum())

    @property
    def provenance(self) -> dict[str, Any]:
        """What produced these curves, for the tables written from them (``{"stage": "survival", ...}``)."""
        return _provenance("kaplan_meier", duration_column=self.duration_column, event_column=self.event_column,
                           group_column=self.group_column, cutoff=self.cutoff, n=self.n, events=self.events)

    @property
    def logrank_p(self) -> float | None:
        """p-value of the log-rank test across the groups (None for a single group)."""
        return None if self.logrank is None else float(self.logrank["p"].iloc[0])

    def _title(self) -> str:
        by = f", by {self.group_column}" if self.group_column else ""
        if self.cutoff is not None:
            by += f" (split at {self.cutoff:g})"
        return f"Kaplan-Meier of {self.duration_column} (event {self.event_column}){by}: {self.n} patients, " \
               f"{self.events} events"

    def __repr__(self) -> str:
        groups = ", ".join(self.labels.get(g, g) for g in self.summary["group"])
        p = "" if self.logrank_p is None else f", log-rank p={self.logrank_p:.3g}"
        return f"<KaplanMeierResult: {self.n} patients, {self.events} events, groups [{groups}]{p}>"

    def print_summary(self, decimals: int = 3) -> None:
        """Print the medians (with 95% CIs) per group and the log-rank test."""
        print(self._title())
        print(self.summary.round(decimals).to_string(index=False))
        if self.logrank is not None:
            row = self.logrank.iloc[0]
            print(f"log-rank test: chi2 = {row['test_statistic']:.{decimals}f} on {int(row['df'])} df, "
                  f"p = {row['p']:.{decimals}g}")

    def _repr_html_(self) -> str:
        table = self.summary.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0)
        logrank = "" if self.logrank is None else (
            f"<p>log-rank test: &chi;&sup2; = {self.logrank['test_statistic'].iloc[0]:.3g} on "
            f"{int(self.logrank['df'].iloc[0])} df, p = {self.logrank_p:.3g}</p>")
        return f"<div><p><b>{_html_escape(self._title())}</b></p>{table}{logrank}</div>"

    def plot(self, *, path: str | os.PathLike | None = None, time_label: str | None = None, at_risk: bool = True,
             ci: bool = True, title: str | None = None) -> Figure:
        """Curves with numbers at risk and the log-rank p (see :func:`radiobio.outcome.plots.km_plot`)."""
        from radiobio.outcome.plots import km_plot

        return km_plot(self, path=path, time_label=time_label, at_risk=at_risk, ci=ci, title=title)


@dataclass(repr=False, kw_only=True)
class CoxResult:
    """A Cox model fitted by :func:`cox`.

    ``summary``: the hazard-ratio table, one row per covariate (``covariate, coef, se, hr, hr_lower_95,
    hr_upper_95, z, p``; hazard ratios per unit of the covariate). ``fitter``: the lifelines ``CoxPHFitter``.
    ``concordance``: Harrell's C on the fitting data. ``ph_test``: the proportional-hazards test (``covariate,
    test_statistic, p``; Schoenfeld residuals against rank-transformed time), None when not computed.
    ``covariates``: the columns modelled, as given (``summary`` names one-hot levels ``column=level``).
    """

    summary: pd.DataFrame
    fitter: Any
    concordance: float
    ph_test: pd.DataFrame | None
    n: int
    events: int
    duration_column: str = "duration"
    event_column: str = "event"
    strata_columns: list[str] = field(default_factory=list)
    covariates: list[str] = field(default_factory=list)

    @property
    def ph_violations(self) -> list[str]:
        """Covariates whose proportional-hazards test has p < 0.05."""
        if self.ph_test is None:
            return []
        return self.ph_test.loc[self.ph_test["p"] < 0.05, "covariate"].tolist()

    @property
    def provenance(self) -> dict[str, Any]:
        """What produced this model, for the tables written from it (``{"stage": "survival", ...}``)."""
        return _provenance("cox", duration_column=self.duration_column, event_column=self.event_column,
                           covariates=list(self.covariates),
                           strata_columns=list(self.strata_columns), n=self.n, events=self.events,
                           penalizer=getattr(self.fitter, "penalizer", None))

    def _title(self) -> str:
        strata = f", strata {self.strata_columns}" if self.strata_columns else ""
        return (f"Cox model of {self.duration_column} (event {self.event_column}){strata}: {self.n} patients, "
                f"{self.events} events, C-index {self.concordance:.3f}")

    def __repr__(self) -> str:
        return (f"<CoxResult: {self.n} patients, {self.events} events, {len(self.summary)} covariates, "
                f"C-index {self.concordance:.3f}>")

    def print_summary(self, decimals: int = 3) -> None:
        """Print the hazard ratios with 95% CIs and p-values, the C-index and the proportional-hazards check."""
        print(self._title())
        print(self.summary[["covariate", "hr", "hr_lower_95", "hr_upper_95", "p"]].round(decimals)
              .to_string(index=False))
        if self.ph_violations:
            print(f"proportional-hazards assumption doubtful (p < 0.05) for: {', '.join(self.ph_violations)}")

    def _repr_html_(self) -> str:
        table = self.summary[["covariate", "hr", "hr_lower_95", "hr_upper_95", "p"]].to_html(
            index=False, float_format=lambda v: f"{v:.3g}", border=0)
        ph = (f"<p>proportional hazards doubtful (p &lt; 0.05): {_html_escape(', '.join(self.ph_violations))}</p>"
              if self.ph_violations else "")
        return f"<div><p><b>{_html_escape(self._title())}</b></p>{table}{ph}</div>"

    def plot(self, *, path: str | os.PathLike | None = None, title: str | None = None) -> Figure:
        """Forest plot of the hazard ratios (see :func:`radiobio.outcome.plots.forest_plot`)."""
        from radiobio.outcome.plots import forest_plot

        return forest_plot(self, path=path, title=title)


def kaplan_meier(df: pd.DataFrame, *, duration_column: str, event_column: str, group_column: str | None = None,
                 cutoff: float | str | None = None, event_value: Any = None,
                 alpha: float = 0.05) -> KaplanMeierResult:
    """Kaplan-Meier survival per group, median survival with its (1 - ``alpha``) CI, and a log-rank test.

    ``duration_column`` holds times in any unit (medians come back in the same unit); ``event_column`` is 1 for an
    event, 0 for censoring (or give ``event_value``, the value that means an event, e.g. 2 for R's 1/2 coding).
    With ``group_column``, one curve per group and a (multivariate) log-rank test across all groups. Groups are its
    values, sorted numerically for a numeric column, except that a numeric column with more than
    :data:`MAX_KM_GROUPS` distinct values is split at its median into ``<= m`` and ``> m``. ``cutoff``: a number
    splits a numeric column there instead, ``"median"`` forces the median split.
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

    durations, events = check_survival(df, duration_column=duration_column, event_column=event_column,
                                       event_value=event_value)
    groups, order, used_cutoff = _groups(df, group_column, cutoff)
    labels = {g: _legend(group_column, g, used_cutoff) for g in order}
    curves, summary, fitters = [], [], {}
    for name in order:
        inside = groups == name
        kmf = KaplanMeierFitter(alpha=alpha, label=labels[name])
        kmf.fit(durations[inside], events[inside])
        fitters[name] = kmf
        ci = kmf.confidence_interval_survival_function_
        curves.append(pd.DataFrame({
            "group": name, "time": kmf.event_table.index.to_numpy(dtype=float),
            "at_risk": kmf.event_table["at_risk"].to_numpy(), "events": kmf.event_table["observed"].to_numpy(),
            "censored": kmf.event_table["censored"].to_numpy(),
            "survival": kmf.survival_function_.iloc[:, 0].to_numpy(),
            "lower_95": ci.iloc[:, 0].to_numpy(), "upper_95": ci.iloc[:, 1].to_numpy()}))
        median_ci = median_survival_times(kmf.confidence_interval_)
        summary.append({"group": name, "n": int(inside.sum()), "events": int(events[inside].sum()),
                        "median": float(kmf.median_survival_time_), "lower_95": float(median_ci.iloc[0, 0]),
                        "upper_95": float(median_ci.iloc[0, 1])})
    logrank = None
    if len(fitters) >= 2:
        test = multivariate_logrank_test(durations, groups, events)
        logrank = pd.DataFrame([{"test": "log-rank", "groups": len(fitters), "test_statistic": test.test_statistic,
                                 "df": int(test.degrees_of_freedom), "p": test.p_value}])
    return KaplanMeierResult(summary=pd.DataFrame(summary), curves=pd.concat(curves, ignore_index=True),
                             logrank=logrank, fitters=fitters, duration_column=duration_column,
                             event_column=event_column, group_column=group_column, cutoff=used_cutoff, labels=labels)


def _groups(df: pd.DataFrame, group_column: str | None,
            cutoff: float | str | None) -> tuple[np.ndarray, list[str], float | None]:
    """(group of every row as text, groups in display order, cutoff used or None)."""
    if group_column is None:
        if cutoff is not None:
            raise SettingsError("cutoff= splits a group column: give group_column= too")
        return np.array(["all"] * len(df), dtype=object), ["all"], None
    require_columns(df, columns=[group_column], role="group column")
    values = df[group_column]
    if values.isna().any():
        raise OutcomeError(f"group column {group_column!r} has {int(values.isna().sum())} missing value(s); drop "
                           f"those rows or give them a group")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if cutoff is not None and not numeric:
        raise SettingsError(f"cutoff= splits a numeric group column, but {group_column!r} holds text "
                            f"(e.g. {values.iloc[0]!r}); leave the cutoff out to use its values as groups")
    if isinstance(cutoff, str) and cutoff != "median":
        raise SettingsError(f"cutoff must be a number or 'median', not {cutoff!r}")
    if numeric and (cutoff is not None or values.nunique() > MAX_KM_GROUPS):
        threshold = float(values.median()) if cutoff in (None, "median") else float(cutoff)
        low, high = f"<= {threshold:g}", f"> {threshold:g}"
        above = (values > threshold).to_numpy()
        if above.all() or not above.any():
            raise OutcomeError(f"splitting {group_column!r} at {threshold:g} leaves one group empty (values "
                               f"{values.min():g} to {values.max():g}); give another cutoff")
        return np.where(above, high, low).astype(object), [low, high], threshold
    if numeric:
        distinct = sorted(values.unique())
        text = {v: _format_value(v) for v in distinct}
        return values.map(text).to_numpy(dtype=object), [text[v] for v in distinct], None
    labels = values.astype(str).to_numpy(dtype=object)
    return labels, sorted(pd.unique(labels), key=str), None


def _format_value(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _legend(group_column: str | None, group: str, cutoff: float | None) -> str:
    if group_column is None:
        return group
    return f"{group_column} {group}" if cutoff is not None else f"{group_column} = {group}"


def cox(df: pd.DataFrame, *, duration_column: str, event_column: str, covariates: Sequence[str],
        strata_columns: Sequence[str] | None = None, penalizer: float = 0.0, l1_ratio: float = 0.0,
        ph_test: bool = True, event_value: Any = None) -> CoxResult:
    """Fit a Cox proportional-hazards model with lifelines' ``CoxPHFitter`` (Efron ties).

    Hazard ratios are per unit of each covariate (categorical covariates are one-hot encoded against their first
    level, named ``column=level``). ``strata_columns`` get separate baseline hazards. ``penalizer`` /
    ``l1_ratio`` are passed to lifelines (elastic-net penalty on the coefficients). ``event_value``: the value of
    ``event_column`` that means an event, when it is not coded 0/1. Durations in any unit. Returns a
    :class:`CoxResult`.
    """
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    if isinstance(covariates, str):
        raise SettingsError(f"covariates must be a list of column names, not the text {covariates!r}: "
                            f"write covariates=[{covariates!r}]")
    strata = [strata_columns] if isinstance(strata_columns, str) else list(strata_columns or [])
    durations, events = check_survival(df, duration_column=duration_column, event_column=event_column,
                                       event_value=event_value)
    require_columns(df, columns=strata, role="strata column")
    for column in strata:
        if df[column].isna().any():
            raise OutcomeError(f"strata column {column!r} has {int(df[column].isna().sum())} missing value(s); drop "
                               f"those rows or give them a stratum")
    roles = set(strata) | {duration_column, event_column}
    overlap = sorted(roles & set(covariates))
    if overlap:
        raise OutcomeError(f"covariates {overlap} are also the duration, event or strata columns; list each column "
                           f"in one role only")
    design = check_covariates(df, covariates=covariates)
    if penalizer == 0 and design.shape[1] >= len(df):
        raise OutcomeError(f"{design.shape[1]} covariates for {len(df)} rows: an unpenalised Cox model is not "
                           f"identifiable; use fewer covariates, penalizer > 0, or radiobio.outcome.nested_cv "
                           f"with feature selection")
    frame = design.copy()
    frame["__duration__"] = durations
    frame["__event__"] = events
    for column in strata:
        frame[column] = df[column].to_numpy()
    fitter = _fit_cox(CoxPHFitter(penalizer=penalizer, l1_ratio=l1_ratio), frame, strata, design, durations, events)
    lifelines_summary = fitter.summary
    summary = pd.DataFrame({
        "covariate": lifelines_summary.index.astype(str), "coef": lifelines_summary["coef"].to_numpy(),
        "se": lifelines_summary["se(coef)"].to_numpy(), "hr": lifelines_summary["exp(coef)"].to_numpy(),
        "hr_lower_95": lifelines_summary["exp(coef) lower 95%"].to_numpy(),
        "hr_upper_95": lifelines_summary["exp(coef) upper 95%"].to_numpy(), "z": lifelines_summary["z"].to_numpy(),
        "p": lifelines_summary["p"].to_numpy()})
    ph = None
    if ph_test:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test = proportional_hazard_test(fitter, frame, time_transform="rank")
        ph = pd.DataFrame({"covariate": [str(i[-1]) if isinstance(i, tuple) else str(i) for i in test.summary.index],
                           "test_statistic": test.summary["test_statistic"].to_numpy(),
                           "p": test.summary["p"].to_numpy()})
    return CoxResult(summary=summary, fitter=fitter, concordance=float(fitter.concordance_index_), ph_test=ph,
                     n=len(df), events=int(events.sum()), duration_column=duration_column, event_column=event_column,
                     strata_columns=strata, covariates=list(covariates))


def _fit_cox(fitter: Any, frame: pd.DataFrame, strata: list[str], design: pd.DataFrame, durations: np.ndarray,
             events: np.ndarray) -> Any:
    """Fit, turning lifelines' convergence failures (perfect separation) into an OutcomeError naming the cause."""
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

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
    return fitter


def _separation_message(design: pd.DataFrame, durations: np.ndarray, events: np.ndarray, detail: str) -> str:
    suspects = [c for c in design.columns if _monotone_likelihood(design[c].to_numpy(), durations, events)]
    named = f"covariate(s) {suspects}" if suspects else f"one of the covariates {list(design.columns)}"
    first_line = detail.strip().splitlines()[0] if detail.strip() else "no detail"
    return (f"the Cox model did not converge: {named} may perfectly order the events (monotone likelihood, an "
            f"infinite hazard ratio). Fix: refit with penalizer=0.1 (CLI --penalizer 0.1), or drop / coarsen that "
            f"covariate. (lifelines: {first_line})")


def _monotone_likelihood(values: np.ndarray, durations: np.ndarray, events: np.ndarray) -> bool:
    """True when at every event time the failing case has the highest (or every time the lowest) value of the
    covariate in its risk set: the partial likelihood then increases without bound (perfect separation)."""
    highest = lowest = True
    for i in np.flatnonzero(events == 1):
        at_risk = values[durations >= durations[i]]
        highest &= bool(values[i] >= at_risk.max())
        lowest &= bool(values[i] <= at_risk.min())
    return highest or lowest


def _provenance(analysis: str, **details: Any) -> dict[str, Any]:
    from radiobio import __version__

    return {"stage": "survival", "analysis": analysis, **details, "radiobio": __version__}


def _html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
