"""Building blocks of the prediction pipelines and the metrics, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index
from sklearn.metrics import brier_score_loss

from radiobio.outcome import CorrelationFilter, CoxPHEstimator, LassoCoxSelector, cox_score_statistics, survival_target
from radiobio.outcome.metrics import (
    binary_calibration_slope,
    survival_brier,
    survival_calibration_slope,
)
from radiobio.outcome.modeling import FeatureSubset, build_pipeline

ROSSI = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


def test_cox_estimator_equals_lifelines_and_scores_c_index():
    rossi = load_rossi()
    y = survival_target(rossi["week"], events=rossi["arrest"])
    estimator = CoxPHEstimator(penalizer=0.0).fit(rossi[ROSSI], y)
    direct = CoxPHFitter().fit(rossi, "week", "arrest")
    assert np.allclose(estimator.coef_, direct.params_[ROSSI])
    assert list(estimator.coefficients.index) == ROSSI
    risk = estimator.predict(rossi[ROSSI])
    assert np.allclose(risk, direct.predict_log_partial_hazard(rossi))
    assert estimator.score(rossi[ROSSI], y) == pytest.approx(direct.concordance_index_)
    surv = estimator.predict_survival(rossi[ROSSI].iloc[:3], [20, 40])
    expected = direct.predict_survival_function(rossi.iloc[:3], times=[20, 40]).to_numpy().T
    assert np.allclose(surv, expected)


def test_cox_estimator_without_features_is_the_null_model():
    rossi = load_rossi()
    y = survival_target(rossi["week"], events=rossi["arrest"])
    empty = rossi[[]]
    estimator = CoxPHEstimator().fit(empty, y)
    assert np.all(estimator.predict(empty) == 0)
    assert estimator.score(empty, y) == pytest.approx(0.5)
    km_at_30 = float(estimator.baseline_.survival_function_at_times([30]).iloc[0])
    assert np.allclose(estimator.predict_survival(empty.iloc[:4], [30]), km_at_30)


def test_score_statistic_equals_logrank_for_a_binary_covariate():
    rng = np.random.default_rng(0)
    n = 80
    group = rng.binomial(1, 0.5, n)
    time = rng.exponential(np.where(group, 5.0, 10.0)) + rng.uniform(0, 1e-3, n)  # no tied times
    event = rng.binomial(1, 0.7, n)
    z = cox_score_statistics(group[:, None], durations=time, events=event)[0]
    direct = logrank_test(time[group == 1], time[group == 0], event[group == 1], event[group == 0])
    assert z ** 2 == pytest.approx(direct.test_statistic, rel=1e-9)
    assert z > 0  # group 1 dies earlier: positive score


def test_lasso_cox_selector_finds_the_signal_among_noise():
    rng = np.random.default_rng(1)
    n = 150
    X = pd.DataFrame(rng.normal(size=(n, 40)), columns=[f"f{i}" for i in range(40)])
    rate = np.exp(0.9 * X["f3"] - 0.7 * X["f17"])
    death, censor = rng.exponential(1 / rate), rng.exponential(2.0, n)
    y = survival_target(np.minimum(death, censor), events=death <= censor)
    selector = LassoCoxSelector(penalizer=0.05, max_features=10).fit(X, y)
    chosen = set(selector.get_feature_names_out())
    assert {"f3", "f17"} <= chosen and len(chosen) <= 10
    assert selector.coef_[3] > 0 > selector.coef_[17]


def test_correlation_filter_drops_the_later_of_a_correlated_pair():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=100), rng.normal(size=100)
    X = pd.DataFrame({"a": a, "b": b, "a_copy": a * 3 + rng.normal(0, 0.01, 100), "c": rng.normal(size=100)})
    kept = CorrelationFilter(threshold=0.9).set_output(transform="pandas").fit_transform(X)
    assert list(kept.columns) == ["a", "b", "c"]


def test_feature_subset_keeps_listed_columns():
    X = pd.DataFrame(np.ones((3, 3)), columns=["x", "y", "z"])
    assert list(FeatureSubset(["z", "x", "unknown"]).fit_transform(X).columns) == ["x", "z"]


def test_pipeline_fitted_on_train_only_does_not_see_test_rows():
    """Scaling statistics come from the training rows only: a huge value in a test row leaves them unchanged."""
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    y = survival_target(rng.exponential(10, 60), events=rng.binomial(1, 0.7, 60))
    pipe = build_pipeline(["a", "b", "c"], endpoint="survival", selection=False).fit(X.iloc[:40], y[:40])
    scaler = pipe.named_steps["prepare"].named_transformers_["features"].named_steps["scale"]
    assert np.allclose(scaler.mean_, X.iloc[:40].mean())


def test_survival_brier_without_censoring_equals_plain_brier():
    rng = np.random.default_rng(4)
    time = rng.exponential(10, 200)
    event = np.ones(200, dtype=int)
    surv = rng.uniform(0, 1, 200)
    horizon = 8.0
    ipcw = survival_brier(time, train_events=event, durations=time, events=event, survival_at_horizon=surv,
                          horizon=horizon)
    plain = brier_score_loss((time <= horizon).astype(int), 1 - surv)
    assert ipcw == pytest.approx(plain)


def test_calibration_slopes_are_one_for_a_correct_model():
    rng = np.random.default_rng(5)
    n = 4000
    lp = rng.normal(0, 1, n)
    prob = 1 / (1 + np.exp(-lp))
    outcome = rng.binomial(1, prob)
    assert binary_calibration_slope(outcome, probability=prob) == pytest.approx(1.0, abs=0.12)
    assert binary_calibration_slope(outcome, probability=1 / (1 + np.exp(-2 * lp))) == pytest.approx(0.5, abs=0.08)
    death = rng.exponential(1 / np.exp(lp))
    assert survival_calibration_slope(death, events=np.ones(n), linear_predictor=lp) == pytest.approx(1.0, abs=0.06)
    assert survival_calibration_slope(death, events=np.ones(n), linear_predictor=2 * lp) == pytest.approx(0.5, abs=0.03)
    assert concordance_index(death, -lp) > 0.6


def test_survival_brier_with_censoring_recovers_the_marginal_brier():
    """Predicting the Kaplan-Meier S(t) for everyone has expected Brier S(t)(1 - S(t)); the IPCW estimate from
    heavily censored data must recover it (Graf et al. 1999)."""
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(6)
    n = 6000
    death, censor = rng.exponential(10.0, n), rng.uniform(0, 25.0, n)
    time, event = np.minimum(death, censor), (death <= censor).astype(int)
    horizon = 7.0
    s = float(KaplanMeierFitter().fit(time, event).survival_function_at_times([horizon]).iloc[0])
    truth = np.exp(-horizon / 10.0)
    assert s == pytest.approx(truth, abs=0.02)
    brier = survival_brier(time, train_events=event, durations=time, events=event,
                           survival_at_horizon=np.full(n, s), horizon=horizon)
    assert brier == pytest.approx(truth * (1 - truth), abs=0.01)
    naive = brier_score_loss((time <= horizon) & (event == 1), np.full(n, 1 - s))  # ignores censoring: biased
    assert abs(naive - truth * (1 - truth)) > abs(brier - truth * (1 - truth))


def test_bad_arguments_at_the_modelling_boundary_raise_radiobio_errors():
    from radiobio.errors import OutcomeError, SettingsError
    from radiobio.outcome.metrics import split_survival_target

    with pytest.raises(SettingsError, match="endpoint must be 'survival' or 'binary'"):
        build_pipeline(["a"], endpoint="regression")
    with pytest.raises(ValueError):  # SettingsError is also a ValueError: callers' except clauses keep working
        build_pipeline(["a"], endpoint="regression")
    with pytest.raises(SettingsError, match="structured array"):
        split_survival_target([1.0, 2.0, 3.0])
    X = pd.DataFrame(np.ones((3, 2)), columns=["x", "y"])
    with pytest.raises(OutcomeError, match="none of the 2 listed features"):
        FeatureSubset(["robust_a", "robust_b"]).fit(X)


def test_feature_subset_is_the_robustness_step_of_the_pipeline():
    """A list of robust features becomes a FeatureSubset step; only those columns reach the model."""
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(80, 4)), columns=["a", "b", "c", "d"])
    y = survival_target(rng.exponential(10, 80), events=rng.binomial(1, 0.8, 80))
    pipe = build_pipeline(list(X.columns), endpoint="survival", robustness=["d", "b"], selection=False,
                          correlation=None).fit(X, y)
    assert isinstance(pipe.named_steps["robust"], FeatureSubset)
    assert list(pipe[-1].feature_names_in_) == ["b", "d"]
