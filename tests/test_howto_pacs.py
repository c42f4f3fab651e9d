"""The PACS how-to runs as documented: every block marked ``<!-- howto-pacs: run -->`` in ``docs/howto-pacs.md`` runs
in order, verbatim, in a fresh folder holding a DICOM tree made of the real files in ``shared/data/dicom_rt``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radiobio import read_seg, read_segmentation
from radiobio.tables import read_table
from tests.conftest import require_data

HOWTO = Path(__file__).resolve().parents[1] / "docs" / "howto-pacs.md"
BLOCK = re.compile(r"<!-- howto-pacs: run -->\s*```(\w+)\n(.*?)```", re.S)
DCIODVFY = Path(sys.executable).parent / "dciodvfy"


def _export_tree(folder: Path) -> None:
    data = require_data("dicom_rt")
    copies = {"PHANTOM/study1/ct": ["rt-utils_tests/mock_data/ct_1.dcm", "rt-utils_tests/mock_data/ct_2.dcm"],
              "PHANTOM/study1/rt": ["rt-utils_tests/mock_data/rt.dcm"],
              "99000/study1/ct": [f"dcmqi_segmentations/ct-3slice/0{i}.dcm" for i in (1, 2, 3)],
              "99000/study1/seg": ["dcmqi_segmentations/liver.dcm"]}
    for target, files in copies.items():
        (folder / "export" / target).mkdir(parents=True)
        for file in files:
            shutil.copy(data / file, folder / "export" / target)


def test_pacs_howto_runs_as_written(tmp_path: Path) -> None:
    _export_tree(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    blocks = BLOCK.findall(HOWTO.read_text())
    assert [lang for lang, _ in blocks] == ["bash", "python", "bash", "python"]
    for i, (lang, code) in enumerate(blocks):
        script = tmp_path / f"step{i}.{'sh' if lang == 'bash' else 'py'}"
        script.write_text(("set -euo pipefail\n" + code) if lang == "bash" else code)
        command = ["bash", str(script)] if lang == "bash" else [sys.executable, str(script)]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"block {i}:\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr
    series = read_table(tmp_path / "series.csv")
    assert sorted(series["modality"]) == ["CT", "CT", "RTSTRUCT", "SEG"]
    assert "patient_name" not in series.columns and "PHANTOM_EXAMPLE" in set(series["patient_id"])
    features = read_table(tmp_path / "features.parquet")
    assert (features["error"] == "").all() and len(features) == 2
    liver_truth = sitk.ReadImage(str(require_data("dicom_rt", "dcmqi_segmentations", "liver_seg.nrrd")))
    liver = features.set_index("case_id").loc["99000"]
    truth_mm3 = np.count_nonzero(sitk.GetArrayFromImage(liver_truth)) * np.prod(liver_truth.GetSpacing())
    assert liver["original_shape_VoxelVolume"] == pytest.approx(truth_mm3, rel=0.01)  # the ct preset resamples
    ct = tmp_path / "export" / "PHANTOM" / "study1" / "ct"
    roi = read_segmentation(tmp_path / "export/PHANTOM/study1/rt/rt.dcm#ROI-1", image=ct)
    voxels = np.count_nonzero(sitk.GetArrayFromImage(roi.mask))
    phantom = features.set_index("case_id").loc["PHANTOM_EXAMPLE"]
    print("phantom ROI-1:", phantom["original_shape_VoxelVolume"], voxels * np.prod(roi.mask.GetSpacing()))
    assert phantom["original_shape_VoxelVolume"] == pytest.approx(voxels * np.prod(roi.mask.GetSpacing()), rel=0.1)
    for written in ("PHANTOM.seg.dcm", "PHANTOM.rtstruct.dcm"):
        check = subprocess.run([str(DCIODVFY), str(tmp_path / "review" / written)], capture_output=True, text=True)
        errors = [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], written
    back, _ = read_seg(tmp_path / "review" / "PHANTOM.seg.dcm", ct)
    assert np.array_equal(sitk.GetArrayFromImage(back) != 0, sitk.GetArrayFromImage(roi.mask) != 0)
    again = read_segmentation(tmp_path / "review" / "PHANTOM.rtstruct.dcm", image=ct)
    assert np.array_equal(sitk.GetArrayFromImage(again.mask), sitk.GetArrayFromImage(roi.mask))


def test_bspline_resampling_of_a_two_slice_series_is_refused_not_crashed(tmp_path: Path) -> None:
    import pandas as pd

    from radiobio import extract_features

    mock = require_data("dicom_rt", "rt-utils_tests", "mock_data")
    cohort = pd.DataFrame([{"case_id": "thin", "image": str(mock / "ct_1.dcm"), "mask": f"{mock / 'rt.dcm'}#ROI-1"}])
    with pytest.warns(Warning):  # the structure set names another frame of reference than its CT
        table = extract_features(cohort, params="ct", labels=[1])
    assert "too thin for B-spline resampling along z (2 voxels)" in table.loc[0, "error"]
    assert "sitkLinear" in table.loc[0, "error"]
