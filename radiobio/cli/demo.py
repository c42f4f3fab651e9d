"""``radiobio demo``: the whole pipeline on the embedded synthetic L3 cohort, with nothing to download."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from radiobio.cli._common import add_jobs, add_quiet, fail
from radiobio.errors import RadiobioError, SettingsError

EXAMPLE = """example:
  radiobio demo                      # writes ./radiobio-demo, replacing an earlier demo output there
  radiobio demo --out /tmp/demo --n-cases 40 -j 2
"""
MARKER = ".radiobio-demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="run the whole pipeline on the embedded synthetic L3 cohort",
        description="Synthetic L3 CT slices -> segmentation with models/l3-muscle-demo -> sarcopenia biomarkers -> "
                    "muscle radiomics -> Kaplan-Meier and Cox -> report.html.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", default="radiobio-demo", help="results folder [radiobio-demo]")
    parser.add_argument("--n-cases", type=int, default=160, help="number of synthetic cases [160]")
    add_jobs(parser, default=-1)
    parser.add_argument("--force", action="store_true", help="replace a non-empty folder not made by the demo")
    add_quiet(parser)
    parser.set_defaults(run=run)


def prepare_output(out: Path, force: bool) -> None:
    """Empty ``out`` if it is the demo's own earlier output (or ``force``); refuse any other non-empty folder."""
    if out.exists() and not out.is_dir():
        raise SettingsError(f"{out} is a file; choose a folder for --out")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists() and not force:
            raise SettingsError(f"{out} is not empty and was not written by radiobio demo; choose another --out "
                                  f"or pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by radiobio demo; the next demo run replaces this folder\n")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where everything is; exit 1 if any case failed."""
    from radiobio.demo import run_demo

    out = Path(args.out).resolve()
    try:
        prepare_output(out, args.force)
        summary = run_demo(out, n_cases=args.n_cases, jobs=args.jobs, progress=not args.quiet)
    except RadiobioError as exc:
        return fail("demo", exc)
    print(f"\n{summary['cases']} synthetic cases, {summary['failed']} failed")
    print(f"muscle segmentation: mean Dice {summary['muscle_dice_mean']:.3f} against the exact phantom masks")
    print(f"Cox: sarcopenia HR {summary['hazard_ratio']:.2f} (95% CI {summary['hr_lower_95']:.2f}-"
          f"{summary['hr_upper_95']:.2f}); simulated truth {summary['true_hazard_ratio']:.1f}")
    for name in ("cohort.csv", "masks", "biomarkers.parquet", "features.parquet", "segmentation_metrics.parquet",
                 "survival", "qc", "report.html"):
        print(f"  {name:30s} {out / name}")
    return 1 if summary["failed"] else 0
