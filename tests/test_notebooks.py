"""The tutorial notebooks of ``examples/`` run from top to bottom in a real Jupyter kernel (this environment's
Python) and show their plots inline. The ``.ipynb`` files are the source: edit them in Jupyter and clear the outputs
before committing (``jupyter nbconvert --clear-output --inplace examples/*.ipynb``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
#: Notebook → how many inline PNG figures it must show at least.
NOTEBOOKS = {"01_batch_radiomics.ipynb": 2, "02_sarcopenia_survival.ipynb": 4, "03_hippocampus_segmentation.ipynb": 2,
             "04_radiomics_signature.ipynb": 2, "05_pacs_export.ipynb": 2}


@pytest.fixture(scope="module")
def kernel_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data folder whose ``python3`` kernel is this interpreter (not whatever python3 is on PATH)."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(prefix=str(prefix), kernel_name="python3")
    return prefix / "share" / "jupyter"


def execute(path: Path, kernel_home: Path, workdir: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(kernel_home)
    try:
        client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        client.execute()
    finally:
        if previous is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = previous
    nbformat.write(notebook, workdir / path.name)  # kept for inspection when a later assertion fails
    return notebook


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_and_shows_its_figures(name: str, kernel_home: Path, tmp_path: Path) -> None:
    notebook = execute(EXAMPLES / name, kernel_home, tmp_path)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= NOTEBOOKS[name], f"{name}: {len(figures)} inline figures"
    kernel = json.loads((kernel_home / "kernels" / "python3" / "kernel.json").read_text())
    assert kernel["argv"][0] in {sys.executable, os.path.realpath(sys.executable)}


def test_stored_notebooks_are_valid_and_have_no_outputs() -> None:
    assert {p.name for p in EXAMPLES.glob("*.ipynb")} == set(NOTEBOOKS)
    for name in NOTEBOOKS:
        stored = nbformat.read(EXAMPLES / name, as_version=4)
        nbformat.validate(stored)
        for cell in stored.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs stored"
