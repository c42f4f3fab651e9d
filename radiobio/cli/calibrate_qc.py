"""``radiobio calibrate-qc COHORT -m BUNDLE --ref COLUMN -o OUT_DIR``: fit a bundle's quality score."""

from __future__ import annotations

import argparse

from radiobio.cli._common import add_jobs, add_quiet, fail
from radiobio.cli.stress_test import add_perturbation_arguments

EXAMPLE = """examples:
  radiobio calibrate-qc validation.csv -m my-model --ref mask --reference training.csv -o calibration

COHORT: validation cases with reference masks, never trained on. --reference: the training cases with their masks
(their label sizes, spacings, fields of view and intensities become the card's reference statistics; without it the
card's are kept). The cases are stress-tested (radiobio stress-test) and the score is fitted for "mean Dice below
--threshold"; the bundle's model_card.json and MODEL_CARD.md are rewritten in place (the bundle must be a folder you
can write). Prints the calibration's signals, coefficients and in-sample AUC.
exit code: 0 calibrated, 2 usage error or nothing to calibrate on.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate-qc`` subcommand."""
    parser = subparsers.add_parser("calibrate-qc", help="fit a model bundle's quality score (qc_score)",
                                   description="Store reference statistics and a calibrated quality score in a model "
                                               "bundle's card, from its training cases and perturbed validation "
                                               "cases.", epilog=EXAMPLE,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="validation cohort (CSV or Parquet) with case_id, image and reference masks")
    parser.add_argument("-m", "--model", required=True, help="model bundle folder (its card is rewritten)")
    parser.add_argument("--ref", required=True, help="column of reference masks (in both cohorts)")
    parser.add_argument("--reference", default=None, metavar="COHORT",
                        help="training cases with masks for the reference statistics [keep the card's]")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="folder for the stress test")
    add_perturbation_arguments(parser, "0,0.5,1")
    parser.add_argument("--threshold", type=float, default=0.8, help="mean Dice below which a mask needs review [0.8]")
    add_jobs(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate and print the result; exit code 0 or 2."""
    from radiobio.errors import RadiobioError
    from radiobio.segmentation.quality import calibrate_quality

    try:
        section = calibrate_quality(args.model, args.cohort, out_dir=args.out, reference=args.reference,
                                    mask_column=args.ref, image_column=args.image_column,
                                    perturbations=args.perturbations,
                                    severities=(0, 0.5, 1) if args.severities is None else args.severities,
                                    threshold=args.threshold, seed=args.seed, jobs=args.jobs,
                                    progress=not args.quiet)
    except RadiobioError as exc:
        return fail("calibrate-qc", exc)
    calibration = section["calibration"]
    print(f"calibrated on {calibration['n_masks']} masks of {len(calibration['cases'])} cases, "
          f"{calibration['n_below']} with {calibration['target']}; in-sample AUC {calibration['auc_in_sample']:.3f}")
    for name, coefficient in zip(calibration["signals"], calibration["coefficients"]):
        print(f"  {name:>20}: {coefficient:+.3f} per SD")
    print(f"card updated: {args.model}")
    return 0
