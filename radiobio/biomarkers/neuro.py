"""Neuro volumetry: hippocampal volume per label and normalised by intracranial volume (ICV)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radiobio.biomarkers._common import Case, label_map, mm3_to_ml, require_3d, run_cases
from radiobio.biomarkers.volumes import label_rows
from radiobio.cohort import CohortSource
from radiobio.errors import BiomarkerError
from radiobio.imaging import voxel_volume_mm3

#: Labels of the Medical Segmentation Decathlon hippocampus task (Task04).
HIPPOCAMPUS_LABELS = {"anterior": 1, "posterior": 2}

HIPPOCAMPUS_COLUMNS = ("label", "label_name", "voxels", "volume_mm3", "volume_ml", "icv_ml", "volume_icv_pct")


@dataclass(frozen=True)
class HippocampusSettings:
    """Settings of :func:`hippocampal_volume`."""

    mask_column: str
    labels: dict[str, int]
    icv_column: str | None
    icv_mask_column: str | None
    total: bool


def hippocampal_volume(cohort: CohortSource, *, mask_column: str = "mask",
                       labels: Mapping[str, int] | Sequence[int] = HIPPOCAMPUS_LABELS, icv_column: str | None = None,
                       icv_mask_column: str | None = None, total: bool = True, carry: bool | Sequence[str] = True,
                       jobs: int | None = None, executor: Any = None,
        progress: bool = False, resample_masks: bool = False) -> pd.DataFrame:
    """Hippocampal volume per labelled region (e.g. anterior / posterior, left / right): one row per case × region.

    ``volume_mm3`` = voxels × voxel volume, ``volume_ml`` = mm³ / 1000; with ``total`` a ``total`` row sums the
    regions (NaN when one is missing). ICV (mL) comes from the clinical column ``icv_column`` or from the non-zero
    voxels of the mask in ``icv_mask_column`` (which may lie on another grid, e.g. the whole head); then
    ``volume_icv_pct`` = 100 · volume / ICV. A region absent from a case gives NaN and a ``note``.
    """
    settings = HippocampusSettings(mask_column, label_map(labels, "labels"), icv_column, icv_mask_column, total)
    return run_cases(cohort, _measure, settings, kind="hippocampus", columns=HIPPOCAMPUS_COLUMNS,
                     required=(mask_column, icv_column, icv_mask_column), carry=carry, jobs=jobs, executor=executor,
                     progress=progress, resample_masks=resample_masks,
                     dtypes={"voxels": "Int64", "label": "Int64", "label_name": "string"})


def _measure(settings: HippocampusSettings, case: Case) -> list[dict[str, Any]]:
    mask = case.mask(settings.mask_column)
    require_3d(mask, settings.mask_column)
    rows = label_rows(mask, settings.labels, settings.mask_column)
    if settings.total and len(rows) > 1:
        voxels = [row.get("voxels", math.nan) for row in rows]
        total = float(np.sum(voxels)) if not any(math.isnan(v) for v in voxels) else math.nan
        volume = total * voxel_volume_mm3(mask)
        rows.append({"label_name": "total", "voxels": total, "volume_mm3": volume, "volume_ml": mm3_to_ml(volume)})
    icv = _icv_ml(settings, case)
    for row in rows:
        row["icv_ml"] = icv
        row["volume_icv_pct"] = 100.0 * row.get("volume_ml", math.nan) / icv
    return rows


def _icv_ml(settings: HippocampusSettings, case: Case) -> float:
    value = case.value(settings.icv_column)
    if value is not None:
        icv = float(value)
        if icv <= 0:
            raise BiomarkerError(f"{settings.icv_column}={value!r}: ICV must be a positive volume in mL")
        if icv < 10:
            raise BiomarkerError(f"{settings.icv_column}={value!r} looks like litres; give the ICV in mL "
                                 f"(e.g. {icv * 1000:g})")
        return icv
    if case.value(settings.icv_mask_column) is not None:
        icv_mask = case.mask(settings.icv_mask_column, check=False)  # an ICV mask covers the head, not the crop
        voxels = int(np.count_nonzero(case.array(settings.icv_mask_column, check=False)))
        if voxels == 0:
            raise BiomarkerError(f"{settings.icv_mask_column} is empty; cannot compute the intracranial volume")
        return mm3_to_ml(voxels * voxel_volume_mm3(icv_mask))
    if settings.icv_column or settings.icv_mask_column:
        case.note("no ICV for this case: volume_icv_pct not computed")
    return math.nan
