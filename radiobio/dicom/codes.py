"""Segment codes for DICOM-SEG: label names to SNOMED CT category, type, laterality and a display colour.

A DICOM-SEG segment says what it is with codes (Segmented Property Category, CID 7150, and Type, CID 7151), not with
its free-text label alone, so that viewers and PACS can group and colour segments. :func:`segment_code` looks a
name up case-, space-, hyphen- and underscore-insensitively (``"Liver"``, ``"kidney_left"``, ``"Lung Upper Lobe
Left"``); TotalSegmentator-style names with a side (``kidney_left``, ``lung_upper_lobe_right``, ``adrenal_gland_left``)
map to the organ with its laterality. Every code comes from pydicom's DICOM code dictionary
(``pydicom.sr.codedict.codes.SCT``), so it is the value the DICOM standard lists.

Unknown names get category Tissue (SCT 85756007) and type Tissue, keep the name as the SegmentLabel, and
raise a :class:`radiobio.errors.DicomWarning` naming them (the SEG is still valid and readable; give a known
name, or pass a code, to make it searchable).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from radiobio.errors import DicomWarning
from radiobio.report.overlays import DEFAULT_COLOURS

ANATOMICAL_STRUCTURE = codes.SCT.AnatomicalStructure  # 91723000, CID 7150
MORPHOLOGICALLY_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure  # 49755003, CID 7150
TISSUE = codes.SCT.Tissue  # 85756007, CID 7150
LEFT, RIGHT = codes.SCT.Left, codes.SCT.Right


@dataclass(frozen=True)
class SegmentCode:
    """The codes of one segment: category and type (SNOMED CT), laterality (or None) and a display colour.

    ``rgb`` is sRGB 0..255, or None when the name has no colour of its own (the writer then uses the QC overlay
    colour of the label value, :data:`radiobio.report.overlays.DEFAULT_COLOURS`). ``known`` is False for a name not
    in the table (category and type Tissue).
    """

    name: str
    category: Code
    type: Code
    laterality: Code | None = None
    rgb: tuple[int, int, int] | None = None
    known: bool = True


_A, _M, _T = ANATOMICAL_STRUCTURE, MORPHOLOGICALLY_ABNORMAL, TISSUE
S = codes.SCT

#: key (normalised name) -> (category, type, sRGB colour). Colours follow 3D Slicer's generic anatomy colours.
_TABLE: dict[str, tuple[Code, Code, tuple[int, int, int] | None]] = {
    "liver": (_A, S.Liver, (221, 130, 101)),
    "spleen": (_A, S.Spleen, (157, 108, 162)),
    "kidney": (_A, S.Kidney, (185, 102, 83)),
    "lung": (_A, S.Lung, (197, 165, 145)),
    "heart": (_A, S.Heart, (206, 110, 84)),
    "aorta": (_A, S.Aorta, (224, 97, 76)),
    "pancreas": (_A, S.Pancreas, (249, 180, 111)),
    "urinarybladder": (_A, Code("89837001", "SCT", "Urinary bladder"), (222, 154, 132)),
    "prostate": (_A, S.Prostate, (230, 158, 140)),
    "vertebra": (_A, S.Vertebra, (241, 214, 145)),
    "spine": (_A, S.Spine, (241, 214, 145)),
    "l3vertebra": (_A, S.L3Vertebra, (241, 214, 145)),
    "hippocampus": (_A, S.Hippocampus, (220, 216, 20)),
    "gallbladder": (_A, S.Gallbladder, (139, 150, 98)),
    "stomach": (_A, S.Stomach, (216, 132, 105)),
    "esophagus": (_A, S.Esophagus, (211, 171, 143)),
    "duodenum": (_A, S.Duodenum, (255, 253, 229)),
    "smallintestine": (_A, S.SmallIntestine, (205, 167, 142)),
    "colon": (_A, S.Colon, (204, 168, 143)),
    "rectum": (_A, S.Rectum, (204, 168, 143)),
    "trachea": (_A, S.Trachea, (182, 228, 255)),
    "adrenalgland": (_A, S.AdrenalGland, (249, 186, 150)),
    "brain": (_A, S.Brain, (250, 250, 225)),
    "spinalcord": (_A, S.SpinalCord, (244, 214, 49)),
    "inferiorvenacava": (_A, S.InferiorVenaCava, (0, 151, 206)),
    "portalvein": (_A, S.PortalVein, (0, 151, 206)),
    "rib": (_A, S.Rib, (241, 214, 145)),
    "sternum": (_A, S.Sternum, (241, 214, 145)),
    "femur": (_A, S.Femur, (241, 214, 145)),
    "humerus": (_A, S.Humerus, (241, 214, 145)),
    "sacrum": (_A, S.Sacrum, (241, 214, 145)),
    "skull": (_A, S.Skull, (241, 214, 145)),
    "bone": (_A, S.Bone, (241, 214, 145)),
    "thyroid": (_A, S.Thyroid, (220, 245, 20)),
    "breast": (_A, S.Breast, (255, 192, 203)),
    "skin": (_A, S.Skin, (177, 122, 101)),
    "lymphnode": (_A, S.LymphNode, (68, 131, 98)),
    "parotidgland": (_A, S.ParotidGland, (194, 164, 126)),
    "mandible": (_A, S.Mandible, (241, 214, 145)),
    "brainstem": (_A, S.BrainStem, (169, 165, 212)),
    "cerebellum": (_A, S.Cerebellum, (169, 165, 212)),
    "larynx": (_A, S.Larynx, (182, 228, 255)),
    "eye": (_A, S.Eye, (194, 164, 126)),
    "muscle": (_T, S.SkeletalMuscle, (192, 104, 88)),
    "skeletalmuscle": (_T, S.SkeletalMuscle, (192, 104, 88)),
    "fat": (_T, S.AdiposeTissue, (230, 220, 70)),
    "adiposetissue": (_T, S.AdiposeTissue, (230, 220, 70)),
    "subcutaneousfat": (_T, S.SubcutaneousTissue, (0, 255, 255)),
    "subcutaneoustissue": (_T, S.SubcutaneousTissue, (0, 255, 255)),
    "visceralfat": (_T, S.AdiposeTissue, (255, 255, 0)),
    "intramuscularfat": (_T, S.AdiposeTissue, (0, 255, 0)),
    "tumour": (_M, S.Neoplasm, (255, 0, 0)),
    "neoplasm": (_M, S.Neoplasm, (255, 0, 0)),
    "lesion": (_M, S.Lesion, (255, 0, 0)),
    "mass": (_M, S.Mass, (255, 0, 0)),
    "nodule": (_M, S.Nodule, (255, 128, 0)),
    "gtv": (_M, S.Neoplasm, (255, 0, 0)),
}

#: Synonyms (normalised) -> table key. The L3 tissue names of radiobio's demo model are here too.
_SYNONYMS = {
    "tumor": "tumour", "grosstumourvolume": "gtv", "grosstumorvolume": "gtv", "gtvp": "gtv", "gtvprimary": "gtv",
    "bladder": "urinarybladder", "sat": "subcutaneousfat", "vat": "visceralfat", "imat": "intramuscularfat",
    "adipose": "adiposetissue", "myocardium": "heart", "ivc": "inferiorvenacava", "oesophagus": "esophagus",
    "adrenal": "adrenalgland", "lungs": "lung", "kidneys": "kidney", "vertebrae": "vertebra", "l3": "l3vertebra",
    "thyroidgland": "thyroid", "parotid": "parotidgland", "hipbone": "bone", "hip": "bone", "clavicula": "bone",
    "scapula": "bone", "clavicle": "bone", "urinary_bladder": "urinarybladder", "liver_tumour": "tumour",
}

_SIDE = re.compile(r"^(?:(?P<pre>left|right)_)?(?P<organ>.+?)(?:_(?P<post>left|right))?$")


def normalise_name(name: str) -> str:
    """``name`` lower-cased with spaces and hyphens as underscores, runs of underscores collapsed, ends stripped."""
    return re.sub(r"_+", "_", re.sub(r"[\s\-]+", "_", str(name).strip().lower())).strip("_")


def _lookup(organ: str) -> str | None:
    key = organ.replace("_", "")
    key = _SYNONYMS.get(key, key)
    if key in _TABLE:
        return key
    if organ.startswith("lung_") or "_lobe" in organ:  # lung_upper_lobe, lung_middle_lobe ...
        return "lung"
    if re.fullmatch(r"vertebrae?_[cstl]\d+|[cstl]\d+_vertebrae?", organ):
        return "vertebra"
    if organ.startswith("rib_"):
        return "rib"
    numbered = re.sub(r"_?\d+$", "", organ)  # GTV-1, nodule_2: a numbered instance of a known structure
    if numbered != organ and numbered:
        return _lookup(numbered)
    return None


def segment_code(name: str, *, warn: bool = True) -> SegmentCode:
    """The SNOMED CT codes of the segment called ``name`` (any case; spaces, hyphens, underscores alike).

    A side before or after the organ (``kidney_left``, ``left kidney``) becomes the laterality (SCT 7771000 Left,
    24028007 Right). Unknown names give category and type Tissue (SCT 85756007) and, with ``warn``, a
    :class:`DicomWarning` naming the name.
    """
    norm = normalise_name(name)
    match = _SIDE.match(norm)
    side = None
    organ = norm
    if match and (match.group("pre") or match.group("post")):
        side = match.group("pre") or match.group("post")
        organ = match.group("organ")
    key = _lookup(organ)
    if key is None and side is not None:  # "left" itself, or a name that only ends in a side
        key, side = _lookup(norm), None
    if key is None:
        if warn:
            warnings.warn(f"segment name {name!r}: not in radiobio's SNOMED table (radiobio.dicom.codes); written "
                          f"with category and type Tissue (SCT 85756007). Use a known name (e.g. 'liver', "
                          f"'kidney_left', 'tumour') to give viewers its anatomy code", DicomWarning, stacklevel=2)
        return SegmentCode(name=str(name), category=TISSUE, type=TISSUE, known=False)
    category, type_code, rgb = _TABLE[key]
    laterality = {"left": LEFT, "right": RIGHT}.get(side or "")
    return SegmentCode(name=str(name), category=category, type=type_code, laterality=laterality, rgb=rgb)


def default_colour(label: int) -> tuple[int, int, int]:
    """sRGB (0..255) of ``label`` in radiobio's QC overlays (:data:`radiobio.report.overlays.DEFAULT_COLOURS`)."""
    text = DEFAULT_COLOURS[(int(label) - 1) % len(DEFAULT_COLOURS)].lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
