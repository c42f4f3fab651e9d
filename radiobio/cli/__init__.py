"""``radiobio <stage>``: one subcommand per pipeline stage.

The subcommands are named for the task, not for the Python function behind them: ``scan`` runs
``radiobio.scan_dicom``, ``extract`` runs
``radiobio.features.extract_features``, ``ibsi-check`` ``radiobio.features.conformance.ibsi_check``,
``train`` ``radiobio.segmentation.train``, ``segment``
``radiobio.segmentation.segment``, ``models`` ``radiobio.segmentation.list_bundles``, ``evaluate``
``radiobio.segmentation.evaluate``, ``stress-test`` ``radiobio.segmentation.stress.stress_test``, ``calibrate-qc``
``radiobio.segmentation.quality.calibrate_quality``,
``biomarkers <name>`` the biomarker functions (``nodules`` ->
``nodule_volumetry``, ``cardiac`` -> ``cardiac_function``, ``hippocampus`` -> ``hippocampal_volume``, ...),
``survival`` ``radiobio.outcome.cox`` and ``kaplan_meier``, ``signature`` ``radiobio.outcome.nested_cv``,
``report`` ``radiobio.report.write_report`` (and ``write_results_qc`` for ``--qc``) and ``demo``
``radiobio.demo.run_demo``.

Each stage lives in its own module ``radiobio.cli.<stage>`` exposing ``register(subparsers)``; modules are imported
only to build the parser and each defers heavy imports (TensorFlow, PyRadiomics) to the moment its command runs.
TensorFlow, when a command imports it, starts quietly (:func:`radiobio.quiet.quiet_tensorflow`).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings

from radiobio.quiet import quiet_tensorflow

#: Subcommand modules, in the order ``--help`` lists them (module ``ibsi_check`` is the command ``ibsi-check``).
STAGES = ("scan", "extract", "ibsi_check", "train", "segment", "models", "evaluate", "stress_test", "calibrate_qc",
          "biomarkers", "survival", "signature", "report", "demo")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``radiobio`` argument parser from every available stage module."""
    from radiobio import __version__

    parser = argparse.ArgumentParser(prog="radiobio", description="Imaging biomarkers from CT and MRI cohorts.")
    parser.add_argument("--version", action="version", version=f"radiobio {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="STAGE")
    for stage in STAGES:
        module = importlib.import_module(f"radiobio.cli.{stage}")  # a missing stage module is an error
        module.register(subparsers)
    return parser


#: A value made of numbers and commas that starts with a minus sign, e.g. ``-29,150`` or ``-1000,-200``.
NEGATIVE_LIST = re.compile(r"^-\d[\d.]*(,-?\d[\d.]*)+$")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``radiobio`` console script; returns the exit code (0 ok, 1 some case failed, 2 usage)."""
    # TensorFlow's start-up chatter (absl, cudart, CPU features, cuInit) would hide the command's own output
    quiet_tensorflow()
    warnings.formatwarning = _console_warning
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(join_negative_values(argv))
    args.argv = argv  # what was typed, for the records that name the command (a model card's training command)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


def _console_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     line: str | None = None) -> str:
    """Warnings on the console as ``warning: <message>`` (no file name or source line of radiobio's code)."""
    return f"warning: {message}\n"


def join_negative_values(argv: list[str]) -> list[str]:
    """``--muscle-hu -29,150`` → ``--muscle-hu=-29,150``: argparse reads a value that starts with a minus sign and
    is not a plain number as an option; a range of negative numbers is never an option name, so join it."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and NEGATIVE_LIST.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
