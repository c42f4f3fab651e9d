"""DICOM-SEG in and out, through highdicom: label maps to SEG for review in a viewer or PACS, and SEG to label maps.

Writing (:func:`write_seg`): one segment per named label, BINARY by default (one bit per voxel and segment, read
by every viewer) or LABELMAP on request (one 8- or 16-bit label per voxel, DICOM 2024), referencing every source
slice by SOP Instance UID. The SEG keeps the source's patient and study identity (patient name and ID, birth date,
study UID, accession number): that is what a PACS files it under. Segment codes and colours come from
:mod:`radiobio.dicom.codes`. Only header data of the source series is needed (no pixel data is read).

Choices:

- A label named in ``names`` but absent from the mask is left out with a :class:`DicomWarning` (an organ a model
  did not find is a result, not an error); a mask where every named label is empty raises :class:`MaskError`.
  Labels present in the mask but not named are left out with a warning.
- Segment numbers are 1..N in label order; :func:`read_seg` returns segment numbers as labels unless ``labels``
  (``{label_name: value}``) renumbers them by name.

Reading (:func:`read_seg`): the label map on the referenced series' grid (frames placed by their plane position)
or on the SEG's own volume geometry, and a label table (``label``, ``label_name``, ``segment_number``,
``category``, ``type``, ``type_code``, ``laterality``). Overlapping segments raise :class:`MaskError` naming them
unless ``overlap="separate"`` (one binary mask per segment); FRACTIONAL SEGs raise unless ``fractional_threshold``
is given.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.atomic import atomic_path
from radiobio.dicom.codes import default_colour, segment_code
from radiobio.dicom.source import SourceSeries, read_source_series
from radiobio.errors import DicomWarning, GeometryError, ImageReadError, MaskError, SettingsError
from radiobio.imaging import as_label_map, check_geometry, grid_axis_map, resample_mask

PathLike = str | os.PathLike

SEGMENTATION_TYPES = ("binary", "labelmap")
ALGORITHM_TYPES = ("automatic", "semiautomatic", "manual")
OVERLAP_MODES = ("error", "separate")

#: Longest value of a DICOM LO (long string) element, in characters.
_LO = 64


def _lo(value: object) -> str:
    """``value`` as text cut to a DICOM LO's 64 characters (backslashes, not allowed in LO, become '/')."""
    return str(value).replace("\\", "/").strip()[:_LO]


def _names_map(names: Mapping[int, str] | Sequence[str]) -> dict[int, str]:
    if isinstance(names, str):
        raise SettingsError(f"names={names!r}: give {{label_value: name}} or a list of names in label order")
    if isinstance(names, Mapping):
        items = list(names.items())
    else:
        items = [(i + 1, n) for i, n in enumerate(names)]
    out: dict[int, str] = {}
    for value, name in items:
        try:
            label = int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"names: {value!r} -> {name!r}: the key must be a label value (int)") from None
        if label <= 0 or label > 65535:
            raise SettingsError(f"names: label {label} ({name!r}) must lie in 1..65535 (0 is background)")
        if not str(name).strip():
            raise SettingsError(f"names: label {label} has an empty name")
        out[label] = str(name).strip()
    if not out:
        raise SettingsError("names: empty; name at least one label")
    if len(set(out.values())) != len(out):
        raise SettingsError(f"names: a name is given twice ({out})")
    return dict(sorted(out.items()))


