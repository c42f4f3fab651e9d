"""Masks from anywhere: other segmenters' outputs, DICOM-SEG and RTSTRUCT, as one label map with label names.

:func:`read_segmentation` reads

* a TotalSegmentator output folder (one ``<structure>.nii.gz`` per structure), combined into one label map whose
  labels are numbered in the alphabetical order of the structure names;
* a multi-label NIfTI whose label names sit in a NIfTI header extension (TotalSegmentator's ``--ml`` output: a
  CIFTI/Caret ``LabelTable``), or any label file beside a JSON class map;
* an nnU-Net prediction (a ``<case>.nii.gz`` in a folder with the dataset's ``dataset.json``);
* a DICOM-SEG or an RTSTRUCT (which need the image series they lie on);

and gives a :class:`Segmentation`: the label map, on the image's grid when an image is given, and the label names,
so that stages accept names (``labels=["liver", "spleen"]``, ``--labels liver,spleen``) instead of numbers.

A cohort cell names one structure of a structure set as ``rt/RS.dcm#GTV-1`` (a ROI name, a TG-263 name such as
``GTVp``, or ``re:<regex>``): :func:`read_case_mask` reads it as a binary mask on the case's image grid.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.cohort import split_roi
from radiobio.errors import ImageReadError, MaskError
from radiobio.imaging import (
    as_label_map,
    check_geometry,
    geometry_differences,
    grid_axis_map,
    read_image,
    resample_mask,
)

PathLike = str | os.PathLike

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Segmentation:
    """A label map and the names of its labels.

    ``mask`` is an integer SimpleITK image (spacing and origin in mm); ``label_names`` maps each label value to its
    name (``{1: "spleen", 2: "kidney_right", ...}``); ``source`` says what was read (``"totalsegmentator-folder"``,
    ``"nifti-extension"``, ``"class-map"``, ``"nnunet"``, ``"dicom-seg"``, ``"rtstruct"``, ``"label-file"``).
    """

    mask: sitk.Image
    label_names: dict[int, str] = field(default_factory=dict)
    source: str = "label-file"

    def renumbered(self, wanted: Mapping[str, int], name: str = "mask") -> Segmentation:
        """The same structures numbered as ``wanted`` (``{label_name: number}``); labels not wanted become 0.

        Raises :class:`MaskError` when the mask carries no label names or lacks a wanted name (the message lists
        the names it has)."""
        if not self.label_names:
            raise MaskError(f"{name}: labels are chosen by name ({', '.join(wanted)}) but this mask carries no label "
                            f"names; give label numbers (--labels liver=5) or a mask with names (a TotalSegmentator "
                            f"or nnU-Net output, a DICOM-SEG, an RTSTRUCT)")
        by_name = {label: value for value, label in self.label_names.items()}
        missing = [label for label in wanted if label not in by_name]
        if missing:
            raise MaskError(f"{name}: has no label named {', '.join(map(repr, missing))}; it has: "
                            f"{', '.join(sorted(by_name))}")
        values = sitk.GetArrayViewFromImage(self.mask)
        lookup = np.zeros(int(values.max(initial=0)) + 1, dtype=np.uint16)
        for label, number in wanted.items():
            if by_name[label] < lookup.size:
                lookup[by_name[label]] = number
        out = sitk.GetImageFromArray(lookup[values])
        out.CopyInformation(self.mask)
        return Segmentation(out, {number: label for label, number in wanted.items()}, self.source)

    @property
    def labels(self) -> dict[str, int]:
        """``{label_name: value}``, the form every stage's ``labels`` argument takes."""
        return {name: value for value, name in sorted(self.label_names.items())}

    def table(self) -> pd.DataFrame:
        """One row per named label: ``label`` (value), ``label_name`` and ``voxels`` (count in the mask)."""
        values, counts = np.unique(sitk.GetArrayViewFromImage(self.mask), return_counts=True)
        present = dict(zip(values.tolist(), counts.tolist(), strict=True))
        return pd.DataFrame([{"label": value, "label_name": name, "voxels": int(present.get(value, 0))}
                             for value, name in sorted(self.label_names.items())],
                            columns=["label", "label_name", "voxels"])


