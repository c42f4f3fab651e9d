"""Performance metrics of outcome models: discrimination (C-index, AUC), Brier score, calibration slope.

Fitting inside the metrics is lifelines' (Kaplan-Meier of the censoring distribution, Cox for the calibration slope)
or scikit-learn's (logistic recalibration). Only the IPCW weighting of the survival Brier score (Graf et al. 1999)
is written here, since neither library provides it.
"""

from __future__ import annotations

import warnings

import numpy as np

from radiobio.errors import OutcomeWarning, SettingsError


def survival_target(durations: np.ndarray, *, events: np.ndarray) -> np.ndarray:
    """Pack durations (any time unit) and 0/1 events into the structured ``y`` the survival estimators take."""
    y = np.empty(len(durations), dtype=[("event", "?"), ("time", "f8")])
    y["event"] = np.asarray(events).astype(bool)
    y["time"] = np.asarray(durations, dtype=float)
    return y


def split_survival_target(y: object) -> tuple[np.ndarray, np.ndarray]:
    """Return (durations, events as 0/1 ints) from a structured array or a two-column (time, event) table."""
    if isinstance(y, np.ndarray) and y.dtype.names and {"time", "event"} <= set(y.dtype.names):
        return y["time"].astype(float), y["event"].astype(int)
    array = np.asarray(y, dtype=float)
    if array.ndim == 2 and array.shape[1] == 2:
        return array[:, 0], array[:, 1].astype(int)
    raise SettingsError("survival y must be a structured array with 'time' and 'event' fields "
                    "(radiobio.outcome.survival_target) or an (n, 2) array of time, event")


def concordance(durations: np.ndarray, *, events: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C-index of a risk score (higher = earlier event), by lifelines; NaN when no pair is comparable."""
    from lifelines.utils import concordance_index

    try:
        return float(concordance_index(durations, -np.asarray(risk, dtype=float), events))
    except ZeroDivisionError:
        return float("nan")


def survival_brier(train_durations: np.ndarray, *, train_events: np.ndarray, durations: np.ndarray,
                   events: np.ndarray, survival_at_horizon: np.ndarray, horizon: float) -> float:
    """Brier score at ``horizon`` (same time unit as durations) with inverse-probability-of-censoring weights.

    ``survival_at_horizon`` is each test case's predicted S(horizon). The censoring distribution G is the
    Kaplan-Meier estimate of the training data's censoring times (Graf et al. 1999). Returns NaN when no test case
    is informative at the horizon.
    """
    from lifelines import KaplanMeierFitter

    censoring = KaplanMeierFitter().fit(train_durations, 1 - np.asarray(train_events))
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events).astype(bool)
    s = np.clip(np.asarray(survival_at_horizon, dtype=float), 0.0, 1.0)
    died = (durations <= horizon) & events
    alive = durations > horizon
    if not (died.any() or alive.any()):
        return float("nan")
    # G(t-) for the cases that died: evaluate just below their event time.
    g_died = censoring.survival_function_at_times(durations[died] - 1e-9 * max(1.0, horizon)).to_numpy()
    g_horizon = float(censoring.survival_function_at_times([horizon]).iloc[0])
    floor = 1e-3  # cap the weights where almost everyone was censored
    loss = np.zeros(len(durations))
    loss[died] = s[died] ** 2 / np.maximum(g_died, floor)
    loss[alive] = (1.0 - s[alive]) ** 2 / max(g_horizon, floor)
    return float(loss.mean())


def survival_calibration_slope(durations: np.ndarray, *, events: np.ndarray, linear_predictor: np.ndarray) -> float:
    """Calibration slope of a Cox linear predictor: the coefficient of a Cox model refit on it (ideal 1).

    Fitted with lifelines; NaN when the test data hold fewer than two events or the fit fails.
    """
    import pandas as pd
    from lifelines import CoxPHFitter

    events = np.asarray(events)
    lp = np.asarray(linear_predictor, dtype=float)
    if events.sum() < 2 or np.ptp(lp) == 0:
        return float("nan")
    frame = pd.DataFrame({"lp": lp, "duration": durations, "event": events})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter = CoxPHFitter().fit(frame, "duration", "event")
    except Exception:  # lifelines raises several types on degenerate folds; the slope is then undefined
        return float("nan")
    return float(fitter.params_["lp"])


def binary_calibration_slope(truth: np.ndarray, *, probability: np.ndarray) -> float:
    """Calibration slope of predicted probabilities: logistic regression of the outcome on logit(p) (ideal 1)."""
    from sklearn.linear_model import LogisticRegression

    target = np.asarray(truth)
    if len(np.unique(target)) < 2:
        return float("nan")
    p = np.clip(np.asarray(probability, dtype=float), 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p)).reshape(-1, 1)
    if np.ptp(logit) == 0:
        return float("nan")
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(logit, target)
    return float(model.coef_[0, 0])


def binary_auc(truth: np.ndarray, *, probability: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn); NaN, with a warning, when the fold holds a single class."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(truth)) < 2:
        warnings.warn("a test fold holds a single class: its AUC is undefined (NaN) and left out of the mean",
                      OutcomeWarning, stacklevel=2)
        return float("nan")
    return float(roc_auc_score(truth, probability))


def concordance_scorer(estimator: object, X: object, y: np.ndarray) -> float:
    """Scorer for scikit-learn searches: the C-index of ``estimator.predict(X)`` (a risk score) on survival ``y``."""
    durations, events = split_survival_target(y)
    return concordance(durations, events=events, risk=estimator.predict(X))
