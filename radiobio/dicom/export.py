"""Masks back to DICOM, for review in the viewer or planning system a radiologist already uses.

:func:`write_dicom_mask` writes a label map on a DICOM series' grid as a DICOM-SEG (``"seg"``, through highdicom)
or an RTSTRUCT (``"rtstruct"``). The file keeps the source's patient and study identity, because PACS files it
under that patient and study; radiobio's tables, masks and reports carry only the ``case_id``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import SimpleITK as sitk

from radiobio.errors import SettingsError

DicomKind = Literal["seg", "rtstruct"]
#: The DICOM outputs radiobio writes, with the file suffix of each.
DICOM_SUFFIXES: dict[str, str] = {"seg": ".seg.dcm", "rtstruct": ".rtstruct.dcm"}


def check_dicom_kind(kind: str | None) -> str | None:
    """Validate a ``dicom_out`` argument (``None``, ``"seg"`` or ``"rtstruct"``, any case); raise
    :class:`SettingsError` otherwise."""
    if kind is None:
        return None
    normal = str(kind).strip().lower()
    if normal not in DICOM_SUFFIXES:
        raise SettingsError(f"dicom_out={kind!r}: choose 'seg' (DICOM-SEG) or 'rtstruct' (RT Structure Set)")
    return normal


def write_dicom_mask(kind: str, mask: sitk.Image, series: str | os.PathLike, names: Mapping[int, str],
                     out: str | os.PathLike, *, algorithm: Mapping[str, Any] | None = None,
                     series_uid: str | None = None, modality: str | None = None,
                     series_description: str | None = None) -> Path:
    """Write ``mask`` (a label map on ``series``' grid; ``names`` = ``{label value: name}``) as a DICOM-SEG or an
    RTSTRUCT at ``out`` referencing the source series (a folder or one of its files; ``series_uid``, ``modality``
    and ``series_description`` choose among several, as in :func:`radiobio.read_image`). ``algorithm``
    (``{"name": ..., "version": ...}``, e.g. from a model card) marks the segments as made automatically by that
    algorithm. Returns ``out``."""
    from radiobio.dicom.source import read_source_series

    kind = check_dicom_kind(kind) or "seg"
    source = read_source_series(series, series_uid=series_uid, modality=modality,
                                series_description=series_description)
    if kind == "seg":
        from radiobio.dicom.seg import write_seg

        return write_seg(mask, source, dict(names), out, algorithm=dict(algorithm) if algorithm else None)
    from radiobio.dicom.rtstruct import write_rtstruct

    return write_rtstruct(mask, source, dict(names), out, algorithm=dict(algorithm) if algorithm else None)
