"""``radiobio extract``: batch PyRadiomics extraction of a cohort into a feature table."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """example:
  radiobio extract cohort.csv -p ct -o features.parquet -j 4
  radiobio extract pyradiomics_batch.csv -p params.yaml -o features.csv --scheduler tcp://10.0.0.5:8786
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract`` subcommand."""
    parser = subparsers.add_parser("extract", help="extract radiomics features from a cohort",
                                   description="Extract PyRadiomics features for every case and label of a cohort "
                                               "(CSV/Parquet manifest, or a PyRadiomics batch CSV).",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="cohort manifest (.csv, .parquet) or PyRadiomics batch CSV")
    parser.add_argument("-p", "--params", default="ct", help="preset (ct, mr, ibsi) or PyRadiomics YAML [ct]")
    parser.add_argument("-o", "--out", required=True, help="output table (.parquet or .csv); resumable")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="local worker processes [all cores]")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (runs on that cluster)")
    parser.add_argument("--mask-column", default="mask", help="mask column of the cohort [mask]")
    parser.add_argument("--labels", nargs="+", type=int, default=None, help="labels to extract [all non-zero]")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the extraction; exit code 1 when any case or label failed."""
    from radiobio.errors import RadiobioError
    from radiobio.features.extraction import extract_features

    client = None
    try:
        if args.scheduler:
            from distributed import Client

            client = Client(args.scheduler)
        table = extract_features(args.cohort, params=args.params, mask_column=args.mask_column, labels=args.labels,
                                 jobs=args.jobs, executor=client, out=args.out, progress=not args.no_progress)
    except RadiobioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    return report_summary(table, args.out)


def report_summary(table, out: str) -> int:  # noqa: ANN001 - a feature table
    """Print ``N cases ok, M failed`` and each failure; return 1 if any case failed, else 0."""
    failed = table[table["error"] != ""]
    failed_cases = sorted(set(failed["case_id"]))
    ok_cases = len(set(table["case_id"])) - len(failed_cases)
    for _, row in failed.iterrows():
        label = "" if row["label"] is None or str(row["label"]) == "<NA>" else f" label {row['label']}"
        print(f"  failed: {row['case_id']}{label}: {row['error']}", file=sys.stderr)
    print(f"{ok_cases} cases ok, {len(failed_cases)} failed; {len(table)} rows written to {out}")
    return 1 if failed_cases else 0
