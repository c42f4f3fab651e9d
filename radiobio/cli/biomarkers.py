"""``radiobio biomarkers KIND COHORT -o OUT.parquet|.csv``: one imaging-biomarker table per run."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from radiobio.cli._common import add_jobs, add_labels, add_quiet, add_resample_masks, fail, report_failures

#: KIND -> (function of radiobio.biomarkers, one-line help).
KINDS = {
    "volumetry": ("volumetry", "volume (mm³, mL) and intensity statistics per label"),
    "sarcopenia": ("sarcopenia", "L3 body composition: SMA, SMI, muscle HU, IMAT/VAT/SAT, sarcopenia cut-offs"),
    "nodules": ("nodule_volumetry", "lung nodule volume, effective diameter and category"),
    "nodule-growth": ("nodule_growth", "nodule growth between two scans: growth %, VDT and category"),
    "lung-involvement": ("lung_involvement", "lesion volume as % of lung volume, per lung and lobe"),
    "cardiac": ("cardiac_function", "EDV, ESV, SV, EF and LV mass from ED and ES masks"),
    "hippocampus": ("hippocampal_volume", "hippocampal volume per label, optionally normalised by ICV"),
}
EXAMPLES = """examples:
  radiobio biomarkers volumetry cohort.csv -o results/volumes.parquet --labels liver=1,spleen=2
  radiobio biomarkers sarcopenia cohort.csv -o results/biomarkers.csv --vertebra-column mask_vertebrae
  radiobio biomarkers sarcopenia seg/cohort.csv -o l3.csv --muscle-column mask --labels muscle=1,sat=2,vat=3,imat=4
  radiobio biomarkers sarcopenia cohort.csv -o l3.csv --slice-column l3_slice --muscle-hu=-29,150
  radiobio biomarkers nodule-growth cohort.csv -o growth.csv --days-column interval_days --scheme nelson
  radiobio biomarkers lung-involvement cohort.csv -o extent.csv --regions totalseg
  radiobio biomarkers cardiac cohort.csv -o function.csv --ed-column mask_ed --es-column mask_es
  radiobio biomarkers hippocampus cohort.csv -o hippocampus.csv --icv-column icv_ml
