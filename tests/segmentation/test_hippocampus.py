"""The shipped hippocampus bundle on real MRI crops: held-out cases from its own card, Dice ≥ 0.8."""

from __future__ import annotations

import json

import pandas as pd

from radiobio.segmentation import evaluate, load_bundle, segment


def test_shipped_bundle_card_and_size(hippocampus_bundle):
    card = json.loads((hippocampus_bundle / "model_card.json").read_text())
    assert card["labels"] == {"1": "anterior", "2": "posterior"}
    assert card["training"]["command"].startswith("TF_NUM_INTRAOP_THREADS=2")
    assert card["validation_metrics"]["n_cases"] >= 30
    assert (hippocampus_bundle / "model.keras").stat().st_size < 20 * 1024 ** 2
    assert load_bundle(hippocampus_bundle).config.dims == 3


def test_shipped_bundle_segments_held_out_cases(hippocampus_bundle, hippocampus_data, tmp_path):
    card = json.loads((hippocampus_bundle / "model_card.json").read_text())
    cases = card["training_data"]["validation_cases"][:4]
    cohort = pd.DataFrame({
        "case_id": cases,
        "image": [str(hippocampus_data / "images" / f"{c}.nii.gz") for c in cases],
        "truth": [str(hippocampus_data / "labels" / f"{c}.nii.gz") for c in cases],
    })
    result = segment(cohort, model=hippocampus_bundle, out_dir=tmp_path / "masks",
                     mask_column="predicted", progress=False)
    assert (result["error"] == "").all()
    scores = evaluate(result, pred_column="predicted", ref_column="truth", labels=[1, 2])
    assert len(scores) == 2 * len(cases)
    assert scores.groupby("label")["dice"].mean().min() >= 0.8
    assert scores["hd95_mm"].median() < 5.0
