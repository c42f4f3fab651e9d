"""TG-263 standard names and the choice of ROIs by name, regular expression or standard name."""

from __future__ import annotations

import pytest

from radiobio.dicom.names import clean_name, fold, label_names, match_rois, standard_name
from radiobio.errors import MaskError, SettingsError


@pytest.mark.parametrize(("names", "standard"), [
    (["GTV-1", "GTVp", "gtv primary", "GTV_Primary", "GTV"], "GTVp"),
    (["Lt Lung", "Lung L", "Left Lung", "LUNG_LT", "lung_left", "L-Lung"], "Lung_L"),
    (["Rt Lung", "Lung_R", "right lung"], "Lung_R"),
    (["BODY", "Body", "External", "Skin"], "External"),
    (["SpinalCord", "cord", "spinal cord", "Spinal_Cord"], "SpinalCord"),
    (["Esophagus", "oesophagus"], "Esophagus"),
    (["kidney_left", "Lt Kidney", "KIDNEY L"], "Kidney_L"),
    (["Parotid R", "rt parotid", "Parotid_R"], "Parotid_R"),
    (["Heart", "HEART"], "Heart"),
    (["Lungs", "lungs total"], "Lungs"),
    (["Brain Stem", "Brainstem"], "Brainstem"),
    (["Breast L", "left breast"], "Breast_L"),
    (["urinary_bladder", "Bladder"], "Bladder"),
])
def test_synonyms_give_the_tg263_name(names: list[str], standard: str) -> None:
    assert [standard_name(n) for n in names] == [standard] * len(names)


@pytest.mark.parametrize(("name", "standard"), [
    ("PTV", "PTV"), ("PTV 60", "PTV_6000"), ("PTV60Gy", "PTV_6000"), ("PTV_6000", "PTV_6000"),
    ("PTV50.4", "PTV_5040"), ("CTV high", "CTV_High"), ("ctv_low", "CTV_Low"), ("PTVp", "PTVp"), ("ctv nodes", "CTVn"),
    ("PTV-2", "PTV2"), ("GTVn", "GTVn"),
])
def test_target_volumes_keep_their_suffix(name: str, standard: str) -> None:
    assert standard_name(name) == standard


def test_unknown_names_have_no_standard_name() -> None:
    assert standard_name("Tumor Bed") is None
    assert standard_name("Areola") is None
    assert standard_name("") is None
    assert fold(" Lt_Lung-1 ") == "ltlung1"
    assert clean_name("Tumor Bed (old)") == "Tumor_Bed_old"
    assert clean_name("***") == "ROI"


def test_every_roi_gets_a_unique_label_name() -> None:
    rois = ["BODY", "Lt Lung", "Tumor Bed", "Tumor Bed Block", "GTV", "GTV-1", "x y", "x-y"]
    assert label_names(rois) == ["External", "Lung_L", "Tumor_Bed", "Tumor_Bed_Block", "GTV", "GTV_1", "x_y",
                                 "x_y_2"]
    assert match_rois(rois) == dict(zip(label_names(rois), rois))


def test_rois_chosen_by_name_regex_or_standard_name() -> None:
    rois = ["BODY", "Lt Lung", "GTV-1", "Heart", "PTV 60"]
    assert match_rois(rois, ["GTVp", "Lung_L", "heart"]) == {"GTVp": "GTV-1", "Lung_L": "Lt Lung", "heart": "Heart"}
    assert match_rois(rois, "BODY") == {"BODY": "BODY"}
    assert match_rois(rois, {"lung": "re:.*lung", "target": "PTV_6000", "body": "External"}) == {
        "lung": "Lt Lung", "target": "PTV 60", "body": "BODY"}
    assert match_rois(rois, ["re:gtv.*"]) == {"GTV-1": "GTV-1"}


def test_a_name_matching_no_roi_lists_the_rois() -> None:
    with pytest.raises(MaskError, match=r"no ROI matches 'Liver'.*'BODY', 'Heart'"):
        match_rois(["BODY", "Heart"], ["Liver"])


def test_two_rois_for_one_label_are_both_named() -> None:
    with pytest.raises(MaskError, match=r"2 ROIs match 'GTVp' \(label 'tumour'\): 'GTV', 'GTV-1'"):
        match_rois(["GTV", "GTV-1", "BODY"], {"tumour": "GTVp"})
    with pytest.raises(MaskError, match="'Lt Lung', 'Rt Lung'"):
        match_rois(["Lt Lung", "Rt Lung"], ["re:.*lung"])


def test_bad_selections_are_setting_errors() -> None:
    with pytest.raises(SettingsError, match="not a valid regular expression"):
        match_rois(["BODY"], ["re:(("])
    with pytest.raises(SettingsError, match="ROIs present: 'BODY'"):
        match_rois(["BODY"], 3)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="not a ROI name"):
        match_rois(["BODY"], {"x": ""})
