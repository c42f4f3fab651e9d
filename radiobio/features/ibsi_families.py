"""IBSI 1 feature families computed from plain numpy arrays, named by their IBSI tags.

PyRadiomics covers part of the IBSI 1 feature set and deviates from it in places (its kurtosis is not excess
kurtosis, its energy is scaled by the voxel volume). This module computes whole IBSI families the way the IBSI 1
reference manual defines them, so that a conformance check can compare every row of the IBSI reference tables:

========  =====================================================  =========================================
family    tags                                                   computed on
========  =====================================================  =========================================
``stat``  ``stat_mean`` ... ``stat_rms`` (18)                    intensities in the intensity mask
``ih``    ``ih_mean`` ... ``ih_min_grad_g`` (23)                 grey levels (bins 1..Ng) in the intensity mask
``ivh``   ``ivh_v10``, ``ivh_v90``, ``ivh_i10``, ``ivh_i90``,    intensities in the intensity mask
          ``ivh_diff_v10_v90``, ``ivh_diff_i10_i90``,
          ``ivh_auc``
``loc``   ``loc_peak_loc``, ``loc_peak_glob``                    intensities of the whole image
``morph`` ``morph_volume`` ... ``morph_geary_c`` (25)            morphological mask (mesh) and intensities
``dzm``   ``dzm_sde_{2D,2_5D,3D}`` ... (16 x 3)                  grey levels; distances from the
                                                                 morphological mask
========  =====================================================  =========================================

The oriented minimum bounding box and the minimum-volume enclosing ellipsoid densities (``morph_*_ombb``,
``morph_*_mvee``) are not standardised by IBSI and are not computed.

Arrays are indexed ``z, y, x`` (as ``SimpleITK.GetArrayFromImage`` returns them) and the spacing is given in the same
order, in millimetres (``image.GetSpacing()[::-1]`` for a SimpleITK image).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist

from radiobio.errors import GeometryError, MaskError, SettingsError

__all__ = ["FAMILIES", "ibsi_family_features"]

FAMILIES: tuple[str, ...] = ("stat", "ih", "ivh", "loc", "morph", "dzm")

# Radius of a sphere of 1 cm^3, in mm: the neighbourhood of the local intensity peaks.
PEAK_RADIUS_MM = float((3.0 / (4.0 * np.pi)) ** (1.0 / 3.0) * 10.0)


def ibsi_family_features(
    intensities: np.ndarray,
    *,
    morphological_mask: np.ndarray,
    spacing_zyx_mm: tuple[float, float, float],
    intensity_mask: np.ndarray | None = None,
    grey_levels: np.ndarray | None = None,
    n_grey_levels: int | None = None,
    intensity_range: tuple[float | None, float | None] | None = None,
    ivh_bin_width: float | None = None,
    families: Iterable[str] | None = None,
) -> dict[str, float]:
    """IBSI 1 features of the families ``stat``, ``ih``, ``ivh``, ``loc``, ``morph`` and ``dzm``, keyed by IBSI tag.

    Parameters
    ----------
    intensities:
        3-D image ``z, y, x`` after interpolation and rounding (e.g. HU), used by ``stat``, ``ivh``, ``loc`` and the
        intensity-weighted ``morph`` features (centre-of-mass shift, integrated intensity, Moran's I, Geary's C).
    morphological_mask:
        Boolean ROI ``z, y, x`` before re-segmentation: the mesh, volume and shape features and the DZM distances
        to the ROI border come from it.
    spacing_zyx_mm:
        Voxel spacing in millimetres, in array order ``z, y, x``. Volumes are in mm^3, areas in mm^2, lengths in mm.
    intensity_mask:
        Boolean ROI ``z, y, x`` after re-segmentation (a subset of the morphological mask); defaults to
        ``morphological_mask``.
    grey_levels:
        Discretised image ``z, y, x`` with bin numbers 1..Ng inside the intensity mask, used by ``ih`` and ``dzm``.
        Defaults to ``intensities`` (which must then be positive integers inside the intensity mask).
    n_grey_levels:
        Number of bins Ng of the intensity histogram; defaults to the highest grey level in the intensity mask.
    intensity_range:
        Re-segmentation range ``(lower, upper)`` in intensity units; the IVH intensity fractions are taken over it.
        A missing bound (or ``None``) is the ROI's minimum or maximum intensity.
    ivh_bin_width:
        Bin width of the IVH in intensity units, counted from the lower bound of ``intensity_range`` (bins are
        represented by their centres). ``None`` uses the intensities as they are, in steps of 1 (integer HU, or a
        phantom whose intensities are already its grey levels).
    families:
        Families to compute (any of :data:`FAMILIES`); all of them by default.

    Returns
    -------
    dict
        IBSI tag -> value (float). ``dzm`` tags carry the aggregation suffix ``_2D`` (features averaged over
        slices), ``_2_5D`` (slice matrices merged) or ``_3D``.

    Raises
    ------
    GeometryError
        The arrays are not 3-D, do not share a shape, or the spacing is not three positive numbers.
    MaskError
        A mask is empty or not boolean-like, or the intensity mask leaves the morphological mask.
    SettingsError
        An unknown family, non-integer or non-positive grey levels inside the ROI, or an invalid bin setting.
    """
    selected = _check_families(families)
    image = np.asarray(intensities, dtype=float)
    if image.ndim != 3:
        raise GeometryError(f"intensities must be a 3-D z, y, x array; got shape {image.shape}")
    spacing = _check_spacing(spacing_zyx_mm)
    morph = _check_mask(morphological_mask, image.shape, "morphological_mask")
    roi = morph if intensity_mask is None else _check_mask(intensity_mask, image.shape, "intensity_mask")
    if np.any(roi & ~morph):
        raise MaskError("intensity_mask has voxels outside morphological_mask; re-segmentation only removes voxels "
                        "from the morphological mask: pass intensity_mask & morphological_mask")
    if not np.all(np.isfinite(image[roi])):
        raise SettingsError("intensities are not finite inside the intensity mask; mask out NaN or infinite voxels")
    needs_levels = bool({"ih", "dzm"} & selected)
    levels = _check_grey_levels(image if grey_levels is None else grey_levels, image.shape, roi, n_grey_levels) \
        if needs_levels else None
    if ivh_bin_width is not None and not (np.isfinite(ivh_bin_width) and ivh_bin_width > 0):
        raise SettingsError(f"ivh_bin_width must be a positive number of intensity units or None; got {ivh_bin_width}")
    low, high = _intensity_range(image[roi], intensity_range)

    features: dict[str, float] = {}
    if "stat" in selected:
        features.update(statistics_features(image[roi]))
    if "ih" in selected:
        assert levels is not None
        ng = int(n_grey_levels) if n_grey_levels is not None else int(levels[roi].max())
        features.update(intensity_histogram_features(levels[roi], ng))
    if "ivh" in selected:
        features.update(intensity_volume_histogram_features(image[roi], low, high, ivh_bin_width))
    if "loc" in selected:
        features.update(local_intensity_features(image, roi, spacing))
    if "morph" in selected:
        features.update(morphology_features(image, morph, roi, spacing))
    if "dzm" in selected:
        assert levels is not None
        features.update(distance_zone_features(levels, morph, roi))
    return features


# ----------------------------------------------------------------------------------------------------- validation


def _check_families(families: Iterable[str] | None) -> set[str]:
    if families is None:
        return set(FAMILIES)
    if isinstance(families, str):
        families = [families]
    selected = set(families)
    unknown = sorted(selected - set(FAMILIES))
    if unknown:
        raise SettingsError(f"unknown IBSI feature families {unknown}; choose from {list(FAMILIES)}")
    return selected


def _check_spacing(spacing: tuple[float, float, float]) -> np.ndarray:
    values = np.asarray(spacing, dtype=float)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise GeometryError(f"spacing_zyx_mm must be three positive numbers (z, y, x) in mm; got {spacing}")
    return values


def _check_mask(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != shape:
        raise GeometryError(f"{name} has shape {array.shape} but intensities have shape {shape}; resample the mask "
                            "onto the image grid")
    if array.dtype != bool:
        if not np.all(np.isin(np.unique(array), (0, 1))):
            raise MaskError(f"{name} must be boolean or 0/1; it holds {np.unique(array)[:10]}: select one label")
        array = array.astype(bool)
    if not array.any():
        raise MaskError(f"{name} is empty: no voxel to compute IBSI features on")
    return array


def _check_grey_levels(grey_levels: np.ndarray, shape: tuple[int, ...], roi: np.ndarray,
                       n_grey_levels: int | None) -> np.ndarray:
    levels = np.asarray(grey_levels, dtype=float)
    if levels.shape != shape:
        raise GeometryError(f"grey_levels has shape {levels.shape} but intensities have shape {shape}")
    inside = levels[roi]
    if not np.all(np.isfinite(inside)) or np.any(inside != np.round(inside)) or inside.min() < 1:
        raise SettingsError("grey_levels must be integer bin numbers 1..Ng inside the intensity mask; discretise "
                            "the image first (or pass grey_levels)")
    if n_grey_levels is not None and (int(n_grey_levels) != n_grey_levels or n_grey_levels < inside.max()):
        raise SettingsError(f"n_grey_levels={n_grey_levels} must be an integer >= the highest grey level "
                            f"{int(inside.max())} in the intensity mask")
    out = np.zeros(shape, dtype=np.int64)
    out[roi] = inside.astype(np.int64)
    return out


def _intensity_range(values: np.ndarray, intensity_range: tuple[float | None, float | None] | None
                     ) -> tuple[float, float]:
    if intensity_range is None:
        intensity_range = (None, None)
    if len(intensity_range) != 2:
        raise SettingsError(f"intensity_range must be (lower, upper) in intensity units; got {intensity_range}")
    low, high = intensity_range
    low = float(values.min()) if low is None or not np.isfinite(low) else float(low)
    high = float(values.max()) if high is None or not np.isfinite(high) else float(high)
    if high < low:
        raise SettingsError(f"intensity_range ({low}, {high}) has its upper bound below its lower bound")
    return low, high


# ------------------------------------------------------------------------------------------------------ statistics


def _dispersion(values: np.ndarray, prefix: str, mean: float, sd: float) -> dict[str, float]:
    """Features shared by ``stat`` and ``ih`` that depend on the voxel values (percentiles and deviations)."""
    p10, p25, p75, p90 = np.percentile(values, [10, 25, 75, 90])
    median = float(np.median(values))
    robust = values[(values >= p10) & (values <= p90)]
    return {
        f"{prefix}_median": median,
        f"{prefix}_min": float(values.min()),
        f"{prefix}_p10": float(p10),
        f"{prefix}_p90": float(p90),
        f"{prefix}_max": float(values.max()),
        f"{prefix}_iqr": float(p75 - p25),
        f"{prefix}_range": float(values.max() - values.min()),
        f"{prefix}_mad": float(np.mean(np.abs(values - mean))),
        # No voxel lies within [p10, p90] in some tiny ROIs (two distinct values): the robust MAD is undefined.
        f"{prefix}_rmad": float(np.mean(np.abs(robust - robust.mean()))) if robust.size else float("nan"),
        f"{prefix}_medad": float(np.mean(np.abs(values - median))),
        f"{prefix}_cov": float(sd / mean) if sd > 0 else 0.0,
        f"{prefix}_qcod": float((p75 - p25) / (p75 + p25)) if (p75 + p25) != 0 else float("nan"),
    }


def _moments(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """Mean, variance (biased), skewness and excess kurtosis of ``values`` (optionally weighted)."""
    mean = float(np.average(values, weights=weights))
    dev = values - mean
    var = float(np.average(dev**2, weights=weights))
    if var <= 0:
        return mean, 0.0, 0.0, 0.0
    skew = float(np.average(dev**3, weights=weights) / var**1.5)
    kurt = float(np.average(dev**4, weights=weights) / var**2 - 3.0)
    return mean, var, skew, kurt


def statistics_features(values: np.ndarray) -> dict[str, float]:
    """IBSI intensity-based statistics (``stat_*``, 18 tags) of the ROI's voxel intensities (1-D array).

    Values are in the intensities' unit (e.g. HU), its square (``stat_var``, ``stat_energy`` summed over voxels,
    without a voxel-volume factor) or dimensionless (skewness, excess kurtosis, ``stat_cov``, ``stat_qcod``).
    """
    values = np.asarray(values, dtype=float).ravel()
    mean, var, skew, kurt = _moments(values)
    out = {"stat_mean": mean, "stat_var": var, "stat_skew": skew, "stat_kurt": kurt}
    out.update(_dispersion(values, "stat", mean, np.sqrt(var)))
    out["stat_energy"] = float(np.sum(values**2))
    out["stat_rms"] = float(np.sqrt(np.mean(values**2)))
    return out


def intensity_histogram_features(grey_levels: np.ndarray, n_grey_levels: int) -> dict[str, float]:
    """IBSI intensity-histogram features (``ih_*``, 23 tags) of the ROI's grey levels (1-D array of bins 1..Ng).

    Grey-level features are in bin numbers; ``ih_max_grad``/``ih_min_grad`` in voxels per bin (central differences
    of the histogram counts, one-sided at the first and last bin); entropy in bits.
    """
    values = np.asarray(grey_levels, dtype=float).ravel()
    counts = np.bincount(values.astype(np.int64), minlength=n_grey_levels + 1)[1:].astype(float)
    levels = np.arange(1, n_grey_levels + 1, dtype=float)
    p = counts / counts.sum()
    mean, var, skew, kurt = _moments(levels, p)
    out = {"ih_mean": mean, "ih_var": var, "ih_skew": skew, "ih_kurt": kurt}
    out.update(_dispersion(values, "ih", mean, np.sqrt(var)))
    modes = levels[counts == counts.max()]
    out["ih_mode"] = float(modes[np.argmin(np.abs(modes - mean))])
    nonzero = p[p > 0]
    out["ih_entropy"] = float(-np.sum(nonzero * np.log2(nonzero)))
    out["ih_uniformity"] = float(np.sum(p**2))
    grad = np.gradient(counts) if n_grey_levels > 1 else np.zeros(1)
    out["ih_max_grad"] = float(grad.max())
    out["ih_max_grad_g"] = float(levels[np.argmax(grad)])
    out["ih_min_grad"] = float(grad.min())
    out["ih_min_grad_g"] = float(levels[np.argmin(grad)])
    # Keep the IBSI table order: mode comes after max.
    order = ["ih_mean", "ih_var", "ih_skew", "ih_kurt", "ih_median", "ih_min", "ih_p10", "ih_p90", "ih_max",
             "ih_mode", "ih_iqr", "ih_range", "ih_mad", "ih_rmad", "ih_medad", "ih_cov", "ih_qcod", "ih_entropy",
             "ih_uniformity", "ih_max_grad", "ih_max_grad_g", "ih_min_grad", "ih_min_grad_g"]
    return {key: out[key] for key in order}


# ------------------------------------------------------------------------------------ intensity-volume histogram


def intensity_volume_histogram_features(values: np.ndarray, low: float, high: float,
                                        bin_width: float | None = None) -> dict[str, float]:
    """IBSI intensity-volume histogram features (``ivh_*``, 7 tags) of the ROI's voxel intensities (1-D array).

    ``low``/``high`` bound the intensity range (intensity units) over which the intensity fraction runs from 0 to 1.
    ``ivh_v*`` and ``ivh_diff_v10_v90`` are volume fractions (0..1); ``ivh_i*`` and ``ivh_diff_i10_i90`` are in
    intensity units (bin centres when ``bin_width`` is given); ``ivh_auc`` is dimensionless.
    """
    values = np.asarray(values, dtype=float).ravel()
    if bin_width is None:
        step = 1.0
        levels = np.arange(low, high + 0.5 * step, step)
        index = np.clip(np.round(values - low), 0, len(levels) - 1).astype(np.int64)
    else:
        step = float(bin_width)
        n_bins = int(np.ceil((high - low) / step)) + 1
        index = np.clip(np.floor((values - low) / step), 0, n_bins - 1).astype(np.int64)
        levels = low + (np.arange(n_bins) + 0.5) * step
    counts = np.bincount(index, minlength=len(levels)).astype(float)
    # nu(i): fraction of the volume with an intensity of at least level i.
    nu = 1.0 - np.concatenate(([0.0], np.cumsum(counts)[:-1])) / counts.sum()
    span = levels[-1] - levels[0]
    gamma = (levels - levels[0]) / span if span > 0 else np.zeros_like(levels)
    next_level = levels[-1] + step

    def volume_at(fraction: float) -> float:
        selected = nu[gamma >= fraction]
        return float(selected.max()) if selected.size else 0.0

    def intensity_at(fraction: float) -> float:
        selected = levels[nu <= fraction]
        return float(selected.min()) if selected.size else float(next_level)

    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2.0 has only trapz
    return {
        "ivh_v10": volume_at(0.10),
        "ivh_v90": volume_at(0.90),
        "ivh_i10": intensity_at(0.10),
        "ivh_i90": intensity_at(0.90),
        "ivh_diff_v10_v90": volume_at(0.10) - volume_at(0.90),
        "ivh_diff_i10_i90": intensity_at(0.10) - intensity_at(0.90),
        "ivh_auc": float(trapezoid(nu, gamma)) if len(levels) > 1 else 0.0,
    }


# ------------------------------------------------------------------------------------------------ local intensity


def _sphere_kernel(spacing: np.ndarray, radius_mm: float) -> np.ndarray:
    half = np.floor(radius_mm / spacing).astype(int)
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return (zz**2 + yy**2 + xx**2 <= radius_mm**2 + 1e-9).astype(float)


def local_intensity_features(image: np.ndarray, roi: np.ndarray, spacing: np.ndarray) -> dict[str, float]:
    """IBSI local intensity features ``loc_peak_loc`` and ``loc_peak_glob``, in intensity units.

    The local mean of a voxel is the mean intensity of all image voxels (inside or outside the ROI, but inside the
    image) whose centres lie within 6.2 mm (a 1 cm^3 sphere) of its centre. ``loc_peak_loc`` is the highest local
    mean among the ROI's maximum-intensity voxels; ``loc_peak_glob`` the highest local mean in the ROI.
    """
    from scipy.signal import fftconvolve

    kernel = _sphere_kernel(np.asarray(spacing, dtype=float), PEAK_RADIUS_MM)
    half = np.array(kernel.shape) // 2
    where = np.argwhere(roi)
    start = np.maximum(where.min(axis=0) - half, 0)
    stop = np.minimum(where.max(axis=0) + half + 1, image.shape)
    crop = tuple(slice(a, b) for a, b in zip(start, stop))
    sub_image, sub_roi = image[crop], roi[crop]
    # Zero padding beyond the crop only ever covers voxels outside the image, which the mean leaves out.
    sums = fftconvolve(sub_image, kernel, mode="same")
    counts = fftconvolve(np.ones_like(sub_image), kernel, mode="same")
    local = sums[sub_roi] / np.round(counts[sub_roi])
    values = sub_image[sub_roi]
    return {
        "loc_peak_loc": float(local[values == values.max()].max()),
        "loc_peak_glob": float(local.max()),
    }


# ---------------------------------------------------------------------------------------------------- morphology


def _mesh(mask: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Marching-cubes mesh of a boolean mask: vertices (mm), faces, enclosed volume (mm^3), area (mm^2)."""
    from skimage.measure import marching_cubes, mesh_surface_area

    padded = np.pad(mask.astype(float), 1)
    vertices, faces, _, _ = marching_cubes(padded, level=0.5, spacing=tuple(spacing))
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    volume = float(abs(np.sum(np.einsum("ij,ij->i", a, np.cross(b, c))) / 6.0))
    return vertices, faces, volume, float(mesh_surface_area(vertices, faces))


