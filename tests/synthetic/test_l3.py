"""Synthetic L3 slices: deterministic, plausible HU per tissue, exact labels, physical spacing, demo cohort files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.cohort import read_cohort
from radiobio.synthetic.l3 import L3_LABELS, l3_clinical, l3_phantom, write_l3_cohort


def _arrays(phantom) -> tuple[np.ndarray, np.ndarray]:
    return sitk.GetArrayFromImage(phantom.image), sitk.GetArrayFromImage(phantom.mask)


def test_deterministic_by_seed_and_different_between_seeds() -> None:
    a, b, c = (l3_phantom(seed=s, size=192) for s in (4, 4, 5))
    assert np.array_equal(_arrays(a)[0], _arrays(b)[0]) and np.array_equal(_arrays(a)[1], _arrays(b)[1])
    assert not np.array_equal(_arrays(a)[1], _arrays(c)[1])


def test_tissues_have_plausible_attenuation_and_every_label_is_present() -> None:
    phantom = l3_phantom(seed=1, sex="F", bmi=28, myosteatosis=0.2)
    hu, labels = _arrays(phantom)
    assert hu.dtype == np.int16 and labels.dtype == np.uint8 and hu.shape == (1, 512, 512)
    assert sorted(np.unique(labels)) == [0, 1, 2, 3, 4]
    median = {t: float(np.median(hu[labels == v])) for t, v in L3_LABELS.items()}
    assert 25 < median["muscle"] < 55
    assert -115 < median["sat"] < -85 and -115 < median["vat"] < -70 and -110 < median["imat"] < -30
    assert np.median(hu[0, :5, :5]) < -950  # air in the corner
    assert hu.max() > 400  # bone
    body_fraction = np.count_nonzero(labels) / labels.size
    assert 0.2 < body_fraction < 0.8


def test_area_truth_spacing_and_2d_option() -> None:
    thin = l3_phantom(seed=2, size=256, thickness_mm=3.0)
    flat = l3_phantom(seed=2, size=256, volume=False)
    spacing = thin.mask.GetSpacing()
    assert thin.mask.GetDimension() == 3 and spacing[2] == 3.0 and spacing[0] == spacing[1] > 0.5
    assert flat.mask.GetDimension() == 2 and flat.mask.GetSpacing() == spacing[:2]
    assert np.array_equal(sitk.GetArrayFromImage(flat.mask), sitk.GetArrayFromImage(thin.mask)[0])
    labels = sitk.GetArrayFromImage(thin.mask)
    assert thin.area_cm2("sat") == pytest.approx(np.count_nonzero(labels == 2) * spacing[0] * spacing[1] / 100)
    binary = {t: sitk.GetArrayFromImage(m) for t, m in thin.masks().items()}
    assert all(np.array_equal(binary[t], (labels == v).astype(np.uint8)) for t, v in L3_LABELS.items())


def test_drawing_parameters_move_the_tissues_they_name() -> None:
    lean = l3_phantom(seed=3, size=256, muscle_scale=0.65)
    strong = l3_phantom(seed=3, size=256, muscle_scale=1.2)
    assert strong.area_cm2("muscle") > 1.4 * lean.area_cm2("muscle")
    man, woman = (l3_phantom(seed=3, size=256, sex=s, bmi=30) for s in ("M", "F"))
    assert woman.area_cm2("sat") > man.area_cm2("sat") and man.area_cm2("vat") > woman.area_cm2("vat")
    fatty = sitk.GetArrayFromImage(l3_phantom(seed=3, size=256, myosteatosis=0.9).image)
    clean = sitk.GetArrayFromImage(l3_phantom(seed=3, size=256, myosteatosis=0.0).image)
    muscle = sitk.GetArrayFromImage(lean.mask) == 1
    assert fatty[muscle].mean() < clean[muscle].mean() - 10
    with pytest.raises(ValueError, match="sex"):
        l3_phantom(sex="X")


def test_demo_cohort_files_and_clinical_table(tmp_path: Path) -> None:
    cohort = write_l3_cohort(tmp_path, n=3, seed=2, size=128)
    manifest = read_cohort(tmp_path / "cohort.csv")
    assert list(manifest.columns) == ["case_id", "image", "mask", "mask_muscle", "mask_sat", "mask_vat",
                                      "mask_imat", "sex", "height_m", "weight_kg"]
    assert manifest["image"].tolist() == cohort["image"].tolist()  # relative paths resolve to the files
    truth = pd.read_csv(tmp_path / "truth.csv")
    for i, case in manifest.iterrows():
        labels = sitk.GetArrayFromImage(sitk.ReadImage(case["mask"]))
        sat = sitk.GetArrayFromImage(sitk.ReadImage(case["mask_sat"]))
        assert np.array_equal(sat, (labels == 2).astype(np.uint8))
        spacing = sitk.ReadImage(case["mask"]).GetSpacing()
        assert truth.at[i, "vat_cm2"] == pytest.approx(np.count_nonzero(labels == 3) * spacing[0] * spacing[1] / 100)
    clinical = l3_clinical(200, seed=0)
    assert set(clinical["sex"]) == {"M", "F"} and clinical["height_m"].between(1.45, 2.02).all()
    bmi = clinical["weight_kg"] / clinical["height_m"] ** 2
    assert bmi.between(17, 39).all() and 23 < bmi.mean() < 29
