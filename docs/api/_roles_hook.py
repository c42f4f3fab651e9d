"""mkdocs hook: docstrings cross-reference with Sphinx roles (:func:`name`); show them as plain code in the site."""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj):(<code>)")


def on_page_content(html: str, **kwargs: object) -> str:
    """Drop the role prefix before each code span of a rendered page."""
    return ROLE.sub(r"\1", html)
