"""Margin-exact filtering: each shared filter runs on the smallest region around the labels whose output inside every
label's bounding box equals the output of the same filter run on the whole image.

PyRadiomics (without ``preCrop`` or resampling) filters the whole image and then reads only the voxels inside each
label's bounding box. A filter's value at a voxel depends on the voxels around it out to a distance fixed by the
filter, so a region made of the labels' bounding boxes plus that distance (the *margin*, in voxels along each axis,
capped at the image) gives the same values inside the boxes. How each margin is derived:

- **LoG** (SimpleITK ``LaplacianRecursiveGaussianImageFilter``, Deriche's recursive Gaussian as ITK implements it):
  along an axis of spacing ``s`` mm the filter is a sum of causal and anti-causal recursions whose poles are
  ``exp(-1.3932 / σ_v)`` and ``exp(-1.3732 / σ_v)`` with ``σ_v = σ / s`` voxels (ITK's coefficients ``L1, L2``).
  The influence of a voxel at distance ``d`` voxels therefore decays as ``exp(-1.3732 d / σ_v)``; a region border at
  distance ``d`` changes the values only through that term. The filter's output is float32 for integer images, so
  a looser bound does not buy a smaller relative error: any change is at least one float32 step (6e-8 relative),
  far above the 1e-9 feature bound. The margin is therefore the distance at which the response falls below the unit
  roundoff of the double-precision recursion, ``2**-53``: ``d = ceil(σ_v · 53 ln 2 / 1.3732) ≈ 26.8 σ_v`` voxels.
  The border's contribution is then below the arithmetic's own rounding, and the values inside the boxes are the
  whole-image values (bit-identical on the PyRadiomics test cases for σ = 0.5 to 5 mm; at 20 σ one voxel in 60 000
  still rounds differently, at 12 σ the error is 1e-7 relative). A crop that reaches the image border on an axis
  is capped there: the recursion starts from the same border voxel as on the whole image.
- **Wavelet** (PyRadiomics' stationary wavelet transform, ``pywt.swtn`` level by level, periodic at the image
  border): each level convolves every transformed axis with filters of ``dec_len`` taps, so a value depends on the
  ``(dec_len - 1) · (start_level + level)`` voxels on either side, exactly (finite support). Because the transform
  wraps around the image border (and PyRadiomics pads an odd axis with its first voxel), an axis whose margin
  reaches the border is taken whole, exactly as on the whole image; elsewhere the region's length is made even so
  that PyRadiomics adds no padding. Axes removed by ``force2D`` need no margin.
- **Square, SquareRoot, Logarithm, Exponential**: point-wise, margin 0, but PyRadiomics scales them by the largest
  absolute intensity of the whole image (and the logarithm by the largest absolute logarithm): radiobio takes those
  maxima from the whole image and applies PyRadiomics' formula to the region only.
- **Gradient** (SimpleITK ``GradientMagnitudeImageFilter``, central differences with zero-flux Neumann border):
  margin 1 voxel.
- **LBP2D, LBP3D** and any other filter: no margin is derived; they run on the whole image as before (LBP3D also
  depends on the mask and is computed per label).

Every value still comes from PyRadiomics' or SimpleITK's own filter code; only the region it runs on changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

#: Slowest decay rate of ITK's recursive Gaussian (its coefficient ``L2 = -1.3732``), per σ in voxels.
RECURSIVE_GAUSSIAN_DECAY = 1.3732
#: Relative size below which the recursive Gaussian's response no longer changes a double-precision result.
UNIT_ROUNDOFF = 2.0 ** -53
#: LoG margin in σ (voxels along each axis): where ``exp(-1.3732 d / σ)`` falls below the unit roundoff (≈ 26.8 σ).
LOG_MARGIN_SIGMAS = math.log(1.0 / UNIT_ROUNDOFF) / RECURSIVE_GAUSSIAN_DECAY
#: ITK's recursive filters need at least this many voxels along every axis of the region they run on.
MIN_RECURSIVE_LENGTH = 4
#: Point-wise filters computed here from whole-image maxima, with PyRadiomics' formulas.
POINTWISE_FILTERS = ("Square", "SquareRoot", "Logarithm", "Exponential")


@dataclass(frozen=True)
class FilterPass:
    """One filter run on a region: the image type, its settings, the margin (voxels per image axis, x first) and
    whether an axis reaching the image border must be taken whole (periodic filters) and other axes kept even."""

    image_type: str
    settings: dict[str, Any]
    margin: tuple[int, ...]
    periodic: bool = False
    min_length: int = 1


def filter_passes(image_type: str, custom: dict[str, Any], settings: dict[str, Any],
                  image: sitk.Image) -> list[FilterPass] | None:
    """The margin-exact passes of one enabled image type, or None when it must run on the whole image.

    ``custom``: the image type's own settings from the parameter file; ``settings``: the extractor's settings. LoG
    gives one pass per σ (each σ has its own margin); margins are in voxels along each axis of ``image``.
    """
    dimension = image.GetDimension()
    spacing = np.array(image.GetSpacing(), dtype=float)
    args = {**settings, **custom}
    if image_type == "LoG":
        passes = []
        for sigma in args.get("sigma", []) or []:
            try:
                value = float(sigma)
            except (TypeError, ValueError):
                return None
            if not value > 0:  # PyRadiomics warns and skips it: let it do so on the whole image
                return None
            margin = tuple(int(math.ceil(value / s * LOG_MARGIN_SIGMAS)) for s in spacing)
            passes.append(FilterPass(image_type, {**custom, "sigma": [sigma]}, margin,
                                     min_length=MIN_RECURSIVE_LENGTH))
        return passes
    if image_type == "Wavelet":
        import pywt

        wavelet = args.get("wavelet", "coif1")
        try:
            taps = (wavelet if isinstance(wavelet, pywt.Wavelet) else pywt.Wavelet(wavelet)).dec_len
            levels = int(args.get("start_level", 0)) + int(args.get("level", 1))
        except (TypeError, ValueError):
            return None  # PyRadiomics reports the bad setting itself, on the whole image
        reach = (taps - 1) * levels
        margin = [reach] * dimension
        if args.get("force2D", False):
            numpy_axis = int(args.get("force2Ddimension", 0))  # PyRadiomics' axes are NumPy's (z first)
            if 0 <= numpy_axis < dimension:
                margin[dimension - 1 - numpy_axis] = 0
        return [FilterPass(image_type, custom, tuple(margin), periodic=True)]
    if image_type in POINTWISE_FILTERS:
        return [FilterPass(image_type, custom, (0,) * dimension)]
    if image_type == "Gradient":
        return [FilterPass(image_type, custom, (1,) * dimension)]
    return None


def region_bounds(box_lower: Sequence[int], box_upper: Sequence[int], size: Sequence[int],
                  filter_pass: FilterPass) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Index range ``[start, stop)`` per axis of the region a pass needs around a box ``[box_lower, box_upper)``."""
    start, stop = [], []
    for lower, upper, length, margin in zip(box_lower, box_upper, size, filter_pass.margin):
        first, last = lower - margin, upper + margin
        if filter_pass.periodic:
            if (last - first) % 2:
                last += 1
            if first < 0 or last > length:  # the transform wraps at the border: take the axis whole
                first, last = 0, length
        else:
            first, last = max(first, 0), min(last, length)
            while last - first < min(filter_pass.min_length, length):
                first, last = max(first - 1, 0), min(last + 1, length)
        start.append(int(first))
        stop.append(int(last))
    return tuple(start), tuple(stop)


