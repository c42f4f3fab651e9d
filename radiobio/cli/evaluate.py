"""``radiobio evaluate COHORT --pred COLUMN --ref COLUMN``: Dice, IoU, HD95, ASSD (mm) per case and label."""

from __future__ import annotations

import argparse

from radiobio.cli._common import add_jobs, add_labels, add_quiet, fail, report_failures

EXAMPLE = """examples:
  radiobio evaluate results/cohort.csv --pred mask --ref mask_manual -o results/segmentation_metrics.csv
  radiobio evaluate results/cohort.csv --pred mask --ref mask_manual --labels anterior=1,posterior=2

writes the per-case table (case_id, label, label_name, dice, iou, hd95_mm, ..., clinical columns, error) and prints
the summary per label. exit code: 0 every case scored, 1 some case failed, 2 usage error (nothing run).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser("evaluate", help="score predicted masks against reference masks",
                                   description="Score predicted against reference masks: Dice, IoU, HD95 and ASSD "
                                               "in mm, volume similarity, per case and label, plus a summary.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="cohort manifest holding both mask columns")
    parser.add_argument("--pred", default="mask", help="column of predicted masks [mask]")
    parser.add_argument("--ref", required=True, help="column of reference masks")
    parser.add_argument("-o", "--out", help="per-case table (.parquet, .csv, .tsv) [print the summary only]")
    add_labels(parser, "labels to score [those in either mask]")
    add_jobs(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Score the masks, write the table, print the per-label summary; exit code 0, 1 or 2."""
    from radiobio.errors import RadiobioError
    from radiobio.segmentation.metrics import evaluate, summarize
    from radiobio.tables import check_table_suffix, write_table

    try:
        out = check_table_suffix(args.out) if args.out else None
        scores = evaluate(args.cohort, pred_column=args.pred, ref_column=args.ref, labels=args.labels,
                          jobs=args.jobs, progress=not args.quiet)
    except RadiobioError as exc:
        return fail("evaluate", exc)
    if out is not None:
        write_table(scores, out)
    summary = summarize(scores)
    columns = [c for c in summary.columns if c in ("label_name", "n") or c.endswith("_mean")]
    print(summary[columns].to_string(float_format=lambda v: f"{v:.3f}"))
    return report_failures("evaluate", scores, out or "(not written: give -o)", what="cases scored")