def _algorithm(card: Mapping[str, Any] | None, algorithm_type: str | None) -> tuple[str, Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    kind = (algorithm_type or ("automatic" if card is not None else "manual")).lower()
    if kind not in ALGORITHM_TYPES:
        raise SettingsError(f"algorithm_type={algorithm_type!r}: choose one of {', '.join(ALGORITHM_TYPES)}")
    if kind != "manual" and card is None:
        raise SettingsError(f"algorithm_type={kind!r} needs algorithm={{'name': ..., 'version': ...}} (e.g. the "
                            f"model bundle's model_card.json)")
    if card is None:
        return "MANUAL", None
    if not isinstance(card, Mapping) or not str(card.get("name", "")).strip():
        raise SettingsError("algorithm: give a model card dict with a 'name' (and a 'version' or 'created')")
    from radiobio import __version__

    versions = card.get("versions") if isinstance(card.get("versions"), Mapping) else {}
    version = card.get("version") or card.get("created") or versions.get("radiobio") or __version__
    identification = hd.AlgorithmIdentificationSequence(
        name=_lo(card["name"]), family=codes.cid7162.ArtificialIntelligence, version=_lo(version),
        source=_lo(card.get("source", "radiobio")))
    return kind.upper(), identification


def _on_series_grid(mask: sitk.Image, series: SourceSeries, resample: bool) -> sitk.Image:
    reference = series.reference_image()
    if mask.GetDimension() != 3:
        raise GeometryError(f"the mask is {mask.GetDimension()}D; a DICOM-SEG of series {series.folder} needs a 3D "
                            f"mask on its grid {series.size}")
    try:
        check_geometry(reference, mask, names=("DICOM series", "mask"))
        return mask
    except GeometryError:
        if resample or grid_axis_map(reference, mask) is not None:
            return resample_mask(mask, reference, name="mask")  # exact for a flip or permutation
        raise


def write_seg(mask: sitk.Image | PathLike, series: SourceSeries | PathLike,
              names: Mapping[int, str] | Sequence[str], out: PathLike, *,
              segmentation_type: Literal["binary", "labelmap"] = "binary",
              algorithm: Mapping[str, Any] | None = None,
              algorithm_type: Literal["automatic", "semiautomatic", "manual"] | None = None,
              series_description: str = "radiobio segmentation", series_number: int = 99,
              content_label: str = "SEGMENTATION", content_creator_name: str | None = None,
              resample: bool = False) -> Path:
    """Write the label map ``mask`` as a DICOM-SEG on the DICOM image ``series`` it was drawn on; return ``out``.

    ``mask``: a SimpleITK label map or its path, on the series' grid (size in voxels, spacing in mm, origin in mm,
    direction); a mask on the same voxels with flipped or permuted axes (e.g. a NIfTI written with y flipped) is
    reoriented exactly; another grid raises :class:`GeometryError` naming every property that differs, unless
    ``resample=True`` (nearest neighbour). ``series``: a :class:`SourceSeries` or a series folder/file.
    ``names``: ``{label_value: name}`` or a list of names for labels 1, 2, ...; codes and colours from
    :func:`radiobio.dicom.codes.segment_code`. ``segmentation_type``: ``"binary"`` (default) or ``"labelmap"``.
    ``algorithm``: a model card dict (``name``, ``version`` or ``created``) -> AUTOMATIC segments with an
    Algorithm Identification (family Artificial Intelligence); without it segments are MANUAL
    (``algorithm_type`` overrides; SEMIAUTOMATIC needs ``algorithm``). Written atomically.

    Raises :class:`ImageReadError` for a series with empty UIDs (naming the tag), :class:`SettingsError` for bad
    arguments, :class:`MaskError` when every named label is empty.
    """
    import highdicom as hd

    kind = str(segmentation_type).lower()
    if kind not in SEGMENTATION_TYPES:
        raise SettingsError(f"segmentation_type={segmentation_type!r}: choose one of {', '.join(SEGMENTATION_TYPES)}")
    label_names = _names_map(names)
    seg_algorithm_type, identification = _algorithm(algorithm, algorithm_type)
    out = Path(out)
    if not isinstance(series, SourceSeries):
        series = read_source_series(series)
    series.require_uids("a DICOM-SEG")
    image = as_label_map(mask if isinstance(mask, sitk.Image) else Path(mask))
    image = _on_series_grid(image, series, resample)
    values = sitk.GetArrayFromImage(image)  # (slice, row, column), slices in series order
    present = set(int(v) for v in np.unique(values)) - {0}
    unnamed = sorted(present - set(label_names))
    if unnamed:
        warnings.warn(f"write_seg: labels {unnamed} are in the mask but not in names; they are not written "
                      f"(name them to include them)", DicomWarning, stacklevel=2)
    empty = [f"{v} ({n!r})" for v, n in label_names.items() if v not in present]
    if empty:
        warnings.warn(f"write_seg: labels {', '.join(empty)} are empty in the mask; the SEG has no segment for "
                      f"them", DicomWarning, stacklevel=2)
    written = {v: n for v, n in label_names.items() if v in present}
    if not written:
        raise MaskError(f"write_seg: every named label ({', '.join(empty)}) is empty in the mask; nothing to write")
    lookup = np.zeros(max(max(present), max(written)) + 1, dtype=np.uint16)
    descriptions = []
    for number, (value, name) in enumerate(written.items(), start=1):
        lookup[value] = number
        code = segment_code(name)
        rgb = code.rgb or default_colour(value)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=_lo(name), segmented_property_category=code.category,
            segmented_property_type=code.type, algorithm_type=seg_algorithm_type,
            algorithm_identification=identification,
            display_color=hd.color.CIELabColor.from_rgb(*rgb),
        ))
        if code.laterality is not None:
            descriptions[-1].SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept.from_code(code.laterality)]
    pixels = lookup[values]
    pixels = pixels.astype(np.uint8) if len(written) < 256 else pixels
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
            seg = _segmentation(hd, series, pixels, kind, descriptions, series_number, series_description,
                                content_label, content_creator_name)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ImageReadError(f"{series.folder}: highdicom cannot build a DICOM-SEG on this series ({exc}); check "
                             f"the series' headers (orientation, position, UIDs)") from exc
    with atomic_path(out, suffix=".dcm") as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return out