def _ellipsoid_area(semi_axes: np.ndarray, degree: int = 20) -> float:
    """Surface area (mm^2) of an ellipsoid with semi-axes ``a <= b <= c`` (mm), by its Legendre series."""
    from numpy.polynomial.legendre import legval

    a, b, c = np.sort(semi_axes)
    if np.isclose(a, c):
        return float(4.0 * np.pi * a**2)
    alpha = np.sqrt(1.0 - b**2 / c**2)
    beta = np.sqrt(1.0 - a**2 / c**2)
    if np.isclose(alpha, 0.0):
        alpha = 1e-12  # oblate limit b == c: the series still converges
    nu = np.arange(degree + 1, dtype=float)
    coefficients = (alpha * beta) ** nu / (1.0 - 4.0 * nu**2)
    return float(4.0 * np.pi * c * b * legval((alpha**2 + beta**2) / (2.0 * alpha * beta), coefficients))


def _spatial_autocorrelation(roi: np.ndarray, image: np.ndarray, spacing: np.ndarray) -> tuple[float, float]:
    """Moran's I and Geary's C of the intensities in ``roi`` with inverse-distance weights over all voxel pairs.

    The pair sums are convolutions of the ROI with the kernel 1 / distance (0 at the centre), computed exactly by
    FFT over the ROI's bounding box, so no voxel subsets are sampled, whatever the ROI size.
    """
    from scipy.signal import fftconvolve

    where = np.argwhere(roi)
    crop = tuple(slice(a, b + 1) for a, b in zip(where.min(axis=0), where.max(axis=0)))
    mask = roi[crop].astype(float)
    values = image[crop][roi[crop]]
    n = values.size
    dev = values - values.mean()
    denominator = float(np.sum(dev**2))
    if n < 2 or denominator <= 0:
        # One voxel, or one intensity: ideal spatial correlation by convention.
        return 1.0, 1.0
    field = np.zeros(mask.shape)
    field[roi[crop]] = dev
    axes = [np.arange(-(k - 1), k) * s for k, s in zip(mask.shape, spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    distance = np.sqrt(zz**2 + yy**2 + xx**2)
    kernel = np.divide(1.0, distance, out=np.zeros_like(distance), where=distance > 0)
    near_mask = fftconvolve(mask, kernel, mode="same")
    near_dev = fftconvolve(field, kernel, mode="same")
    inside = roi[crop]
    w_sum = 0.5 * float(np.sum(near_mask[inside]))  # sum over pairs i < j of w_ij
    cross = float(np.sum(dev * near_dev[inside]))  # sum over i != j of w_ij dev_i dev_j
    squared = float(np.sum(dev**2 * near_mask[inside])) - cross  # sum over i < j of w_ij (dev_i - dev_j)^2
    return n * 0.5 * cross / (w_sum * denominator), (n - 1.0) * squared / (2.0 * w_sum * denominator)


def morphology_features(image: np.ndarray, morph: np.ndarray, roi: np.ndarray, spacing: np.ndarray
                        ) -> dict[str, float]:
    """IBSI 3-D morphological features (``morph_*``, 25 tags) of a ROI.

    Volumes are in mm^3 (``morph_volume`` from a marching-cubes mesh of the morphological mask,
    ``morph_vol_approx`` from its voxel count), areas in mm^2, lengths (``morph_com``, ``morph_diam``, PCA axes) in
    mm, ``morph_integ_int`` in intensity units x mm^3; the other features are dimensionless. The centre-of-mass
    shift, integrated intensity, Moran's I and Geary's C use the intensities in the intensity mask.
    """
    spacing = np.asarray(spacing, dtype=float)
    vertices, _, volume, area = _mesh(morph, spacing)
    n_voxels = int(morph.sum())
    out: dict[str, float] = {
        "morph_volume": volume,
        "morph_vol_approx": float(n_voxels * np.prod(spacing)),
        "morph_area_mesh": area,
        "morph_av": area / volume,
        "morph_comp_1": volume / (np.sqrt(np.pi) * area**1.5),
        "morph_comp_2": 36.0 * np.pi * volume**2 / area**3,
        "morph_sph_dispr": area / (36.0 * np.pi * volume**2) ** (1.0 / 3.0),
        "morph_sphericity": (36.0 * np.pi * volume**2) ** (1.0 / 3.0) / area,
        "morph_asphericity": (area**3 / (36.0 * np.pi * volume**2)) ** (1.0 / 3.0) - 1.0,
    }
    morph_pos = np.argwhere(morph) * spacing
    roi_pos = np.argwhere(roi) * spacing
    values = image[roi]
    weight = values.sum()
    if weight != 0:
        shift = morph_pos.mean(axis=0) - (roi_pos * values[:, None]).sum(axis=0) / weight
        out["morph_com"] = float(np.sqrt(np.sum(shift**2)))
    else:
        out["morph_com"] = float("nan")
    hull = ConvexHull(vertices)
    hull_points = vertices[hull.vertices]
    out["morph_diam"] = float(pdist(hull_points).max())
    if n_voxels > 1:
        eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(morph_pos, rowvar=False)))
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        least, minor, major = np.sqrt(eigenvalues)  # square roots of lambda_least, lambda_minor, lambda_major
    else:
        least = minor = major = 0.0
    out["morph_pca_maj_axis"] = float(4.0 * major)
    out["morph_pca_min_axis"] = float(4.0 * minor)
    out["morph_pca_least_axis"] = float(4.0 * least)
    out["morph_pca_elongation"] = float(minor / major) if major > 0 else float("nan")
    out["morph_pca_flatness"] = float(least / major) if major > 0 else float("nan")
    extent = hull_points.max(axis=0) - hull_points.min(axis=0)
    out["morph_vol_dens_aabb"] = float(volume / np.prod(extent))
    out["morph_area_dens_aabb"] = float(area / (2.0 * (extent[0] * extent[1] + extent[0] * extent[2]
                                                         + extent[1] * extent[2])))
    semi_axes = 2.0 * np.array([least, minor, major])
    if np.all(semi_axes > 0):
        out["morph_vol_dens_aee"] = float(3.0 * volume / (4.0 * np.pi * np.prod(semi_axes)))
        out["morph_area_dens_aee"] = float(area / _ellipsoid_area(semi_axes))
    else:
        out["morph_vol_dens_aee"] = out["morph_area_dens_aee"] = float("nan")
    out["morph_vol_dens_conv_hull"] = float(volume / hull.volume)
    out["morph_area_dens_conv_hull"] = float(area / hull.area)
    out["morph_integ_int"] = float(volume * values.mean())
    out["morph_moran_i"], out["morph_geary_c"] = _spatial_autocorrelation(roi, image, spacing)
    return {key: float(value) for key, value in out.items()}


