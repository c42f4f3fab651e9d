"""Lung biomarkers: nodule volumetry and categories, volume-doubling time (VDT) and growth, disease extent (% of
lung, per lung and per lobe). Category thresholds live in ``nodule_categories.csv`` with their references."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radiobio.biomarkers._common import (
    Case,
    label_map,
    mm3_to_ml,
    package_table,
    require_3d,
    run_cases,
    select,
)
from radiobio.biomarkers.volumes import label_rows
from radiobio.cohort import CohortSource
from radiobio.errors import BiomarkerError, MaskError, SettingsError
from radiobio.imaging import labels_present, voxel_volume_mm3

#: A volume change below this (%) is within volumetry's measurement error: not growth (Oudkerk et al. 2017).
SIGNIFICANT_GROWTH_PCT = 25.0
#: Lobe labels of TotalSegmentator's ``total`` task; regions ``lungs="totalseg"`` reports.
TOTALSEGMENTATOR_LOBES: dict[str, tuple[int, ...]] = {
    "left": (10, 11), "right": (12, 13, 14), "left_upper": (10,), "left_lower": (11,), "right_upper": (12,),
    "right_middle": (13,), "right_lower": (14,)}

NODULE_COLUMNS = ("label", "label_name", "voxels", "volume_mm3", "effective_diameter_mm", "category", "management")
GROWTH_COLUMNS = ("volume_baseline_mm3", "volume_followup_mm3", "interval_days", "growth_pct", "vdt_days",
                  "significant_growth", "category", "management")
INVOLVEMENT_COLUMNS = ("region", "lung_volume_ml", "lesion_volume_ml", "involvement_pct")


def _positive_volumes(v1: Any, v2: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(v1, dtype=np.float64), np.asarray(v2, dtype=np.float64)
    bad = (a <= 0) | (b <= 0)
    if np.any(bad):
        a_bad, b_bad = np.broadcast_arrays(a, b)
        where = np.flatnonzero(bad)[:5]
        raise BiomarkerError(f"volumes must be positive (mm³ or mL, both in the same unit); got V1 = "
                             f"{a_bad.ravel()[where].tolist()}, V2 = {b_bad.ravel()[where].tolist()}: a nodule "
                             f"absent at one time point has no doubling time")
    return a, b


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    return float(value) if value.ndim == 0 else value


def volume_doubling_time(v1: Any, v2: Any, days: Any) -> float | np.ndarray:
    """Volume-doubling time (days) = Δt · ln 2 / ln(V2 / V1), for scalars or arrays (broadcast).

    ``v1``, ``v2``: volumes at the first and second scan in the same unit (> 0, else :class:`BiomarkerError`);
    ``days``: interval Δt in days (> 0). No change gives ``inf``, shrinkage a negative VDT; NaN propagates.
    """
    a, b = _positive_volumes(v1, v2)
    dt = np.asarray(days, dtype=np.float64)
    if np.any(dt <= 0):
        raise BiomarkerError(f"interval must be positive days, got {days!r}; is the follow-up before the baseline?")
    with np.errstate(divide="ignore"):
        return _scalar_or_array(dt * math.log(2.0) / np.log(b / a))


def volume_growth_pct(v1: Any, v2: Any) -> float | np.ndarray:
    """Relative volume change (%) = (V2 − V1) / V1 · 100, for scalars or arrays; volumes must be positive."""
    a, b = _positive_volumes(v1, v2)
    return _scalar_or_array((b / a - 1.0) * 100.0)


def nodule_categories(scheme: str | None = None) -> pd.DataFrame:
    """The nodule category table (``nodule_categories.csv``), optionally one scheme (``eups2017``, ``nelson``)."""
    table = package_table("nodule_categories.csv")
    if scheme is None:
        return table
    if scheme not in set(table["scheme"]):
        raise SettingsError(f"unknown nodule scheme {scheme!r}; choose one of {sorted(set(table['scheme']))}")
    return table[table["scheme"] == scheme].reset_index(drop=True)


def nodule_category(values: Any, measure: str = "volume_mm3", scheme: str = "eups2017",
                    column: str = "category") -> Any:
    """Category (``negative`` / ``indeterminate`` / ``positive``) of each value; ``column='management'`` for the
    recommended action instead.

    ``measure``: ``volume_mm3`` (baseline nodule), ``new_volume_mm3`` (new nodule, EUPS only) or ``vdt_days``.
    Bins are ``lower ≤ value < upper``. A negative or infinite VDT (shrinking or stable nodule) counts as no growth
    (the longest-VDT category). NaN gives ``None``. Scalars give a string, arrays an object array.
    """
    table = nodule_categories(scheme)
    rows = table[table["measure"] == measure]
    if rows.empty:
        raise SettingsError(f"scheme {scheme!r} has no {measure!r} categories; it has {sorted(set(table['measure']))}")
    array = np.asarray(values, dtype=np.float64)
    if measure == "vdt_days":
        array = np.where((array < 0) | np.isinf(array), np.inf, array)
    lower = rows["lower"].fillna(-np.inf).to_numpy()
    upper = rows["upper"].fillna(np.inf).to_numpy()
    labels = rows[column].to_numpy(dtype=object)
    flat = array.reshape(-1, 1)
    inside = (flat >= lower) & ((flat < upper) | np.isposinf(upper))
    found = inside.any(axis=1)
    result = np.where(found, labels[inside.argmax(axis=1)], None).astype(object).reshape(array.shape)
    return result.item() if result.ndim == 0 else result


@dataclass(frozen=True)
class NoduleSettings:
    """Settings of :func:`nodule_volumetry`."""

    mask_column: str
    labels: dict[str, int] | None
    scheme: str
    measure: str


def nodule_volumetry(cohort: CohortSource, *, mask_column: str = "mask",
                     labels: int | Sequence[int] | Mapping[str, int] | None = None, scheme: str = "eups2017",
                     new_nodules: bool = False, carry: bool | Sequence[str] = True, jobs: int | None = None,
                     executor: Any = None,
        progress: bool = False, resample_masks: bool = False) -> pd.DataFrame:
    """Volume of each nodule label: one row per case × ``label``.

    ``volume_mm3`` = voxels × voxel volume; ``effective_diameter_mm`` = (6·V/π)^(1/3), the diameter of the sphere of
    the same volume; ``category`` and ``management`` by the volume thresholds of ``scheme`` (``eups2017``:
    < 100, 100–300, ≥ 300 mm³; ``nelson``: < 50, 50–500, ≥ 500 mm³; ``new_nodules=True``: EUPS new-nodule thresholds
    < 30, 30–200, ≥ 200 mm³). ``labels=None`` measures every label present.
    """
    settings = NoduleSettings(mask_column, label_map(labels), scheme, "new_volume_mm3" if new_nodules else "volume_mm3")
    nodule_category(np.nan, settings.measure, scheme)  # validate scheme and measure before reading any case
    return run_cases(cohort, _measure_nodules, settings, kind="nodules", columns=NODULE_COLUMNS,
                     required=(mask_column,), carry=carry, jobs=jobs, executor=executor,
                     progress=progress, resample_masks=resample_masks,
                     dtypes={"voxels": "Int64", "label": "Int64", "label_name": "string", "category": "string",
                             "management": "string"})


def _measure_nodules(settings: NoduleSettings, case: Case) -> list[dict[str, Any]]:
    mask = case.mask(settings.mask_column)
    require_3d(mask, settings.mask_column)
    rows = label_rows(mask, settings.labels, settings.mask_column)
    for row in rows:
        volume = row.get("volume_mm3", math.nan)
        row["effective_diameter_mm"] = (6.0 * volume / math.pi) ** (1.0 / 3.0)
        row["category"] = nodule_category(volume, settings.measure, settings.scheme)
        row["management"] = nodule_category(volume, settings.measure, settings.scheme, "management")
    return rows


@dataclass(frozen=True)
class GrowthSettings:
    """Settings of :func:`nodule_growth`."""

    baseline_column: str
    followup_column: str
    days_column: str
    label: int | None
    scheme: str


def nodule_growth(cohort: CohortSource, *, baseline_column: str = "mask_baseline",
                  followup_column: str = "mask_followup", days_column: str = "interval_days",
                  label: int | None = None, scheme: str = "eups2017", carry: bool | Sequence[str] = True,
                  jobs: int | None = None, executor: Any = None,
        progress: bool = False, resample_masks: bool = False) -> pd.DataFrame:
    """Growth of one nodule between two scans: one row per case.

    Volumes (mm³) of ``label`` (``None``: every non-zero voxel) in the baseline and follow-up masks, each on its own
    grid; ``interval_days`` from ``days_column``; ``growth_pct`` and ``vdt_days`` as in :func:`volume_growth_pct` and
    :func:`volume_doubling_time`; ``significant_growth`` = growth ≥ 25 %; ``category`` / ``management`` from the
    VDT thresholds of ``scheme`` (< 400, 400–600, ≥ 600 days). A nodule absent at follow-up gives −100 % growth,
    NaN VDT and a ``note``.
    """
    nodule_category(np.nan, "vdt_days", scheme)
    settings = GrowthSettings(baseline_column, followup_column, days_column, label, scheme)
    return run_cases(cohort, _measure_growth, settings, kind="nodule-growth", columns=GROWTH_COLUMNS,
                     required=(baseline_column, followup_column, days_column), carry=carry, jobs=jobs,
                     executor=executor,
                     progress=progress, resample_masks=resample_masks,
                     dtypes={"significant_growth": "boolean", "category": "string", "management": "string"})


def _measure_growth(settings: GrowthSettings, case: Case) -> list[dict[str, Any]]:
    volumes = []
    for column in (settings.baseline_column, settings.followup_column):
        mask = case.mask(column, check=False)  # two scans: each mask on its own grid
        require_3d(mask, column)
        voxels = np.count_nonzero(select(case.array(column, check=False), settings.label))
        volumes.append(voxels * voxel_volume_mm3(mask))
    v1, v2 = volumes
    if v1 == 0:
        raise MaskError(f"{settings.baseline_column} holds no nodule"
                        + (f" (label {settings.label})" if settings.label else "")
                        + "; the baseline must show the nodule")
    row: dict[str, Any] = {"volume_baseline_mm3": v1, "volume_followup_mm3": v2}
    days = case.value(settings.days_column)
    row["interval_days"] = float(days) if days is not None else math.nan
    if v2 == 0:
        case.note("nodule absent at follow-up: no doubling time")
        row["growth_pct"] = -100.0
        return [row]
    row["growth_pct"] = volume_growth_pct(v1, v2)
    row["significant_growth"] = row["growth_pct"] >= SIGNIFICANT_GROWTH_PCT
    if days is None:
        case.note(f"no {settings.days_column}: VDT not computed")
        return [row]
    row["vdt_days"] = volume_doubling_time(v1, v2, float(days))
    row["category"] = nodule_category(row["vdt_days"], "vdt_days", settings.scheme)
    row["management"] = nodule_category(row["vdt_days"], "vdt_days", settings.scheme, "management")
    return [row]


@dataclass(frozen=True)
class InvolvementSettings:
    """Settings of :func:`lung_involvement`."""

    lesion_column: str
    lung_column: str
    regions: dict[str, tuple[int, ...]]
    lesion_label: int | None


def lung_involvement(cohort: CohortSource, *, lesion_column: str = "mask_lesion", lung_column: str = "mask_lung",
                     regions: str | Mapping[str, int | Sequence[int]] | None = None,
                     lesion_label: int | None = None, carry: bool | Sequence[str] = True, jobs: int | None = None,
                     executor: Any = None,
        progress: bool = False, resample_masks: bool = False) -> pd.DataFrame:
    """Disease extent: lesion volume inside the lung as a percentage of lung volume; one row per case × region.

    ``involvement_pct`` = 100 · |lesion ∩ region| / |region| (volumes in mL from voxel counts × spacing).
    ``regions`` maps names to lung-mask labels (e.g. ``{"right": 1, "left": 2}`` or lobes); ``"totalseg"`` uses the
    TotalSegmentator lobe labels 10–14 (per lung and per lobe). The first row, ``lung``, is the union of all regions
    (all non-zero voxels when ``regions`` is ``None``). Lesion voxels outside the lung are not counted (``note``).
    """
    settings = InvolvementSettings(lesion_column, lung_column, _regions(regions), lesion_label)
    return run_cases(cohort, _measure_involvement, settings, kind="lung-involvement", columns=INVOLVEMENT_COLUMNS,
                     required=(lesion_column, lung_column), carry=carry, jobs=jobs, executor=executor,
                     progress=progress, resample_masks=resample_masks,
                     dtypes={"region": "string"})


def _regions(regions: str | Mapping[str, int | Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    """``{region: labels}``, first ``lung``: the union of all regions (``()``: every non-zero voxel)."""
    if regions is None:
        return {"lung": ()}
    if isinstance(regions, str):
        if regions.lower() != "totalseg":
            raise SettingsError(f"unknown region preset {regions!r}; use 'totalseg' or a mapping name -> "
                                f"label(s)")
        regions = TOTALSEGMENTATOR_LOBES
    result = {}
    for name, value in regions.items():
        values = [value] if isinstance(value, int | np.integer) else list(value)
        result[str(name)] = tuple(label_map(values, f"region {name!r}").values())
    if "lung" in result:
        raise SettingsError("region name 'lung' is reserved for the whole lung (the union of all regions)")
    return {"lung": tuple(sorted({v for labels in result.values() for v in labels})), **result}


def _measure_involvement(settings: InvolvementSettings, case: Case) -> list[dict[str, Any]]:
    lung_mask = case.mask(settings.lung_column)
    require_3d(lung_mask, settings.lung_column)
    lung = case.array(settings.lung_column)
    lesion = select(case.array(settings.lesion_column), settings.lesion_label)
    ml = mm3_to_ml(voxel_volume_mm3(lung_mask))
    present = labels_present(lung_mask)
    if not present:
        raise MaskError(f"{settings.lung_column} is empty; involvement needs a lung mask")
    rows = []
    for name, labels in settings.regions.items():
        inside = np.isin(lung, labels) if labels else lung > 0
        voxels = int(np.count_nonzero(inside))
        row: dict[str, Any] = {"region": name}
        if voxels == 0:
            row["note"] = (f"region {name} (labels {list(labels)}) absent from {settings.lung_column} "
                           f"(present: {present})")
        else:
            hit = int(np.count_nonzero(lesion & inside))
            row.update(lung_volume_ml=voxels * ml, lesion_volume_ml=hit * ml, involvement_pct=100.0 * hit / voxels)
        if name == "lung":
            outside = int(np.count_nonzero(lesion & ~inside))
            if outside:
                case.note(f"{outside * ml:.3g} mL of lesion outside the lung mask not counted")
        rows.append(row)
    return rows
