"""Volumetry: voxel counts, volumes (mm³, mL) and intensity statistics per label; label areas on a slice (cm²)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.biomarkers._common import Case, label_map, mm3_to_ml, require_3d, run_cases, select
from radiobio.cohort import CohortSource
from radiobio.errors import BiomarkerError, MaskError
from radiobio.imaging import as_label_map, labels_present, read_mask, voxel_volume_mm3

VOLUMETRY_COLUMNS = ("label", "label_name", "voxels", "volume_mm3", "volume_ml", "intensity_mean", "intensity_sd",
                     "intensity_median")


@dataclass(frozen=True)
class VolumetrySettings:
    """Settings of :func:`volumetry` (see there)."""

    mask_column: str
    labels: dict[str, int] | None
    image_column: str | None


def volumetry(cohort: CohortSource, *, mask_column: str = "mask",
              labels: int | Sequence[int] | Mapping[str, int] | None = None, image_column: str | None = "image",
              carry: bool | Sequence[str] = True, jobs: int | None = None, executor: Any = None,
        progress: bool = False, resample_masks: bool = False) -> pd.DataFrame:
    """Volume and intensity statistics of every label of every case: one row per case × ``label``.

    Columns: ``voxels``; ``volume_mm3`` = voxels × voxel volume (product of the spacings, mm³); ``volume_ml``
    (mL = cm³ = mm³ / 1000); ``intensity_mean``, ``intensity_sd`` (sample SD, ddof=1) and ``intensity_median`` of
    the image inside the label, in image units (HU on CT); ``label_name`` is the label's name in a ``labels``
    mapping (else its number).
    ``labels=None`` measures every label present (an empty mask is a :class:`MaskError`); a requested label absent
    from a case gives NaN and a ``note``. ``image_column=None`` skips intensities (and the image read).
    """
    settings = VolumetrySettings(mask_column, label_map(labels), image_column)
    return run_cases(cohort, _measure, settings, kind="volumetry", columns=VOLUMETRY_COLUMNS,
                     required=(mask_column, image_column), carry=carry, jobs=jobs, executor=executor,
                     progress=progress, resample_masks=resample_masks,
                     dtypes={"voxels": "Int64", "label": "Int64", "label_name": "string"})


def _measure(settings: VolumetrySettings, case: Case) -> list[dict[str, Any]]:
    mask = case.mask(settings.mask_column)
    require_3d(mask, settings.mask_column, "; use slice_area_cm2 for areas on 2D masks")
    intensities = None
    if settings.image_column is not None:
        intensities = sitk.GetArrayViewFromImage(case.image(settings.image_column))
    return label_rows(mask, settings.labels, settings.mask_column, intensities)


def label_rows(mask: sitk.Image, wanted: dict[str, int] | None, column: str,
               intensities: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows of :func:`volumetry` for one label map (shared with the lung and neuro stages)."""
    labels = sitk.GetArrayViewFromImage(mask)
    voxel_mm3 = voxel_volume_mm3(mask)
    present = labels_present(mask)
    if not present:
        raise MaskError(f"{column} is empty (no non-zero voxel); check the segmentation of this case")
    if wanted is None:
        wanted = {str(label): label for label in present}
    rows = []
    for name, label in wanted.items():
        row: dict[str, Any] = {"label": label, "label_name": name}
        inside = labels == label
        voxels = int(np.count_nonzero(inside))
        if voxels == 0:
            row["note"] = f"label {label} absent from {column} (labels present: {present})"
            rows.append(row)
            continue
        volume = voxels * voxel_mm3
        row.update(voxels=voxels, volume_mm3=volume, volume_ml=mm3_to_ml(volume))
        if intensities is not None:
            row.update(intensity_stats(intensities[inside]))
        rows.append(row)
    return rows


def intensity_stats(values: np.ndarray) -> dict[str, float]:
    """Mean, sample SD (ddof=1; NaN for one voxel) and median of ``values``, as float64."""
    values = np.asarray(values, dtype=np.float64)
    return {"intensity_mean": float(values.mean()),
            "intensity_sd": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
            "intensity_median": float(np.median(values))}


def slice_area_cm2(mask: sitk.Image | str | os.PathLike, label: int | None, slice_index: int | None = None) -> float:
    """Area (cm²) of ``label`` (``None``: any non-zero label) on axial slice ``slice_index`` of ``mask``.

    ``slice_index`` is the index along the third image axis (numpy axis 0, the z index of an axial series); a 2D
    mask, or a 3D mask with a single slice, needs none. Area = pixels × spacing_x × spacing_y / 100 (mm² → cm²).
    """
    image = read_mask(mask) if isinstance(mask, str | os.PathLike) else as_label_map(mask)
    plane, pixel_mm2 = axial_slice(sitk.GetArrayViewFromImage(image), image.GetSpacing(), slice_index)
    return float(np.count_nonzero(select(plane, label))) * pixel_mm2 / 100.0


def axial_slice(array: np.ndarray, spacing: Sequence[float], slice_index: int | None) -> tuple[np.ndarray, float]:
    """Return the 2D plane ``slice_index`` of a 2D or 3D array (numpy order) and its pixel area in mm²."""
    pixel_mm2 = float(spacing[0] * spacing[1])
    if array.ndim == 2:
        if slice_index not in (None, 0):
            raise BiomarkerError(f"slice {slice_index} requested from a 2D image; a 2D image is a single slice")
        return array, pixel_mm2
    depth = array.shape[0]
    if slice_index is None:
        if depth != 1:
            raise BiomarkerError(f"the image has {depth} slices; say which one (slice index 0..{depth - 1})")
        slice_index = 0
    if not 0 <= slice_index < depth:
        raise BiomarkerError(f"slice index {slice_index} outside the image (0..{depth - 1})")
    return array[slice_index], pixel_mm2
