"""``radiobio signature``: a binary and a survival signature written as tables and figures, failed rows left out,
a repeated case_id refused until a patient column groups it."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from radiobio.cli import main
from radiobio.tables import read_table


@pytest.fixture(autouse=True)
def agg_backend():
    """Headless figures: the Agg backend, whatever the environment sets."""
    matplotlib.use("Agg")


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