#: Patient and study attributes of type 2 (present, may be empty) that a DICOM-SEG copies from its source; older
#: or anonymised series often lack them, and highdicom needs them present.
_TYPE2_IDENTITY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _source_headers(series: SourceSeries) -> list[Any]:
    """Copies of the series' headers that highdicom accepts: an empty SpecificCharacterSet (0008,0005), which
    means the default repertoire, is removed, and absent type-2 patient and study attributes are added empty
    (as the standard allows: present, value unknown)."""
    headers = []
    for header in series.headers:
        missing = [keyword for keyword in _TYPE2_IDENTITY if keyword not in header]
        empty_charset = "SpecificCharacterSet" in header and not str(header.SpecificCharacterSet or "").strip()
        if missing or empty_charset:
            header = copy.deepcopy(header)
            if empty_charset:
                del header.SpecificCharacterSet
            for keyword in missing:
                setattr(header, keyword, "")
        headers.append(header)
    return headers


def _segmentation(hd: Any, series: SourceSeries, pixels: np.ndarray, kind: str, descriptions: list[Any],
                  series_number: int, series_description: str, content_label: str,
                  content_creator_name: str | None) -> Any:
    from pydicom.uid import generate_uid

    from radiobio import __version__

    return hd.seg.Segmentation(
        source_images=_source_headers(series), pixel_array=pixels, segmentation_type=kind.upper(),
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=int(series_number),
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="radiobio",
        manufacturer_model_name="radiobio", software_versions=__version__, device_serial_number="0",
        content_description=_lo(series_description), content_label=_content_label(content_label),
        content_creator_name=content_creator_name, omit_empty_frames=True,
        series_description=_lo(series_description),
    )


def _content_label(label: str) -> str:
    """A DICOM CS value: upper case letters, digits, space, underscore; at most 16 characters."""
    text = "".join(c if c.isalnum() or c in " _" else "_" for c in str(label).upper())[:16].strip()
    return text or "SEGMENTATION"


# ---------------------------------------------------------------------------------------------------------------
# Reading


def _read_segmentation(path: Path) -> Any:
    import highdicom as hd
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.is_file():
        raise ImageReadError(f"{path}: no such DICOM-SEG file")
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc
    if str(dataset.get("Modality", "")) != "SEG" or "SegmentSequence" not in dataset:
        raise ImageReadError(f"{path}: not a DICOM-SEG (Modality {dataset.get('Modality', '')!r}); give a SEG file")
    if "SpecificCharacterSet" in dataset and not str(dataset.SpecificCharacterSet or "").strip():
        del dataset.SpecificCharacterSet  # empty (0008,0005) means the default repertoire
    try:
        return hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except (AttributeError, ValueError, KeyError, TypeError) as exc:
        raise ImageReadError(f"{path}: the DICOM-SEG cannot be read ({exc})") from exc


def _segment_numbers(seg: Any) -> list[int]:
    """The SEG's segment numbers without 0 (the background segment a LABELMAP SEG may describe)."""
    return [int(n) for n in seg.segment_numbers if int(n) != 0]


def _label_table(seg: Any, labels: Mapping[str, int] | None, path: Path) -> pd.DataFrame:
    rows = []
    for number in _segment_numbers(seg):
        description = seg.get_segment_description(number)
        type_item = description.SegmentedPropertyTypeCodeSequence[0]
        modifier = type_item.get("SegmentedPropertyTypeModifierCodeSequence")
        rows.append({
            "label": number, "label_name": str(description.SegmentLabel), "segment_number": number,
            "category": str(description.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning),
            "type": str(type_item.CodeMeaning),
            "type_code": f"{type_item.CodingSchemeDesignator} {type_item.CodeValue}",
            "laterality": str(modifier[0].CodeMeaning) if modifier else "",
        })
    table = pd.DataFrame(rows, columns=["label", "label_name", "segment_number", "category", "type", "type_code",
                                        "laterality"])
    if labels is not None:
        missing = [n for n in labels if n not in set(table["label_name"])]
        if missing:
            raise SettingsError(f"{path}: labels name {missing}, not segments of the SEG; it has "
                                f"{list(table['label_name'])}")
        table = table[table["label_name"].isin(list(labels))].copy()
        table["label"] = [int(labels[n]) for n in table["label_name"]]
    return table.reset_index(drop=True)


