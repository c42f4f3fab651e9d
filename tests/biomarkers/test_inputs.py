"""Hospital-shaped inputs to the biomarker stages: a NIfTI mask on a flipped DICOM grid, one multi-label tissue mask,
a level other than L3, and TotalSegmentator class maps for label names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.biomarkers import sarcopenia, volumetry
from radiobio.cli import main
from radiobio.labels import label_map, parse_labels, read_label_file
from radiobio.tables import read_table


def test_flipped_mask_on_a_dicom_series_is_reoriented_losslessly(abdomen_data: Path, tmp_path: Path) -> None:
    image = abdomen_data / "example_ct_dicom"
    mask = abdomen_data / "example_seg_dicom.nii.gz"
    cohort = pd.DataFrame([{"case_id": "dcm", "image": str(image), "mask": str(mask)}])
    reoriented = volumetry(cohort, labels={"liver": 5})
    assert reoriented.loc[0, "error"] == ""
    assert "grid (axis y flipped; exact, voxel for voxel)" in reoriented.loc[0, "note"]
    table = volumetry(cohort, labels={"liver": 5, "spleen": 1}, resample_masks=True).set_index("label_name")
    assert table.loc["liver", "voxels"] == reoriented.loc[0, "voxels"]
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(mask)))
    spacing = sitk.ReadImage(str(mask)).GetSpacing()
    assert table.loc["liver", "voxels"] == np.count_nonzero(stored == 5) == 366708  # nothing lost in the flip
    assert table.loc["liver", "volume_ml"] == pytest.approx(366708 * np.prod(spacing) / 1000)
    # the CLI offers the same, and reads the same numbers
    cohort.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "dvol.csv"
    assert main(["biomarkers", "volumetry", str(tmp_path / "d.csv"), "-o", str(out), "--labels", "liver=5",
                 "--resample-masks", "-q"]) == 0
    assert read_table(out)["voxels"].iloc[0] == 366708


def test_one_multilabel_tissue_mask_equals_separate_masks(l3_cohort: tuple[pd.DataFrame, pd.DataFrame],
                                                           tmp_path: Path) -> None:
    cohort, truth = l3_cohort
    separate = sarcopenia(cohort, hu={"muscle": None})
    merged = sarcopenia(cohort, muscle_column="mask", labels={"muscle": 1, "sat": 2, "vat": 3, "imat": 4},
                        hu={"muscle": None})
    for tissue in ("sma", "sat", "vat", "imat"):
        assert merged[f"{tissue}_cm2"].tolist() == pytest.approx(truth[f"{'muscle' if tissue == 'sma' else tissue}"
                                                                       f"_cm2"].tolist()), tissue
    assert merged["sat_cm2"].tolist() == pytest.approx(separate["sat_cm2"].tolist())
    assert not merged["note"].str.contains("HU ranges").any()  # nothing fell back to HU thresholds


def test_a_level_other_than_l3_is_not_judged_by_l3_cutoffs(abdomen_data: Path, tmp_path: Path) -> None:
    ct = abdomen_data / "example_ct.nii.gz"
    vertebrae = abdomen_data / "spine_report" / "test_result" / "totalseg.nii.gz"
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(ct)))
    soft = sitk.GetImageFromArray(((hu >= -29) & (hu <= 150)).astype(np.uint8))
    soft.CopyInformation(sitk.ReadImage(str(ct)))
    sitk.WriteImage(soft, str(tmp_path / "soft.nii.gz"))
    cohort = pd.DataFrame([{"case_id": "abd", "image": str(ct), "mask_muscle": str(tmp_path / "soft.nii.gz"),
                            "vertebrae": str(vertebrae), "sex": "M", "height_m": 1.75, "weight_kg": 75}])
    at_l1 = sarcopenia(cohort, vertebra_column="vertebrae", vertebra_label=31).iloc[0]
    assert at_l1["level"] == "L1" and at_l1["smi_cm2_m2"] > 0
    assert pd.isna(at_l1["sarcopenic"]) and "L3 only" in at_l1["cutoffs"]
    z = np.nonzero(sitk.GetArrayFromImage(sitk.ReadImage(str(vertebrae))) == 31)[0]
    assert at_l1["slice_index"] == int(math.floor(z.mean() + 0.5))
    at_l3 = sarcopenia(cohort, vertebra_column="vertebrae").iloc[0]
    assert at_l3["level"] == "L3" and not pd.isna(at_l3["sarcopenic"])
    own = pd.DataFrame({"measure": ["smi"], "sex": ["M"], "threshold": [40.0]})  # the user's own L1 cut-offs
    judged = sarcopenia(cohort, vertebra_column="vertebrae", vertebra_label=31, cutoffs=own).iloc[0]
    assert judged["sarcopenic"] == (judged["smi_cm2_m2"] < 40.0)


def test_label_names_from_a_totalsegmentator_class_map(abdomen_data: Path, tmp_path: Path) -> None:
    class_map = abdomen_data / "class_map_total_tissue_mr.json"
    with pytest.raises(Exception, match="several class maps"):
        read_label_file(class_map)
    total = read_label_file(class_map, "total")
    assert total["liver"] == 5 and total["spleen"] == 1
    assert parse_labels(f"{class_map}:total") == total
    flat = tmp_path / "map.json"
    flat.write_text(json.dumps({"liver": 5, "spleen": 1}))
    assert parse_labels(str(flat)) == {"liver": 5, "spleen": 1}
    cohort = pd.DataFrame([{"case_id": "abd", "image": str(abdomen_data / "example_ct.nii.gz"),
                            "mask": str(abdomen_data / "example_seg.nii.gz")}])
    present = {int(v) for v in np.unique(sitk.GetArrayFromImage(sitk.ReadImage(cohort.loc[0, "mask"]))) if v}
    named = {name: value for name, value in total.items() if value in present}
    table = volumetry(cohort, labels=named, image_column=None)
    assert (table["error"] == "").all() and set(table["label_name"]) == set(named)
    assert label_map({"a": 1}) == {"a": 1}


def test_a_series_uid_column_chooses_among_the_series_of_one_folder(hippocampus_data: Path, tmp_path: Path) -> None:
    import shutil

    from radiobio.imaging import dicom_series_info

    folders = sorted(p.parent for p in (hippocampus_data / "dicom_unlabelled").rglob("1.dcm"))[:2]
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for index, folder in enumerate(folders):
        for file in folder.iterdir():
            shutil.copy(file, mixed / f"{index}_{file.name}")
    series = {len(s.files): s.uid for s in dicom_series_info(mixed)}
    assert sorted(series) == [32, 35]
    masks = {}
    for n in series:
        single = [f for f in folders if len(list(f.iterdir())) == n][0]
        reference = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(single)))
        mask = sitk.Cast(sitk.GetImageFromArray(np.ones(sitk.GetArrayFromImage(reference).shape, np.uint8)),
                         sitk.sitkUInt8)
        mask.CopyInformation(reference)
        sitk.WriteImage(mask, str(tmp_path / f"mask{n}.nii.gz"))
        masks[n] = str(tmp_path / f"mask{n}.nii.gz")
    cohort = pd.DataFrame([{"case_id": f"s{n}", "image": str(mixed), "series_uid": uid, "mask": masks[n]}
                           for n, uid in series.items()])
    table = volumetry(cohort).set_index("case_id")
    assert (table["error"] == "").all(), table["error"].tolist()
    for n in series:  # each case read its own series: the mask's grid matched
        assert table.loc[f"s{n}", "voxels"] == int(np.prod(sitk.ReadImage(masks[n]).GetSize()))
    assert "series_uid" not in table.columns  # how to read a case is not a clinical column
    unchosen = volumetry(cohort.drop(columns="series_uid"))
    assert unchosen["error"].str.contains("2 DICOM series").all()
