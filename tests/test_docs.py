"""The documentation site builds with ``mkdocs build --strict`` (broken links, missing pages and API references that
do not resolve fail it) and its API pages hold the docstrings of the modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def nav_pages(entries: list) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_mkdocs_strict_build(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(site)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    for page in nav_pages(config["nav"]):
        stem = page.removesuffix(".md")
        built = site / (f"{stem}.html" if stem == "index" or stem.endswith("/index") else f"{stem}/index.html")
        assert built.is_file(), f"{page} was not built"
    api = (site / "api" / "report" / "index.html").read_text()
    for name in ("overlay_array", "window_limits", "write_qc", "write_survival", "soft_tissue"):
        assert name in api, f"{name} missing from the report API page"
    assert ":func:" not in api  # Sphinx roles of the docstrings are shown as code (docs/api/_roles_hook.py)
    assert "extract_features" in (site / "api" / "features" / "index.html").read_text()
    assert "kaplan_meier" in (site / "api" / "outcome" / "index.html").read_text()
    cli = (site / "cli" / "index.html").read_text()
    for flag in ("--resample-masks", "--patient-column", "--mask-column", "--intended-use", "--link-images"):
        assert flag in cli, f"{flag} missing from the CLI reference"  # the help text of the parsers themselves
    assert "radiobio-help" not in cli