def _volume_image(array: np.ndarray, volume: Any) -> sitk.Image:
    """A SimpleITK image of a (slice, row, column) array with a highdicom Volume's geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    spacing = np.asarray(volume.spacing, dtype=float)
    direction = np.asarray(volume.direction, dtype=float)
    image.SetSpacing(tuple(float(v) for v in spacing[::-1]))
    image.SetOrigin(tuple(float(v) for v in volume.position))
    image.SetDirection(tuple(float(v) for v in direction[:, ::-1].flatten()))
    return image


def _segment_stack(seg: Any, path: Path, fractional_threshold: float | None) -> tuple[np.ndarray, Any]:
    """(slice, row, column, segment) bool array on the SEG's volume, and the highdicom Volume."""
    kind = str(seg.segmentation_type.value)
    if kind == "FRACTIONAL":
        if fractional_threshold is None:
            raise MaskError(f"{path}: a FRACTIONAL DICOM-SEG (probabilities or occupancies per voxel); threshold it "
                            f"into a label map with read_seg(..., fractional_threshold=0.5)")
        if not 0.0 < float(fractional_threshold) <= 1.0:
            raise SettingsError(f"fractional_threshold={fractional_threshold!r}: give a value in (0, 1]")
    try:
        if kind == "LABELMAP":
            volume = seg.get_volume(combine_segments=True, dtype=np.uint16)
            values = np.asarray(volume.array)
            numbers = _segment_numbers(seg)
            stack = np.stack([values == n for n in numbers], axis=-1)
            return stack, volume
        volume = seg.get_volume(dtype=np.float32, rescale_fractional=True)
    except (ValueError, RuntimeError) as exc:
        raise ImageReadError(f"{path}: the SEG's frames do not form one regular volume ({exc})") from exc
    values = np.asarray(volume.array)
    if values.ndim == 3:
        values = values[..., None]
    if kind == "FRACTIONAL":
        return values >= float(fractional_threshold), volume
    return values > 0, volume


def _check_overlap(stack: np.ndarray, table: pd.DataFrame, path: Path) -> None:
    counts = stack.sum(axis=-1)
    if not np.any(counts > 1):
        return
    pairs = []
    for i in range(stack.shape[-1]):
        for j in range(i + 1, stack.shape[-1]):
            shared = int(np.count_nonzero(stack[..., i] & stack[..., j]))
            if shared:
                pairs.append(f"{table['label_name'][i]!r} and {table['label_name'][j]!r} share {shared} voxels")
    shown = "; ".join(pairs[:10]) + ("; ..." if len(pairs) > 10 else "")
    raise MaskError(f"{path}: segments overlap ({shown}); one label map cannot hold them: read them as one binary "
                    f"mask per segment with read_seg(..., overlap='separate')")


def _place_on_series(image: sitk.Image, series: SourceSeries, path: Path) -> sitk.Image:
    """Put a SEG-volume image onto ``series``' grid exactly; the SEG's voxels must be series voxels."""
    reference = series.reference_image()
    dimension_ok = np.allclose(image.GetSpacing()[:2], reference.GetSpacing()[:2], rtol=1e-4)
    ref_dir = np.asarray(reference.GetDirection()).reshape(3, 3)
    img_dir = np.asarray(image.GetDirection()).reshape(3, 3)
    relation = ref_dir.T @ img_dir
    if not dimension_ok or not np.allclose(np.abs(relation), np.round(np.abs(relation)), atol=1e-4):
        raise GeometryError(f"{path}: the SEG's frames (spacing {image.GetSpacing()} mm, direction "
                            f"{tuple(round(v, 4) for v in image.GetDirection())}) do not lie on the voxels of series "
                            f"{series.folder} (spacing {reference.GetSpacing()} mm); read it without series= to get "
                            f"it on its own grid, then resample_mask(mask, image)")
    # every SEG voxel centre -> series index (exact up to 1/100 voxel)
    size = image.GetSize()
    array = sitk.GetArrayViewFromImage(image)
    out = np.zeros(tuple(reversed(reference.GetSize())), dtype=array.dtype)
    corners = np.array([image.TransformIndexToPhysicalPoint((0, 0, 0))] +
                       [image.TransformIndexToPhysicalPoint(tuple(int(a == k) for k in range(3))) for a in range(3)])
    base = np.asarray(reference.TransformPhysicalPointToContinuousIndex(tuple(corners[0])))
    steps = [np.asarray(reference.TransformPhysicalPointToContinuousIndex(tuple(c))) - base for c in corners[1:]]
    if np.abs(base - np.round(base)).max() > 1e-2 or any(np.abs(s - np.round(s)).max() > 1e-2 for s in steps):
        raise GeometryError(f"{path}: the SEG's frames lie between the voxels of series {series.folder} (first SEG "
                            f"voxel at series index {tuple(np.round(base, 3))}); read it without series=")
    base_i = np.round(base).astype(int)
    steps_i = [np.round(s).astype(int) for s in steps]
    grid = np.indices(size[::-1]).reshape(3, -1)  # (z, y, x) SEG indices
    index = (base_i[:, None] + steps_i[0][:, None] * grid[2] + steps_i[1][:, None] * grid[1]
             + steps_i[2][:, None] * grid[0])
    ref_size = np.asarray(reference.GetSize())[:, None]
    inside = np.all((index >= 0) & (index < ref_size), axis=0)
    flat = array.reshape(-1)
    if np.any(flat[~inside]):
        raise GeometryError(f"{path}: part of the SEG lies outside series {series.folder} (grid {series.size}); it "
                            f"belongs to another series or covers more slices than this folder holds")
    out[index[2, inside], index[1, inside], index[0, inside]] = flat[inside]
    placed = sitk.GetImageFromArray(out)
    placed.CopyInformation(reference)
    return placed


