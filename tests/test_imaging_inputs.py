"""Images checked at the door: raw NIfTI headers, grids that differ (every property, flips and permutations),
one file of a DICOM series, folders of several series and study folders."""

from __future__ import annotations

import gzip
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radiobio.errors import GeometryError, ImageReadError, MaskError
from radiobio.imaging import (
    as_label_map,
    check_geometry,
    check_nifti_header,
    dicom_series_info,
    grid_axis_map,
    labels_present,
    read_image,
    read_mask,
    resample_mask,
    write_image,
)
from radiobio.synthetic import sphere_phantom

# --------------------------------------------------------------------------------------------------------------
# NIfTI headers


def _nifti1_with_pixdim(tmp_path: Path, name: str, value: float, compress: bool) -> Path:
    """A real NIfTI-1 written by ITK (spacing 0.5, 0.7, 2.0 mm), then pixdim[1] patched in the raw header."""
    image = sitk.GetImageFromArray(np.arange(120, dtype=np.int16).reshape(4, 5, 6))
    image.SetSpacing((0.5, 0.7, 2.0))
    plain = tmp_path / "source.nii"
    sitk.WriteImage(image, str(plain), False)
    raw = bytearray(plain.read_bytes())
    assert struct.unpack("<f", raw[80:84])[0] == 0.5  # pixdim[1] sits at byte 80 of a NIfTI-1 header
    raw[80:84] = struct.pack("<f", value)
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(raw)) if compress else bytes(raw))
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("value", [0.0, math.nan, math.inf])
def test_nifti_zero_or_nan_pixdim_is_a_geometry_error(tmp_path: Path, value: float, compress: bool) -> None:
    name = "bad.nii.gz" if compress else "bad.nii"
    path = _nifti1_with_pixdim(tmp_path, name, value, compress)
    # ITK on its own reads the broken spacing as 1 mm without a word: the reason for the raw header check
    assert sitk.ReadImage(str(path)).GetSpacing()[0] == 1.0
    shown = {0.0: "0.0", math.nan: "nan", math.inf: "inf"}[value]
    with pytest.raises(GeometryError, match=rf"{name}.*pixdim\[1\.\.3\].*\({shown}, 0\.7, 2\.0\) mm"):
        read_image(path)
    with pytest.raises(GeometryError, match="pixdim"):
        read_mask(path)


def test_valid_nifti_header_passes_and_spacing_is_kept(tmp_path: Path) -> None:
    path = _nifti1_with_pixdim(tmp_path, "good.nii.gz", 0.5, compress=True)
    assert check_nifti_header(path) == 1
    np.testing.assert_allclose(read_image(path).GetSpacing(), (0.5, 0.7, 2.0), rtol=1e-6)


def test_nifti_pair_header_is_checked(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.arange(120, dtype=np.int16).reshape(4, 5, 6))
    image.SetSpacing((0.5, 0.7, 2.0))
    sitk.WriteImage(image, str(tmp_path / "pair.hdr"))  # pair.hdr + pair.img
    np.testing.assert_allclose(read_image(tmp_path / "pair.hdr").GetSpacing(), (0.5, 0.7, 2.0), rtol=1e-6)
    raw = bytearray((tmp_path / "pair.hdr").read_bytes())
    raw[84:88] = struct.pack("<f", 0.0)  # pixdim[2]
    (tmp_path / "pair.hdr").write_bytes(bytes(raw))
    with pytest.raises(GeometryError, match=r"pair\.hdr.*\(0\.5, 0\.0, 2\.0\) mm"):
        read_image(tmp_path / "pair.hdr")


def _nifti2(path: Path, data: np.ndarray, spacing: tuple[float, float, float]) -> Path:
    """A NIfTI-2 single file (540-byte header, int16 voxels) written field by field from the NIfTI-2 layout."""
    nx, ny, nz = data.shape[::-1]
    header = bytearray(540)
    struct.pack_into("<i", header, 0, 540)
    header[4:12] = b"n+2\x00\r\n\x1a\n"
    struct.pack_into("<hh", header, 12, 4, 16)  # datatype int16, bitpix 16
    struct.pack_into("<8q", header, 16, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<8d", header, 104, 1.0, *spacing, 0, 0, 0, 0)
    struct.pack_into("<q", header, 168, 544)  # vox_offset
    struct.pack_into("<d", header, 176, 1.0)  # scl_slope
    struct.pack_into("<i", header, 344, 1)  # qform_code
    struct.pack_into("<i", header, 500, 2)  # xyzt_units: mm
    path.write_bytes(bytes(header) + b"\0" * 4 + data.astype("<i2").tobytes())
    return path


def test_nifti2_header_is_checked_too(tmp_path: Path) -> None:
    data = np.arange(120).reshape(4, 5, 6)
    bad = _nifti2(tmp_path / "zero2.nii", data, (0.0, 0.7, 2.0))
    with pytest.raises(GeometryError, match=r"zero2\.nii.*\(0\.0, 0\.7, 2\.0\) mm"):
        read_image(bad)
    good = _nifti2(tmp_path / "good2.nii", data, (0.5, 0.7, 2.0))
    assert check_nifti_header(good) == 2
    cut = tmp_path / "cut2.nii"
    cut.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(ImageReadError, match="truncated file"):
        read_image(cut)
    # this SimpleITK reads NIfTI-1 only: a valid NIfTI-2 gets a message naming the version and the conversion
    try:
        image = read_image(good)
    except ImageReadError as exc:
        assert "NIfTI-2" in str(exc) and "NIfTI-1" in str(exc)
    else:
        np.testing.assert_allclose(image.GetSpacing(), (0.5, 0.7, 2.0), rtol=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), data)


