"""Kaplan-Meier and Cox results equal lifelines called directly on its bundled clinical datasets; bad input fails
with an OutcomeError naming the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_gbsg2, load_lung, load_rossi
from lifelines.statistics import logrank_test, proportional_hazard_test
from lifelines.utils import median_survival_times

from radiobio.errors import OutcomeError, SettingsError
from radiobio.outcome import cox, kaplan_meier

ROSSI_COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


def test_km_medians_and_logrank_equal_lifelines_on_lung():
    lung = load_lung()
    result = kaplan_meier(lung, duration_column="time", event_column="status", group_column="sex")
    for sex, frame in lung.groupby("sex"):
        kmf = KaplanMeierFitter().fit(frame["time"], frame["status"])
        ci = median_survival_times(kmf.confidence_interval_)
        row = result.summary.set_index("group").loc[str(sex)]
        assert row["median"] == kmf.median_survival_time_
        assert row["lower_95"] == pytest.approx(ci.iloc[0, 0])
        assert row["upper_95"] == pytest.approx(ci.iloc[0, 1])
        assert row["n"] == len(frame) and row["events"] == frame["status"].sum()
        curve = result.curves[result.curves["group"] == str(sex)]
        assert np.allclose(curve["survival"], kmf.survival_function_.iloc[:, 0])
    # R's survfit gives 270 days (men, sex 1) and 426 days (women, sex 2) for this dataset
    assert result.summary.set_index("group")["median"].to_dict() == {"1": 270.0, "2": 426.0}
    direct = logrank_test(*(lung.loc[lung.sex == s, "time"] for s in (1, 2)),
                          *(lung.loc[lung.sex == s, "status"] for s in (1, 2)))
    assert result.logrank["p"].iloc[0] == pytest.approx(direct.p_value)
    assert result.logrank["test_statistic"].iloc[0] == pytest.approx(10.33, abs=0.01)  # R survdiff: 10.3


def test_km_single_group_has_no_logrank_and_gbsg2_median():
    gbsg = load_gbsg2()
    result = kaplan_meier(gbsg, duration_column="time", event_column="cens")
    kmf = KaplanMeierFitter().fit(gbsg["time"], gbsg["cens"])
    assert result.logrank is None
    assert result.summary["median"].iloc[0] == kmf.median_survival_time_
    assert result.curves["at_risk"].iloc[0] == len(gbsg)


def test_km_three_groups_logrank_equals_lifelines_multivariate():
    from lifelines.statistics import multivariate_logrank_test

    gbsg = load_gbsg2()
    result = kaplan_meier(gbsg, duration_column="time", event_column="cens", group_column="tgrade")
    direct = multivariate_logrank_test(gbsg["time"], gbsg["tgrade"], gbsg["cens"])
    assert result.logrank["groups"].iloc[0] == 3
    assert result.logrank["p"].iloc[0] == pytest.approx(direct.p_value)


def test_cox_equals_lifelines_on_rossi():
    rossi = load_rossi()
    result = cox(rossi, duration_column="week", event_column="arrest", covariates=ROSSI_COVARIATES)
    direct = CoxPHFitter().fit(rossi, "week", "arrest")
    summary = direct.summary.loc[ROSSI_COVARIATES]
    assert list(result.summary["covariate"]) == ROSSI_COVARIATES
    assert np.allclose(result.summary["hr"], summary["exp(coef)"])
    assert np.allclose(result.summary["hr_lower_95"], summary["exp(coef) lower 95%"])
    assert np.allclose(result.summary["hr_upper_95"], summary["exp(coef) upper 95%"])
    assert np.allclose(result.summary["p"], summary["p"])
    assert result.concordance == pytest.approx(direct.concordance_index_)
    assert result.summary.set_index("covariate").loc["prio", "hr"] == pytest.approx(1.096, abs=1e-3)  # lifelines docs
    ph = proportional_hazard_test(direct, rossi, time_transform="rank").summary
    assert np.allclose(result.ph_test.set_index("covariate").loc[ROSSI_COVARIATES, "p"], ph.loc[ROSSI_COVARIATES, "p"])
    assert "age" in result.ph_violations and "fin" not in result.ph_violations
    assert result.fitter.params_.index.tolist() == ROSSI_COVARIATES


def test_cox_categorical_covariates_match_lifelines_formula_on_gbsg2():
    gbsg = load_gbsg2()
    result = cox(gbsg, duration_column="time", event_column="cens", covariates=["horTh", "age", "tgrade", "pnodes"])
    direct = CoxPHFitter().fit(gbsg[["time", "cens", "horTh", "age", "tgrade", "pnodes"]], "time", "cens",
                               formula="horTh + age + tgrade + pnodes")
    table = result.summary.set_index("covariate")
    assert table.loc["horTh=yes", "hr"] == pytest.approx(direct.hazard_ratios_["horTh[T.yes]"])
    assert table.loc["tgrade=III", "hr"] == pytest.approx(direct.hazard_ratios_["tgrade[T.III]"])
    assert table.loc["pnodes", "p"] == pytest.approx(direct.summary.loc["pnodes", "p"])


def test_cox_strata_equals_lifelines_on_lung():
    lung = load_lung().dropna(subset=["ph.ecog"])
    result = cox(lung, duration_column="time", event_column="status", covariates=["age", "ph.ecog"],
                 strata_columns=["sex"])
    direct = CoxPHFitter().fit(lung[["time", "status", "age", "ph.ecog", "sex"]], "time", "status", strata=["sex"])
    assert np.allclose(result.summary["hr"], direct.hazard_ratios_[["age", "ph.ecog"]])
    with pytest.raises(OutcomeError, match="strata column 'inst'"):
        # one missing institution
        cox(lung, duration_column="time", event_column="status", covariates=["age"], strata_columns=["inst"])


def _sarcopenia_cohort(seed: int, n: int = 400, hazard_ratio: float = 2.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sarcopenia = rng.binomial(1, 0.4, n)
    age = rng.normal(65, 8, n)
    rate = 0.002 * hazard_ratio ** sarcopenia * np.exp(0.03 * (age - 65))
    death = rng.exponential(1 / rate)
    censor = rng.uniform(200, 1500, n)
    return pd.DataFrame({"os_days": np.minimum(death, censor), "os_event": (death <= censor).astype(int),
                         "sarcopenia": sarcopenia, "age": age})


def test_known_effect_sarcopenia_doubles_hazard():
    result = cox(_sarcopenia_cohort(0), duration_column="os_days", event_column="os_event",
                 covariates=["sarcopenia", "age"])
    row = result.summary.set_index("covariate").loc["sarcopenia"]
    assert row["hr_lower_95"] < 2.0 < row["hr_upper_95"]
    assert 1.5 < row["hr"] < 2.7
    assert row["p"] < 1e-4
    covered = []
    for seed in range(1, 31):  # coverage of the 95% CI over replicate cohorts (expected 0.95)
        r = cox(_sarcopenia_cohort(seed, n=200), duration_column="os_days", event_column="os_event",
                covariates=["sarcopenia", "age"], ph_test=False)
        lo, hi = r.summary.set_index("covariate").loc["sarcopenia", ["hr_lower_95", "hr_upper_95"]]
        covered.append(lo < 2.0 < hi)
    assert np.mean(covered) >= 0.8


@pytest.mark.parametrize("mutate, column, fragment", [
    (lambda d: d.assign(week=d.week.where(d.index != 3)), "week", "missing"),
    (lambda d: d.assign(week=d.week.where(d.index != 3, -1)), "week", "negative"),
    (lambda d: d.assign(arrest=d.arrest.where(d.index != 5, 2)), "arrest", "0/1"),
    (lambda d: d.assign(arrest="yes"), "arrest", "0/1"),
    (lambda d: d.assign(arrest=0), "arrest", "no events"),
    (lambda d: d.assign(fin=1), "fin", "constant"),
    (lambda d: d.assign(age=d.age.where(d.index != 7)), "age", "missing"),
])
def test_cox_bad_input_names_column(mutate, column, fragment):
    with pytest.raises(OutcomeError) as info:
        cox(mutate(load_rossi()), duration_column="week", event_column="arrest", covariates=["fin", "age"])
    assert repr(column) in str(info.value) and fragment in str(info.value)


def test_km_bad_events_and_missing_column():
    rossi = load_rossi()
    with pytest.raises(OutcomeError, match="'arrest'.*0/1"):
        kaplan_meier(rossi.assign(arrest=rossi.arrest * 2), duration_column="week", event_column="arrest")
    with pytest.raises(OutcomeError, match="'weeks'"):
        kaplan_meier(rossi, duration_column="weeks", event_column="arrest")


def test_cox_perfect_separation_names_covariate_and_penalizer_fixes_it():
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    frame = pd.DataFrame({"t": np.argsort(np.argsort(-x)) + 1.0, "e": (rng.random(60) > 0.3).astype(int),
                          "marker": x, "noise": rng.normal(size=60)})
    with pytest.raises(OutcomeError, match="'marker'.*penalizer"):
        cox(frame, duration_column="t", event_column="e", covariates=["marker", "noise"])
    penalised = cox(frame, duration_column="t", event_column="e", covariates=["marker", "noise"], penalizer=0.1)
    assert np.isfinite(penalised.summary["hr"]).all() and penalised.summary["hr"].iloc[0] > 1


def test_cox_more_covariates_than_patients_needs_penalizer():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 25)), columns=[f"f{i}" for i in range(25)])
    frame["t"], frame["e"] = rng.exponential(100, 20), np.r_[np.ones(12), np.zeros(8)].astype(int)
    features = [f"f{i}" for i in range(25)]
    with pytest.raises(OutcomeError, match="25 covariates for 20 rows.*penalizer"):
        cox(frame, duration_column="t", event_column="e", covariates=features)
    assert len(cox(frame, duration_column="t", event_column="e", covariates=features, penalizer=0.5,
               ph_test=False).summary) == 25


def test_km_numeric_group_with_many_values_splits_at_the_median_or_a_cutoff():
    gbsg = load_gbsg2()
    median = gbsg["pnodes"].median()  # 3 nodes
    result = kaplan_meier(gbsg, duration_column="time", event_column="cens", group_column="pnodes")
    assert list(result.summary["group"]) == [f"<= {median:g}", f"> {median:g}"] and result.cutoff == median
    assert result.summary["n"].tolist() == [int((gbsg.pnodes <= median).sum()), int((gbsg.pnodes > median).sum())]
    low, high = gbsg[gbsg.pnodes <= median], gbsg[gbsg.pnodes > median]
    direct = logrank_test(low["time"], high["time"], low["cens"], high["cens"])
    assert result.logrank_p == pytest.approx(direct.p_value)
    assert result.labels == {"<= 3": "pnodes <= 3", "> 3": "pnodes > 3"}
    at_five = kaplan_meier(gbsg, duration_column="time", event_column="cens", group_column="pnodes", cutoff=5)
    assert at_five.summary["n"].tolist() == [int((gbsg.pnodes <= 5).sum()), int((gbsg.pnodes > 5).sum())]
    with pytest.raises(SettingsError, match="numeric"):
        kaplan_meier(gbsg, duration_column="time", event_column="cens", group_column="horTh", cutoff=1)
    with pytest.raises(OutcomeError, match="empty"):
        kaplan_meier(gbsg, duration_column="time", event_column="cens", group_column="pnodes", cutoff=1000)


def test_km_numeric_groups_sort_as_numbers_and_legend_names_the_variable():
    rossi = load_rossi()
    rossi["dose"] = np.array([2, 10, 5])[np.arange(len(rossi)) % 3]
    result = kaplan_meier(rossi, duration_column="week", event_column="arrest", group_column="dose")
    assert list(result.summary["group"]) == ["2", "5", "10"]  # not "10", "2", "5"
    assert [f._label for f in result.fitters.values()] == ["dose = 2", "dose = 5", "dose = 10"]


def test_event_value_reads_r_style_one_two_coding():
    lung = load_lung()
    coded = lung.assign(status=lung["status"] + 1)  # R's survival::lung: 1 = censored, 2 = dead
    plain = kaplan_meier(lung, duration_column="time", event_column="status", group_column="sex")
    r_style = kaplan_meier(coded, duration_column="time", event_column="status", group_column="sex", event_value=2)
    pd.testing.assert_frame_equal(plain.summary, r_style.summary)
    text_value = cox(coded, duration_column="time", event_column="status", covariates=["age"], event_value="2")
    assert text_value.summary["hr"].iloc[0] == pytest.approx(
        CoxPHFitter().fit(lung[["time", "status", "age"]], "time", "status").hazard_ratios_["age"])
    with pytest.raises(OutcomeError, match="event_value"):
        kaplan_meier(coded, duration_column="time", event_column="status")
    with pytest.raises(OutcomeError, match="no value 3"):
        kaplan_meier(coded, duration_column="time", event_column="status", event_value=3)


def test_results_present_themselves_like_lifelines(capsys):
    from matplotlib.figure import Figure

    gbsg = load_gbsg2()
    km = kaplan_meier(gbsg, duration_column="time", event_column="cens", group_column="horTh")
    fit = cox(gbsg, duration_column="time", event_column="cens", covariates=["horTh", "age", "pnodes"])
    for result in (km, fit):
        text = repr(result)
        assert "\n" not in text and len(text) < 160  # short: no table dumped
        assert isinstance(result.plot(), Figure)
        assert not any(isinstance(v, pd.DataFrame) for v in result.summary.attrs.values())
    assert "686 patients" in repr(km) and "p=" in repr(km)
    html = km._repr_html_()
    median_no = km.summary.set_index("group").loc["no", "median"]
    assert "log-rank" in html and f"{median_no:.3g}" in html and "<table" in html
    assert list(fit.summary.columns) == ["covariate", "coef", "se", "hr", "hr_lower_95", "hr_upper_95", "z", "p"]
    assert f"{fit.concordance:.3f}" in repr(fit) and "C-index" in fit._repr_html_()
    assert fit.summary.set_index("covariate").loc["horTh=yes", "hr"] == pytest.approx(
        fit.fitter.hazard_ratios_["horTh=yes"])  # the lifelines fitter stays reachable
    km.print_summary()
    fit.print_summary()
    printed = capsys.readouterr().out
    assert "log-rank test" in printed and "horTh=yes" in printed and "C-index" in printed


def test_outcome_functions_take_keywords_after_the_table():
    rossi = load_rossi()
    with pytest.raises(TypeError):
        kaplan_meier(rossi, "week", "arrest")  # positional columns are refused
    with pytest.raises(SettingsError, match="list of column names"):
        cox(rossi, duration_column="week", event_column="arrest", covariates="age")
