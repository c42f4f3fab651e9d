"""Batch behaviour of extract_features: labels, error rows for every kind of bad input, provenance, parallel runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio import extract_features
from radiobio.errors import CohortError, SettingsError
from radiobio.features import read_feature_table
from radiobio.imaging import write_image
from radiobio.synthetic import Ellipsoid, ellipsoid_phantom, sphere_phantom, write_cohort

FAST = {"imageType": {"Original": {}}, "featureClass": {"shape": None, "firstorder": None, "glcm": None},
        "setting": {"binWidth": 25}}


def two_label_phantom(seed: int = 0):
    return ellipsoid_phantom([Ellipsoid((20, 20, 20), (9, 7, 8), 1, 80), Ellipsoid((44, 40, 30), (6, 6, 10), 2, 200)],
                             size=(64, 60, 40), spacing=(1.0, 1.0, 1.5), texture_sd=15, seed=seed)


@pytest.fixture
def good_cohort(tmp_path: Path) -> pd.DataFrame:
    cohort = write_cohort([two_label_phantom(i) for i in range(3)], tmp_path / "good",
                          extra=pd.DataFrame({"age": [61, 72, 55]}))
    return cohort


def test_all_labels_by_default_with_exact_shape_volume(good_cohort: pd.DataFrame) -> None:
    table = extract_features(good_cohort, params=FAST, jobs=1, progress=False)
    assert table[["case_id", "label"]].values.tolist() == [
        ["case000", 1], ["case000", 2], ["case001", 1], ["case001", 2], ["case002", 1], ["case002", 2]]
    assert (table["error"] == "").all()
    assert table["age"].tolist() == [61, 61, 72, 72, 55, 55]
    for row in table.itertuples():
        mask = sitk.GetArrayFromImage(sitk.ReadImage(row.mask))
        voxels = int((mask == row.label).sum())
        assert row.original_shape_VoxelVolume == pytest.approx(voxels * 1.0 * 1.0 * 1.5)
    provenance = table.attrs["provenance"]
    assert provenance["params_hash"] and provenance["pyradiomics"] and provenance["params"] == FAST


def test_label_list_and_named_labels(good_cohort: pd.DataFrame) -> None:
    only_two = extract_features(good_cohort, params=FAST, labels=[2], jobs=1, progress=False)
    assert set(only_two["label"]) == {2}
    named = extract_features(good_cohort.iloc[:1], params=FAST, labels={"liver": 1, "kidney": 2, "spleen": 3},
                             jobs=1, progress=False)
    assert named["label_name"].tolist() == ["liver", "kidney", "spleen"]
    assert named["error"].tolist() == ["", "", ""]  # an absent label is not a failure (node-negative patient)
    assert "label 3 absent" in named["note"].tolist()[2] and named["note"].tolist()[:2] == ["", ""]
    assert np.isnan(named["original_firstorder_Mean"].tolist()[2])
    with pytest.raises(SettingsError, match="positive integer"):
        extract_features(good_cohort, params=FAST, labels=[0], progress=False)


def bad_inputs(folder: Path) -> dict[str, tuple[str, str]]:
    """case_id -> (image path, mask path) for each kind of bad input."""
    folder.mkdir(parents=True)
    good = two_label_phantom()
    image = write_image(good.image, folder / "image.nii.gz")
    mask = write_image(good.mask, folder / "mask.nii.gz")
    truncated = folder / "truncated.nii.gz"
    truncated.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    shifted = sitk.Image(good.mask)
    shifted.SetOrigin((5.0, 0.0, 0.0))
    empty = sitk.Image(good.mask) * 0
    fractional = sitk.Cast(good.mask, sitk.sitkFloat32) * 0.5
    flat = sitk.GetImageFromArray(sitk.GetArrayFromImage(good.image)[20])
    flat_mask = sitk.GetImageFromArray(sitk.GetArrayFromImage(good.mask)[20])
    header = folder / "zero.mha"
    write_image(good.image, header, compress=False)
    spacing_line = b"ElementSpacing = 1 1 1.5"
    zero_spacing = folder / "zero_spacing.mha"
    zero_spacing.write_bytes(header.read_bytes().replace(spacing_line, b"ElementSpacing = 0 1 1.5"))
    return {
        "ok": (str(image), str(mask)),
        "missing": (str(folder / "nope.nii.gz"), str(mask)),
        "truncated": (str(truncated), str(mask)),
        "geometry": (str(image), str(write_image(shifted, folder / "shifted.nii.gz"))),
        "empty": (str(image), str(write_image(empty, folder / "empty.nii.gz"))),
        "fractional": (str(image), str(write_image(fractional, folder / "fractional.nii.gz"))),
        "flat2d": (str(write_image(flat, folder / "flat.nii.gz")), str(write_image(flat_mask, folder / "fm.nii.gz"))),
        "zero_spacing": (str(zero_spacing), str(mask)),
    }


def test_every_bad_input_becomes_an_error_row_and_the_rest_completes(tmp_path: Path) -> None:
    cases = bad_inputs(tmp_path / "bad")
    cohort = pd.DataFrame([{"case_id": k, "image": v[0], "mask": v[1]} for k, v in cases.items()])
    table = extract_features(cohort, params={**FAST, "featureClass": {"shape": None, "firstorder": None}},
                             jobs=1, progress=False)
    errors = table.groupby("case_id", sort=False)["error"].first().to_dict()
    assert errors["ok"] == "" and (table[table.case_id == "ok"]["original_shape_VoxelVolume"] > 0).all()
    expected = {
        "missing": ("CohortError", "image file not found"),
        "truncated": ("ImageReadError", "truncated"),
        "geometry": ("GeometryError", "origin differs"),
        "empty": ("MaskError", "empty"),
        "fractional": ("MaskError", "non-integer"),
        "flat2d": ("SettingsError", "2D"),
        "zero_spacing": ("GeometryError", "spacing"),
    }
    for case_id, (kind, words) in expected.items():
        assert errors[case_id].startswith(kind), (case_id, errors[case_id])
        assert words in errors[case_id], (case_id, errors[case_id])


def test_duplicate_case_ids_are_refused(good_cohort: pd.DataFrame) -> None:
    second_scan = good_cohort.iloc[:1].assign(image=good_cohort["image"][1], mask=good_cohort["mask"][1])
    duplicated = pd.concat([good_cohort, second_scan], ignore_index=True)
    table = extract_features(duplicated, params=FAST, jobs=1, progress=False)
    duplicate_rows = table[table["case_id"] == "case000"]
    assert len(duplicate_rows) == 2
    assert duplicate_rows["error"].str.contains("duplicate case_id").all()
    assert (table[table["case_id"] != "case000"]["error"] == "").all()


def test_pyradiomics_batch_rows_of_one_image_are_read_once(good_cohort: pd.DataFrame) -> None:
    batch = pd.DataFrame({"ID": ["a", "a", "b"], "Image": [good_cohort["image"][0]] * 2 + [good_cohort["image"][1]],
                          "Mask": [good_cohort["mask"][0]] * 2 + [good_cohort["mask"][1]], "Label": [2, 1, 2]})
    from radiobio.cohort import read_cohort
    from radiobio.features.extraction import _case_rows

    rows = _case_rows(read_cohort(batch, errors="mark"), "image", "mask", None)
    assert list(zip(rows["case_id"], rows["_labels"])) == [("a", (2, 1)), ("b", (2,))]
    table = extract_features(batch, params=FAST, jobs=1, progress=False)
    assert table[["case_id", "label"]].values.tolist() == [["a", 1], ["a", 2], ["b", 2]]
    assert (table["error"] == "").all()


def test_missing_mask_column_is_named(good_cohort: pd.DataFrame) -> None:
    with pytest.raises(CohortError, match="mask_liver"):
        extract_features(good_cohort, params=FAST, mask_column="mask_liver", progress=False)


def test_unknown_preset_and_invalid_settings(good_cohort: pd.DataFrame) -> None:
    with pytest.raises(SettingsError, match="preset"):
        extract_features(good_cohort, params="petct", progress=False)
    with pytest.raises(SettingsError, match="invalid PyRadiomics parameters"):
        extract_features(good_cohort, params={"setting": {"binWidth": "wide"}}, progress=False)


@pytest.mark.parametrize("preset", ["ct", "mr", "ibsi-ct", "ibsi-config-a", "ibsi-config-c"])
def test_presets_load_and_validate(preset: str) -> None:
    from radiobio.features import load_params

    params = load_params(preset)
    assert "Original" in params["imageType"]
    assert params["setting"]["binWidth"] > 0


def test_parallel_pool_and_outputs_with_provenance(good_cohort: pd.DataFrame, tmp_path: Path) -> None:
    serial = extract_features(good_cohort, params=FAST, jobs=1, progress=False)
    for suffix in (".parquet", ".csv"):
        out = tmp_path / f"features{suffix}"
        parallel = extract_features(good_cohort, params=FAST, jobs=2, out=out, progress=False)
        pd.testing.assert_frame_equal(parallel, serial)
        back = read_feature_table(out)
        assert back.attrs["provenance"]["params_hash"] == serial.attrs["provenance"]["params_hash"]
        np.testing.assert_allclose(back["original_glcm_Contrast"], serial["original_glcm_Contrast"], rtol=1e-12)
        assert not Path(f"{out}.parts").exists()


def test_dask_local_cluster_gives_the_same_table(good_cohort: pd.DataFrame) -> None:
    from distributed import Client, LocalCluster

    serial = extract_features(good_cohort, params=FAST, jobs=1, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        distributed = extract_features(good_cohort, params=FAST, executor=client, progress=False)
        worker_threads = client.run(lambda: __import__("SimpleITK").ProcessObject.GetGlobalDefaultNumberOfThreads())
    pd.testing.assert_frame_equal(distributed, serial)
    assert set(worker_threads.values()) == {1}


def test_single_sphere_volume_matches_voxel_count(tmp_path: Path) -> None:
    phantom = sphere_phantom(radius_mm=7.5, size=(30, 30, 30), spacing=(0.7, 0.7, 1.2))
    cohort = write_cohort([phantom], tmp_path)
    row = extract_features(cohort, params=FAST, jobs=1, progress=False).iloc[0]
    assert row["original_shape_VoxelVolume"] == pytest.approx(phantom.voxel_volume_mm3(1))
    assert row["original_shape_MeshVolume"] == pytest.approx(phantom.shapes[0].volume_mm3, rel=0.05)


def test_a_preset_made_for_another_modality_leaves_a_note(good_cohort: pd.DataFrame) -> None:
    from radiobio.features.extraction import _modality_mismatch

    assert _modality_mismatch("ct", "MR") and _modality_mismatch("mr", "ct")
    assert not _modality_mismatch("ct", "CT") and not _modality_mismatch(None, "MR")
    assert not _modality_mismatch("ct", "PET")  # unknown to the presets: no claim
    table = extract_features(good_cohort.iloc[:1].assign(modality="MR"), params="CT", labels=[1], progress=False)
    assert "made for CT images" in table["note"].iloc[0] and table["error"].iloc[0] == ""
    assert table.attrs["provenance"]["preset"] == "ct"
