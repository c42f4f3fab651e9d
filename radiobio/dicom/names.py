"""Structure names: TG-263 standard names for the synonyms that clinics and segmenters use, and the choice of ROIs
from a structure set by exact name, regular expression or standard name.

AAPM TG-263 ("Standardizing Nomenclatures in Radiation Oncology") fixes one name per structure: ``Lung_L`` for
'Lt Lung', 'LUNG_LT' or 'Left Lung'; ``GTVp`` for 'GTV-1' or 'gtv primary'. Names are compared after folding case
and removing spaces, underscores, hyphens, dots and brackets, so the table below lists each synonym once, folded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from radiobio.errors import MaskError, SettingsError

#: Structures without laterality: TG-263 name -> folded synonyms (the folded standard name is always included).
_SINGLE: dict[str, tuple[str, ...]] = {
    "GTVp": ("gtv", "gtv1", "gtvprimary", "primarygtv", "gtvt", "gtvtumor", "gtvtumour"),
    "GTVn": ("gtvnode", "gtvnodes", "gtvnodal", "gtvln", "nodalgtv"),
    "External": ("body", "external", "skin", "outline", "bodycontour", "bodyoutline"),
    "Heart": ("heart",),
    "Lungs": ("lungs", "lung", "lungtotal", "lungstotal", "totallung", "totallungs",
              "lungboth", "bothlungs", "lungsboth", "bilaterallungs"),
    "SpinalCord": ("spinalcord", "cord", "spinecord", "myelon"),
    "Esophagus": ("esophagus", "oesophagus", "esoph", "oesoph"),
    "Liver": ("liver",),
    "Kidneys": ("kidneys", "kidneyboth", "bothkidneys"),
    "Bladder": ("bladder", "urinarybladder"),
    "Rectum": ("rectum",),
    "Prostate": ("prostate",),
    "Brainstem": ("brainstem",),
    "Brain": ("brain",),
    "Mandible": ("mandible", "mandibula", "jaw"),
    "Spleen": ("spleen",),
    "Stomach": ("stomach",),
    "Bowel": ("bowel", "bowelbag", "bowels"),
    "Bowel_Small": ("smallbowel", "bowelsmall", "smallintestine"),
    "Colon": ("colon", "largebowel", "bowellarge"),
    "Duodenum": ("duodenum",),
    "Pancreas": ("pancreas",),
    "Gallbladder": ("gallbladder",),
    "Aorta": ("aorta",),
    "Trachea": ("trachea",),
    "Larynx": ("larynx",),
    "Thyroid": ("thyroid", "thyroidgland"),
    "OpticChiasm": ("opticchiasm", "chiasm"),
    "OralCavity": ("oralcavity",),
    "Pituitary": ("pituitary", "hypophysis"),
    "Sacrum": ("sacrum",),
}

#: Paired structures: TG-263 stem -> folded synonyms of the stem; ``<stem>_L`` / ``<stem>_R`` are the standard names.
_PAIRED: dict[str, tuple[str, ...]] = {
    "Lung": ("lung",),
    "Kidney": ("kidney",),
    "Parotid": ("parotid", "parotidgland"),
    "Breast": ("breast",),
    "Femur_Head": ("femurhead", "femoralhead", "headoffemur", "femur"),
    "Eye": ("eye", "globe"),
    "Lens": ("lens",),
    "OpticNrv": ("opticnrv", "opticnerve"),
    "Cochlea": ("cochlea",),
    "Glnd_Submand": ("glndsubmand", "submandibular", "submandibulargland", "submand"),
    "Adrenal": ("adrenal", "adrenalgland"),
    "BrachialPlex": ("brachialplex", "brachialplexus"),
    "Hippocampus": ("hippocampus",),
    "Ovary": ("ovary",),
}

#: Folded laterality words, as prefix ('Lt Lung') or suffix ('Lung L', 'kidney_left').
_SIDES: dict[str, tuple[str, ...]] = {"L": ("l", "lt", "left"), "R": ("r", "rt", "right")}

#: Target volumes with a suffix: CTV_High, PTV_6000 (dose in cGy), PTVp, PTVn.
_TARGET = re.compile(r"^(ctv|ptv|itv|gtv)(.*)$")
_TARGET_SUFFIXES = {"p": "p", "primary": "p", "n": "n", "node": "n", "nodes": "n", "nodal": "n",
                    "high": "_High", "hi": "_High", "mid": "_Mid", "intermediate": "_Mid", "low": "_Low",
                    "lo": "_Low", "": ""}

_FOLD = re.compile(r"[\s_\-.()\[\]/\\,]+")


def fold(name: str) -> str:
    """``name`` lower-cased without spaces, underscores, hyphens, dots, brackets or slashes (``'Lt_Lung'`` ->
    ``'ltlung'``): the form in which names are compared."""
    return _FOLD.sub("", str(name).strip().lower())


def _build_table() -> dict[str, str]:
    table: dict[str, str] = {}

    def add(folded: str, standard: str) -> None:
        previous = table.setdefault(folded, standard)
        if previous != standard:  # the table itself is inconsistent: caught by the tests at import
            raise RuntimeError(f"synonym {folded!r} names both {previous} and {standard}")

    for standard, synonyms in _SINGLE.items():
        for synonym in (fold(standard), *synonyms):
            add(fold(synonym), standard)
    for stem, synonyms in _PAIRED.items():
        for side, words in _SIDES.items():
            standard = f"{stem}_{side}"
            add(fold(standard), standard)
            for synonym in (fold(stem), *synonyms):
                for word in words:
                    add(synonym + word, standard)
                    add(word + synonym, standard)
    return table


_TABLE = _build_table()


def _target_name(folded: str) -> str | None:
    match = _TARGET.match(folded)
    if match is None:
        return None
    kind, suffix = match.group(1).upper(), match.group(2)
    if suffix.endswith("gy") and suffix.startswith(("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")):
        suffix = suffix[:-2]
        try:
            return f"{kind}_{round(float(suffix) * 100)}"
        except ValueError:
            return None
    if suffix in _TARGET_SUFFIXES:
        return kind + _TARGET_SUFFIXES[suffix]
    if re.fullmatch(r"\d+(\.\d+)?", suffix):
        value = float(suffix)
        if value < 10 and value == int(value):  # an enumeration: PTV1, PTV2
            return f"{kind}{int(value)}"
        return f"{kind}_{round(value * 100) if value < 200 else round(value)}"  # Gy below 200, else cGy
    return None


def standard_name(roi_name: str) -> str | None:
    """The TG-263 standard name of ``roi_name`` (``'Lt Lung'`` -> ``'Lung_L'``, ``'GTV-1'`` -> ``'GTVp'``,
    ``'BODY'`` -> ``'External'``, ``'PTV 60'`` -> ``'PTV_6000'`` (dose suffixes in cGy)); ``None`` when the name is not
    a known synonym. Case, spaces, underscores and hyphens are ignored."""
    folded = fold(roi_name)
    if not folded:
        return None
    if folded in _TABLE:
        return _TABLE[folded]
    with_decimals = re.sub(r"(?<!\d)\.|\.(?!\d)", "", re.sub(r"[\s_\-()\[\]/\\,]+", "", str(roi_name).lower()))
    return _target_name(with_decimals)


def clean_name(roi_name: str, fallback: str = "ROI") -> str:
    """``roi_name`` as a label name: runs of characters other than letters and digits become ``_``
    (``'Tumor Bed'`` -> ``'Tumor_Bed'``); ``fallback`` for a name without any."""
    cleaned = re.sub(r"[^0-9A-Za-z]+", "_", str(roi_name)).strip("_")
    return cleaned or fallback


def label_names(roi_names: Sequence[str]) -> list[str]:
    """A unique label name per ROI: its standard name when known, else its cleaned name; ROIs sharing a standard
    name (``'GTV'`` and ``'GTV-1'``) keep their cleaned names, and repeated cleaned names get ``_2``, ``_3``."""
    wanted = [standard_name(name) or clean_name(name) for name in roi_names]
    counts: dict[str, int] = {}
    for name in wanted:
        counts[name] = counts.get(name, 0) + 1
    labels = [w if counts[w] == 1 else clean_name(r) for w, r in zip(wanted, roi_names)]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}_{seen[label]}")
    return unique


def _listing(roi_names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in roi_names) if roi_names else "none"


def _match_pattern(label: str, pattern: str, roi_names: Sequence[str]) -> list[str]:
    """The ROI names ``pattern`` selects: an exact name, else the same name up to case and separators, else every
    ROI with the same TG-263 standard name; ``re:<regex>`` matches ROI names with ``re.fullmatch``, ignoring case."""
    if pattern.startswith("re:"):
        try:
            regex = re.compile(pattern[3:], re.IGNORECASE)
        except re.error as exc:
            raise SettingsError(f"ROI pattern {pattern!r} for label {label!r} is not a valid regular expression "
                                f"({exc}); write re:<python regex>, e.g. 're:gtv.*'") from exc
        return [n for n in roi_names if regex.fullmatch(n.strip())]
    exact = [n for n in roi_names if n == pattern]
    if exact:
        return exact
    folded = [n for n in roi_names if fold(n) == fold(pattern)]
    if folded:
        return folded
    standard = standard_name(pattern)
    if standard is None:
        return []
    return [n for n in roi_names if standard_name(n) == standard]


def match_rois(roi_names: Iterable[str], selection: str | Sequence[str] | Mapping[str, str] | None = None
               ) -> dict[str, str]:
    """Choose ROIs of a structure set by name: returns ``{label_name: roi_name}``.

    ``selection``:

    - ``None``: every ROI; its label name is its TG-263 standard name when known (:func:`standard_name`), else its
      name cleaned to letters, digits and ``_`` (:func:`label_names`);
    - a list of patterns (or one pattern): the label name is the pattern itself (``'re:'`` patterns: the matched
      ROI's name);
    - a dict ``{label_name: pattern}``.

    A pattern is an exact ROI name, the same name up to case and separators, ``'re:<regex>'`` (full match,
    ignoring case), or a TG-263 name or synonym matched through the synonym table (``'GTVp'`` finds 'GTV-1').

    Raises :class:`MaskError` when a pattern matches no ROI or several (naming both), and :class:`SettingsError`
    for a selection of another type, an empty pattern or an invalid regular expression; the messages list the ROIs
    present.
    """
    names = [str(n) for n in roi_names]
    if selection is None:
        return dict(zip(label_names(names), names))
    if isinstance(selection, str):
        selection = [selection]
    if isinstance(selection, Mapping):
        items = [(str(k), v) for k, v in selection.items()]
    elif isinstance(selection, Sequence):
        items = [(None, v) for v in selection]
    else:
        raise SettingsError(f"rois={selection!r}: give None (every ROI), a list of ROI names or patterns, or a dict "
                            f"{{label_name: pattern}}; ROIs present: {_listing(names)}")
    chosen: dict[str, str] = {}
    for label, pattern in items:
        if not isinstance(pattern, str) or not pattern.strip():
            raise SettingsError(f"rois: pattern {pattern!r} for label {label!r} is not a ROI name; ROIs present: "
                                f"{_listing(names)}")
        pattern = pattern.strip()
        matched = _match_pattern(label or pattern, pattern, names)
        if not matched:
            raise MaskError(f"no ROI matches {pattern!r}" + (f" (label {label!r})" if label else "")
                            + f"; ROIs present: {_listing(names)}; give an exact name, 're:<regex>' or a TG-263 name")
        if len(matched) > 1:
            raise MaskError(f"{len(matched)} ROIs match {pattern!r}" + (f" (label {label!r})" if label else "")
                            + f": {_listing(matched)}; name one exactly (ROIs present: {_listing(names)})")
        roi = matched[0]
        key = label if label is not None else (roi if pattern.startswith("re:") else pattern)
        if key in chosen and chosen[key] != roi:
            raise MaskError(f"label {key!r} is given twice, for ROIs {chosen[key]!r} and {roi!r}; give each label "
                            f"one ROI")
        chosen[key] = roi
    return chosen
