"""Perturbations of the stress test on real MRI and CT images: severity 0 is the identity, severity 1 changes the
image and keeps its grid, and the strengths match the definitions (noise SD, Rayleigh background, field range,
intensity scale) computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radiobio.errors import SettingsError
from radiobio.segmentation.perturbations import (
    BLUR_SIGMA_MAX_MM,
    CT_ONLY,
    PERTURBATIONS,
    intensity_scale,
    intensity_stats,
    looks_like_ct,
    perturb,
    perturbation_names,
)

NAMES = ["gaussian_noise", "rician_noise", "bias_field", "motion_ghosting", "blur", "low_resolution", "contrast",
         "intensity_scale", "partial_fov", "metal_streaks"]


@pytest.fixture(scope="module")
def mr() -> sitk.Image:
    from tests.conftest import require_data

    return sitk.ReadImage(str(require_data("hippocampus", "images", "hippocampus_023.nii.gz")))


@pytest.fixture(scope="module")
def ct() -> sitk.Image:
    from tests.conftest import require_data

    return sitk.ReadImage(str(require_data("abdomen_ct", "example_ct.nii.gz")))


def ramp_image(seed: int = 1) -> sitk.Image:
    """40³ voxels at 2 mm: half background 0, half foreground evenly spaced from 1000 to 1200 (shuffled), so the
    foreground's 1st and 99th percentiles are 1002 and 1198 and its range is 196 exactly."""
    n = 40 ** 3
    values = np.concatenate([np.zeros(n // 2), np.linspace(1000.0, 1200.0, n // 2)])
    np.random.default_rng(seed).shuffle(values)
    image = sitk.GetImageFromArray(values.reshape(40, 40, 40).astype(np.float32))
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetOrigin((-10.0, 5.0, 3.0))
    return image


def image_for(name: str, mr: sitk.Image, ct: sitk.Image) -> sitk.Image:
    return ct if name == "metal_streaks" else mr


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing())
            and np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetDirection(), b.GetDirection()))


def test_registry_names():
    assert list(PERTURBATIONS) == NAMES
    assert "metal_streaks" not in perturbation_names("MR") and perturbation_names("CT") == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_is_the_identity_bit_for_bit(name, mr, ct):
    image = image_for(name, mr, ct)
    out = PERTURBATIONS[name](image, 0.0, 7)
    assert out.GetPixelID() == image.GetPixelID() and same_grid(out, image)
    assert np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(image))
    out[0, 0, 0] = 12345  # a copy: the input is untouched
    assert sitk.GetArrayFromImage(image)[0, 0, 0] != 12345


@pytest.mark.parametrize("name", NAMES)
def test_severity_one_changes_the_image_and_keeps_the_grid(name, mr, ct):
    image = image_for(name, mr, ct)
    out = PERTURBATIONS[name](image, 1.0, 7)
    assert same_grid(out, image)
    before = sitk.GetArrayFromImage(image).astype(float)
    after = sitk.GetArrayFromImage(out).astype(float)
    rms = np.sqrt(np.mean((after - before) ** 2))
    assert rms > 0.05 * intensity_stats(image).range, name  # at least 5 % of the anatomy's intensity range
    again = PERTURBATIONS[name](image, 1.0, 7)  # pure: same arguments, same voxels
    assert np.array_equal(sitk.GetArrayFromImage(again), after)
    assert np.array_equal(sitk.GetArrayFromImage(image).astype(float), before)


def test_statistics_of_the_ramp_image_by_hand():
    stats = intensity_stats(ramp_image())
    assert stats.background == 0.0
    assert stats.fg_low == pytest.approx(1002.0) and stats.fg_high == pytest.approx(1198.0)
    assert stats.range == pytest.approx(196.0)


