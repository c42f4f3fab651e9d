"""A realistic results folder, built from real radiobio calls: L3 phantoms with masks, sarcopenia, radiomics of the
muscle, QC overlays, Kaplan-Meier and Cox on survival times simulated with a known sarcopenia effect, and one case
whose mask does not fit its image (it fails in every stage)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

#: Radiomics settings light enough for a test: first order, GLCM and 2D shape of the muscle on the L3 slice.
L3_PARAMS = {"featureClass": {"firstorder": None, "glcm": None, "shape2D": None},
             "setting": {"binWidth": 25, "force2D": True, "force2Ddimension": 0}}
L3_NAMES = {1: "muscle", 2: "SAT", 3: "VAT", 4: "IMAT"}
BROKEN = "l3_broken"


def model_card() -> dict:
    """A model card as radiobio train writes it (subset of the fields)."""
    return {"format_version": 1, "name": "l3-muscle-test", "labels": {"1": "muscle", "2": "sat", "3": "vat",
                                                                       "4": "imat"},
            "target_spacing": [0.8, 0.8, 5.0], "orientation": "LPS", "backend": "tensorflow",
            "architecture": {"architecture": "unet2d", "depth": 4, "base_filters": 16},
            "training_data": {"description": "synthetic L3 phantoms", "n_train": 40, "n_validation": 10},
            "validation_metrics": {"mean_dice": 0.93, "n_cases": 10}, "created": "2026-01-01T00:00:00+00:00",
            "intended_use": "Research QC of synthetic L3 slices only; not for clinical use",
            "versions": {"radiobio": "0.1.0", "keras": "3.15.1"}}


def build_results(root: Path, n: int = 20, size: int = 192, survival: bool = True, failing: bool = True) -> Path:
    """Write a results folder in the layout of :mod:`radiobio.report.results` under ``root/results``.

    Tables are found by provenance, so two have unconventional names: the tissue volumes (``tissue_volumes.parquet``,
    one row per case x tissue) and the segmentation scores (``scores.csv``: the muscle-only mask scored against the
    full tissue map, so muscle has Dice 1 and SAT Dice 0)."""
    from radiobio.biomarkers import sarcopenia, volumetry
    from radiobio.features.extraction import extract_features
    from radiobio.outcome import cox, kaplan_meier
    from radiobio.report import L3_COLOURS, write_qc, write_survival, write_versions
    from radiobio.segmentation import evaluate
    from radiobio.synthetic.l3 import write_l3_cohort
    from radiobio.synthetic.survival import simulate_survival
    from radiobio.tables import write_table

    results = root / "results"
    cohort = write_l3_cohort(root / "cohort", n=n, size=size, seed=7)
    if failing:
        other = write_l3_cohort(root / "other", n=1, size=size + 32, seed=99, prefix="other_")
        broken = cohort.iloc[[0]].copy()
        broken["case_id"] = BROKEN
        for column in ("mask", "mask_muscle", "mask_sat", "mask_vat", "mask_imat"):
            broken[column] = other[column].iloc[0]  # masks drawn on another grid: GeometryError in every stage
        cohort = pd.concat([cohort, broken], ignore_index=True)
    body = sarcopenia(cohort, muscle_column="mask_muscle", carry=False)
    if survival:
        ok = body["error"] == ""
        times = simulate_survival(body.loc[ok, "sarcopenic"].astype(bool).to_numpy(), hazard_ratio=3.0, seed=1)
        times.index = body.loc[ok, "case_id"].to_numpy()
        cohort = cohort.join(times, on="case_id")
    results.mkdir(parents=True)
    write_table(cohort, results / "cohort.csv")
    write_table(body, results / "biomarkers.parquet")
    volumes = volumetry(cohort, mask_column="mask", labels={"muscle": 1, "SAT": 2}, carry=False)
    write_table(volumes, results / "tissue_volumes.parquet")
    scores = evaluate(cohort, pred_column="mask_muscle", ref_column="mask", labels={"muscle": 1, "SAT": 2},
                      carry=False)
    write_table(scores, results / "scores.csv")
    features = extract_features(cohort, params=L3_PARAMS, labels={"muscle": 1}, jobs=1, progress=False)
    write_table(features, results / "features.parquet", features.attrs["provenance"])
    write_qc(cohort, results / "qc", mask_column="mask", colours=L3_COLOURS, label_names=L3_NAMES)
    if survival:
        table = cohort.merge(body[["case_id", "sarcopenic", "smi_cm2_m2"]], on="case_id").dropna(
            subset=["os_days", "sarcopenic"])
        table["sarcopenia"] = table["sarcopenic"].map({True: "sarcopenic", False: "not sarcopenic"})
        write_survival(results, kaplan_meier(table, duration_column="os_days", event_column="os_event",
                                             group_column="sarcopenia"),
                       cox(table, duration_column="os_days", event_column="os_event", covariates=["smi_cm2_m2"]),
                       time_label="days")
    card_dir = results / "models" / "l3-muscle-test"
    card_dir.mkdir(parents=True)
    (card_dir / "model_card.json").write_text(json.dumps(model_card(), indent=2))
    write_versions(results)
    return results


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete results folder (survival, QC, features, biomarkers, a model card) with one failed case."""
    return build_results(tmp_path_factory.mktemp("report"))


@pytest.fixture
def fresh_results(results_dir: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`results_dir` that a test may change."""
    return Path(shutil.copytree(results_dir, tmp_path / "results"))
