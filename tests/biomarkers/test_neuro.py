"""Hippocampal volume on the real MRI crops against voxel counts, ICV normalisation, missing labels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.biomarkers import hippocampal_volume

from .helpers import array, save, to_image, voxel_mm3


def _cohort(hippocampus_data: Path, n: int) -> pd.DataFrame:
    names = sorted(p.name for p in (hippocampus_data / "labels").glob("hippocampus_*.nii.gz"))[:n]
    return pd.DataFrame([{"case_id": name.split(".")[0], "image": str(hippocampus_data / "images" / name),
                          "mask": str(hippocampus_data / "labels" / name)} for name in names])


def test_real_hippocampus_volumes_match_voxel_counts(hippocampus_data: Path) -> None:
    cohort = _cohort(hippocampus_data, 12)
    table = hippocampal_volume(cohort)
    assert (table["error"] == "").all()
    assert table["label_name"].tolist() == ["anterior", "posterior", "total"] * len(cohort)
    for _, case in cohort.iterrows():
        labels = array(case["mask"])
        voxel = voxel_mm3(case["mask"])
        rows = table[table["case_id"] == case["case_id"]].set_index("label_name")
        for region, label in (("anterior", 1), ("posterior", 2)):
            assert rows.loc[region, "voxels"] == np.count_nonzero(labels == label)
            assert rows.loc[region, "volume_mm3"] == pytest.approx(np.count_nonzero(labels == label) * voxel)
        assert rows.loc["total", "volume_ml"] == pytest.approx(np.count_nonzero(labels > 0) * voxel / 1000)
    assert table["volume_ml"].between(0.3, 6.0).all()  # plausible hippocampal volumes
    assert table["icv_ml"].isna().all()


def test_icv_normalisation_from_a_column_or_a_mask(hippocampus_data: Path, tmp_path: Path) -> None:
    cohort = _cohort(hippocampus_data, 3)
    cohort["icv_ml"] = [1500.0, 1350.0, None]
    by_column = hippocampal_volume(cohort, icv_column="icv_ml")
    first = by_column[by_column["case_id"] == cohort.at[0, "case_id"]]
    assert (first["volume_icv_pct"] == 100 * first["volume_ml"] / 1500.0).all()
    third = by_column[by_column["case_id"] == cohort.at[2, "case_id"]]
    assert third["volume_icv_pct"].isna().all() and "no ICV" in third["note"].iloc[0]
    # an ICV mask on its own (coarser, larger) grid: 60 × 80 × 70 voxels of 2 mm = 2688 mL
    head = np.zeros((80, 90, 70), np.uint8)
    head[5:75, 5:85, 5:65] = 1
    cohort["mask_icv"] = save(to_image(head, (2.0, 2.0, 2.0)), tmp_path / "icv.nii.gz")
    by_mask = hippocampal_volume(cohort.iloc[:1], icv_mask_column="mask_icv")
    assert by_mask["icv_ml"].iloc[0] == pytest.approx(70 * 80 * 60 * 8 / 1000)
    litres = hippocampal_volume(cohort.iloc[:1].assign(icv_ml=1.5), icv_column="icv_ml")
    assert litres["error"].iloc[0].startswith("BiomarkerError") and "litres" in litres["error"].iloc[0]


def test_left_right_labels_and_a_missing_region(hippocampus_data: Path, tmp_path: Path) -> None:
    case = _cohort(hippocampus_data, 1).iloc[0]
    mask = sitk.ReadImage(case["mask"])
    labels = array(case["mask"]).astype(np.uint8)
    half = labels.shape[2] // 2
    sides = np.where(labels > 0, np.where(np.arange(labels.shape[2]) < half, 1, 2), 0).astype(np.uint8)
    image = sitk.GetImageFromArray(sides)
    image.CopyInformation(mask)
    cohort = pd.DataFrame([{"case_id": "lr", "image": case["image"], "mask": save(image, tmp_path / "lr.nii.gz")}])
    table = hippocampal_volume(cohort, labels={"left": 1, "right": 2, "extra": 3}).set_index("label_name")
    assert table.loc["left", "voxels"] == np.count_nonzero(sides == 1)
    assert math.isnan(table.loc["extra", "volume_ml"]) and "label 3 absent" in table.loc["extra", "note"]
    assert math.isnan(table.loc["total", "volume_ml"])  # a total over a missing region would mislead
