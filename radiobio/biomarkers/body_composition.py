"""Body composition at L3: skeletal muscle area and index (SMA, SMI), muscle radiodensity, IMAT, VAT and SAT areas,
and sarcopenia against published cut-offs (``cutoffs.csv``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.biomarkers._common import Case, package_table, run_cases, select
from radiobio.biomarkers.volumes import axial_slice
from radiobio.cohort import CohortSource
from radiobio.errors import BiomarkerError, MaskError, SettingsError

#: Muscle and fat attenuation ranges (HU): Mitsiopoulos et al. 1998; Mourtzakis et al. 2008.
DEFAULT_HU: dict[str, tuple[float, float]] = {
    "muscle": (-29.0, 150.0), "imat": (-190.0, -30.0), "sat": (-190.0, -30.0), "vat": (-150.0, -50.0)}
#: Tissues measured besides muscle; each from a mask column when the case has one, else from HU ranges.
FAT_TISSUES = ("imat", "vat", "sat")
#: The shipped cut-off schemes; each was derived and validated on the L3 slice.
PUBLISHED_SCHEMES = ("prado2008", "martin2013", "derstine2018")
#: Vertebral levels of TotalSegmentator (v2) vertebra labels.
VERTEBRA_LEVELS = {26: "S1", 27: "L5", 28: "L4", 29: "L3", 30: "L2", 31: "L1",
                   **{32 + i: f"T{12 - i}" for i in range(12)}, **{44 + i: f"C{7 - i}" for i in range(7)}}

SARCOPENIA_COLUMNS = ("slice_index", "slice_source", "level", "sma_cm2", "muscle_hu_mean", "imat_cm2", "vat_cm2",
                      "sat_cm2", "bmi_kg_m2", "smi_cm2_m2", "smi_cutoff_cm2_m2", "sarcopenic", "muscle_hu_cutoff",
                      "myosteatosis", "cutoffs")
_SEX = {"M": "M", "MALE": "M", "MAN": "M", "F": "F", "FEMALE": "F", "WOMAN": "F", "W": "F"}


@dataclass
class SarcopeniaSettings:
    """Settings of :func:`sarcopenia` (see there)."""

    muscle_column: str
    slice_column: str | None
    vertebra_column: str | None
    vertebra_label: int
    level: str
    cutoffs: pd.DataFrame
    scheme: str
    tissue_columns: dict[str, str]
    labels: dict[str, int]
    hu: dict[str, tuple[float, float] | None]
    body_hu: float
    closing_mm: float
    image_column: str
    sex_column: str
    height_column: str
    weight_column: str


def sarcopenia(cohort: CohortSource, *, muscle_column: str = "mask_muscle", slice_column: str | None = None,
               vertebra_column: str | None = None, vertebra_label: int = 29, level: str | None = None,
               cutoffs: str | pd.DataFrame = "prado2008", sat_column: str | None = None,
               vat_column: str | None = None, imat_column: str | None = None,
               labels: Mapping[str, int] | None = None, hu: Mapping[str, tuple[float, float] | None] | None = None,
               body_hu: float = -500.0, closing_mm: float = 10.0, image_column: str = "image",
               sex_column: str = "sex", height_column: str = "height_m", weight_column: str = "weight_kg",
               carry: bool | Sequence[str] = True, jobs: int | None = None, executor: Any = None,
               progress: bool = False, resample_masks: bool = False) -> pd.DataFrame:
    """Body composition on one axial slice of each CT (L3 by default) and sarcopenia by published cut-offs; one row
    per case.

    **Slice.** From ``slice_column`` (a z index, numpy axis 0) when the case has one, else the slice through the
    centroid of label ``vertebra_label`` in the vertebra map ``vertebra_column`` (TotalSegmentator numbering:
    29 = L3, 30 = L2, 31 = L1...), else the only slice of a 2D image or one-slice volume. ``slice_index`` and
    ``slice_source`` say which was used; ``level`` names the vertebral level (default: from ``vertebra_label`` in
    TotalSegmentator numbering, ``"L3"`` for 29 and for a given slice).

    **Areas (cm²)** = pixels × spacing_x × spacing_y / 100. ``sma_cm2``: the muscle mask (label ``labels['muscle']``
    or any non-zero voxel) on the slice, restricted to ``hu['muscle']`` (−29…150 HU; ``None`` keeps the whole
    mask); ``muscle_hu_mean`` its mean attenuation (HU). ``imat_cm2``, ``vat_cm2``, ``sat_cm2`` come from the case's
    mask in ``imat_column`` / ``vat_column`` / ``sat_column`` (default ``mask_imat``, ``mask_vat``, ``mask_sat`` when
    present); a tissue named in ``labels`` without a column of its own is taken from the muscle column's label map
    (one multi-label tissue mask, e.g. ``labels={'muscle': 1, 'sat': 2, 'vat': 3, 'imat': 4}``); otherwise from HU
    ranges: IMAT = muscle mask ∩ ``hu['imat']``; VAT = inside the muscle ring (filled after a ``closing_mm``
    closing) ∩ ``hu['vat']``; SAT = body (largest component above ``body_hu``) outside the ring ∩ ``hu['sat']``.
    ``hu`` overrides :data:`DEFAULT_HU` per tissue. The ``note`` says which tissues came from HU ranges.

    **Indices.** ``smi_cm2_m2`` = SMA / height² (``height_column`` in metres; a value > 3 looks like centimetres and
    is refused), ``bmi_kg_m2`` = weight / height². ``sarcopenic`` = SMI below the ``cutoffs`` scheme's threshold for
    the case's sex (and BMI where the scheme needs it); ``myosteatosis`` = muscle HU below the scheme's density
    threshold where it has one. ``cutoffs`` is a scheme of ``cutoffs.csv`` (``prado2008``, ``martin2013``,
    ``derstine2018``; all validated at L3 only, so they are not applied at another level, with a note) or a
    DataFrame with columns ``measure`` (``smi`` / ``muscle_hu``), ``sex`` (``M``/``F``/``*``), ``threshold`` and
    optional ``bmi_min`` (inclusive), ``bmi_max`` (exclusive), applied at any level. Missing sex, height or weight
    gives NaN / NA with a ``note``, never an error. ``resample_masks``: masks on another grid than the image are
    resampled onto it (nearest neighbour) instead of failing.
    """
    table, scheme = load_cutoffs(cutoffs)
    level_name = level or (VERTEBRA_LEVELS.get(int(vertebra_label), f"vertebra label {vertebra_label}")
                           if vertebra_column else "L3")
    if scheme in PUBLISHED_SCHEMES and level_name != "L3":
        table = table.iloc[0:0]  # L3 cut-offs never judge another level
        scheme = f"{scheme} (L3 only: not applied at {level_name})"
    given = {"imat": imat_column, "vat": vat_column, "sat": sat_column}
    ranges = {**DEFAULT_HU, **dict(hu or {})}
    unknown_hu = set(ranges) - {"muscle", *FAT_TISSUES}
    if unknown_hu:
        raise SettingsError(f"hu: unknown tissue(s) {sorted(unknown_hu)}; use muscle, imat, vat, sat")
    tissue_labels = dict(labels or {})
    unknown = set(tissue_labels) - {"muscle", *FAT_TISSUES}
    if unknown:
        raise SettingsError(f"labels: unknown tissue(s) {sorted(unknown)}; use muscle, imat, vat, sat")
    settings = SarcopeniaSettings(
        muscle_column=muscle_column, slice_column=slice_column, vertebra_column=vertebra_column,
        vertebra_label=int(vertebra_label), level=level_name, cutoffs=table, scheme=scheme,
        tissue_columns={t: c or (muscle_column if t in tissue_labels else f"mask_{t}") for t, c in given.items()},
        labels=tissue_labels,
        hu={"muscle": _hu_range(ranges["muscle"], "hu['muscle']", True),
            **{t: _hu_range(ranges[t], f"hu[{t!r}]") for t in FAT_TISSUES}},
        body_hu=float(body_hu), closing_mm=float(closing_mm), image_column=image_column, sex_column=sex_column,
        height_column=height_column, weight_column=weight_column)
    required = (image_column, muscle_column, slice_column, vertebra_column, *given.values())
    return run_cases(cohort, _measure, settings, kind="sarcopenia", columns=SARCOPENIA_COLUMNS, required=required,
                     carry=carry, jobs=jobs, executor=executor, progress=progress, resample_masks=resample_masks,
                     dtypes={"slice_index": "Int64", "slice_source": "string", "level": "string",
                             "sarcopenic": "boolean", "myosteatosis": "boolean", "cutoffs": "string"})


def load_cutoffs(cutoffs: str | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Return ``(table, scheme name)`` for a scheme of ``cutoffs.csv`` or a user table (validated)."""
    if isinstance(cutoffs, str):
        table = package_table("cutoffs.csv")
        name = cutoffs.lower()
        if name not in set(table["scheme"]):
            raise SettingsError(f"unknown cut-off scheme {cutoffs!r}; choose one of {sorted(set(table['scheme']))} "
                                f"or pass a DataFrame (measure, sex, threshold, bmi_min, bmi_max)")
        return table[table["scheme"] == name].reset_index(drop=True), name
    if not isinstance(cutoffs, pd.DataFrame):
        raise SettingsError(f"cutoffs must be a scheme name or a DataFrame, not {type(cutoffs).__name__}")
    missing = {"measure", "sex", "threshold"} - set(cutoffs.columns)
    if missing:
        raise SettingsError(f"cut-off table lacks column(s) {sorted(missing)}; it needs measure (smi or "
                            "muscle_hu), sex (M, F or *), threshold, and optionally bmi_min, bmi_max")
    table = cutoffs.copy()
    for column in ("bmi_min", "bmi_max"):
        if column not in table.columns:
            table[column] = np.nan
    table["sex"] = table["sex"].astype(str).str.upper()
    bad = ~table["measure"].isin(["smi", "muscle_hu"]) | ~table["sex"].isin(["M", "F", "*"])
    if bad.any():
        raise SettingsError(f"cut-off table rows {list(table.index[bad])}: measure must be smi or muscle_hu and sex "
                            f"M, F or *")
    scheme = str(table["scheme"].iloc[0]) if "scheme" in table.columns and len(table) else "custom"
    return table.reset_index(drop=True), scheme


