"""The IBSI convention of extraction: IBSI 1 image processing in front of PyRadiomics' texture classes, IBSI tags.

``extract_features(..., convention="ibsi")`` runs each label through the image processing of the IBSI 1 reference
manual (Zwanenburg et al., arXiv:1612.07003, chapter 2), done here with SimpleITK and NumPy:

1. **Interpolation** (``resampledPixelSpacing`` with an ``interpolator``; a spacing of 0 keeps that axis, so
   ``[2, 2, 0]`` interpolates in-plane only): the new grid is aligned on the centre of the original one, with
   ``n_b = ceil(n_a s_a / s_b)`` voxels per axis and its first voxel at ``(s_a (n_a - 1) - s_b (n_b - 1)) / 2`` from
   the original first voxel. The ROI is interpolated linearly (nearest neighbour when the image is) and voxels with a
   value of at least 0.5 are kept; ``ibsi: {roundIntensities: true}`` rounds interpolated intensities to integers,
   as IBSI does for CT.
2. **Re-segmentation**: ``resegmentRange`` (absolute, e.g. HU) and outlier filtering (mean ± k standard deviations of
   the ROI's intensities, from ``resegmentMode: sigma`` or ``ibsi: {outlierSigma: 3}``) keep their intersection. The
   morphological mask is the interpolated ROI; the intensity mask is the re-segmented one.
3. **Discretisation**: fixed bin size ``binWidth`` counts bins from the re-segmentation range's lower bound,
   ``floor((x - lower) / w) + 1``; fixed bin number ``binCount`` spreads the ROI's range over ``Ng`` bins,
   ``floor(Ng (x - min) / (max - min)) + 1``; ``ibsi: {discretise: false}`` takes the intensities as grey levels.

Texture matrices and their features (``cm``, ``rlm``, ``szm``, ``ngt``, ``ngl``) come from PyRadiomics' own feature
classes given these grey levels; the other IBSI families (``morph``, ``loc``, ``stat``, ``ih``, ``ivh``, ``dzm``) from
:mod:`radiobio.features.ibsi_families`. Columns are named ``original_<IBSI tag>``; texture tags carry the aggregation
(``_2D_avg`` per slice and direction, ``_2D_comb`` per slice with directions merged, ``_2_5D_avg`` slices merged per
direction, ``_2_5D_comb`` all merged, ``_3D_avg``, ``_3D_comb``; one suffix ``_2D``, ``_2_5D`` or ``_3D`` for the
direction-free matrices). ``force2D`` gives ``2_5D`` and ``weightingNorm: no_weighting`` gives ``_comb``, as PyRadiomics
computes them; ``ibsi: {aggregation: [...]}`` asks for several at once.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from radiobio.errors import GeometryError, MaskError, SettingsError

CONVENTIONS = ("pyradiomics", "ibsi")
#: Texture aggregations of IBSI 1 (section 3.6 of the reference manual), as the reference tables tag them.
AGGREGATIONS = ("2D_avg", "2D_comb", "2_5D_avg", "2_5D_comb", "3D_avg", "3D_comb")
#: The keys of the ``ibsi`` section of a parameter file, with what each takes.
SECTION_KEYS = {
    "aggregation": "a list of texture aggregations: " + ", ".join(AGGREGATIONS),
    "families": "a list of IBSI families PyRadiomics has no class for: ivh, loc, dzm, and diag (the diagnostics)",
    "roundIntensities": "true or false: round interpolated intensities to integers (IBSI does so for CT)",
    "outlierSigma": "a positive number k: keep intensities within mean +- k SD of the ROI (IBSI: 3)",
    "discretise": "true or false: false takes the intensities as grey levels (positive integers)",
    "ivhBinWidth": "a positive number: the intensity-volume histogram's step, from the range's lower bound",
    "ivhBinCount": "a positive integer: the intensity-volume histogram over that many bins of the ROI's range",
}
EXTRA_FAMILIES = ("ivh", "loc", "dzm", "diag")
#: PyRadiomics feature class -> the IBSI families it stands for under the IBSI convention.
CLASS_FAMILIES = {"shape": ("morph",), "firstorder": ("stat", "ih"), "glcm": ("cm",), "glrlm": ("rlm",),
                  "glszm": ("szm",), "gldm": ("ngl",), "ngtdm": ("ngt",)}
TEXTURE_CLASSES = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")
#: Texture families whose matrices have directions (``_avg`` / ``_comb``); the others take a single suffix.
DIRECTIONAL = {"glcm", "glrlm"}
INTERPOLATORS = {"sitkNearestNeighbor": sitk.sitkNearestNeighbor, "sitkLinear": sitk.sitkLinear,
                 "sitkBSpline": sitk.sitkBSpline}
#: Settings that IBSI leaves to radiobio (checks, crops) or that have the same meaning in both conventions.
NEUTRAL_SETTINGS = {"label", "minimumROIDimensions", "minimumROISize", "geometryTolerance", "correctMask",
                    "additionalInfo", "preCrop", "padDistance", "distances", "gldm_a", "interpolator",
                    "resampledPixelSpacing", "resegmentRange", "resegmentMode", "binWidth", "binCount", "force2D",
                    "force2Ddimension", "weightingNorm", "symmetricalGLCM", "voxelArrayShift", "resegmentShape",
                    "normalize", "removeOutliers", "normalizeScale"}

# PyRadiomics feature name -> IBSI feature name(s), per texture class. IBSI's sum variance equals cluster tendency
# and its dissimilarity equals the difference average (reference manual 3.6), so each is reported under both tags.
TEXTURE_TAGS: dict[str, dict[str, tuple[str, ...]]] = {
    "glcm": {"MaximumProbability": ("joint_max",), "JointAverage": ("joint_avg",), "SumSquares": ("joint_var",),
             "JointEntropy": ("joint_entr",), "DifferenceAverage": ("diff_avg", "dissimilarity"),
             "DifferenceVariance": ("diff_var",), "DifferenceEntropy": ("diff_entr",), "SumAverage": ("sum_avg",),
             "ClusterTendency": ("clust_tend", "sum_var"), "SumEntropy": ("sum_entr",),
             "JointEnergy": ("energy",), "Contrast": ("contrast",), "Id": ("inv_diff",), "Idn": ("inv_diff_norm",),
             "Idm": ("inv_diff_mom",), "Idmn": ("inv_diff_mom_norm",), "InverseVariance": ("inv_var",),
             "Correlation": ("corr",), "Autocorrelation": ("auto_corr",), "ClusterShade": ("clust_shade",),
             "ClusterProminence": ("clust_prom",), "Imc1": ("info_corr1",), "Imc2": ("info_corr2",)},
    "glrlm": {"ShortRunEmphasis": ("sre",), "LongRunEmphasis": ("lre",), "LowGrayLevelRunEmphasis": ("lgre",),
              "HighGrayLevelRunEmphasis": ("hgre",), "ShortRunLowGrayLevelEmphasis": ("srlge",),
              "ShortRunHighGrayLevelEmphasis": ("srhge",), "LongRunLowGrayLevelEmphasis": ("lrlge",),
              "LongRunHighGrayLevelEmphasis": ("lrhge",), "GrayLevelNonUniformity": ("glnu",),
              "GrayLevelNonUniformityNormalized": ("glnu_norm",), "RunLengthNonUniformity": ("rlnu",),
              "RunLengthNonUniformityNormalized": ("rlnu_norm",), "RunPercentage": ("r_perc",),
              "GrayLevelVariance": ("gl_var",), "RunVariance": ("rl_var",), "RunEntropy": ("rl_entr",)},
    "glszm": {"SmallAreaEmphasis": ("sze",), "LargeAreaEmphasis": ("lze",), "LowGrayLevelZoneEmphasis": ("lgze",),
              "HighGrayLevelZoneEmphasis": ("hgze",), "SmallAreaLowGrayLevelEmphasis": ("szlge",),
              "SmallAreaHighGrayLevelEmphasis": ("szhge",), "LargeAreaLowGrayLevelEmphasis": ("lzlge",),
              "LargeAreaHighGrayLevelEmphasis": ("lzhge",), "GrayLevelNonUniformity": ("glnu",),
              "GrayLevelNonUniformityNormalized": ("glnu_norm",), "SizeZoneNonUniformity": ("zsnu",),
              "SizeZoneNonUniformityNormalized": ("zsnu_norm",), "ZonePercentage": ("z_perc",),
              "GrayLevelVariance": ("gl_var",), "ZoneVariance": ("zs_var",), "ZoneEntropy": ("zs_entr",)},
    "gldm": {"SmallDependenceEmphasis": ("lde",), "LargeDependenceEmphasis": ("hde",),
             "LowGrayLevelEmphasis": ("lgce",), "HighGrayLevelEmphasis": ("hgce",),
             "SmallDependenceLowGrayLevelEmphasis": ("ldlge",), "SmallDependenceHighGrayLevelEmphasis": ("ldhge",),
             "LargeDependenceLowGrayLevelEmphasis": ("hdlge",), "LargeDependenceHighGrayLevelEmphasis": ("hdhge",),
             "GrayLevelNonUniformity": ("glnu",), "DependenceNonUniformity": ("dcnu",),
             "DependenceNonUniformityNormalized": ("dcnu_norm",), "GrayLevelVariance": ("gl_var",),
             "DependenceVariance": ("dc_var",), "DependenceEntropy": ("dc_entr",)},
    "ngtdm": {"Coarseness": ("coarseness",), "Contrast": ("contrast",), "Busyness": ("busyness",),
              "Complexity": ("complexity",), "Strength": ("strength",)},
}
TEXTURE_PREFIX = {name: CLASS_FAMILIES[name][0] for name in TEXTURE_CLASSES}
#: Every IBSI family prefix a column of an IBSI-convention table can carry.
IBSI_FAMILIES = {family for families in CLASS_FAMILIES.values() for family in families} | (set(EXTRA_FAMILIES)
                                                                                          - {"diag"})


@dataclass(frozen=True)
class IbsiSettings:
    """The image processing and features of one IBSI-convention extraction, checked."""

    spacing: tuple[float, ...] | None  #: new spacing per axis x, y, z in mm; 0 keeps the axis
    interpolator: int
    round_intensities: bool
    resegment_range: tuple[float | None, float | None] | None  #: absolute bounds
    outlier_sigma: tuple[float, float] | None  #: mean + a SD ... mean + b SD
    bin_width: float | None
    bin_count: int | None
    discretise: bool
    aggregations: tuple[str, ...]
    families: tuple[str, ...]  #: IBSI families of ibsi_families (morph, loc, stat, ih, ivh, dzm)
    texture_classes: tuple[str, ...]
    texture_settings: dict[str, Any]
    ivh_bin_width: float | None
    ivh_bin_count: int | None = None
    diagnostics: bool = False


def check_convention(convention: Any) -> str:
    """Return ``convention`` (``"pyradiomics"`` or ``"ibsi"``) or raise :class:`SettingsError` naming both."""
    if convention not in CONVENTIONS:
        raise SettingsError(f"convention must be 'pyradiomics' (PyRadiomics' names and values) or 'ibsi' (IBSI 1 "
                            f"image processing, tags and definitions); got {convention!r}")
    return convention


def check_section(section: Any, source: str) -> None:
    """Check the ``ibsi`` section of a parameter file: known keys, values of the right kind."""
    if section is None:
        return
    if not isinstance(section, dict):
        raise SettingsError(f"{source}: the ibsi section must be a mapping of {', '.join(SECTION_KEYS)}")
    unknown = sorted(set(section) - set(SECTION_KEYS))
    if unknown:
        known = "; ".join(f"{key}: {what}" for key, what in SECTION_KEYS.items())
        raise SettingsError(f"{source}: unknown key(s) {unknown} in the ibsi section; known keys: {known}")
    for key in ("aggregation", "families"):
        if key in section:
            value = section[key]
            allowed = AGGREGATIONS if key == "aggregation" else EXTRA_FAMILIES
            if not isinstance(value, list) or not value or any(item not in allowed for item in value):
                raise SettingsError(f"{source}: ibsi.{key} must be a non-empty list of {', '.join(allowed)}; "
                                    f"got {value!r}")
    for key in ("roundIntensities", "discretise"):
        if key in section and not isinstance(section[key], bool):
            raise SettingsError(f"{source}: ibsi.{key} must be true or false; got {section[key]!r}")
    if section.get("ivhBinWidth") is not None and section.get("ivhBinCount") is not None:
        raise SettingsError(f"{source}: ibsi.ivhBinWidth and ibsi.ivhBinCount are both set; give one")
    count = section.get("ivhBinCount")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 2):
        raise SettingsError(f"{source}: ibsi.ivhBinCount must be an integer of at least 2; got {count!r}")
    for key in ("outlierSigma", "ivhBinWidth"):
        value = section.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise SettingsError(f"{source}: ibsi.{key} must be a positive number; got {value!r}")


def ibsi_settings(params: dict[str, Any]) -> IbsiSettings:
    """Check PyRadiomics parameters (with an optional ``ibsi`` section) for the IBSI convention.

    Raises :class:`SettingsError` for every setting IBSI gives no meaning to, or a combination it does not define,
    saying why and what to use instead.
    """
    setting = dict(params.get("setting") or {})
    section = dict(params.get("ibsi") or {})
    check_section(section, "parameters")
    image_types = dict(params.get("imageType") or {"Original": {}})
    others = sorted(set(image_types) - {"Original"})
    if others:
        raise SettingsError(f"image types {others} are not part of the IBSI convention: IBSI 1 defines features of "
                            f"the original image only; LBP and gradient images have no IBSI definition, and "
                            f"PyRadiomics' LoG, wavelet and point-wise filters do not follow IBSI 2's kernels and "
                            f"boundary rules. Keep imageType: Original, or use convention='pyradiomics'")
    classes = dict(params.get("featureClass") or {name: None for name in CLASS_FAMILIES})
    if "shape2D" in classes:
        raise SettingsError("featureClass shape2D has no IBSI meaning: IBSI morphology is always computed in 3D on "
                            "the whole ROI; enable shape instead (2D aggregation applies to texture only)")
    listed = sorted(name for name, features in classes.items() if features)
    if listed:
        raise SettingsError(f"featureClass {listed} list single PyRadiomics features; under the IBSI convention "
                            f"enable whole classes (an empty entry) and select IBSI columns from the table")
    unknown = sorted(set(setting) - NEUTRAL_SETTINGS)
    if unknown:
        raise SettingsError(f"settings {unknown} have no IBSI meaning; remove them or use convention='pyradiomics'")
    _refuse(setting.get("normalize"), "normalize: true", "IBSI 1 defines no intensity normalisation; normalise the "
                                                          "images before extraction")
    _refuse(setting.get("voxelArrayShift", 0) != 0, "voxelArrayShift", "IBSI energy uses the intensities unshifted")
    _refuse(setting.get("resegmentShape"), "resegmentShape: true", "IBSI computes morphology on the interpolated "
                                                                    "ROI before re-segmentation")
    _refuse(setting.get("symmetricalGLCM", True) is False, "symmetricalGLCM: false", "IBSI co-occurrence matrices "
                                                                                     "are symmetric")
    _refuse(setting.get("force2Ddimension", 0) != 0, "force2Ddimension other than 0",
            "IBSI's 2D texture is per axial slice (dimension 0)")
    weighting = setting.get("weightingNorm")
    _refuse(weighting not in (None, "no_weighting"), f"weightingNorm: {weighting}",
            "IBSI merges directions without distance weighting; use weightingNorm: no_weighting (merged) or none "
            "(averaged)")

    interpolator_name = setting.get("interpolator")
    spacing = setting.get("resampledPixelSpacing")
    if spacing is not None and interpolator_name is None:
        raise SettingsError("resampledPixelSpacing is set without an interpolator; IBSI interpolation needs one of "
                            + ", ".join(INTERPOLATORS))
    if interpolator_name is not None and spacing is not None:
        if interpolator_name not in INTERPOLATORS:
            raise SettingsError(f"interpolator {interpolator_name!r} is not one IBSI defines; use one of "
                                f"{', '.join(INTERPOLATORS)} (sitkBSpline is IBSI's cubic spline)")
        if any(not isinstance(v, (int, float)) or v < 0 for v in spacing) or not any(spacing):
            raise SettingsError(f"resampledPixelSpacing must be non-negative numbers in mm (0 keeps an axis), not "
                                f"all 0; got {spacing!r}")
    interpolator = INTERPOLATORS.get(interpolator_name or "sitkLinear", sitk.sitkLinear)

    resegment_range, outlier = _resegmentation(setting, section)
    bin_width, bin_count = setting.get("binWidth"), setting.get("binCount")
    discretise = section.get("discretise", True)
    if discretise:
        if bin_count is None and bin_width is None:
            raise SettingsError("give binWidth (fixed bin size, with a resegmentRange) or binCount (fixed bin number) "
                                "for IBSI discretisation, or ibsi: {discretise: false} when the intensities are the "
                                "grey levels already")
        if bin_count is not None and bin_width is not None:
            raise SettingsError("binWidth and binCount are both set; IBSI discretises with one of them")
        if bin_width is not None and (resegment_range is None or resegment_range[0] is None):
            raise SettingsError("fixed bin size (binWidth) under IBSI counts bins from the lower bound of the "
                                "re-segmentation range, and no lower bound is set: add resegmentRange: [lower, upper] "
                                "(e.g. [-1000, 400] HU for CT), or use binCount (fixed bin number)")

    aggregations = _aggregations(setting, section)
    enabled = [name for name in classes if name in CLASS_FAMILIES]
    families = [family for name in enabled if name not in TEXTURE_CLASSES for family in CLASS_FAMILIES[name]]
    families += [family for family in section.get("families", []) if family != "diag"]
    texture = {key: setting[key] for key in ("distances", "gldm_a") if key in setting}
    return IbsiSettings(
        spacing=tuple(float(v) for v in spacing) if spacing is not None and interpolator_name is not None else None,
        interpolator=interpolator, round_intensities=bool(section.get("roundIntensities", False)),
        resegment_range=resegment_range, outlier_sigma=outlier,
        bin_width=float(bin_width) if bin_width is not None else None,
        bin_count=int(bin_count) if bin_count is not None else None, discretise=discretise,
        aggregations=aggregations, families=tuple(dict.fromkeys(families)),
        texture_classes=tuple(name for name in TEXTURE_CLASSES if name in enabled), texture_settings=texture,
        ivh_bin_width=section.get("ivhBinWidth"), ivh_bin_count=section.get("ivhBinCount"),
        diagnostics="diag" in section.get("families", []))


def _refuse(condition: Any, what: str, why: str) -> None:
    if condition:
        raise SettingsError(f"{what} is not allowed under the IBSI convention: {why}")


def _resegmentation(setting: dict[str, Any], section: dict[str, Any]
                    ) -> tuple[tuple[float | None, float | None] | None, tuple[float, float] | None]:
    mode = setting.get("resegmentMode", "absolute")
    bounds = setting.get("resegmentRange")
    sigma = section.get("outlierSigma")
    if mode == "relative":
        raise SettingsError("resegmentMode: relative (a fraction of the ROI maximum) has no IBSI meaning; use an "
                            "absolute resegmentRange or outlier filtering (resegmentMode: sigma)")
    if mode == "sigma":
        if sigma is not None:
            raise SettingsError("outlier filtering is set twice (resegmentMode: sigma and ibsi.outlierSigma); "
                                "give an absolute resegmentRange with ibsi.outlierSigma to combine them as IBSI "
                                "configuration E does")
        if bounds is None:
            raise SettingsError("resegmentMode: sigma needs resegmentRange: [-k, k] (IBSI outlier filtering: k = 3)")
        return None, (float(bounds[0]), float(bounds[1]) if len(bounds) > 1 else math.inf)
    absolute = None
    if bounds is not None:
        absolute = (float(bounds[0]), float(bounds[1]) if len(bounds) > 1 else None)
    outlier = (-float(sigma), float(sigma)) if sigma is not None else None
    return absolute, outlier


def _aggregations(setting: dict[str, Any], section: dict[str, Any]) -> tuple[str, ...]:
    merged = setting.get("weightingNorm") == "no_weighting"
    default = f"{'2_5D' if setting.get('force2D') else '3D'}_{'comb' if merged else 'avg'}"
    listed = section.get("aggregation")
    if listed is None:
        return (default,)
    if "force2D" in setting or "weightingNorm" in setting:
        raise SettingsError(f"texture aggregation is set twice: by force2D/weightingNorm ({default}) and by "
                            f"ibsi.aggregation ({listed}); keep ibsi.aggregation only")
    return tuple(dict.fromkeys(listed))


# ------------------------------------------------------------------------------------------------ image processing


def ibsi_grid(image: sitk.Image, spacing: Iterable[float]) -> tuple[tuple[int, ...], tuple[float, ...],
                                                                     tuple[float, ...]]:
    """The IBSI interpolation grid of ``image`` for a new ``spacing`` (mm per axis x, y, z; 0 keeps an axis, and an
    axis one voxel thick, e.g. a single slice, is kept too): ``(size, spacing, origin)``, aligned on the centre of the
    original grid."""
    old_size, old_spacing = image.GetSize(), image.GetSpacing()
    new_spacing = tuple(float(s) if s and n > 1 else float(o) for s, o, n in zip(spacing, old_spacing, old_size))
    size = tuple(int(math.ceil(round(n * s / t, 6))) for n, s, t in zip(old_size, old_spacing, new_spacing))
    shift = [(s * (n - 1) - t * (m - 1)) / 2.0 for n, s, m, t in zip(old_size, old_spacing, size, new_spacing)]
    direction = np.asarray(image.GetDirection()).reshape(image.GetDimension(), image.GetDimension())
    origin = tuple(float(v) for v in np.asarray(image.GetOrigin()) + direction @ np.asarray(shift))
    return size, new_spacing, origin


@dataclass
class IbsiRegion:
    """One label after IBSI processing, as z, y, x arrays on the (interpolated) grid, cropped around the ROI."""

    intensities: np.ndarray
    morphological_mask: np.ndarray
    intensity_mask: np.ndarray
    grey_levels: np.ndarray
    spacing_zyx: tuple[float, float, float]
    n_grey_levels: int | None
    intensity_range: tuple[float | None, float | None] | None


#: Context kept around each ROI, in mm: more than the 1 cm^3 sphere of the local intensity peak (radius 6.2 mm).
MARGIN_MM = 12.0
#: Original voxels kept beyond the context for the interpolation kernel: cubic B-spline coefficients come from a
#: recursive filter over the whole input whose pole (-0.268) decays below 1e-17 within 30 voxels.
KERNEL_VOXELS = {sitk.sitkBSpline: 30, sitk.sitkLinear: 2, sitk.sitkNearestNeighbor: 2}


def process_label(image: sitk.Image, roi: sitk.Image, settings: IbsiSettings,
                  grid: tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]] | None = None) -> IbsiRegion:
    """Interpolate, re-segment and discretise one label's ROI (``roi``: 0/1 on the image's grid) the IBSI way.

    ``image`` and ``roi`` are the label's crop of the whole image (:func:`label_crop`), which holds all the context
    the processing reads; ``grid`` is the IBSI grid of the whole image (:func:`ibsi_grid`), on which the
    interpolation grid is aligned (computed from ``image`` when not given).
    """
    if settings.spacing is not None:
        size, spacing, origin = grid if grid is not None else ibsi_grid(image, settings.spacing)
        start, stop = _new_grid_box(roi, size, spacing, origin, image.GetDirection(), MARGIN_MM)
        origin = tuple(float(v) for v in np.asarray(origin) + np.asarray(image.GetDirection()).reshape(3, 3)
                       @ (np.asarray(start) * np.asarray(spacing)))
        sub_size = tuple(int(b - a) for a, b in zip(start, stop))
        reference = sitk.Image(sub_size, sitk.sitkFloat32)
        reference.SetSpacing(spacing)
        reference.SetOrigin(origin)
        reference.SetDirection(image.GetDirection())
        intensities = _resample(image, reference, settings.interpolator)
        mask_kernel = sitk.sitkNearestNeighbor if settings.interpolator == sitk.sitkNearestNeighbor else sitk.sitkLinear
        morph = _resample(roi, reference, mask_kernel) >= 0.5
        if settings.round_intensities:
            intensities = np.round(intensities)
    else:
        intensities = sitk.GetArrayFromImage(image).astype(float)
        morph = sitk.GetArrayFromImage(roi) > 0
        spacing = image.GetSpacing()
    if not morph.any():
        raise MaskError("the ROI has no voxel left after interpolation (no interpolated mask value reaches 0.5); "
                        "use a finer resampledPixelSpacing")
    keep = morph.copy()
    values = intensities[morph]
    if settings.resegment_range is not None:
        low, high = settings.resegment_range
        if low is not None:
            keep &= intensities >= low
        if high is not None:
            keep &= intensities <= high
    if settings.outlier_sigma is not None:
        mean, sd = float(values.mean()), float(values.std())
        keep &= (intensities >= mean + settings.outlier_sigma[0] * sd) & (intensities <= mean +
                                                                          settings.outlier_sigma[1] * sd)
    if not keep.any():
        raise MaskError("re-segmentation leaves no voxel of the ROI: check resegmentRange against the image's "
                        "intensities")
    levels, n_levels = _discretise(intensities, keep, settings)
    return IbsiRegion(intensities, morph, keep, levels, tuple(float(s) for s in spacing[::-1]), n_levels,
                      settings.resegment_range)


def label_crop(image: sitk.Image, mask: sitk.Image, label: int, stats: sitk.LabelShapeStatisticsImageFilter,
               settings: IbsiSettings) -> tuple[sitk.Image, sitk.Image]:
    """The image and the label's 0/1 ROI cropped to the label's bounding box plus all the context IBSI processing
    reads: :data:`MARGIN_MM`, two new voxels and the interpolation kernel (:data:`KERNEL_VOXELS`)."""
    dimension = image.GetDimension()
    box = stats.GetBoundingBox(label)
    start, extent = np.array(box[:dimension]), np.array(box[dimension:])
    old_spacing = np.asarray(image.GetSpacing())
    new_spacing = np.asarray(settings.spacing or (0,), dtype=float)
    context_mm = MARGIN_MM + old_spacing.max() + 2 * max(float(new_spacing.max()), float(old_spacing.max()))
    kernel = KERNEL_VOXELS.get(settings.interpolator, 30) if settings.spacing is not None else 0
    margin = np.ceil(context_mm / old_spacing).astype(int) + kernel
    lower = np.maximum(start - margin, 0)
    upper = np.minimum(start + extent + margin, np.asarray(image.GetSize()))
    index, size = [int(v) for v in lower], [int(v) for v in upper - lower]
    crop = sitk.RegionOfInterest(image, size, index)
    roi = sitk.Cast(sitk.RegionOfInterest(mask, size, index) == label, sitk.sitkUInt8)
    return crop, roi


def _resample(image: sitk.Image, reference: sitk.Image, interpolator: int) -> np.ndarray:
    """``image`` interpolated onto ``reference``'s grid as a float64 z, y, x array. New voxel centres up to half a new
    voxel beyond the original grid's outer centres take the nearest original value (no zero padding)."""
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(reference)
    resampler.SetInterpolator(interpolator)
    resampler.SetOutputPixelType(sitk.sitkFloat64)
    resampler.SetUseNearestNeighborExtrapolator(True)
    return sitk.GetArrayFromImage(resampler.Execute(sitk.Cast(image, sitk.sitkFloat64)))


