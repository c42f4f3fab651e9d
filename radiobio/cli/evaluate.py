"""``radiobio evaluate COHORT --pred COLUMN --ref COLUMN``: Dice, IoU, HD95, ASSD (mm) per case and label."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="score predicted masks against reference masks",
                                   description="Score predicted against reference masks: Dice, IoU, HD95 and ASSD "
                                               "in mm, volume similarity, per case and label, plus a summary.",
                                   epilog="example:\n  radiobio evaluate masks/cohort.csv --pred mask "
                                          "--ref mask_manual "
                                          "-o scores.csv\n",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="cohort manifest holding both mask columns")
    parser.add_argument("--pred", required=True, help="column of predicted masks")
    parser.add_argument("--ref", required=True, help="column of reference masks")
    parser.add_argument("-o", "--out", help="CSV file for the per-case table (default: print only the summary)")
    parser.add_argument("--labels", type=int, nargs="+", help="labels to score (default: those in either mask)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiobio.errors import RadiobioError
    from radiobio.segmentation.metrics import evaluate

    try:
        scores = evaluate(args.cohort, args.pred, args.ref, labels=args.labels, jobs=args.jobs)
    except RadiobioError as exc:
        print(f"radiobio evaluate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if args.out:
        scores.to_csv(args.out, index=False)
        print(f"per-case metrics written to {args.out}")
    summary = scores.attrs["summary"]
    columns = [c for c in summary.columns if c == "n" or c.endswith("_mean")]
    print(summary[columns].to_string(float_format=lambda v: f"{v:.3f}"))
    failed = scores[scores["error"] != ""]
    for _, row in failed.iterrows():
        print(f"{row['case_id']}: {row['error']}", file=sys.stderr)
    if len(failed):
        print(f"{len(failed)} case(s) failed", file=sys.stderr)
        return 1
    return 0