@pytest.mark.parametrize("severity", [0.25, 0.5, 1.0])
def test_gaussian_noise_sd_is_the_requested_fraction_of_the_range(severity):
    image = ramp_image()
    out = perturb(image, "gaussian_noise", severity, seed=3)
    noise = sitk.GetArrayFromImage(out).astype(float) - sitk.GetArrayFromImage(image)
    expected = severity * 0.2 * 196.0  # severity × NOISE_SD_MAX × range: 9.8, 19.6, 39.2
    assert noise.std() == pytest.approx(expected, rel=0.02)
    assert abs(noise.mean()) < 0.02 * expected
    different = perturb(image, "gaussian_noise", severity, seed=4)
    assert not np.array_equal(sitk.GetArrayFromImage(different), sitk.GetArrayFromImage(out))


def test_rician_noise_on_empty_background_is_rayleigh():
    image = ramp_image()
    out = sitk.GetArrayFromImage(perturb(image, "rician_noise", 0.5, seed=3))
    background = sitk.GetArrayFromImage(image) == 0
    sd = 0.5 * 0.2 * 196.0
    # the magnitude of complex Gaussian noise of SD 19.6 per part: Rayleigh, mean 19.6 × sqrt(pi / 2) = 24.56
    assert out[background].mean() == pytest.approx(sd * np.sqrt(np.pi / 2), rel=0.02)
    assert (out >= 0).all()


def test_intensity_scale_by_hand():
    image = ramp_image()
    out = sitk.GetArrayFromImage(intensity_scale(image, 1.0, 0))
    expected = 2.0 * sitk.GetArrayFromImage(image) + 0.2 * 196.0  # × (1 + 1), + 20 % of the range
    assert np.allclose(out, expected, atol=1e-3)


def test_bias_field_spans_half_to_double(mr):
    out = sitk.GetArrayFromImage(perturb(mr, "bias_field", 1.0, seed=5)).astype(float)
    background = intensity_stats(mr).background
    above = sitk.GetArrayFromImage(mr).astype(float) - background
    bright = above > 100
    field = (out[bright] - background) / above[bright]
    assert field.min() >= 0.5 - 1e-3 and field.max() <= 2.0 + 1e-3
    assert field.min() < 0.7 and field.max() > 1.5  # the field reaches near both ends inside the anatomy
    half = sitk.GetArrayFromImage(perturb(mr, "bias_field", 0.5, seed=5)).astype(float)
    half_field = (half[bright] - background) / above[bright]
    assert np.allclose(half_field, np.sqrt(field), rtol=1e-4)  # exp(0.5 × ln 2 × p) = sqrt of the full field


def high_frequency_share(array: np.ndarray) -> float:
    """Share of the spectral power above 0.25 cycles per voxel (the upper half of the band), mean removed; a Hann
    window keeps the FFT's wrap-around edges out of the high frequencies."""
    window = np.ones(())
    for n in array.shape:
        window = np.multiply.outer(window, np.hanning(n))
    power = np.abs(np.fft.fftn((array - array.mean()) * window)) ** 2
    grids = np.meshgrid(*[np.fft.fftfreq(n) for n in array.shape], indexing="ij")
    radius = np.sqrt(sum(g ** 2 for g in grids))
    return float(power[radius > 0.25].sum() / power.sum())


def test_low_resolution_loses_high_frequencies(mr):
    original = sitk.GetArrayFromImage(mr).astype(float)
    exact = perturb(mr, "low_resolution", 0.0)
    assert np.array_equal(sitk.GetArrayFromImage(exact), sitk.GetArrayFromImage(mr))
    shares = [high_frequency_share(sitk.GetArrayFromImage(perturb(mr, "low_resolution", s)).astype(float))
              for s in (0.25, 0.5, 1.0)]
    share = high_frequency_share(original)
    assert shares[0] < share and shares[1] < shares[0] and shares[2] < shares[1]
    assert shares[2] < 0.05 * share  # 4-fold voxels keep almost nothing above a quarter of the band
    coarse = sitk.GetArrayFromImage(perturb(mr, "low_resolution", 1.0)).astype(float)
    assert coarse.mean() == pytest.approx(original.mean(), rel=0.05)  # the low frequencies stay


