"""scan_dicom on the real DICOM trees: one row per image series and per non-image object, values checked against
pydicom read independently, references of RTSTRUCT and SEG, privacy, paths a cohort can use, provenance."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from radiobio.dicom.scan import SCAN_COLUMNS, scan_dicom
from radiobio.errors import CohortError, DicomWarning, SettingsError
from radiobio.imaging import read_image
from radiobio.tables import read_table, write_table
from tests.conftest import require_data


@pytest.fixture(scope="module")
def dicom_rt_scan() -> pd.DataFrame:
    root = require_data("dicom_rt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        return scan_dicom(root)


def _row(frame: pd.DataFrame, path: Path) -> pd.Series:
    rows = frame[frame["path"] == str(path)]
    assert len(rows) == 1, f"{path}: {len(rows)} rows"
    return rows.iloc[0]


def test_one_row_per_series_and_per_object(dicom_rt_scan: pd.DataFrame) -> None:
    frame = dicom_rt_scan
    assert tuple(frame.columns) == SCAN_COLUMNS
    root = require_data("dicom_rt")
    image_series = frame[frame["modality"] == "CT"]
    assert len(image_series) == 12  # 10 series folders + 2 multi-frame files
    inventory = [line.split()[2] for line in (root / "INVENTORY.txt").read_text().splitlines() if line.strip()]
    for modality in ("SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "SR"):  # one row per file of a non-image object
        assert (frame["modality"] == modality).sum() == inventory.count(modality) > 0
    ct = _row(frame, root / "dcmqi_segmentations" / "ct-3slice")
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted((root / "dcmqi_segmentations" /
                                                                            "ct-3slice").glob("*.dcm"))]
    first = headers[0]
    assert ct["series_uid"] == first.SeriesInstanceUID and ct["study_uid"] == first.StudyInstanceUID
    assert ct["instances"] == 3 and ct["files"] == 3 and (ct["rows"], ct["columns"]) == (512, 512)
    assert ct["pixel_spacing_row"] == pytest.approx(float(first.PixelSpacing[0]))
    assert ct["slice_thickness"] == pytest.approx(1.25)
    steps = np.diff(sorted(float(h.ImagePositionPatient[2]) for h in headers))
    assert ct["slice_spacing"] == pytest.approx(float(np.median(steps)))
    assert ct["note"] == "" and ct["referenced_series_uid"] == ""
    gap = _row(frame, root / "pydicom_testdata" / "CT2")
    assert gap["instances"] == 4 and gap["slice_spacing"] == pytest.approx(1.25, abs=0.06)
    assert gap["note"].startswith("missing slices") and "-99.48 and 103.02 mm" in gap["note"]
    frames = _row(frame, root / "dcmqi_segmentations" / "24x38x3" / "multiframe" / "mf.dcm")
    assert (frames["instances"], frames["files"], frames["rows"], frames["columns"]) == (3, 1, 38, 24)
    assert frames["pixel_spacing_row"] == pytest.approx(0.7) and frames["slice_spacing"] == pytest.approx(2.5)
    oblique = _row(frame, root / "rt-utils_tests" / "oriented_data")
    assert oblique["non_dicom_files"] == 1 and "info.txt" in oblique["note"]
    dose = _row(frame, root / "pydicom_testdata" / "rtdose.dcm")
    assert dose["modality"] == "RTDOSE" and dose["instances"] == 15 and dose["sop_class"] == "RT Dose Storage"


def test_rtstruct_and_seg_rows_name_their_series(dicom_rt_scan: pd.DataFrame) -> None:
    frame = dicom_rt_scan
    root = require_data("dicom_rt")
    mock = _row(frame, root / "rt-utils_tests" / "mock_data")
    structure = _row(frame, root / "rt-utils_tests" / "mock_data" / "rt.dcm")
    assert structure["modality"] == "RTSTRUCT" and structure["referenced_series_uid"] == mock["series_uid"]
    header = pydicom.dcmread(root / "rt-utils_tests" / "mock_data" / "rt.dcm", stop_before_pixels=True)
    assert structure["frame_of_reference_uid"] == \
        header.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID  # it has no FrameOfReferenceUID of its own
    assert _row(frame, root / "rt-utils_tests" / "mock_data" / "non_existent_reference_rt.dcm")[
        "referenced_series_uid"] == ""
    seg = _row(frame, root / "dcmqi_segmentations" / "liver.dcm")
    assert seg["referenced_series_uid"] == _row(frame, root / "dcmqi_segmentations" / "ct-3slice")["series_uid"]
    source = pydicom.dcmread(root / "highdicom_test_files" / "seg_image_ct_binary.dcm", stop_before_pixels=True)
    assert _row(frame, root / "highdicom_test_files" / "seg_image_ct_binary.dcm")["referenced_series_uid"] == \
        source.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert _row(frame, root / "pydicom_testdata" / "CT2")["series_uid"] == \
        source.ReferencedSeriesSequence[0].SeriesInstanceUID


def test_sorted_and_private(dicom_rt_scan: pd.DataFrame) -> None:
    frame = dicom_rt_scan
    keys = list(zip(frame["patient_id"], frame["study_uid"], strict=True))
    assert keys == sorted(keys)
    assert not any("name" in c or "birth" in c for c in frame.columns)
    names = set()
    for file in require_data("dicom_rt").rglob("*.dcm"):
        header = pydicom.dcmread(file, stop_before_pixels=True, force=True)
        name = str(header.get("PatientName", "")).strip()
        if name and name != str(header.get("PatientID", "")).strip():  # phantoms named by their ID
            names.add(name)
    assert names  # the files do hold patient names...
    cells = set(frame.astype(str).to_numpy().ravel())
    assert not names & cells  # ...and the table none of them


def test_abdomen_series_without_uids_paths_a_cohort_can_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    abdomen = require_data("abdomen_ct")
    monkeypatch.chdir(abdomen.parent)
    with pytest.warns(DicomWarning, match=r"file\(s\) are not DICOM and were skipped.*non_dicom_files"):
        frame = scan_dicom("abdomen_ct")
    assert len(frame) == 1
    row = frame.iloc[0]
    files = sorted((abdomen / "example_ct_dicom").iterdir())
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert row["path"] == os.path.join("abdomen_ct", "example_ct_dicom")  # relative, as the root was given
    assert row["series_uid"] == "" and row["modality"] == "CT" and row["instances"] == 20
    assert row["series_description"] == header.SeriesDescription and row["manufacturer"] == header.Manufacturer
    assert row["kvp"] == pytest.approx(float(header.KVP)) and row["contrast_agent"] == header.ContrastBolusAgent
    assert row["acquisition_date"] == f"{header.AcquisitionDate[:4]}-{header.AcquisitionDate[4:6]}-" \
                                      f"{header.AcquisitionDate[6:8]}"
    assert row["convolution_kernel"] == "\\".join(header.ConvolutionKernel)
    assert read_image(row["path"]).GetSize() == (512, 512, 20)
    assert frame.attrs["provenance"]["stage"] == "scan"
    assert frame.attrs["provenance"]["root"] == str(abdomen.resolve())
    assert "radiobio" in frame.attrs["provenance"]
    back = read_table(write_table(frame, tmp_path / "series.csv"))
    assert back.attrs["provenance"] == frame.attrs["provenance"]


def test_two_series_in_one_folder_and_parallel_scan(tmp_path: Path) -> None:
    study = require_data("hippocampus", "dicom_unlabelled", "Study1")
    mixed = tmp_path / "export" / "patient"
    mixed.mkdir(parents=True)
    series_folders = sorted({f.parent for f in study.parent.rglob("*.dcm")})[:2]
    for index, folder in enumerate(series_folders):
        for file in folder.glob("*.dcm"):
            shutil.copy(file, mixed / f"{index}_{file.name}")
    (mixed / "notes.txt").write_text("not DICOM")
    (mixed / ".hidden").write_text("skipped")
    with pytest.warns(DicomWarning, match=r"1 file\(s\) are not DICOM"):
        frame = scan_dicom(tmp_path / "export")
    assert sorted(frame["instances"]) == [32, 35] and set(frame["path"]) == {str(mixed)}
    assert frame["series_uid"].nunique() == 2 and (frame["non_dicom_files"] == 1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        parallel = scan_dicom(tmp_path / "export", jobs=2)
    pd.testing.assert_frame_equal(parallel, frame)


def test_bad_arguments() -> None:
    with pytest.raises(CohortError, match="no such folder"):
        scan_dicom("/nonexistent/export")
    with pytest.raises(CohortError, match="is a file"):
        scan_dicom(require_data("dicom_rt", "README.md"))
    with pytest.raises(SettingsError, match="jobs"):
        scan_dicom(require_data("abdomen_ct"), jobs=0)
