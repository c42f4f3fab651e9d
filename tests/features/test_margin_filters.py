"""Margin-exact filtering: LoG, wavelet and point-wise filters computed on a region around the labels give every
feature within 1e-9 of PyRadiomics' ``execute`` (which filters the whole image), on the real PyRadiomics cases and
the multi-label prostate phantom, without preCrop and without resampling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio import extract_features
from radiobio.features.margins import LOG_MARGIN_SIGMAS, FilterPass, filter_passes, plan_regions, region_bounds
from tests.features.test_engine import ALL_CLASSES, pyradiomics_reference, worst_relative_difference

CASES = ("brain1", "brain2", "breast1", "lung1", "lung2", "prostate")
FILTERS = {
    "log": {"LoG": {"sigma": [0.5, 1.0, 3.0, 5.0]}},
    "wavelet_coif1": {"Wavelet": {"wavelet": "coif1", "level": 1}},
    "pointwise": {"Square": {}, "SquareRoot": {}, "Logarithm": {}, "Exponential": {}, "Gradient": {}},
}
#: A longer wavelet at two levels (reach 14 voxels): a case where it stays inside the image (lung1), one where it
#: reaches the border along z and wraps (brain1, 25 slices), and a small image where it wraps along every axis.
LONG_WAVELET_CASES = ("lung1", "brain1", "breast1")


def case_files(root: Path, case: str) -> tuple[str, str]:
    if case == "prostate":
        return (str(root / "prostate_phantom_subvolume.nrrd"), str(root / "prostate_phantom_subvolume-label.nrrd"))
    return str(root / f"{case}_image.nrrd"), str(root / f"{case}_label.nrrd")


def check_against_execute(root: Path, case: str, image_types: dict, classes: dict = ALL_CLASSES) -> float:
    """Extract with radiobio and compare every label's features with PyRadiomics' execute; return the worst."""
    image, mask = case_files(root, case)
    params = {"imageType": image_types, "featureClass": classes, "setting": {"binWidth": 25}}
    table = extract_features(pd.DataFrame({"case_id": [case], "image": [image], "mask": [mask]}), params=params,
                             jobs=1, progress=False)
    worst, compared = 0.0, 0
    for _, row in table.iterrows():
        label = int(row["label"])
        if row["error"]:  # a label PyRadiomics refuses too (the phantom's one-voxel-thick labels)
            with pytest.raises(ValueError):
                pyradiomics_reference(image, mask, params, label)
            continue
        reference = pyradiomics_reference(image, mask, params, label)
        filtered = [k for k in reference if not k.startswith("original_")]
        assert filtered, f"{case} label {label}: no filtered features"
        worst = max(worst, worst_relative_difference(row, reference))
        compared += len(reference)
    assert compared > 0, f"{case}: no label compared"
    return worst


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_match_whole_image_execute(pyradiomics_data: Path, case: str, name: str) -> None:
    worst = check_against_execute(pyradiomics_data, case, FILTERS[name])
    print(f"{case} {name}: worst relative difference {worst:.3g}")
    assert worst <= 1e-9, f"{case} {name}: worst relative difference {worst:.3g}"


@pytest.mark.parametrize("case", LONG_WAVELET_CASES)
def test_long_wavelet_two_levels_matches_execute(pyradiomics_data: Path, case: str) -> None:
    image_types = {"Wavelet": {"wavelet": "db4", "level": 2}}
    worst = check_against_execute(pyradiomics_data, case, image_types, {"firstorder": None, "glcm": None,
                                                                        "glszm": None})
    print(f"{case} wavelet db4 level 2: worst relative difference {worst:.3g}")
    assert worst <= 1e-9, f"{case} db4 level 2: worst relative difference {worst:.3g}"


def test_filters_run_on_a_small_region(pyradiomics_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On lung2 (512 × 512 × 61) every shared filter runs on a region of a few percent of the image."""
    from radiobio.features import engine

    sizes: list[int] = []
    real_crop = engine.crop_region

    def recording_crop(image: sitk.Image, start: tuple[int, ...], stop: tuple[int, ...]) -> sitk.Image:
        sizes.append(int(np.prod(np.subtract(stop, start))))
        return real_crop(image, start, stop)

    monkeypatch.setattr(engine, "crop_region", recording_crop)
    image_types = {"LoG": {"sigma": [1.0]}, "Wavelet": {}, "Square": {}, "Gradient": {}}
    check_against_execute(pyradiomics_data, "lung2", image_types, {"firstorder": None})
    assert len(sizes) == 4
    assert max(sizes) < 0.05 * 512 * 512 * 61, sizes


