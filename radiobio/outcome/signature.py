"""Signature building with nested cross-validation: every data-dependent step is refitted inside each fold.

Outer loop: repeated stratified K-fold split **by patient** (scikit-learn's ``StratifiedGroupKFold`` with a new seed
per repeat) estimates performance. Inner loop: a grid search (scikit-learn's ``GridSearchCV``) on the outer training
part only, again split by patient, picks the hyper-parameters. The Pipeline (see
:func:`radiobio.outcome.modeling.build_pipeline`) imputes, scales, harmonises, filters, selects and fits on the
training part of each fold, so no information from a test fold reaches the model.

A table whose ``case_id`` repeats (one row per case × label) is refused unless ``patient_column`` says how to group
its rows: make one row per patient with :func:`radiobio.features.to_wide`, or group by the patient.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from radiobio.errors import OutcomeError, OutcomeWarning
from radiobio.outcome.metrics import (
    binary_auc,
    binary_calibration_slope,
    concordance,
    concordance_scorer,
    survival_brier,
    survival_calibration_slope,
    survival_target,
)
from radiobio.outcome.modeling import BATCH_COLUMN, build_pipeline, default_grid
from radiobio.outcome.validation import (
    CASE_COLUMN,
    check_durations,
    check_events,
    check_features,
    check_patients,
    check_target,
    require_columns,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Metrics bounded to [0, 1]: their intervals are computed on the logit scale (see :func:`metric_summary`).
BOUNDED_METRICS = ("c_index", "auc", "brier")


@dataclass(repr=False, kw_only=True)
class SignatureResult:
    """Outcome of :func:`nested_cv`.

    ``summary``: one row per metric (``metric, mean, lower_95, upper_95, n_folds, horizon``; ``horizon`` is the
    time of the survival Brier score, in the duration's unit, on the ``brier`` row). ``folds``: one row per outer
    fold (metrics, chosen hyper-parameters ``param:...``, number of selected features). ``selected``: how often
    each feature was selected across outer folds. ``predictions``: out-of-fold predictions (risk score, higher =
    earlier event, or probability) per repeat, keyed by the id columns (``patient_column``, ``case_id``,
    ``label_name`` where present, else ``row``, the table's index), with the truth in the duration and event
    (0/1) or target columns. ``final_model``: the search refitted on all data (its ``best_estimator_`` is the
    Pipeline to apply to new data), None with ``refit=False``.
    """

    summary: pd.DataFrame
    folds: pd.DataFrame
    selected: pd.DataFrame
    predictions: pd.DataFrame
    final_model: Any
    endpoint: str = "survival"
    features: list[str] = field(default_factory=list)
    batch_column: str | None = None
    duration_column: str | None = None
    event_column: str | None = None
    target_column: str | None = None
    id_columns: list[str] = field(default_factory=list)
    horizon: float | None = None

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Apply the final model to new rows of the same columns: risk score (survival; higher = earlier event)
        or probability of the positive class (binary)."""
        if self.final_model is None:
            raise OutcomeError("no final model: run nested_cv with refit=True")
        require_columns(df, columns=self.features + ([self.batch_column] if self.batch_column else []),
                        role="model input column")
        X = df[self.features].copy()
        if self.batch_column:
            X[BATCH_COLUMN] = df[self.batch_column].astype(str).to_numpy()
        if self.endpoint == "survival":
            return self.final_pipeline.predict(X)
        return self.final_pipeline.predict_proba(X)[:, 1]

    @property
    def final_pipeline(self) -> Any:
        """The fitted Pipeline of the final model (best hyper-parameters, refitted on all data)."""
        return getattr(self.final_model, "best_estimator_", self.final_model)

    @property
    def final_features(self) -> list[str]:
        """Features used by the final model's estimator (empty without a final model)."""
        if self.final_model is None:
            return []
        return list(getattr(self.final_pipeline[-1], "feature_names_in_", []))

    @property
    def main_metric(self) -> str:
        """The discrimination metric of the endpoint: ``c_index`` (survival) or ``auc`` (binary)."""
        return "c_index" if self.endpoint == "survival" else "auc"

    def _metric_text(self, name: str) -> str:
        row = self.summary.set_index("metric").loc[name]
        return f"{name} {row['mean']:.3f} (95% CI {row['lower_95']:.3f}–{row['upper_95']:.3f})"

    def _title(self) -> str:
        outcome = (f"{self.duration_column} (event {self.event_column})" if self.endpoint == "survival"
                   else str(self.target_column))
        return (f"Signature of {outcome}: {len(self.features)} candidate features, {len(self.folds)} outer folds, "
                f"{self._metric_text(self.main_metric)}")

    def __repr__(self) -> str:
        return (f"<SignatureResult: {self.endpoint}, {len(self.features)} features, {len(self.folds)} outer folds, "
                f"{self._metric_text(self.main_metric)}>")

    def print_summary(self, decimals: int = 3) -> None:
        """Print the cross-validated metrics with their 95% intervals and the final model's features."""
        print(self._title())
        print(self.summary.round(decimals).to_string(index=False))
        if self.final_model is not None:
            print(f"final model features: {', '.join(self.final_features) or 'none'}")

    def _repr_html_(self) -> str:
        import html

        table = self.summary.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0, na_rep="")
        final = "" if self.final_model is None else (
            f"<p>final model features: {html.escape(', '.join(self.final_features) or 'none')}</p>")
        return f"<div><p><b>{html.escape(self._title())}</b></p>{table}{final}</div>"

    def plot(self, *, path: str | os.PathLike | None = None, repeat: int = 0,
             time_label: str | None = None) -> Figure:
        """Survival: Kaplan-Meier curves of the out-of-fold high / low risk groups
        (:func:`radiobio.outcome.plots.risk_group_plot`); binary: the out-of-fold ROC curve of one ``repeat``."""
        from radiobio.outcome.plots import risk_group_plot, roc_plot

        if self.endpoint == "survival":
            return risk_group_plot(self, repeat=repeat, path=path, time_label=time_label)
        chosen = self.predictions[self.predictions["repeat"] == repeat]
        return roc_plot(chosen[self.target_column], scores=chosen["prediction"], path=path, label="out-of-fold")


@dataclass
class _Design:
    """The validated inputs of one nested cross-validation."""

    endpoint: str
    y: np.ndarray
    strat: np.ndarray
    X: pd.DataFrame
    patients: np.ndarray
    truth: pd.DataFrame
    ids: pd.DataFrame


def nested_cv(df: pd.DataFrame, *, features: Sequence[str], duration_column: str | None = None,
              event_column: str | None = None, target_column: str | None = None, event_value: Any = None,
              model: Any = "cox", outer: int = 5, repeats: int = 3, inner: int = 3,
              patient_column: str | None = None, batch_column: str | None = None,
              robustness: Sequence[str] | Any | None = None, param_grid: dict | None = None,
              selection: bool = True, max_features: int = 20, variance: float | None = 0.0,
              correlation: float | None = 0.9, horizon: float | None = None, seed: int = 0, refit: bool = True,
              jobs: int | None = None, progress: bool | Callable[[str], None] = False) -> SignatureResult:
    """Nested, patient-grouped cross-validation of a radiomics / biomarker signature.

    Survival endpoint: ``duration_column`` (any time unit) + ``event_column`` (1 event, 0 censored, or the value
    ``event_value`` means an event), ``model="cox"``; metrics: C-index, Brier score at ``horizon`` (default: the
    median observed duration, in the duration's unit) and calibration slope. Binary endpoint: ``target_column``
    (0/1), ``model="logistic"``, ``"random_forest"`` or a scikit-learn classifier; metrics: AUC, Brier score,
    calibration slope. ``model="cox"`` with a binary target means logistic regression.

    ``outer`` × ``repeats`` outer folds, ``inner`` inner folds, split by patient and stratified by the event /
    target. ``patient_column`` names the patient of each row: all rows of a patient stay in one fold. Without it
    every row is its own patient, and a table whose ``case_id`` repeats is refused (OutcomeError: give
    ``patient_column``, or make one row per patient with :func:`radiobio.features.to_wide`).
    ``batch_column`` names a site column harmonised with ComBat inside each fold; ``robustness`` is a list of
    features to keep (e.g. :func:`radiobio.features.robust_features` of an ICC table) or a transformer such as
    :class:`radiobio.outcome.FeatureSubset`. ``seed`` seeds the splits; ``jobs`` runs the inner grid search in
    that many processes (None or 1: this process, -1: all cores). ``progress=True`` shows a progress bar over the
    repeats; a function instead receives one status line per repeat (``"repeat 1/3: c_index 0.66 over 5 folds,
    12 s"``), which is how ``radiobio signature`` prints its progress.
    ``refit=False`` skips the final model on all data (``final_model`` is then None).

    Each mean comes with the corrected repeated-CV t interval (Nadeau & Bengio 2003; Bouckaert & Frank 2004),
    since overlapping training sets make fold results correlated; for the metrics bounded to [0, 1] (C-index, AUC,
    Brier) it is computed on the logit scale and transformed back, so it stays inside [0, 1]
    (:func:`metric_summary`).
    """
    from radiobio.progress import progress_bar

    _check_settings(outer, inner, repeats, jobs)
    design = _design(df, features, duration_column, event_column, target_column, event_value, patient_column,
                     batch_column)
    features = list(design.X.columns.drop(BATCH_COLUMN, errors="ignore"))
    _check_fold_counts(design, outer, inner, event_column if design.endpoint == "survival" else target_column)
    _check_robustness(robustness, features)
    if isinstance(model, str) and design.endpoint == "binary" and model == "cox":
        model = "logistic"
    pipeline = build_pipeline(features, endpoint=design.endpoint, model=model, combat=batch_column is not None,
                              robustness=robustness, variance=variance, correlation=correlation,
                              selection=selection, max_features=max_features, seed=seed)
    grid = default_grid(model, endpoint=design.endpoint, selection=selection) if param_grid is None \
        else dict(param_grid)
    if design.endpoint == "survival" and horizon is None:
        horizon = float(np.median(design.y["time"]))
    search = _Search(pipeline, grid, design, inner, jobs)

    rows, predictions, selected_sets = [], [], []
    bar = progress_bar(repeats, enabled=progress is True, desc="signature", unit="repeat")
    started = time.monotonic()
    for repeat in range(repeats):
        rows.extend(_outer_repeat(search, design, repeat, outer, seed, horizon, predictions, selected_sets))
        status = _running_metric(rows, design.endpoint)
        if callable(progress):
            progress(f"repeat {repeat + 1}/{repeats}: {status}, {time.monotonic() - started:.0f} s")
        bar.set_postfix_str(status, refresh=False)
        bar.update(1)
    bar.close()
    folds = pd.DataFrame(rows)
    metric_names = ["c_index", "brier", "calibration_slope"] if design.endpoint == "survival" else [
        "auc", "brier", "calibration_slope"]
    summary = metric_summary(folds, metrics=metric_names, test_fraction=1.0 / (outer - 1))
    summary["horizon"] = [horizon if (name == "brier" and design.endpoint == "survival") else np.nan
                          for name in summary["metric"]]
    final = _fit_quietly(search(np.arange(len(design.X)), seed), design.X, design.y) if refit else None
    return SignatureResult(summary=summary, folds=folds, selected=_selection_table(features, selected_sets),
                           predictions=pd.concat(predictions, ignore_index=True), final_model=final,
                           endpoint=design.endpoint, features=features, batch_column=batch_column,
                           duration_column=duration_column, event_column=event_column, target_column=target_column,
                           id_columns=list(design.ids.columns),
                           horizon=horizon if design.endpoint == "survival" else None)


def _check_settings(outer: int, inner: int, repeats: int, jobs: int | None) -> None:
    from radiobio.errors import SettingsError

    for name, value in (("outer", outer), ("inner", inner)):
        if not isinstance(value, int | np.integer) or value < 2:
            raise SettingsError(f"{name} must be a whole number of at least 2 folds, not {value!r}")
    if not isinstance(repeats, int | np.integer) or repeats < 1:
        raise SettingsError(f"repeats must be a whole number of at least 1, not {repeats!r}")
    if jobs is not None and (not isinstance(jobs, int | np.integer) or jobs == 0):
        raise SettingsError(f"jobs must be None, a positive number of processes or a negative count back from the "
                            f"cores (-1 = all), not {jobs!r}")


def _design(df: pd.DataFrame, features: Sequence[str], duration_column: str | None, event_column: str | None,
            target_column: str | None, event_value: Any, patient_column: str | None,
            batch_column: str | None) -> _Design:
    endpoint, y, strat = _endpoint(df, duration_column, event_column, target_column, event_value)
    if isinstance(features, str):
        raise OutcomeError(f"features must be a list of column names, not the text {features!r}")
    features = check_features(df, features=features)
    roles = {c for c in (duration_column, event_column, target_column, patient_column, batch_column) if c}
    if roles & set(features):
        raise OutcomeError(f"features {sorted(roles & set(features))} are also the outcome, patient or batch "
                           f"columns; list each column in one role only")
    patients = check_patients(df, patient_column=patient_column)
    X = df[list(features)].copy()
    if batch_column is not None:
        require_columns(df, columns=[batch_column], role="batch column")
        if df[batch_column].isna().any():
            raise OutcomeError(f"batch column {batch_column!r} has missing values; give every row its site / "
                               f"scanner")
        X[BATCH_COLUMN] = df[batch_column].astype(str).to_numpy()
    if endpoint == "survival":
        truth = pd.DataFrame({duration_column: y["time"], event_column: y["event"].astype(int)})
    else:
        truth = pd.DataFrame({target_column: y})
    return _Design(endpoint, y, strat, X, patients, truth, _id_table(df, patient_column))


def _id_table(df: pd.DataFrame, patient_column: str | None) -> pd.DataFrame:
    """The columns that name each row in the predictions: the patient, case_id and label_name where present."""
    columns = [c for c in dict.fromkeys([patient_column, CASE_COLUMN, "label_name"]) if c and c in df.columns]
    if not columns:
        return pd.DataFrame({"row": df.index.to_numpy()})
    ids = df[columns].reset_index(drop=True)
    if "label_name" in ids and not ids.duplicated(subset=[c for c in columns if c != "label_name"]).any():
        ids = ids.drop(columns="label_name")
    if ids.duplicated().any():
        ids["row"] = df.index.to_numpy()
    return ids


def _endpoint(df: pd.DataFrame, duration_column: str | None, event_column: str | None, target_column: str | None,
              event_value: Any) -> tuple[str, np.ndarray, np.ndarray]:
    survival = duration_column is not None or event_column is not None
    if survival and target_column is not None:
        raise OutcomeError("give either duration_column + event_column (survival endpoint) or target_column "
                           "(binary endpoint), not both")
    if survival:
        if duration_column is None or event_column is None:
            raise OutcomeError("a survival endpoint needs both duration_column= and event_column=")
        durations = check_durations(df, duration_column=duration_column)
        events = check_events(df, event_column=event_column, event_value=event_value)
        return "survival", survival_target(durations, events=events), events
    if target_column is None:
        raise OutcomeError("no endpoint: pass duration_column= and event_column= (survival) or target_column= "
                           "(binary)")
    values = check_target(df, target_column=target_column)
    return "binary", values, values


def _check_fold_counts(design: _Design, outer: int, inner: int, column: str | None) -> None:
    patients = len(np.unique(design.patients))
    if patients < outer * inner:
        raise OutcomeError(f"{patients} patients cannot fill {outer} outer × {inner} inner folds; use fewer folds")
    per_patient = pd.Series(design.strat).groupby(design.patients).max()
    positives, negatives = int(per_patient.sum()), int((per_patient == 0).sum())
    word = "events" if design.endpoint == "survival" else "positive cases"
    if positives < outer * inner or (design.endpoint == "binary" and negatives < outer * inner):
        raise OutcomeError(f"column {column!r} has {positives} patients with {word} and {negatives} without: too "
                           f"few for {outer} outer × {inner} inner folds (each fold needs both); use fewer folds "
                           f"(outer=, inner=) or a cohort with more {word}")


def _check_robustness(robustness: Any, features: list[str]) -> None:
    """A list of robust features must name some of the modelled features (checked before any fold runs)."""
    if robustness is None or hasattr(robustness, "fit"):
        return
    if isinstance(robustness, str):
        raise OutcomeError(f"robustness must be a list of feature names or a transformer, not the text "
                           f"{robustness!r}")
    kept = set(robustness) & set(features)
    if not kept:
        raise OutcomeError(f"none of the {len(set(robustness))} robust features is among the {len(features)} "
                           f"modelled features (e.g. {sorted(set(robustness))[:3]}); check the names, or lower "
                           f"the ICC threshold")


class _Search:
    """Builds the inner search of one outer training part: a GridSearchCV by patient, or the Pipeline itself when
    the grid has a single point."""

    def __init__(self, pipeline: Any, grid: dict, design: _Design, inner: int, jobs: int | None) -> None:
        self.pipeline, self.grid, self.design, self.inner, self.jobs = pipeline, grid, design, inner, jobs

    def __call__(self, train_index: np.ndarray, seed: int) -> Any:
        from sklearn.base import clone
        from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

        if not self.grid or all(len(v) == 1 for v in self.grid.values()):
            return clone(self.pipeline).set_params(**{k: v[0] for k, v in self.grid.items()})
        splitter = StratifiedGroupKFold(n_splits=self.inner, shuffle=True, random_state=seed)
        splits = list(splitter.split(train_index, self.design.strat[train_index],
                                     self.design.patients[train_index]))
        scoring = concordance_scorer if self.design.endpoint == "survival" else "roc_auc"
        return GridSearchCV(clone(self.pipeline), self.grid, scoring=scoring, cv=splits, refit=True,
                            n_jobs=self.jobs, error_score=np.nan)


def _outer_repeat(search: _Search, design: _Design, repeat: int, outer: int, seed: int, horizon: float | None,
                  predictions: list[pd.DataFrame], selected_sets: list[list[str]]) -> list[dict[str, Any]]:
    """Run the outer folds of one repeat; append their predictions and selections; return one row per fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    rows = []
    splitter = StratifiedGroupKFold(n_splits=outer, shuffle=True, random_state=seed + repeat)
    X, y = design.X, design.y
    for fold, (train, test) in enumerate(splitter.split(X, design.strat, design.patients)):
        fitted = _fit_quietly(search(train, seed + 1000 * (repeat + 1) + fold), X.iloc[train], y[train])
        best = getattr(fitted, "best_estimator_", fitted)
        used = list(getattr(best[-1], "feature_names_in_", []))
        selected_sets.append(used)
        metrics, pred = _score(design.endpoint, best, X.iloc[train], y[train], X.iloc[test], y[test], horizon)
        row = {"repeat": repeat, "fold": fold, "n_train": len(train), "n_test": len(test),
               ("events_test" if design.endpoint == "survival" else "positives_test"): int(design.strat[test].sum()),
               "n_features": len(used), **metrics}
        row.update({f"param:{k}": v for k, v in getattr(fitted, "best_params_", {}).items()})
        rows.append(row)
        predictions.append(pd.concat([design.ids.iloc[test].reset_index(drop=True),
                                      pd.DataFrame({"repeat": repeat, "fold": fold, "prediction": pred}),
                                      design.truth.iloc[test].reset_index(drop=True)], axis=1))
    return rows


def _running_metric(rows: list[dict[str, Any]], endpoint: str) -> str:
    name = "c_index" if endpoint == "survival" else "auc"
    values = np.array([r[name] for r in rows], dtype=float)
    values = values[np.isfinite(values)]
    return f"{name} {values.mean():.3f} over {len(values)} folds" if len(values) else f"{name} undefined"


def _selection_table(features: list[str], selected_sets: list[list[str]]) -> pd.DataFrame:
    counts = pd.Series([f for used in selected_sets for f in used], dtype=object).value_counts()
    selected = pd.DataFrame({"feature": list(features)})
    selected["count"] = selected["feature"].map(counts).fillna(0).astype(int)
    selected["frequency"] = selected["count"] / max(len(selected_sets), 1)
    return selected.sort_values(["count", "feature"], ascending=[False, True], ignore_index=True)


def _fit_quietly(estimator: Any, X: pd.DataFrame, y: np.ndarray) -> Any:
    """Fit, silencing the expected chatter of noise-only folds (empty selections, non-finite inner scores)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No features were selected")
        warnings.filterwarnings("ignore", message="One or more of the test scores are non-finite")
        warnings.filterwarnings("ignore", category=OutcomeWarning, message="the L1-Cox selection did not converge")
        return estimator.fit(X, y)


def _score(endpoint: str, pipeline: Any, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame,
           y_test: np.ndarray, horizon: float | None) -> tuple[dict[str, float], np.ndarray]:
    from sklearn.metrics import brier_score_loss

    if endpoint == "survival":
        risk = pipeline.predict(X_test)
        time, event = y_test["time"], y_test["event"].astype(int)
        if event.sum() == 0:
            warnings.warn("an outer test fold holds no events: its metrics are undefined (NaN) and left out of the "
                          "means; use fewer folds", OutcomeWarning, stacklevel=3)
            return {"c_index": np.nan, "brier": np.nan, "calibration_slope": np.nan}, risk
        surv = _survival_at(pipeline, X_test, horizon)
        return {"c_index": concordance(time, events=event, risk=risk),
                "brier": survival_brier(y_train["time"], train_events=y_train["event"], durations=time,
                                        events=event, survival_at_horizon=surv, horizon=horizon),
                "calibration_slope": survival_calibration_slope(time, events=event, linear_predictor=risk)}, risk
    prob = pipeline.predict_proba(X_test)[:, 1]
    return {"auc": binary_auc(y_test, probability=prob), "brier": float(brier_score_loss(y_test, prob)),
            "calibration_slope": binary_calibration_slope(y_test, probability=prob)}, prob


def _survival_at(pipeline: Any, X: pd.DataFrame, horizon: float) -> np.ndarray:
    transformed = pipeline[:-1].transform(X)
    return pipeline[-1].predict_survival(transformed, [horizon])[:, 0]


def metric_summary(folds: pd.DataFrame, *, metrics: Sequence[str], test_fraction: float,
                   bounded: Sequence[str] = BOUNDED_METRICS) -> pd.DataFrame:
    """Mean of each metric over the outer folds with its 95% corrected repeated-CV t interval.

    The standard error is the corrected one of Nadeau & Bengio (2003), ``sqrt((1/k + test_fraction) * var)`` over
    the k finite fold values, with ``test_fraction`` = n_test / n_train (1 / (outer - 1)); the interval uses the t
    distribution with k - 1 degrees of freedom. For ``bounded`` metrics (values in [0, 1]) the interval is built on
    the logit scale, with the delta-method standard error ``se / (m (1 - m))`` around logit(mean m), and
    transformed back: it keeps the mean inside, matches the plain interval where it is far from the bounds, and
    never leaves [0, 1]. Returns ``metric, mean, lower_95, upper_95, n_folds``.
    """
    rows = []
    for name in metrics:
        values = folds[name].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        k = len(values)
        mean = float(values.mean()) if k else float("nan")
        lower = upper = float("nan")
        if k >= 2:
            se = float(np.sqrt((1.0 / k + test_fraction) * values.var(ddof=1)))
            t = float(stats.t.ppf(0.975, k - 1))
            if name in bounded and 0.0 < mean < 1.0:
                centre, half = np.log(mean / (1 - mean)), t * se / (mean * (1 - mean))
                lower, upper = (float(1 / (1 + np.exp(-(centre + s * half)))) for s in (-1, 1))
            elif name in bounded and mean in (0.0, 1.0):  # every fold at the bound: the interval is that point
                lower = upper = mean
            else:
                lower, upper = mean - t * se, mean + t * se
        rows.append({"metric": name, "mean": mean, "lower_95": lower, "upper_95": upper, "n_folds": k})
    return pd.DataFrame(rows)
