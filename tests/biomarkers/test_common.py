"""The shared case loop: cohort order, clinical columns, provenance, parallel workers, label arguments."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from radiobio.biomarkers import case_counts, volumetry
from radiobio.biomarkers._common import label_map
from radiobio.errors import SettingsError
from radiobio.synthetic import sphere_phantom, write_cohort


@pytest.fixture
def spheres(tmp_path: Path) -> pd.DataFrame:
    phantoms = [sphere_phantom(radius_mm=r, size=(24, 24, 24), seed=i) for i, r in enumerate((4.0, 6.0, 8.0))]
    cohort = write_cohort(phantoms, tmp_path)
    cohort["age"] = [50, 60, 70]
    cohort.loc[1, "mask"] = str(tmp_path / "missing.nii.gz")
    return cohort


def test_cohort_order_clinical_columns_and_provenance(spheres: pd.DataFrame, tmp_path: Path) -> None:
    table = volumetry(spheres)
    assert table["case_id"].tolist() == ["case000", "case001", "case002"]
    assert table["age"].tolist() == [50, 60, 70]
    assert table["volume_mm3"].iloc[2] > table["volume_mm3"].iloc[0] > 0
    assert case_counts(table) == (2, 1)
    assert table.attrs["provenance"]["kind"] == "volumetry"
    assert table.attrs["provenance"]["settings"]["mask_column"] == "mask"
    assert "age" not in volumetry(spheres, carry=False).columns
    assert volumetry(spheres, carry=["age"]).columns.tolist()[-3:] == ["age", "note", "error"]
    # a manifest path works like a table, with paths relative to its folder
    assert volumetry(tmp_path / "cohort.csv")["volume_mm3"].notna().all()


def test_parallel_workers_give_the_same_table(spheres: pd.DataFrame) -> None:
    serial = volumetry(spheres, jobs=1)
    parallel = volumetry(spheres, jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_label_arguments() -> None:
    assert label_map(None) is None
    assert label_map(3) == {"3": 3}
    assert label_map([1, 2]) == {"1": 1, "2": 2}
    assert label_map({"liver": 5}) == {"liver": 5}
    for bad in ([0], {"x": -1}, [1.5], {"x": True}, []):
        with pytest.raises(SettingsError):
            label_map(bad)
