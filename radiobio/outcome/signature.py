"""Signature building with nested cross-validation: every data-dependent step is refitted inside each fold.

Outer loop: repeated stratified K-fold split **by patient** (scikit-learn's ``StratifiedGroupKFold`` with a new seed
per repeat) estimates performance. Inner loop: a grid search (scikit-learn's ``GridSearchCV``) on the outer training
part only, again split by patient, picks the hyper-parameters. The Pipeline (see
:func:`radiobio.outcome.modeling.build_pipeline`) imputes, scales, harmonises, filters, selects and fits on the
training part of each fold, so no information from a test fold reaches the model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from radiobio.errors import OutcomeError
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
    OutcomeWarning,
    check_durations,
    check_events,
    check_features,
    check_target,
    require_columns,
)


@dataclass
class SignatureResult:
    """Outcome of :func:`nested_cv`.

    ``summary``: one row per metric (``metric, mean, lower_95, upper_95, n_folds``). ``folds``: one row per outer
    fold (metrics, chosen hyper-parameters, number of selected features). ``selected``: how often each feature was
    selected across outer folds. ``predictions``: out-of-fold predictions (risk score or probability) per repeat.
    ``final_model``: the search refitted on all data (its ``best_estimator_`` is the Pipeline to apply to new data).
    """

    summary: pd.DataFrame
    folds: pd.DataFrame
    selected: pd.DataFrame
    predictions: pd.DataFrame
    final_model: object | None = field(repr=False)
    endpoint: str = "survival"
    features: list[str] = field(default_factory=list, repr=False)
    batch: str | None = None

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Apply the final model to new rows of the same columns: risk score (survival; higher = earlier event)
        or probability of the positive class (binary)."""
        if self.final_model is None:
            raise OutcomeError("no final model: run nested_cv with refit=True")
        require_columns(df, self.features + ([self.batch] if self.batch else []), "model input column")
        X = df[self.features].copy()
        if self.batch:
            X[BATCH_COLUMN] = df[self.batch].astype(str).to_numpy()
        if self.endpoint == "survival":
            return self.final_pipeline.predict(X)
        return self.final_pipeline.predict_proba(X)[:, 1]

    @property
    def final_pipeline(self) -> object:
        """The fitted Pipeline of the final model (best hyper-parameters, refitted on all data)."""
        return getattr(self.final_model, "best_estimator_", self.final_model)

    @property
    def final_features(self) -> list[str]:
        """Features used by the final model's estimator (empty without a final model)."""
        if self.final_model is None:
            return []
        return list(getattr(self.final_pipeline[-1], "feature_names_in_", []))


