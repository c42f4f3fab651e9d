"""Fixtures for the segmentation tests: tiny sphere cohorts and one tiny bundle trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiobio.synthetic import write_cohort

from .helpers import HIPPOCAMPUS_BUNDLE, sphere_cases, tiny_config


@pytest.fixture(scope="session")
def sphere_cohort(tmp_path_factory):
    """Eight sphere phantoms written as a cohort (``case_id``, ``image``, ``mask``)."""
    folder = tmp_path_factory.mktemp("spheres")
    return write_cohort(sphere_cases(8), folder)


@pytest.fixture(scope="session")
def tiny_bundle(sphere_cohort, tmp_path_factory) -> Path:
    """A bundle trained once per session on the sphere cohort with the TensorFlow backend."""
    from radiobio.segmentation import train

    out = tmp_path_factory.mktemp("bundle") / "spheres"
    return train(sphere_cohort, config=tiny_config(), out_dir=out, progress=False)


@pytest.fixture
def hippocampus_bundle() -> Path:
    """The shipped hippocampus bundle; skip while it has not been trained yet."""
    if not (HIPPOCAMPUS_BUNDLE / "model.keras").is_file():
        pytest.skip("models/hippocampus-3d/model.keras not trained yet")
    return HIPPOCAMPUS_BUNDLE