def test_non_finite_spacing_of_any_image_is_a_geometry_error(tmp_path: Path) -> None:
    image = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    write_image(image, tmp_path / "a.mha", compress=False)
    text = (tmp_path / "a.mha").read_bytes().replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 nan 1")
    (tmp_path / "nan.mha").write_bytes(text)
    with pytest.raises(GeometryError, match=r"nan\.mha.*spacing"):
        read_mask(tmp_path / "nan.mha")
    # an image built in memory with a NaN spacing: check_geometry names the spacing, not the origin
    broken = sitk.Image(image)
    broken.SetSpacing((1.0, math.nan, 1.0))
    with pytest.raises(GeometryError, match=r"^mask: invalid voxel spacing \(1\.0, nan, 1\.0\) mm"):
        check_geometry(image, broken)


# --------------------------------------------------------------------------------------------------------------
# Grids: every difference, flips and permutations


def test_check_geometry_reports_every_property_that_differs() -> None:
    image = sphere_phantom(size=(10, 10, 10)).image
    other = sitk.Image(12, 10, 10, sitk.sitkUInt8)
    other.SetSpacing((1.0, 1.0, 2.0))
    other.SetOrigin((0.0, 0.0, 1.5))
    other.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    with pytest.raises(GeometryError) as info:
        check_geometry(image, other)
    message = str(info.value)
    assert message.startswith("size differs: image (10, 10, 10) vs mask (12, 10, 10) voxels")
    positions = [message.index(f"{p} differs") for p in ("size", "spacing", "origin", "direction")]
    assert positions == sorted(positions)
    assert "(1.0, 1.0, 2.0) mm" in message and "(0.0, 0.0, 1.5) mm" in message
    assert "cover different regions" in message and "resample_masks=True" in message


def test_only_the_differing_property_is_named() -> None:
    image = sphere_phantom(size=(10, 10, 10)).image
    shifted = sitk.Image(image)
    shifted.SetOrigin((0.0, 0.0, 1.5))
    with pytest.raises(GeometryError) as info:
        check_geometry(image, shifted)
    message = str(info.value)
    assert message.startswith("origin differs") and "size differs" not in message and "direction" not in message


def _flipped_copy(mask: sitk.Image, axis: int) -> sitk.Image:
    """The same voxels stored with index axis ``axis`` (ITK order) reversed: same physical content."""
    array = np.flip(sitk.GetArrayFromImage(mask), axis=2 - axis)
    out = sitk.GetImageFromArray(np.ascontiguousarray(array))
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    last = [0, 0, 0]
    last[axis] = mask.GetSize()[axis] - 1
    origin = mask.TransformIndexToPhysicalPoint(last)
    direction[:, axis] *= -1
    out.SetSpacing(mask.GetSpacing())
    out.SetOrigin(origin)
    out.SetDirection(tuple(direction.ravel()))
    return out


def _permuted_copy(mask: sitk.Image) -> sitk.Image:
    """The same voxels stored with index axes x and y swapped."""
    out = sitk.GetImageFromArray(np.ascontiguousarray(np.swapaxes(sitk.GetArrayFromImage(mask), 1, 2)))
    direction = np.array(mask.GetDirection()).reshape(3, 3)[:, [1, 0, 2]]
    spacing = mask.GetSpacing()
    out.SetSpacing((spacing[1], spacing[0], spacing[2]))
    out.SetOrigin(mask.GetOrigin())
    out.SetDirection(tuple(direction.ravel()))
    return out


