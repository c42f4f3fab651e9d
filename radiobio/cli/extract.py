"""``radiobio extract``: batch PyRadiomics extraction of a cohort into a feature table."""

from __future__ import annotations

import argparse

from radiobio.cli._common import add_jobs, add_labels, add_quiet, add_resample_masks, fail, report_failures

EXAMPLE = """examples:
  radiobio extract results/cohort.csv -p ct -o results/features.parquet -j -1
  radiobio extract cohort.csv -p mr --labels anterior=1,posterior=2 -o features.csv
  radiobio extract pyradiomics_batch.csv -p params.yaml -o features.csv --scheduler tcp://10.0.0.5:8786
  radiobio extract cohort.csv -p ibsi-ct --convention ibsi -o features_ibsi.parquet

exit code: 0 every case ok, 1 some case or label failed (its row holds the error), 2 usage error (nothing run).
A label absent from a case's mask is not a failure: its row has no features and a note.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract`` subcommand."""
    parser = subparsers.add_parser("extract", help="extract radiomics features from a cohort",
                                   description="Extract PyRadiomics features for every case and label of a cohort "
                                               "(CSV/Parquet manifest, or a PyRadiomics batch CSV).",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="cohort manifest (.csv, .parquet) or PyRadiomics batch CSV")
    parser.add_argument("-p", "--params", default="ct",
                        help="preset (ct, mr, ibsi-ct, ibsi-config-a ... -e) or PyRadiomics YAML [ct]")
    parser.add_argument("--convention", default="pyradiomics", choices=("pyradiomics", "ibsi"),
                        help="feature names, definitions and image processing: PyRadiomics' or IBSI 1's "
                             "[pyradiomics]")
    parser.add_argument("-o", "--out", required=True, help="output table (.parquet, .csv or .tsv); resumable")
    add_jobs(parser)
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (runs on that cluster)")
    parser.add_argument("--mask-column", default="mask", help="mask column of the cohort [mask]")
    parser.add_argument("--image-column", default="image", help="image column of the cohort [image]")
    add_labels(parser, "labels to extract [all non-zero]")
    add_resample_masks(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the extraction; exit code 1 when any case or label failed, 2 on a usage error."""
    from radiobio.errors import RadiobioError
    from radiobio.features.extraction import extract_features

    client = None
    try:
        if args.scheduler:
            from distributed import Client

            client = Client(args.scheduler)
        table = extract_features(args.cohort, params=args.params, mask_column=args.mask_column,
                                 image_column=args.image_column, labels=args.labels, jobs=args.jobs,
                                 executor=client, out=args.out, progress=not args.quiet,
                                 resample_masks=args.resample_masks, convention=args.convention)
    except RadiobioError as exc:
        return fail("extract", exc)
    finally:
        if client is not None:
            client.close()
    return report_failures("extract", table, args.out)
