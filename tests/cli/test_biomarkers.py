"""``radiobio biomarkers KIND``: tables written as Parquet or CSV, summary line, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from radiobio.cli import main
from radiobio.tables import read_table


def test_sarcopenia_with_a_failing_case_exits_one(l3_cohort: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cohort, truth = l3_cohort
    broken = cohort.iloc[:1].assign(case_id="broken", mask_muscle=str(tmp_path / "missing.nii.gz"))
    pd.concat([cohort, broken]).to_csv(tmp_path / "cohort.csv", index=False)
    out = tmp_path / "out" / "sarcopenia.parquet"
    code = main(["biomarkers", "sarcopenia", str(tmp_path / "cohort.csv"), "-o", str(out), "--cutoffs",
                 "derstine2018", "--muscle-hu=none"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{len(cohort)} cases ok, 1 failed" in captured.out
    assert "broken: CohortError: mask_muscle file not found" in captured.err
    table = read_table(out)
    assert table["sma_cm2"].iloc[: len(cohort)].tolist() == pytest.approx(truth["muscle_cm2"].tolist())
    assert table["smi_cutoff_cm2_m2"].notna().iloc[: len(cohort)].all()
    assert table.attrs["provenance"]["settings"]["scheme"] == "derstine2018"


def test_volumetry_and_cardiac_csv_and_usage_errors(l3_cohort: tuple[pd.DataFrame, pd.DataFrame],
                                                    tmp_path: Path) -> None:
    cohort, truth = l3_cohort
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    out = tmp_path / "volumes.csv"
    assert main(["biomarkers", "volumetry", str(tmp_path / "cohort.csv"), "-o", str(out), "--labels",
                 "muscle=1,sat=2", "--no-intensity", "--no-carry"]) == 0
    table = pd.read_csv(out)
    assert table["label_name"].tolist() == ["muscle", "sat"] * len(cohort) and "sex" not in table.columns
    assert (tmp_path / "volumes.csv.provenance.json").is_file()
    cardiac = pd.DataFrame({"case_id": ["h"], "image": [cohort.at[0, "image"]], "mask_ed": [cohort.at[0, "mask"]],
                            "mask_es": [cohort.at[0, "mask_muscle"]]})
    cardiac.to_csv(tmp_path / "heart.csv", index=False)
    assert main(["biomarkers", "cardiac", str(tmp_path / "heart.csv"), "-o", str(tmp_path / "h.csv"),
                 "--labels", "lv=1"]) == 0
    assert pd.read_csv(tmp_path / "h.csv")["ef_pct"].iloc[0] == pytest.approx(0.0)  # same LV in both "phases"
    assert main(["biomarkers", "volumetry", str(tmp_path / "cohort.csv"), "-o", str(tmp_path / "x.xlsx")]) == 2
    assert main(["biomarkers", "sarcopenia", str(tmp_path / "cohort.csv"), "-o", str(tmp_path / "x.csv"),
                 "--muscle-column", "mask_psoas"]) == 2
    assert main(["biomarkers", "sarcopenia", str(tmp_path / "cohort.csv"), "-o", str(tmp_path / "x.csv"),
                 "--cutoffs", "nope"]) == 2


def test_console_entry_point_lists_every_kind() -> None:
    result = subprocess.run([sys.executable, "-m", "radiobio.cli", "biomarkers", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    for kind in ("volumetry", "sarcopenia", "nodules", "nodule-growth", "lung-involvement", "cardiac",
                 "hippocampus"):
        assert kind in result.stdout
    assert "radiobio biomarkers sarcopenia" in result.stdout  # an example
    missing_kind = subprocess.run([sys.executable, "-m", "radiobio.cli", "biomarkers"], capture_output=True,
                                  text=True, timeout=120)
    assert missing_kind.returncode == 2