def nested_cv(df: pd.DataFrame, features: Sequence[str], duration: str | None = None, event: str | None = None,
              target: str | None = None, model: object = "cox", outer: int = 5, repeats: int = 3, inner: int = 3,
              groups: str | None = None, batch: str | None = None,
              robustness: Sequence[str] | object | None = None, param_grid: dict | None = None,
              selection: bool = True, max_features: int = 20, variance: float | None = 0.0,
              correlation: float | None = 0.9, horizon: float | None = None, random_state: int = 0,
              refit: bool = True, n_jobs: int | None = None) -> SignatureResult:
    """Nested, patient-grouped cross-validation of a radiomics / biomarker signature.

    Survival endpoint: ``duration`` (any time unit) + ``event`` (1 event, 0 censored), ``model="cox"``; metrics:
    C-index, Brier score at ``horizon`` (default: median observed duration, in the duration's unit) and calibration
    slope. Binary endpoint: ``target`` (0/1), ``model="logistic"``, ``"random_forest"`` or a scikit-learn classifier;
    metrics: AUC, Brier score, calibration slope. ``outer`` × ``repeats`` outer folds, ``inner`` inner folds, split
    by ``groups`` (patient column; each row its own patient when None) and stratified by the event / target.
    ``model="cox"`` with a binary ``target`` means logistic regression.
    ``batch`` names a site column harmonised with ComBat inside each fold; ``robustness`` is a list of features to
    keep or a transformer (e.g. :class:`radiobio.features.robustness.RobustnessFilter`). ``refit=False`` skips the
    final model on all data (``final_model`` is then None) when only the performance estimate is wanted.

    The 95% CI of each mean uses the corrected repeated-CV t interval (Nadeau & Bengio 2003; Bouckaert & Frank
    2004), since overlapping training sets make fold results correlated.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    endpoint, y, strat = _endpoint(df, duration, event, target)
    features = check_features(df, features)
    if groups is not None:
        require_columns(df, [groups], "patient (groups) column")
        group_ids = df[groups].astype(str).to_numpy()
    else:
        group_ids = np.arange(len(df)).astype(str)
    _check_fold_counts(strat, group_ids, outer, inner, event if endpoint == "survival" else target, endpoint)
    X = df[list(features)].copy()
    if batch is not None:
        require_columns(df, [batch], "batch column")
        if df[batch].isna().any():
            raise OutcomeError(f"batch column {batch!r} has missing values; give every row its site / scanner")
        X[BATCH_COLUMN] = df[batch].astype(str).to_numpy()
    if isinstance(model, str) and endpoint == "binary" and model == "cox":
        model = "logistic"
    pipeline = build_pipeline(features, endpoint, model, batch=batch is not None, robustness=robustness,
                              variance=variance, correlation=correlation, selection=selection,
                              max_features=max_features, random_state=random_state)
    grid = default_grid(model, endpoint, selection) if param_grid is None else dict(param_grid)
    scoring = concordance_scorer if endpoint == "survival" else "roc_auc"
    if endpoint == "survival" and horizon is None:
        horizon = float(np.median(y["time"]))

    def search(train_index: np.ndarray, seed: int) -> object:
        splitter = StratifiedGroupKFold(n_splits=inner, shuffle=True, random_state=seed)
        inner_splits = list(splitter.split(train_index, strat[train_index], group_ids[train_index]))
        if not grid or all(len(v) == 1 for v in grid.values()):
            return _clone(pipeline).set_params(**{k: v[0] for k, v in grid.items()})
        return GridSearchCV(_clone(pipeline), grid, scoring=scoring, cv=inner_splits, refit=True, n_jobs=n_jobs,
                            error_score=np.nan)

    rows, predictions, selected_sets = [], [], []
    for repeat in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=outer, shuffle=True, random_state=random_state + repeat)
        for fold, (train, test) in enumerate(splitter.split(X, strat, group_ids)):
            fitted = _fit_quietly(search(train, random_state + 1000 * (repeat + 1) + fold), X.iloc[train], y[train])
            best = getattr(fitted, "best_estimator_", fitted)
            used = list(getattr(best[-1], "feature_names_in_", []))
            selected_sets.append(used)
            metrics, pred = _score(endpoint, best, X.iloc[train], y[train], X.iloc[test], y[test], horizon)
            row = {"repeat": repeat, "fold": fold, "n_train": len(train), "n_test": len(test),
                   ("events_test" if endpoint == "survival" else "positives_test"): int(strat[test].sum()),
                   "n_features": len(used), **metrics}
            row.update({f"param:{k}": v for k, v in getattr(fitted, "best_params_", {}).items()})
            rows.append(row)
            predictions.append(pd.DataFrame({"row": df.index[test], "repeat": repeat, "fold": fold,
                                             "prediction": pred, "truth": strat[test]}))
    folds = pd.DataFrame(rows)
    metric_names = ["c_index", "brier", "calibration_slope"] if endpoint == "survival" else [
        "auc", "brier", "calibration_slope"]
    summary = _summary(folds, metric_names, test_fraction=1.0 / (outer - 1))
    counts = pd.Series([f for used in selected_sets for f in used], dtype=object).value_counts()
    selected = pd.DataFrame({"feature": list(features)})
    selected["count"] = selected["feature"].map(counts).fillna(0).astype(int)
    selected["frequency"] = selected["count"] / len(selected_sets)
    selected = selected.sort_values(["count", "feature"], ascending=[False, True], ignore_index=True)
    final = _fit_quietly(search(np.arange(len(X)), random_state), X, y) if refit else None
    return SignatureResult(summary, folds, selected, pd.concat(predictions, ignore_index=True), final, endpoint,
                           list(features), batch)


def _endpoint(df: pd.DataFrame, duration: str | None, event: str | None,
              target: str | None) -> tuple[str, np.ndarray, np.ndarray]:
    survival = duration is not None or event is not None
    if survival and target is not None:
        raise OutcomeError("give either duration + event (survival endpoint) or target (binary endpoint), not both")
    if survival:
        if duration is None or event is None:
            raise OutcomeError("a survival endpoint needs both duration= and event= columns")
        durations, events = check_durations(df, duration), check_events(df, event)
        return "survival", survival_target(durations, events), events
    if target is None:
        raise OutcomeError("no endpoint: pass duration= and event= (survival) or target= (binary)")
    values = check_target(df, target)
    return "binary", values, values


def _check_fold_counts(strat: np.ndarray, group_ids: np.ndarray, outer: int, inner: int, column: str,
                       endpoint: str) -> None:
    if outer < 2 or inner < 2:
        raise OutcomeError(f"outer ({outer}) and inner ({inner}) must be at least 2 folds")
    patients = len(np.unique(group_ids))
    if patients < outer * inner:
        raise OutcomeError(f"{patients} patients cannot fill {outer} outer × {inner} inner folds; use fewer folds")
    per_patient = pd.Series(strat).groupby(group_ids).max()
    positives, negatives = int(per_patient.sum()), int((per_patient == 0).sum())
    word = "events" if endpoint == "survival" else "positive cases"
    if positives < outer * inner or (endpoint == "binary" and negatives < outer * inner):
        raise OutcomeError(f"column {column!r} has {positives} patients with {word} and {negatives} without: too "
                           f"few for {outer} outer × {inner} inner folds (each fold needs both); use fewer folds "
                           f"(outer=, inner=) or a cohort with more {word}")


def _clone(pipeline: object) -> object:
    from sklearn.base import clone

    return clone(pipeline)


def _fit_quietly(estimator: object, X: pd.DataFrame, y: np.ndarray) -> object:
    """Fit, silencing the expected chatter of noise-only folds (empty selections, non-finite inner scores)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No features were selected")
        warnings.filterwarnings("ignore", message="One or more of the test scores are non-finite")
        warnings.filterwarnings("ignore", category=OutcomeWarning, message="the L1-Cox selection did not converge")
        return estimator.fit(X, y)


