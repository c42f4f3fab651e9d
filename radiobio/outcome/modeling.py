"""scikit-learn building blocks for outcome prediction: a Cox estimator wrapping lifelines, L1-Cox feature selection,
correlation and subset filters, and the leakage-safe Pipeline that :func:`radiobio.outcome.nested_cv` refits per fold.

Survival targets are structured arrays (``survival_target(durations, events=events)``), so every piece works inside
scikit-learn Pipelines and searches.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from radiobio.errors import OutcomeError, OutcomeWarning, SettingsError
from radiobio.outcome.metrics import concordance, split_survival_target

#: Name of the batch column that travels with the features through a Pipeline to the ComBat step.
BATCH_COLUMN = "__batch__"


class CoxPHEstimator(BaseEstimator):
    """lifelines' ``CoxPHFitter`` as a scikit-learn estimator.

    ``fit(X, y)`` takes a structured survival ``y``; ``predict(X)`` returns the linear predictor (log partial
    hazard: higher = higher risk); ``score`` is Harrell's C-index. With zero input columns (every feature filtered
    out) the model is the null model: constant risk and the Kaplan-Meier survival curve.
    """

    def __init__(self, *, penalizer: float = 0.1, l1_ratio: float = 0.0):
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio

    def fit(self, X: object, y: np.ndarray) -> CoxPHEstimator:
        """Fit on features ``X`` (n × p) and survival ``y``; returns self."""
        from lifelines import CoxPHFitter, KaplanMeierFitter

        array = self._validate(X, reset=True)
        durations, events = split_survival_target(y)
        if events.sum() == 0:
            raise OutcomeError("a training fold has no events; use fewer folds or stratify the split by event")
        self.coef_ = np.zeros(array.shape[1])
        self.fitter_ = None
        self.baseline_ = None if array.shape[1] else KaplanMeierFitter().fit(durations, events)
        if array.shape[1]:
            frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
            frame["__duration__"], frame["__event__"] = durations, events
            self.fitter_ = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio)
            self.fitter_.fit(frame, "__duration__", "__event__")
            self.coef_ = self.fitter_.params_.to_numpy()
        return self

    def _validate(self, X: object, reset: bool) -> np.ndarray:
        if np.shape(X)[1] == 0:  # scikit-learn's validation rejects tables without columns: the null model
            if reset:
                self.n_features_in_ = 0
                self.feature_names_in_ = np.asarray([], dtype=object)
            elif self.n_features_in_:
                raise SettingsError(f"X has 0 features, but the model was fitted on {self.n_features_in_}; give "
                                    f"the columns it was fitted on")
            return np.empty((np.shape(X)[0], 0))
        return validate_data(self, X, reset=reset)

    def _frame(self, X: object) -> pd.DataFrame:
        check_is_fitted(self, "coef_")
        array = self._validate(X, reset=False)
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])

    def predict(self, X: object) -> np.ndarray:
        """Linear predictor (log partial hazard) per row; zeros for the null model."""
        frame = self._frame(X)
        if self.fitter_ is None:
            return np.zeros(len(frame))
        return self.fitter_.predict_log_partial_hazard(frame).to_numpy(dtype=float)

    def predict_survival(self, X: object, times: Sequence[float]) -> np.ndarray:
        """Predicted survival probabilities S(t | x), shape (n rows, len(times)); times in the durations' unit."""
        frame = self._frame(X)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if self.fitter_ is None:
            curve = self.baseline_.survival_function_at_times(times).to_numpy()
            return np.tile(curve, (len(frame), 1))
        return self.fitter_.predict_survival_function(frame, times=times).to_numpy().T

    def score(self, X: object, y: np.ndarray) -> float:
        """Harrell's C-index of the predictions on survival ``y``."""
        durations, events = split_survival_target(y)
        return concordance(durations, events=events, risk=self.predict(X))

    @property
    def coefficients(self) -> pd.Series:
        """Fitted coefficients (log hazard ratios per unit of each input feature), indexed by feature name."""
        names = getattr(self, "feature_names_in_", [f"x{i}" for i in range(len(self.coef_))])
        return pd.Series(self.coef_, index=list(names), name="coef")