def cutoff_for(table: pd.DataFrame, measure: str, sex: str | None, bmi: float | None) -> tuple[float | None, str]:
    """The threshold of ``measure`` for ``sex`` and ``bmi`` in a cut-off table, or ``(None, reason)``.

    The reason is empty when the table simply has no threshold for that measure.
    """
    rows = table[table["measure"] == measure]
    if rows.empty:
        return None, ""
    if sex is None and not (rows["sex"] == "*").all():
        return None, f"no sex: {measure} cut-off not applied"
    rows = rows[rows["sex"].isin([sex, "*"])]
    if (rows["bmi_min"].notna() | rows["bmi_max"].notna()).any():
        if bmi is None:
            return None, f"no BMI (weight or height missing): BMI-dependent {measure} cut-off not applied"
        rows = rows[(rows["bmi_min"].isna() | (bmi >= rows["bmi_min"])) &
                    (rows["bmi_max"].isna() | (bmi < rows["bmi_max"]))]
    if len(rows) != 1:
        if len(rows) > 1:
            raise SettingsError(f"cut-off table has {len(rows)} {measure} thresholds for sex {sex}, BMI {bmi}; "
                                f"make the rows exclusive")
        return None, f"no {measure} cut-off for sex {sex}, BMI {bmi}"
    return float(rows["threshold"].iloc[0]), ""


