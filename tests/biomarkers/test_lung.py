"""Lung: hand-computed VDT and growth, category thresholds, nodule volumes on phantoms and a real CT lesion, disease
extent per lung and lobe, and the bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.biomarkers import (
    lung_involvement,
    nodule_categories,
    nodule_category,
    nodule_growth,
    nodule_volumetry,
    volume_doubling_time,
    volume_growth_pct,
)
from radiobio.errors import BiomarkerError, SettingsError
from radiobio.synthetic import sphere_phantom, write_cohort

from .helpers import array, save, to_image, voxel_mm3


def test_volume_doubling_time_by_hand() -> None:
    assert volume_doubling_time(100.0, 200.0, 90) == pytest.approx(90.0)  # doubled in 90 days
    # 120 d · ln 2 / ln(400/250) = 83.17766 / 0.4700036 = 176.97 d
    assert volume_doubling_time(250.0, 400.0, 120) == pytest.approx(176.97, abs=0.01)
    vdt = volume_doubling_time(np.array([100.0, 100.0, 100.0]), np.array([400.0, 100.0, 50.0]), 60)
    assert vdt[0] == pytest.approx(30.0) and math.isinf(vdt[1]) and vdt[2] == pytest.approx(-60.0)
    assert math.isnan(volume_doubling_time(np.nan, 100.0, 30))
    assert volume_growth_pct(100.0, 125.0) == pytest.approx(25.0)
    assert volume_growth_pct([200.0, 50.0], 100.0).tolist() == pytest.approx([-50.0, 100.0])


@pytest.mark.parametrize("v1, v2, days, match", [(0.0, 10.0, 30, "positive"), (10.0, -1.0, 30, "positive"),
                                                  (10.0, 20.0, 0, "interval"), (10.0, 20.0, -5, "interval")])
def test_non_positive_volumes_or_interval_are_refused(v1: float, v2: float, days: float, match: str) -> None:
    with pytest.raises(BiomarkerError, match=match):
        volume_doubling_time(v1, v2, days)


def test_category_thresholds_and_their_table() -> None:
    volumes = [99.9, 100.0, 299.9, 300.0]
    assert list(nodule_category(volumes)) == ["negative", "indeterminate", "indeterminate", "positive"]
    assert list(nodule_category([49.0, 50.0, 499.0, 500.0], scheme="nelson")) == [
        "negative", "indeterminate", "indeterminate", "positive"]
    assert list(nodule_category([29.0, 30.0, 200.0], "new_volume_mm3")) == ["negative", "indeterminate", "positive"]
    assert list(nodule_category([120.0, 399.0, 400.0, 599.0, 600.0, -80.0, math.inf], "vdt_days")) == [
        "positive", "positive", "indeterminate", "indeterminate", "negative", "negative", "negative"]
    assert nodule_category(np.nan) is None
    assert "3 months" in nodule_category(150.0, column="management")
    table = nodule_categories()
    assert set(table["scheme"]) == {"eups2017", "nelson"} and table["doi"].str.startswith("10.").all()
    with pytest.raises(SettingsError, match="unknown nodule scheme"):
        nodule_category(100.0, scheme="lungrads")
    with pytest.raises(SettingsError, match="no 'new_volume_mm3'"):
        nodule_category(100.0, "new_volume_mm3", scheme="nelson")


def test_nodule_volumes_on_a_sphere_phantom(tmp_path: Path) -> None:
    phantom = sphere_phantom(radius_mm=3.5, size=(32, 32, 32), spacing=(0.7, 0.7, 0.7))
    cohort = write_cohort([phantom], tmp_path)
    row = nodule_volumetry(cohort).iloc[0]
    count = np.count_nonzero(array(cohort.at[0, "mask"]) == 1)
    assert row["voxels"] == count and row["volume_mm3"] == pytest.approx(count * 0.7**3)
    assert row["volume_mm3"] == pytest.approx(4 / 3 * math.pi * 3.5**3, rel=0.05)  # 179.6 mm³
    assert row["effective_diameter_mm"] == pytest.approx(7.0, rel=0.02)
    assert row["category"] == "indeterminate" and "3 months" in row["management"]  # 100–300 mm³
    assert nodule_volumetry(cohort, scheme="nelson").iloc[0]["category"] == "indeterminate"  # 50–500 mm³


def test_real_lung_lesion_volume(pyradiomics_data: Path) -> None:
    image, mask = pyradiomics_data / "lung1_image.nrrd", pyradiomics_data / "lung1_label.nrrd"
    row = nodule_volumetry(pd.DataFrame([{"case_id": "lung1", "image": str(image), "mask": str(mask)}])).iloc[0]
    labels = array(mask)
    count = np.count_nonzero(labels == row["label"])
    assert row["error"] == "" and row["volume_mm3"] == pytest.approx(count * voxel_mm3(mask))
    assert row["effective_diameter_mm"] == pytest.approx((6 * count * voxel_mm3(mask) / math.pi) ** (1 / 3))


def test_growth_between_two_spheres(tmp_path: Path) -> None:
    small = sphere_phantom(radius_mm=4.0, size=(30, 30, 30), spacing=(0.6, 0.6, 0.6))
    large = sphere_phantom(radius_mm=5.0, size=(24, 24, 24), spacing=(0.8, 0.8, 0.8))  # another scan, another grid
    files = write_cohort([small, large], tmp_path)
    empty = sitk.Image(small.mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(small.mask)
    gone = save(empty, tmp_path / "gone.nii.gz")
    cohort = pd.DataFrame([
        {"case_id": "grows", "image": files.at[0, "image"], "mask_baseline": files.at[0, "mask"],
         "mask_followup": files.at[1, "mask"], "interval_days": 100},
        {"case_id": "resolved", "image": files.at[0, "image"], "mask_baseline": files.at[0, "mask"],
         "mask_followup": gone, "interval_days": 100},
        {"case_id": "no_baseline", "image": files.at[0, "image"], "mask_baseline": gone,
         "mask_followup": files.at[1, "mask"], "interval_days": 100},
        {"case_id": "no_days", "image": files.at[0, "image"], "mask_baseline": files.at[0, "mask"],
         "mask_followup": files.at[1, "mask"], "interval_days": None},
    ])
    table = nodule_growth(cohort).set_index("case_id")
    v1 = np.count_nonzero(array(files.at[0, "mask"])) * 0.6**3
    v2 = np.count_nonzero(array(files.at[1, "mask"])) * 0.8**3
    grows = table.loc["grows"]
    assert grows["volume_baseline_mm3"] == pytest.approx(v1) and grows["volume_followup_mm3"] == pytest.approx(v2)
    assert grows["vdt_days"] == pytest.approx(100 * math.log(2) / math.log(v2 / v1))
    assert grows["vdt_days"] == pytest.approx(100 * math.log(2) / math.log((5 / 4) ** 3), rel=0.05)  # 103.5 d
    assert grows["growth_pct"] == pytest.approx((v2 / v1 - 1) * 100) and bool(grows["significant_growth"])
    assert grows["category"] == "positive"
    assert table.loc["resolved", "growth_pct"] == -100.0 and math.isnan(table.loc["resolved", "vdt_days"])
    assert "absent at follow-up" in table.loc["resolved", "note"]
    assert table.loc["no_baseline", "error"].startswith("MaskError")
    assert math.isnan(table.loc["no_days", "vdt_days"]) and "no interval_days" in table.loc["no_days", "note"]


def _lungs(size: tuple[int, int, int] = (40, 30, 24)) -> np.ndarray:
    """Right lung (x < 20) labelled by lobe 12/13/14 along z, left lung 10/11: TotalSegmentator numbering."""
    z, y, x = np.indices(size[::-1])
    labels = np.zeros(size[::-1], np.uint8)
    right = (x >= 2) & (x < 18) & (y >= 3) & (y < 27)
    left = (x >= 22) & (x < 38) & (y >= 3) & (y < 27)
    labels[right & (z >= 16)] = 12
    labels[right & (z >= 8) & (z < 16)] = 13
    labels[right & (z < 8)] = 14
    labels[left & (z >= 12)] = 10
    labels[left & (z < 12)] = 11
    return labels


def test_lung_involvement_per_lung_and_lobe(tmp_path: Path) -> None:
    spacing = (1.5, 1.5, 2.5)
    lungs = _lungs()
    lesion = np.zeros_like(lungs)
    lesion[2:10, 5:15, 4:12] = 1  # inside the right lower lobe
    lesion[10:14, 10:20, 30:36] = 1  # straddles the left lobes
    lesion[5:7, 0:3, 0:2] = 1  # outside the lungs
    image = to_image(np.zeros(lungs.shape, np.int16), spacing)
    cohort = pd.DataFrame([{"case_id": "covid", "image": save(image, tmp_path / "ct.nii.gz"),
                            "mask_lung": save(to_image(lungs, spacing), tmp_path / "lungs.nii.gz"),
                            "mask_lesion": save(to_image(lesion, spacing), tmp_path / "lesion.nii.gz")}])
    table = lung_involvement(cohort, regions="totalseg").set_index("region")
    assert table.index.tolist() == ["lung", "left", "right", "left_upper", "left_lower", "right_upper",
                                    "right_middle", "right_lower"]
    ml = 1.5 * 1.5 * 2.5 / 1000
    for region, labels in {"lung": (10, 11, 12, 13, 14), "right": (12, 13, 14), "left_lower": (11,),
                           "right_upper": (12,)}.items():
        inside = np.isin(lungs, labels)
        hit = np.count_nonzero(inside & (lesion > 0))
        assert table.loc[region, "lung_volume_ml"] == pytest.approx(np.count_nonzero(inside) * ml)
        assert table.loc[region, "lesion_volume_ml"] == pytest.approx(hit * ml)
        assert table.loc[region, "involvement_pct"] == pytest.approx(100 * hit / np.count_nonzero(inside))
    assert table.loc["right_upper", "involvement_pct"] == 0.0
    assert "outside the lung mask" in table.loc["lung", "note"]
    simple = lung_involvement(cohort, regions={"right": [12, 13, 14], "left": [10, 11], "extra": 7})
    simple = simple.set_index("region")
    assert simple.loc["lung", "involvement_pct"] == pytest.approx(table.loc["lung", "involvement_pct"])
    assert math.isnan(simple.loc["extra", "involvement_pct"]) and "absent" in simple.loc["extra", "note"]
    assert lung_involvement(cohort)["region"].tolist() == ["lung"]


def test_lung_involvement_bad_inputs(tmp_path: Path) -> None:
    lungs = _lungs()
    image = save(to_image(np.zeros(lungs.shape, np.int16), (1, 1, 1)), tmp_path / "ct.nii.gz")
    lung_path = save(to_image(lungs, (1, 1, 1)), tmp_path / "lungs.nii.gz")
    other = save(to_image(np.ones((10, 10, 10), np.uint8), (1, 1, 1)), tmp_path / "small.nii.gz")
    empty = save(to_image(np.zeros(lungs.shape, np.uint8), (1, 1, 1)), tmp_path / "empty.nii.gz")
    cohort = pd.DataFrame([{"case_id": "grid", "image": image, "mask_lung": lung_path, "mask_lesion": other},
                           {"case_id": "no_lung", "image": image, "mask_lung": empty, "mask_lesion": lung_path},
                           {"case_id": "ok", "image": image, "mask_lung": lung_path, "mask_lesion": lung_path}])
    table = lung_involvement(cohort).set_index("case_id")
    assert table.loc["grid", "error"].startswith("GeometryError")
    assert table.loc["no_lung", "error"].startswith("MaskError")
    assert table.loc["ok", "involvement_pct"] == pytest.approx(100.0)
    with pytest.raises(SettingsError, match="reserved"):
        lung_involvement(cohort, regions={"lung": 1})