def plan_regions(boxes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]], size: Sequence[int],
                 filter_pass: FilterPass) -> list[tuple[tuple[int, ...], tuple[int, ...], list[int]]]:
    """Regions to filter and the labels each serves: one region around all labels, or one per label when those
    hold fewer voxels in total (labels far apart); each as ``(start, stop, labels)``."""
    if not boxes:
        return []
    own = {label: region_bounds(lower, upper, size, filter_pass) for label, (lower, upper) in boxes.items()}
    lower = np.min([b[0] for b in boxes.values()], axis=0)
    upper = np.max([b[1] for b in boxes.values()], axis=0)
    union = region_bounds(tuple(int(v) for v in lower), tuple(int(v) for v in upper), size, filter_pass)

    def voxels(bounds: tuple[tuple[int, ...], tuple[int, ...]]) -> int:
        return int(np.prod(np.subtract(bounds[1], bounds[0]), dtype=np.int64))

    if len(boxes) > 1 and sum(voxels(b) for b in own.values()) < voxels(union):
        return [(start, stop, [label]) for label, (start, stop) in own.items()]
    return [(union[0], union[1], list(boxes))]


def crop_region(image: sitk.Image, start: Sequence[int], stop: Sequence[int]) -> sitk.Image:
    """``image`` restricted to the index range ``[start, stop)`` (origin moved accordingly; no copy when whole)."""
    size = image.GetSize()
    if tuple(start) == (0,) * len(size) and tuple(stop) == tuple(size):
        return image
    return sitk.Crop(image, [int(v) for v in start], [int(n - e) for n, e in zip(size, stop)])


