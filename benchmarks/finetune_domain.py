"""Fine-tuning hippocampus-3d for a shifted domain: mean Dice before and after, on cases of that domain it never saw.

The domain is ``low_resolution`` at severity 0.75 (voxels 3.25 times larger on every axis, resampled back onto the
1 mm grid), one of the stress test's shifts (its images equal those of ``radiobio stress-test --seed 0``). The 40
validation cases of the shipped bundle (never trained on) are split: ``validation[20:30]`` (10 cases) fine-tune the
model (``train(..., from_model="hippocampus-3d")``), ``validation[:20]`` (20 others) measure it, shifted and clean
(does the fine-tuned model forget the original domain?). Run from the repository root (about 10 minutes on 2 CPU
cores):

    TF_NUM_INTRAOP_THREADS=2 TF_NUM_INTEROP_THREADS=1 .venv/bin/python benchmarks/finetune_domain.py [--out DIR]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from radiobio.cohort import read_cohort
from radiobio.segmentation import evaluate, segment, train
from radiobio.segmentation.perturbations import PERTURBATIONS
from radiobio.segmentation.stress import case_seed
from radiobio.segmentation.training import split_cases

REPO = Path(__file__).resolve().parents[1]
PERTURBATION, SEVERITY = "low_resolution", 0.75
#: Fine-tuning settings: 12 epochs of 40 patches from the 10 cases (8 train, 2 choose the checkpoint).
OVERRIDES = {"training": {"epochs": 12, "samples_per_epoch": 40}}


def shifted(cohort: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """The cases with their images perturbed (masks unchanged), written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for case_id, image, mask in cohort[["case_id", "image", "mask"]].itertuples(index=False):
        path = folder / f"{case_id}.nii.gz"
        perturbed = PERTURBATIONS[PERTURBATION](sitk.ReadImage(image), SEVERITY, case_seed(0, case_id, PERTURBATION))
        sitk.WriteImage(perturbed, str(path))
        rows.append({"case_id": case_id, "image": str(path), "mask": mask})
    return pd.DataFrame(rows)


def mean_dice(model: str | Path, cohort: pd.DataFrame, out: Path) -> float:
    """Segment ``cohort`` with ``model`` and return the mean Dice over cases and both labels."""
    masks = segment(cohort.rename(columns={"mask": "reference"}), model=model, out_dir=out, mask_column="predicted",
                    overwrite=True)
    scores = evaluate(masks, pred_column="predicted", ref_column="reference", labels=[1, 2])
    return float(scores.loc[scores["error"] == "", "dice"].mean())


def main() -> None:
    """Run the measurement and print the table (markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/finetune-domain", help="scratch folder [/tmp/finetune-domain]")
    out = Path(parser.parse_args().out)
    cohort = read_cohort(REPO / "models" / "hippocampus-3d" / "cohort.csv")
    _, validation = split_cases(cohort, 0.2, 42)
    tune = shifted(cohort.iloc[validation[20:30]], out / "tune_images")
    test_clean = cohort.iloc[validation[:20]][["case_id", "image", "mask"]].reset_index(drop=True)
    test_shifted = shifted(test_clean, out / "test_images")
    parent = REPO / "models" / "hippocampus-3d"
    before = {"shifted": mean_dice(parent, test_shifted, out / "before_shifted"),
              "clean": mean_dice(parent, test_clean, out / "before_clean")}
    started = time.perf_counter()
    child = train(tune, from_model=parent, config=OVERRIDES, out_dir=out / "hippocampus-3d-lowres",
                  qc_calibration=False, command="benchmarks/finetune_domain.py")
    minutes = (time.perf_counter() - started) / 60
    after = {"shifted": mean_dice(child, test_shifted, out / "after_shifted"),
             "clean": mean_dice(child, test_clean, out / "after_clean")}
    print(f"fine-tuned on 10 cases ({PERTURBATION} {SEVERITY:g}) in {minutes:.1f} min on {platform.machine()}; "
          f"bundle {child}")
    print("| 20 evaluation cases | hippocampus-3d | fine-tuned | change |")
    print("|---|---:|---:|---:|")
    for key in ("shifted", "clean"):
        print(f"| {key} | {before[key]:.3f} | {after[key]:.3f} | {after[key] - before[key]:+.3f} |")


if __name__ == "__main__":
    main()