def test_partial_fov_cuts_a_quarter_from_each_side(mr):
    out = sitk.GetArrayFromImage(perturb(mr, "partial_fov", 1.0))
    original = sitk.GetArrayFromImage(mr)
    nz, ny, nx = original.shape
    cut_x, cut_y = round(0.25 * nx), round(0.25 * ny)
    background = intensity_stats(mr).background
    assert np.allclose(out[:, :, :cut_x], background) and np.allclose(out[:, :, nx - cut_x:], background)
    assert np.allclose(out[:, :cut_y, :], background) and np.allclose(out[:, ny - cut_y:, :], background)
    centre = (slice(None), slice(cut_y, ny - cut_y), slice(cut_x, nx - cut_x))
    assert np.array_equal(out[centre], original[centre].astype(np.float32))


def test_contrast_keeps_the_ends_and_darkens_the_middle(mr):
    out = sitk.GetArrayFromImage(perturb(mr, "contrast", 1.0)).astype(float)
    original = sitk.GetArrayFromImage(mr).astype(float)
    low, high = original.min(), original.max()
    assert out.min() == pytest.approx(low, abs=1e-2) and out.max() == pytest.approx(high, rel=1e-6)
    x = (np.median(original) - low) / (high - low)
    assert np.median(out) == pytest.approx(low + (high - low) * x ** 3, rel=1e-3)  # gamma 3 at severity 1


def test_motion_ghosting_keeps_the_mean_and_spreads_signal(mr):
    original = sitk.GetArrayFromImage(mr).astype(float)
    out = sitk.GetArrayFromImage(perturb(mr, "motion_ghosting", 1.0, seed=2)).astype(float)
    assert out.mean() == pytest.approx(original.mean(), rel=1e-4)  # the DC line keeps its phase
    changed = np.abs(out - original).mean(axis=(0, 2))  # per y row
    assert (changed > 0).all()


def test_metal_streaks_are_ct_only(mr, ct):
    assert looks_like_ct(ct) and not looks_like_ct(mr)
    with pytest.raises(SettingsError, match="CT"):
        perturb(mr, "metal_streaks", 0.5)
    forced = PERTURBATIONS["metal_streaks"](mr, 0.5, 0, modality="CT")
    assert same_grid(forced, mr)
    streaked = sitk.GetArrayFromImage(perturb(ct, "metal_streaks", 1.0, seed=1)).astype(float)
    added = streaked - sitk.GetArrayFromImage(ct)
    assert added.min() >= 0 and added.max() > intensity_stats(ct).range  # bright streaks, a brighter core


@pytest.mark.parametrize("severity", [-0.1, 1.5, float("nan"), "high"])
def test_bad_severity_and_name(mr, severity):
    with pytest.raises(SettingsError, match="severity"):
        perturb(mr, "blur", severity)
    with pytest.raises(SettingsError, match="gaussian_noise, rician_noise"):
        perturb(mr, "blurr", 0.5)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_one_slice_images_of_2d_models_are_perturbed_in_plane(name, ct):
    slab = ct[:, :, ct.GetSize()[2] // 2:ct.GetSize()[2] // 2 + 1]  # one slice, as a 2D model's case
    out = PERTURBATIONS[name](slab, 1.0, 3, modality="CT") if name in CT_ONLY else PERTURBATIONS[name](slab, 1.0, 3)
    assert same_grid(out, slab) and not np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(slab))
    if name == "blur":  # in-plane only: the discrete Gaussian of the slice, computed on the 2D image by ITK
        plane = sitk.DiscreteGaussian(sitk.Cast(slab[:, :, 0], sitk.sitkFloat32), [BLUR_SIGMA_MAX_MM ** 2] * 2, 64,
                                      0.001, True)
        np.testing.assert_allclose(sitk.GetArrayFromImage(out)[0], sitk.GetArrayFromImage(plane), atol=1e-3)