@dataclass(frozen=True)
class WholeImageMaxima:
    """The whole-image statistics PyRadiomics' point-wise filters scale by (intensity units of the image)."""

    abs_max: float
    minimum: float
    maximum: float


def whole_image_maxima(image: sitk.Image) -> WholeImageMaxima:
    """Largest absolute, smallest and largest intensity of ``image`` (as float64, as PyRadiomics converts them)."""
    array = sitk.GetArrayViewFromImage(image)
    low, high = float(array.min()), float(array.max())
    return WholeImageMaxima(max(abs(low), abs(high)), low, high)


def filtered_images(filter_pass: FilterPass, region: sitk.Image, mask: sitk.Image, whole: sitk.Image,
                    maxima: WholeImageMaxima | None, settings: dict[str, Any]) -> Iterator[tuple[sitk.Image, str,
                                                                                                   dict[str, Any]]]:
    """PyRadiomics' ``(image, image type name, settings)`` triples of one pass, computed on ``region``.

    ``whole``: the whole image, for the checks PyRadiomics makes on its size; ``maxima``: its statistics, for the
    point-wise filters. Yields what the PyRadiomics generator yields on the whole image, restricted to ``region``.
    """
    from radiomics import imageoperations

    args = {**settings, **filter_pass.settings}
    kind = filter_pass.image_type
    if kind == "LoG":
        yield from _log_images(region, whole, args)
    elif kind in POINTWISE_FILTERS:
        if maxima is None:
            maxima = whole_image_maxima(whole)
        yield _pointwise_image(kind, region, maxima), kind.lower(), args
    else:
        yield from getattr(imageoperations, f"get{kind}Image")(region, mask, **args)


def _log_images(region: sitk.Image, whole: sitk.Image, args: dict[str, Any]) -> Iterator[tuple[sitk.Image, str,
                                                                                                 dict[str, Any]]]:
    """``getLoGImage`` with its size checks made on the whole image (as PyRadiomics makes them), run on ``region``."""
    size = np.array(whole.GetSize())
    spacing = np.array(whole.GetSpacing())
    if np.min(size) < 4:
        return  # PyRadiomics: image too small for LoG, no LoG image
    for sigma in args.get("sigma", []):
        if sigma > 0.0 and np.all(size >= np.ceil(sigma / spacing) + 1):
            log_filter = sitk.LaplacianRecursiveGaussianImageFilter()
            log_filter.SetNormalizeAcrossScale(True)
            log_filter.SetSigma(sigma)
            yield log_filter.Execute(region), f"log-sigma-{str(sigma).replace('.', '-')}-mm-3D", args


def _pointwise_image(kind: str, region: sitk.Image, maxima: WholeImageMaxima) -> sitk.Image:
    """PyRadiomics' ``get<kind>Image`` formula applied to ``region`` with the whole image's maxima."""
    im = sitk.GetArrayFromImage(region).astype("float64")
    im_max = maxima.abs_max
    if kind == "Square":
        coeff = 1 / np.sqrt(np.float64(im_max))
        im = (coeff * im) ** 2
    elif kind == "SquareRoot":
        coeff = im_max
        im[im > 0] = np.sqrt(im[im > 0] * coeff)
        im[im < 0] = -np.sqrt(-im[im < 0] * coeff)
    elif kind == "Logarithm":
        # the largest |log| of the whole image is reached at its smallest or largest intensity (both maps monotone)
        extremes = np.array([maxima.minimum, maxima.maximum])
        extremes[extremes > 0] = np.log(extremes[extremes > 0] + 1)
        extremes[extremes < 0] = -np.log(-(extremes[extremes < 0] - 1))
        im[im > 0] = np.log(im[im > 0] + 1)
        im[im < 0] = -np.log(-(im[im < 0] - 1))
        im = im * (im_max / np.max(np.abs(extremes)))
    elif kind == "Exponential":
        coeff = np.log(np.float64(im_max)) / np.float64(im_max)
        im = np.exp(coeff * im)
    else:  # pragma: no cover - filter_passes lists the kinds
        raise ValueError(kind)
    out = sitk.GetImageFromArray(im)
    out.CopyInformation(region)
    return out
