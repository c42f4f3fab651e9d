"""DICOM series through read_image: study and patient folders, one file of a series, series selection, slice
geometry checks (missing slices, uneven spacing, gantry tilt, mixed orientations, frames of reference), non-DICOM
files, rescale to HU, multi-frame CT. Bad cases are real files copied into tmp_path and edited with pydicom."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from radiobio.errors import DicomWarning, GeometryError, ImageReadError, SettingsError
from radiobio.imaging import check_slice_geometry, find_dicom_series, read_image
from tests.conftest import require_data


def _dicom_rt(*parts: str) -> Path:
    return require_data("dicom_rt", *parts)


def _copy_series(source: Path, target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for file in sorted(source.iterdir()):
        if file.suffix == ".dcm":
            files.append(Path(shutil.copy(file, target / file.name)))
    return files


def _edit(file: Path, **values: object) -> None:
    dataset = pydicom.dcmread(file)
    for keyword, value in values.items():
        setattr(dataset, keyword, value)
    dataset.save_as(file)


def _small_ct(tmp_path: Path, name: str = "series") -> list[Path]:
    """The 23×38×3 CT of dcmqi (2.5 mm slices at z = -177.75, -175.25, -172.75 mm), copied."""
    return _copy_series(_dicom_rt("dcmqi_segmentations", "23x38x3", "image"), tmp_path / name)


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


# --------------------------------------------------------------------------------------------------------------
# What a path may name


def test_one_file_reads_its_whole_series_and_a_one_file_series_is_one_slice() -> None:
    folder = _dicom_rt("dcmqi_segmentations", "ct-3slice")
    whole = read_image(folder)
    assert whole.GetSize() == (512, 512, 3)
    from_file = read_image(folder / "02.dcm")
    assert from_file.GetSize() == whole.GetSize() and from_file.GetOrigin() == whole.GetOrigin()
    np.testing.assert_array_equal(_array(from_file), _array(whole))
    one = read_image(_dicom_rt("rt-utils_tests", "one_slice_data"))
    assert one.GetSize() == (100, 50, 1)
    np.testing.assert_allclose(one.GetOrigin(), (123.0, -432.0, 30.0))


def test_patient_folder_with_one_matching_series_is_read(tmp_path: Path) -> None:
    case = _dicom_rt("dcmqi_segmentations", "23x38x3")  # image/ (3 files) and multiframe/ (1 file), both CT
    with pytest.raises(ImageReadError) as info:
        read_image(case)
    message = str(info.value)
    assert "folder holds 2 DICOM series" in message
    assert "image/: series 123456, 'Image 23x38x3', CT, 3 files" in message
    assert "multiframe/: series 123456, 'Multiframe image 23x38x3', CT, 1 file, 3 frames" in message
    assert "series_description=" in message and "'modality'" in message
    by_substring = read_image(case, series_description="MULTIFRAME")
    by_regex = read_image(case, series_description=r"re:^image \d+x")
    np.testing.assert_array_equal(_array(by_substring), _array(by_regex))
    assert by_regex.GetOrigin() == read_image(case / "image").GetOrigin()
    uid = pydicom.dcmread(case / "multiframe" / "mf.dcm", stop_before_pixels=True).SeriesInstanceUID
    assert read_image(case, series_uid=uid).GetSize() == (23, 38, 3)
    with pytest.raises(ImageReadError, match=r"(?s)no DICOM series with modality='MR'.*image/: series 123456"):
        read_image(case, modality="MR")
    with pytest.raises(SettingsError, match="not a valid regular expression"):
        read_image(case, series_description="re:(")
    # a study folder: a CT and an MR series; the modality picks one
    study = tmp_path / "patient" / "study"
    _small_ct(study, "ct")
    mr_source = require_data("hippocampus", "dicom_unlabelled", "Study1", "13_HCropVolume")
    shutil.copytree(mr_source, study / "mr")
    mr = read_image(tmp_path / "patient", modality="mr")
    np.testing.assert_array_equal(_array(mr), _array(read_image(mr_source)))
    assert read_image(tmp_path / "patient", modality="CT").GetSize() == (23, 38, 3)
    found = find_dicom_series(tmp_path / "patient", modality="MR")
    assert found.folder == str(study / "mr") and len(found.files) == 32 and found.description == "HippoCrop"


def test_objects_that_are_not_images_are_refused_or_read_on_request() -> None:
    with pytest.raises(ImageReadError, match=r"rt\.dcm: a DICOM RTSTRUCT object, not an image.*mask column"):
        read_image(_dicom_rt("rt-utils_tests", "mock_data", "rt.dcm"))
    assert read_image(_dicom_rt("rt-utils_tests", "mock_data")).GetSize() == (512, 512, 2)  # RTSTRUCTs beside it
    dose = _dicom_rt("pydicom_testdata", "rtdose.dcm")
    with pytest.raises(ImageReadError, match="modality='RTDOSE'"):
        read_image(dose)
    grid = read_image(dose, modality="RTDOSE")
    header = pydicom.dcmread(dose, stop_before_pixels=True)
    assert grid.GetSize() == (header.Columns, header.Rows, int(header.NumberOfFrames))
    offsets = [float(v) for v in header.GridFrameOffsetVector]
    assert grid.GetSpacing()[2] == pytest.approx((offsets[-1] - offsets[0]) / (len(offsets) - 1))


# --------------------------------------------------------------------------------------------------------------
# Slice geometry


def test_real_series_with_missing_slices_names_the_gap() -> None:
    # pydicom's CT2: slices at -99.5, 103.0, 104.3 and 105.5 mm, a step of 1.25 mm
    with pytest.raises(GeometryError) as info:
        read_image(_dicom_rt("pydicom_testdata", "CT2"))
    message = str(info.value)
    assert "missing slices" in message and "median step of 1.25 mm" in message
    assert "between -99.48 and 103.02 mm" in message
    assert "~161 slices missing" in message  # (103.02 - -99.48) / 1.25 = 162 steps


def test_a_deleted_slice_is_a_gap(tmp_path: Path) -> None:
    source = require_data("hippocampus", "dicom_unlabelled", "Study1", "13_HCropVolume")
    shutil.copytree(source, tmp_path / "mr")
    headers = {f: pydicom.dcmread(f, stop_before_pixels=True) for f in (tmp_path / "mr").glob("*.dcm")}
    by_z = sorted(headers, key=lambda f: float(headers[f].ImagePositionPatient[2]))
    positions = [float(headers[f].ImagePositionPatient[2]) for f in by_z]
    by_z[10].unlink()
    below, above = round(positions[9], 3), round(positions[11], 3)
    with pytest.raises(GeometryError, match=rf"between {below!r} and {above!r} mm \(~1 slice missing\)"):
        read_image(tmp_path / "mr")


def test_uneven_spacing_is_read_with_the_mean_step_and_warned(tmp_path: Path, capfd: pytest.CaptureFixture[str]
                                                               ) -> None:
    files = _small_ct(tmp_path)  # z = -177.75, -175.25, -172.75
    _edit(files[1], ImagePositionPatient=[46.4649, 5.01881, -175.0])  # steps 2.75 and 2.25 mm
    with pytest.warns(DicomWarning, match=r"uneven slice spacing: steps from 2\.25 to 2\.75 mm.*mean step 2\.5 mm"):
        image = read_image(tmp_path / "series")
    assert image.GetSpacing()[2] == pytest.approx(2.5)
    assert "WARNING" not in capfd.readouterr().err  # ITK's own "non uniform sampling" text stays hidden


def test_gantry_tilt_is_refused_but_an_oblique_grid_is_read(tmp_path: Path) -> None:
    files = _small_ct(tmp_path)
    for index, file in enumerate(files):  # each slice 1 mm further in y: a 21.8° tilt of a 2.5 mm stack
        position = [float(v) for v in pydicom.dcmread(file, stop_before_pixels=True).ImagePositionPatient]
        _edit(file, ImagePositionPatient=[position[0], position[1] + index, position[2]], GantryDetectorTilt=21.8)
    with pytest.raises(GeometryError, match=r"do not lie along the slice normal.*2\.0 mm sideways, a slant of 21\.8.*"
                                            r"GantryDetectorTilt \(0018,1120\) = 21\.8.*does not resample"):
        read_image(tmp_path / "series")
    # rt-utils' oblique slices lie along the normal of their planes: a regular grid, read with its direction
    oblique = tmp_path / "oblique"
    _copy_series(_dicom_rt("rt-utils_tests", "oriented_data"), oblique)
    image = read_image(oblique)
    header = pydicom.dcmread(oblique / "0.dcm", stop_before_pixels=True)
    cosines = np.asarray(header.ImageOrientationPatient, dtype=float)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction[:, 0], cosines[:3], atol=1e-6)
    np.testing.assert_allclose(direction[:, 2], np.cross(cosines[:3], cosines[3:]), atol=1e-6)
    assert image.GetSize() == (100, 50, 3) and image.GetSpacing()[2] == pytest.approx(4.5, abs=1e-3)


def test_slice_geometry_tolerates_rounded_positions_but_not_a_small_tilt() -> None:
    rng = np.random.default_rng(0)
    z = np.arange(100) * 0.625
    axial = [1, 0, 0, 0, 1, 0]
    rounded = np.column_stack([np.round(rng.uniform(-0.005, 0.005, 100), 3), np.zeros(100), z])
    geometry = check_slice_geometry(rounded.tolist(), orientations=[axial] * 100)
    assert geometry.step == pytest.approx(0.625) and geometry.notes == ()
    assert geometry.positions == tuple(z)
    tilted = np.column_stack([np.zeros(100), z * np.tan(np.radians(0.5)), z])  # a 0.5° gantry tilt
    with pytest.raises(GeometryError, match=r"slant of 0\.5° from the normal"):
        check_slice_geometry(tilted[::-1].tolist(), orientations=[axial] * 100)


def test_mixed_orientations_and_frames_of_reference_are_refused(tmp_path: Path) -> None:
    files = _small_ct(tmp_path, "mixed")
    _edit(files[2], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    with pytest.raises(GeometryError, match=r"mixes 2 slice orientations.*\(1\.0, 0\.0, 0\.0, 0\.0, 0\.0, -1\.0\)"):
        read_image(tmp_path / "mixed")
    files = _small_ct(tmp_path, "frames")
    _edit(files[0], FrameOfReferenceUID="1.2.3.4")
    with pytest.raises(GeometryError, match=r"2 frames of reference.*'1\.2\.3\.4' \(1 slices\).*\(2 slices\)"):
        read_image(tmp_path / "frames")
    files = _small_ct(tmp_path, "twice")
    shutil.copy(files[0], files[0].with_name("copy.dcm"))
    with pytest.raises(GeometryError, match="share a position"):
        read_image(tmp_path / "twice")


def test_a_non_dicom_file_in_the_series_folder_is_named(tmp_path: Path) -> None:
    files = _small_ct(tmp_path)
    (tmp_path / "series" / ".DS_Store").write_bytes(b"\0\1hidden")
    (tmp_path / "series" / "DICOMDIR").write_bytes(b"not parsed")
    assert read_image(tmp_path / "series").GetSize() == (23, 38, 3)  # hidden files and DICOMDIR are skipped
    (tmp_path / "series" / "notes.txt").write_text("scanned on the old scanner")
    (tmp_path / "series" / "export").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    for path in (tmp_path / "series", files[0]):
        with pytest.raises(ImageReadError, match=r"also holds 2 file\(s\) that are not DICOM: .*export, .*notes\.txt; "
                                                 r"move them out of the series folder"):
            read_image(path)


# --------------------------------------------------------------------------------------------------------------
# Pixel values and multi-frame images


def _pydicom_hu(files: list[Path]) -> np.ndarray:
    datasets = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])


def test_rescale_slope_and_intercept_give_hu(tmp_path: Path) -> None:
    folder = _dicom_rt("dcmqi_segmentations", "ct-3slice")  # intercept -1024
    files = sorted(folder.glob("*.dcm"))
    np.testing.assert_array_equal(_array(read_image(folder)), _pydicom_hu(files))
    copies = _copy_series(folder, tmp_path / "ct")
    for file in copies:
        _edit(file, RescaleSlope=0.5, RescaleIntercept=-1000)
    hu = _array(read_image(tmp_path / "ct"))
    np.testing.assert_allclose(hu, _pydicom_hu(copies), atol=1e-6)
    assert hu.min() < -900 and not np.allclose(hu, np.round(hu))  # half HU steps: the slope was applied


def test_jpeg2000_ct_is_read_in_hu() -> None:
    folder = require_data("abdomen_ct", "example_ct_dicom")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    try:
        expected = _pydicom_hu(files)
    except Exception as exc:  # noqa: BLE001 - pydicom without a JPEG 2000 decoder
        pytest.skip(f"pydicom cannot decode JPEG 2000 here ({exc})")
    image = read_image(folder)
    assert image.GetSize() == (512, 512, 20)
    np.testing.assert_array_equal(_array(image), expected)


@pytest.mark.parametrize("case", ["23x38x3", "24x38x3"])
def test_multi_frame_ct_equals_its_single_frame_series(case: str) -> None:
    folder = _dicom_rt("dcmqi_segmentations", case)
    frames = read_image(folder / "multiframe" / "mf.dcm")
    slices = read_image(folder / "image")
    assert frames.GetSize() == slices.GetSize()
    np.testing.assert_allclose(frames.GetOrigin(), slices.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(frames.GetSpacing(), slices.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(frames.GetDirection(), slices.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(_array(frames), _array(slices))
    assert read_image(folder / "multiframe").GetSize() == slices.GetSize()


def test_multi_frame_rescale_and_frame_checks(tmp_path: Path) -> None:
    source = _dicom_rt("dcmqi_segmentations", "23x38x3", "multiframe", "mf.dcm")
    dataset = pydicom.dcmread(source)
    transform = dataset.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    transform.RescaleSlope, transform.RescaleIntercept = 2, -5
    dataset.save_as(tmp_path / "rescaled.dcm")
    raw = _array(read_image(source)).astype(np.int64)
    np.testing.assert_array_equal(_array(read_image(tmp_path / "rescaled.dcm")), raw * 2 - 5)
    # a frame moved 20 mm away: a gap between frames, named like one between files
    dataset = pydicom.dcmread(source)
    dataset.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0].ImagePositionPatient = [46.4649, 5.01881,
                                                                                                 -152.75]
    dataset.save_as(tmp_path / "gap.dcm")
    (tmp_path / "readme.txt").write_text("a multi-frame file does not mind its neighbours")
    with pytest.raises(GeometryError, match=r"gap.dcm: missing slices.*between -175\.25 and -152\.75 mm"):
        read_image(tmp_path / "gap.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "rescaled.dcm").GetSize() == (23, 38, 3)
