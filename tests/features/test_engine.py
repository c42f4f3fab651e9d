"""Feature values: identical to PyRadiomics' own ``RadiomicsFeatureExtractor.execute``, and equal to the PyRadiomics
baseline CSVs within PyRadiomics' own test tolerance."""

from __future__ import annotations

import ast
import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiobio import extract_features

ALL_CLASSES = {name: None for name in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")}
VARIANTS = {
    "original": {"imageType": {"Original": {}}, "featureClass": ALL_CLASSES, "setting": {}},
    "precrop_log": {"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}}, "featureClass": ALL_CLASSES,
                    "setting": {"preCrop": True}},
    "shared_log": {"imageType": {"LoG": {"sigma": [1.0, 3.0]}}, "featureClass": ALL_CLASSES, "setting": {}},
    "shared_wavelet": {"imageType": {"Wavelet": {}}, "featureClass": {"firstorder": None, "glcm": None},
                       "setting": {}},
    "resampling_log": {"imageType": {"Original": {}, "LoG": {"sigma": [2.0]}}, "featureClass": ALL_CLASSES,
                       "setting": {"resampledPixelSpacing": [2, 2, 2], "interpolator": "sitkBSpline"}},
    "normalization": {"imageType": {"Original": {}}, "featureClass": ALL_CLASSES,
                      "setting": {"normalize": True, "normalizeScale": 100, "binWidth": 5}},
    "resegmentation": {"imageType": {"Original": {}, "Square": {}}, "featureClass": ALL_CLASSES,
                       "setting": {"resegmentRange": [-3, 3], "resegmentMode": "sigma", "resegmentShape": True}},
}


def pyradiomics_reference(image: str, mask: str, params: dict, label: int) -> dict[str, float]:
    """Features from PyRadiomics' own extractor, diagnostics dropped."""
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    extractor = RadiomicsFeatureExtractor()
    extractor._applyParams(paramsDict=copy.deepcopy(params))
    result = extractor.execute(image, mask, label)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def worst_relative_difference(ours: pd.Series, reference: dict[str, float]) -> float:
    assert set(reference) <= set(ours.index), sorted(set(reference) - set(ours.index))[:5]
    values = np.array([ours[k] for k in reference], dtype=float)
    truth = np.array(list(reference.values()), dtype=float)
    same = (values == truth) | (np.isnan(values) & np.isnan(truth))
    diff = np.abs(values - truth) / np.maximum(np.abs(truth), 1e-300)
    return float(np.max(np.where(same, 0.0, diff)))


@pytest.mark.parametrize("case", ["brain1", "lung1"])
def test_identical_to_pyradiomics_execute(pyradiomics_data: Path, case: str) -> None:
    image = str(pyradiomics_data / f"{case}_image.nrrd")
    mask = str(pyradiomics_data / f"{case}_label.nrrd")
    cohort = pd.DataFrame({"case_id": [case], "image": [image], "mask": [mask]})
    for name, params in VARIANTS.items():
        table = extract_features(cohort, params=params, jobs=1, progress=False)
        assert table.loc[0, "error"] == "", (name, table.loc[0, "error"])
        reference = pyradiomics_reference(image, mask, params, 1)
        assert len(reference) > 10
        worst = worst_relative_difference(table.iloc[0], reference)
        assert worst <= 1e-9, f"{case} {name}: worst relative difference {worst:.3g}"


def test_multi_label_mask_matches_per_label_execute(pyradiomics_data: Path) -> None:
    image = str(pyradiomics_data / "prostate_phantom_subvolume.nrrd")
    mask = str(pyradiomics_data / "prostate_phantom_subvolume-label.nrrd")
    params = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}}, "featureClass": ALL_CLASSES,
              "setting": {"binWidth": 10}}
    table = extract_features(pd.DataFrame({"case_id": ["p"], "image": [image], "mask": [mask]}), params=params,
                             jobs=1, progress=False)
    assert table["label"].tolist() == [1, 7, 8, 9]
    for _, row in table.iterrows():
        if row["error"]:
            with pytest.raises(ValueError):
                pyradiomics_reference(image, mask, params, int(row["label"]))
            continue
        reference = pyradiomics_reference(image, mask, params, int(row["label"]))
        assert worst_relative_difference(row, reference) <= 1e-9


def baseline_cases(root: Path) -> list[tuple[str, str]]:
    return [(cls, case) for cls in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
            for case in ("brain1", "brain2", "breast1", "lung1", "lung2")]


def test_matches_pyradiomics_baseline(pyradiomics_data: Path) -> None:
    """Plain baseline columns, settings from each column's diagnostics; PyRadiomics' tolerance is 3 % relative."""
    worst_overall, compared = 0.0, 0
    for feature_class, case in baseline_cases(pyradiomics_data):
        baseline = pd.read_csv(pyradiomics_data / "baseline" / f"baseline_{feature_class}.csv", index_col=0)
        settings = ast.literal_eval(baseline.loc["diagnostics_Configuration_Settings", case])
        image_types = ast.literal_eval(baseline.loc["diagnostics_Configuration_EnabledImageTypes", case])
        settings.pop("additionalInfo", None)
        params = {"imageType": image_types, "featureClass": {feature_class: None}, "setting": settings}
        cohort = pd.DataFrame({"case_id": [case], "image": [str(pyradiomics_data / f"{case}_image.nrrd")],
                               "mask": [str(pyradiomics_data / f"{case}_label.nrrd")]})
        row = extract_features(cohort, params=params, jobs=1, progress=False).iloc[0]
        assert row["error"] == ""
        expected = baseline[case][[i.startswith("original_") for i in baseline.index]].astype(float)
        for name, value in expected.items():
            ours = row[name]
            difference = 0.0 if value == ours else abs(1.0 - ours / value) if value != 0 else 1.0
            worst_overall = max(worst_overall, difference)
            compared += 1
            assert difference < 0.03, f"{case} {name}: {ours} vs baseline {value}"
    assert compared > 400
    print(f"baseline: {compared} values, worst relative difference {worst_overall:.3g}")



def test_a_single_slice_image_resamples_with_b_splines_like_pyradiomics(tmp_path: Path) -> None:
    """ITK treats a one-voxel axis apart, so the B-spline guard for 2- and 3-slice series lets a single slice through;
    the values must still be PyRadiomics' own."""
    import SimpleITK as sitk
    from radiomics import featureextractor

    rng = np.random.default_rng(3)
    image = sitk.GetImageFromArray(rng.normal(40, 20, size=(1, 64, 64)).astype(np.float32))
    image.SetSpacing((0.7, 0.7, 5.0))
    array = np.zeros((1, 64, 64), np.uint8)
    array[0, 20:44, 18:40] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    sitk.WriteImage(image, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    params = {"setting": {"binWidth": 25, "resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline",
                          "force2D": True},
              "imageType": {"Original": {}}, "featureClass": {"firstorder": None}}
    reference = featureextractor.RadiomicsFeatureExtractor(copy.deepcopy(params))
    expected = {k: float(v) for k, v in reference.execute(str(tmp_path / "image.nrrd"),
                                                          str(tmp_path / "mask.nrrd")).items()
                if k.startswith("original_")}
    cohort = pd.DataFrame([{"case_id": "slice", "image": str(tmp_path / "image.nrrd"),
                            "mask": str(tmp_path / "mask.nrrd")}])
    table = extract_features(cohort, params=params, labels=[1])
    assert not table.loc[0, "error"]
    row = table.iloc[0]
    assert expected and all(np.isclose(row[k], v) for k, v in expected.items())
