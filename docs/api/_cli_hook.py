"""mkdocs hook: ``<!-- radiobio-help STAGE [KIND] -->`` in a page becomes the ``--help`` text of that subcommand,
so the CLI reference is always the parser itself."""

from __future__ import annotations

import contextlib
import io
import re

MARKER = re.compile(r"<!-- radiobio-help ([\w -]+?) -->")


def _help(words: list[str]) -> str:
    from radiobio.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([*words, "--help"])
    return out.getvalue().rstrip()


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    """Replace each marker by a code block with the subcommand's help."""
    return MARKER.sub(lambda m: "```text\n" + _help(m.group(1).split()) + "\n```", markdown)
