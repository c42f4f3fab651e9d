"""``radiobio signature``: nested, patient-grouped cross-validation of a radiomics / biomarker signature."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

EXAMPLE = """example:
  radiobio signature features.parquet --duration os_days --event os_event --features 'original_*' \\
      --groups patient_id --batch site -o signature/
  radiobio signature features.csv --target response --model logistic --features 'original_*' age \\
      --robust icc.csv --outer 5 --repeats 3 -o signature_response/

writes OUT_DIR/summary.csv (metric, mean, lower_95, upper_95), folds.csv, selected.csv, predictions.csv,
final_model.csv (coefficients per SD of each feature, model refitted on all data) and, for a binary endpoint,
roc.png and calibration.png. Rows with a filled 'error' column (failed extractions) are left out.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``signature`` subcommand."""
    parser = subparsers.add_parser("signature", help="nested cross-validation of a feature signature",
                                   description="Build and validate a signature with nested, patient-grouped "
                                               "cross-validation: imputation, scaling, ComBat, filters, selection "
                                               "and model are refitted inside every fold.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="feature table with outcome columns (.csv, .tsv, .parquet)")
    endpoint = parser.add_argument_group("endpoint (survival: --duration and --event; binary: --target)")
    endpoint.add_argument("--duration", default=None, help="follow-up time column (any unit)")
    endpoint.add_argument("--event", default=None, help="event column: 1 = event, 0 = censored")
    endpoint.add_argument("--target", default=None, help="binary endpoint column (0/1)")
    parser.add_argument("--features", nargs="+", default=None,
                        help="feature columns or glob patterns ['*': every numeric column but the outcome, group "
                             "and batch columns]")
    parser.add_argument("--model", default=None, help="cox (survival), logistic or random_forest (binary)")
    parser.add_argument("--groups", default=None, help="patient column: all rows of a patient stay in one fold")
    parser.add_argument("--batch", default=None, help="site / scanner column harmonised with ComBat in each fold")
    parser.add_argument("--robust", default=None, metavar="CSV",
                        help="ICC table (radiobio.features.robustness) or a CSV with a 'feature' column to keep")
    parser.add_argument("--icc-threshold", type=float, default=0.9, help="ICC a robust feature reaches [0.9]")
    parser.add_argument("--outer", type=int, default=5, help="outer folds [5]")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the outer split [3]")
    parser.add_argument("--inner", type=int, default=3, help="inner folds of the hyper-parameter search [3]")
    parser.add_argument("--max-features", type=int, default=20, help="most features the selection keeps [20]")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the splits [0]")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.set_defaults(run=run)


def select_columns(table, patterns: list[str] | None, exclude: set[str]) -> list[str]:  # noqa: ANN001
    """Numeric columns matching any of ``patterns`` (names or globs), minus ``exclude`` and bookkeeping columns."""
    import pandas as pd

    bookkeeping = {"case_id", "label", "error", "image", "mask"}
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and c not in exclude
               and c not in bookkeeping and not str(c).startswith(("diagnostics_", "mask_"))]
    if not patterns:
        return numeric
    chosen = [c for c in numeric if any(c == p or fnmatch.fnmatchcase(str(c), p) for p in patterns)]
    return chosen


def run(args: argparse.Namespace) -> int:
    """Run the nested cross-validation and write its tables; exit code 2 on unusable input."""
    from radiobio.errors import OutcomeError, RadiobioError
    from radiobio.outcome.signature import nested_cv
    from radiobio.outcome.validation import drop_failed_rows, read_table

    out = Path(args.out)
    try:
        table, dropped = drop_failed_rows(read_table(args.table))
        if dropped:
            print(f"left out {dropped} row(s) with a filled 'error' column", file=sys.stderr)
        exclude = {c for c in (args.duration, args.event, args.target, args.groups, args.batch) if c}
        features = select_columns(table, args.features, exclude)
        if not features:
            raise OutcomeError(f"no numeric feature column matches {args.features}; check --features")
        robust = _robust_list(args.robust, args.icc_threshold) if args.robust else None
        model = args.model or ("cox" if args.target is None else "logistic")
        result = nested_cv(table, features, duration=args.duration, event=args.event, target=args.target,
                           model=model, outer=args.outer, repeats=args.repeats, inner=args.inner,
                           groups=args.groups, batch=args.batch, robustness=robust, max_features=args.max_features,
                           random_state=args.seed)
    except RadiobioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    result.summary.to_csv(out / "summary.csv", index=False)
    result.folds.to_csv(out / "folds.csv", index=False)
    result.selected.to_csv(out / "selected.csv", index=False)
    result.predictions.to_csv(out / "predictions.csv", index=False)
    coefficients = _final_coefficients(result)
    if coefficients is not None:
        coefficients.to_csv(out / "final_model.csv", index=False)
    if result.endpoint == "binary":
        from radiobio.outcome.plots import calibration_plot, roc_plot

        first = result.predictions[result.predictions["repeat"] == 0]
        roc_plot(first["truth"], first["prediction"], path=out / "roc.png", label="out-of-fold")
        calibration_plot(first["truth"], first["prediction"], path=out / "calibration.png")
    print(f"{len(features)} features, {len(table)} rows, {len(result.folds)} outer folds")
    print(result.summary.to_string(index=False))
    print(f"final model features: {', '.join(result.final_features) or 'none'}")
    print(f"written: {out}/")
    return 0


def _robust_list(path: str, threshold: float) -> list[str]:
    from radiobio.errors import OutcomeError
    from radiobio.features.robustness import robust_features
    from radiobio.outcome.validation import read_table

    table = read_table(path)
    if "feature" not in table.columns:
        raise OutcomeError(f"robust-feature table {path!r} needs a 'feature' column")
    if any(c.startswith("icc_") for c in table.columns):
        return robust_features(table, threshold=threshold)
    return table["feature"].astype(str).tolist()


def _final_coefficients(result):  # noqa: ANN001, ANN202 - SignatureResult -> DataFrame | None
    import numpy as np
    import pandas as pd

    model = result.final_pipeline[-1] if result.final_model is not None else None
    coef = getattr(model, "coef_", None)
    if coef is None:
        return None
    names = result.final_features
    return pd.DataFrame({"feature": names, "coef_per_sd": np.ravel(coef)[: len(names)]})