def _new_grid_box(roi: sitk.Image, size: tuple[int, ...], spacing: tuple[float, ...], origin: tuple[float, ...],
                  direction: tuple[float, ...], margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index box on the new grid around the ROI's bounding box (in physical space) plus ``margin_mm``."""
    where = np.argwhere(sitk.GetArrayFromImage(roi) > 0)
    if not len(where):
        raise MaskError("the label has no voxel")
    corners = []
    for z in (where[:, 0].min(), where[:, 0].max()):
        for y in (where[:, 1].min(), where[:, 1].max()):
            for x in (where[:, 2].min(), where[:, 2].max()):
                corners.append(roi.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z))))
    matrix = np.asarray(direction).reshape(3, 3)
    index = (np.asarray(corners) - np.asarray(origin)) @ matrix / np.asarray(spacing)  # inverse of a rotation
    old_spacing = np.asarray(roi.GetSpacing())
    margin = np.ceil((margin_mm + old_spacing.max()) / np.asarray(spacing)).astype(int)
    start = np.maximum(np.floor(index.min(axis=0)).astype(int) - margin, 0)
    stop = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 1 + margin, np.asarray(size))
    return start, stop


def _discretise(intensities: np.ndarray, keep: np.ndarray, settings: IbsiSettings) -> tuple[np.ndarray, int | None]:
    levels = np.zeros(intensities.shape, dtype=np.int64)
    values = intensities[keep]
    if not settings.discretise:
        if np.any(values != np.round(values)) or values.min() < 1:
            raise SettingsError("ibsi: {discretise: false} needs positive integer intensities in the ROI (they are "
                                "taken as grey levels); set binWidth or binCount instead")
        levels[keep] = values.astype(np.int64)
        return levels, None
    if settings.bin_width is not None:
        lower = settings.resegment_range[0]  # checked present
        levels[keep] = np.floor((values - lower) / settings.bin_width).astype(np.int64) + 1
        return levels, None
    count = int(settings.bin_count)
    levels[keep] = fixed_bin_number(values, count)
    return levels, count