def read_segmentation(path: PathLike, *, image: PathLike | sitk.Image | None = None, rois: object = None,
                      resample: bool = False, series_uid: str | None = None) -> Segmentation:
    """Read a label map with its label names from another segmenter's output, a DICOM-SEG or an RTSTRUCT.

    ``image`` (a path or an image) is the grid the mask must lie on: a mask on the same physical box with flipped or
    permuted axes is reoriented exactly; any other difference raises :class:`GeometryError` naming every property
    that differs, unless ``resample=True`` (nearest neighbour). A DICOM-SEG or RTSTRUCT needs ``image`` as the path
    of its source series (a folder or one file of it; ``series_uid`` picks one series in a folder); ``rois`` selects
    structures of an RTSTRUCT (names, TG-263 names or ``re:`` patterns; default every ROI with contours).
    Raises :class:`ImageReadError` for an unreadable input and :class:`MaskError` for overlapping structures.
    """
    cell_path, roi = split_roi(path)
    if roi is not None:
        if rois is not None:
            raise MaskError(f"{path}: names a ROI after '#' and rois={rois!r} too; give one of them")
        rois = [roi]
    path = Path(cell_path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder; check the path (relative paths resolve against the "
                             f"cohort manifest's folder)")
    return _on_grid(_read_stored(path, rois, lambda kind: image, series_uid), image, resample, str(path))


def read_case_mask(cell: PathLike, *, image: PathLike | None, series_uid: str | None = None,
                   modality: str | None = None, series_description: str | None = None) -> Segmentation:
    """Read a cohort mask cell as it lies: a label file, a segmenter's output folder, a DICOM-SEG, or ``RS.dcm#ROI``
    (one structure of an RTSTRUCT, rasterised on the case's image series ``image``; ``series_uid``, ``modality`` and
    ``series_description`` choose the series as :func:`radiobio.read_image` does). The grid is not checked here:
    the batch driver checks it against the case's image."""
    path, roi = split_roi(cell)

    def series(kind: str) -> object:
        return _source_series(Path(path), kind, image, series_uid, modality, series_description)

    return _read_stored(Path(path), [roi] if roi else None, series, None)


def _read_stored(path: Path, rois: object, series: Callable[[str], object], series_uid: str | None) -> Segmentation:
    """A label map as stored at ``path`` (label file, structure folder, DICOM-SEG or RTSTRUCT); ``series(kind)``
    gives the source series of a DICOM object, asked for only when ``path`` is one."""
    kind = _dicom_kind(path)
    if kind is None:
        if rois is not None:
            raise MaskError(f"{path}: '#ROI' or rois= select structures of a DICOM RTSTRUCT, and this is not one")
        return _read_structure_folder(path) if path.is_dir() else _read_label_file(path)
    return _read_dicom_segmentation(path, kind, series(kind), rois, series_uid)


def _source_series(path: Path, kind: str, image: PathLike | None, series_uid: str | None, modality: str | None,
                   series_description: str | None) -> object:
    if image is None:
        raise ImageReadError(f"{path}: a DICOM {kind} lies on its source image series; the case has no image")
    from radiobio.dicom.source import read_source_series

    return read_source_series(image, series_uid=series_uid, modality=modality,
                              series_description=series_description)


# ---------------------------------------------------------------------------------------------------------------
# Label files and folders


def _read_label_file(path: Path) -> Segmentation:
    mask = as_label_map(read_image(path), str(path))
    names = nifti_label_names(path) if path.name.lower().endswith(_NIFTI_SUFFIXES) else {}
    if names:
        return Segmentation(mask, names, "nifti-extension")
    dataset = _nnunet_dataset_json(path)
    if dataset is not None:
        return Segmentation(mask, nnunet_label_names(dataset), "nnunet")
    return Segmentation(mask, {}, "label-file")


def _read_structure_folder(folder: Path) -> Segmentation:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(_NIFTI_SUFFIXES))
    if (folder / "dataset.json").exists():
        raise ImageReadError(f"{folder}: an nnU-Net prediction folder ({len(files)} cases with dataset.json); give "
                             f"one case's file, e.g. {files[0] if files else folder / 'case.nii.gz'}")
    if not files:
        raise ImageReadError(f"{folder}: holds no .nii.gz structure files; give a mask file, a TotalSegmentator "
                             f"output folder, a DICOM-SEG or an RTSTRUCT")
    return _combine_structures(_folder_structures(files), folder, "totalsegmentator-folder",
                               "structures", "read them as separate mask columns")


