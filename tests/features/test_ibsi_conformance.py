"""IBSI conformance of ``extract_features(..., convention="ibsi")``: the IBSI 1 digital phantom and the CT radiomics
phantom under configurations A-E, each one call, compared with every IBSI consensus reference value.

The independent truth is the IBSI reference tables (``$RADIOBIO_TEST_DATA/ibsi/reference_values``). ``docs/ibsi.md``
is generated from these comparisons; ``RADIOBIO_WRITE_DOCS=1`` rewrites it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiobio.errors import SettingsError
from radiobio.features import extract_features
from radiobio.features.conformance import (
    compare_with_reference,
    conformance_page,
    ibsi_check,
    read_reference_values,
    summarise,
)
from tests.conftest import require_data

REPO = Path(__file__).resolve().parents[2]
CONFIGS = "ABCDE"
CT = ("ibsi", "ibsi_1_ct_radiomics_phantom", "nifti")


def _ct_cohort() -> pd.DataFrame:
    return pd.DataFrame({"case_id": ["ct_phantom"], "image": [str(require_data(*CT, "image", "phantom.nii.gz"))],
                         "mask": [str(require_data(*CT, "mask", "mask.nii.gz"))], "modality": ["CT"]})


def _reference(name: str) -> pd.DataFrame:
    return read_reference_values(require_data("ibsi", "reference_values", f"ibsi_1_reference_values_{name}.csv"))


@lru_cache(maxsize=8)
def _comparison(name: str) -> pd.DataFrame:
    if name == "digital_phantom":
        table = ibsi_check()
        shared = _reference("digital_phantom")  # the shipped copy must be IBSI's table, unchanged
        assert list(table["tag"]) == list(shared["tag"])
        np.testing.assert_array_equal(table["reference"], shared["reference"])
        return table
    features = extract_features(_ct_cohort(), params=f"ibsi-config-{name[-1].lower()}", convention="ibsi")
    row = features.iloc[0]
    assert row["error"] == "" and row["note"] == "", (row["error"], row["note"])
    values = {c: row[c] for c in features.columns if c.startswith(("original_", "diagnostics_"))}
    return compare_with_reference(values, _reference(name))


CASES = ["digital_phantom", *(f"config_{c}" for c in CONFIGS)]


@pytest.mark.parametrize("name", CASES)
def test_every_reference_feature_radiobio_outputs_is_within_tolerance(name: str) -> None:
    comparison = _comparison(name)
    computed = comparison[comparison["reference"].notna() & comparison["value"].notna()]
    wrong = computed[~computed["matched"]]
    assert wrong.empty, wrong[["tag", "value", "reference", "allowed"]].to_string()


@pytest.mark.parametrize("name", CASES)
def test_at_least_95_percent_of_the_reference_features_are_computed(name: str) -> None:
    counts = summarise(_comparison(name))
    assert counts["covered"] >= 0.95 * counts["reference"], counts
    # the digital phantom has 482 reference features; each CT configuration 150 or 214 features plus 60 diagnostics
    expected = {"digital_phantom": 482, "config_A": 406, "config_B": 406}.get(name, 270)
    assert counts["reference"] == expected


def test_docs_page_is_generated_from_these_comparisons() -> None:
    page = conformance_page({name: _comparison(name) for name in CASES})
    path = REPO / "docs" / "ibsi.md"
    if os.environ.get("RADIOBIO_WRITE_DOCS") == "1":
        path.write_text(page, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == page, "docs/ibsi.md is out of date: rerun with RADIOBIO_WRITE_DOCS=1"


def test_ibsi_check_command_prints_the_counts(tmp_path: Path) -> None:
    out = tmp_path / "check.csv"
    result = subprocess.run([sys.executable, "-m", "radiobio.cli", "ibsi-check", "-o", "check.csv"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "482 of 482 reference features matched" in result.stdout
    assert result.stderr == ""
    table = pd.read_csv(out)
    assert table["matched"].sum() == 482


def test_pyradiomics_convention_is_unchanged_and_tables_record_their_convention(tmp_path: Path) -> None:
    phantom = ("ibsi", "ibsi_1_digital_phantom", "nifti")
    cohort = pd.DataFrame({"case_id": ["p"], "image": [str(require_data(*phantom, "image", "phantom.nii.gz"))],
                           "mask": [str(require_data(*phantom, "mask", "mask.nii.gz"))]})
    params = {"featureClass": {"firstorder": None}, "setting": {"binWidth": 1}}
    pyradiomics = extract_features(cohort, params=params)
    assert pyradiomics.attrs["provenance"]["convention"] == "pyradiomics"
    assert "original_firstorder_Kurtosis" in pyradiomics.columns
    ibsi = extract_features(cohort, params={**params, "setting": {"binWidth": 1, "resegmentRange": [1, 6]}},
                            convention="ibsi")
    assert ibsi.attrs["provenance"]["convention"] == "ibsi"
    # IBSI's kurtosis is PyRadiomics' minus 3 (excess kurtosis)
    assert ibsi["original_stat_kurt"].iloc[0] == pytest.approx(pyradiomics["original_firstorder_Kurtosis"].iloc[0] - 3)
    out = tmp_path / "features.csv"
    extract_features(cohort, params=params, out=out)
    with pytest.raises(SettingsError, match="'pyradiomics' convention"):
        extract_features(cohort, params={**params, "setting": {"binWidth": 1, "resegmentRange": [1, 6]}},
                         convention="ibsi", out=out)


DIGITAL = {"featureClass": {"glcm": None}, "setting": {"binWidth": 25, "resegmentRange": [-1000, 400]}}


@pytest.mark.parametrize(("params", "convention", "message"), [
    (DIGITAL, "IBSI", "convention must be 'pyradiomics'"),
    ({**DIGITAL, "imageType": {"Original": {}, "LBP3D": {}}}, "ibsi", "LBP and gradient images have no IBSI"),
    ({**DIGITAL, "imageType": {"Gradient": {}}}, "ibsi", "no IBSI definition"),
    ({"featureClass": {"glcm": None}, "setting": {"binWidth": 25}}, "ibsi", "counts bins from the lower bound"),
    ({"featureClass": {"shape2D": None}, "setting": {"binCount": 32}}, "ibsi", "IBSI morphology is always"),
    ({"featureClass": {"glcm": None}, "setting": {"binCount": 32, "force2D": True},
      "ibsi": {"aggregation": ["3D_avg"]}}, "ibsi", "aggregation is set twice"),
    ({"featureClass": {"glcm": None}, "setting": {"binCount": 32, "weightingNorm": "euclidean"}}, "ibsi",
     "without distance weighting"),
    ({"featureClass": {"glcm": None}, "setting": {"binCount": 32, "resampledPixelSpacing": [2, 2, 2],
                                                   "interpolator": "sitkLanczosWindowedSinc"}}, "ibsi",
     "not one IBSI defines"),
    ({"featureClass": {"glcm": None}, "setting": {"binCount": 32}, "ibsi": {"aggregation": ["2D"]}}, "ibsi",
     "ibsi.aggregation must be"),
    ({"featureClass": {"glcm": None}, "setting": {"binCount": 32}, "ibsi": {"outlierSigma": 3, "typo": 1}}, "ibsi",
     "unknown key"),
    ({"featureClass": {"glcm": None}, "setting": {"binCount": 32}, "ibsi": {"outlierSigma": 3}}, "pyradiomics",
     "only the IBSI convention reads"),
])
def test_bad_settings_are_refused_before_any_case(params: dict, convention: str, message: str) -> None:
    missing = pd.DataFrame({"case_id": ["x"], "image": ["no/such/image.nii.gz"], "mask": ["no/such/mask.nii.gz"]})
    with pytest.raises(SettingsError, match=message):
        extract_features(missing, params=params, convention=convention)


def test_cli_refuses_an_ibsi_preset_without_the_convention(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort.csv"
    _ct_cohort().to_csv(cohort, index=False)
    result = subprocess.run([sys.executable, "-m", "radiobio.cli", "extract", "cohort.csv", "-p", "ibsi-ct", "-o",
                             "features.csv", "-q"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "SettingsError" in result.stderr and "--convention ibsi" in result.stderr
    assert not (tmp_path / "features.csv").exists()
