"""The IBSI convention's image processing on phantoms whose answers are computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.features import extract_features
from radiobio.features.ibsi import ibsi_grid

PARAMS = {"featureClass": {"shape": None, "firstorder": None, "glszm": None},
          "setting": {"binWidth": 100, "resegmentRange": [0, 1000]}}


def _write(array: np.ndarray, path: Path, spacing: tuple[float, float, float]) -> str:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-12.0, 4.0, 30.0))
    sitk.WriteImage(image, str(path))
    return str(path)


@pytest.fixture()
def two_cubes(tmp_path: Path) -> pd.DataFrame:
    """A 10 mm cube (label 1, 100 HU inside) and a 4 mm cube (label 2, 300 HU) on a 1 mm grid of 0 HU."""
    image = np.zeros((30, 30, 30), dtype=np.int16)
    mask = np.zeros(image.shape, dtype=np.uint8)
    mask[5:15, 5:15, 5:15] = 1
    mask[20:24, 20:24, 20:24] = 2
    image[mask == 1] = 100
    image[mask == 2] = 300
    return pd.DataFrame({"case_id": ["cubes"], "image": [_write(image, tmp_path / "image.nrrd", (1.0, 1.0, 1.0))],
                         "mask": [_write(mask, tmp_path / "mask.nrrd", (1.0, 1.0, 1.0))]})


def test_volumes_and_intensities_of_two_labels_and_a_note_for_an_absent_one(two_cubes: pd.DataFrame) -> None:
    table = extract_features(two_cubes, params=PARAMS, convention="ibsi", labels=[1, 2, 3]).set_index("label")
    assert table.loc[1, "original_morph_vol_approx"] == pytest.approx(1000.0)
    assert table.loc[2, "original_morph_vol_approx"] == pytest.approx(64.0)
    assert table.loc[1, "original_stat_mean"] == 100.0 and table.loc[2, "original_stat_mean"] == 300.0
    # one grey level, one zone: a 10 x 10 x 10 zone of 1000 voxels
    assert table.loc[1, "original_szm_lze_3D"] == pytest.approx(1000.0 ** 2)
    assert table.loc[3, "note"].startswith("label 3 absent from the mask")
    assert (table["error"] == "").all()


def test_centre_aligned_interpolation_keeps_the_cube_exact(two_cubes: pd.DataFrame) -> None:
    # On a 0.5 mm grid aligned on the original grid's centre, new voxel centres lie 0.25 mm inside and outside each
    # face: the linearly interpolated mask is 0.75 and 0.25 there, so 20 voxels per edge stay; along an edge of the
    # cube the value is 0.75^2 = 0.56 (kept), at its 8 corners 0.75^3 = 0.42 (dropped): 20^3 - 8 voxels of 0.125 mm^3.
    params = {**PARAMS, "setting": {**PARAMS["setting"], "resampledPixelSpacing": [0.5, 0.5, 0.5],
                                    "interpolator": "sitkLinear"}, "ibsi": {"families": ["diag"]}}
    table = extract_features(two_cubes, params=params, convention="ibsi", labels=[1]).iloc[0]
    assert table["error"] == ""
    assert table["diagnostics_morph_mask_vox_count_interp_roi"] == 20 ** 3 - 8
    assert table["original_morph_vol_approx"] == pytest.approx((20 ** 3 - 8) * 0.125)
    assert table["diagnostics_morph_mask_bb_dim_x_interp_roi"] == 20
    assert table["diagnostics_img_dim_x_interp_img"] == 60
    # the intensity mask keeps [0, 1000] HU: every ROI voxel, interpolated values 25...100 HU at the faces
    assert table["diagnostics_int_mask_vox_count_reseg_roi"] == 20 ** 3 - 8
    assert table["diagnostics_int_mask_max_int_interp_roi"] == pytest.approx(100.0)


def test_the_centre_aligned_grid_by_hand() -> None:
    # 5 voxels of 3 mm -> 2 mm: ceil(15 / 2) = 8 voxels; the first new voxel centre lies (3*4 - 2*7) / 2 = -1 mm from
    # the first old one, so both grids share their centre at 6 mm from the first old centre.
    image = sitk.Image([5, 4, 1], sitk.sitkFloat32)
    image.SetSpacing((3.0, 1.0, 2.0))
    image.SetOrigin((10.0, 0.0, 0.0))
    size, spacing, origin = ibsi_grid(image, (2.0, 0.0, 0.0))
    assert size == (8, 4, 1) and spacing == (2.0, 1.0, 2.0)
    assert origin == pytest.approx((9.0, 0.0, 0.0))
    assert origin[0] + 2.0 * (size[0] - 1) / 2 == pytest.approx(10.0 + 3.0 * 4 / 2)
    # a single slice keeps its thickness: there is nothing to interpolate between
    size, spacing, _ = ibsi_grid(image, (2.0, 2.0, 1.0))
    assert size == (8, 2, 1) and spacing == (2.0, 2.0, 2.0)
