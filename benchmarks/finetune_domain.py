"""Benchmark: adapting ``hippocampus-3d`` to a lower-resolution "scanner" by fine-tuning on 10 annotated cases.

The shift: ``low_resolution`` at severity 0.75 (``radiobio.segmentation.perturbations``: voxels 1 + 3 × 0.75 = 3.25
times larger on every axis, anti-aliased, resampled back onto the original 1 mm grid), seeded per case with
``radiobio.segmentation.stress.case_seed(0, case_id, "low_resolution")``, so the images are those of
``radiobio stress-test --seed 0``.

The cases: the 40 validation cases of ``hippocampus-3d`` (``split_cases(cohort, 0.2, 42)``, never trained on).
Validation cases 20–29 (10 cases, shifted images, original masks) are the fine-tuning cohort; cases 0–19 (20 other
cases) are scored, shifted and clean, with the shipped model and with the fine-tuned one. Fine-tuning runs
``radiobio train FINETUNE.csv --from hippocampus-3d -o SCRATCH/hippocampus-3d-lowres`` with no training settings,
so the defaults of ``radiobio.segmentation.finetune.finetune_defaults`` apply. Everything is written under
``--scratch`` (outside the repository); the fine-tuned bundle is not shipped.

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 .venv/bin/python benchmarks/finetune_domain.py \\
        --scratch /tmp/finetune-domain
    .venv/bin/python benchmarks/finetune_domain.py --scratch /tmp/fd-check --quick   # a check of the script only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PARENT = "hippocampus-3d"
PERTURBATION = "low_resolution"
SEVERITY = 0.75
SEED = 0
LABELS = [1, 2]


def write_shifted_cohorts(scratch: Path, quick: bool) -> dict[str, Path]:
    """Write the shifted images and the three manifests (fine-tune, shifted evaluation, clean evaluation)."""
    from radiobio.cohort import read_cohort
    from radiobio.imaging import read_image, write_image
    from radiobio.segmentation.perturbations import PERTURBATIONS
    from radiobio.segmentation.stress import case_seed
    from radiobio.segmentation.training import split_cases

    cohort = read_cohort(REPO / "models" / PARENT / "cohort.csv").reset_index(drop=True)
    _, validation = split_cases(cohort, 0.2, 42)
    finetune_rows, evaluation_rows = validation[20:30], validation[:20]
    if quick:
        finetune_rows, evaluation_rows = finetune_rows[:3], evaluation_rows[:2]
    perturb = PERTURBATIONS[PERTURBATION]
    shifted = {}
    for row in [*finetune_rows, *evaluation_rows]:
        case_id = str(cohort.at[row, "case_id"])
        image = perturb(read_image(cohort.at[row, "image"]), SEVERITY, case_seed(SEED, case_id, PERTURBATION))
        shifted[row] = str(write_image(image, scratch / "images" / f"{case_id}.nii.gz"))

    def manifest(rows, name: str, use_shifted: bool) -> Path:
        table = pd.DataFrame({"case_id": [str(cohort.at[r, "case_id"]) for r in rows],
                              "image": [shifted[r] if use_shifted else str(cohort.at[r, "image"]) for r in rows],
                              "mask": [str(cohort.at[r, "mask"]) for r in rows]})
        path = scratch / f"{name}.csv"
        table.to_csv(path, index=False)
        return path

    return {"finetune": manifest(finetune_rows, "finetune", True),
            "shifted": manifest(evaluation_rows, "evaluation_shifted", True),
            "clean": manifest(evaluation_rows, "evaluation_clean", False)}


def fine_tune(manifest: Path, out: Path, quick: bool) -> float:
    """Run ``radiobio train MANIFEST --from hippocampus-3d -o OUT`` in a subprocess; return its wall minutes."""
    command = [sys.executable, "-m", "radiobio.cli", "train", str(manifest), "--from", PARENT, "-o", str(out)]
    if quick:
        overrides = out.parent / "quick.yaml"
        overrides.write_text("training:\n  epochs: 1\n  samples_per_epoch: 4\n")
        command += ["-c", str(overrides)]
    started = time.time()
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return (time.time() - started) / 60.0


def mean_dice(bundle: str | Path, manifest: Path, out_dir: Path) -> tuple[float, int]:
    """Segment ``manifest`` with ``bundle``; return the mean Dice over cases and both labels, and the case count."""
    from radiobio.segmentation import evaluate, segment

    table = pd.read_csv(manifest, dtype={"case_id": str})
    predicted = segment(table.rename(columns={"mask": "reference"}), model=bundle, out_dir=out_dir,
                        mask_column="predicted", overwrite=True)
    scores = evaluate(predicted, pred_column="predicted", ref_column="reference", labels=LABELS)
    ok = scores[scores["error"] == ""]
    return float(ok["dice"].mean()), int(ok["case_id"].nunique())


def main() -> None:
    """Write the shifted cohorts, fine-tune, score both bundles, print the table and write ``results.json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/finetune-domain"),
                        help="folder for the shifted images, the fine-tuned bundle and the masks (not the repo)")
    parser.add_argument("--quick", action="store_true", help="3 + 2 cases, 1 epoch of 4 patches: a script check")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    if scratch == REPO or REPO in scratch.parents:
        parser.error(f"--scratch {scratch} is inside the repository; give a folder outside it")
    scratch.mkdir(parents=True, exist_ok=True)

    manifests = write_shifted_cohorts(scratch, args.quick)
    child = scratch / f"{PARENT}-lowres"
    minutes = fine_tune(manifests["finetune"], child, args.quick)
    card = json.loads((child / "model_card.json").read_text())
    results: dict = {"perturbation": PERTURBATION, "severity": SEVERITY, "seed": SEED, "quick": args.quick,
                     "finetune_wall_minutes": round(minutes, 1), "card_training": card["training"],
                     "parent": card["parent"], "finetune_validation_cases": card["training_data"]["validation_cases"],
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, TF_NUM_INTRAOP_THREADS="
                                f"{os.environ.get('TF_NUM_INTRAOP_THREADS', 'unset')}", "dice": {}}
    for domain in ("shifted", "clean"):
        for name, bundle in (("before", PARENT), ("after", child)):
            dice, cases = mean_dice(bundle, manifests[domain], scratch / "masks" / f"{domain}-{name}")
            results["dice"][f"{domain}_{name}"] = round(dice, 4)
            results["dice"][f"{domain}_cases"] = cases
    (scratch / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    d = results["dice"]
    print(f"\n| evaluation cases | {PARENT} | fine-tuned |\n|---|---|---|")
    print(f"| {d['shifted_cases']} with {PERTURBATION} {SEVERITY} | {d['shifted_before']:.3f} | "
          f"{d['shifted_after']:.3f} |")
    print(f"| {d['clean_cases']} clean | {d['clean_before']:.3f} | {d['clean_after']:.3f} |")
    training = card["training"]
    print(f"\nfine-tune: {minutes:.1f} min wall ({training['epochs_run']} epochs, best {training['best_epoch']}, "
          f"fit {training['fit_minutes']} min) on {results['machine']}; results in {scratch / 'results.json'}")


if __name__ == "__main__":
    main()
