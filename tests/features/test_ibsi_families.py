"""IBSI 1 feature families from numpy arrays: every reference row of the digital phantom and of the CT phantom under
configuration A (2D texture, no interpolation), and hand-computed truths.

IBSI reference values are published to 3 significant digits; a tolerance of 0 therefore means "rounds to the
reference value", i.e. a deviation of at most half a unit in the third significant digit.
"""

from __future__ import annotations

import csv
import math
from functools import lru_cache

import numpy as np
import pytest
import SimpleITK as sitk

from radiobio.errors import GeometryError, MaskError, SettingsError
from radiobio.features.conformance import allowed_deviation
from radiobio.features.ibsi_families import FAMILIES, ibsi_family_features
from tests.conftest import require_data

PHANTOM = ("ibsi", "ibsi_1_digital_phantom", "nifti")


def _all_tags() -> list[str]:
    """Every tag the module computes (from a small synthetic ROI, so that collection needs no data)."""
    rng = np.random.default_rng(0)
    image = rng.integers(1, 5, size=(3, 4, 4)).astype(float)
    mask = np.zeros(image.shape, dtype=bool)
    mask[:, 1:3, 1:4] = True
    return list(ibsi_family_features(image, morphological_mask=mask, spacing_zyx_mm=(2.0, 1.0, 1.0)))


TAGS = _all_tags()


@lru_cache(maxsize=1)
def _phantom_features() -> dict[str, float]:
    image = sitk.ReadImage(str(require_data(*PHANTOM, "image", "phantom.nii.gz")))
    mask = sitk.ReadImage(str(require_data(*PHANTOM, "mask", "mask.nii.gz")))
    intensities = sitk.GetArrayFromImage(image).astype(float)
    roi = sitk.GetArrayFromImage(mask) > 0
    # The phantom's grey levels are already its bins: no interpolation, re-segmentation or discretisation.
    return ibsi_family_features(intensities, morphological_mask=roi, spacing_zyx_mm=image.GetSpacing()[::-1])


@lru_cache(maxsize=2)
def _reference(name: str = "digital_phantom") -> dict[str, tuple[str, str]]:
    path = require_data("ibsi", "reference_values", f"ibsi_1_reference_values_{name}.csv")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return {row["tag"]: (row["reference value"].strip(), row["tolerance"].strip())
                for row in csv.DictReader(handle)}


@lru_cache(maxsize=1)
def _ct_config_a_features() -> dict[str, float]:
    """IBSI configuration A on the CT radiomics phantom: original grid, re-segmentation to [-500, 400] HU, fixed bin
    size 25 HU counted from -500 HU; the IVH runs over the re-segmentation range in 1 HU steps."""
    folder = ("ibsi", "ibsi_1_ct_radiomics_phantom", "nifti")
    image = sitk.ReadImage(str(require_data(*folder, "image", "phantom.nii.gz")))
    mask = sitk.ReadImage(str(require_data(*folder, "mask", "mask.nii.gz")))
    hu = sitk.GetArrayFromImage(image).astype(float)
    roi = sitk.GetArrayFromImage(mask) > 0
    kept = roi & (hu >= -500) & (hu <= 400)
    grey = np.where(kept, np.floor((hu + 500) / 25) + 1, 0)
    return ibsi_family_features(hu, morphological_mask=roi, intensity_mask=kept, grey_levels=grey,
                                intensity_range=(-500.0, 400.0), spacing_zyx_mm=image.GetSpacing()[::-1])


@pytest.mark.parametrize("tag", TAGS)
def test_digital_phantom_matches_ibsi_reference(tag: str) -> None:
    reference = _reference()
    assert tag in reference, f"{tag} is not an IBSI 1 tag"
    value_text, tolerance_text = reference[tag]
    if value_text in ("", "—", "-"):
        pytest.skip(f"{tag}: IBSI gives no reference value (not standardised)")
    expected, tolerance = float(value_text), float(tolerance_text or 0)
    value = _phantom_features()[tag]
    assert abs(value - expected) <= allowed_deviation(expected, tolerance), (tag, value, expected, tolerance)