def cox_score_statistics(X: np.ndarray, *, durations: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Univariate Cox score-test z statistic of every column of ``X`` at β = 0 (Breslow ties).

    Written here because it must be vectorised over hundreds of features (fitting one lifelines model per feature
    is ~100 times slower); for a 0/1 covariate without tied times it equals the log-rank statistic.
    """
    X = np.asarray(X, dtype=float)
    durations = np.asarray(durations, dtype=float)
    order = np.argsort(durations, kind="stable")
    t, x, d = durations[order], X[order], np.asarray(events)[order].astype(bool)
    # reverse cumulative sums: risk-set totals from each sorted position to the end
    s0 = np.arange(len(t), 0, -1, dtype=float)
    s1 = np.cumsum(x[::-1], axis=0)[::-1]
    s2 = np.cumsum((x ** 2)[::-1], axis=0)[::-1]
    first = np.searchsorted(t, t, side="left")  # tied times share the risk set of their first occurrence
    s0, s1, s2 = s0[first][d], s1[first][d], s2[first][d]
    mean = s1 / s0[:, None]
    score = (x[d] - mean).sum(axis=0)
    information = (s2 / s0[:, None] - mean ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(information > 1e-12, score / np.sqrt(information), 0.0)
    return z


class LassoCoxSelector(SelectorMixin, BaseEstimator):
    """Select features with an L1-penalised Cox model (lifelines, ``l1_ratio=1``).

    lifelines' L1 solver slows down steeply with the number of columns (tens of seconds for 300), so the
    ``max_features`` columns with the largest univariate Cox score statistics are screened first (sure
    independence screening, Fan et al. 2010); the L1 model then keeps those with ``|coef| > tol`` (coefficients per
    unit of the already standardised input).
    """

    def __init__(self, *, penalizer: float = 0.1, max_features: int = 20, tol: float = 1e-2):
        self.penalizer = penalizer
        self.max_features = max_features
        self.tol = tol

    def fit(self, X: object, y: np.ndarray) -> LassoCoxSelector:
        """Screen and select on features ``X`` and survival ``y``; returns self."""
        from lifelines import CoxPHFitter
        from lifelines.exceptions import ConvergenceError

        array = validate_data(self, X)
        durations, events = split_survival_target(y)
        self.scores_ = cox_score_statistics(array, durations=durations, events=events)
        screened = np.sort(np.argsort(-np.abs(self.scores_), kind="stable")[: self.max_features])
        self.coef_ = np.zeros(array.shape[1])
        frame = pd.DataFrame(array[:, screened], columns=[f"x{i}" for i in screened])
        frame["__duration__"], frame["__event__"] = durations, events
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter on noise columns; the result is checked below
                fitter = CoxPHFitter(penalizer=self.penalizer, l1_ratio=1.0)
                fitter.fit(frame, "__duration__", "__event__", fit_options={"precision": 1e-5})
            self.coef_[screened] = fitter.params_.to_numpy()
        except ConvergenceError:
            warnings.warn("the L1-Cox selection did not converge in a fold; no feature selected there",
                          OutcomeWarning, stacklevel=2)
        self.support_ = np.abs(self.coef_) > self.tol
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_


class L1LogisticSelector(SelectorMixin, BaseEstimator):
    """Select features with an L1-penalised logistic regression (scikit-learn, liblinear).

    Keeps at most ``max_features`` columns with non-zero coefficients; when the penalty zeroes every coefficient,
    the single column most correlated with the target is kept so that the downstream classifier can still be fitted
    (documented fallback; on pure noise it yields chance-level performance).
    """

    def __init__(self, *, C: float = 1.0, max_features: int = 20, seed: int = 0):
        self.C = C
        self.max_features = max_features
        self.seed = seed

    def fit(self, X: object, y: np.ndarray) -> L1LogisticSelector:
        """Select on features ``X`` and a 0/1 target ``y``; returns self."""
        from sklearn.linear_model import LogisticRegression

        array = validate_data(self, X)
        y = np.asarray(y)
        model = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=self.C, random_state=self.seed)
        self.estimator_ = model.fit(array, y)
        self.coef_ = model.coef_.ravel().copy()
        magnitude = np.abs(self.coef_)
        ranked = np.argsort(-magnitude, kind="stable")[: self.max_features]
        self.support_ = np.zeros(array.shape[1], dtype=bool)
        self.support_[ranked[magnitude[ranked] > 1e-10]] = True
        if not self.support_.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.nan_to_num([abs(np.corrcoef(array[:, j], y)[0, 1]) for j in range(array.shape[1])])
            self.support_[int(np.argmax(corr))] = True
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_


class CorrelationFilter(TransformerMixin, BaseEstimator):
    """Drop features whose absolute Pearson correlation with an earlier kept feature exceeds ``threshold``.

    Greedy in column order (a few lines, no library equivalent in scikit-learn); fitted on training data only.
    """

    def __init__(self, *, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X: object, y: object = None) -> CorrelationFilter:
        """Find the kept columns on ``X``; returns self."""
        array = validate_data(self, X, ensure_min_features=0)
        keep: list[int] = []
        if array.shape[1]:
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.abs(np.nan_to_num(np.corrcoef(array, rowvar=False), nan=0.0))
            corr = np.atleast_2d(corr)
            for j in range(array.shape[1]):
                if not keep or corr[j, keep].max() <= self.threshold:
                    keep.append(j)
        self.support_ = np.zeros(array.shape[1], dtype=bool)
        self.support_[keep] = True
        return self

    def transform(self, X: object) -> object:
        """Keep the selected columns of ``X`` (DataFrame in, DataFrame out)."""
        check_is_fitted(self, "support_")
        validate_data(self, X, reset=False, ensure_min_features=0)
        if isinstance(X, pd.DataFrame):
            return X.loc[:, self.support_]
        return np.asarray(X)[:, self.support_]

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the kept columns."""
        check_is_fitted(self, "support_")
        return np.asarray(self.feature_names_in_, dtype=object)[self.support_]


class FeatureSubset(TransformerMixin, BaseEstimator):
    """Keep a fixed list of feature columns: the one column-keeping step of radiobio's Pipelines.

    Typical use is the robust features of a perturbation or test-retest study, which uses no outcome, so keeping
    them inside every fold leaks nothing::

        keep = radiobio.features.robust_features(icc_table, threshold=0.9)
        FeatureSubset(keep)            # or nested_cv(..., robustness=keep)

    Columns of ``X`` that are not listed are dropped; listed names absent from ``X`` are ignored. Raises
    :class:`~radiobio.errors.OutcomeError` at ``fit`` when no listed feature is among the columns of ``X``.
    """

    def __init__(self, features: Sequence[str] = ()):
        self.features = features

    def fit(self, X: pd.DataFrame, y: object = None) -> FeatureSubset:
        """Record which of ``features`` are present in ``X``; returns self."""
        if not isinstance(X, pd.DataFrame):
            raise OutcomeError("FeatureSubset needs a DataFrame with named feature columns (a Pipeline with "
                               "set_output(transform='pandas'))")
        if isinstance(self.features, str):
            raise OutcomeError(f"FeatureSubset takes a list of column names, not the single text {self.features!r}")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        wanted = set(self.features)
        self.kept_ = [c for c in X.columns if c in wanted]
        if not self.kept_:
            raise OutcomeError(f"none of the {len(wanted)} listed features is among the modelled features (e.g. "
                               f"{sorted(wanted)[:3]}); check that the list (e.g. of robust features) uses the same "
                               f"column names, or lower the ICC threshold")
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return ``X`` restricted to the kept columns."""
        check_is_fitted(self, "kept_")
        missing = [c for c in self.kept_ if c not in X.columns]
        if missing:
            raise OutcomeError(f"columns {missing[:5]} were kept at fit but are missing now; transform data with the "
                               f"columns of the training data")
        return X.loc[:, self.kept_]

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the kept columns."""
        check_is_fitted(self, "kept_")
        return np.asarray(self.kept_, dtype=object)


def make_model(model: str | BaseEstimator, *, endpoint: str, seed: int = 0) -> BaseEstimator:
    """The final estimator: ``"cox"`` (ridge-penalised lifelines Cox), ``"logistic"``, ``"random_forest"``, or any
    scikit-learn estimator given as is."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if not isinstance(model, str):
        return model
    if endpoint == "survival":
        if model != "cox":
            raise OutcomeError(f"model {model!r} cannot fit a survival endpoint; use model='cox' (or give a "
                               f"binary target= instead of duration/event)")
        return CoxPHEstimator(penalizer=0.1)
    models = {"logistic": lambda: LogisticRegression(C=1.0, max_iter=2000),
              "random_forest": lambda: RandomForestClassifier(n_estimators=200, min_samples_leaf=3,
                                                              random_state=seed)}
    if model not in models:
        raise OutcomeError(f"unknown model {model!r} for a binary endpoint; use one of {sorted(models)} or pass a "
                           f"scikit-learn classifier")
    return models[model]()


def default_grid(model: str | BaseEstimator, *, endpoint: str, selection: bool) -> dict[str, list]:
    """The small default hyper-parameter grid searched in the inner loop of :func:`nested_cv`."""
    grid: dict[str, list] = {}
    if selection:
        grid["select__penalizer" if endpoint == "survival" else "select__C"] = (
            [0.05, 0.15] if endpoint == "survival" else [0.1, 1.0])
    if model == "logistic":
        grid["model__C"] = [0.1, 1.0]
    elif model == "random_forest":
        grid["model__max_depth"] = [3, None]
    return grid


def build_pipeline(features: Sequence[str], *, endpoint: str, model: str | BaseEstimator = "cox",
                   combat: bool = False, robustness: Sequence[str] | TransformerMixin | None = None,
                   variance: float | None = 0.0, correlation: float | None = 0.9, selection: bool = True,
                   max_features: int = 20, seed: int = 0) -> object:
    """The leakage-safe Pipeline: impute (median) → scale → ComBat (when ``combat``) → robustness filter →
    variance filter → correlation filter → L1 selection (Cox or logistic) → model. Every step is fitted on the
    training part of a fold only. Input is a DataFrame of ``features`` (plus the ``BATCH_COLUMN`` when ``combat``).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from radiobio.outcome.harmonization import ComBat

    if endpoint not in ("survival", "binary"):
        raise SettingsError(f"endpoint must be 'survival' or 'binary', not {endpoint!r}")
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    steps: list[tuple[str, object]] = [
        ("prepare", ColumnTransformer([("features", numeric, list(features))],
                                      remainder="passthrough" if combat else "drop", verbose_feature_names_out=False))]
    if combat:
        steps.append(("combat", ComBat(batch_column=BATCH_COLUMN)))
    if robustness is not None:
        steps.append(("robust", FeatureSubset(list(robustness)) if _is_name_list(robustness) else robustness))
    if variance is not None:
        steps.append(("variance", VarianceThreshold(threshold=variance)))
    if correlation is not None:
        steps.append(("correlation", CorrelationFilter(threshold=correlation)))
    if selection:
        if endpoint == "survival":
            steps.append(("select", LassoCoxSelector(penalizer=0.1, max_features=max_features)))
        else:
            steps.append(("select", L1LogisticSelector(C=1.0, max_features=max_features, seed=seed)))
    steps.append(("model", make_model(model, endpoint=endpoint, seed=seed)))
    return Pipeline(steps).set_output(transform="pandas")


def _is_name_list(value: object) -> bool:
    return isinstance(value, Sequence | np.ndarray | pd.Index) and not isinstance(value, str) and all(
        isinstance(v, str) for v in value)
