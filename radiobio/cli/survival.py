"""``radiobio survival``: Cox proportional-hazards model (and optional Kaplan-Meier curves) of a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLE = """example:
  radiobio survival clinical.csv --duration os_days --event os_event --covariates age smi_cm2_m2 sex -o cox.csv
  radiobio survival biomarkers.parquet --duration os_days --event os_event --covariates sarcopenia age \\
      --km sarcopenia --plots -o results/cox.csv

writes OUT (hazard ratios: covariate, hr, hr_lower_95, hr_upper_95, p), OUT_ph_test.csv (proportional-hazards
test), with --km OUT_km_medians.csv, and with --plots OUT_forest.png (and OUT_km.png).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``survival`` subcommand."""
    parser = subparsers.add_parser("survival", help="Cox model and Kaplan-Meier curves of a table",
                                   description="Fit a Cox proportional-hazards model (lifelines) to a clinical / "
                                               "biomarker table; optionally Kaplan-Meier curves by group.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="table with one row per patient (.csv, .tsv, .parquet)")
    parser.add_argument("--duration", required=True, help="follow-up time column (any unit, e.g. days)")
    parser.add_argument("--event", required=True, help="event column: 1 = event, 0 = censored")
    parser.add_argument("--covariates", nargs="+", required=True, help="covariate columns of the Cox model")
    parser.add_argument("--strata", nargs="+", default=None, help="columns with separate baseline hazards")
    parser.add_argument("--penalizer", type=float, default=0.0, help="ridge penalty of the Cox model [0]")
    parser.add_argument("--km", default=None, metavar="GROUP", help="also Kaplan-Meier curves and log-rank by GROUP")
    parser.add_argument("--plots", action="store_true", help="write the forest plot (and KM curves) as PNG")
    parser.add_argument("-o", "--out", required=True, help="output CSV of hazard ratios")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Fit and write the results; exit code 2 when the table cannot be modelled as given."""
    from radiobio.errors import RadiobioError
    from radiobio.outcome.survival import cox, kaplan_meier
    from radiobio.outcome.validation import read_table

    out = Path(args.out)
    stem = out.with_suffix("")
    try:
        table = read_table(args.table)
        result = cox(table, args.duration, args.event, args.covariates, strata=args.strata,
                     penalizer=args.penalizer)
        km = kaplan_meier(table, args.duration, args.event, group=args.km) if args.km else None
    except RadiobioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(out, index=False)
    result.ph_test.to_csv(f"{stem}_ph_test.csv", index=False)
    print(f"Cox model: {result.n} patients, {result.events} events, C-index {result.concordance:.3f}")
    print(result.table[["covariate", "hr", "hr_lower_95", "hr_upper_95", "p"]].to_string(index=False))
    if result.ph_violations:
        print(f"proportional-hazards assumption doubtful (p < 0.05) for: {', '.join(result.ph_violations)}")
    if km is not None:
        km.medians.to_csv(f"{stem}_km_medians.csv", index=False)
        print(km.medians.to_string(index=False))
        if km.logrank is not None:
            print(f"log-rank p = {km.logrank['p'].iloc[0]:.4g}")
    if args.plots:
        from radiobio.outcome.plots import forest_plot, km_plot

        forest_plot(result, path=f"{stem}_forest.png")
        if km is not None:
            km_plot(km, path=f"{stem}_km.png")
    print(f"written: {out}")
    return 0
