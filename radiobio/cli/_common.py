"""What every subcommand shares: the same flags for the same things, one error format, one failure summary.

Flags: ``-o/--out``, ``-j/--jobs`` (1 = this process, -1 = all cores), ``-q/--quiet`` (no progress bar),
``--labels 1,2`` or ``--labels name=1,name=2``, ``--resample-masks``. Errors print as
``radiobio <stage>: <ErrorType>: <message>`` on stderr. Exit codes: 0 every case ok, 1 some case failed (its row
holds the error), 2 usage error (nothing computed).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from radiobio.labels import parse_labels

#: How many failed cases a command lists on the console before pointing to the error column.
MAX_LISTED = 10


def add_jobs(parser: argparse.ArgumentParser, default: int = 1) -> None:
    """``-j/--jobs``: worker processes (1 = this process, -1 = all cores)."""
    parser.add_argument("-j", "--jobs", type=int, default=default,
                        help=f"worker processes: 1 = this process, N = N processes, -1 = all cores [{default}]")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress bar."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_labels(parser: argparse.ArgumentParser, help_text: str, default: Any = None) -> None:
    """``--labels 1,2`` or ``--labels name=1,name=2``."""
    parser.add_argument("--labels", type=parse_labels, default=default, metavar="LABELS",
                        help=f"{help_text}: 1,2 or name=1,name=2 or a JSON class map (class_map.json[:task])")


def add_resample_masks(parser: argparse.ArgumentParser) -> None:
    """``--resample-masks``: put masks drawn on another grid onto the image's grid (nearest neighbour)."""
    parser.add_argument("--resample-masks", action="store_true",
                        help="resample masks on another grid onto the image's grid (nearest neighbour; lossless "
                             "when the grids differ only by a flipped or permuted axis)")


def fail(stage: str, exc: BaseException) -> int:
    """Print ``radiobio <stage>: <ErrorType>: <message>`` to stderr; return the usage exit code 2."""
    print(f"radiobio {stage}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 2


def report_failures(stage: str, table: Any, out: Any, what: str = "cases ok") -> int:
    """Print ``<stage>: N cases ok, M failed -> OUT`` and the first failures; return 1 if any case failed."""
    from radiobio.batch import case_counts

    ok, failed = case_counts(table)
    errors = table.loc[table["error"].fillna("").astype(str) != "", ["case_id", "error"]].drop_duplicates()
    for case_id, error in errors.head(MAX_LISTED).itertuples(index=False):
        print(f"  {case_id}: {error}", file=sys.stderr)
    if len(errors) > MAX_LISTED:
        print(f"  ... and {len(errors) - MAX_LISTED} more (see the error column of {out})", file=sys.stderr)
    print(f"{stage}: {ok} {what}, {failed} failed -> {out}")
    return 1 if failed else 0
