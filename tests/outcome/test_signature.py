"""nested_cv: chance-level on pure noise (while the naive protocol is optimistic), finds real signals, splits by
patient, and handles bad input with an OutcomeError or a documented warning."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_lung
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score

from radiobio.errors import OutcomeError, OutcomeWarning
from radiobio.outcome import CoxPHEstimator, LassoCoxSelector, nested_cv, survival_target
from radiobio.outcome.metrics import concordance_scorer
from radiobio.outcome.modeling import build_pipeline


def _noise_cohort(draw: int, n: int = 140, p: int = 300) -> tuple[pd.DataFrame, list[str]]:
    lung = load_lung()[["time", "status"]].iloc[:n].reset_index(drop=True)
    rng = np.random.default_rng(100 + draw)
    noise = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"noise_{i:03d}" for i in range(p)])
    return pd.concat([lung, noise], axis=1), list(noise.columns)


def _naive_c_index(df: pd.DataFrame, features: list[str]) -> float:
    """The leaky protocol: select on all patients, then cross-validate only the model."""
    y = survival_target(df["time"], events=df["status"])
    standardised = (df[features] - df[features].mean()) / df[features].std()
    chosen = list(LassoCoxSelector(penalizer=0.05, max_features=10).fit(standardised, y).get_feature_names_out())
    splits = [s for r in range(3) for s in StratifiedKFold(5, shuffle=True, random_state=r).split(df, df["status"])]
    return float(cross_val_score(CoxPHEstimator(penalizer=0.1), standardised[chosen], y, cv=splits,
                                 scoring=concordance_scorer).mean())


def test_leakage_noise_features_give_chance_c_index_naive_protocol_does_not():
    nested, naive = [], []
    for draw in range(3):
        df, features = _noise_cohort(draw)
        result = nested_cv(df, features=features, duration_column="time", event_column="status", outer=5,
                           repeats=3, inner=3, max_features=10, seed=draw, refit=False)
        assert len(result.folds) == 15 and result.summary["n_folds"].iloc[0] == 15 and result.final_model is None
        nested.append(result.summary.set_index("metric").loc["c_index", "mean"])
        naive.append(_naive_c_index(df, features))
    print(f"noise C-index: nested {np.round(nested, 3)} (mean {np.mean(nested):.3f}), "
          f"naive {np.round(naive, 3)} (mean {np.mean(naive):.3f})")
    assert abs(np.mean(nested) - 0.5) <= 0.06
    assert np.mean(naive) > 0.58
    assert np.mean(naive) - np.mean(nested) > 0.07


def _binary_cohort(seed: int = 0, patients: int = 90, p: int = 30) -> pd.DataFrame:
    """Two rows (lesions) per patient, three sites with a location shift, signal in f0 and f1."""
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(patients), 2)
    site = np.array(["A", "B", "C"])[patient % 3]
    latent = rng.normal(size=(patients, p))[patient] + rng.normal(0, 0.3, (2 * patients, p))
    logit = 1.5 * latent[:, 0] - 1.2 * latent[:, 1]
    target = (rng.random(patients) < 1 / (1 + np.exp(-logit[::2])))[patient].astype(int)
    features = latent + np.where(site == "B", 3.0, 0.0)[:, None]
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(p)])
    frame.iloc[5, 3] = np.nan  # imputed inside the folds
    return frame.assign(patient=patient, site=site, response=target)


def test_binary_signal_found_with_patient_groups_and_combat():
    df = _binary_cohort()
    features = [f"f{i}" for i in range(30)]
    result = nested_cv(df, features=features, target_column="response", model="logistic",
                       patient_column="patient", batch_column="site", outer=5, repeats=2, inner=3)
    summary = result.summary.set_index("metric")
    assert list(result.summary.columns[:4]) == ["metric", "mean", "lower_95", "upper_95"]
    assert summary.loc["auc", "mean"] > 0.75
    assert summary.loc["auc", "lower_95"] < summary.loc["auc", "mean"] < summary.loc["auc", "upper_95"]
    assert 0 < summary.loc["brier", "mean"] < 0.25
    top = result.selected.set_index("feature")["frequency"]
    assert set(top.index[:2]) == {"f0", "f1"} and top["f0"] >= 0.8 and top["f1"] >= 0.8
    assert {"f0", "f1"} <= set(result.final_features)
    assert "combat" in result.final_pipeline.named_steps
    # each patient's two rows always fall in the same outer test fold
    predictions = result.predictions
    assert list(predictions.columns[:2]) == ["patient", "row"]  # two rows per patient: the row keeps them apart
    assert (df.loc[predictions["row"], "patient"].to_numpy() == predictions["patient"].to_numpy()).all()
    assert (df.loc[predictions["row"], "response"].to_numpy() == predictions["response"].to_numpy()).all()
    assert predictions.groupby(["repeat", "patient"])["fold"].nunique().max() == 1
    assert predictions.groupby("repeat").size().eq(len(df)).all()
    new_patients = _binary_cohort(seed=1)
    probability = result.predict(new_patients)
    assert roc_auc_score(new_patients["response"], probability) > 0.75


def test_random_forest_model_and_robustness_list():
    from sklearn.ensemble import RandomForestClassifier

    df = _binary_cohort(seed=2, patients=150)
    features = [f"f{i}" for i in range(30)]
    robust = ["f0", "f1", "f2", "f3", "f4"]
    forest = RandomForestClassifier(100, min_samples_leaf=3, random_state=0)
    result = nested_cv(df, features=features, target_column="response", model=forest,
                       patient_column="patient", robustness=robust, outer=3, repeats=1, inner=2, param_grid={})
    assert set(result.selected.query("count > 0")["feature"]) <= set(robust)
    assert result.summary.set_index("metric").loc["auc", "mean"] > 0.7


def test_survival_signal_found_and_final_model_predicts():
    rng = np.random.default_rng(3)
    n = 150
    frame = pd.DataFrame(rng.normal(size=(n, 25)), columns=[f"f{i}" for i in range(25)])
    rate = np.exp(1.0 * frame["f2"] + 0.8 * frame["f7"])
    death, censor = rng.exponential(1 / rate), rng.exponential(2.0, n)
    frame["os"], frame["dead"] = np.minimum(death, censor) * 365, (death <= censor).astype(int)
    result = nested_cv(frame, features=[f"f{i}" for i in range(25)], duration_column="os", event_column="dead",
                       outer=4, repeats=2, inner=3, max_features=8)
    summary = result.summary.set_index("metric")
    assert summary.loc["c_index", "mean"] > 0.7
    assert np.isfinite(summary.loc["brier", "mean"]) and summary.loc["brier", "mean"] < 0.25
    assert summary.loc["calibration_slope", "mean"] > 0.5
    assert result.selected.set_index("feature").loc[["f2", "f7"], "frequency"].min() == 1.0
    risk = result.predict(frame)
    assert np.corrcoef(risk, np.log(rate))[0, 1] > 0.8


def test_perfectly_separated_binary_data_is_handled_by_the_penalty():
    rng = np.random.default_rng(4)
    n = 80
    frame = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    frame["y"] = (frame["f0"] > 0).astype(int)
    result = nested_cv(frame, features=[f"f{i}" for i in range(6)], target_column="y", model="logistic", outer=4,
                       repeats=1, inner=2)
    assert result.summary.set_index("metric").loc["auc", "mean"] > 0.97


def test_single_patient_site_is_warned_not_fatal():
    df = _binary_cohort(seed=5)
    df.loc[df.patient == 0, "site"] = "tiny"
    with pytest.warns(OutcomeWarning, match="single sample|not seen"):
        result = nested_cv(df, features=["f0", "f1", "f2"], target_column="response", patient_column="patient",
                           batch_column="site", outer=3, repeats=1, inner=2, selection=False, param_grid={})
    assert np.isfinite(result.summary["mean"]).all()


def test_outer_fold_without_events_is_warned_and_left_out():
    from radiobio.outcome.signature import _score

    rng = np.random.default_rng(6)
    X = pd.DataFrame(rng.normal(size=(30, 2)), columns=["a", "b"])
    y = survival_target(rng.exponential(10, 30), events=np.r_[np.ones(20), np.zeros(10)])
    pipe = build_pipeline(["a", "b"], endpoint="survival", selection=False)
    pipe.fit(X.iloc[:20], y[:20])
    with pytest.warns(OutcomeWarning, match="no events"):
        metrics, risk = _score("survival", pipe, X.iloc[:20], y[:20], X.iloc[20:], y[20:], 10.0)
    assert np.isnan(metrics["c_index"]) and len(risk) == 10


def test_more_features_than_patients_and_constant_feature():
    df, features = _noise_cohort(0, n=60, p=80)
    df["constant"] = 1.0
    with pytest.warns(OutcomeWarning, match="constant"):
        result = nested_cv(df, features=features[:80] + ["constant"], duration_column="time",
                           event_column="status", outer=3, repeats=1, inner=2, max_features=5,
                           param_grid={"select__penalizer": [0.1]})
    assert result.selected.set_index("feature").loc["constant", "count"] == 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"duration_column": "time", "event_column": "status", "target_column": "status"}, "not both"),
    ({}, "no endpoint"),
    ({"duration_column": "time"}, "both duration_column= and event_column="),
    ({"duration_column": "time", "event_column": "few_events"}, "'few_events'"),
    ({"target_column": "grade"}, "'grade'"),
    ({"duration_column": "bad_time", "event_column": "status"}, "'bad_time'"),
])
def test_bad_endpoints(kwargs, fragment):
    df, features = _noise_cohort(0, n=60, p=5)
    df["few_events"] = 0
    df.loc[:3, "few_events"] = 1  # 4 events cannot fill 5 x 3 folds
    df["grade"] = np.arange(60) % 3
    df["bad_time"] = df["time"].where(df.index != 10, -5)
    with pytest.raises(OutcomeError, match=fragment):
        nested_cv(df, features=features, **kwargs)


def test_bad_features_and_groups():
    df, features = _noise_cohort(0, n=60, p=5)
    df["text"] = "a"
    with pytest.raises(OutcomeError, match="not numeric"):
        nested_cv(df, features=features + ["text"], duration_column="time", event_column="status")
    with pytest.raises(OutcomeError, match="'patient_id'"):
        nested_cv(df, features=features, duration_column="time", event_column="status", patient_column="patient_id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(OutcomeError, match="patients cannot fill"):
            nested_cv(df.iloc[:12], features=features, duration_column="time", event_column="status", outer=5,
                      inner=3)


def _case_label_table(patients: int = 40, seed: int = 8) -> pd.DataFrame:
    """A feature table as extract_features writes it: one row per case x label, survival columns repeated."""
    rng = np.random.default_rng(seed)
    lung = load_lung()[["time", "status"]].iloc[:patients].reset_index(drop=True)
    rows = []
    for i in range(patients):
        for label, name in ((1, "anterior"), (2, "posterior")):
            rows.append({"case_id": f"p{i:03d}", "label": label, "label_name": name, "error": "",
                         "os_days": lung.loc[i, "time"], "os_event": lung.loc[i, "status"],
                         "original_shape_VoxelVolume": rng.normal(1000, 100),
                         "original_firstorder_Mean": rng.normal(50, 5)})
    return pd.DataFrame(rows)


def test_repeated_case_id_is_refused_unless_the_patient_column_groups_it():
    from radiobio.features import to_wide

    table = _case_label_table()
    features = ["original_shape_VoxelVolume", "original_firstorder_Mean"]
    quick = {"duration_column": "os_days", "event_column": "os_event", "outer": 3, "inner": 2, "repeats": 1,
             "selection": False, "param_grid": {}, "refit": False}
    with pytest.raises(OutcomeError) as info:
        nested_cv(table, features=features, **quick)
    message = str(info.value)
    assert "'case_id' repeats" in message and "patient_column='case_id'" in message
    assert "--patient-column case_id" in message and "radiobio.features.to_wide" in message
    grouped = nested_cv(table, features=features, patient_column="case_id", **quick)
    assert grouped.predictions.groupby("case_id")["fold"].nunique().max() == 1  # both labels in one fold
    assert list(grouped.predictions.columns[:2]) == ["case_id", "label_name"]
    wide = to_wide(table)
    assert len(wide) == 40 and wide["case_id"].is_unique
    one_per_patient = nested_cv(wide, features=["anterior__original_shape_VoxelVolume",
                                                "posterior__original_firstorder_Mean"], **quick)
    assert one_per_patient.predictions["case_id"].is_unique


def test_bounded_metric_intervals_stay_inside_zero_one():
    from scipy import stats

    from radiobio.outcome import metric_summary

    # six folds of a small cohort: the plain corrected t interval of the mean C-index ran above 1 (the review saw
    # -0.21 ... 1.20 on real data)
    c_index = np.array([0.30, 0.95, 1.00, 0.35, 0.90, 0.99])
    folds = pd.DataFrame({"c_index": c_index, "brier": [0.02, 0.30, 0.01, 0.25, 0.03, 0.40],
                          "calibration_slope": [0.2, 3.0, -1.0, 1.0, 2.5, 0.1]})
    k, fraction = len(c_index), 0.25
    half = stats.t.ppf(0.975, k - 1) * np.sqrt((1 / k + fraction) * c_index.var(ddof=1))
    assert c_index.mean() + half > 1  # the old interval escaped the range
    summary = metric_summary(folds, metrics=["c_index", "brier", "calibration_slope"],
                             test_fraction=fraction).set_index("metric")
    for name in ("c_index", "brier"):
        row = summary.loc[name]
        assert 0 < row["lower_95"] < row["mean"] < row["upper_95"] < 1
    slope = summary.loc["calibration_slope"]  # unbounded: the plain corrected t interval
    s = folds["calibration_slope"]
    assert slope["upper_95"] - slope["mean"] == pytest.approx(
        stats.t.ppf(0.975, k - 1) * np.sqrt((1 / k + fraction) * s.var(ddof=1)))
    # far from the bounds the logit interval agrees with the plain one
    near = pd.DataFrame({"c_index": 0.7 + np.array([-0.01, 0.0, 0.01, 0.005, -0.005])})
    row = metric_summary(near, metrics=["c_index"], test_fraction=0.25).iloc[0]
    plain = stats.t.ppf(0.975, 4) * np.sqrt((1 / 5 + 0.25) * near["c_index"].var(ddof=1))
    assert row["upper_95"] - row["lower_95"] == pytest.approx(2 * plain, rel=0.02)
    perfect = metric_summary(pd.DataFrame({"auc": [1.0, 1.0, 1.0]}), metrics=["auc"], test_fraction=0.5).iloc[0]
    assert perfect["lower_95"] == perfect["upper_95"] == 1.0


def test_signature_result_presents_itself_and_keys_predictions_by_case(capsys):
    from matplotlib.figure import Figure

    table = _case_label_table(patients=45).drop_duplicates("case_id").drop(columns=["label", "label_name"])
    result = nested_cv(table, features=["original_shape_VoxelVolume", "original_firstorder_Mean"],
                       duration_column="os_days", event_column="os_event", outer=3, inner=2, repeats=2,
                       selection=False, param_grid={}, progress=True)
    progress = capsys.readouterr().err
    assert "signature" in progress and "2/2" in progress  # one status per repeat, on stderr
    predictions = result.predictions
    assert list(predictions.columns) == ["case_id", "repeat", "fold", "prediction", "os_days", "os_event"]
    truth = table.set_index("case_id").loc[predictions["case_id"]]
    assert np.allclose(truth["os_days"], predictions["os_days"]) and (truth["os_event"].to_numpy()
                                                                       == predictions["os_event"]).all()
    summary = result.summary.set_index("metric")
    assert summary.loc["brier", "horizon"] == pytest.approx(np.median(table["os_days"]))
    assert np.isnan(summary.loc["c_index", "horizon"]) and result.horizon == summary.loc["brier", "horizon"]
    text = repr(result)
    assert "\n" not in text and "c_index" in text and len(text) < 200
    assert "<table" in result._repr_html_() and "final model features" in result._repr_html_()
    figure = result.plot()
    assert isinstance(figure, Figure)
    legend = {line.get_label() for line in figure.axes[0].get_lines()}
    assert {"predicted risk = high", "predicted risk = low"} <= legend
