"""Cardiac function: EF, SV and LV mass from ED and ES ellipsoid phantoms, against voxel counts; missing phases,
labels and grids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiobio.biomarkers import cardiac_function, ejection_fraction_pct
from radiobio.errors import SettingsError
from radiobio.synthetic import Ellipsoid, ellipsoid_phantom

from .helpers import array, save, to_image

SPACING = (1.5, 1.5, 2.0)
SIZE = (64, 64, 48)


def _heart(lv: tuple[float, float, float], wall: float, rv: tuple[float, float, float] | None):
    """Myocardium (2) as a shell of ``wall`` mm around the LV cavity (1), RV cavity (3) beside it."""
    centre = (38.0, 48.0, 48.0)
    shapes = [Ellipsoid(centre, tuple(r + wall for r in lv), 2), Ellipsoid(centre, lv, 1)]
    if rv is not None:
        shapes.append(Ellipsoid((82.0, 48.0, 48.0), rv, 3))  # clear of the LV wall
    return ellipsoid_phantom(shapes, size=SIZE, spacing=SPACING, noise_sd=0.0)


@pytest.fixture
def heart_cohort(tmp_path: Path) -> pd.DataFrame:
    ed = _heart((22.0, 20.0, 34.0), 8.0, (12.0, 18.0, 30.0))
    es = _heart((15.0, 14.0, 27.0), 11.0, (8.0, 13.0, 24.0))
    es_no_rv = _heart((15.0, 14.0, 27.0), 11.0, None)
    other_grid = to_image(np.ones((10, 10, 10), np.uint8), (1.0, 1.0, 1.0))
    files = {name: save(p.mask, tmp_path / f"{name}.nii.gz")
             for name, p in {"ed": ed, "es": es, "es_no_rv": es_no_rv}.items()}
    files["other"] = save(other_grid, tmp_path / "other.nii.gz")
    image = save(ed.image, tmp_path / "cine.nii.gz")
    rows = [("normal", "ed", "es"), ("swapped", "es", "ed"), ("no_es", "ed", None), ("no_rv_at_es", "ed", "es_no_rv"),
            ("grid", "ed", "other")]
    return pd.DataFrame([{"case_id": c, "image": image, "mask_ed": files[e], "mask_es": files[s] if s else None}
                         for c, e, s in rows])


def test_function_from_two_phantom_volumes(heart_cohort: pd.DataFrame) -> None:
    table = cardiac_function(heart_cohort).set_index("case_id")
    ed, es = array(heart_cohort.at[0, "mask_ed"]), array(heart_cohort.at[0, "mask_es"])
    ml = 1.5 * 1.5 * 2.0 / 1000
    edv, esv = np.count_nonzero(ed == 1) * ml, np.count_nonzero(es == 1) * ml
    row = table.loc["normal"]
    assert row["error"] == "" and row["note"] == ""
    assert row["edv_ml"] == pytest.approx(edv) and row["esv_ml"] == pytest.approx(esv)
    assert row["sv_ml"] == pytest.approx(edv - esv)
    assert row["ef_pct"] == pytest.approx(100 * (edv - esv) / edv)
    # analytic check of the phantom itself: 4/3·π·a·b·c at ED and ES
    assert row["edv_ml"] == pytest.approx(4 / 3 * math.pi * 22 * 20 * 34 / 1000, rel=0.03)
    assert row["ef_pct"] == pytest.approx(100 * (1 - (15 * 14 * 27) / (22 * 20 * 34)), abs=2.0)  # ≈ 62 %
    assert row["lv_mass_g"] == pytest.approx(np.count_nonzero(ed == 2) * ml * 1.05)
    rv_edv, rv_esv = np.count_nonzero(ed == 3) * ml, np.count_nonzero(es == 3) * ml
    assert row["rv_edv_ml"] == pytest.approx(rv_edv) and row["rv_ef_pct"] == pytest.approx(100 * (1 - rv_esv / rv_edv))


def test_missing_phase_swapped_phases_missing_label_and_wrong_grid(heart_cohort: pd.DataFrame) -> None:
    table = cardiac_function(heart_cohort).set_index("case_id")
    normal = table.loc["normal"]
    assert table.loc["swapped", "ef_pct"] == pytest.approx(-100 * normal["sv_ml"] / normal["esv_ml"])
    assert "swapped" in table.loc["swapped", "note"]
    no_es = table.loc["no_es"]
    assert no_es["edv_ml"] == pytest.approx(normal["edv_ml"]) and no_es["lv_mass_g"] == pytest.approx(
        normal["lv_mass_g"])
    assert math.isnan(no_es["esv_ml"]) and math.isnan(no_es["ef_pct"]) and "no ES mask" in no_es["note"]
    no_rv = table.loc["no_rv_at_es"]
    assert no_rv["ef_pct"] == pytest.approx(normal["ef_pct"]) and math.isnan(no_rv["rv_ef_pct"])
    assert "rv (label 3) absent from the ES mask" in no_rv["note"]
    assert table.loc["grid", "error"].startswith("GeometryError")
    lv_only = cardiac_function(heart_cohort.iloc[:1], labels={"lv": 1})
    assert lv_only["ef_pct"].iloc[0] == pytest.approx(normal["ef_pct"]) and lv_only["lv_mass_g"].isna().all()
    with pytest.raises(SettingsError, match="'lv'"):
        cardiac_function(heart_cohort, labels={"myo": 2})


def test_ejection_fraction_by_hand() -> None:
    assert ejection_fraction_pct(150.0, 60.0) == pytest.approx(60.0)
    assert math.isnan(ejection_fraction_pct(0.0, 10.0)) and math.isnan(ejection_fraction_pct(100.0, math.nan))


def test_mask_only_cohort_needs_no_image_column(heart_cohort: pd.DataFrame) -> None:
    with_image = cardiac_function(heart_cohort.iloc[:1]).iloc[0]
    mask_only = cardiac_function(heart_cohort.iloc[:1].drop(columns="image")).iloc[0]
    assert mask_only["error"] == ""
    assert mask_only["ef_pct"] == pytest.approx(with_image["ef_pct"])
