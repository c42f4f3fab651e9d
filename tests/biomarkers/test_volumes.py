"""Volumetry: volumes and intensities per label against voxel counts and analytic ellipsoids; slice areas; bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.biomarkers import slice_area_cm2, volumetry
from radiobio.errors import CohortError
from radiobio.synthetic import Ellipsoid, ellipsoid_phantom, write_cohort

from .helpers import array, save, to_image

SPACING = (0.8, 0.9, 1.5)
OUTER = Ellipsoid((25.0, 28.0, 36.0), (12.0, 9.0, 15.0), 1, 100.0)
INNER = Ellipsoid((25.0, 28.0, 36.0), (4.0, 4.0, 4.0), 2, 300.0)


@pytest.fixture
def phantom_cohort(tmp_path: Path) -> pd.DataFrame:
    phantom = ellipsoid_phantom([OUTER, INNER], size=(64, 64, 48), spacing=SPACING, noise_sd=8.0, seed=3)
    return write_cohort([phantom], tmp_path)


def test_volumes_and_intensities_match_voxel_counts(phantom_cohort: pd.DataFrame) -> None:
    table = volumetry(phantom_cohort)
    labels = array(phantom_cohort.at[0, "mask"])
    image = array(phantom_cohort.at[0, "image"]).astype(np.float64)
    voxel = 0.8 * 0.9 * 1.5
    assert table["label"].tolist() == [1, 2]
    assert (table["error"] == "").all()
    for label in (1, 2):
        row = table[table["label"] == label].iloc[0]
        inside = labels == label
        assert row["voxels"] == np.count_nonzero(inside)
        assert row["volume_mm3"] == pytest.approx(np.count_nonzero(inside) * voxel)
        assert row["volume_ml"] == pytest.approx(np.count_nonzero(inside) * voxel / 1000.0)
        assert row["intensity_mean"] == pytest.approx(image[inside].mean())
        assert row["intensity_sd"] == pytest.approx(image[inside].std(ddof=1))
        assert row["intensity_median"] == pytest.approx(np.median(image[inside]))
    # the two labels together fill the outer ellipsoid: analytic volume 4/3·π·a·b·c within voxelisation error
    assert table["volume_mm3"].sum() == pytest.approx(4 / 3 * math.pi * 12 * 9 * 15, rel=0.02)
    assert table.loc[table["label"] == 2, "intensity_mean"].iloc[0] == pytest.approx(300.0, abs=3.0)


def test_named_labels_a_missing_label_and_no_image(phantom_cohort: pd.DataFrame) -> None:
    table = volumetry(phantom_cohort, labels={"organ": 1, "lesion": 2, "absent": 7}, image_column=None)
    assert table["label_name"].tolist() == ["organ", "lesion", "absent"]
    absent = table[table["label_name"] == "absent"].iloc[0]
    assert math.isnan(absent["volume_mm3"]) and "label 7 absent" in absent["note"]
    assert table["intensity_mean"].isna().all()
    assert table.loc[table["label_name"] == "organ", "note"].iloc[0] == ""


def test_slice_area_against_analytic_ellipse_and_pixel_count(phantom_cohort: pd.DataFrame) -> None:
    mask = sitk.ReadImage(phantom_cohort.at[0, "mask"])
    k = 24  # z = 24 × 1.5 mm = 36 mm, the ellipsoids' centre plane
    labels = array(phantom_cohort.at[0, "mask"])[k]
    assert slice_area_cm2(mask, 1, k) == pytest.approx(np.count_nonzero(labels == 1) * 0.8 * 0.9 / 100)
    whole = slice_area_cm2(phantom_cohort.at[0, "mask"], None, k)  # from the path, any label
    assert whole == pytest.approx(math.pi * 12 * 9 / 100, rel=0.03)
    assert slice_area_cm2(mask, 1, k) == pytest.approx(whole - math.pi * 4 * 4 / 100, rel=0.05)


def test_slice_area_of_2d_mask(tmp_path: Path) -> None:
    plane = np.zeros((50, 40), np.uint8)
    plane[10:30, 5:25] = 3
    mask = to_image(plane, (0.5, 0.7))
    assert slice_area_cm2(mask, 3) == pytest.approx(400 * 0.35 / 100)
    assert slice_area_cm2(mask, 1) == 0.0


def test_bad_cases_become_error_rows_and_the_rest_completes(phantom_cohort: pd.DataFrame, tmp_path: Path) -> None:
    good = phantom_cohort.iloc[0]
    reference = sitk.ReadImage(good["mask"])
    empty = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(reference)
    other_grid = to_image(array(good["mask"]), (1.0, 1.0, 1.0))
    flat = to_image(np.ones((20, 20), np.uint8), (1.0, 1.0))
    cohort = pd.DataFrame([
        {"case_id": "ok", "image": good["image"], "mask": good["mask"], "age": 60},
        {"case_id": "empty", "image": good["image"], "mask": save(empty, tmp_path / "empty.nii.gz"), "age": 61},
        {"case_id": "grid", "image": good["image"], "mask": save(other_grid, tmp_path / "grid.nii.gz"), "age": 62},
        {"case_id": "flat", "image": save(flat, tmp_path / "flat_img.nii.gz"),
         "mask": save(flat, tmp_path / "flat.nii.gz"), "age": 63},
        {"case_id": "missing", "image": good["image"], "mask": str(tmp_path / "nope.nii.gz"), "age": 64},
    ])
    table = volumetry(cohort)
    errors = table.groupby("case_id", sort=False)["error"].first()
    assert errors["ok"] == ""
    assert errors["empty"].startswith("MaskError") and "empty" in errors["empty"]
    assert errors["grid"].startswith("GeometryError") and "spacing differs" in errors["grid"]
    assert errors["flat"].startswith("GeometryError") and "2D" in errors["flat"]
    assert errors["missing"].startswith("CohortError: mask file not found")
    assert table["case_id"].drop_duplicates().tolist() == ["ok", "empty", "grid", "flat", "missing"]
    assert table.loc[table["case_id"] == "grid", "age"].iloc[0] == 62  # clinical columns carried on error rows
    assert table.loc[table["case_id"] == "ok", "volume_ml"].notna().all()
    with pytest.raises(CohortError, match="mask_liver"):
        volumetry(cohort, mask_column="mask_liver")
