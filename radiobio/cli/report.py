"""``radiobio report``: one self-contained HTML page of a results folder (optionally drawing its QC overlays first)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

EXAMPLE = """example:
  radiobio report radiobio-demo                       # writes radiobio-demo/report.html
  radiobio report results --qc                        # draw QC overlays first (measured slice for sarcopenia)
  radiobio report results --qc --mask-column mask --label-names anterior=1,posterior=2 --view sagittal
  radiobio report results --qc --cohort cohort.csv --window 400,40 -o report.html
  radiobio report big-cohort --link-images             # small page linking every QC picture
  radiobio report big-cohort --link-images --serve     # review.html linking the volumes, served on localhost

RESULTS_DIR layout (every part optional): cohort.csv (radiobio segment -o RESULTS_DIR), tables of any name whose
provenance says their stage (features, biomarkers, segmentation scores), qc/, survival/ (radiobio survival -o
RESULTS_DIR/survival), signature/ (radiobio signature -o RESULTS_DIR/signature), models/*/model_card.json,
versions.json.
With a segment table (the cohort.csv of radiobio segment -o RESULTS_DIR), review.html is written too: the review
queue (by qc_score when the table has one) and a viewer of every slice of each case, with verdicts exported as
review_verdicts.csv. Its volumes are embedded per case (review/cases/; the page works opened from disk), or linked
with --link-images (then open it through --serve: browsers do not load linked files into a page opened from disk).
--qc draws, for a sarcopenia table in RESULTS_DIR, each case's measured slice with every tissue of that run;
otherwise the mask column (--mask-column) with the label names of the model that made it (--label-names overrides).
exit code: 0 report written, 1 written but some cases failed (listed in the report), 2 no report (bad option,
missing folder, nothing to report); errors read "radiobio report: <ErrorType>: <message>".
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser("report", help="HTML report of a results folder",
                                   description="Build one HTML page (images embedded, or linked with "
                                               "--link-images) from a results folder: failed cases, cohort, models, "
                                               "segmentation quality, QC gallery, biomarkers, features, survival, "
                                               "signature, versions.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", metavar="RESULTS_DIR", help="results folder (e.g. the --out of radiobio demo)")
    parser.add_argument("-o", "--out", default=None, help="output HTML file [RESULTS_DIR/report.html]")
    parser.add_argument("--title", default="radiobio report", help="page title [radiobio report]")
    parser.add_argument("--link-images", action="store_true",
                        help="link the pictures (and the review page's volumes) by relative path instead of "
                             "embedding them (a small page for large cohorts, with every case in the QC gallery; "
                             "keep it beside RESULTS_DIR)")
    parser.add_argument("--max-gallery", type=int, default=None,
                        help="per-case QC pictures shown [60 embedded, all when linked]")
    review = parser.add_argument_group("review page (review.html)")
    review.add_argument("--no-review", action="store_true", help="do not write review.html")
    review.add_argument("--serve", action="store_true",
                        help="then serve RESULTS_DIR on this machine (127.0.0.1) and print the review page's address "
                             "(needed for --link-images volumes); Ctrl-C stops it")
    review.add_argument("--port", type=int, default=None, help="port of --serve [8765]")
    qc = parser.add_argument_group("QC overlays (--qc)")
    qc.add_argument("--qc", action="store_true", help="draw QC overlays into RESULTS_DIR/qc first")
    qc.add_argument("--cohort", default=None, metavar="PATH",
                    help="cohort table to draw [RESULTS_DIR/cohort.*, else the cohort a biomarkers table names]")
    qc.add_argument("--mask-column", nargs="+", default=None, metavar="COLUMN",
                    help="mask column(s) to draw [sarcopenia: every tissue of the run; else the segment's mask "
                         "column, or mask]; several columns are drawn together, one colour each")
    qc.add_argument("--label-names", default=None, metavar="NAME=VALUE,...",
                    help="legend names of the labels, e.g. anterior=1,posterior=2 [from the model]")
    qc.add_argument("--view", default="axial", help="axial, coronal or sagittal [axial]")
    qc.add_argument("--window", default="auto",
                    help="auto, percentile, a CT preset (soft_tissue, lung, bone, ...) or W,L [auto]")
    qc.add_argument("--height", default=None, metavar="PIXELS",
                    help="rows of each picture [long side 512 to 1024 pixels]")
    qc.add_argument("-j", "--jobs", type=int, default=None, help="worker processes for --qc [this process]")
    qc.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def parse_window(text: str) -> str | tuple[float, float]:
    """``"400,40"`` → (400.0, 40.0); any other text is a window name. Raises SettingsError for ``"a,b"``."""
    from radiobio.errors import SettingsError

    if "," in text:
        width, _, level = text.partition(",")
        try:
            return float(width), float(level)
        except ValueError:
            raise SettingsError(f"--window {text!r}: give a preset name or width,level in image units "
                                f"(e.g. 400,40)") from None
    return text


def parse_height(text: str | None) -> int | None:
    """``"600"`` → 600; raises SettingsError for anything that is not a whole number of pixels."""
    from radiobio.errors import SettingsError

    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"--height {text!r}: give the picture's rows as a whole number (e.g. 600)") from None


def run(args: argparse.Namespace) -> int:
    """Build the report; exit code 1 when the results contain failed cases, 2 when no report could be built."""
    from radiobio.errors import RadiobioError
    from radiobio.report.html import collect_failures, write_report
    from radiobio.report.overlays import check_height, check_view, check_window
    from radiobio.report.qc import parse_label_names, write_results_qc
    from radiobio.report.results import QC_DIR

    results = Path(args.results)
    try:
        if args.qc:
            window = check_window(parse_window(args.window))  # every option checked before the first case
            view = check_view(args.view)
            height = check_height(parse_height(args.height))
            names = parse_label_names(args.label_names)
            columns = args.mask_column
            qc = write_results_qc(results, cohort=args.cohort, mask_column=columns[0] if columns and
                                  len(columns) == 1 else columns, view=view, window=window, label_names=names,
                                  height=height, jobs=args.jobs, progress=not args.quiet)
            drawn = int((qc["error"] == "").sum())
            print(f"QC overlays: {drawn} of {len(qc)} cases drawn in {results / QC_DIR}")
        out = write_report(results, args.out, title=args.title, max_gallery=args.max_gallery,
                           embed_images=not args.link_images, review=not args.no_review)
        server = None
        if args.serve:
            from radiobio.report.viewer import DEFAULT_PORT, serve_results

            server = serve_results(results, port=DEFAULT_PORT if args.port is None else args.port)
    except (RadiobioError, ValueError, OSError) as exc:
        print(f"radiobio report: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    failed = collect_failures(results)
    if len(failed):
        cases = sorted(set(failed["case_id"]))
        print(f"{len(cases)} case(s) failed in some stage: {', '.join(cases)} (see the report's 'Failed cases')",
              file=sys.stderr)
    print(f"report: {out}")
    review = results / "review.html"
    if review.is_file() and not args.no_review:
        print(f"review: {review}")
    if server is not None:
        serve(server, "review.html" if review.is_file() and not args.no_review else out.name)
    return 1 if len(failed) else 0


def serve(server: ThreadingHTTPServer, page: str) -> None:
    """Serve the results folder until Ctrl-C, printing the address of ``page`` (a file name in it)."""
    host, port = server.server_address[:2]
    print(f"serving at http://{host}:{port}/{page} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
