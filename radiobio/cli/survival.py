"""``radiobio survival``: Kaplan-Meier curves and a Cox proportional-hazards model of a table, written into the
``survival/`` folder of a results folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLE = """example:
  radiobio survival gbsg2.csv --duration time --event cens --km horTh --time-label days -o results/survival
  radiobio survival biomarkers.parquet --duration os_days --event os_event --covariates sarcopenic age \\
      --km sarcopenic -o results/survival
  radiobio survival lung.csv --duration time --event status --event-value 2 --km age --km-cutoff 65 -o out/survival

writes into DIR (the folder radiobio report reads as RESULTS_DIR/survival):
  with --km (or without --covariates): km.png (curves, numbers at risk, log-rank p), km.csv (the curves),
    km_medians.csv (median survival and 95% CI per group), logrank.csv (two or more groups)
  with --covariates: cox.csv (hazard ratios: covariate, hr, hr_lower_95, hr_upper_95, p), ph_test.csv
    (proportional-hazards test), cox_fit.json (n, events, concordance, ph_violations), forest.png
--km on a numeric column with more than 6 distinct values splits it at its median (or at --km-cutoff) into
'<= m' and '> m'; other groups are its values, numeric ones in numeric order.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``survival`` subcommand."""
    parser = subparsers.add_parser("survival", help="Kaplan-Meier curves and Cox model of a table",
                                   description="Kaplan-Meier curves with a log-rank test and a Cox proportional-"
                                               "hazards model (lifelines) of a clinical / biomarker table.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="table with one row per patient (.csv, .tsv, .txt, .parquet)")
    parser.add_argument("--duration", required=True, help="follow-up time column (any unit, e.g. days)")
    parser.add_argument("--event", required=True, help="event column: 1 = event, 0 = censored (see --event-value)")
    parser.add_argument("--event-value", default=None, metavar="V",
                        help="the value of the event column that means an event, e.g. 2 for R's 1/2 coding "
                             "(every other value is censored)")
    parser.add_argument("--covariates", nargs="+", default=None, help="covariate columns of the Cox model")
    parser.add_argument("--strata", nargs="+", default=None, help="columns with separate baseline hazards (Cox)")
    parser.add_argument("--penalizer", type=float, default=0.0, help="ridge penalty of the Cox model [0]")
    parser.add_argument("--km", default=None, metavar="GROUP",
                        help="Kaplan-Meier curves and log-rank test by GROUP (without --km and --covariates: one "
                             "curve of all patients)")
    parser.add_argument("--km-cutoff", type=float, default=None, metavar="X",
                        help="split a numeric --km column at X instead of its median")
    parser.add_argument("--time-label", default=None, metavar="TEXT",
                        help="time axis label of the KM plot, with its unit (e.g. days) [the duration column]")
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help="output folder, e.g. results/survival")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Fit and write the results; exit code 2 when the arguments or the table cannot be used as given."""
    from radiobio.errors import RadiobioError, SettingsError, describe

    try:
        out = _out_dir(args.out)
        if args.km_cutoff is not None and args.km is None:
            raise SettingsError("--km-cutoff splits the --km column: give --km GROUP too")
        from radiobio.outcome.survival import cox, kaplan_meier
        from radiobio.report.results import write_survival
        from radiobio.tables import read_table

        table = read_table(args.table)
        fit = None
        if args.covariates:
            fit = cox(table, duration_column=args.duration, event_column=args.event, covariates=args.covariates,
                      strata_columns=args.strata, penalizer=args.penalizer, event_value=args.event_value)
        km = None
        if args.km or not args.covariates:
            km = kaplan_meier(table, duration_column=args.duration, event_column=args.event, group_column=args.km,
                              cutoff=args.km_cutoff, event_value=args.event_value)
        written = write_survival(out, km, fit, time_label=args.time_label, subfolder=None)
    except RadiobioError as exc:
        print(f"radiobio survival: {describe(exc)}", file=sys.stderr)
        return 2
    if fit is not None:
        fit.print_summary()
    if km is not None:
        km.print_summary()
    print(f"written: {out}/ ({', '.join(sorted(written))})")
    return 0


def _out_dir(value: str) -> Path:
    """``-o`` is a folder: refuse a table or picture path with a hint."""
    from radiobio.errors import SettingsError

    out = Path(value)
    if out.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq", ".png", ".json", ".txt", ".pdf"):
        hint = out.parent / "survival" if str(out.parent) != "." else Path("results") / "survival"
        raise SettingsError(f"-o {value!r} looks like a file; -o is the output folder (it receives km.png, cox.csv "
                            f"and the rest), e.g. -o {hint}")
    if out.exists() and not out.is_dir():
        raise SettingsError(f"-o {value!r} is an existing file; give a folder, e.g. results/survival")
    return out
