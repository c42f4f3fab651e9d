"""Outputs carry no patient identity: the case_id identifies a case, DICOM header values stay in the DICOM."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from radiobio.imaging import write_image

CT_3SLICE = ("dicom_rt", "dcmqi_segmentations", "ct-3slice")


def test_images_read_from_dicom_are_written_without_header_values(tmp_path: Path) -> None:
    from tests.conftest import require_data

    slice_file = require_data(*CT_3SLICE) / "01.dcm"
    image = sitk.ReadImage(str(slice_file))  # one DICOM file: SimpleITK keeps every header value as metadata
    patient_id = image.GetMetaData("0010|0020").strip()
    assert patient_id and "0010|0010" in image.GetMetaDataKeys()
    for suffix in (".nrrd", ".mha", ".nii.gz"):
        out = write_image(image, tmp_path / f"ct{suffix}")
        written = sitk.ReadImage(str(out))
        assert not [k for k in written.GetMetaDataKeys() if k.startswith("0010|")], suffix
        assert patient_id.encode() not in out.read_bytes() or suffix == ".nii.gz"
        assert sitk.GetArrayFromImage(written).tolist() == sitk.GetArrayFromImage(image).tolist()
    assert image.GetMetaData("0010|0020").strip() == patient_id  # the caller's image is left as it was