# ---------------------------------------------------------------------------------------- distance zone matrix


def _border_distance(mask: np.ndarray) -> np.ndarray:
    """City-block distance (in voxels, 1 at the border) of each mask voxel to the nearest voxel outside the mask
    or outside the array."""
    padded = np.pad(mask, 1)
    distance = ndimage.distance_transform_cdt(padded, metric="taxicab")
    return distance[tuple(slice(1, -1) for _ in mask.shape)]


def _zones(levels: np.ndarray, roi: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey level and minimal border distance of every zone (connected voxels of one grey level, 8- or
    26-connected)."""
    from skimage.measure import label

    image = np.where(roi, levels, 0)
    labels = label(image, background=0, connectivity=image.ndim)
    n_zones = int(labels.max())
    flat = labels[roi]
    zone_level = np.zeros(n_zones + 1, dtype=np.int64)
    zone_level[flat] = image[roi]
    zone_distance = np.full(n_zones + 1, np.iinfo(np.int64).max)
    np.minimum.at(zone_distance, flat, distance[roi].astype(np.int64))
    return zone_level[1:], zone_distance[1:]


def _dzm_features(zone_level: np.ndarray, zone_distance: np.ndarray, n_voxels: int, suffix: str
                  ) -> dict[str, float]:
    pairs, counts = np.unique(np.stack([zone_level, zone_distance]), axis=1, return_counts=True)
    i, j = pairs.astype(float)
    counts = counts.astype(float)
    n_s = counts.sum()
    p = counts / n_s
    levels, di = np.unique(zone_level, return_counts=True)
    distances, dj = np.unique(zone_distance, return_counts=True)
    levels, distances, di, dj = (x.astype(float) for x in (levels, distances, di, dj))
    mu_i = np.sum(p * i)
    mu_j = np.sum(p * j)
    values = {
        "dzm_sde": np.sum(dj / distances**2) / n_s,
        "dzm_lde": np.sum(dj * distances**2) / n_s,
        "dzm_lgze": np.sum(di / levels**2) / n_s,
        "dzm_hgze": np.sum(di * levels**2) / n_s,
        "dzm_sdlge": np.sum(counts / (i**2 * j**2)) / n_s,
        "dzm_sdhge": np.sum(counts * i**2 / j**2) / n_s,
        "dzm_ldlge": np.sum(counts * j**2 / i**2) / n_s,
        "dzm_ldhge": np.sum(counts * i**2 * j**2) / n_s,
        "dzm_glnu": np.sum(di**2) / n_s,
        "dzm_glnu_norm": np.sum(di**2) / n_s**2,
        "dzm_zdnu": np.sum(dj**2) / n_s,
        "dzm_zdnu_norm": np.sum(dj**2) / n_s**2,
        "dzm_z_perc": n_s / n_voxels,
        "dzm_gl_var": np.sum(p * (i - mu_i) ** 2),
        "dzm_zd_var": np.sum(p * (j - mu_j) ** 2),
        "dzm_zd_entr": -np.sum(p * np.log2(p)),
    }
    return {f"{name}_{suffix}": float(value) for name, value in values.items()}


def distance_zone_features(levels: np.ndarray, morph: np.ndarray, roi: np.ndarray) -> dict[str, float]:
    """IBSI grey-level distance-zone matrix features (``dzm_*``, 16 tags x ``_2D``, ``_2_5D``, ``_3D``).

    Zones are connected voxels of one grey level in the intensity mask (8-connected within a slice in 2D and 2.5D,
    26-connected in 3D); a zone's distance is the smallest city-block distance (in voxels, 1 at the border) of its
    voxels to the edge of the morphological mask, in the slice (2D, 2.5D) or in the volume (3D). ``_2D`` averages
    the features of the slices that hold ROI voxels; ``_2_5D`` merges their zones. Distances are in voxels, grey
    levels in bin numbers.
    """
    out: dict[str, float] = {}
    slice_features: list[dict[str, float]] = []
    merged_levels: list[np.ndarray] = []
    merged_distances: list[np.ndarray] = []
    for z in range(levels.shape[0]):
        if not roi[z].any():
            continue
        zone_level, zone_distance = _zones(levels[z], roi[z], _border_distance(morph[z]))
        slice_features.append(_dzm_features(zone_level, zone_distance, int(roi[z].sum()), "2D"))
        merged_levels.append(zone_level)
        merged_distances.append(zone_distance)
    for key in slice_features[0]:
        out[key] = float(np.mean([features[key] for features in slice_features]))
    out.update(_dzm_features(np.concatenate(merged_levels), np.concatenate(merged_distances), int(roi.sum()),
                             "2_5D"))
    zone_level, zone_distance = _zones(levels, roi, _border_distance(morph))
    out.update(_dzm_features(zone_level, zone_distance, int(roi.sum()), "3D"))
    return out
