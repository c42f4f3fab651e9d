"""Shared test fixtures: where the real test data lives, and small synthetic cohorts."""

from __future__ import annotations

import os
from pathlib import Path

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