def fixed_bin_number(values: np.ndarray, count: int) -> np.ndarray:
    """IBSI fixed bin number discretisation: ``floor(count (x - min) / (max - min)) + 1``, the maximum in bin
    ``count``, every value in bin 1 when all are equal; bins 1..count as int64."""
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.ones(values.shape, dtype=np.int64)
    binned = np.floor(count * (values - low) / (high - low)).astype(np.int64) + 1
    return np.minimum(binned, count)


# ---------------------------------------------------------------------------------------------------------- texture


def _ibsi_class(cls: type) -> type:
    """A PyRadiomics feature class that takes the image as grey levels already (IBSI discretisation)."""

    class IbsiGreyLevels(cls):  # type: ignore[misc, valid-type]
        def _applyBinning(self, matrix: np.ndarray) -> np.ndarray:  # noqa: N802 - PyRadiomics' name
            levels = np.where(self.maskArray, matrix, 0).astype(int)
            self.coefficients["grayLevels"] = np.unique(levels[self.maskArray])
            # IBSI's Ng is the ROI's, also for a single slice of it (2D aggregation)
            self.coefficients["Ng"] = max(int(levels[self.maskArray].max()), int(self.settings.get("ibsiNg", 0)))
            return levels

    IbsiGreyLevels.__name__ = f"Ibsi{cls.__name__}"
    IbsiGreyLevels.__module__ = cls.__module__  # PyRadiomics names each instance's logger after its module
    return IbsiGreyLevels


