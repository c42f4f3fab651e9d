"""``radiobio stress-test COHORT -m MODEL --ref COLUMN -o OUT_DIR``: Dice and HD95 of a model on perturbed images."""

from __future__ import annotations

import argparse

from radiobio.cli._common import add_jobs, add_quiet, fail, report_failures

EXAMPLE = """examples:
  radiobio stress-test cohort.csv -m hippocampus-3d --ref mask -o stress
  radiobio stress-test cohort.csv -m hippocampus-3d --ref mask -o stress --perturbations blur,gaussian_noise \\
      --severities 0,0.5,1

perturbations: gaussian_noise, rician_noise, bias_field, motion_ghosting, blur, low_resolution, contrast,
intensity_scale, partial_fov, metal_streaks (CT only) [all that apply to the model's modality].
writes OUT_DIR/masks/<perturbation>/<severity>/<case>.nii.gz, OUT_DIR/stress_test.csv (perturbation, severity,
case_id, label, label_name, dice, hd95_mm, qc_score, qc_flags, qc_<signal>, mask, error; the clean baseline is
perturbation "none" at severity 0) and OUT_DIR/stress_test.png (mean Dice against severity), and prints the mean
Dice table and how well qc_score finds the masks with mean Dice < 0.8 (ROC AUC; volume z-scores alone beside it).
exit code: 0 every case ran, 1 some case failed (its rows hold the error), 2 usage error (nothing run).
"""


def severity_list(text: str) -> list[float]:
    """Parse ``0,0.5,1`` into severities (checked later, in [0, 1])."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers in [0, 1] separated by commas, e.g. 0,0.5,1") \
            from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``stress-test`` subcommand."""
    parser = subparsers.add_parser("stress-test", help="score a model on perturbed images (robustness)",
                                   description="Perturb every image of a cohort (noise, bias field, motion, blur, "
                                               "resolution, contrast, intensity scale, field of view, metal streaks) "
                                               "at growing severities, segment it with a model bundle and score the "
                                               "masks against the reference: Dice and HD95 (mm) per case and label.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="cohort manifest (CSV or Parquet) with case_id, image and reference mask "
                                       "columns")
    parser.add_argument("-m", "--model", required=True,
                        help="model bundle folder (model.keras + model_card.json), or the name of one that "
                             "radiobio models lists")
    parser.add_argument("--ref", required=True, help="column of reference masks")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR",
                        help="output folder (masks/, stress_test.csv, stress_test.png)")
    add_perturbation_arguments(parser, "0,0.25,0.5,0.75,1")
    parser.add_argument("--modality", choices=("CT", "MR"), default=None,
                        help="modality of the images [from the model's card: CT window -> CT, else MR]")
    add_jobs(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)


def add_perturbation_arguments(parser: argparse.ArgumentParser, severities: str) -> None:
    """The options every command that stress-tests shares: ``--perturbations``, ``--severities`` (default shown as
    ``severities``), ``--image-column`` and ``--seed``."""
    parser.add_argument("--perturbations", default=None, metavar="NAMES",
                        help="perturbations, comma-separated [all that apply to the model's modality]")
    parser.add_argument("--severities", type=severity_list, default=None, metavar="LIST",
                        help=f"severities in [0, 1], comma-separated; 0 is the clean baseline [{severities}]")
    parser.add_argument("--image-column", default="image", help="column holding image paths [image]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations' randomness [0]")


def run(args: argparse.Namespace) -> int:
    """Run the stress test, print the mean Dice per perturbation and severity; exit code 0, 1 or 2."""
    from pathlib import Path

    from radiobio.errors import RadiobioError
    from radiobio.segmentation.quality import DICE_TARGET, qc_auc
    from radiobio.segmentation.stress import DEFAULT_SEVERITIES, TABLE_FILE, mean_dice, stress_test

    try:
        table = stress_test(args.model, args.cohort, perturbations=args.perturbations,
                            severities=DEFAULT_SEVERITIES if args.severities is None else args.severities,
                            mask_column=args.ref, image_column=args.image_column, out_dir=args.out, seed=args.seed,
                            modality=args.modality, jobs=args.jobs, progress=not args.quiet)
    except RadiobioError as exc:
        return fail("stress-test", exc)
    means = mean_dice(table)
    if len(means):
        print("mean Dice (cases x labels) per perturbation and severity:")
        print(means.to_string(float_format=lambda v: f"{v:.3f}"))
    auc = qc_auc(table)
    if auc["n_below"] and auc["n_below"] < auc["n_masks"]:
        print(f"qc_score finds the {auc['n_below']:.0f} of {auc['n_masks']:.0f} masks with mean Dice < "
              f"{DICE_TARGET:g}: AUC {auc['auc_qc_score']:.3f} (volume z-scores alone: {auc['auc_volume_z']:.3f}); "
              f"qc_score >= 0.5 sends {100 * auc['sensitivity_at_review']:.0f}% of them to review and leaves "
              f"{100 * auc['specificity_at_review']:.0f}% of the others alone")
    return report_failures("stress-test", table, Path(args.out) / TABLE_FILE, what="cases ran")