def _folder_structures(files: list[Path]) -> Iterator[tuple[str, sitk.Image]]:
    """Each structure file as ``(name, mask)``, one at a time (a folder of 117 full-size masks would not fit in
    memory at once), each checked against the grid of the first."""
    reference: sitk.Image | None = None
    for file in files:
        structure = as_label_map(read_image(file), str(file))
        if reference is None:
            reference = structure
        else:
            check_geometry(reference, structure, names=(files[0].name, file.name))
        yield _structure_name(file), structure


def _structure_name(file: Path) -> str:
    name = file.name
    for suffix in _NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def nifti_label_names(path: PathLike) -> dict[int, str]:
    """Label names stored in a NIfTI-1 header extension (a CIFTI/Caret ``<LabelTable>`` as TotalSegmentator writes,
    or a JSON ``{value: name}`` object); ``{}`` when the file has none."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            header = stream.read(352)
            if len(header) < 352 or struct.unpack("<i", header[:4])[0] != 348 or header[348] == 0:
                return {}
            offset = int(struct.unpack("<f", header[108:112])[0])
            extensions = stream.read(max(offset - 352, 0))
    except (OSError, EOFError, struct.error):
        return {}
    names: dict[int, str] = {}
    position = 0
    while position + 8 <= len(extensions):
        size, _code = struct.unpack("<ii", extensions[position:position + 8])
        if size < 8:
            break
        names.update(_names_from_extension(extensions[position + 8:position + size]))
        position += size
    return names


def _names_from_extension(payload: bytes) -> dict[int, str]:
    text = payload.rstrip(b"\x00").decode("utf-8", errors="replace").strip()
    if "<LabelTable" in text:
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError:
            return {int(k): n.strip() for k, n in re.findall(r'Key="(\d+)"[^>]*>(?:<!\[CDATA\[)?([^<\]]+)', text)}
        return {int(label.get("Key", "0")): (label.text or "").strip() for label in root.iter("Label")
                if label.get("Key", "0").isdigit() and int(label.get("Key", "0")) > 0}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return {int(k): str(v) for k, v in data.items() if str(k).isdigit() and int(k) > 0}
    return {}


def _nnunet_dataset_json(path: Path) -> dict | None:
    for folder in (path.parent, path.parent.parent):
        candidate = folder / "dataset.json"
        if candidate.exists():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ImageReadError(f"{candidate}: cannot read it as JSON ({exc})") from exc
            if isinstance(data, dict) and isinstance(data.get("labels"), dict):
                return data
    return None


def nnunet_label_names(dataset: Mapping) -> dict[int, str]:
    """``{value: name}`` from an nnU-Net ``dataset.json``: v2 ``{"labels": {"liver": 1}}`` or v1
    ``{"labels": {"1": "liver"}}``; background (0) and region-based entries (lists of values) are left out."""
    names: dict[int, str] = {}
    for key, value in dict(dataset.get("labels", {})).items():
        if str(key).isdigit():
            number, name = int(key), str(value)
        elif isinstance(value, int) or str(value).isdigit():
            number, name = int(value), str(key)
        else:
            continue
        if number > 0:
            names[number] = name
    return names


# ---------------------------------------------------------------------------------------------------------------
# DICOM


def _dicom_kind(path: Path) -> str | None:
    """``"SEG"`` or ``"RTSTRUCT"`` for a DICOM file of that modality, else ``None``."""
    if not path.is_file() or path.name.lower().endswith((*_NIFTI_SUFFIXES, ".nrrd", ".mha", ".mhd")):
        return None
    from radiobio.dicom.source import read_header, text

    header = read_header(path)
    if header is None:
        return None
    modality = text(header, "Modality").upper()
    return modality if modality in ("SEG", "RTSTRUCT") else None


def _read_dicom_segmentation(path: Path, kind: str, image: object, rois: object,
                             series_uid: str | None) -> Segmentation:
    if image is None or isinstance(image, sitk.Image):
        raise ImageReadError(f"{path}: a DICOM {kind} lies on its source image series; give the series' folder (or "
                             f"one of its files) as image=")
    if kind == "SEG":
        from radiobio.dicom.seg import read_seg

        mask, table = read_seg(path, series=image)
        names = {int(r.label): str(r.label_name) for r in table.itertuples()}
        return Segmentation(mask, names, "dicom-seg")
    from radiobio.dicom.rtstruct import read_rtstruct

    structures = read_rtstruct(path, image, rois=rois, series_uid=series_uid)
    return _combine_structures(structures.items(), path)


def _combine_structures(structures: Iterable[tuple[str, sitk.Image]], path: Path, source: str = "rtstruct",
                        what: str = "ROIs", fix: str | None = None) -> Segmentation:
    """One label map from binary structures (labels 1, 2... in the order given); overlapping structures raise
    :class:`MaskError` naming both, since one label map cannot hold them."""
    names: dict[int, str] = {}
    combined: np.ndarray | None = None
    reference: sitk.Image | None = None
    for value, (name, structure) in enumerate(structures, start=1):
        voxels = sitk.GetArrayViewFromImage(structure) != 0
        if combined is None:
            combined = np.zeros(voxels.shape, dtype=np.uint16)
            reference = structure
        overlap = voxels & (combined != 0)
        if overlap.any():
            other = names[int(np.bincount(combined[overlap]).argmax())]
            raise MaskError(f"{path}: {what} {other!r} and {name!r} overlap in {int(overlap.sum())} voxels; one label "
                            f"map cannot hold both; {fix or f'name one ROI per mask column ({path}#{name})'}")
        combined[voxels] = value
        names[value] = name
    if combined is None or reference is None:
        raise MaskError(f"{path}: no structure with contours to read")
    mask = sitk.GetImageFromArray(combined)
    mask.CopyInformation(reference)
    return Segmentation(mask, names, source)


def _on_grid(segmentation: Segmentation, image: PathLike | sitk.Image | None, resample: bool,
             name: str) -> Segmentation:
    if image is None:
        return segmentation
    reference = image if isinstance(image, sitk.Image) else read_image(image)
    return Segmentation(on_image_grid(segmentation.mask, reference, resample=resample, name=name),
                        segmentation.label_names, segmentation.source)


def on_image_grid(mask: sitk.Image, image: sitk.Image, *, resample: bool = False, name: str = "mask",
                  image_name: str = "image") -> sitk.Image:
    """``mask`` on ``image``'s grid: unchanged when the grids agree; reordered exactly, voxel for voxel, when they
    cover the same voxels with flipped or permuted axes (a TotalSegmentator mask of a DICOM series, stored with the
    y axis flipped); nearest-neighbour resampled when ``resample=True``; else :class:`GeometryError` naming every
    property that differs (size, spacing, origin, direction) and the option that resamples."""
    if not geometry_differences(image, mask):
        return mask
    mapping = grid_axis_map(image, mask)
    if mapping is not None or resample:
        return resample_mask(mask, image, name=name)
    check_geometry(image, mask, names=(image_name, name))
    return mask