def vertebra_slice_index(vertebrae: np.ndarray | sitk.Image, label: int = 29) -> int:
    """Axial index (numpy axis 0) of the slice through the centroid of vertebra ``label`` in a vertebra map
    (TotalSegmentator numbering: 29 = L3).

    Raises :class:`BiomarkerError` when the label is absent (the scan may not reach L3, or the map uses another
    numbering).
    """
    array = sitk.GetArrayViewFromImage(vertebrae) if isinstance(vertebrae, sitk.Image) else np.asarray(vertebrae)
    if array.ndim != 3:
        raise BiomarkerError(f"a vertebra map must be 3D to locate a vertebra, not {array.ndim}D")
    z = np.nonzero(array == label)[0]
    if z.size == 0:
        present = [int(v) for v in np.unique(array) if v]
        level = VERTEBRA_LEVELS.get(label, "the vertebra")
        raise BiomarkerError(f"no {level} (label {label}) in the vertebra map (labels present: {present}); the scan "
                             f"may not cover it, or the map numbers vertebrae differently (set vertebra_label; CLI "
                             f"--vertebra-label) - or give the slice index in a column (CLI --slice-column)")
    return int(math.floor(z.mean() + 0.5))


def _measure(settings: SarcopeniaSettings, case: Case) -> list[dict[str, Any]]:
    height, weight, sex = _clinical(settings, case)
    image = case.image(settings.image_column)
    index, source = _slice(settings, case, image)
    hu, pixel_mm2 = axial_slice(sitk.GetArrayViewFromImage(image), image.GetSpacing(), index)
    hu = hu.astype(np.float64)
    plane = axial_slice(case.array(settings.muscle_column), image.GetSpacing(), index)[0]
    muscle = select(plane, settings.labels.get("muscle"))
    if not muscle.any():
        raise MaskError(f"{settings.muscle_column} has no muscle on the {settings.level} slice {index} ({source}); "
                        "check the mask and the slice")
    sma = muscle & _in(hu, settings.hu["muscle"]) if settings.hu["muscle"] else muscle
    cm2 = pixel_mm2 / 100.0
    row: dict[str, Any] = {"slice_index": index, "slice_source": source, "level": settings.level,
                           "sma_cm2": np.count_nonzero(sma) * cm2,
                           "muscle_hu_mean": float(hu[sma].mean()) if sma.any() else math.nan,
                           "cutoffs": settings.scheme}
    from_hu = [t for t in FAT_TISSUES if case.value(settings.tissue_columns[t]) is None]
    regions = {"imat": muscle}
    if {"vat", "sat"} & set(from_hu):
        regions.update(_ring_regions(hu, muscle, image.GetSpacing()[:2], settings, case))
    for tissue in FAT_TISSUES:
        if tissue in from_hu:
            region = regions.get(tissue)
            area = math.nan if region is None else np.count_nonzero(region & _in(hu, settings.hu[tissue])) * cm2
        else:
            plane = axial_slice(case.array(settings.tissue_columns[tissue]), image.GetSpacing(), index)[0]
            area = np.count_nonzero(select(plane, settings.labels.get(tissue))) * cm2
        row[f"{tissue}_cm2"] = area
    if from_hu:
        case.note(f"{', '.join(from_hu)} from HU ranges (no mask)")
    row.update(_indices(settings, case, row, height, weight, sex))
    return [row]