def _asymmetric_phantom() -> tuple[sitk.Image, sitk.Image]:
    phantom = sphere_phantom(radius_mm=5, size=(20, 24, 16), spacing=(0.8, 1.1, 2.0))
    mask = sitk.GetArrayFromImage(phantom.mask).astype(np.uint8)
    mask[2:5, 3:9, 1:4] = 2  # an off-centre block: any wrong flip moves it
    labelled = sitk.GetImageFromArray(mask)
    labelled.CopyInformation(phantom.image)
    return phantom.image, labelled


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_flipped_axis_is_named_and_resampling_is_exact(axis: int) -> None:
    image, mask = _asymmetric_phantom()
    flipped = _flipped_copy(mask, axis)
    letter = "xyz"[axis]
    with pytest.raises(GeometryError, match=rf"same physical extent, axis flipped \({letter}\).*lossless"):
        check_geometry(image, flipped)
    assert grid_axis_map(image, flipped) == ((0, 1, 2), tuple(a == axis for a in range(3)))
    back = resample_mask(flipped, image)
    check_geometry(image, back)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    # ITK's nearest-neighbour resampling agrees voxel for voxel: the exact path is the same mapping
    itk = sitk.Resample(flipped, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, flipped.GetPixelID())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk), sitk.GetArrayFromImage(mask))


def test_permuted_and_flipped_axes_are_named_and_resampling_is_exact() -> None:
    image, mask = _asymmetric_phantom()
    permuted = _flipped_copy(_permuted_copy(mask), 0)
    axes, flipped = grid_axis_map(image, permuted)
    assert axes == (1, 0, 2) and flipped == (True, False, False)
    with pytest.raises(GeometryError, match=r"same physical extent, axes permuted .*axis flipped \(y\)"):
        check_geometry(image, permuted)
    back = resample_mask(permuted, image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))


def test_same_extent_at_another_spacing_and_half_voxel_shift_are_not_called_flips() -> None:
    image, mask = _asymmetric_phantom()
    coarse = sitk.Resample(mask, [10, 12, 8], sitk.Transform(), sitk.sitkNearestNeighbor,
                           image.TransformContinuousIndexToPhysicalPoint((0.5, 0.5, 0.5)), (1.6, 2.2, 4.0),
                           image.GetDirection(), 0, mask.GetPixelID())
    with pytest.raises(GeometryError, match="same physical extent on another voxel grid.*nearest neighbour"):
        check_geometry(image, coarse)
    assert grid_axis_map(image, coarse) is None
    shifted = sitk.Image(mask)
    shifted.SetOrigin(image.TransformContinuousIndexToPhysicalPoint((0.5, 0, 0)))
    assert grid_axis_map(image, shifted) is None


def test_resampling_a_mask_that_misses_the_image_is_refused() -> None:
    image, mask = _asymmetric_phantom()
    far = sitk.Image(mask)
    far.SetOrigin((500.0, 500.0, 500.0))
    with pytest.raises(MaskError, match="entirely outside"):
        resample_mask(far, image)
    with pytest.raises(GeometryError, match="2D"):
        resample_mask(mask[:, :, 0], image)


def test_real_dicom_ct_with_flipped_nifti_mask(abdomen_data: Path) -> None:
    image = read_image(abdomen_data / "example_ct_dicom")
    path = abdomen_data / "example_seg_dicom.nii.gz"
    with pytest.raises(GeometryError) as info:
        read_mask(path, reference=image)
    message = str(info.value)
    assert message.startswith("origin differs") and "direction differs" in message
    assert "same physical extent, axis flipped (y)" in message
    assert "resample_masks=True" in message and "--resample-masks" in message and "lossless" in message
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert int(np.count_nonzero(raw == 5)) == 366708  # liver, as stored
    mask = read_mask(path, reference=image, resample=True)
    check_geometry(image, mask)
    values = sitk.GetArrayFromImage(mask)
    assert int(np.count_nonzero(values == 5)) == 366708
    # independent truth: the stored y axis runs the other way, so the mask on the CT grid is the y-reversed array
    np.testing.assert_array_equal(values, raw[:, ::-1, :])
    assert labels_present(mask) == labels_present(raw)


# --------------------------------------------------------------------------------------------------------------
# DICOM files and folders


def _series_folders(hippocampus_data: Path) -> list[Path]:
    return sorted({f.parent for f in (hippocampus_data / "dicom_unlabelled").rglob("*.dcm")})


def test_one_file_of_a_series_reads_the_whole_series(hippocampus_data: Path) -> None:
    folder = _series_folders(hippocampus_data)[0]
    whole = read_image(folder)
    from_file = read_image(folder / "1.dcm")
    assert whole.GetSize()[2] == 32 and from_file.GetSize() == whole.GetSize()
    assert from_file.GetOrigin() == whole.GetOrigin() and from_file.GetSpacing() == whole.GetSpacing()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(from_file), sitk.GetArrayFromImage(whole))