@overload
def read_seg(seg: PathLike, series: SourceSeries | PathLike | None = ..., *, overlap: Literal["error"] = ...,
             fractional_threshold: float | None = ...,
             labels: Mapping[str, int] | None = ...) -> tuple[sitk.Image, pd.DataFrame]: ...


@overload
def read_seg(seg: PathLike, series: SourceSeries | PathLike | None = ..., *, overlap: Literal["separate"],
             fractional_threshold: float | None = ...,
             labels: Mapping[str, int] | None = ...) -> tuple[dict[str, sitk.Image], pd.DataFrame]: ...


def read_seg(seg: PathLike, series: SourceSeries | PathLike | None = None, *, overlap: str = "error",
             fractional_threshold: float | None = None,
             labels: Mapping[str, int] | None = None) -> tuple[Any, pd.DataFrame]:
    """Read a DICOM-SEG (BINARY, LABELMAP, or FRACTIONAL with ``fractional_threshold``) as a label map.

    Returns ``(mask, table)``: ``mask`` a UInt16 label map whose labels are the segment numbers (or the values of
    ``labels``, ``{label_name: value}``, which also picks the segments), on the grid of ``series`` (a
    :class:`SourceSeries` or series folder; frames placed by plane position, exactly) when given, else on the SEG's
    own volume (spacing, origin in mm); ``table`` has one row per segment: ``label``, ``label_name``,
    ``segment_number``, ``category``, ``type``, ``type_code`` (``"SCT 10200004"``), ``laterality``.

    ``overlap="error"`` (default) raises :class:`MaskError` naming the overlapping segments; ``overlap="separate"``
    returns ``{label_name: UInt8 binary mask}`` instead of one label map. A FRACTIONAL SEG raises
    :class:`MaskError` unless ``fractional_threshold`` (0 < t ≤ 1; a voxel belongs to a segment when its value is
    ≥ t) is given. An empty or absent SpecificCharacterSet is read as the default character set.
    """
    if overlap not in OVERLAP_MODES:
        raise SettingsError(f"overlap={overlap!r}: choose one of {', '.join(OVERLAP_MODES)}")
    path = Path(seg)
    if series is not None and not isinstance(series, SourceSeries):
        series = read_source_series(series)
    segmentation = _read_segmentation(path)
    table = _label_table(segmentation, labels, path)
    stack, volume = _segment_stack(segmentation, path, fractional_threshold)
    keep = [_segment_numbers(segmentation).index(n) for n in table["segment_number"]]
    stack = stack[..., keep]

    def to_image(array: np.ndarray) -> sitk.Image:
        image = _volume_image(array, volume)
        return _place_on_series(image, series, path) if isinstance(series, SourceSeries) else image

    if overlap == "separate":
        masks = {str(name): to_image(stack[..., i].astype(np.uint8)) for i, name in enumerate(table["label_name"])}
        return masks, table
    _check_overlap(stack, table, path)
    label_map = np.zeros(stack.shape[:3], dtype=np.uint16)
    for i, label in enumerate(table["label"]):
        label_map[stack[..., i]] = int(label)
    return to_image(label_map), table
