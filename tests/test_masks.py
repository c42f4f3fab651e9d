"""Masks from other segmenters: TotalSegmentator folders and multi-label files, nnU-Net predictions, flipped grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.biomarkers import volumetry
from radiobio.cohort import split_roi
from radiobio.errors import GeometryError, ImageReadError, MaskError
from radiobio.imaging import read_image
from radiobio.labels import parse_labels
from radiobio.masks import nifti_label_names, nnunet_label_names, read_segmentation


def test_totalsegmentator_folder_equals_its_multilabel_file(abdomen_data: Path) -> None:
    single = read_segmentation(abdomen_data / "example_seg_fast.nii.gz")
    folder = read_segmentation(abdomen_data / "example_seg_fast")
    assert single.source == "nifti-extension" and folder.source == "totalsegmentator-folder"
    assert len(single.label_names) == len(folder.label_names) == 117
    assert single.label_names[1] == "spleen" and single.label_names[5] == "liver"
    assert list(folder.label_names.values()) == sorted(folder.label_names.values())  # alphabetical numbering
    by_name = {name: value for value, name in single.label_names.items()}
    stacked = sitk.GetArrayFromImage(single.mask)
    combined = sitk.GetArrayFromImage(folder.mask)
    for value, name in folder.label_names.items():  # every structure has the same voxels in both outputs
        assert np.array_equal(combined == value, stacked == by_name[name]), name
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(abdomen_data / "example_seg_fast" / "liver.nii.gz")))
    table = folder.table().set_index("label_name")
    assert table.loc["liver", "voxels"] == np.count_nonzero(liver)


def test_nifti_without_extension_has_no_names(abdomen_data: Path) -> None:
    assert nifti_label_names(abdomen_data / "example_ct.nii.gz") == {}


def test_nnunet_prediction_takes_names_from_dataset_json(abdomen_data: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    mask = sitk.ReadImage(str(abdomen_data / "example_seg_fast.nii.gz"))
    sitk.WriteImage(mask, str(predictions / "case_001.nii.gz"))  # SimpleITK drops the label-table extension
    assert nifti_label_names(predictions / "case_001.nii.gz") == {}
    (predictions / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "spleen": 1, "liver": 5,
                                                                     "organs": [1, 5]}}))
    result = read_segmentation(predictions / "case_001.nii.gz")
    assert result.source == "nnunet" and result.label_names == {1: "spleen", 5: "liver"}
    assert nnunet_label_names({"labels": {"0": "background", "2": "kidney"}}) == {2: "kidney"}  # nnU-Net v1
    with pytest.raises(ImageReadError, match="nnU-Net prediction folder"):
        read_segmentation(predictions)


def test_flipped_mask_is_reoriented_exactly_and_a_real_mismatch_names_every_property(abdomen_data: Path) -> None:
    stored = sitk.ReadImage(str(abdomen_data / "example_seg_dicom.nii.gz"))
    result = read_segmentation(abdomen_data / "example_seg_dicom.nii.gz", image=abdomen_data / "example_ct_dicom")
    image = read_image(abdomen_data / "example_ct_dicom")
    assert result.mask.GetDirection() == image.GetDirection() != stored.GetDirection()
    assert result.mask.GetOrigin() == image.GetOrigin()
    assert np.array_equal(np.flip(sitk.GetArrayFromImage(stored), axis=1), sitk.GetArrayFromImage(result.mask))
    shifted = sitk.Image(stored)
    shifted.SetOrigin([o + 7.0 for o in stored.GetOrigin()])
    shifted.SetSpacing([s * 1.5 for s in stored.GetSpacing()])
    with pytest.raises(GeometryError) as refused:
        read_segmentation(abdomen_data / "example_seg_dicom.nii.gz", image=shifted)
    text = str(refused.value)
    assert "spacing differs" in text and "origin differs" in text and "--resample-masks" in text


def test_roi_suffix_is_split_only_when_the_file_does_not_exist(tmp_path: Path) -> None:
    assert split_roi(str(tmp_path / "RS.dcm#GTV-1")) == (str(tmp_path / "RS.dcm"), "GTV-1")
    odd = tmp_path / "mask#1.nii.gz"
    odd.write_bytes(b"")
    assert split_roi(str(odd)) == (str(odd), None)
    assert split_roi("mask.nii.gz") == ("mask.nii.gz", None)


def test_overlapping_structures_in_a_folder_are_refused(abdomen_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ts"
    folder.mkdir()
    liver = sitk.ReadImage(str(abdomen_data / "example_seg_fast" / "liver.nii.gz"))
    sitk.WriteImage(liver, str(folder / "liver.nii.gz"))
    sitk.WriteImage(liver, str(folder / "liver_copy.nii.gz"))
    with pytest.raises(MaskError, match="'liver' and 'liver_copy' overlap"):
        read_segmentation(folder)


def test_a_stage_reads_a_totalsegmentator_folder_in_the_mask_column(abdomen_data: Path) -> None:
    folder = read_segmentation(abdomen_data / "example_seg_fast")
    liver = {name: value for value, name in folder.label_names.items()}["liver"]
    cohort = pd.DataFrame([{"case_id": "ts", "mask": str(abdomen_data / "example_seg_fast")}])
    table = volumetry(cohort, labels={"liver": liver}, image_column=None)
    voxels = np.count_nonzero(sitk.GetArrayFromImage(
        sitk.ReadImage(str(abdomen_data / "example_seg_fast" / "liver.nii.gz"))))
    assert table.loc[0, "error"] == "" and table.loc[0, "voxels"] == voxels


def test_labels_chosen_by_name_follow_each_masks_own_numbering(abdomen_data: Path, tmp_path: Path) -> None:
    folder = abdomen_data / "example_seg_fast"
    multi = abdomen_data / "example_seg_fast.nii.gz"  # liver is 5 here, 59th (alphabetically) in the folder
    plain = tmp_path / "plain.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(multi)), str(plain))  # the same labels, without their names
    cohort = pd.DataFrame([{"case_id": "folder", "mask": str(folder)}, {"case_id": "multi", "mask": str(multi)},
                           {"case_id": "plain", "mask": str(plain)}])
    table = volumetry(cohort, labels=["liver", "spleen"], image_column=None)
    liver = table[table["label_name"] == "liver"].set_index("case_id")
    voxels = np.count_nonzero(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "liver.nii.gz"))))
    assert liver.loc["folder", "voxels"] == liver.loc["multi", "voxels"] == voxels
    unnamed = table[table["case_id"] == "plain"].iloc[0]
    assert "carries no label names" in unnamed["error"] and "liver=5" in unnamed["error"]
    misspelt = volumetry(cohort.iloc[:1], labels=["livr"], image_column=None)
    assert "no label named 'livr'" in misspelt.loc[0, "error"] and "liver" in misspelt.loc[0, "error"]
    assert parse_labels("liver,spleen") == ["liver", "spleen"] and parse_labels("1,2") == [1, 2]


def test_a_structure_set_in_a_cohort_batch_bad_references_become_error_rows() -> None:
    from tests.conftest import require_data

    mock = require_data("dicom_rt", "rt-utils_tests", "mock_data")
    cohort = pd.DataFrame([
        {"case_id": "ok", "image": str(mock / "ct_1.dcm"), "mask": f"{mock / 'rt.dcm'}#ROI-1"},
        {"case_id": "other_image", "image": str(mock / "ct_1.dcm"),
         "mask": f"{mock / 'invalid_reference_rt.dcm'}#ROI-1"},
        {"case_id": "no_roi", "image": str(mock / "ct_1.dcm"), "mask": f"{mock / 'rt.dcm'}#GTVp"},
    ])
    with pytest.warns(Warning):  # rt.dcm names another frame of reference than its CT: read, and said
        table = volumetry(cohort, labels={"roi": 1}, image_column=None).set_index("case_id")
    direct = read_segmentation(mock / "rt.dcm#ROI-1", image=mock)
    assert table.loc["ok", "error"] == "" and table.loc["ok", "voxels"] == np.count_nonzero(
        sitk.GetArrayFromImage(direct.mask)) > 0
    assert "ImageReadError" in table.loc["other_image", "error"] and "invalid_reference_rt.dcm" in \
        table.loc["other_image", "error"]
    assert "ROI-1" in table.loc["no_roi", "error"]  # the error lists the ROIs the structure set has
