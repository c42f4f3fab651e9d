"""The quickstart's recipes run as documented: every code block marked ``<!-- quickstart: run -->`` in
``docs/quickstart.md`` is executed verbatim in a fresh folder, and what it promises is checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from radiobio.synthetic.l3 import write_l3_cohort
from radiobio.tables import read_table

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "docs" / "quickstart.md"
BLOCK = re.compile(r"<!-- quickstart: run -->\s*```(\w+)\n(.*?)```", re.S)


def recipes() -> dict[str, str]:
    """The runnable blocks of the quickstart, by language (one bash and one python recipe)."""
    found = {lang: code for lang, code in BLOCK.findall(QUICKSTART.read_text())}
    assert set(found) == {"bash", "python"}, found.keys()
    return found


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_your_own_data_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_l3_cohort("scans", n=6, size=192, seed=4).to_csv("cohort.csv", index=False)  # the user's own cohort
    (tmp_path / "recipe.sh").write_text("set -euo pipefail\n" + recipes()["bash"])
    done = run(["bash", "recipe.sh"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    body = read_table(tmp_path / "results" / "biomarkers.parquet")
    assert len(body) == 6 and (body["error"] == "").all()
    features = read_table(tmp_path / "results" / "features.parquet")
    assert (features["label_name"] == "muscle").all() and (features["error"] == "").all()
    assert len(list((tmp_path / "results" / "qc").glob("l3_*.png"))) == 6
    page = (tmp_path / "results" / "report.html").read_text()
    assert "6 cases" in page and "sma_cm2" in page


def test_python_recipe(tmp_path: Path) -> None:
    (tmp_path / "recipe.py").write_text(recipes()["python"])
    done = run([sys.executable, "recipe.py"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    results = tmp_path / "my-results"
    cohort = read_table(results / "cohort.csv")
    assert not cohort["image"].str.startswith("my-cohort").any()  # rebased onto my-results/
    assert (results / "report.html").is_file() and len(list((results / "qc").glob("l3_*.png"))) == 20
    assert "20 cases" in (results / "report.html").read_text()