def _score(endpoint: str, pipeline: object, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame,
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
        return {"c_index": concordance(time, event, risk),
                "brier": survival_brier(y_train["time"], y_train["event"], time, event, surv, horizon),
                "calibration_slope": survival_calibration_slope(time, event, risk)}, risk
    prob = pipeline.predict_proba(X_test)[:, 1]
    return {"auc": binary_auc(y_test, prob), "brier": float(brier_score_loss(y_test, prob)),
            "calibration_slope": binary_calibration_slope(y_test, prob)}, prob


def _survival_at(pipeline: object, X: pd.DataFrame, horizon: float) -> np.ndarray:
    transformed = pipeline[:-1].transform(X)
    return pipeline[-1].predict_survival(transformed, [horizon])[:, 0]


def _summary(folds: pd.DataFrame, metrics: list[str], test_fraction: float) -> pd.DataFrame:
    """Mean of each metric over outer folds with the corrected repeated-CV t interval (95%)."""
    rows = []
    for name in metrics:
        values = folds[name].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        k = len(values)
        mean = float(values.mean()) if k else float("nan")
        if k >= 2:
            corrected_se = np.sqrt((1.0 / k + test_fraction) * values.var(ddof=1))
            half = float(stats.t.ppf(0.975, k - 1) * corrected_se)
        else:
            half = float("nan")
        rows.append({"metric": name, "mean": mean, "lower_95": mean - half, "upper_95": mean + half, "n_folds": k})
    return pd.DataFrame(rows)