_CLASSES: dict[str, type] = {}


def _feature_class(name: str) -> type:
    if name not in _CLASSES:
        import importlib
        import logging

        module = importlib.import_module(f"radiomics.{name}")
        # the classes log a warning per instance (e.g. that Sum Average is 2 x Joint Average): errors only
        logging.getLogger(f"radiomics.{name}").setLevel(logging.ERROR)
        _CLASSES[name] = _ibsi_class(getattr(module, f"Radiomics{name.upper()}"))
    return _CLASSES[name]


def _texture_values(name: str, levels: np.ndarray, roi: np.ndarray, spacing_zyx: tuple[float, ...],
                    settings: dict[str, Any]) -> dict[str, float]:
    """PyRadiomics' features of texture class ``name`` on grey levels ``levels`` in ``roi`` (z, y, x arrays)."""
    image = sitk.GetImageFromArray(levels.astype(np.float64))
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    mask = sitk.GetImageFromArray(roi.astype(np.uint32))
    mask.CopyInformation(image)
    instance = _feature_class(name)(image, mask, **{**settings, "label": 1})
    instance.enableAllFeatures()
    values = {key: float(value) for key, value in instance.execute().items()}
    if name == "gldm":  # IBSI NGLDM features PyRadiomics does not report, from PyRadiomics' own matrix
        matrix = np.asarray(instance.P_gldm[0], dtype=float)
        total = matrix.sum()
        p = matrix / total
        values["_glnu_norm"] = float(np.sum(matrix.sum(axis=1) ** 2) / total ** 2)
        values["_dc_energy"] = float(np.sum(p ** 2))
        values["_dc_perc"] = float(total / roi.sum())
    return values