def _clinical(settings: SarcopeniaSettings, case: Case) -> tuple[float | None, float | None, str | None]:
    height = _number(case, settings.height_column)
    if height is not None and height > 3:
        raise BiomarkerError(f"{settings.height_column}={height:g} looks like centimetres; give the height in metres "
                             f"(e.g. {height / 100:.2f})")
    if height is not None and height < 0.5:
        raise BiomarkerError(f"{settings.height_column}={height:g} m is not a plausible adult height; give metres")
    weight = _number(case, settings.weight_column)
    if weight is not None and weight <= 0:
        raise BiomarkerError(f"{settings.weight_column}={weight:g} kg is not a plausible weight")
    raw_sex = case.value(settings.sex_column)
    sex = _SEX.get(str(raw_sex).strip().upper()) if raw_sex is not None else None
    if raw_sex is None:
        case.note(f"no {settings.sex_column}")
    elif sex is None:
        case.note(f"{settings.sex_column}={raw_sex!r} not understood (use M or F)")
    if height is None:
        case.note(f"no {settings.height_column}: SMI not computed")
    return height, weight, sex


def _number(case: Case, column: str) -> float | None:
    value = case.value(column)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise BiomarkerError(f"{column}={value!r} is not a number") from exc
    return None if math.isnan(number) else number


