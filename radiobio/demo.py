"""The demo pipeline: synthetic L3 CT slices → segmentation → sarcopenia → muscle radiomics → survival → report.

Everything runs on data radiobio makes itself (:mod:`radiobio.synthetic.l3`) and the shipped demo model
``models/l3-muscle-demo`` (trained on synthetic slices only; not for clinical use). Survival is simulated so that
sarcopenia (by the Prado 2008 cut-offs applied to the phantom's true muscle area) doubles the hazard, so the Cox
model's answer can be compared with the truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiobio.errors import ModelBundleError

#: The shipped demo bundle, found on the model search path (:mod:`radiobio.segmentation.catalogue`).
DEMO_MODEL = "l3-muscle-demo"
TISSUE_LABELS = {"muscle": 1, "sat": 2, "vat": 3, "imat": 4}
TRUE_HAZARD_RATIO = 2.0
#: Radiomics of the segmented muscle on a single axial slice: 2D shape and texture.
MUSCLE_PARAMS = {
    "imageType": {"Original": {}},
    "featureClass": {"shape2D": None, "firstorder": None, "glcm": None, "glrlm": None, "glszm": None},
    "setting": {"binWidth": 10, "force2D": True, "force2Ddimension": 0, "label": 1},
}


def run_demo(out: str | Path, *, n_cases: int = 160, jobs: int | None = None, progress: bool = True,
             model: str | Path = DEMO_MODEL, seed: int = 2026) -> dict[str, Any]:
    """Run the whole demo into ``out`` (an empty or demo-owned folder); return a summary with paths and key numbers.

    ``out`` is a results folder (layout: :mod:`radiobio.report.results`): ``cohort.csv``, ``masks/`` and
    ``models/`` written by :func:`radiobio.segment`; ``segmentation_metrics``, ``biomarkers`` and ``features``
    tables (Parquet and CSV); ``qc/`` (contour overlays of the measured slice and a montage); ``survival/``
    (Kaplan–Meier by sarcopenia, Cox model); ``versions.json`` and ``report.html``. The synthetic images lie in
    ``images/``.
    """
    from radiobio.biomarkers import sarcopenia
    from radiobio.features.extraction import extract_features
    from radiobio.outcome import cox, kaplan_meier
    from radiobio.report import L3_COLOURS, write_report, write_results_qc, write_survival, write_versions
    from radiobio.segmentation import evaluate, segment
    from radiobio.segmentation.catalogue import find_bundle
    from radiobio.tables import write_table

    out = Path(out)
    try:
        model = find_bundle(model)
    except ModelBundleError:
        model = Path(model)
    if not (model / "model.keras").is_file():
        raise ModelBundleError(f"{model}: demo model bundle not found; train it with the command in "
                               f"models/l3-muscle-demo/MODEL_CARD.md")
    cohort = demo_cohort(out / "images", n_cases, seed)

    def save(table: pd.DataFrame, name: str) -> None:
        for suffix in (".parquet", ".csv"):
            write_table(table, out / f"{name}{suffix}")

    segmented = segment(cohort, model=model, out_dir=out, mask_column="mask_tissue", jobs=jobs, progress=progress)
    metrics = evaluate(segmented, pred_column="mask_tissue", ref_column="mask_reference", progress=progress)
    save(metrics, "segmentation_metrics")

    biomarkers = sarcopenia(out / "cohort.csv", muscle_column="mask_tissue", labels=TISSUE_LABELS,
                            cutoffs="prado2008", jobs=jobs, progress=progress)
    biomarkers["sarcopenic_int"] = biomarkers["sarcopenic"].astype("Float64")
    save(biomarkers.drop(columns="sarcopenic_int"), "biomarkers")

    features = extract_features(out / "cohort.csv", params=MUSCLE_PARAMS, mask_column="mask_tissue",
                                labels={"muscle": TISSUE_LABELS["muscle"]}, jobs=jobs, progress=progress)
    save(features, "features")

    analysable = biomarkers.dropna(subset=["sarcopenic_int", "os_days", "os_event"]).copy()
    analysable["sarcopenia"] = np.where(analysable["sarcopenic_int"] > 0, "sarcopenic", "not sarcopenic")
    analysable["sarcopenic"] = analysable["sarcopenic_int"].astype(float)
    km = kaplan_meier(analysable, duration_column="os_days", event_column="os_event", group_column="sarcopenia")
    cox_result = cox(analysable, duration_column="os_days", event_column="os_event",
                     covariates=["sarcopenic", "age"])
    write_survival(out, km, cox_result, time_label="days")

    write_results_qc(out, colours=L3_COLOURS, jobs=1)  # the measured slice, every tissue, named
    write_versions(out)
    report = write_report(out, title="radiobio demo: sarcopenia at L3 and survival")

    hr_row = cox_result.summary.set_index("covariate").loc["sarcopenic"]
    muscle = metrics[metrics["label"] == TISSUE_LABELS["muscle"]]
    summary = {
        "cases": len(cohort), "failed": int((biomarkers["error"] != "").sum()),
        "muscle_dice_mean": float(muscle["dice"].mean()),
        "hazard_ratio": float(hr_row["hr"]), "hr_lower_95": float(hr_row["hr_lower_95"]),
        "hr_upper_95": float(hr_row["hr_upper_95"]), "true_hazard_ratio": TRUE_HAZARD_RATIO,
        "report": str(report), "out": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def demo_cohort(folder: Path, n_cases: int, seed: int) -> pd.DataFrame:
    """Synthetic L3 cohort with age and survival simulated from the phantoms' true sarcopenia status.

    Columns: ``case_id``, ``image``, ``mask_reference`` (the exact tissue map, for scoring the segmentation),
    ``sex``, ``height_m``, ``weight_kg``, ``age``, ``os_days``, ``os_event``.
    """
    from radiobio.biomarkers.body_composition import cutoff_for, load_cutoffs
    from radiobio.synthetic.l3 import write_l3_cohort
    from radiobio.synthetic.survival import simulate_survival

    cohort = write_l3_cohort(folder, n=n_cases, seed=seed, size=256)
    truth = pd.read_csv(folder / "truth.csv", dtype={"case_id": str})
    rng = np.random.default_rng(seed)
    age = rng.uniform(45, 85, n_cases).round(0)
    cutoffs, _ = load_cutoffs("prado2008")
    true_smi = truth["muscle_cm2"].to_numpy() / cohort["height_m"].to_numpy() ** 2
    threshold = np.array([cutoff_for(cutoffs, "smi", sex, None)[0] for sex in cohort["sex"]])
    survival = simulate_survival(true_smi < threshold, hazard_ratio=TRUE_HAZARD_RATIO, age=age, seed=seed + 1)
    table = cohort[["case_id", "image"]].assign(mask_reference=cohort["mask"])
    table = pd.concat([table, cohort[["sex", "height_m", "weight_kg"]]], axis=1)
    return pd.concat([table, pd.DataFrame({"age": age}), survival], axis=1)