def test_log_margin_is_needed_and_enough(pyradiomics_data: Path) -> None:
    """On lung2 the derived margin gives the whole-image LoG bit for bit inside the lesion's box, on a region far
    smaller than the image; half of it (13 σ) does not."""
    image = sitk.ReadImage(str(pyradiomics_data / "lung2_image.nrrd"))
    mask = sitk.Cast(sitk.ReadImage(str(pyradiomics_data / "lung2_label.nrrd")), sitk.sitkUInt32)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    box = stats.GetBoundingBox(1)
    lower, upper = box[:3], tuple(a + b for a, b in zip(box[:3], box[3:]))
    log = sitk.LaplacianRecursiveGaussianImageFilter()
    log.SetNormalizeAcrossScale(True)
    log.SetSigma(1.0)

    def inside_box(start: tuple[int, ...], stop: tuple[int, ...]) -> np.ndarray:
        region = sitk.Crop(image, start, [n - e for n, e in zip(image.GetSize(), stop)])
        out = sitk.GetArrayFromImage(log.Execute(region))
        return out[tuple(slice(lo - s, up - s) for lo, up, s in zip(lower[::-1], upper[::-1], start[::-1]))]

    whole = inside_box((0, 0, 0), image.GetSize())
    (derived,) = filter_passes("LoG", {"sigma": [1.0]}, {}, image)
    spacing = image.GetSpacing()
    assert derived.margin == tuple(math.ceil(LOG_MARGIN_SIGMAS / s) for s in spacing)
    start, stop = region_bounds(lower, upper, image.GetSize(), derived)
    assert np.prod(np.subtract(stop, start)) < 0.1 * np.prod(image.GetSize())
    assert np.array_equal(inside_box(start, stop), whole)
    half = FilterPass("LoG", {}, tuple(math.ceil(m / 2) for m in derived.margin), min_length=4)
    assert not np.array_equal(inside_box(*region_bounds(lower, upper, image.GetSize(), half)), whole)


def test_wavelet_axis_reaching_the_border_is_taken_whole() -> None:
    periodic = FilterPass("Wavelet", {}, (5, 5, 5), periodic=True)
    start, stop = region_bounds((10, 10, 2), (21, 20, 8), (64, 64, 25), periodic)
    assert start == (5, 5, 0) and stop == (27, 25, 25)  # x made even (22), y 20 already even, z wraps: whole
    recursive = FilterPass("LoG", {}, (3, 3, 30), min_length=4)
    assert region_bounds((0, 10, 2), (1, 11, 3), (64, 64, 25), recursive) == ((0, 7, 0), (4, 14, 25))


def test_far_apart_labels_get_a_region_each() -> None:
    gradient = FilterPass("Gradient", {}, (1, 1, 1))
    boxes = {1: ((0, 0, 0), (4, 4, 4)), 2: ((90, 90, 40), (96, 96, 48))}
    assert plan_regions(boxes, (100, 100, 50), gradient) == [((0, 0, 0), (5, 5, 5), [1]),
                                                              ((89, 89, 39), (97, 97, 49), [2])]
    close = {1: ((10, 10, 10), (20, 20, 20)), 2: ((12, 12, 12), (22, 22, 22))}
    assert plan_regions(close, (100, 100, 50), gradient) == [((9, 9, 9), (23, 23, 23), [1, 2])]