def _name_texture(name: str, values: dict[str, float], suffix: str) -> dict[str, float]:
    prefix = TEXTURE_PREFIX[name]
    named: dict[str, float] = {}
    for feature, value in values.items():
        tags = (feature[1:],) if feature.startswith("_") else TEXTURE_TAGS[name].get(feature, ())
        for tag in tags:
            named[f"{prefix}_{tag}_{suffix}"] = value
    return named


def texture_features(region: IbsiRegion, settings: IbsiSettings) -> dict[str, float]:
    """IBSI texture features (``cm``, ``rlm``, ``szm``, ``ngt``, ``ngl``) of one region, in every aggregation asked."""
    box = np.argwhere(region.intensity_mask)
    lo, hi = box.min(axis=0), box.max(axis=0) + 1
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    levels, roi = region.grey_levels[crop], region.intensity_mask[crop]
    features: dict[str, float] = {}
    for name in settings.texture_classes:
        done: set[str] = set()
        for aggregation in settings.aggregations:
            dimension, merge = aggregation.rsplit("_", 1)
            suffix = aggregation if name in DIRECTIONAL else dimension
            if suffix in done:
                continue
            done.add(suffix)
            options = {**settings.texture_settings, "force2D": dimension != "3D", "force2Ddimension": 0,
                       "ibsiNg": int(region.n_grey_levels or levels[roi].max()),
                       "weightingNorm": "no_weighting" if merge == "comb" else None, "symmetricalGLCM": True}
            if dimension == "2D":
                per_slice = [_texture_values(name, levels[z:z + 1], roi[z:z + 1], region.spacing_zyx, options)
                             for z in range(roi.shape[0]) if roi[z].any()]
                values = {key: float(np.nanmean([v[key] for v in per_slice])) for key in per_slice[0]}
            else:
                values = _texture_values(name, levels, roi, region.spacing_zyx, options)
            features.update(_name_texture(name, values, suffix))
    return features


