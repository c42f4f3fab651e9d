"""``radiobio scan ROOT -o series.csv``: list every DICOM series, structure set and segmentation under a folder."""

from __future__ import annotations

import argparse

from radiobio.cli._common import add_jobs, add_quiet, fail

EXAMPLE = """examples:
  radiobio scan pacs_export -o series.csv
  radiobio scan pacs_export -o series.csv --modality CT -j 2

writes one row per image series (patient, study and series UIDs, modality, description, instances, slice thickness
and spacing, pixel spacing, kernel, manufacturer and model, acquisition date, contrast agent, KVP) and one row per
RTSTRUCT or SEG with the series it references. Patient names and birth dates are not written. Pick the series of a
cohort from this table: its path column is the image, its series_uid column chooses among series of one folder.
exit code: 0 ok, 2 usage error.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scan`` subcommand."""
    parser = subparsers.add_parser("scan", help="list the DICOM series under a folder (a PACS export)",
                                   description="Scan a DICOM tree (patients, studies, series) into a table of "
                                               "series, structure sets and segmentations.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="folder to scan (every subfolder is searched)")
    parser.add_argument("-o", "--out", required=True, help="series table (.csv, .tsv or .parquet)")
    parser.add_argument("--modality", default=None,
                        help="keep only these modalities, comma-separated (CT,MR); RTSTRUCT and SEG rows that "
                             "reference a kept series stay")
    add_jobs(parser)
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Scan the tree, write the table, print how many series of each modality were found."""
    from radiobio.dicom.scan import scan_dicom
    from radiobio.errors import RadiobioError
    from radiobio.tables import check_table_suffix, write_table

    try:
        out = check_table_suffix(args.out)
        table = scan_dicom(args.root, jobs=args.jobs, progress=not args.quiet)
    except RadiobioError as exc:
        return fail("scan", exc)
    if args.modality:
        wanted = {m.strip().upper() for m in args.modality.split(",") if m.strip()}
        kept = table["modality"].str.upper().isin(wanted)
        references = set(table.loc[kept, "series_uid"])
        if "referenced_series_uid" in table.columns:
            kept |= table["referenced_series_uid"].isin(references)
        table = table[kept].reset_index(drop=True)
    write_table(table, out, table.attrs.get("provenance"))
    counts = table["modality"].fillna("?").value_counts()
    summary = ", ".join(f"{n} {m}" for m, n in counts.items()) or "nothing"
    print(f"scan: {summary} -> {out}")
    return 0
