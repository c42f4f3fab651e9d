"""Every CLI stage chained the way a shell script chains them: from a fresh folder, relative paths only, each stage
reading what the previous one wrote, and the final report showing every stage's results."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from radiobio.demo import demo_cohort
from radiobio.tables import read_table

BIN = Path(sys.executable).parent
N_CASES = 40
SCRIPT = """set -euo pipefail
radiobio segment cohort.csv -m l3-muscle-demo -o results --mask-column mask_tissue -q
radiobio evaluate results/cohort.csv --pred mask_tissue --ref mask_reference -o results/segmentation_metrics.csv -q
radiobio biomarkers sarcopenia results/cohort.csv --muscle-column mask_tissue --labels muscle=1,sat=2,vat=3,imat=4 \\
    -o results/biomarkers.csv -q
radiobio extract results/cohort.csv -p muscle.yaml --mask-column mask_tissue --labels muscle=1 \\
    -o results/features.parquet -q
radiobio survival results/biomarkers.csv --duration os_days --event os_event --covariates smi_cm2_m2 age \\
    --km sex -o results/survival
radiobio signature results/features.parquet --duration os_days --event os_event --features 'original_*' \\
    --outer 3 --repeats 1 --inner 2 -o results/signature
radiobio report results --qc
"""
MUSCLE_PARAMS = {"imageType": {"Original": {}},
                 "featureClass": {"shape2D": None, "firstorder": None, "glcm": ["JointEntropy", "Contrast"]},
                 "setting": {"binWidth": 10, "force2D": True, "force2Ddimension": 0}}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A fresh folder holding a synthetic L3 cohort (relative paths) and the results of the chained script."""
    work = tmp_path_factory.mktemp("fresh")
    cohort = demo_cohort(work / "images", N_CASES, seed=7)
    for column in ("image", "mask_reference"):
        cohort[column] = [os.path.relpath(p, work) for p in cohort[column]]
    cohort.to_csv(work / "cohort.csv", index=False)
    (work / "muscle.yaml").write_text(yaml.safe_dump(MUSCLE_PARAMS))
    (work / "pipeline.sh").write_text(SCRIPT)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "pipeline.sh"], cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    return work, result


def test_every_stage_runs_and_the_console_is_clean(pipeline: tuple[Path, subprocess.CompletedProcess]) -> None:
    work, result = pipeline
    assert result.returncode == 0, result.stdout + result.stderr
    console = result.stdout + result.stderr
    assert "segment: 40 cases segmented, 0 failed" in console
    assert "intended use: " in console and "synthetic" in console
    for noise in ("Traceback", "cuInit", "E0000", "oneDNN", "absl", "TqdmWarning", "WARNING: In "):
        assert noise not in console, f"{noise!r} printed:\n{console}"


def test_each_stage_read_what_the_previous_wrote(pipeline: tuple[Path, subprocess.CompletedProcess]) -> None:
    work, _ = pipeline
    results = work / "results"
    segmented = pd.read_csv(results / "cohort.csv")
    assert segmented["mask_tissue"].str.startswith("masks/").all()  # relative to the manifest's folder
    # images outside the results folder are written absolute (the one rule), and still found
    assert segmented["image"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    scores = read_table(results / "segmentation_metrics.csv")
    assert set(scores["label_name"]) == {"muscle", "sat", "vat", "imat"}
    assert scores.loc[scores["label_name"] == "muscle", "dice"].mean() > 0.8
    body = read_table(results / "biomarkers.csv")
    assert len(body) == N_CASES and (body["error"] == "").all() and body["level"].eq("L3").all()
    assert body["sat_cm2"].notna().all()  # tissues from the one multi-label mask
    features = read_table(results / "features.parquet")
    assert len(features) == N_CASES and (features["label_name"] == "muscle").all()
    assert {"os_days", "os_event", "age"} <= set(features.columns)  # clinical columns carried through
    for name in ("km.png", "cox.csv", "forest.png", "km_medians.csv", "logrank.csv"):
        assert (results / "survival" / name).is_file(), name
    assert (results / "signature" / "summary.csv").is_file()
    assert len(list((results / "qc").glob("*.png"))) >= N_CASES


def test_the_report_shows_every_stage(pipeline: tuple[Path, subprocess.CompletedProcess]) -> None:
    work, _ = pipeline
    page = (work / "results" / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    assert "Failed cases" not in text or "0 failed" in text
    assert re.search(rf"\b{N_CASES} cases\b", text)
    for section in ("Segmentation", "Biomarkers", "Features", "Survival", "Signature", "Models"):
        assert section in text, f"section {section!r} missing"
    assert "l3-muscle-demo" in text and "synthetic" in text  # the model card and its intended use
    assert "muscle" in text and "dice" in text.lower()
    assert "C-index" in text or "concordance" in text.lower()
    assert page.count("data:image/png;base64") >= 4  # QC, KM, forest and signature plots embedded