# -------------------------------------------------------------------------------------------------------- one case


def diagnostic_features(image: sitk.Image, crop: sitk.Image, roi: sitk.Image, region: IbsiRegion,
                        settings: IbsiSettings) -> dict[str, float]:
    """IBSI diagnostic features (reference manual, section 4.2) keyed by IBSI tag: the image's and each mask's
    dimensions (voxels), voxel sizes (mm), bounding boxes (voxels), voxel counts and intensities, before and after
    interpolation and after re-segmentation (``image``: the whole image; ``crop`` and ``roi``: the label's crop of it
    and its 0/1 ROI; ``region``: the label after IBSI processing)."""
    values: dict[str, float] = {}
    original = sitk.GetArrayFromImage(image).astype(float)
    cropped = sitk.GetArrayFromImage(crop).astype(float)
    initial_roi = sitk.GetArrayFromImage(roi) > 0
    if settings.spacing is not None:
        size, spacing, origin = ibsi_grid(image, settings.spacing)
        reference = sitk.Image(size, sitk.sitkFloat32)
        reference.SetSpacing(spacing)
        reference.SetOrigin(origin)
        reference.SetDirection(image.GetDirection())
        interpolated = _resample(image, reference, settings.interpolator)
        if settings.round_intensities:
            interpolated = np.round(interpolated)
    else:
        size, spacing, interpolated = image.GetSize(), image.GetSpacing(), original
    for stage, array, dims, voxel in (("init", original, image.GetSize(), image.GetSpacing()),
                                      ("interp", interpolated, size, spacing)):
        for axis, n, s in zip("xyz", dims, voxel):
            values[f"img_dim_{axis}_{stage}_img"] = float(n)
            values[f"vox_dim_{axis}_{stage}_img"] = float(s)
        values.update({f"mean_int_{stage}_img": float(array.mean()), f"min_int_{stage}_img": float(array.min()),
                       f"max_int_{stage}_img": float(array.max())})
    masks = (("init", cropped, initial_roi, initial_roi, image.GetSize()),
             ("interp", region.intensities, region.morphological_mask, region.morphological_mask, size),
             ("reseg", region.intensities, region.intensity_mask, region.morphological_mask, size))
    for stage, array, intensity_mask, morph_mask, dims in masks:
        for axis, n in zip("xyz", dims):
            values[f"int_mask_dim_{axis}_{stage}_roi"] = float(n)
        for kind, mask in (("int", intensity_mask), ("morph", morph_mask)):
            where = np.argwhere(mask)
            extent = where.max(axis=0) - where.min(axis=0) + 1
            for axis, n in zip("xyz", extent[::-1]):
                values[f"{kind}_mask_bb_dim_{axis}_{stage}_roi"] = float(n)
            values[f"{kind}_mask_vox_count_{stage}_roi"] = float(mask.sum())
        inside = array[intensity_mask]
        values.update({f"int_mask_mean_int_{stage}_roi": float(inside.mean()),
                       f"int_mask_min_int_{stage}_roi": float(inside.min()),
                       f"int_mask_max_int_{stage}_roi": float(inside.max())})
    return values


