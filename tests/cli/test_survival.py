"""``radiobio survival``: the results layout with lifelines' own numbers, Kaplan-Meier only with R coding and a
cut-off, refused outputs and columns; and the help of the outcome commands."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_lung, load_rossi
from lifelines.statistics import proportional_hazard_test

from radiobio.cli import main
from radiobio.tables import read_table


@pytest.fixture(autouse=True)
def agg_backend():
    """Headless figures: the Agg backend, whatever the environment sets."""
    matplotlib.use("Agg")


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


def test_cli_help_shows_examples(capsys):
    for command in ("survival", "signature"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example:" in capsys.readouterr().out
