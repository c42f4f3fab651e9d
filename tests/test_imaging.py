"""Image I/O and geometry: formats, DICOM series, geometry checks, resampling, and bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radiobio.errors import GeometryError, ImageReadError, MaskError
from radiobio.imaging import check_geometry, read_image, read_mask, resample_mask, write_image
from radiobio.synthetic import sphere_phantom


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_formats_round_trip_with_geometry(tmp_path: Path, suffix: str) -> None:
    phantom = sphere_phantom(radius_mm=6, size=(20, 22, 18), spacing=(0.8, 0.9, 2.5))
    phantom.image.SetOrigin((-10.5, 3.25, 7.0))
    path = write_image(phantom.image, tmp_path / f"img{suffix}")
    back = read_image(path)
    assert back.GetSize() == (20, 22, 18)
    np.testing.assert_allclose(back.GetSpacing(), (0.8, 0.9, 2.5), rtol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), (-10.5, 3.25, 7.0), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(phantom.image))


def test_dicom_series_folder(abdomen_data: Path) -> None:
    image = read_image(abdomen_data / "example_ct_dicom")
    assert image.GetSize()[2] == 20
    assert image.GetSize()[:2] == (512, 512)
    assert image.GetSpacing()[0] == pytest.approx(0.98, abs=0.01)


def test_folder_with_two_series_says_how_to_choose(tmp_path: Path, hippocampus_data: Path) -> None:
    series_folders = sorted({f.parent for f in (hippocampus_data / "dicom_unlabelled").rglob("*") if f.is_file()})
    for index, folder in enumerate(series_folders[:2]):
        for file in folder.iterdir():
            shutil.copy(file, tmp_path / f"{index}_{file.name}")
    with pytest.raises(ImageReadError, match="(?s)2 DICOM series.*series_uid"):
        read_image(tmp_path)
    from radiobio.imaging import dicom_series

    uid = next(iter(dicom_series(tmp_path)))
    assert read_image(tmp_path, series_uid=uid).GetDimension() == 3


def test_missing_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "absent.nii.gz")
    path = write_image(sphere_phantom(size=(30, 30, 30)).image, tmp_path / "full.nii.gz")
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="truncated.nii.gz.*truncated file"):
        read_image(truncated)
    plain = write_image(sphere_phantom(size=(30, 30, 30)).image, tmp_path / "plain.nii", compress=False)
    (tmp_path / "cut.nii").write_bytes(plain.read_bytes()[:-100])
    with pytest.raises(ImageReadError, match="truncated file"):
        read_image(tmp_path / "cut.nii")
    garbage = tmp_path / "garbage.nrrd"
    garbage.write_text("not an image")
    with pytest.raises(ImageReadError):
        read_image(garbage)


@pytest.mark.parametrize("spacing", [b"0 1 1", b"nan 1 1"])
def test_zero_or_nan_spacing_is_a_geometry_error(tmp_path: Path, spacing: bytes) -> None:
    write_image(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), tmp_path / "a.mha", compress=False)
    header = (tmp_path / "a.mha").read_bytes().replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = " + spacing)
    (tmp_path / "bad.mha").write_bytes(header)
    with pytest.raises(GeometryError, match="spacing"):
        read_image(tmp_path / "bad.mha")


def test_check_geometry_names_property_and_values() -> None:
    image = sphere_phantom(size=(10, 10, 10)).image
    other = sitk.Image(image)
    other.SetOrigin((0.0, 0.0, 1.5))
    with pytest.raises(GeometryError, match=r"origin differs.*\(0\.0, 0\.0, 0\.0\).*\(0\.0, 0\.0, 1\.5\)"):
        check_geometry(image, other)
    bigger = sitk.Image(12, 10, 10, sitk.sitkUInt8)
    with pytest.raises(GeometryError, match=r"size differs.*\(10, 10, 10\).*\(12, 10, 10\)"):
        check_geometry(image, bigger)
    spaced = sitk.Image(image)
    spaced.SetSpacing((1.0, 1.0, 2.0))
    with pytest.raises(GeometryError, match="spacing differs"):
        check_geometry(image, spaced)
    rotated = sitk.Image(image)
    rotated.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    with pytest.raises(GeometryError, match="direction differs"):
        check_geometry(image, rotated)
    check_geometry(image, sitk.Image(image))


def test_read_mask_resamples_only_when_asked(tmp_path: Path) -> None:
    phantom = sphere_phantom(radius_mm=8, size=(32, 32, 32), spacing=(1.0, 1.0, 1.0))
    coarse = sitk.Resample(phantom.mask, [16, 16, 16], sitk.Transform(), sitk.sitkNearestNeighbor,
                           phantom.mask.GetOrigin(), (2.0, 2.0, 2.0), phantom.mask.GetDirection(), 0,
                           phantom.mask.GetPixelID())
    path = write_image(coarse, tmp_path / "coarse.nii.gz")
    with pytest.raises(GeometryError, match="size differs"):
        read_mask(path, reference=phantom.image)
    resampled = read_mask(path, reference=phantom.image, resample=True)
    assert resampled.GetSize() == phantom.image.GetSize()
    assert set(np.unique(sitk.GetArrayFromImage(resampled))) == {0, 1}
    # nearest neighbour keeps the volume within one coarse voxel layer of the truth
    truth = phantom.voxel_count(1)
    assert abs(int(sitk.GetArrayFromImage(resampled).sum()) - truth) < 0.15 * truth


def test_non_integer_mask_is_refused_but_whole_floats_convert(tmp_path: Path) -> None:
    probabilities = sitk.GetImageFromArray(np.full((4, 4, 4), 0.4, np.float32))
    with pytest.raises(MaskError, match="non-integer"):
        read_mask(write_image(probabilities, tmp_path / "p.nii.gz"))
    whole = sitk.GetImageFromArray(np.eye(4, dtype=np.float32)[None].repeat(4, 0) * 2)
    mask = read_mask(write_image(whole, tmp_path / "w.nii.gz"))
    assert mask.GetPixelID() == sitk.sitkUInt32
    assert int(sitk.GetArrayFromImage(mask).max()) == 2


def test_resample_mask_keeps_labels() -> None:
    phantom = sphere_phantom(size=(20, 20, 20))
    shifted = sitk.Image(phantom.image)
    shifted.SetOrigin((1.0, 0.0, 0.0))
    out = resample_mask(phantom.mask, shifted)
    array = sitk.GetArrayFromImage(out)
    np.testing.assert_array_equal(array[:, :, :-1], sitk.GetArrayFromImage(phantom.mask)[:, :, 1:])