def _binned_ivh(region: IbsiRegion, count: int) -> dict[str, float]:
    """IBSI intensity-volume histogram over ``count`` fixed bins of the ROI's intensity range (IBSI configurations
    with a fixed bin number): the bins 1..count are the intensities."""
    from radiobio.features.ibsi_families import intensity_volume_histogram_features

    binned = fixed_bin_number(region.intensities[region.intensity_mask], count)
    return intensity_volume_histogram_features(binned, 1.0, float(count))



def ibsi_case_features(image: sitk.Image, mask: sitk.Image, labels: list[int], settings: IbsiSettings
                       ) -> tuple[dict[int, OrderedDict], dict[int, str]]:
    """IBSI features of every label of one case (image and mask on one grid, checked by the caller).

    Returns ``(features_by_label, errors_by_label)``; features are keyed ``original_<IBSI tag>``.
    """
    from radiobio.features.engine import _label_error
    from radiobio.features.ibsi_families import ibsi_family_features

    if image.GetDimension() != 3:
        raise GeometryError(f"image is {image.GetDimension()}D; the IBSI convention needs a 3D image (a single "
                            f"slice is a 3D image one voxel thick)")
    features: dict[int, OrderedDict] = {}
    errors: dict[int, str] = {}
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    grid = ibsi_grid(image, settings.spacing) if settings.spacing is not None else None
    for label in labels:
        try:
            crop, roi = label_crop(image, mask, label, stats, settings)
            region = process_label(crop, roi, settings, grid)
            values: dict[str, float] = {}
            families = [f for f in settings.families if f != "ivh" or settings.ivh_bin_count is None]
            if families:
                values.update(ibsi_family_features(
                    region.intensities, morphological_mask=region.morphological_mask,
                    intensity_mask=region.intensity_mask, grey_levels=region.grey_levels,
                    n_grey_levels=region.n_grey_levels, intensity_range=region.intensity_range,
                    ivh_bin_width=settings.ivh_bin_width, spacing_zyx_mm=region.spacing_zyx,
                    families=families))
            if "ivh" in settings.families and settings.ivh_bin_count is not None:
                values.update(_binned_ivh(region, settings.ivh_bin_count))
            values.update(texture_features(region, settings))
            named = OrderedDict((f"original_{tag}", value) for tag, value in values.items())
            if settings.diagnostics:
                named.update((f"diagnostics_{tag}", value)
                             for tag, value in diagnostic_features(image, crop, roi, region, settings).items())
            features[label] = named
        except Exception as exc:  # one label's failure is that label's error row
            errors[label] = _label_error(label, exc)
    return features, errors
