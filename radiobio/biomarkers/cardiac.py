"""Cardiac function from end-diastolic (ED) and end-systolic (ES) label maps: volumes, stroke volume, ejection
fraction and left-ventricular mass."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from radiobio.biomarkers._common import Case, label_map, mm3_to_ml, require_3d, run_cases
from radiobio.cohort import CohortSource
from radiobio.errors import MaskError, SettingsError
from radiobio.imaging import voxel_volume_mm3

#: Labels of the M&Ms convention: LV blood pool, LV myocardium, RV blood pool (ACDC numbers them 3, 2, 1).
CARDIAC_LABELS = {"lv": 1, "myo": 2, "rv": 3}
#: Myocardial density (g/mL) used to turn myocardial volume into mass (e.g. Grothues et al., Am J Cardiol 2002).
MYOCARDIUM_DENSITY_G_ML = 1.05

CARDIAC_COLUMNS = ("edv_ml", "esv_ml", "sv_ml", "ef_pct", "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_sv_ml",
                   "rv_ef_pct")


@dataclass(frozen=True)
class CardiacSettings:
    """Settings of :func:`cardiac_function`."""

    ed_column: str
    es_column: str
    labels: dict[str, int]
    density_g_ml: float


def cardiac_function(cohort: CohortSource, *, ed_column: str = "mask_ed", es_column: str = "mask_es",
                     labels: Mapping[str, int] = CARDIAC_LABELS,
                     myocardium_density_g_ml: float = MYOCARDIUM_DENSITY_G_ML, carry: bool | Sequence[str] = True,
                     jobs: int | None = None, executor: Any = None,
        progress: bool = False, resample_masks: bool = False) -> pd.DataFrame:
    """Ventricular volumes and function of each case from its ED and ES masks; one row per case.

    ``edv_ml`` / ``esv_ml``: LV blood-pool volume (label ``labels['lv']``) at ED / ES, voxels × voxel volume in mL;
    ``sv_ml`` = EDV − ESV; ``ef_pct`` = 100 · SV / EDV; ``lv_mass_g`` = myocardial volume at ED (``labels['myo']``)
    × ``myocardium_density_g_ml`` (1.05 g/mL). With an ``rv`` label the same for the right ventricle (``rv_*``).
    The two masks must share a grid (frames of one cine series). A missing phase or label gives NaN and a ``note``
    for what depends on it; ESV > EDV is kept (negative EF) with a ``note``.
    """
    mapping = label_map(labels, "labels")
    if "lv" not in mapping:
        raise SettingsError(f"labels must name the LV blood pool 'lv' (got {mapping})")
    unknown = set(mapping) - set(CARDIAC_LABELS)
    if unknown:
        raise SettingsError(f"labels: unknown structure(s) {sorted(unknown)}; use lv, myo, rv")
    if not myocardium_density_g_ml > 0:
        raise SettingsError(f"myocardium_density_g_ml must be positive, got {myocardium_density_g_ml}")
    settings = CardiacSettings(ed_column, es_column, mapping, float(myocardium_density_g_ml))
    return run_cases(cohort, _measure, settings, kind="cardiac", columns=CARDIAC_COLUMNS,
                     required=(ed_column, es_column), carry=carry, jobs=jobs, executor=executor,
                     progress=progress, resample_masks=resample_masks)


def ejection_fraction_pct(edv: float, esv: float) -> float:
    """Ejection fraction (%) = 100 · (EDV − ESV) / EDV; NaN when either volume is unknown or EDV is not positive."""
    if math.isnan(edv) or math.isnan(esv) or edv <= 0:
        return math.nan
    return 100.0 * (edv - esv) / edv


def _measure(settings: CardiacSettings, case: Case) -> list[dict[str, Any]]:
    phases = {"ED": settings.ed_column, "ES": settings.es_column}
    available = {phase: column for phase, column in phases.items() if case.value(column) is not None}
    if not available:
        raise MaskError(f"neither ED ({settings.ed_column}) nor ES ({settings.es_column}) mask given for this case")
    volumes: dict[tuple[str, str], float] = {}
    for phase, column in phases.items():
        if phase not in available:
            case.note(f"no {phase} mask ({column} empty): {phase}-dependent values not computed")
            continue
        mask = case.mask(column)
        require_3d(mask, column)
        array = case.array(column)
        ml = mm3_to_ml(voxel_volume_mm3(mask))
        for structure, label in settings.labels.items():
            if structure == "myo" and phase == "ES":
                continue
            voxels = int((array == label).sum())
            if voxels == 0:
                case.note(f"{structure} (label {label}) absent from the {phase} mask")
            volumes[(structure, phase)] = voxels * ml if voxels else math.nan
    row: dict[str, Any] = {}
    for structure, prefix in (("lv", ""), ("rv", "rv_")):
        if structure not in settings.labels:
            continue
        edv = volumes.get((structure, "ED"), math.nan)
        esv = volumes.get((structure, "ES"), math.nan)
        if esv > edv:
            case.note(f"{structure.upper()} ESV > EDV: are the ED and ES masks swapped?")
        row.update({f"{prefix}edv_ml": edv, f"{prefix}esv_ml": esv, f"{prefix}sv_ml": edv - esv,
                    f"{prefix}ef_pct": ejection_fraction_pct(edv, esv)})
    if "myo" in settings.labels:
        row["lv_mass_g"] = volumes.get(("myo", "ED"), math.nan) * settings.density_g_ml
    return [row]
