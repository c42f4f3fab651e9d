"""ICC against Shrout & Fleiss (1979) and a direct least-squares ANOVA; mask / image perturbations against their
geometric truth; the full perturb → extract → ICC loop on phantoms; the ICC filter inside nested_cv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy.stats import f as f_distribution

from radiobio.errors import MaskError, SettingsError
from radiobio.features.robustness import (
    add_noise,
    default_perturbations,
    dilate_mask,
    erode_mask,
    estimate_noise_sd,
    icc,
    icc_matrix,
    perturb_cohort,
    robust_features,
    robustness_table,
    translate_mask,
)
from radiobio.synthetic import Ellipsoid, ellipsoid_phantom, sphere_phantom, write_cohort

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; published ICC(1,1) = .17, ICC(3,1) = .71
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])


def _anova_by_least_squares(x: np.ndarray) -> dict[str, float]:
    """ICCs and CIs from residual sums of squares of dummy-variable regressions (no row/column means used)."""
    n, k = x.shape
    y = x.ravel()
    target = np.repeat(np.arange(n), k)
    rater = np.tile(np.arange(k), n)
    targets_only = np.eye(n)[target]
    both = np.hstack([targets_only, np.eye(k)[rater][:, 1:]])

    def rss(design: np.ndarray) -> float:
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        return float(((y - design @ beta) ** 2).sum())

    ss_within, ss_error = rss(targets_only), rss(both)
    ss_rows = rss(np.ones((n * k, 1))) - ss_within
    msr, msw, mse = ss_rows / (n - 1), ss_within / (n * (k - 1)), ss_error / ((n - 1) * (k - 1))
    out = {}
    for name, ms, df2 in (("icc_1_1", msw, n * (k - 1)), ("icc_3_1", mse, (n - 1) * (k - 1))):
        out[name] = (msr - ms) / (msr + (k - 1) * ms)
        fl = msr / ms / f_distribution.ppf(0.975, n - 1, df2)
        fu = msr / ms * f_distribution.ppf(0.975, df2, n - 1)
        out[f"{name}_lower_95"], out[f"{name}_upper_95"] = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    return out


def test_icc_equals_shrout_fleiss_published_values_and_direct_anova():
    result = icc_matrix(SHROUT_FLEISS)
    assert round(result["icc_1_1"], 2) == 0.17
    assert round(result["icc_3_1"], 2) == 0.71
    direct = _anova_by_least_squares(SHROUT_FLEISS.astype(float))
    for key, value in direct.items():
        assert result[key] == pytest.approx(value, rel=1e-9)
    assert result["icc_1_1_lower_95"] < result["icc_1_1"] < result["icc_1_1_upper_95"]


def test_icc_long_table_and_rater_offset():
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 10, 30)
    offsets = np.array([0.0, 5.0, -5.0])
    rows = [{"case_id": f"c{i}", "perturbation": f"r{j}", "offset_only": truth[i] + offsets[j],
             "noisy": truth[i] + rng.normal(0, 10), "label": 1} for i in range(30) for j in range(3)]
    table = icc(pd.DataFrame(rows)).set_index("feature")  # target_column="case_id", rater_column="perturbation"
    assert list(table.index) == ["offset_only", "noisy"]  # 'label' is not a feature
    assert table.loc["offset_only", "icc_3_1"] == pytest.approx(1.0)  # consistency ignores a rater offset
    assert table.loc["offset_only", "icc_1_1"] < 0.9  # absolute agreement does not
    assert table.loc["noisy", "icc_1_1_lower_95"] < 0.5 < table.loc["offset_only", "icc_1_1"]
    assert table.loc["noisy", "n_targets"] == 30 and table.loc["noisy", "n_raters"] == 3
    direct = _anova_by_least_squares(pd.DataFrame(rows).pivot(index="case_id", columns="perturbation",
                                                              values="noisy").to_numpy())
    assert table.loc["noisy", "icc_1_1"] == pytest.approx(direct["icc_1_1"])


def test_robust_features_and_filter_threshold():
    table = pd.DataFrame({"feature": ["a", "b", "c"], "icc_1_1": [0.95, 0.85, 0.91],
                          "icc_1_1_lower_95": [0.92, 0.7, 0.8], "icc_3_1": [0.96, 0.93, 0.92]})
    assert robust_features(table) == ["a", "c"]
    assert robust_features(table, use_lower_bound=True) == ["a"]
    assert robust_features(table, statistic="icc_3_1") == ["a", "b", "c"]
    assert robust_features(table, threshold=0.99) == []
    with pytest.raises(SettingsError, match="'icc_2_1'"):
        robust_features(table, statistic="icc_2_1")


def test_robust_feature_list_keeps_its_columns_in_a_feature_subset():
    from radiobio.outcome import FeatureSubset

    table = pd.DataFrame({"feature": ["a", "b", "c"], "icc_1_1": [0.95, 0.85, 0.91]})
    X = pd.DataFrame(np.ones((2, 4)), columns=["c", "a", "b", "unknown"])
    assert list(FeatureSubset(robust_features(table)).fit_transform(X).columns) == ["c", "a"]


def test_robust_features_inside_nested_cv():
    from radiobio.outcome import nested_cv

    rng = np.random.default_rng(1)
    n = 90
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    X["y"] = (X["f0"] + rng.normal(0, 0.5, n) > 0).astype(int)
    table = pd.DataFrame({"feature": [f"f{i}" for i in range(6)], "icc_1_1": [0.95, 0.5, 0.5, 0.95, 0.5, 0.5]})
    result = nested_cv(X, features=[f"f{i}" for i in range(6)], target_column="y",
                       robustness=robust_features(table), outer=3, repeats=1, inner=2)
    assert set(result.selected.query("count > 0")["feature"]) <= {"f0", "f3"}
    assert result.summary.set_index("metric").loc["auc", "mean"] > 0.8


def _sphere_mask() -> sitk.Image:
    return sphere_phantom(radius_mm=8.0, size=(32, 32, 32)).mask


def _count(mask: sitk.Image, label: int = 1) -> int:
    return int((sitk.GetArrayViewFromImage(mask) == label).sum())


def test_erode_and_dilate_by_one_voxel():
    mask = _sphere_mask()
    original = sitk.GetArrayFromImage(mask) == 1
    eroded = sitk.GetArrayFromImage(erode_mask(mask)) == 1
    dilated = sitk.GetArrayFromImage(dilate_mask(mask)) == 1
    assert eroded.sum() < original.sum() < dilated.sum()
    assert not (eroded & ~original).any() and not (original & ~dilated).any()
    # a one-voxel shell of a radius-8 sphere: about 4πr² voxels on each side (r = 7.5 and 8.5 voxels)
    assert original.sum() - eroded.sum() == pytest.approx(4 * np.pi * 7.5 ** 2, rel=0.3)
    assert dilated.sum() - original.sum() == pytest.approx(4 * np.pi * 8.5 ** 2, rel=0.3)
    assert erode_mask(mask).GetSpacing() == mask.GetSpacing()


def test_dilation_never_overwrites_another_label_and_missing_label_fails():
    phantom = ellipsoid_phantom([Ellipsoid((12, 16, 16), (5, 5, 5), 1), Ellipsoid((22, 16, 16), (5, 5, 5), 2)],
                                size=(32, 32, 32), spacing=(1.0, 1.0, 1.0))
    dilated = dilate_mask(phantom.mask, label=1)
    assert _count(dilated, 2) == _count(phantom.mask, 2)
    assert _count(dilated, 1) > _count(phantom.mask, 1)
    with pytest.raises(MaskError, match="label 7"):
        erode_mask(phantom.mask, label=7)


def test_translation_moves_the_centroid_by_the_shift():
    mask = _sphere_mask()
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    before = np.array(stats.GetCentroid(1))
    moved = translate_mask(mask, shift_mm=(2.0, -1.0, 0.0))
    stats.Execute(moved)
    assert np.allclose(np.array(stats.GetCentroid(1)) - before, [2.0, -1.0, 0.0], atol=1e-6)
    assert _count(moved) == _count(mask)


def test_noise_addition_at_the_estimated_level():
    image = sphere_phantom(radius_mm=8.0, size=(32, 32, 32), seed=3).image  # phantom noise SD 10
    assert estimate_noise_sd(image) == pytest.approx(10.0, rel=0.35)
    noisy = add_noise(image, sd=5.0, seed=1)
    difference = sitk.GetArrayFromImage(noisy) - sitk.GetArrayFromImage(image)
    assert difference.std() == pytest.approx(5.0, rel=0.05) and abs(difference.mean()) < 0.2
    assert noisy.GetOrigin() == image.GetOrigin()


def test_perturb_cohort_writes_every_case_and_perturbation(tmp_path):
    phantoms = [sphere_phantom(radius_mm=r, size=(32, 32, 32), seed=i) for i, r in enumerate((6.0, 8.0))]
    cohort = write_cohort(phantoms, tmp_path / "cohort")
    perturbed = perturb_cohort(cohort, out_dir=tmp_path / "perturbed")
    names = [p.name for p in default_perturbations()]
    assert len(perturbed) == 2 * len(names)
    assert set(perturbed["perturbation"]) == set(names)
    row = perturbed.set_index("case_id").loc["case001~erode"]
    assert _count(sitk.ReadImage(row["mask"])) < _count(sitk.ReadImage(cohort.loc[1, "mask"]))
    assert perturbed.set_index("case_id").loc["case000~original", "mask"] == cohort.loc[0, "mask"]


FAST_PARAMS = {"imageType": {"Original": {}}, "featureClass": {"shape": ["MeshVolume", "Sphericity"],
                                                               "firstorder": ["Mean", "Kurtosis"]},
               "setting": {"binWidth": 25, "label": 1}}


def test_robustness_end_to_end_on_phantoms(tmp_path):
    """Spheres of clearly different sizes and intensities: volume and mean intensity are robust to one-voxel
    perturbations, the kurtosis of pure noise is not."""
    radii, intensities = (5.0, 8.0, 11.0, 14.0, 17.0), (40.0, 80.0, 120.0, 160.0, 200.0)
    phantoms = [sphere_phantom(radius_mm=r, size=(44, 44, 44), intensity=v, seed=i)
                for i, (r, v) in enumerate(zip(radii, intensities, strict=True))]
    cohort = write_cohort(phantoms, tmp_path / "cohort")
    table, features = robustness_table(cohort, out_dir=tmp_path / "perturbed", params=FAST_PARAMS,
                                       return_features=True)
    assert (features["error"].fillna("") == "").all()
    assert len(features) == 5 * len(default_perturbations())
    result = table.set_index("feature")
    assert result.loc["original_shape_MeshVolume", "icc_1_1"] > 0.9
    assert result.loc["original_firstorder_Mean", "icc_1_1"] > 0.9
    assert result.loc["original_firstorder_Kurtosis", "icc_1_1"] < 0.9
    assert "original_shape_MeshVolume" in robust_features(table)
    # the ICC equals one computed directly from the extracted values
    wide = features.pivot(index="source_case_id", columns="perturbation", values="original_shape_MeshVolume")
    assert result.loc["original_shape_MeshVolume", "icc_1_1"] == pytest.approx(
        _anova_by_least_squares(wide.to_numpy())["icc_1_1"])


def test_robustness_table_is_a_function_and_robustness_stays_the_module():
    """The public function no longer shares its module's name: both stay what they are after any import order."""
    import types

    import radiobio.features as features
    from radiobio.features import robustness as module

    assert isinstance(module, types.ModuleType)
    assert callable(features.robustness_table) and features.robustness_table is module.robustness_table
    assert isinstance(features.robustness, types.ModuleType)  # still the module after the function was looked up
    assert "RobustnessFilter" not in dir(features) and not hasattr(module, "RobustnessFilter")
