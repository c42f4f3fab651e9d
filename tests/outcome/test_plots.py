"""Figures (Agg backend) and the ``radiobio survival`` / ``radiobio signature`` commands."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_gbsg2, load_lung, load_rossi
from lifelines.statistics import proportional_hazard_test
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from radiobio.cli import main
from radiobio.errors import OutcomeError
from radiobio.outcome import calibration_plot, cox, forest_plot, kaplan_meier, km_plot, roc_plot
from radiobio.tables import read_table


@pytest.fixture(autouse=True)
def agg_backend():
    """Headless figures: the Agg backend, whatever the environment sets."""
    matplotlib.use("Agg")


def test_km_plot_has_one_curve_per_group_and_numbers_at_risk(tmp_path):
    rossi = load_rossi()
    km = kaplan_meier(rossi, duration_column="week", event_column="arrest", group_column="fin")
    figure = km_plot(km, path=tmp_path / "km.png", time_label="weeks")
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert {line.get_label() for line in ax.get_lines()} >= {"fin = 0", "fin = 1"}  # the variable is named
    assert ax.get_xlabel() == "weeks"
    at_risk_axes = [a for a in figure.axes if a is not ax]
    labels = " ".join(t.get_text() for a in at_risk_axes for t in a.get_xticklabels())
    assert str((rossi.fin == 0).sum()) in labels  # 216 at risk at time 0 in each arm
    assert any("log-rank p" in t.get_text() for t in ax.texts)
    assert (tmp_path / "km.png").stat().st_size > 1000
    assert km.plot().axes[0].get_xlabel() == "week"  # default: the duration column


def test_forest_plot_places_hazard_ratios_on_a_log_axis_with_plain_ticks_that_do_not_overlap():
    result = cox(load_rossi(), duration_column="week", event_column="arrest", covariates=["fin", "age", "prio"],
                 ph_test=False)
    figure = forest_plot(result)
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["prio", "age", "fin"]
    x = ax.lines[0].get_xdata()
    assert np.allclose(x, result.summary["hr"].iloc[::-1])
    with pytest.raises(OutcomeError, match="hr_lower_95"):
        forest_plot(pd.DataFrame({"covariate": ["a"]}))
    gbsg = cox(load_gbsg2(), duration_column="time", event_column="cens", covariates=["age", "horTh", "pnodes"])
    for fit in (result, gbsg):
        figure = fit.plot()
        ax = figure.axes[0]
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        renderer = canvas.get_renderer()
        shown = [t for t in ax.xaxis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
        texts = [t.get_text() for t in shown]
        assert len(texts) >= 2 and "1" in texts  # the line of no effect is labelled
        assert all(float(text) > 0 for text in texts)  # plain numbers, no 10^x mathtext
        boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False))  # no two labels overlap


def test_roc_and_calibration_plots(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 400)
    y = rng.binomial(1, p)
    roc = roc_plot(y, scores=p, path=tmp_path / "roc.png")
    fpr, tpr = roc.axes[0].lines[0].get_data()
    assert fpr[0] == 0 and tpr[-1] == 1 and "AUC" in roc.axes[0].get_legend().get_texts()[0].get_text()
    calibration = calibration_plot(y, probability=p, bins=5)
    predicted, observed = calibration.axes[0].lines[1].get_data()
    assert len(predicted) == 5 and np.allclose(predicted, observed, atol=0.12)  # calibrated by construction
    assert (tmp_path / "roc.png").exists()


SURVIVAL_FILES = {"km.png", "km.csv", "km_medians.csv", "logrank.csv", "cox.csv", "cox_fit.json", "forest.png",
                  "ph_test.csv"}


def test_cli_survival_writes_the_results_layout_with_lifelines_numbers(tmp_path, capsys):
    rossi = load_rossi()
    table = tmp_path / "rossi.csv"
    rossi.to_csv(table, index=False)
    out = tmp_path / "results" / "survival"
    code = main(["survival", str(table), "--duration", "week", "--event", "arrest", "--covariates", "fin", "age",
                 "prio", "--km", "fin", "--time-label", "weeks", "-o", str(out)])
    assert code == 0
    assert SURVIVAL_FILES <= {p.name for p in out.iterdir()}
    written = read_table(out / "cox.csv")
    direct = CoxPHFitter().fit(rossi[["week", "arrest", "fin", "age", "prio"]], "week", "arrest")
    assert np.allclose(written["hr"], direct.hazard_ratios_[["fin", "age", "prio"]])
    assert written.attrs["provenance"]["stage"] == "survival"
    assert written.attrs["provenance"]["covariates"] == ["fin", "age", "prio"]
    for name in ("km.csv", "km_medians.csv", "logrank.csv", "ph_test.csv"):
        assert read_table(out / name).attrs["provenance"]["stage"] == "survival"
    fit = json.loads((out / "cox_fit.json").read_text())
    assert {"n", "events", "concordance", "ph_violations"} <= set(fit) and fit["n"] == len(rossi)
    assert fit["concordance"] == pytest.approx(direct.concordance_index_)
    ph = read_table(out / "ph_test.csv").set_index("covariate")
    expected = proportional_hazard_test(direct, rossi[["week", "arrest", "fin", "age", "prio"]],
                                        time_transform="rank").summary
    assert np.allclose(ph.loc[["fin", "age", "prio"], "p"], expected.loc[["fin", "age", "prio"], "p"])
    assert "C-index" in capsys.readouterr().out


def test_cli_survival_km_only_with_r_coding_and_a_cutoff(tmp_path):
    lung = load_lung()
    table = tmp_path / "lung.csv"
    lung.assign(status=lung["status"] + 1).to_csv(table, index=False)  # R coding: 2 = dead
    out = tmp_path / "survival"
    code = main(["survival", str(table), "--duration", "time", "--event", "status", "--event-value", "2",
                 "--km", "age", "--km-cutoff", "65", "-o", str(out)])
    assert code == 0
    assert {p.name for p in out.iterdir() if not p.name.endswith(".json")} == {
        "km.png", "km.csv", "km_medians.csv", "logrank.csv"}
    medians = read_table(out / "km_medians.csv").set_index("group")
    young = KaplanMeierFitter().fit(lung.loc[lung.age <= 65, "time"], lung.loc[lung.age <= 65, "status"])
    assert medians.loc["<= 65", "median"] == young.median_survival_time_
    assert medians.loc["> 65", "n"] == int((lung.age > 65).sum())


def test_cli_survival_refuses_a_file_as_output_and_bad_columns(tmp_path, capsys):
    table = tmp_path / "rossi.csv"
    load_rossi().to_csv(table, index=False)
    code = main(["survival", str(table), "--duration", "week", "--event", "arrest", "--covariates", "fin",
                 "-o", str(tmp_path / "cox.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("radiobio survival: SettingsError: ") and "survival" in err.split("e.g.")[1]
    assert not (tmp_path / "cox.csv").exists()
    code = main(["survival", str(table), "--duration", "weeks", "--event", "arrest", "--covariates", "fin",
                 "-o", str(tmp_path / "survival")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("radiobio survival: OutcomeError: ") and "'weeks'" in err


def _feature_table(n: int = 90, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"original_f{i}" for i in range(8)])
    frame["case_id"] = [f"c{i:03d}" for i in range(n)]
    frame["label"] = 1
    frame["error"] = ""
    return frame


def test_cli_signature_binary_writes_tables_and_figures(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n = 90
    frame = _feature_table(n)
    frame.loc[0, "error"] = "MaskError: empty mask"
    frame["response"] = (frame["original_f0"] + rng.normal(0, 0.7, n) > 0).astype(int)
    table = tmp_path / "features.csv"
    frame.to_csv(table, index=False)
    icc_table = tmp_path / "icc.csv"
    pd.DataFrame({"feature": [f"original_f{i}" for i in range(8)],
                  "icc_1_1": [0.95, 0.5, 0.93, 0.92, 0.4, 0.3, 0.2, 0.1]}).to_csv(icc_table, index=False)
    out = tmp_path / "signature"
    code = main(["signature", str(table), "--target", "response", "--features", "original_*", "--outer", "3",
                 "--repeats", "1", "--inner", "2", "--robust", str(icc_table), "--seed", "3", "-o", str(out)])
    assert code == 0
    used = set(pd.read_csv(out / "selected.csv").query("count > 0")["feature"])
    assert used and used <= {"original_f0", "original_f2", "original_f3"}  # only features with ICC >= 0.9
    summary = read_table(out / "summary.csv").set_index("metric")
    auc = summary.loc["auc"]
    assert auc["mean"] > 0.75 and 0 <= auc["lower_95"] <= auc["upper_95"] <= 1
    assert summary.attrs["provenance"]["stage"] == "signature" and summary.attrs["provenance"]["seed"] == 3
    assert pd.read_csv(out / "selected.csv")["feature"].iloc[0] == "original_f0"
    predictions = read_table(out / "predictions.csv")
    assert list(predictions.columns) == ["case_id", "repeat", "fold", "prediction", "response"]
    assert len(predictions) == n - 1 and "c000" not in set(predictions["case_id"])  # the failed row is left out
    truth = frame.set_index("case_id").loc[predictions["case_id"], "response"].to_numpy()
    assert (truth == predictions["response"].to_numpy()).all()
    assert "original_f0" in set(pd.read_csv(out / "final_model.csv")["feature"])
    assert (out / "roc.png").exists() and (out / "calibration.png").exists()
    err = capsys.readouterr().err
    assert "1 row(s) with a filled 'error'" in err
    assert "\nradiobio signature: repeat 1/1: auc " in err  # one status line per repeat


def test_cli_signature_survival_refuses_repeated_case_id_then_groups_it(tmp_path, capsys):
    rng = np.random.default_rng(2)
    frame = _feature_table(60)
    hazard = np.exp(frame["original_f1"])
    death, censor = rng.exponential(1 / hazard) * 300, rng.uniform(50, 900, 60)
    frame["os_days"], frame["os_event"] = np.minimum(death, censor), (death <= censor).astype(int)
    two_labels = pd.concat([frame, frame.assign(label=2)], ignore_index=True)
    table = tmp_path / "features.parquet"
    two_labels.to_parquet(table)
    out = tmp_path / "signature"
    args = ["signature", str(table), "--duration", "os_days", "--event", "os_event", "--features", "original_f1",
            "original_f2", "original_f3", "--outer", "3", "--repeats", "2", "--inner", "2", "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("radiobio signature: OutcomeError: ") and "--patient-column case_id" in last
    assert main([*args, "--patient-column", "case_id", "-q"]) == 0
    assert capsys.readouterr().err == ""  # -q: no status lines
    predictions = read_table(out / "predictions.csv")
    assert {"case_id", "os_days", "os_event", "prediction"} <= set(predictions.columns)
    assert predictions.groupby(["repeat", "case_id"])["fold"].nunique().max() == 1
    summary = read_table(out / "summary.csv").set_index("metric")
    assert summary.loc["brier", "horizon"] == pytest.approx(np.median(two_labels["os_days"]))
    assert summary.loc["c_index", "mean"] > 0.6
    assert (out / "risk_groups.png").stat().st_size > 1000


def test_cli_help_shows_examples(capsys):
    for command in ("survival", "signature"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example:" in capsys.readouterr().out
