"""``radiobio segment COHORT -m MODEL_DIR -o OUT_DIR``: segment every case of a cohort with a model bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("segment", help="segment a cohort with a model bundle",
                                   description="Segment every image of a cohort with a model bundle; masks are "
                                               "written to OUT_DIR/<case_id>.nii.gz on each image's grid and the "
                                               "cohort with the new mask column to OUT_DIR/cohort.csv.",
                                   epilog="example:\n  radiobio segment cohort.csv -m models/hippocampus-3d -o masks/ "
                                          "-j 2\n",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="cohort manifest (CSV or Parquet) with case_id and image columns")
    parser.add_argument("-m", "--model", required=True,
                        help="model bundle folder (model.keras + model_card.json), or the name of one that "
                             "radiobio models lists")
    parser.add_argument("-o", "--out", required=True, help="folder for the masks and the output cohort.csv")
    parser.add_argument("--mask-column", default="mask", help="name of the new mask column (default: mask)")
    parser.add_argument("--image-column", default="image", help="column holding image paths (default: image)")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="worker processes (default: this process, the network uses every core)")
    parser.add_argument("--overwrite", action="store_true", help="recompute masks that already exist")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiobio.errors import RadiobioError
    from radiobio.segmentation.inference import segment

    try:
        table = segment(args.cohort, args.model, args.out, mask_column=args.mask_column, jobs=args.jobs,
                        image_column=args.image_column, progress=not args.quiet, overwrite=args.overwrite)
    except RadiobioError as exc:
        print(f"radiobio segment: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    manifest = Path(args.out) / "cohort.csv"
    table.to_csv(manifest, index=False)
    failed = table[table["error"].fillna("") != ""]
    for _, row in failed.iterrows():
        print(f"{row['case_id']}: {row['error']}", file=sys.stderr)
    print(f"{len(table) - len(failed)} of {len(table)} cases segmented; cohort written to {manifest}")
    if len(failed):
        print(f"{len(failed)} case(s) failed", file=sys.stderr)
        return 1
    return 0