@pytest.mark.parametrize("tag", [tag for tag in TAGS if not tag.endswith(("_2_5D", "_3D"))])
def test_ct_phantom_configuration_a_matches_ibsi_reference(tag: str) -> None:
    value_text, tolerance_text = _reference("config_A").get(tag, ("", ""))
    if value_text in ("", "—", "-"):
        pytest.skip(f"{tag}: no configuration A reference value")
    expected, tolerance = float(value_text), float(tolerance_text or 0)
    value = _ct_config_a_features()[tag]
    assert abs(value - expected) <= allowed_deviation(expected, tolerance), (tag, value, expected, tolerance)


def test_every_testable_reference_row_of_the_families_is_computed() -> None:
    reference = _reference()
    prefixes = tuple(f"{family}_" for family in FAMILIES)
    testable = {tag for tag, (value, _) in reference.items()
                if tag.startswith(prefixes) and value not in ("", "—", "-")}
    assert len(testable) == 122
    assert testable <= set(_phantom_features())


def test_digital_phantom_geometry_and_known_counts() -> None:
    features = _phantom_features()
    # 74 ROI voxels of 2 x 2 x 2 mm.
    assert features["morph_vol_approx"] == pytest.approx(74 * 8.0)
    # 50 of the 74 voxels have grey level 1: the mode, the median and the p10.
    assert features["ih_mode"] == 1.0 and features["stat_median"] == 1.0
    assert features["ih_min_grad"] == pytest.approx(-50.0)


