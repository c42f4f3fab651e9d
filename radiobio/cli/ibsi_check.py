"""``radiobio ibsi-check``: the IBSI 1 digital phantom through the IBSI convention, compared with IBSI's values."""

from __future__ import annotations

import argparse

from radiobio.cli._common import fail

EXAMPLE = """examples:
  radiobio ibsi-check
  radiobio ibsi-check -o ibsi_check.csv

runs the IBSI 1 digital phantom shipped with radiobio (CC BY 4.0, Zwanenburg et al., Radiology 2020) through
extract_features(..., convention="ibsi") and compares every feature with the IBSI consensus reference value.
exit code: 0 every reference feature matched, 1 some did not (listed), 2 usage error.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ibsi-check`` subcommand."""
    parser = subparsers.add_parser("ibsi-check", help="check IBSI conformance on the IBSI 1 digital phantom",
                                   description="Extract the IBSI 1 digital phantom under the IBSI convention and "
                                               "compare every feature with the IBSI reference values.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", default=None, help="write the comparison, one row per feature (.csv)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the check; print the counts and every feature that does not match."""
    from radiobio.errors import RadiobioError
    from radiobio.features.conformance import ibsi_check, summarise

    if args.out is not None and not str(args.out).lower().endswith(".csv"):
        return fail("ibsi-check", RadiobioError(f"--out {args.out!r} must end in .csv"))
    try:
        comparison = ibsi_check(args.out)
    except RadiobioError as exc:
        return fail("ibsi-check", exc)
    counts = summarise(comparison)
    print(f"IBSI 1 digital phantom: {counts['matched']} of {counts['reference']} reference features matched "
          f"({counts['covered']} computed)")
    missed = comparison[comparison["reference"].notna() & ~comparison["matched"]]
    for row in missed.itertuples():
        value = "not computed" if row.value != row.value else f"{row.value:.6g}"
        print(f"  {row.tag}: {value}, reference {row.reference:g} (allowed deviation {row.allowed:.3g})")
    if args.out is not None:
        print(f"comparison written to {args.out}")
    return 0 if missed.empty else 1
