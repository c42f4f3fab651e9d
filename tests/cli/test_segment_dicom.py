"""``radiobio segment --dicom-out seg|rtstruct``: masks go back as DICOM that references the source series, passes
dciodvfy and reads back to the same voxels; a series without UIDs gets an error row naming the tag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio import read_seg, read_segmentation
from radiobio.cli import main
from radiobio.tables import read_table

DCIODVFY = Path(sys.executable).parent / "dciodvfy"


def _dicom_errors(path: Path) -> list[str]:
    done = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("kind", ["seg", "rtstruct"])
def test_segment_writes_dicom_for_review(kind: str, hippocampus_data: Path, abdomen_data: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    study = hippocampus_data / "dicom_unlabelled" / "Study1"  # a study folder holding one MR series
    pd.DataFrame([{"case_id": "s1", "image": str(study)},
                  {"case_id": "no_uids", "image": str(abdomen_data / "example_ct_dicom")}]).to_csv(
        tmp_path / "c.csv", index=False)
    code = main(["segment", str(tmp_path / "c.csv"), "-m", "hippocampus-3d", "-o", str(tmp_path / "r"),
                 "--dicom-out", kind, "-q"])
    assert code == 1  # one case cannot be referenced
    table = read_table(tmp_path / "r" / "cohort.csv").set_index("case_id")
    assert "SOPInstanceUID (0008,0018)" in table.loc["no_uids", "error"]
    written = tmp_path / "r" / table.loc["s1", "dicom"]
    assert written.name == f"s1.{kind}.dcm" and table.loc["s1", "error"] == ""
    assert _dicom_errors(written) == []
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "r" / table.loc["s1", "mask"])))
    if kind == "seg":
        back, labels = read_seg(written, study)
        assert set(labels["label_name"]) == {"anterior", "posterior"}
        assert np.array_equal(sitk.GetArrayFromImage(back), mask)
    else:
        back = read_segmentation(written, image=study)
        by_name = {name: value for value, name in back.label_names.items()}
        array = sitk.GetArrayFromImage(back.mask)
        for value, name in ((1, "anterior"), (2, "posterior")):
            assert np.array_equal(array == by_name[name], mask == value), name
    assert "Traceback" not in capsys.readouterr().err