def test_a_lone_dicom_file_is_still_an_image(tmp_path: Path, hippocampus_data: Path) -> None:
    source = _series_folders(hippocampus_data)[0] / "1.dcm"
    shutil.copy(source, tmp_path / "only.dcm")
    assert read_image(tmp_path / "only.dcm").GetSize()[:2] == read_image(source.parent).GetSize()[:2]


def test_dicom_file_without_suffix_or_uid_reads_its_series(abdomen_data: Path) -> None:
    first = sorted((abdomen_data / "example_ct_dicom").iterdir())[0]
    assert read_image(first).GetSize() == (512, 512, 20)


def test_folder_of_several_series_lists_them_and_series_uid_chooses(
        tmp_path: Path, hippocampus_data: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folders = _series_folders(hippocampus_data)[:2]
    for index, folder in enumerate(folders):
        for file in folder.iterdir():
            shutil.copy(file, tmp_path / f"{index}_{file.name}")
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path)
    message = str(info.value)
    assert "folder holds 2 DICOM series" in message
    assert "'HippoCrop', MR, 32 files" in message and "'HippoCrop', MR, 35 files" in message
    assert "read_image(path, series_uid=..., modality=..., series_description=...)" in message
    assert "'series_uid', 'modality' or 'series_description' column" in message
    series = {len(s.files): s for s in dicom_series_info(tmp_path)}
    assert sorted(series) == [32, 35]
    assert series[35].modality == "MR" and series[35].description == "HippoCrop"
    chosen = read_image(tmp_path, series_uid=series[35].uid)
    assert chosen.GetSize()[2] == 35
    np.testing.assert_array_equal(sitk.GetArrayFromImage(chosen), sitk.GetArrayFromImage(read_image(folders[1])))
    with pytest.raises(ImageReadError, match=r"(?s)no DICOM series with series_uid='1\.2\.3'.*32 files"):
        read_image(tmp_path, series_uid="1.2.3")
    # an empty cohort cell means "the only series"
    assert read_image(folders[0], series_uid=float("nan")).GetSize()[2] == 32
    assert read_image(folders[0], series_uid="").GetSize()[2] == 32
    # a file with a series_uid: its series when the UID is its own, else an error naming the filter
    assert read_image(tmp_path / "0_1.dcm", series_uid=series[32].uid).GetSize()[2] == 32
    with pytest.raises(ImageReadError, match="series does not match series_uid="):
        read_image(tmp_path / "0_1.dcm", series_uid=series[35].uid)
    assert "WARNING" not in capfd.readouterr().err


def test_study_folder_with_one_series_reads_it(hippocampus_data: Path, capfd: pytest.CaptureFixture[str]) -> None:
    series_folder = _series_folders(hippocampus_data)[0]
    study = series_folder.parent
    assert sitk.ProcessObject.GetGlobalWarningDisplay()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(study)),
                                  sitk.GetArrayFromImage(read_image(series_folder)))
    with pytest.raises(ImageReadError) as info:
        read_image(hippocampus_data / "dicom_unlabelled")
    message = str(info.value)
    assert "folder holds 3 DICOM series" in message
    assert "Study1/13_HCropVolume/: " in message and "32 files" in message
    err = capfd.readouterr().err
    assert "WARNING" not in err and "itkGDCMSeriesFileNames" not in err
    assert sitk.ProcessObject.GetGlobalWarningDisplay()  # ITK's warnings are back on for everything else


def test_empty_folder_says_it_holds_no_series(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(ImageReadError, match=r"holds no DICOM series \(in it or its subfolders\); give an image"):
        read_image(tmp_path)


# --------------------------------------------------------------------------------------------------------------
# Label maps


def test_as_label_map_takes_images_and_paths(tmp_path: Path) -> None:
    whole = sitk.GetImageFromArray(np.array([[[0.0, 2.0], [7.0, 0.0]]], np.float32))
    path = write_image(whole, tmp_path / "w.nii.gz")
    for source in (whole, path, str(path)):
        labels = as_label_map(source)
        assert labels.GetPixelID() == sitk.sitkUInt32 and labels_present(labels) == [2, 7]
    with pytest.raises(MaskError, match="probs.*non-integer"):
        as_label_map(sitk.GetImageFromArray(np.full((2, 2, 2), 0.5, np.float32)), "probs")
    with pytest.raises(MaskError, match="components"):
        as_label_map(sitk.Image([2, 2, 2], sitk.sitkVectorUInt8, 3))
    assert labels_present(np.array([[0, 3], [3, 1]])) == [1, 3]