def _line(values: list[float], spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    image = np.asarray(values, dtype=float).reshape(1, 1, -1)
    return ibsi_family_features(image, morphological_mask=np.ones(image.shape, dtype=bool), spacing_zyx_mm=spacing,
                                families=["stat", "morph"])


def test_statistics_by_hand() -> None:
    features = _line([1, 2, 3, 4, 10])
    # median 3, |x - 3| = 2, 1, 0, 1, 7
    assert features["stat_medad"] == pytest.approx(11 / 5)
    # mean 4, variance (9 + 4 + 1 + 0 + 36) / 5 = 10
    assert features["stat_var"] == pytest.approx(10.0)
    assert features["stat_cov"] == pytest.approx(math.sqrt(10) / 4)
    # p25 = 2, p75 = 4 (linear interpolation between order statistics)
    assert features["stat_qcod"] == pytest.approx((4 - 2) / (4 + 2))
    assert features["stat_energy"] == pytest.approx(1 + 4 + 9 + 16 + 100)
    # excess kurtosis: m4 / m2^2 - 3 with m4 = (81 + 16 + 1 + 0 + 1296) / 5
    assert features["stat_kurt"] == pytest.approx(278.8 / 100 - 3)


def test_intensity_histogram_by_hand() -> None:
    grey = np.array([1, 1, 2, 4], dtype=float).reshape(1, 1, 4)
    features = ibsi_family_features(grey, morphological_mask=np.ones(grey.shape, bool), spacing_zyx_mm=(1, 1, 1),
                                    families=["ih"])
    # counts over bins 1..4: 2, 1, 0, 1; central differences: -1, -1, 0, 1
    assert features["ih_max_grad"] == 1.0 and features["ih_max_grad_g"] == 4.0
    assert features["ih_min_grad"] == -1.0 and features["ih_min_grad_g"] == 1.0
    assert features["ih_mode"] == 1.0
    assert features["ih_entropy"] == pytest.approx(1.5)
    assert features["ih_uniformity"] == pytest.approx(0.25 + 0.0625 + 0.0625)
    # a fifth, empty bin changes the histogram's last gradient but not the voxel statistics
    wider = ibsi_family_features(grey, morphological_mask=np.ones(grey.shape, bool), spacing_zyx_mm=(1, 1, 1),
                                 families=["ih"], n_grey_levels=5)
    assert wider["ih_mean"] == features["ih_mean"] and wider["ih_min_grad"] == -1.0


def test_intensity_volume_histogram_by_hand() -> None:
    values = np.arange(11, dtype=float).reshape(1, 1, 11)
    features = ibsi_family_features(values, morphological_mask=np.ones(values.shape, bool),
                                    spacing_zyx_mm=(1, 1, 1), families=["ivh"])
    # one voxel per intensity 0..10: a fraction (11 - k) / 11 of the volume has intensity >= k
    assert features["ivh_v10"] == pytest.approx(10 / 11)
    assert features["ivh_v90"] == pytest.approx(2 / 11)
    assert features["ivh_i10"] == 10.0
    assert features["ivh_i90"] == 2.0
    # a re-segmentation range wider than the ROI stretches the intensity fraction: 10 % of [-10, 10] is -8
    wide = ibsi_family_features(values, morphological_mask=np.ones(values.shape, bool), spacing_zyx_mm=(1, 1, 1),
                                families=["ivh"], intensity_range=(-10.0, 10.0))
    assert wide["ivh_v10"] == 1.0
    # bins of width 5 from 0: centres 2.5, 7.5, 12.5 holding 5, 5 and 1 voxels
    binned = ibsi_family_features(values, morphological_mask=np.ones(values.shape, bool), spacing_zyx_mm=(1, 1, 1),
                                  families=["ivh"], ivh_bin_width=5.0)
    assert binned["ivh_i10"] == 12.5
    assert binned["ivh_v90"] == pytest.approx(1 / 11)


def test_local_intensity_peak_by_hand() -> None:
    image = np.full((11, 11, 11), 5.0)
    image[5, 5, 5] = 7.0
    roi = np.zeros(image.shape, dtype=bool)
    roi[3:8, 3:8, 3:8] = True
    features = ibsi_family_features(image, morphological_mask=roi, spacing_zyx_mm=(2.0, 2.0, 2.0), families=["loc"])
    # radius 6.2 mm at 2 mm spacing: the 123 offsets with a^2 + b^2 + c^2 <= 9
    assert features["loc_peak_loc"] == pytest.approx((122 * 5 + 7) / 123)
    assert features["loc_peak_glob"] == pytest.approx((122 * 5 + 7) / 123)
    # at a corner of the image only the voxels inside the image count: (0..3)^3 offsets within the radius
    corner = np.zeros((6, 6, 6))
    corner[0, 0, 0] = 20.0
    inside = sum(1 for a in range(4) for b in range(4) for c in range(4) if a * a + b * b + c * c <= 9)
    corner_roi = np.zeros(corner.shape, dtype=bool)
    corner_roi[0, 0, 0] = True
    features = ibsi_family_features(corner, morphological_mask=corner_roi, spacing_zyx_mm=(2.0, 2.0, 2.0),
                                    families=["loc"])
    assert features["loc_peak_loc"] == pytest.approx(20.0 / inside)


def test_spatial_autocorrelation_and_centre_of_mass_by_hand() -> None:
    features = _line([1, 2, 3])
    # deviations -1, 0, 1; pair weights 1, 1/2, 1 (inverse distance, mm)
    assert features["morph_moran_i"] == pytest.approx(3 * (-0.5) / (2.5 * 2))
    assert features["morph_geary_c"] == pytest.approx(2 * (1 + 2 + 1) / (2 * 2.5 * 2))
    pair = _line([1, 3], spacing=(1.0, 1.0, 2.0))
    # geometric centre at x = 1 mm, intensity-weighted centre at (0 * 1 + 2 * 3) / 4 = 1.5 mm
    assert pair["morph_com"] == pytest.approx(0.5)
    assert pair["morph_vol_approx"] == pytest.approx(4.0)
    assert pair["morph_integ_int"] == pytest.approx(pair["morph_volume"] * 2.0)
    assert math.isnan(pair["stat_rmad"])  # no voxel within [p10, p90] = [1.2, 2.8]


def test_sphere_morphology_against_geometry() -> None:
    z, y, x = np.mgrid[-16:17, -16:17, -16:17]
    radius = 12.0
    ball = x**2 + y**2 + z**2 <= radius**2
    features = ibsi_family_features(np.full(ball.shape, 3.0), morphological_mask=ball, spacing_zyx_mm=(0.5, 0.5, 0.5),
                                    families=["morph"])
    r_mm = radius * 0.5
    # the mesh of a voxelised ball is slightly smaller than the ball
    assert features["morph_volume"] == pytest.approx(4 / 3 * np.pi * r_mm**3, rel=0.02)
    # a solid ball's PCA eigenvalues are r^2 / 5: major axis 4 r / sqrt(5), enclosing-ellipsoid density (5/4)^1.5
    assert features["morph_pca_maj_axis"] == pytest.approx(4 * r_mm / math.sqrt(5), rel=0.01)
    assert features["morph_pca_elongation"] == pytest.approx(1.0, abs=0.01)
    assert features["morph_vol_dens_aee"] == pytest.approx(1.25**1.5, rel=0.01)
    # the mesh crosses the axes half-way between the pole voxels and the background: 2 * (12 + 0.5) voxels
    assert features["morph_diam"] == pytest.approx((2 * radius + 1) * 0.5)
    assert 0.9 < features["morph_vol_dens_conv_hull"] <= 1.0
    # constant intensities: perfect spatial correlation by convention
    assert features["morph_moran_i"] == 1.0 and features["morph_geary_c"] == 1.0


def test_distance_zones_by_hand() -> None:
    grey = np.ones((1, 3, 3))
    grey[0, 1, 1] = 2.0
    features = ibsi_family_features(grey, morphological_mask=np.ones(grey.shape, bool), spacing_zyx_mm=(1, 1, 1),
                                    families=["dzm"])
    # in the slice: the ring of 1s is one zone at distance 1, the centre a zone at distance 2
    assert features["dzm_sde_2D"] == pytest.approx((1 + 1 / 4) / 2)
    assert features["dzm_lde_2D"] == pytest.approx((1 + 4) / 2)
    assert features["dzm_z_perc_2D"] == pytest.approx(2 / 9)
    assert features["dzm_sdhge_2D"] == pytest.approx((1 + 4 / 4) / 2)
    # in 3D the single slice is all border: both zones at distance 1
    assert features["dzm_sde_3D"] == 1.0
    assert features["dzm_lgze_3D"] == pytest.approx((1 + 1 / 4) / 2)
    assert features["dzm_zd_var_3D"] == 0.0
    assert features["dzm_zd_entr_3D"] == pytest.approx(1.0)


def test_family_selection_returns_only_that_family() -> None:
    features = _line([1, 2, 3])
    assert {tag.split("_")[0] for tag in features} == {"stat", "morph"}


def test_bad_input_raises_radiobio_errors() -> None:
    image = np.ones((2, 2, 2))
    mask = np.ones((2, 2, 2), dtype=bool)
    with pytest.raises(SettingsError, match="unknown IBSI feature families"):
        ibsi_family_features(image, morphological_mask=mask, spacing_zyx_mm=(1, 1, 1), families=["glcm"])
    with pytest.raises(MaskError, match="empty"):
        ibsi_family_features(image, morphological_mask=np.zeros_like(mask), spacing_zyx_mm=(1, 1, 1))
    with pytest.raises(GeometryError, match="shape"):
        ibsi_family_features(image, morphological_mask=mask[:1], spacing_zyx_mm=(1, 1, 1))
    with pytest.raises(GeometryError, match="spacing"):
        ibsi_family_features(image, morphological_mask=mask, spacing_zyx_mm=(1, 0, 1))
    with pytest.raises(SettingsError, match="grey_levels"):
        ibsi_family_features(image * 0.5, morphological_mask=mask, spacing_zyx_mm=(1, 1, 1), families=["ih"])
    with pytest.raises(SettingsError, match="intensity_range"):
        ibsi_family_features(image, morphological_mask=mask, spacing_zyx_mm=(1, 1, 1), intensity_range=(400.0,))
    with pytest.raises(SettingsError, match="ivh_bin_width"):
        ibsi_family_features(image, morphological_mask=mask, spacing_zyx_mm=(1, 1, 1), ivh_bin_width=0.0)
    outside = mask.copy()
    outside[0, 0, 0] = False
    with pytest.raises(MaskError, match="outside morphological_mask"):
        ibsi_family_features(image, morphological_mask=outside, intensity_mask=mask, spacing_zyx_mm=(1, 1, 1))
