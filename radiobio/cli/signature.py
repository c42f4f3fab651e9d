"""``radiobio signature``: nested, patient-grouped cross-validation of a radiomics / biomarker signature."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from radiobio.outcome.signature import SignatureResult

EXAMPLE = """example:
  radiobio signature wide_features.parquet --duration os_days --event os_event --features 'anterior__original_*' \\
      --batch site -o results/signature
  radiobio signature features.parquet --duration os_days --event os_event --features 'original_*' \\
      --patient-column case_id -o results/signature
  radiobio signature features.csv --target response --model logistic --features 'original_*' age \\
      --robust icc.csv --outer 5 --repeats 3 -j 4 -o results/signature_response

A feature table with one row per case x label repeats case_id: give --patient-column case_id (all rows of a
patient stay in one fold), or make one row per patient first with radiobio.features.to_wide.

writes into DIR: summary.csv (metric, mean, lower_95, upper_95, n_folds, horizon: the time of the Brier score),
folds.csv, selected.csv, predictions.csv (out-of-fold predictions keyed by the patient / case id, with the duration
and event or the target), final_model.csv (coefficients per SD of each feature, model refitted on all data) and
risk_groups.png (survival: KM curves of out-of-fold high vs low risk) or roc.png and calibration.png (binary).
Rows with a filled 'error' column (failed extractions) are left out. 95% intervals of the C-index, AUC and Brier
score are corrected repeated-CV t intervals on the logit scale, inside [0, 1].
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``signature`` subcommand."""
    parser = subparsers.add_parser("signature", help="nested cross-validation of a feature signature",
                                   description="Build and validate a signature with nested, patient-grouped "
                                               "cross-validation: imputation, scaling, ComBat, filters, selection "
                                               "and model are refitted inside every fold.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="feature table with outcome columns (.csv, .tsv, .txt, .parquet)")
    endpoint = parser.add_argument_group("endpoint (survival: --duration and --event; binary: --target)")
    endpoint.add_argument("--duration", default=None, help="follow-up time column (any unit)")
    endpoint.add_argument("--event", default=None, help="event column: 1 = event, 0 = censored")
    endpoint.add_argument("--event-value", default=None, metavar="V",
                          help="the value of the event column that means an event (e.g. 2 for R's 1/2 coding)")
    endpoint.add_argument("--target", default=None, help="binary endpoint column (0/1)")
    parser.add_argument("--features", nargs="+", default=None,
                        help="feature columns or glob patterns ['*': every numeric column but the outcome, patient "
                             "and batch columns]")
    parser.add_argument("--model", default=None, help="cox (survival), logistic or random_forest (binary)")
    parser.add_argument("--patient-column", default=None, metavar="COLUMN",
                        help="patient column: all rows of a patient stay in one fold (e.g. case_id for a table "
                             "with one row per case x label)")
    parser.add_argument("--batch", default=None, metavar="COLUMN",
                        help="site / scanner column harmonised with ComBat in each fold")
    parser.add_argument("--robust", default=None, metavar="TABLE",
                        help="ICC table (radiobio.features.robustness_table) or a table with a 'feature' column "
                             "to keep")
    parser.add_argument("--icc-threshold", type=float, default=0.9, help="ICC a robust feature reaches [0.9]")
    parser.add_argument("--outer", type=int, default=5, help="outer folds [5]")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the outer split [3]")
    parser.add_argument("--inner", type=int, default=3, help="inner folds of the hyper-parameter search [3]")
    parser.add_argument("--max-features", type=int, default=20, help="most features the selection keeps [20]")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the splits [0]")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="processes of the inner grid search (-1 = all cores) [1]")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line per repeat")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder, e.g. results/signature")
    parser.set_defaults(run=run)


def select_columns(table: pd.DataFrame, patterns: list[str] | None, exclude: set[str]) -> list[str]:
    """Numeric columns matching any of ``patterns`` (names or globs), minus ``exclude`` and bookkeeping columns."""
    import pandas as pd

    bookkeeping = {"case_id", "label", "error", "image", "mask"}
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and c not in exclude
               and c not in bookkeeping and not str(c).startswith(("diagnostics_", "mask_"))]
    if not patterns:
        return numeric
    return [c for c in numeric if any(c == p or fnmatch.fnmatchcase(str(c), p) for p in patterns)]


def run(args: argparse.Namespace) -> int:
    """Run the nested cross-validation and write its tables; exit code 2 on unusable arguments or input."""
    from radiobio.errors import OutcomeError, RadiobioError, describe

    try:
        out = _out_dir(args.out)
        from radiobio.outcome.signature import nested_cv
        from radiobio.outcome.validation import drop_failed_rows
        from radiobio.tables import read_table

        table, dropped = drop_failed_rows(read_table(args.table))
        if dropped:
            print(f"radiobio signature: left out {dropped} row(s) with a filled 'error' column", file=sys.stderr)
        exclude = {c for c in (args.duration, args.event, args.target, args.patient_column, args.batch) if c}
        features = select_columns(table, args.features, exclude)
        if not features:
            raise OutcomeError(f"no numeric feature column matches {args.features}; check --features")
        robust = _robust_list(args.robust, args.icc_threshold) if args.robust else None
        model = args.model or ("cox" if args.target is None else "logistic")
        if not args.quiet:
            print(f"radiobio signature: {len(table)} rows, {len(features)} candidate features, {args.repeats} x "
                  f"{args.outer} outer folds, {args.inner} inner folds", file=sys.stderr)
        result = nested_cv(table, features=features, duration_column=args.duration, event_column=args.event,
                           target_column=args.target, event_value=args.event_value, model=model, outer=args.outer,
                           repeats=args.repeats, inner=args.inner, patient_column=args.patient_column,
                           batch_column=args.batch, robustness=robust, max_features=args.max_features,
                           seed=args.seed, jobs=args.jobs, progress=False if args.quiet else _status)
        written = write_signature(result, out, settings=vars(args))
    except RadiobioError as exc:
        print(f"radiobio signature: {describe(exc)}", file=sys.stderr)
        return 2
    result.print_summary()
    print(f"written: {out}/ ({', '.join(sorted(written))})")
    return 0


def _status(text: str) -> None:
    print(f"radiobio signature: {text}", file=sys.stderr, flush=True)


def write_signature(result: SignatureResult, out: Path, *, settings: dict[str, Any]) -> dict[str, Path]:
    """Write the tables and figures of a signature into ``out``; every table with provenance
    ``{"stage": "signature", ...}``. Returns {file name: path}."""
    from radiobio import __version__
    from radiobio.tables import write_table

    provenance = {"stage": "signature", "endpoint": result.endpoint, "duration_column": result.duration_column,
                  "event_column": result.event_column, "target_column": result.target_column,
                  "patient_column": settings.get("patient_column"), "batch_column": result.batch_column,
                  "features": len(result.features), "outer": settings.get("outer"),
                  "repeats": settings.get("repeats"), "inner": settings.get("inner"), "seed": settings.get("seed"),
                  "horizon": result.horizon, "table": settings.get("table"), "radiobio": __version__}
    out.mkdir(parents=True, exist_ok=True)
    tables = {"summary.csv": result.summary, "folds.csv": result.folds, "selected.csv": result.selected,
              "predictions.csv": result.predictions}
    coefficients = _final_coefficients(result)
    if coefficients is not None:
        tables["final_model.csv"] = coefficients
    written = {name: write_table(frame, out / name, {**provenance, "table": name.removesuffix(".csv")})
               for name, frame in tables.items()}
    if result.endpoint == "survival":
        written["risk_groups.png"] = out / "risk_groups.png"
        result.plot(path=written["risk_groups.png"])
    else:
        from radiobio.outcome.plots import calibration_plot

        first = result.predictions[result.predictions["repeat"] == 0]
        written["roc.png"] = out / "roc.png"
        result.plot(path=written["roc.png"])
        written["calibration.png"] = out / "calibration.png"
        calibration_plot(first[result.target_column], probability=first["prediction"], path=written["calibration.png"])
    return written


def _out_dir(value: str) -> Path:
    from radiobio.errors import SettingsError

    out = Path(value)
    if out.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq", ".png", ".json", ".txt"):
        raise SettingsError(f"-o {value!r} looks like a file; -o is the output folder (summary.csv, folds.csv ...), "
                            f"e.g. -o results/signature")
    if out.exists() and not out.is_dir():
        raise SettingsError(f"-o {value!r} is an existing file; give a folder, e.g. results/signature")
    return out


def _robust_list(path: str, threshold: float) -> list[str]:
    from radiobio.errors import OutcomeError
    from radiobio.features.robustness import robust_features
    from radiobio.tables import read_table

    table = read_table(path, what="robust-feature table")
    if "feature" not in table.columns:
        raise OutcomeError(f"robust-feature table {path!r} needs a 'feature' column")
    if any(str(c).startswith("icc_") for c in table.columns):
        return robust_features(table, threshold=threshold)
    return table["feature"].astype(str).tolist()


def _final_coefficients(result: SignatureResult) -> pd.DataFrame | None:
    import numpy as np
    import pandas as pd

    model = result.final_pipeline[-1] if result.final_model is not None else None
    coef = getattr(model, "coef_", None)
    if coef is None:
        return None
    names = result.final_features
    return pd.DataFrame({"feature": names, "coef_per_sd": np.ravel(coef)[: len(names)]})
