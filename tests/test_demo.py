"""``radiobio demo``: the whole pipeline on the synthetic L3 cohort, re-runnable, and careful with foreign folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from radiobio.features import read_feature_table


def run_demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radiobio.cli", "demo", "--quiet", *args],
                          capture_output=True, text=True, timeout=600)


def test_demo_end_to_end_and_again(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_demo("--out", str(out), "--n-cases", "16", "-j", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "16 synthetic cases, 0 failed" in result.stdout
    for name in ("cohort.csv", "biomarkers.parquet", "biomarkers.csv", "features.parquet",
                 "features.csv", "segmentation_metrics.parquet", "report.html", "survival/cox.csv",
                 "survival/km.png", "qc/montage.png", "models/l3-muscle-demo/model_card.json", "versions.json"):
        assert (out / name).is_file(), name

    summary = json.loads((out / "summary.json").read_text())
    metrics = pd.read_parquet(out / "segmentation_metrics.parquet")
    muscle = metrics[metrics["label"] == 1]
    assert len(muscle) == 16 and muscle["dice"].mean() > 0.85 and muscle["dice"].min() > 0.7
    assert summary["muscle_dice_mean"] == muscle["dice"].mean()

    biomarkers = pd.read_parquet(out / "biomarkers.parquet")
    truth = pd.read_csv(out / "images" / "truth.csv")
    merged = biomarkers.merge(truth, on="case_id")
    relative_error = (merged["sma_cm2"] - merged["muscle_cm2"]).abs() / merged["muscle_cm2"]
    assert relative_error.median() < 0.05, relative_error.describe()
    features = read_feature_table(out / "features.parquet")
    assert (features["error"] == "").all() and (features["label_name"] == "muscle").all()
    assert "original_shape2D_PixelSurface" in features.columns
    page = (out / "report.html").read_text()
    assert "Cox" in page and "data:image/png;base64" in page

    again = run_demo("--out", str(out), "--n-cases", "16", "-j", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((out / "masks").glob("*.nii.gz"))) == 16
    assert pd.read_csv(out / "cohort.csv")["mask_tissue"].str.startswith("masks/").all()
    qc = pd.read_csv(out / "qc" / "qc.csv")
    assert (qc["slice_index"] == biomarkers.set_index("case_id").loc[qc["case_id"], "slice_index"].to_numpy()).all()


def test_demo_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "thesis.docx").write_text("precious")
    result = run_demo("--out", str(tmp_path), "--n-cases", "2")
    assert result.returncode == 2
    assert "--force" in result.stderr
    assert (tmp_path / "thesis.docx").read_text() == "precious"
