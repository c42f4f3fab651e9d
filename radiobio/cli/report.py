"""``radiobio report``: one self-contained HTML page of a results folder (optionally drawing its QC overlays first)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLE = """example:
  radiobio report radiobio-demo                       # writes radiobio-demo/report.html
  radiobio report results --qc --mask-column mask_muscle --window soft_tissue -o report.html
  radiobio report big-cohort --link-images             # small page linking every QC picture

RESULTS_DIR layout (every part optional): cohort.parquet|csv, features.parquet|csv, biomarkers.parquet|csv,
qc/*.png, survival/ (km.png, cox.csv, ...), models/*/model_card.json, versions.json.
exit code: 0 report written, 1 written but some cases failed (listed in the report), 2 no report.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser("report", help="HTML report of a results folder",
                                   description="Build one HTML page (images embedded, or linked with "
                                               "--link-images) from a results folder: failed cases, cohort, QC "
                                               "gallery, biomarkers, features, survival, model cards, versions.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", metavar="RESULTS_DIR", help="results folder (e.g. the --out of radiobio demo)")
    parser.add_argument("-o", "--out", default=None, help="output HTML file [RESULTS_DIR/report.html]")
    parser.add_argument("--title", default="radiobio report", help="page title [radiobio report]")
    parser.add_argument("--qc", action="store_true",
                        help="draw QC overlays of RESULTS_DIR's cohort table into RESULTS_DIR/qc first")
    parser.add_argument("--mask-column", default="mask", help="mask column drawn by --qc [mask]")
    parser.add_argument("--slice-column", default=None, help="cohort column with each case's slice (--qc)")
    parser.add_argument("--window", default="auto",
                        help="--qc window: auto, percentile, a CT preset (soft_tissue, lung, bone, ...) or W,L [auto]")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes for --qc [1]")
    parser.add_argument("--link-images", action="store_true",
                        help="link the pictures by relative path instead of embedding them (a small page for large "
                             "cohorts, with every case in the QC gallery; keep it beside RESULTS_DIR)")
    parser.add_argument("--max-gallery", type=int, default=None,
                        help="per-case QC pictures shown [60 embedded, all when linked]")
    parser.set_defaults(run=run)


def parse_window(text: str) -> str | tuple[float, float]:
    """``"400,40"`` → (400.0, 40.0); any other text is a window name."""
    if "," in text:
        width, level = text.split(",", 1)
        return float(width), float(level)
    return text


def run(args: argparse.Namespace) -> int:
    """Build the report; exit code 1 when the results contain failed cases, 2 when no report could be built."""
    from radiobio.errors import RadiobioError
    from radiobio.report.html import collect_failures, html
    from radiobio.report.qc import write_qc
    from radiobio.report.results import COHORT, QC_DIR, find_table

    results = Path(args.results)
    try:
        if args.qc:
            cohort = find_table(results, COHORT) if results.is_dir() else None
            if cohort is None:
                print(f"error: --qc needs a cohort table ({COHORT}.parquet or {COHORT}.csv) in {results}",
                      file=sys.stderr)
                return 2
            qc = write_qc(cohort, results / QC_DIR, mask_column=args.mask_column, slice_column=args.slice_column,
                          window=parse_window(args.window), jobs=args.jobs)
            print(f"QC overlays: {int((qc['error'] == '').sum())} of {len(qc)} cases drawn in {results / QC_DIR}")
        out = html(results, args.out, title=args.title, max_gallery=args.max_gallery,
                   embed_images=not args.link_images)
    except (RadiobioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = collect_failures(results)
    if len(failed):
        cases = sorted(set(failed["case_id"]))
        print(f"{len(cases)} case(s) failed in some stage: {', '.join(cases)} (see the report's 'Failed cases')",
              file=sys.stderr)
    print(f"report: {out}")
    return 1 if len(failed) else 0
