"""Image perturbations for stress-testing segmentation models: noise, bias field, motion, blur, resolution,
contrast, intensity scale, field of view and metal streaks, each with a severity from 0 (none) to 1 (severe).

Every perturbation is a pure function ``f(image, severity, seed) -> image`` on a SimpleITK image: the same
arguments give the same voxels, the input is never modified, and the output keeps the input's geometry (size,
spacing in mm, origin, direction). ``low_resolution`` changes the resolution, then resamples back onto the input's
grid, so a mask drawn on the input stays comparable. Severity 0 returns a copy of the input, bit for bit (same
pixel type); any other severity returns a float32 image.

The strength of each perturbation is set from the image's own intensity statistics (:func:`intensity_stats`), so a
severity means the same thing on CT (HU) and MR (arbitrary units):

* ``low`` / ``high``: the 0.5th and 99.5th percentiles of all voxels; ``background = low``;
* the *foreground* is every voxel brighter than ``low + 0.1 × (high − low)`` (air and empty background excluded);
* ``range`` = 99th − 1st percentile of the foreground voxels: the intensity span of the anatomy.

Noise SDs, shifts and streak amplitudes are fractions of ``range``; multiplicative fields act on the intensity above
``background``, so air stays air on CT. Geometric strengths are in mm (blur) or as a factor of the voxel size
(resolution). The constants (``NOISE_SD_MAX`` and so on) give what severity 1 means.

These are written on NumPy and SimpleITK on purpose: TorchIO has similar transforms, but it would make PyTorch a
core dependency of radiobio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from radiobio.errors import SettingsError

#: Noise SD at severity 1, as a fraction of the foreground's intensity range.
NOISE_SD_MAX = 0.2
#: Bias field at severity 1: the multiplicative field spans [1 / BIAS_MAX, BIAS_MAX] over the image.
BIAS_MAX = 2.0
#: Motion at severity 1: share of k-space lines (phase-encoding axis y) acquired at a displaced position.
MOTION_LINES_MAX = 0.5
#: Motion at severity 1: displacement of those lines along the phase-encoding axis, mm.
MOTION_SHIFT_MAX_MM = 8.0
#: Gaussian blur at severity 1: sigma in mm (every axis).
BLUR_SIGMA_MAX_MM = 3.0
#: Resolution at severity 1: the voxels become this many times larger along every axis.
RESOLUTION_FACTOR_MAX = 4.0
#: Gamma at severity 1 (applied to intensities normalised to [0, 1] by the image's minimum and maximum).
GAMMA_MAX = 3.0
#: Intensity scale at severity 1: intensities are multiplied by ``1 + SCALE_MAX`` ...
SCALE_MAX = 1.0
#: ... and shifted by ``SHIFT_MAX × range``.
SHIFT_MAX = 0.2
#: Field of view at severity 1: share of the extent cut away from each side of x and y.
FOV_CUT_MAX = 0.25
#: Metal streaks at severity 1: streak amplitude as a multiple of the foreground's intensity range.
STREAK_AMPLITUDE_MAX = 1.0
#: Metal streaks: number of streaks through the metal point.
STREAK_COUNT = 12
#: Metal streaks: a CT image has its 1st percentile at or below this value (HU; air is -1000).
CT_AIR_HU = -500.0

Perturbation = Callable[..., sitk.Image]


@dataclass(frozen=True)
class IntensityStats:
    """Intensity statistics a perturbation's strength is scaled to (image units: HU on CT)."""

    low: float  # 0.5th percentile of all voxels
    high: float  # 99.5th percentile of all voxels
    background: float  # the value of empty space (= low)
    fg_low: float  # 1st percentile of the foreground voxels
    fg_high: float  # 99th percentile of the foreground voxels

    @property
    def range(self) -> float:
        """Intensity span of the foreground (99th − 1st percentile), never below 1e-6."""
        return max(self.fg_high - self.fg_low, 1e-6)


def intensity_stats(image: sitk.Image) -> IntensityStats:
    """The statistics of the module docstring for ``image`` (single channel)."""
    values = _array(image).ravel()
    low, high = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    foreground = values[values > low + 0.1 * (high - low)]
    if foreground.size < max(10, values.size // 100):  # (nearly) constant image: the whole image is "foreground"
        foreground = values
    fg_low, fg_high = (float(v) for v in np.percentile(foreground, [1.0, 99.0]))
    return IntensityStats(low, high, low, fg_low, fg_high)


def looks_like_ct(image: sitk.Image) -> bool:
    """True when the image has air in Hounsfield units: its 1st percentile is at or below -500."""
    return float(np.percentile(_array(image), 1.0)) <= CT_AIR_HU


def check_severity(severity: float, name: str = "severity") -> float:
    """``severity`` as a float; :class:`SettingsError` unless it is a finite number in [0, 1]."""
    try:
        value = float(severity)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} {severity!r} is not a number; give a severity between 0 and 1") from None
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name} {severity!r} is outside [0, 1]; 0 is the clean image, 1 the strongest "
                            f"perturbation")
    return value


