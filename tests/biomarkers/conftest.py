"""Fixtures of the biomarker tests."""

from __future__ import annotations

import pandas as pd
import pytest

from radiobio.synthetic.l3 import write_l3_cohort


@pytest.fixture(scope="session")
def l3_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Five 256² L3 phantoms written as a demo cohort, and their truth table."""
    folder = tmp_path_factory.mktemp("l3")
    cohort = write_l3_cohort(folder, n=5, seed=11, size=256)
    return cohort, pd.read_csv(folder / "truth.csv")
