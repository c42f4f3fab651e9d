"""to_wide: one row per patient from the case × label feature table of real hippocampus extractions; clinical
columns kept once, failed labels handled as documented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radiobio.errors import CohortError, SettingsError
from radiobio.features import extract_features, to_wide

LIGHT = {"imageType": {"Original": {}}, "featureClass": {"shape": ["VoxelVolume"], "firstorder": ["Mean"]},
         "setting": {"binWidth": 25}}
CASES = ("hippocampus_003", "hippocampus_004", "hippocampus_006")


@pytest.fixture
def long_table(hippocampus_data) -> pd.DataFrame:
    """Real PyRadiomics features of three hippocampus MRIs, labels 1 (anterior) and 2 (posterior), with clinical
    columns; one row per case × label."""
    cohort = pd.DataFrame({"case_id": list(CASES),
                           "image": [str(hippocampus_data / "images" / f"{c}.nii.gz") for c in CASES],
                           "mask": [str(hippocampus_data / "labels" / f"{c}.nii.gz") for c in CASES],
                           "age": [61, 70, 58], "os_days": [400.0, 800.0, 120.0], "os_event": [1, 0, 1]})
    return extract_features(cohort, params=LIGHT, labels={"anterior": 1, "posterior": 2}, jobs=1, progress=False)


def test_one_row_per_case_with_label_prefixed_features(long_table):
    assert len(long_table) == 6 and (long_table["error"] == "").all()
    wide = to_wide(long_table)
    assert list(wide["case_id"]) == list(CASES)
    assert list(wide.columns[:6]) == ["case_id", "image", "mask", "age", "os_days", "os_event"]
    assert wide["error"].eq("").all()
    for _, row in long_table.iterrows():
        value = wide.set_index("case_id").loc[row["case_id"], f"{row['label_name']}__original_shape_VoxelVolume"]
        assert value == row["original_shape_VoxelVolume"]
    # independent truth: the voxel count of each label times the voxel volume (1 mm³ crops)
    import SimpleITK as sitk

    mask = sitk.ReadImage(long_table.loc[0, "mask"])
    voxels = int((sitk.GetArrayViewFromImage(mask) == 2).sum()) * float(np.prod(mask.GetSpacing()))
    assert wide.loc[0, "posterior__original_shape_VoxelVolume"] == pytest.approx(voxels)
    assert wide["age"].tolist() == [61, 70, 58]  # clinical columns once
    assert wide.attrs["provenance"]["to_wide"]["labels"] == ["anterior", "posterior"]
    assert set(wide.attrs) == {"provenance"}


def test_label_number_is_the_prefix_without_a_label_name(long_table):
    wide = to_wide(long_table.drop(columns="label_name"))
    assert "1__original_firstorder_Mean" in wide.columns and "2__original_firstorder_Mean" in wide.columns


def test_failed_label_is_marked_dropped_or_raised(long_table):
    failed = long_table.copy()
    row = (failed["case_id"] == "hippocampus_004") & (failed["label"] == 2)
    failed.loc[row, "error"] = "MaskError: mask has no voxel with label 2"
    failed.loc[row, ["original_shape_VoxelVolume", "original_firstorder_Mean"]] = np.nan
    failed.loc[row, "label_name"] = None  # failed rows may lack the name: the label's name from other rows is used
    marked = to_wide(failed).set_index("case_id")
    assert marked.loc["hippocampus_004", "error"] == "posterior: MaskError: mask has no voxel with label 2"
    assert np.isnan(marked.loc["hippocampus_004", "posterior__original_shape_VoxelVolume"])
    assert marked.loc["hippocampus_004", "anterior__original_shape_VoxelVolume"] > 0
    assert (marked.drop(index="hippocampus_004")["error"] == "").all()
    assert list(to_wide(failed, errors="drop")["case_id"]) == ["hippocampus_003", "hippocampus_006"]
    with pytest.raises(CohortError, match="hippocampus_004"):
        to_wide(failed, errors="raise")
    with pytest.raises(SettingsError, match="errors must be"):
        to_wide(failed, errors="ignore")


def test_clinical_column_differing_between_labels_is_refused(long_table):
    bad = long_table.copy()
    bad.loc[(bad["case_id"] == "hippocampus_003") & (bad["label"] == 2), "age"] = 62
    with pytest.raises(CohortError, match=r"'age' differs between the labels of case 'hippocampus_003'"):
        to_wide(bad)
    spread = to_wide(bad, feature_columns=["age", "original_firstorder_Mean", "original_shape_VoxelVolume"])
    assert spread.loc[0, "anterior__age"] == 61 and spread.loc[0, "posterior__age"] == 62


def test_repeated_label_rows_are_refused(long_table):
    with pytest.raises(CohortError, match="several rows for label 'anterior'"):
        to_wide(pd.concat([long_table, long_table.iloc[[0]]], ignore_index=True))
