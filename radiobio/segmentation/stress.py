"""``stress_test(model, cohort, ...)``: how a segmentation model's Dice and HD95 fall as its images get worse.

For every case × perturbation × severity (:mod:`radiobio.segmentation.perturbations`) the image is perturbed,
segmented with the bundle (:func:`radiobio.segmentation.inference.segment_image`, the bundle's own preprocessing
and inference settings) and scored against the case's reference mask per label
(:func:`radiobio.segmentation.metrics.compare_masks`: Dice, HD95 in mm).

**Severity 0 is the clean baseline**: every perturbation at severity 0 returns the image unchanged, so it is computed
once per case and reported as perturbation ``"none"`` at severity 0 (not repeated for each perturbation); the curve
of a perturbation starts from it. Each perturbation of a case uses one seed for all severities (derived from
``seed``, the case and the perturbation), so the severities of a curve are the same noise pattern, the same k-space
lines, made stronger.

``out_dir`` receives ``masks/<perturbation>/<severity>/<case>.nii.gz`` (every predicted mask, on the image's grid,
so anyone can recompute a row), ``stress_test.csv`` (the table, provenance stage ``"stress_test"``) and
``stress_test.png`` (mean Dice against severity, one line per perturbation).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio import __version__
from radiobio.atomic import atomic_path
from radiobio.batch import Case, case_file_name, load_cases, order_like, run_batch
from radiobio.cohort import CohortSource
from radiobio.errors import ModelBundleError, SettingsError, describe
from radiobio.imaging import write_image
from radiobio.segmentation.bundle import ModelBundle, load_bundle, read_bundle
from radiobio.segmentation.perturbations import CT_ONLY, PERTURBATIONS, check_severity, perturbation_names
from radiobio.segmentation.quality import QC_COLUMNS, SIGNAL_COLUMNS
from radiobio.tables import is_missing, write_table

#: Severities of :func:`stress_test` by default.
DEFAULT_SEVERITIES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The perturbation name of the clean baseline (severity 0, once per case).
BASELINE = "none"
#: Columns of the table :func:`stress_test` returns.
COLUMNS = ["perturbation", "severity", "case_id", "label", "label_name", "dice", "hd95_mm",
           *[c for c in QC_COLUMNS if c != "qc_note"], "mask", "note", "error"]
#: File names inside ``out_dir``.
TABLE_FILE = "stress_test.csv"
PLOT_FILE = "stress_test.png"
MASKS_DIR = "masks"

_WORKER_BUNDLES: dict[str, ModelBundle] = {}


@dataclass(frozen=True)
class StressSettings:
    """What every case of one stress test shares (the loaded bundle, or its folder in worker processes)."""

    bundle: Any
    masks_dir: str
    image_column: str
    mask_column: str
    perturbations: tuple[str, ...]
    severities: tuple[float, ...]
    seed: int
    labels: tuple[tuple[int, str], ...]
    modality: str


def severity_folder(severity: float) -> str:
    """The folder name of a severity under ``masks/<perturbation>/``: ``0``, ``0.25``, ``1``."""
    return f"{float(severity):g}"


def case_seed(seed: int, case_id: str, perturbation: str) -> int:
    """The seed a perturbation gets for one case: the first 32 bits of SHA-256 of ``seed:case_id:perturbation``
    (stable across processes and Python versions, unlike ``hash``)."""
    digest = hashlib.sha256(f"{seed}:{case_id}:{perturbation}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def stress_case(settings: StressSettings, case: Case) -> list[dict[str, Any]]:
    """Stress one case (the measure of :func:`stress_test`): baseline and every perturbation × severity, one row
    per label; a perturbation that fails gives one row with its ``error``, the others continue."""
    from radiobio.segmentation.inference import segment_with_quality
    from radiobio.segmentation.metrics import compare_masks

    bundle = settings.bundle
    if not isinstance(bundle, ModelBundle):  # in a worker process: load once per process
        key = str(bundle)
        if key not in _WORKER_BUNDLES:
            _WORKER_BUNDLES[key] = load_bundle(key)
        bundle = _WORKER_BUNDLES[key]
    image = case.image(settings.image_column)
    reference = case.mask(settings.mask_column, what="reference mask")
    labels = dict(settings.labels)
    runs: list[tuple[str, float]] = []
    if 0.0 in settings.severities:
        runs.append((BASELINE, 0.0))
    runs += [(name, s) for name in settings.perturbations for s in settings.severities if s > 0]
    rows: list[dict[str, Any]] = []
    for name, severity in runs:
        base: dict[str, Any] = {"perturbation": name, "severity": severity}
        out = Path(settings.masks_dir) / name / severity_folder(severity) / f"{case_file_name(case.case_id)}.nii.gz"
        try:
            if name == BASELINE:
                perturbed = image
            elif name in CT_ONLY:
                perturbed = PERTURBATIONS[name](image, severity, case_seed(settings.seed, case.case_id, name),
                                                modality=settings.modality)
            else:
                perturbed = PERTURBATIONS[name](image, severity, case_seed(settings.seed, case.case_id, name))
            predicted, quality = segment_with_quality(perturbed, bundle, f"case {case.case_id} ({name} {severity:g})",
                                                      modality=settings.modality)
            write_image(predicted, out)
            scores = compare_masks(predicted, reference, sorted(labels))
        except Exception as exc:  # one perturbation failing never stops the others
            rows.append({**base, "error": describe(exc)})
            continue
        qc = {k: v for k, v in quality.row().items() if k in COLUMNS}
        rows += [{**base, "label": row["label"], "label_name": labels.get(row["label"], str(row["label"])),
                  "dice": row["dice"], "hd95_mm": row["hd95_mm"], **qc, "mask": str(out), "error": ""}
                 for row in scores]
    return rows


def _check_perturbations(perturbations: str | Sequence[str] | None, modality: str, model: str) -> tuple[str, ...]:
    if perturbations is None:
        return tuple(perturbation_names(modality))
    names = [p.strip() for p in perturbations.split(",")] if isinstance(perturbations, str) else list(perturbations)
    names = [n for n in names if n]
    if not names:
        raise SettingsError(f"no perturbation given; choose from {', '.join(PERTURBATIONS)} (or None for all)")
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise SettingsError(f"unknown perturbation(s) {', '.join(map(repr, unknown))}; choose from "
                            f"{', '.join(PERTURBATIONS)}")
    refused = [n for n in names if n not in perturbation_names(modality)]
    if refused:
        raise SettingsError(f"{', '.join(refused)} applies to CT only, and model {model} takes {modality} images; drop "
                            f"it, or give modality='CT' (CLI --modality CT) if the images are CT")
    return tuple(dict.fromkeys(names))


def _check_severities(severities: Sequence[float]) -> tuple[float, ...]:
    if isinstance(severities, (str, bytes)) or not isinstance(severities, Sequence | np.ndarray):
        raise SettingsError(f"severities {severities!r}: give a list of numbers in [0, 1], e.g. (0, 0.5, 1)")
    values = sorted({check_severity(s, "severity") for s in severities})
    if not values:
        raise SettingsError("severities is empty; give numbers in [0, 1], e.g. (0, 0.5, 1)")
    return tuple(values)


def _check_dimensions(table: pd.DataFrame, image_column: str, bundle: ModelBundle) -> None:
    """A 2D (slice) model cannot be stress-tested on volumes: the perturbations act in 3D (blur, resolution and
    motion cross slices). Reads only the image headers of the cases, before any case runs."""
    if bundle.config.dims != 2:
        return
    volumes = []
    for case_id, value, error in table[["case_id", image_column, "error"]].itertuples(index=False):
        if error or is_missing(value):
            continue
        path = Path(str(value))
        if path.is_dir():  # a DICOM series: more than one file is a volume
            files = [f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")]
            if len(files) > 1:
                volumes.append(str(case_id))
            continue
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue  # unreadable: the case will fail with its own error
        size = reader.GetSize()
        if len(size) == 3 and size[2] > 1:
            volumes.append(str(case_id))
    if volumes:
        listed = ", ".join(volumes[:5]) + (f" and {len(volumes) - 5} more" if len(volumes) > 5 else "")
        raise SettingsError(f"model {bundle.name} is a 2D (slice) model, but cases {listed} are 3D volumes; the "
                            f"stress test perturbs whole images, so give it the slices the model segments (2D "
                            f"images or single-slice volumes), or a 3D model")


def stress_test(model: ModelBundle | str | os.PathLike, cohort: CohortSource, *,
                perturbations: str | Sequence[str] | None = None,
                severities: Sequence[float] = DEFAULT_SEVERITIES, mask_column: str = "mask",
                image_column: str = "image", out_dir: str | os.PathLike, seed: int = 0, modality: str | None = None,
                jobs: int | None = None, executor: Any = None, progress: bool = False) -> pd.DataFrame:
    """Segment perturbed copies of every case with ``model`` and score them against ``mask_column``.

    Returns one row per perturbation × severity × case × label: ``perturbation``, ``severity`` (0–1), ``case_id``,
    ``label``, ``label_name``, ``dice``, ``hd95_mm`` (mm), ``qc_score``, ``qc_flags``, ``qc_out_of_domain`` and the
    quality signals ``qc_<signal>`` of the predicted mask (:mod:`radiobio.segmentation.quality`; the same on every
    label row of a mask), ``mask`` (the predicted mask's path), ``note`` and ``error``. The clean baseline is
    perturbation ``"none"`` at severity 0, once per case (see module docs); a case that fails gives one row with its
    ``error``, a perturbation that fails one row with that perturbation's error, and the rest continues.

    ``perturbations``: names of :data:`~radiobio.segmentation.perturbations.PERTURBATIONS` (a list or
    ``"blur,contrast"``); ``None`` = all that apply to the model's modality. ``modality``: ``"CT"`` or ``"MR"``;
    ``None`` = from the bundle's card (``ct`` intensity normalisation: CT, else MR); CT-only perturbations
    (``metal_streaks``) are left out for MR, and naming one for an MR model is an error. ``severities``: numbers in
    [0, 1]. ``seed``: the seed every perturbation's randomness derives from. ``jobs``: as :func:`segment` (None or
    1: this process; N: N worker processes that each load the bundle; or a Dask ``executor``).

    Writes ``out_dir/masks/<perturbation>/<severity>/<case>.nii.gz``, ``out_dir/stress_test.csv`` (provenance
    stage ``"stress_test"``) and ``out_dir/stress_test.png``. Every argument is checked before the first case:
    :class:`~radiobio.errors.SettingsError` for an unknown perturbation (listing the names), a severity outside
    [0, 1], a CT-only perturbation for an MR model or a 2D model given 3D volumes;
    :class:`~radiobio.errors.ModelBundleError` when ``model`` is not a bundle; :class:`~radiobio.errors.CohortError`
    when the cohort lacks ``image_column`` or ``mask_column``.
    """
    if not isinstance(model, (ModelBundle, str, os.PathLike)):
        raise ModelBundleError(f"model {type(model).__name__} is not a model bundle; give a bundle folder, a bundle "
                               f"name (radiobio models lists them) or a ModelBundle from load_bundle")
    bundle = read_bundle(model)  # a bad name or card fails before Keras loads
    if modality is None:
        modality = "CT" if bundle.config.preprocessing.intensity.mode == "ct" else "MR"
    elif str(modality).upper() not in ("CT", "MR"):
        raise SettingsError(f"modality {modality!r}: give 'CT', 'MR' or None (from the model's card)")
    modality = str(modality).upper()
    names = _check_perturbations(perturbations, modality, bundle.name)
    levels = _check_severities(severities)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise SettingsError(f"seed {seed!r}: give an integer")
    if out_dir is None:
        raise SettingsError("out_dir is required: the folder for the masks, stress_test.csv and stress_test.png")
    table = load_cases(cohort, stage="stress_test", required=(image_column, mask_column))
    _check_dimensions(table, image_column, bundle)
    out = Path(out_dir)
    masks = out / MASKS_DIR
    masks.mkdir(parents=True, exist_ok=True)
    in_process = executor is None and (jobs is None or jobs == 1)
    payload = load_bundle(bundle) if in_process else str(bundle.path.resolve())
    labels = tuple((int(k), str(v)) for k, v in sorted(bundle.config.labels.items()))
    settings = StressSettings(payload, str(masks.resolve()), image_column, mask_column, names, levels, int(seed),
                              labels, modality)
    rows = run_batch(table, stress_case, settings, stage="stress_test", jobs=jobs, executor=executor,
                     progress=progress)
    result = pd.DataFrame.from_records(rows, columns=COLUMNS)
    result = order_like(result, table)
    order = {name: i for i, name in enumerate((BASELINE, *names))}
    result = result.assign(_p=result["perturbation"].map(order)).sort_values(
        ["_p", "severity"], kind="stable", na_position="first").drop(columns="_p").reset_index(drop=True)
    result["label"] = result["label"].astype("Int64")
    for column in ("dice", "hd95_mm", "qc_score", "severity", *SIGNAL_COLUMNS):
        result[column] = result[column].astype(float)
    for column in ("note", "error", "qc_flags"):
        result[column] = result[column].fillna("")
    result["qc_out_of_domain"] = [bool(v) if isinstance(v, (bool, np.bool_)) else False
                                  for v in result["qc_out_of_domain"]]
    skipped = [n for n in PERTURBATIONS if n not in perturbation_names(modality)]
    result.attrs["provenance"] = {
        "stage": "stress_test", "model": {"name": bundle.name, "digest": bundle.digest,
                                          "labels": {str(k): v for k, v in labels}},
        "perturbations": list(names), "severities": list(levels), "seed": int(seed), "modality": modality,
        "skipped": {n: f"CT only; {bundle.name} takes {modality} images" for n in skipped if perturbations is None},
        "baseline": f"perturbation {BASELINE!r} at severity 0, once per case", "image_column": image_column,
        "mask_column": mask_column, "radiobio": __version__}
    write_table(result, out / TABLE_FILE)
    plot_stress(result, out / PLOT_FILE, title=f"{bundle.name}: mean Dice under perturbation")
    return result


def mean_dice(table: pd.DataFrame) -> pd.DataFrame:
    """Mean Dice (over cases and labels, failed rows excluded) per perturbation (rows) × severity (columns); the
    baseline (``"none"``, severity 0) fills the severity-0 column of every perturbation."""
    ok = table[(table["error"] == "") & table["dice"].notna()]
    baseline = ok.loc[ok["perturbation"] == BASELINE, "dice"].mean()
    perturbed = ok[ok["perturbation"] != BASELINE]
    means = perturbed.pivot_table(index="perturbation", columns="severity", values="dice", aggfunc="mean")
    names = list(dict.fromkeys(table.loc[table["perturbation"].notna() & (table["perturbation"] != BASELINE),
                                         "perturbation"]))
    means = means.reindex(names)
    if (ok["perturbation"] == BASELINE).any():
        means.insert(0, 0.0, baseline)
    means.columns = [float(c) for c in means.columns]
    means.index.name = "perturbation"
    return means


def plot_stress(table: pd.DataFrame, path: str | os.PathLike, title: str = "mean Dice under perturbation") -> Path:
    """Plot :func:`mean_dice` (mean Dice against severity, one line per perturbation) to a PNG at ``path``
    (matplotlib's Agg backend, written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    means = mean_dice(table)
    figure = Figure(figsize=(7.0, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, row in means.iterrows():
        values = row.dropna()
        axes.plot(values.index, values.to_numpy(), marker="o", label=str(name))
    axes.set_xlabel("severity (0 = clean image)")
    axes.set_ylabel("mean Dice (cases × labels)")
    axes.set_ylim(0.0, 1.0)
    axes.set_xlim(-0.03, 1.03)
    axes.grid(alpha=0.3)
    axes.set_title(title)
    if len(means):
        axes.legend(fontsize=8, loc="lower left", ncol=2)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
    return path
