"""Shared test fixtures: where the real test data lives, and small synthetic cohorts."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """The shared real-data folder: ``RADIOBIO_TEST_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("RADIOBIO_TEST_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data(*parts: str) -> Path:
    """Path of a file or folder under the real-data root; skip the test if missing, fail instead when CI=true."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        message = f"real test data missing: {path} (set RADIOBIO_TEST_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def pyradiomics_data() -> Path:
    """Folder of the PyRadiomics test cases (brain1, lung1, ... and baseline/)."""
    return require_data("pyradiomics", "data")


@pytest.fixture
def hippocampus_data() -> Path:
    """Folder of the hippocampus MRI crops (images/, labels/)."""
    return require_data("hippocampus")


@pytest.fixture
def abdomen_data() -> Path:
    """Folder of the abdominal CT test files."""
    return require_data("abdomen_ct")


@pytest.fixture(scope="session")
def l3_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Five 256² L3 phantoms written as a demo cohort, and their truth table."""
    from radiobio.synthetic.l3 import write_l3_cohort

    folder = tmp_path_factory.mktemp("l3")
    cohort = write_l3_cohort(folder, n=5, seed=11, size=256)
    return cohort, pd.read_csv(folder / "truth.csv")