def _indices(settings: SarcopeniaSettings, case: Case, row: dict[str, Any], height: float | None, weight: float | None,
             sex: str | None) -> dict[str, Any]:
    bmi = weight / height**2 if height is not None and weight is not None else None
    smi = row["sma_cm2"] / height**2 if height is not None else None
    out: dict[str, Any] = {"bmi_kg_m2": bmi, "smi_cm2_m2": smi}
    threshold, reason = cutoff_for(settings.cutoffs, "smi", sex, bmi)
    out["smi_cutoff_cm2_m2"] = threshold
    out["sarcopenic"] = None if threshold is None or smi is None else bool(smi < threshold)
    if reason:
        case.note(f"{settings.scheme}: {reason}")
    threshold, reason = cutoff_for(settings.cutoffs, "muscle_hu", sex, bmi)
    out["muscle_hu_cutoff"] = threshold
    density = row["muscle_hu_mean"]
    out["myosteatosis"] = None if threshold is None or math.isnan(density) else bool(density < threshold)
    if reason:
        case.note(f"{settings.scheme}: {reason}")
    return out


def _slice(settings: SarcopeniaSettings, case: Case, image: sitk.Image) -> tuple[int | None, str]:
    if image.GetDimension() == 2:
        return None, "2d_image"
    explicit = case.value(settings.slice_column)
    if explicit is not None:
        index = float(explicit)
        if not index.is_integer():
            raise BiomarkerError(f"{settings.slice_column}={explicit!r} is not a whole slice index")
        return int(index), "slice_column"
    if case.value(settings.vertebra_column) is not None:
        return vertebra_slice_index(case.mask(settings.vertebra_column), settings.vertebra_label), "vertebra_map"
    if image.GetSize()[2] == 1:
        return 0, "single_slice"
    sources = [c for c in (settings.slice_column, settings.vertebra_column) if c]
    raise BiomarkerError(f"no {settings.level} slice for this {image.GetSize()[2]}-slice image: "
                         + (f"{' and '.join(sources)} empty" if sources else
                            "give slice_column (a z index; CLI --slice-column) or vertebra_column (a vertebra "
                            "label map; CLI --vertebra-column)"))


def _ring_regions(hu: np.ndarray, muscle: np.ndarray, spacing: tuple[float, float], settings: SarcopeniaSettings,
                  case: Case) -> dict[str, np.ndarray]:
    """Where VAT and SAT may lie on the slice: VAT inside the closed muscle ring, SAT in the body outside it.

    SimpleITK morphology, because the compartments are defined by the ring's topology; empty when the ring does
    not close (e.g. above L2, where the abdominal wall is thin).
    """
    body = _largest_component_filled(hu > settings.body_hu, spacing)
    for factor in (1, 2, 3):  # widen the closing until the abdominal wall ring closes
        radius = [max(1, math.ceil(factor * settings.closing_mm / d)) for d in spacing]
        closed = _sitk_binary(muscle, spacing, lambda im, r=radius: sitk.BinaryMorphologicalClosing(im, r))
        filled = _sitk_binary(closed, spacing, sitk.BinaryFillhole)
        inside = filled & ~closed
        if inside.any():
            return {"vat": inside, "sat": body & ~filled}
    case.note("muscle ring does not close on the slice: VAT and SAT not separable by HU, give masks")
    return {}


def _largest_component_filled(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    def largest(image: sitk.Image) -> sitk.Image:
        components = sitk.RelabelComponent(sitk.ConnectedComponent(image), sortByObjectSize=True)
        return sitk.BinaryFillhole(components == 1)

    return _sitk_binary(mask, spacing, largest)


def _sitk_binary(mask: np.ndarray, spacing: tuple[float, float], operation: Any) -> np.ndarray:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(d) for d in spacing))
    return sitk.GetArrayFromImage(operation(image)).astype(bool)


def _in(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    return (values >= low) & (values <= high)


def _hu_range(bounds: Any, name: str, optional: bool = False) -> tuple[float, float] | None:
    if bounds is None and optional:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{name} must be (low, high) in HU, not {bounds!r}") from exc
    if not low < high:
        raise SettingsError(f"{name}: low {low} must be below high {high}")
    return low, high
