"""Figures (Agg backend) and the ``radiobio survival`` / ``radiobio signature`` commands."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi

from radiobio.cli import main
from radiobio.errors import OutcomeError
from radiobio.outcome import calibration_plot, cox, forest_plot, kaplan_meier, km_plot, roc_plot


@pytest.fixture(autouse=True)
def agg_backend():
    """Headless figures: the Agg backend, whatever the environment sets."""
    matplotlib.use("Agg")


def test_km_plot_has_one_curve_per_group_and_numbers_at_risk(tmp_path):
    rossi = load_rossi()
    figure = km_plot(kaplan_meier(rossi, "week", "arrest", group="fin"), path=tmp_path / "km.png")
    ax = figure.axes[0]
    assert {line.get_label() for line in ax.get_lines()} >= {"0", "1"}
    at_risk_axes = [a for a in figure.axes if a is not ax]
    labels = " ".join(t.get_text() for a in at_risk_axes for t in a.get_xticklabels())
    assert str((rossi.fin == 0).sum()) in labels  # 216 at risk at time 0 in each arm
    assert any("log-rank p" in t.get_text() for t in ax.texts)
    assert (tmp_path / "km.png").stat().st_size > 1000


def test_forest_plot_places_hazard_ratios_on_a_log_axis():
    result = cox(load_rossi(), "week", "arrest", ["fin", "age", "prio"], ph_test=False)
    figure = forest_plot(result)
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["prio", "age", "fin"]
    x = ax.lines[0].get_xdata()
    assert np.allclose(x, result.table["hr"].iloc[::-1])
    with pytest.raises(OutcomeError, match="hr_lower_95"):
        forest_plot(pd.DataFrame({"covariate": ["a"]}))


def test_roc_and_calibration_plots(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 400)
    y = rng.binomial(1, p)
    roc = roc_plot(y, p, path=tmp_path / "roc.png")
    fpr, tpr = roc.axes[0].lines[0].get_data()
    assert fpr[0] == 0 and tpr[-1] == 1 and "AUC" in roc.axes[0].get_legend().get_texts()[0].get_text()
    calibration = calibration_plot(y, p, bins=5)
    predicted, observed = calibration.axes[0].lines[1].get_data()
    assert len(predicted) == 5 and np.allclose(predicted, observed, atol=0.12)  # calibrated by construction
    assert (tmp_path / "roc.png").exists()


def test_cli_survival_writes_lifelines_hazard_ratios(tmp_path, capsys):
    rossi = load_rossi()
    table = tmp_path / "rossi.csv"
    rossi.to_csv(table, index=False)
    out = tmp_path / "results" / "cox.csv"
    code = main(["survival", str(table), "--duration", "week", "--event", "arrest", "--covariates", "fin", "age",
                 "prio", "--km", "fin", "--plots", "-o", str(out)])
    assert code == 0
    written = pd.read_csv(out)
    direct = CoxPHFitter().fit(rossi[["week", "arrest", "fin", "age", "prio"]], "week", "arrest")
    assert np.allclose(written["hr"], direct.hazard_ratios_[["fin", "age", "prio"]])
    assert (tmp_path / "results" / "cox_ph_test.csv").exists() and (tmp_path / "results" / "cox_km.png").exists()
    assert "C-index" in capsys.readouterr().out


def test_cli_survival_bad_column_exits_2(tmp_path, capsys):
    table = tmp_path / "rossi.csv"
    load_rossi().to_csv(table, index=False)
    code = main(["survival", str(table), "--duration", "weeks", "--event", "arrest", "--covariates", "fin",
                 "-o", str(tmp_path / "cox.csv")])
    assert code == 2 and "'weeks'" in capsys.readouterr().err


def test_cli_signature_binary_writes_tables_and_figures(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n = 90
    frame = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"original_f{i}" for i in range(8)])
    frame["case_id"] = [f"c{i}" for i in range(n)]
    frame["label"] = 1
    frame["error"] = ""
    frame.loc[0, "error"] = "MaskError: empty mask"
    frame["response"] = (frame["original_f0"] + rng.normal(0, 0.7, n) > 0).astype(int)
    table = tmp_path / "features.csv"
    frame.to_csv(table, index=False)
    icc_table = tmp_path / "icc.csv"
    pd.DataFrame({"feature": [f"original_f{i}" for i in range(8)],
                  "icc_1_1": [0.95, 0.5, 0.93, 0.92, 0.4, 0.3, 0.2, 0.1]}).to_csv(icc_table, index=False)
    out = tmp_path / "signature"
    code = main(["signature", str(table), "--target", "response", "--features", "original_*", "--outer", "3",
                 "--repeats", "1", "--inner", "2", "--robust", str(icc_table), "-o", str(out)])
    assert code == 0
    used = set(pd.read_csv(out / "selected.csv").query("count > 0")["feature"])
    assert used and used <= {"original_f0", "original_f2", "original_f3"}  # only features with ICC >= 0.9
    summary = pd.read_csv(out / "summary.csv").set_index("metric")
    assert summary.loc["auc", "mean"] > 0.75
    assert pd.read_csv(out / "selected.csv")["feature"].iloc[0] == "original_f0"
    assert len(pd.read_csv(out / "predictions.csv")) == n - 1  # the failed row is left out
    assert "original_f0" in set(pd.read_csv(out / "final_model.csv")["feature"])
    assert (out / "roc.png").exists() and (out / "calibration.png").exists()
    assert "1 row(s) with a filled 'error'" in capsys.readouterr().err


def test_cli_help_shows_examples(capsys):
    for command in ("survival", "signature"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example:" in capsys.readouterr().out
