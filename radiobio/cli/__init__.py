"""``radiobio <stage>``: one subcommand per pipeline stage, named as the API functions.

Each stage lives in its own module exposing ``register(subparsers)``; modules are imported only to build the parser
and each defers heavy imports (TensorFlow, PyRadiomics) to the moment its command runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: Subcommand modules, in the order ``--help`` lists them.
STAGES = ("extract", "train", "segment", "models", "evaluate", "biomarkers", "survival", "signature", "report", "demo")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``radiobio`` argument parser from every available stage module."""
    from radiobio import __version__

    parser = argparse.ArgumentParser(prog="radiobio", description="Imaging biomarkers from CT and MRI cohorts.")
    parser.add_argument("--version", action="version", version=f"radiobio {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="STAGE")
    for stage in STAGES:
        try:
            module = importlib.import_module(f"radiobio.cli.{stage}")
        except ModuleNotFoundError as exc:
            if exc.name == f"radiobio.cli.{stage}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``radiobio`` console script; returns the exit code (0 ok, 1 some case failed, 2 usage)."""
    # TensorFlow's C++ start-up chatter (oneDNN, CPU features) hides the command's own output; errors still show
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
