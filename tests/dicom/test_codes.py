"""Segment names to SNOMED CT codes: values checked against pydicom's DICOM code dictionary and the standard's."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from radiobio.dicom.codes import default_colour, normalise_name, segment_code
from radiobio.errors import DicomWarning


@pytest.mark.parametrize(("name", "category", "type_code", "side"), [
    ("Liver", "91723000", "10200004", None),
    ("spleen", "91723000", "78961009", None),
    ("kidney_left", "91723000", "64033007", "7771000"),
    ("Right Kidney", "91723000", "64033007", "24028007"),
    ("lung_upper_lobe_left", "91723000", "39607008", "7771000"),
    ("Heart", "91723000", "80891009", None),
    ("hippocampus", "91723000", "5366008", None),
    ("muscle", "85756007", "127954009", None),
    ("sat", "85756007", "71966008", None),
    ("GTV-1", "49755003", "108369006", None),
    ("Tumor", "49755003", "108369006", None),
    ("nodule", "49755003", "27925004", None),
    ("vertebrae_L3", "91723000", "51282000", None),
    ("urinary_bladder", "91723000", "89837001", None),
])
def test_known_names(name: str, category: str, type_code: str, side: str | None) -> None:
    code = segment_code(name)
    assert code.known and code.category.value == category and code.type.value == type_code
    assert (code.laterality.value if code.laterality else None) == side
    assert code.category.scheme_designator == "SCT" and code.rgb is not None


def test_codes_agree_with_pydicom_dictionary() -> None:
    assert segment_code("liver").type == codes.SCT.Liver
    assert segment_code("tumour").category == codes.SCT.MorphologicallyAbnormalStructure
    assert segment_code("fat").category == codes.SCT.Tissue


def test_unknown_name_warns_and_is_tissue() -> None:
    with pytest.warns(DicomWarning, match="'Zonk'.*Tissue"):
        code = segment_code("Zonk")
    assert not code.known and code.type.value == "85756007" and code.rgb is None and code.name == "Zonk"


def test_normalise_and_default_colour() -> None:
    assert normalise_name("  Lung - Upper__Lobe Left ") == "lung_upper_lobe_left"
    assert default_colour(1) == (255, 0, 0) and default_colour(2) == (255, 255, 0)
    assert default_colour(11) == default_colour(1)