def _array(image: sitk.Image) -> np.ndarray:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SettingsError(f"perturbations take single-channel images; this one has "
                            f"{image.GetNumberOfComponentsPerPixel()} channels per voxel")
    return sitk.GetArrayViewFromImage(image).astype(np.float64)


def _like(array: np.ndarray, image: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
    out.CopyInformation(image)
    return out


def _unchanged(image: sitk.Image, severity: float) -> sitk.Image | None:
    """A copy of ``image`` when ``severity`` is 0 (after checking it), else None."""
    if check_severity(severity) == 0.0:
        copy = sitk.Image(image)
        copy.MakeUnique()
        return copy
    return None


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def gaussian_noise(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """Add white Gaussian noise; SD = ``severity × NOISE_SD_MAX × range`` (image units; at severity 1, 20 % of the
    foreground's intensity range)."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    sd = float(severity) * NOISE_SD_MAX * intensity_stats(image).range
    array = _array(image)
    return _like(array + _rng(seed).normal(0.0, sd, array.shape), image)


def rician_noise(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """Rician noise of MR magnitude images: ``|I − b + n₁ + i n₂| + b`` with n₁, n₂ Gaussian of SD
    ``severity × NOISE_SD_MAX × range`` and b the background value (0 on most MR), so dark regions are biased up as
    in real magnitude images. Severity 1: the SD of :func:`gaussian_noise` at severity 1."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    stats = intensity_stats(image)
    sd = float(severity) * NOISE_SD_MAX * stats.range
    rng = _rng(seed)
    array = _array(image) - stats.background
    real = array + rng.normal(0.0, sd, array.shape)
    imaginary = rng.normal(0.0, sd, array.shape)
    return _like(np.hypot(real, imaginary) + stats.background, image)


def _coordinates(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Voxel coordinates normalised to [-1, 1] along each numpy axis (broadcastable)."""
    coords = []
    for axis, n in enumerate(shape):
        values = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
        coords.append(values.reshape([n if a == axis else 1 for a in range(len(shape))]))
    return coords


def bias_field(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """Multiply the intensity above the background by a smooth field ``exp(severity × ln(BIAS_MAX) × p)``, p a
    random polynomial of degree 2 in the voxel coordinates, scaled to span [-1, 1] over the image. Severity 1: the
    field goes from 1/2 to 2 (a 4-fold change across the image)."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    stats = intensity_stats(image)
    array = _array(image)
    coords = _coordinates(array.shape)
    rng = _rng(seed)
    poly = np.zeros(array.shape)
    for i in range(len(coords)):
        poly = poly + rng.uniform(-1, 1) * coords[i]
        for j in range(i, len(coords)):
            poly = poly + rng.uniform(-1, 1) * coords[i] * coords[j]
    span = float(poly.max() - poly.min())
    poly = 2.0 * (poly - poly.min()) / span - 1.0 if span > 0 else np.zeros(array.shape)
    field = np.exp(float(severity) * np.log(BIAS_MAX) * poly)
    return _like(stats.background + (array - stats.background) * field, image)


def motion_ghosting(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """Ghosts of rigid motion during an MR acquisition: a random share ``severity × MOTION_LINES_MAX`` of the
    k-space lines along the phase-encoding axis (y) gets the phase ramp of a shift of ``severity ×
    MOTION_SHIFT_MAX_MM`` mm along y (the patient moved while those lines were read); the image is the real part of
    the inverse FFT. The linear operation scales with the image's intensities by itself. Severity 1: half the lines,
    8 mm."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    array = _array(image)
    axis = array.ndim - 2  # numpy order (z, y, x) or (y, x): y
    spacing_y = image.GetSpacing()[1]
    n = array.shape[axis]
    rng = _rng(seed)
    lines = rng.permutation(n)[:int(round(float(severity) * MOTION_LINES_MAX * n))]
    shift_voxels = float(severity) * MOTION_SHIFT_MAX_MM / spacing_y
    spectrum = np.fft.fftn(array)
    frequencies = np.fft.fftfreq(n)  # cycles per voxel
    phase = np.ones(n, dtype=complex)
    phase[lines] = np.exp(-2j * np.pi * frequencies[lines] * shift_voxels)
    spectrum *= phase.reshape([n if a == axis else 1 for a in range(array.ndim)])
    return _like(np.real(np.fft.ifftn(spectrum)), image)


def blur(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """Gaussian blur with sigma ``severity × BLUR_SIGMA_MAX_MM`` mm on every axis (physical units, so anisotropic
    voxels are blurred equally in mm). Severity 1: sigma 3 mm. ``seed`` is unused (deterministic)."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    sigma = float(severity) * BLUR_SIGMA_MAX_MM
    return gaussian_smooth(sitk.Cast(image, sitk.sitkFloat32), [sigma] * image.GetDimension())


def gaussian_smooth(image: sitk.Image, sigmas_mm: list[float]) -> sitk.Image:
    """Gaussian smoothing with ``sigmas_mm`` (mm, per axis): ITK's recursive filter, or, on an image under 4 voxels
    along an axis (one slice of a 2D model), a discrete Gaussian that leaves that axis alone."""
    size = image.GetSize()
    if min(size) >= 4:
        return sitk.SmoothingRecursiveGaussian(image, [float(s) for s in sigmas_mm])
    variance = [float(s) ** 2 if n >= 4 else 0.0 for s, n in zip(sigmas_mm, size)]
    return sitk.DiscreteGaussian(image, variance, 64, 0.001, True)


def low_resolution(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """Acquire at coarser voxels, then resample back onto the input's grid (linear): the voxel size grows by
    ``1 + severity × (RESOLUTION_FACTOR_MAX − 1)`` along every axis (the coarse grid covers the same extent), after a
    Gaussian anti-aliasing filter whose FWHM makes up the larger voxel (sigma = spacing × √(f² − 1) / 2.355).
    Severity 1: voxels 4 times larger along each axis. ``seed`` is unused (deterministic)."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    factor = 1.0 + float(severity) * (RESOLUTION_FACTOR_MAX - 1.0)
    floating = sitk.Cast(image, sitk.sitkFloat32)
    spacing = np.array(image.GetSpacing())
    size = np.array(image.GetSize())
    sigma = spacing * np.sqrt(factor ** 2 - 1.0) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    smoothed = gaussian_smooth(floating, [float(s) for s in sigma])
    coarse_size = np.maximum(1, np.ceil(size / factor)).astype(int)
    coarse_spacing = spacing * size / coarse_size
    direction = np.array(image.GetDirection()).reshape(image.GetDimension(), image.GetDimension())
    origin = np.array(image.GetOrigin()) + direction @ ((coarse_spacing - spacing) / 2.0)
    coarse = sitk.Resample(smoothed, [int(s) for s in coarse_size], sitk.Transform(), sitk.sitkLinear,
                           [float(v) for v in origin], [float(v) for v in coarse_spacing], image.GetDirection(),
                           0.0, sitk.sitkFloat32)
    return sitk.Resample(coarse, image, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32, True)


def contrast(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """Gamma on the normalised range: with ``x = (I − min) / (max − min)``, the output is ``min + (max − min) ×
    x^γ``, ``γ = GAMMA_MAX^severity`` (dark tones get darker; minimum and maximum stay). Severity 1: γ = 3.
    ``seed`` is unused (deterministic)."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    array = _array(image)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return _like(array, image)
    gamma = GAMMA_MAX ** float(severity)
    return _like(low + (high - low) * ((array - low) / (high - low)) ** gamma, image)


def intensity_scale(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """Multiply the intensities by ``1 + severity × SCALE_MAX`` and add ``severity × SHIFT_MAX × range`` (another
    scanner's calibration). A z-score model should not notice; a CT window model sees shifted HU. Severity 1:
    intensities × 2, + 20 % of the foreground range. ``seed`` is unused (deterministic)."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    stats = intensity_stats(image)
    scale = 1.0 + float(severity) * SCALE_MAX
    return _like(_array(image) * scale + float(severity) * SHIFT_MAX * stats.range, image)


def partial_fov(image: sitk.Image, severity: float, seed: int = 0) -> sitk.Image:
    """A smaller field of view: ``severity × FOV_CUT_MAX`` of the extent is cut away from each side along x and y
    (whole voxels, rounded) and filled with the background value; the grid is unchanged. Severity 1: only the
    central half of x and of y is left. ``seed`` is unused (deterministic)."""
    if (same := _unchanged(image, severity)) is not None:
        return same
    stats = intensity_stats(image)
    array = _array(image).copy()
    for axis in (array.ndim - 1, array.ndim - 2):  # x, y in numpy order
        n = array.shape[axis]
        cut = int(round(float(severity) * FOV_CUT_MAX * n))
        if cut <= 0:
            continue
        index = [slice(None)] * array.ndim
        index[axis] = slice(0, cut)
        array[tuple(index)] = stats.background
        index[axis] = slice(n - cut, n)
        array[tuple(index)] = stats.background
    return _like(array, image)


def metal_streaks(image: sitk.Image, severity: float, seed: int = 0, *, modality: str | None = None) -> sitk.Image:
    """Streaks of a metal implant on CT: ``STREAK_COUNT`` bright lines radiating in every axial slice of a slab
    from a point (a random voxel of the foreground near the image centre), fading with distance, plus a bright metal
    core; amplitude ``severity × STREAK_AMPLITUDE_MAX × range``, slab half-thickness ``4 + 16 × severity`` mm.
    Severity 1: streaks as bright as the foreground's whole intensity range.

    CT only: ``modality`` ``"CT"`` or ``"MR"``; ``None`` decides from the intensities (:func:`looks_like_ct`). On
    anything else it raises :class:`SettingsError` (the stress test leaves it out for MR models).
    """
    if modality is not None and str(modality).upper() not in ("CT", "MR"):
        raise SettingsError(f"modality {modality!r}: give 'CT' or 'MR' (or None to decide from the intensities)")
    if (same := _unchanged(image, severity)) is not None:
        return same
    is_ct = looks_like_ct(image) if modality is None else str(modality).upper() == "CT"
    if not is_ct:
        raise SettingsError("metal_streaks models a CT artefact; this image is not CT (no air in HU: its 1st "
                            "percentile is above -500), so the perturbation does not apply; give modality='CT' to "
                            "apply it anyway")
    if image.GetDimension() != 3:
        raise SettingsError(f"metal_streaks takes a 3D CT volume; this image is {image.GetDimension()}D")
    stats = intensity_stats(image)
    array = _array(image)
    nz, ny, nx = array.shape
    rng = _rng(seed)
    fg = np.argwhere(array > stats.low + 0.1 * (stats.high - stats.low))
    centre = np.array(array.shape) / 2.0
    if fg.size:
        near = fg[np.argsort(np.linalg.norm((fg - centre) / np.array(array.shape), axis=1))[:max(1, len(fg) // 10)]]
        point = near[rng.integers(len(near))].astype(float)
    else:
        point = centre
    sx, sy, sz = image.GetSpacing()
    y = (np.arange(ny) - point[1])[:, None] * sy
    x = (np.arange(nx) - point[2])[None, :] * sx
    distance = np.hypot(x, y)
    angles = rng.uniform(0.0, np.pi, STREAK_COUNT)
    width = 1.5 * max(sx, sy)  # mm
    pattern = np.zeros((ny, nx))
    for angle in angles:
        across = np.abs(x * np.sin(angle) - y * np.cos(angle))
        pattern += np.exp(-0.5 * (across / width) ** 2)
    reach = 0.5 * np.hypot(nx * sx, ny * sy)
    pattern *= np.exp(-distance / max(reach / 2.0, 1e-6))
    pattern = np.maximum(pattern, np.exp(-0.5 * (distance / (2.0 * width)) ** 2) * 3.0)  # the metal core
    amplitude = float(severity) * STREAK_AMPLITUDE_MAX * stats.range
    half = (4.0 + 16.0 * float(severity)) / sz
    z = np.abs(np.arange(nz) - point[0])
    slab = np.clip(1.0 - z / max(half, 1e-6), 0.0, 1.0)
    out = array + amplitude * slab[:, None, None] * pattern[None]
    return _like(out, image)


#: Every perturbation by name: ``f(image, severity, seed) -> image``.
PERTURBATIONS: dict[str, Perturbation] = {
    "gaussian_noise": gaussian_noise,
    "rician_noise": rician_noise,
    "bias_field": bias_field,
    "motion_ghosting": motion_ghosting,
    "blur": blur,
    "low_resolution": low_resolution,
    "contrast": contrast,
    "intensity_scale": intensity_scale,
    "partial_fov": partial_fov,
    "metal_streaks": metal_streaks,
}
#: Perturbations that apply to CT images only.
CT_ONLY = ("metal_streaks",)


def perturbation_names(modality: str | None = None) -> list[str]:
    """The perturbations that apply to ``modality`` (``"CT"``, ``"MR"``; ``None``: all), in registry order."""
    if modality is None or str(modality).upper() == "CT":
        return list(PERTURBATIONS)
    return [name for name in PERTURBATIONS if name not in CT_ONLY]


def perturb(image: sitk.Image, name: str, severity: float, seed: int = 0) -> sitk.Image:
    """Apply the perturbation ``name`` of :data:`PERTURBATIONS`; :class:`SettingsError` lists the names when it is
    not one of them."""
    if name not in PERTURBATIONS:
        raise SettingsError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
    return PERTURBATIONS[name](image, severity, seed)