"""


def register(subparsers: Any) -> None:
    """Add ``radiobio biomarkers`` and its KIND subcommands."""
    parser = subparsers.add_parser(
        "biomarkers", help="imaging biomarkers from masks (volumes, sarcopenia, nodules, cardiac, hippocampus)",
        description="Compute one kind of imaging biomarker for every case of a cohort and write a table.\n"
                    "Exit code 0: all cases ok; 1: some case failed (its row holds the error); 2: usage error.\n"
                    "HU ranges start with a minus sign: write them with '=' (--muscle-hu=-29,150).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, (_, help_text) in KINDS.items():
        sub = kinds.add_parser(kind, help=help_text.replace("%", "%%"), description=help_text)
        sub.add_argument("cohort", help="cohort manifest (CSV or Parquet: case_id, image, mask columns, clinical)")
        sub.add_argument("-o", "--out", required=True, help="result table, .parquet, .csv or .tsv")
        add_jobs(sub)
        add_quiet(sub)
        add_resample_masks(sub)
        sub.add_argument("--no-carry", action="store_true", help="do not copy clinical columns into the result")
        OPTIONS[kind](sub)
        sub.set_defaults(run=run)


def _volumetry(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask-column", default="mask")
    add_labels(p, "labels to measure (default: all)")
    p.add_argument("--image-column", default="image")
    p.add_argument("--no-intensity", action="store_true", help="skip intensity statistics (no image read)")


def _sarcopenia(p: argparse.ArgumentParser) -> None:
    p.add_argument("--muscle-column", default="mask_muscle")
    p.add_argument("--slice-column", help="column holding the index of the slice to measure (numpy axis 0)")
    p.add_argument("--vertebra-column", help="column holding a vertebra label map (slice through its centroid)")
    p.add_argument("--vertebra-label", type=int, default=29,
                   help="vertebra label in that map, TotalSegmentator numbering (default 29 = L3)")
    p.add_argument("--level", help="name of the vertebral level measured (default: from --vertebra-label); the "
                                   "shipped cut-offs are applied at L3 only")
    p.add_argument("--cutoffs", default="prado2008",
                   help="prado2008, martin2013, derstine2018 or a CSV (measure, sex, threshold, bmi_min, bmi_max)")
    for tissue in ("sat", "vat", "imat"):
        p.add_argument(f"--{tissue}-column", help=f"{tissue.upper()} mask column (default mask_{tissue} if present; "
                                                  f"else HU ranges)")
    add_labels(p, "label of each tissue in its mask; tissues without a column of their own come from the muscle "
                  "column's labels (e.g. muscle=1,sat=2,vat=3,imat=4)")
    p.add_argument("--muscle-hu", type=hu_arg, default=(-29.0, 150.0),
                   help="muscle HU range, written with '=' because it starts with a minus: --muscle-hu=-29,150; "
                        "or none")
    for column, default in (("sex", "sex"), ("height", "height_m"), ("weight", "weight_kg")):
        p.add_argument(f"--{column}-column", default=default)


def _nodules(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask-column", default="mask")
    add_labels(p, "nodule labels (default: all)")
    p.add_argument("--scheme", default="eups2017", help="eups2017 or nelson")
    p.add_argument("--new-nodules", action="store_true", help="use the EUPS thresholds for new nodules")


def _nodule_growth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline-column", default="mask_baseline")
    p.add_argument("--followup-column", default="mask_followup")
    p.add_argument("--days-column", default="interval_days")
    p.add_argument("--label", type=int, help="nodule label (default: every non-zero voxel)")
    p.add_argument("--scheme", default="eups2017", help="eups2017 or nelson")


def _lung_involvement(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lesion-column", default="mask_lesion")
    p.add_argument("--lung-column", default="mask_lung")
    p.add_argument("--regions", type=regions_arg,
                   help="'totalseg' (lobe labels 10-14) or name=label[+label...], e.g. right=1,left=2")
    p.add_argument("--lesion-label", type=int)


def _cardiac(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ed-column", default="mask_ed")
    p.add_argument("--es-column", default="mask_es")
    add_labels(p, "structure labels (default lv=1,myo=2,rv=3)", default={"lv": 1, "myo": 2, "rv": 3})
    p.add_argument("--myocardium-density", type=float, default=1.05, help="g/mL (default 1.05)")


def _hippocampus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask-column", default="mask")
    add_labels(p, "region labels (default anterior=1,posterior=2)", default={"anterior": 1, "posterior": 2})
    p.add_argument("--icv-column", help="clinical column with the intracranial volume in mL")
    p.add_argument("--icv-mask-column", help="mask column whose non-zero voxels are the intracranial volume")
    p.add_argument("--no-total", action="store_true", help="no 'total' row")


OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "volumetry": _volumetry, "sarcopenia": _sarcopenia, "nodules": _nodules, "nodule-growth": _nodule_growth,
    "lung-involvement": _lung_involvement, "cardiac": _cardiac, "hippocampus": _hippocampus}


def regions_arg(text: str) -> str | dict[str, list[int]]:
    """Parse ``totalseg`` or ``right=12+13+14,left=10+11``."""
    if text.strip().lower() == "totalseg":
        return "totalseg"
    try:
        return {name.strip(): [int(v) for v in value.split("+")]
                for name, value in (p.split("=", 1) for p in text.split(",") if p.strip())}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"regions must look like right=1,left=2 or totalseg, not {text!r}") from exc


def hu_arg(text: str) -> tuple[float, float] | None:
    """Parse ``-29,150`` into ``(-29.0, 150.0)``; ``none`` into ``None``."""
    if text.strip().lower() == "none":
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"HU range must look like -29,150 or none, not {text!r}") from exc
    return low, high


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from radiobio.tables import read_table

    kind = args.kind
    common = {"carry": not args.no_carry, "jobs": args.jobs, "progress": not args.quiet,
              "resample_masks": args.resample_masks}
    if kind == "volumetry":
        return {**common, "mask_column": args.mask_column, "labels": args.labels,
                "image_column": None if args.no_intensity else args.image_column}
    if kind == "sarcopenia":
        cutoffs = args.cutoffs
        if cutoffs.lower().endswith((".csv", ".tsv", ".parquet")):
            cutoffs = read_table(cutoffs, what="cut-off table")
        return {**common, "muscle_column": args.muscle_column, "slice_column": args.slice_column,
                "vertebra_column": args.vertebra_column, "vertebra_label": args.vertebra_label,
                "level": args.level, "cutoffs": cutoffs,
                "sat_column": args.sat_column, "vat_column": args.vat_column, "imat_column": args.imat_column,
                "labels": args.labels, "hu": {"muscle": args.muscle_hu}, "sex_column": args.sex_column,
                "height_column": args.height_column, "weight_column": args.weight_column}
    if kind == "nodules":
        return {**common, "mask_column": args.mask_column, "labels": args.labels, "scheme": args.scheme,
                "new_nodules": args.new_nodules}
    if kind == "nodule-growth":
        return {**common, "baseline_column": args.baseline_column, "followup_column": args.followup_column,
                "days_column": args.days_column, "label": args.label, "scheme": args.scheme}
    if kind == "lung-involvement":
        return {**common, "lesion_column": args.lesion_column, "lung_column": args.lung_column,
                "regions": args.regions, "lesion_label": args.lesion_label}
    if kind == "cardiac":
        return {**common, "ed_column": args.ed_column, "es_column": args.es_column, "labels": args.labels,
                "myocardium_density_g_ml": args.myocardium_density}
    return {**common, "mask_column": args.mask_column, "labels": args.labels, "icv_column": args.icv_column,
            "icv_mask_column": args.icv_mask_column, "total": not args.no_total}


def run(args: argparse.Namespace) -> int:
    """Compute the table, write it atomically (provenance in Parquet metadata or a CSV sidecar), print ``N cases ok,
    M failed``; exit code 0, 1 or 2."""
    from radiobio import biomarkers
    from radiobio.errors import RadiobioError
    from radiobio.tables import check_table_suffix, write_table

    stage = f"biomarkers {args.kind}"
    try:
        out = check_table_suffix(args.out)
        table = getattr(biomarkers, KINDS[args.kind][0])(args.cohort, **_kwargs(args))
    except RadiobioError as exc:
        return fail(stage, exc)
    write_table(table, out)
    return report_failures(args.kind, table, out)
