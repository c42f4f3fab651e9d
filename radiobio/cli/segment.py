"""``radiobio segment COHORT -m MODEL -o RESULTS_DIR``: segment every case of a cohort with a model bundle."""

from __future__ import annotations

import argparse
import sys

from radiobio.cli._common import add_jobs, add_quiet, fail, report_failures

EXAMPLE = """examples:
  radiobio segment cohort.csv -m hippocampus-3d -o results
  radiobio segment cohort.csv -m models/l3-muscle-demo -o results --mask-column mask_tissue -j 2
  radiobio segment cohort.csv -m hippocampus-3d -o results --dicom-out seg

writes RESULTS_DIR/masks/<case>.nii.gz (each on its image's grid, with a <case>.model.json record of the model),
RESULTS_DIR/cohort.csv (the cohort with the mask column; paths relative to RESULTS_DIR, so the next stage reads it
from anywhere: radiobio extract RESULTS_DIR/cohort.csv ...) and RESULTS_DIR/models/<model>/ (its card).
Masks already there are kept when the same model made them; masks of another model stop the run unless --overwrite.
exit code: 0 every case segmented, 1 some case failed (its row holds the error), 2 usage error (nothing run).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``segment`` subcommand."""
    parser = subparsers.add_parser("segment", help="segment a cohort with a model bundle",
                                   description="Segment every image of a cohort with a model bundle into a results "
                                               "folder (masks, cohort.csv, the model's card).",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cohort", help="cohort manifest (CSV or Parquet) with case_id and image columns")
    parser.add_argument("-m", "--model", required=True,
                        help="model bundle folder (model.keras + model_card.json), or the name of one that "
                             "radiobio models lists")
    parser.add_argument("-o", "--out", required=True, help="results folder (masks/, cohort.csv, models/)")
    parser.add_argument("--mask-column", default="mask", help="name of the new mask column [mask]")
    parser.add_argument("--image-column", default="image", help="column holding image paths [image]")
    parser.add_argument("--dicom-out", choices=("seg", "rtstruct"), default=None,
                        help="also write each mask as a DICOM-SEG or RTSTRUCT referencing the case's DICOM series "
                             "(RESULTS_DIR/dicom/<case>.seg.dcm), for review in a viewer or planning system; it keeps "
                             "the series' patient and study identity")
    add_jobs(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="recompute masks that already exist (also those of another model)")
    parser.add_argument("--no-crop", action="store_true",
                        help="run the full sliding window, also outside the body (CT) or non-zero region (MR) that "
                             "inference otherwise keeps to")
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Segment the cohort; print the model's intended use and how many masks were kept from an earlier run."""
    from pathlib import Path

    from radiobio.errors import RadiobioError
    from radiobio.segmentation.bundle import read_bundle

    try:
        bundle = read_bundle(args.model)  # a typo or a bad card fails before TensorFlow loads
        print(f"model: {bundle.name} ({bundle.digest}), {bundle.config.dims}D, labels "
              f"{', '.join(f'{k}={v}' for k, v in bundle.config.labels.items())}")
        print(f"intended use: {bundle.intended_use}")
        if bundle.synthetic_only:
            print(f"warning: {bundle.name} was trained on synthetic data only; its masks on real scans are not "
                  f"measurements", file=sys.stderr)
        from radiobio.segmentation.inference import segment

        table = segment(args.cohort, model=bundle, out_dir=args.out, mask_column=args.mask_column,
                        image_column=args.image_column, jobs=args.jobs, progress=not args.quiet,
                        overwrite=args.overwrite, dicom_out=args.dicom_out, crop=not args.no_crop)
    except RadiobioError as exc:
        return fail("segment", exc)
    reused = table.attrs["provenance"]["reused_masks"]
    if reused:
        print(f"{reused} mask(s) kept from an earlier run of the same model ({bundle.digest}); --overwrite "
              f"recomputes them")
    print_review_summary(table, args.out)
    return report_failures("segment", table, Path(args.out) / "cohort.csv", what="cases segmented")


def print_review_summary(table, out: str, shown: int = 5) -> None:
    """Print how many masks the quality score sends to review first (score >= 0.5), the highest ones with their
    flags, and whether the score is calibrated."""
    from radiobio.segmentation.quality import REVIEW_SCORE

    if "qc_score" not in table.columns:
        return
    scored = table[table["qc_score"].notna()].sort_values("qc_score", ascending=False)
    if not len(scored):
        return
    review = scored[(scored["qc_score"] >= REVIEW_SCORE) | scored["qc_out_of_domain"]]
    print(f"quality: {len(review)} of {len(scored)} mask(s) to review first (qc_score >= {REVIEW_SCORE:g} or out of "
          f"the model's domain); the report lists every mask by qc_score (radiobio report {out})")
    for row in review.head(shown).itertuples(index=False):
        print(f"  {row.case_id}: qc_score {row.qc_score:.2f}" + (f" ({row.qc_flags})" if row.qc_flags else ""))
    notes = {n for n in scored["qc_note"] if n}
    for note in notes:
        print(f"note: {note}")
