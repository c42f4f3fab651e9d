"""Per-case PyRadiomics extraction: one image read for all labels, each label's region cropped, filters shared.

This reorders the steps of ``RadiomicsFeatureExtractor.execute`` without changing any value:

- the image and mask are read once per case, not once per label;
- without ``preCrop`` or resampling, every filter (LoG, wavelet, point-wise) runs once per case on the smallest
  region around the labels whose output inside every label's bounding box equals the whole-image output PyRadiomics
  computes (the margins are derived in :mod:`radiobio.features.margins`; filters without a derived margin run on
  the whole image), and each label's features are computed on the filtered image cropped to that label's bounding
  box (PyRadiomics crops to the same box before computing features, so the voxels seen are identical);
- with ``preCrop`` or ``resampledPixelSpacing`` each label follows PyRadiomics' own per-label path exactly
  (``cropToTumorMask`` / ``resampleImage`` with ``padDistance``), since filters depend on that crop;
- PyRadiomics' diagnostics (image hashes, whole-image statistics) are not computed: provenance lives in the feature
  table's metadata instead.

Every feature value still comes from PyRadiomics' own feature classes, mask checks and filters.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from radiobio.errors import GeometryError, MaskError, SettingsError
from radiobio.features.margins import (
    POINTWISE_FILTERS,
    crop_region,
    filter_passes,
    filtered_images,
    plan_regions,
    whole_image_maxima,
)
from radiobio.imaging import as_label_map, check_geometry, grid_axis_map, read_image, resample_mask

#: Filters whose output depends on the mask or label: never shared across labels.
MASK_DEPENDENT_FILTERS = {"LBP3D"}
SHAPE_3D_CLASSES = {"shape"}
#: SimpleITK's default coordinate and direction tolerance, used when the settings give no ``geometryTolerance``.
ITK_DEFAULT_TOLERANCE = 1e-6

_EXTRACTORS: dict[str, Any] = {}


def pyradiomics_extractor(params: dict[str, Any], key: str) -> Any:
    """A ``RadiomicsFeatureExtractor`` for ``params``, built once per process and cached under ``key``."""
    if key not in _EXTRACTORS:
        import radiomics
        from radiomics.featureextractor import RadiomicsFeatureExtractor

        radiomics.setVerbosity(logging.ERROR)
        extractor = RadiomicsFeatureExtractor(copy.deepcopy(params))  # the constructor takes a parameter dict
        _EXTRACTORS[key] = extractor
    return _EXTRACTORS[key]


@dataclass
class LabelRegion:
    """One label's working region: image and mask cropped (or resampled) for it, and PyRadiomics' bounding box."""

    label: int
    image: sitk.Image
    shape_mask: sitk.Image
    feature_mask: sitk.Image
    bounding_box: np.ndarray
    crop_lower: tuple[int, ...] | None  # lower crop size of the whole image (shared-filter mode only)
    crop_upper: tuple[int, ...] | None


def extract_case_features(image_path: str | sitk.Image, mask_path: str | sitk.Image, labels: list[int] | None,
                          params: dict[str, Any], key: str, *, ibsi: Any = None
                          ) -> tuple[dict[int, OrderedDict], dict[int, str], list[int], dict[int, str]]:
    """Compute features of every label of one case (image and mask given as paths or as images already read).

    ``ibsi``: checked :class:`radiobio.features.ibsi.IbsiSettings` to compute the features under the IBSI convention
    (:func:`radiobio.features.ibsi.ibsi_case_features`) instead of PyRadiomics' pipeline.

    A mask on the image's voxels stored with flipped or permuted axes is reoriented exactly; on any other grid it is
    refused unless ``correctMask`` is set (then resampled as PyRadiomics does).

    Returns ``(features_by_label, errors_by_label, labels, notes_by_label)``: features as PyRadiomics names them,
    errors as readable texts for labels that failed, the labels processed (all non-zero labels when ``labels`` is
    None), and notes for requested labels absent from this case's mask (no features, no error: a node-negative
    patient is not a failure).
    Raises a :class:`RadiobioError` subclass when the case as a whole cannot be processed.
    """
    from radiomics import imageoperations

    extractor = pyradiomics_extractor({k: v for k, v in params.items() if k != "ibsi"}, key)
    settings = dict(extractor.settings)
    image = image_path if isinstance(image_path, sitk.Image) else read_image(image_path)
    mask = as_label_map(mask_path if isinstance(mask_path, sitk.Image) else read_image(mask_path), "mask")
    if ibsi is None:
        _check_dimensions(image, extractor, settings)
    tolerance = settings.get("geometryTolerance") or ITK_DEFAULT_TOLERANCE
    sitk.ProcessObject.SetGlobalDefaultCoordinateTolerance(tolerance)  # as PyRadiomics sets it for its checks
    sitk.ProcessObject.SetGlobalDefaultDirectionTolerance(tolerance)
    if grid_axis_map(image, mask) is not None:  # the same voxels, stored in another order: reordered exactly
        mask = resample_mask(mask, image)
    try:
        check_geometry(image, mask, tolerance=tolerance, names=("image", "mask"))
    except GeometryError as exc:
        if not settings.get("correctMask", False):
            raise GeometryError(f"{exc}; or set correctMask: true in the parameters") from None
        mask = resample_mask(mask, image)

    shape_stats = sitk.LabelShapeStatisticsImageFilter()
    shape_stats.Execute(mask)
    present = [int(v) for v in shape_stats.GetLabels()]
    if not present:
        raise MaskError("mask is empty (no non-zero voxel); nothing to extract")
    if labels is None:
        labels = present
    if ibsi is not None:
        from radiobio.features.ibsi import ibsi_case_features

        wanted = [label for label in labels if label in present]
        notes = {label: _absent(label, present) for label in labels if label not in present}
        features, errors = ibsi_case_features(image, mask, wanted, ibsi)
        return features, errors, list(labels), notes
    if settings.get("normalize", False):
        image = imageoperations.normalizeImage(image, **settings)

    resampling = settings.get("interpolator") is not None and settings.get("resampledPixelSpacing") is not None
    per_label_filters = resampling or settings.get("preCrop", False)
    if resampling:
        _check_interpolation_support(image, settings["interpolator"])
        mask = sitk.Cast(mask, sitk.sitkUInt32)  # PyRadiomics' mask type; other paths cast each label's crop
    features: dict[int, OrderedDict] = {}
    errors: dict[int, str] = {}
    notes: dict[int, str] = {}
    regions: dict[int, LabelRegion] = {}
    for label in labels:
        if label not in present:
            notes[label] = _absent(label, present)
            continue
        try:
            region = _prepare_region(image, mask, label, shape_stats, settings, resampling, per_label_filters)
            regions[label] = region
            features[label] = OrderedDict(extractor.computeShape(region.image, region.shape_mask,
                                                                 region.bounding_box, **{**settings, "label": label}))
        except Exception as exc:  # PyRadiomics reports invalid ROIs as ValueError; keep the label's reason
            errors[label] = _label_error(label, exc)

    size = image.GetSize()
    maxima = None
    for image_type, custom in extractor.enabledImagetypes.items():
        generator = getattr(imageoperations, f"get{image_type}Image")
        if per_label_filters or image_type in MASK_DEPENDENT_FILTERS:
            for label, region in list(regions.items()):
                args = {**settings, **custom, "label": label}
                source = region.image if per_label_filters else image
                source_mask = region.feature_mask if per_label_filters else mask
                _compute_filtered(extractor, generator(source, source_mask, **args), [region], features, errors,
                                  regions, cropped=per_label_filters)
        else:
            passes = filter_passes(image_type, custom, settings, image)
            if passes is None:
                args = {**settings, **custom}
                _compute_filtered(extractor, generator(image, mask, **args), list(regions.values()), features,
                                  errors, regions, cropped=False)
                continue
            if image_type in POINTWISE_FILTERS and maxima is None:
                maxima = whole_image_maxima(image)
            for filter_pass in passes:
                boxes = {label: (region.crop_lower, tuple(n - u for n, u in zip(size, region.crop_upper)))
                         for label, region in regions.items()}
                for start, stop, members in plan_regions(boxes, size, filter_pass):
                    filtered = filtered_images(filter_pass, crop_region(image, start, stop), mask, image, maxima,
                                               settings)
                    _compute_filtered(extractor, filtered, [regions[label] for label in members if label in regions],
                                      features, errors, regions, cropped=False,
                                      offset=(start, tuple(n - e for n, e in zip(size, stop))))
    return {k: v for k, v in features.items() if k not in errors}, errors, list(labels), notes


def _absent(label: int, present: list[int]) -> str:
    return f"label {label} absent from the mask (labels present: {present})"


def _check_dimensions(image: sitk.Image, extractor: Any, settings: dict[str, Any]) -> None:
    dimension = image.GetDimension()
    if dimension not in (2, 3):
        raise GeometryError(f"image is {dimension}D; radiomics needs a 2D or 3D image")
    if dimension == 2:
        three_d = [c for c in extractor.enabledFeatures if c in SHAPE_3D_CLASSES]
        filters_3d = [t for t in extractor.enabledImagetypes if t in ("LoG", "LBP3D")]
        if three_d or filters_3d or settings.get("resampledPixelSpacing") and len(
                settings["resampledPixelSpacing"]) == 3:
            wanted = ", ".join(three_d + filters_3d) or "3D resampledPixelSpacing"
            raise SettingsError(f"image is 2D but the settings ask for 3D-only computations ({wanted}); use shape2D "
                                f"instead of shape, drop LoG/LBP3D, and give a 2-value resampledPixelSpacing")


#: Voxels a cubic B-spline needs along each axis: ITK's B-spline resampling of an image 2 or 3 voxels thick reads
#: past it (a segmentation fault that ends the whole batch). A single-voxel axis is handled apart by ITK and is safe
#: (a single-slice L3 image resamples in-plane).
BSPLINE_SUPPORT = 4


def _check_interpolation_support(image: sitk.Image, interpolator: Any) -> None:
    """Raise :class:`SettingsError` when B-spline resampling is asked of an image 2 to :data:`BSPLINE_SUPPORT` - 1
    voxels thick along an axis (a 2- or 3-slice series), naming the axis and the fix; one voxel is allowed."""
    code = getattr(sitk, interpolator, None) if isinstance(interpolator, str) else interpolator
    if code != sitk.sitkBSpline:  # sitkBSpline and sitkBSpline3 are one code
        return
    thin = [f"{'xyz'[axis]} ({size} voxels)" for axis, size in enumerate(image.GetSize()) if 1 < size < BSPLINE_SUPPORT]
    if thin:
        raise SettingsError(f"the image is too thin for B-spline resampling along {', '.join(thin)}: a cubic "
                            f"B-spline needs {BSPLINE_SUPPORT} voxels per axis (or a single one); set interpolator: "
                            f"sitkLinear in the parameters, or drop resampledPixelSpacing")


def _prepare_region(image: sitk.Image, mask: sitk.Image, label: int, stats: sitk.LabelShapeStatisticsImageFilter,
                    settings: dict[str, Any], resampling: bool, per_label_filters: bool) -> LabelRegion:
    from radiomics import imageoperations

    label_settings = {**settings, "label": label}
    crop_lower = crop_upper = None
    if resampling:
        work_image, work_mask = imageoperations.resampleImage(image, mask, **label_settings)
    else:
        dimension = image.GetDimension()
        box = stats.GetBoundingBox(label)  # index start..., size...
        start = np.array(box[:dimension])
        stop = start + np.array(box[dimension:]) - 1
        pad = int(settings.get("padDistance", 0)) if per_label_filters else 0
        size = np.array(image.GetSize())
        lower = np.maximum(start - pad, 0)
        upper = np.maximum(size - stop - pad - 1, 0)
        crop_lower, crop_upper = tuple(int(v) for v in lower), tuple(int(v) for v in upper)
        work_image = sitk.Crop(image, crop_lower, crop_upper)
        work_mask = sitk.Cast(sitk.Crop(mask, crop_lower, crop_upper), sitk.sitkUInt32)
    bounding_box, corrected = imageoperations.checkMask(work_image, work_mask, **label_settings)
    if corrected is not None:
        work_mask = corrected
    shape_mask = feature_mask = work_mask
    if settings.get("resegmentRange") is not None:
        resegmented = imageoperations.resegmentMask(work_image, work_mask, **label_settings)
        bounding_box, _ = imageoperations.checkMask(work_image, resegmented, **label_settings)
        feature_mask = resegmented
        if settings.get("resegmentShape", False):
            shape_mask = resegmented
    return LabelRegion(label, work_image, shape_mask, feature_mask, bounding_box, crop_lower, crop_upper)


def _compute_filtered(extractor: Any, generator: Any, targets: list[LabelRegion], features: dict[int, OrderedDict],
                      errors: dict[int, str], regions: dict[int, LabelRegion], cropped: bool,
                      offset: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> None:
    """Features of every target on each image of ``generator``. ``cropped``: the images are the label's own region
    already; otherwise each is cropped to the label's box, given by its crop sizes on the whole image less
    ``offset`` (the crop sizes, lower and upper, of the region the filter ran on; None for the whole image)."""
    from radiomics import imageoperations

    for filtered, image_type_name, kwargs in generator:
        for region in targets:
            if region.label in errors:
                continue
            try:
                if cropped:
                    source = filtered
                else:
                    lower, upper = region.crop_lower, region.crop_upper
                    if offset is not None:
                        lower = tuple(a - b for a, b in zip(lower, offset[0]))
                        upper = tuple(a - b for a, b in zip(upper, offset[1]))
                    source = sitk.Crop(filtered, lower, upper)
                image_crop, mask_crop = imageoperations.cropToTumorMask(source, region.feature_mask,
                                                                        region.bounding_box)
                values = extractor.computeFeatures(image_crop, mask_crop, image_type_name,
                                                   **{**kwargs, "label": region.label})
                features[region.label].update(values)
            except Exception as exc:
                errors[region.label] = _label_error(region.label, exc)
                regions.pop(region.label, None)


def _label_error(label: int, exc: Exception) -> str:
    from radiobio.errors import RadiobioError, describe

    if isinstance(exc, RadiobioError):
        return describe(exc)
    return f"MaskError: label {label}: {exc}" if isinstance(exc, ValueError) else describe(exc)
