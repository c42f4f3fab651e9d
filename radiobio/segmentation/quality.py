"""Quality scores for predicted masks: which of a cohort's masks a radiologist should look at first.

Every mask :func:`radiobio.segmentation.segment` writes gets ``qc_score`` (0–1, higher = more likely to need
review) and ``qc_flags`` (readable reasons) from signals that need no ground truth (:data:`SIGNALS`):

* ``tta_disagreement``: mean disagreement of the test-time-augmented predictions (flips; ½ Σ_c |p_k − p̄| per
  voxel) over the predicted labels and their border; missing for a bundle without test-time augmentation;
* ``entropy_inside`` / ``entropy_border``: mean predictive entropy (÷ log of the class count: 0–1) inside the
  labels, and on their border (dilated minus eroded, one voxel);
* ``uncertain_fraction``: voxels of entropy above 0.5 as a share of the predicted labels and those voxels together
  (an estimate of how much of the mask is in doubt);
* ``fragmentation``: the largest share of a label's predicted voxels outside its largest connected component
  (before post-processing keeps only that component);
* ``volume_z``: the largest |z-score| of a label's volume (mL; cm² for 2D models) against the training masks'
  volumes in the model card;
* ``intensity_distance``: how far the normalised input's intensity quantiles lie from the training images' (the
  largest |z| over the quantiles of :data:`QUANTILE_LEVELS`);
* ``empty_labels`` / ``border_labels``: how many labels are empty, or touch the image border where training masks
  rarely did.

**Domain checks** compare each input with the training images in the card: modality (the image's DICOM tag or the
cohort's ``modality`` cell), voxel spacing and field of view (each axis within [0.8 × min, 1.25 × max] of the
training images'), and the intensity distance (above every training image's). An input outside them is flagged
``out of domain: ...`` (``qc_out_of_domain``) and :func:`~radiobio.segmentation.segment` warns
(:class:`~radiobio.errors.DomainWarning`), whatever its score.

**The score** is a logistic regression on the standardised signals, fitted by :func:`calibrate_quality` on perturbed
copies of the model's own validation cases (:func:`~radiobio.segmentation.stress.stress_test`) for the target "mean
Dice < 0.80"; its coefficients, the signals' means and scales, the cases and the perturbations are stored in the
card (``quality.calibration``), so ``qc_score`` estimates the probability that a mask's mean Dice is below 0.80. A
missing signal counts as its calibration mean. A card without calibration (older bundles) scores with what remains,
uncalibrated: 1 for an empty label, else ``min(1, 2 × entropy_border)``, and says so in ``qc_note``.

The card's reference statistics (``quality.reference``) come from the training cases and their masks
(:func:`reference_statistics`); ``radiobio train`` writes them, and ``radiobio calibrate-qc`` adds them to an
existing bundle.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from radiobio.errors import ModelBundleError, SettingsError

#: The signals of a quality score, in the order of the calibration's coefficients.
SIGNALS = ("tta_disagreement", "entropy_inside", "entropy_border", "uncertain_fraction", "fragmentation",
           "volume_z", "intensity_distance", "empty_labels", "border_labels")
#: The table columns of the signals, and every quality column a mask adds to a table (:meth:`Quality.row`).
SIGNAL_COLUMNS = tuple(f"qc_{name}" for name in SIGNALS)
QC_COLUMNS = ("qc_score", "qc_flags", "qc_out_of_domain", *SIGNAL_COLUMNS, "qc_note")
#: Percentiles (0–100) of the normalised intensities compared with the training images'.
QUANTILE_LEVELS = (1, 5, 25, 50, 75, 95, 99)
#: A spacing or field of view is in domain within [LOW × training min, HIGH × training max] on every axis.
DOMAIN_LOW, DOMAIN_HIGH = 0.8, 1.25
#: |z| of a label's volume against the training masks above which it is flagged.
VOLUME_Z_FLAG = 3.0
#: |robust z| of a label's volume against the cohort's (median, 1.4826 × MAD) above which it is flagged ...
COHORT_Z_FLAG = 3.5
#: ... when the cohort has at least this many masks.
COHORT_MIN_CASES = 10
#: A label with more than this share of its voxels outside its largest component is flagged as fragmented.
FRAGMENTATION_FLAG = 0.05
#: Training masks touched the border less often than this (share of cases): a mask that touches it is flagged.
BORDER_RARE = 0.05
#: The target of the calibration: a mask needs review when its mean Dice over labels is below this.
DICE_TARGET = 0.80
#: Score at or above which :func:`~radiobio.segmentation.segment` lists a mask for review first.
REVIEW_SCORE = 0.5
#: Where the card keeps the quality statistics.
CARD_SECTION = "quality"
UNCALIBRATED_NOTE = ("qc_score uncalibrated: the model card has no quality calibration (radiobio calibrate-qc adds "
                     "one); scored from the entropy at the label borders and empty labels only")


@dataclass
class Quality:
    """The quality of one predicted mask: its signals, per-label sizes, flags and domain findings."""

    signals: dict[str, float]
    sizes: dict[str, float]  # label value (str) -> mL (3D) or cm² (2D)
    flags: list[str] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    score: float = math.nan
    note: str = ""

    def row(self) -> dict[str, Any]:
        """The columns this mask adds to the table of :func:`~radiobio.segmentation.segment`."""
        flags = [f"out of domain: {d}" for d in self.domain] + self.flags
        return {"qc_score": self.score, "qc_flags": "; ".join(flags), "qc_out_of_domain": bool(self.domain),
                **{column: self.signals.get(name, math.nan) for name, column in zip(SIGNALS, SIGNAL_COLUMNS)},
                "qc_note": self.note}

    def to_json(self) -> dict[str, Any]:
        """A JSON-able record (kept beside the mask, so a resumed run reuses it)."""
        return {"signals": {k: _json_float(v) for k, v in self.signals.items()}, "sizes": self.sizes,
                "flags": self.flags, "domain": self.domain, "score": _json_float(self.score), "note": self.note}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Quality:
        """The inverse of :meth:`to_json`."""
        signals = {k: math.nan if v is None else float(v) for k, v in data.get("signals", {}).items()}
        score = data.get("score")
        return cls(signals, dict(data.get("sizes", {})), list(data.get("flags", [])), list(data.get("domain", [])),
                   math.nan if score is None else float(score), str(data.get("note", "")))


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def size_unit(dims: int) -> str:
    """The unit of a label's size: ``"mL"`` for 3D models, ``"cm²"`` for 2D (slice) models."""
    return "mL" if dims == 3 else "cm²"


def label_size(count: int, spacing: Sequence[float], dims: int) -> float:
    """The size of ``count`` voxels of ``spacing`` (mm): mL for 3D, cm² for 2D (the in-plane spacing)."""
    voxel = float(np.prod(spacing[:2] if dims == 2 else spacing[:3]))
    return count * voxel / (100.0 if dims == 2 else 1000.0)


def _label_boxes(labels: np.ndarray, label_values: Sequence[int]) -> dict[int, tuple[slice, ...] | None]:
    """Each label's bounding box in ``labels`` (None when absent), so per-label work stays inside it."""
    boxes = ndimage.find_objects(labels, max_label=max(label_values, default=0))
    return {v: boxes[v - 1] if v > 0 else None for v in label_values}


def _touches_faces(box: tuple[slice, ...], shape: tuple[int, ...], dims: int) -> bool:
    """Whether a label's bounding ``box`` in an array of ``shape`` reaches the array's outer faces (2D: only the
    in-plane edges); a bounding box reaches a face only where the label has a voxel on it."""
    first = 1 if dims == 2 else 0
    return any(b.start == 0 or b.stop == n for b, n in zip(box[first:], shape[first:]))


def label_statistics(labels: np.ndarray, spacing: Sequence[float], dims: int,
                     label_values: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per label (value as text): ``size`` (mL or cm²), ``components`` (connected, faces touching),
    ``fragmentation`` (share outside the largest component) and ``border`` (1.0 when it touches the array's outer
    faces) of a ``(z, y, x)`` label array on a grid of ``spacing`` (mm, x-y-z). Each label is measured inside its
    bounding box."""
    out = {}
    for value, box in _label_boxes(labels, label_values).items():
        count, components, fragmentation, border = 0, 0, 0.0, False
        if box is not None:
            binary = labels[box] == value
            count = int(binary.sum())
            components_map, components = ndimage.label(binary)
            sizes = np.bincount(components_map.ravel())[1:]
            fragmentation = 1.0 - float(sizes.max()) / count
            border = _touches_faces(box, labels.shape, dims)
        out[str(value)] = {"size": label_size(count, spacing, dims), "components": int(components),
                           "fragmentation": fragmentation, "border": float(border)}
    return out


def intensity_quantiles(array: np.ndarray, foreground: np.ndarray | None) -> list[float]:
    """Percentiles :data:`QUANTILE_LEVELS` of a normalised ``(z, y, x, c)`` array's first channel inside
    ``foreground`` (everything when None or empty); a regular subsample of at most 2 million voxels."""
    values = array[..., 0].reshape(-1)  # a view when contiguous: the subsample is taken before any copy
    if foreground is not None and foreground.any():
        inside = foreground.reshape(-1)
        step = max(1, int(np.count_nonzero(inside)) // 2_000_000)
        values = values[::step][inside[::step]]
    else:
        values = values[::max(1, values.size // 2_000_000)]
    return [float(q) for q in np.percentile(values, QUANTILE_LEVELS)]


def intensity_distance(quantiles: Sequence[float], reference: dict[str, Any]) -> float:
    """The largest |z| of ``quantiles`` against the training images' (mean and SD per level; SD at least 0.05)."""
    mean = np.asarray(reference["mean"], dtype=float)
    sd = np.maximum(np.asarray(reference["sd"], dtype=float), 0.05)
    return float(np.max(np.abs(np.asarray(quantiles, dtype=float) - mean) / sd))


def _mean_in(values: np.ndarray | None, region: np.ndarray) -> float:
    if values is None or not region.any():
        return math.nan
    return float(values[region].mean(dtype=np.float64) / 255.0)


def _uncertain_fraction(entropy: np.ndarray | None, inside: np.ndarray) -> float:
    if entropy is None:
        return math.nan
    uncertain = entropy > 127
    total = int(inside.sum()) + int((uncertain & ~inside).sum())
    return float(uncertain.sum()) / total if total else math.nan


def measure_quality(result: Any, final_labels: np.ndarray, prepared: Any, config: Any,
                    card: dict[str, Any] | None, modality: str | None = None) -> Quality:
    """The signals, flags and domain findings of one prediction on the model's grid.

    ``result``: the :class:`~radiobio.segmentation.inference.WindowResult` of the sliding window (labels before
    post-processing, entropy and disagreement maps); ``final_labels``: the labels after post-processing;
    ``prepared``: the :class:`~radiobio.segmentation.preprocessing.PreparedImage`; ``card``: the bundle's card
    (its ``quality`` section gives the reference and the calibration); ``modality``: the input's, when known.
    """
    dims = config.dims
    values = sorted(int(v) for v in config.labels)
    names = {int(k): str(v) for k, v in config.labels.items()}
    raw = label_statistics(result.labels, prepared.grid.spacing, dims, values)
    final = label_statistics(final_labels, prepared.grid.spacing, dims, values)
    inside = final_labels > 0
    structure = ndimage.generate_binary_structure(3, 1)
    if dims == 2:
        structure[0] = structure[2] = False
    border = np.zeros_like(inside)
    for value, box in _label_boxes(final_labels, values).items():
        if box is None:
            continue
        box = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, final_labels.shape))
        binary = final_labels[box] == value
        border[box] |= ndimage.binary_dilation(binary, structure) & ~ndimage.binary_erosion(binary, structure)
    section = (card or {}).get(CARD_SECTION) or {}
    reference = section.get("reference") or {}
    signals = {"tta_disagreement": _mean_in(result.disagreement, inside | border),
               "entropy_inside": _mean_in(result.entropy, inside),
               "entropy_border": _mean_in(result.entropy, border),
               "uncertain_fraction": _uncertain_fraction(result.entropy, inside),
               "fragmentation": max((raw[str(v)]["fragmentation"] for v in values), default=0.0),
               "empty_labels": float(sum(final[str(v)]["size"] == 0 for v in values))}
    flags: list[str] = []
    unit = size_unit(dims)
    reference_labels = reference.get("labels") or {}
    for value in values:
        name = names[value]
        if final[str(value)]["size"] == 0:
            flags.append(f"{name} empty")
        expected = (reference_labels.get(str(value)) or {}).get("components_max")
        pieces = raw[str(value)]["components"]
        if raw[str(value)]["fragmentation"] > FRAGMENTATION_FLAG and (expected is None or pieces > expected):
            flags.append(f"{name} fragmented: {pieces} pieces, {100 * raw[str(value)]['fragmentation']:.0f}% outside "
                         f"the largest" + (f" (training masks: at most {expected})" if expected is not None else ""))
    if reference_labels:
        z_values = []
        border_count = 0
        for value in values:
            stats = reference_labels.get(str(value))
            if not stats:
                continue
            size = final[str(value)]["size"]
            z = (size - stats["size_mean"]) / max(stats["size_sd"], 1e-9)
            z_values.append(abs(z))
            if abs(z) > VOLUME_Z_FLAG:
                flags.append(f"{name_of(names, value)} {size:.3g} {unit} is {abs(z):.1f} SD "
                             f"{'above' if z > 0 else 'below'} the training mean {stats['size_mean']:.3g} {unit}")
            if final[str(value)]["border"] and stats.get("border_fraction", 0.0) < BORDER_RARE:
                border_count += 1
                flags.append(f"{name_of(names, value)} touches the image border (training masks did in "
                             f"{100 * stats.get('border_fraction', 0.0):.0f}% of cases)")
        signals["volume_z"] = max(z_values, default=math.nan)
        signals["border_labels"] = float(border_count)
    else:
        signals["volume_z"] = math.nan
        signals["border_labels"] = float(sum(final[str(v)]["border"] for v in values))
    domain = []
    if reference.get("intensity"):
        distance = intensity_distance(intensity_quantiles(prepared.array, prepared.foreground),
                                      reference["intensity"])
        signals["intensity_distance"] = distance
        if distance > reference["intensity"]["distance_max"]:
            domain.append(f"intensity distribution {distance:.1f} SD from the training images' (the most unusual "
                          f"training image: {reference['intensity']['distance_max']:.1f})")
    else:
        signals["intensity_distance"] = math.nan
    domain += domain_findings(prepared.original, reference, modality)
    quality = Quality(signals, {str(v): final[str(v)]["size"] for v in values}, flags, domain)
    score_quality(quality, section.get("calibration"))
    return quality


def name_of(names: dict[int, str], value: int) -> str:
    """A label's name from the card, else ``label <value>``."""
    return names.get(value, f"label {value}")


def domain_findings(original: Any, reference: dict[str, Any], modality: str | None) -> list[str]:
    """Why an input image (its :class:`~radiobio.segmentation.preprocessing.Grid`) lies outside the training
    images' modality, voxel spacing or field of view (mm) recorded in ``reference``; empty when it does not."""
    findings = []
    expected = reference.get("modality")
    if modality and expected and str(modality).upper() != str(expected).upper():
        findings.append(f"modality {modality}, the model was trained on {expected}")
    spacing = np.asarray(original.spacing, dtype=float)
    extent = spacing * np.asarray(original.size, dtype=float)
    for what, measured, key in (("voxel spacing", spacing, "spacing_mm"), ("field of view", extent,
                                                                          "field_of_view_mm")):
        ranges = reference.get(key)
        if not ranges or len(ranges["min"]) != len(measured):
            continue
        low = np.asarray(ranges["min"], dtype=float) * DOMAIN_LOW
        high = np.asarray(ranges["max"], dtype=float) * DOMAIN_HIGH
        if np.any(measured < low) or np.any(measured > high):
            findings.append(f"{what} {_triple(measured)} mm outside the training images' "
                            f"{_triple(ranges['min'])} to {_triple(ranges['max'])} mm")
    return findings


def _triple(values: Sequence[float]) -> str:
    return " x ".join(f"{float(v):.3g}" for v in values)


def score_quality(quality: Quality, calibration: dict[str, Any] | None) -> Quality:
    """Set ``quality.score`` from its signals: the card's logistic calibration, or the uncalibrated fallback
    (see the module docs) with a note. Adds the calibration's flags for uncertain masks."""
    signals = quality.signals
    if not calibration:
        empty = signals.get("empty_labels", 0.0) > 0
        border = signals.get("entropy_border", math.nan)
        quality.score = 1.0 if empty else (min(1.0, 2.0 * border) if math.isfinite(border) else math.nan)
        quality.note = UNCALIBRATED_NOTE
        return quality
    x = np.array([_standardise(signals.get(name, math.nan), mean, scale)
                  for name, mean, scale in zip(calibration["signals"], calibration["mean"], calibration["scale"])])
    logit = float(calibration["intercept"] + np.dot(calibration["coefficients"], x))
    quality.score = 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))
    for name, limit in (calibration.get("flag_above") or {}).items():
        value = signals.get(name, math.nan)
        if math.isfinite(value) and value > limit:
            quality.flags.append(f"uncertain: {name.replace('_', ' ')} {value:.3f} above the clean validation "
                                 f"cases' 95th percentile {limit:.3f}")
    return quality


def _standardise(value: float, mean: float, scale: float) -> float:
    return 0.0 if value is None or not math.isfinite(value) else (value - mean) / (scale if scale > 0 else 1.0)


def cohort_flags(sizes: dict[str, dict[str, float]], names: dict[int, str], unit: str) -> dict[str, list[str]]:
    """Flags for masks whose label size is unusual in their own cohort: robust |z| (median, 1.4826 × MAD) above
    :data:`COHORT_Z_FLAG`, when at least :data:`COHORT_MIN_CASES` masks have the label. ``sizes``: case -> label
    (text) -> size. Returns case -> flags."""
    out: dict[str, list[str]] = {}
    labels = sorted({label for per_case in sizes.values() for label in per_case}, key=int)
    for label in labels:
        values = {case: s[label] for case, s in sizes.items() if label in s}
        if len(values) < COHORT_MIN_CASES:
            continue
        array = np.array(list(values.values()), dtype=float)
        median = float(np.median(array))
        mad = 1.4826 * float(np.median(np.abs(array - median)))
        if mad <= 0:
            continue
        for case, value in values.items():
            z = (value - median) / mad
            if abs(z) > COHORT_Z_FLAG:
                out.setdefault(case, []).append(
                    f"{name_of(names, int(label))} {value:.3g} {unit} is unusual in this cohort (robust z {z:+.1f}; "
                    f"cohort median {median:.3g} {unit})")
    return out


# --- the card's statistics ---------------------------------------------------------------------------------------

def reference_statistics(cohort: Any, config: Any, *, image_column: str = "image", mask_column: str = "mask",
                         progress: bool = False) -> dict[str, Any]:
    """The card's ``quality.reference`` from training cases with their masks: per label the size's mean, SD,
    min and max (mL, or cm² for 2D models), how often a mask touches the border and its most connected components;
    the images' modality, voxel spacing and field of view ranges (mm); the normalised intensity quantiles' mean and
    SD per level, and the largest distance of a training image from them. Images and masks are prepared as for
    training."""
    from radiobio.cohort import read_cohort
    from radiobio.imaging import read_image, read_mask
    from radiobio.progress import progress_bar
    from radiobio.segmentation.preprocessing import prepare_image, prepare_mask

    table = read_cohort(cohort)
    values = sorted(int(v) for v in config.labels)
    sizes: dict[str, list[float]] = {str(v): [] for v in values}
    borders: dict[str, list[float]] = {str(v): [] for v in values}
    pieces: dict[str, list[int]] = {str(v): [] for v in values}
    spacings, extents, quantiles = [], [], []
    bar = progress_bar(len(table), enabled=progress, desc="reference statistics")
    for _, row in table.iterrows():
        bar.update(1)
        image = read_image(row[image_column])
        prepared = prepare_image(image, config, name=f"case {row['case_id']}", foreground=True)
        labels = prepare_mask(read_mask(row[mask_column], reference=image), prepared, config)
        stats = label_statistics(labels, prepared.grid.spacing, config.dims, values)
        for value in values:
            sizes[str(value)].append(stats[str(value)]["size"])
            borders[str(value)].append(stats[str(value)]["border"])
            pieces[str(value)].append(stats[str(value)]["components"])
        spacing = np.asarray(image.GetSpacing(), dtype=float)
        spacings.append(spacing)
        extents.append(spacing * np.asarray(image.GetSize(), dtype=float))
        quantiles.append(intensity_quantiles(prepared.array, prepared.foreground))
    bar.close()
    if not len(table):
        raise SettingsError("reference statistics need at least one training case with its mask")
    q = np.array(quantiles)
    intensity = {"levels": list(QUANTILE_LEVELS), "mean": q.mean(axis=0).tolist(), "sd": q.std(axis=0).tolist()}
    intensity["distance_max"] = max(intensity_distance(row, intensity) for row in q)
    return {
        "n_cases": int(len(table)),
        "modality": "CT" if config.preprocessing.intensity.mode == "ct" else "MR",
        "size_unit": size_unit(config.dims),
        "labels": {label: {"size_mean": float(np.mean(v)), "size_sd": float(np.std(v)), "size_min": float(np.min(v)),
                           "size_max": float(np.max(v)), "border_fraction": float(np.mean(borders[label])),
                           "components_max": int(np.max(pieces[label]))}
                   for label, v in sizes.items()},
        "spacing_mm": {"min": np.min(spacings, axis=0).tolist(), "max": np.max(spacings, axis=0).tolist()},
        "field_of_view_mm": {"min": np.min(extents, axis=0).tolist(), "max": np.max(extents, axis=0).tolist()},
        "intensity": intensity,
    }


def run_dice(table: pd.DataFrame) -> pd.DataFrame:
    """One row per perturbation × severity × case of a stress-test table: the mean Dice over labels and the qc
    columns (failed rows left out)."""
    ok = table[(table["error"] == "") & table["dice"].notna()]
    keys = ["perturbation", "severity", "case_id"]
    qc = [c for c in ok.columns if c.startswith("qc_") and c not in ("qc_flags", "qc_note")]
    grouped = ok.groupby(keys, sort=False)
    out = grouped["dice"].mean().rename("mean_dice").to_frame()
    if qc:
        out = out.join(grouped[qc].first())
    return out.reset_index()


def fit_calibration(runs: pd.DataFrame, threshold: float = DICE_TARGET) -> dict[str, Any]:
    """Fit the logistic regression of "mean Dice < ``threshold``" on the standardised signals of ``runs``
    (:func:`run_dice` of a stress test): returns the card's ``quality.calibration`` (signals, means, scales,
    coefficients, intercept, in-sample AUC, flag limits from the clean runs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    target = (runs["mean_dice"] < threshold).to_numpy()
    if target.all() or not target.any():
        raise SettingsError(f"calibration needs masks on both sides of mean Dice {threshold}: {int(target.sum())} of "
                            f"{len(target)} are below; add harder perturbations or severities (or more cases)")
    names = [n for n in SIGNALS if f"qc_{n}" in runs.columns and runs[f"qc_{n}"].notna().any()]
    raw = runs[[f"qc_{n}" for n in names]].to_numpy(dtype=float)
    mean = np.nanmean(raw, axis=0)
    scale = np.nanstd(raw, axis=0)
    scale[~(scale > 0)] = 1.0
    x = np.where(np.isfinite(raw), (raw - mean) / scale, 0.0)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(x, target)
    score = model.predict_proba(x)[:, 1]
    clean = runs["severity"] == 0
    flag_above = {n: float(np.nanpercentile(runs.loc[clean, f"qc_{n}"], 95))
                  for n in ("tta_disagreement", "entropy_border") if n in names and clean.any()
                  and runs.loc[clean, f"qc_{n}"].notna().any()}
    return {"target": f"mean Dice < {threshold:g}", "threshold": float(threshold), "signals": names,
            "mean": mean.tolist(), "scale": scale.tolist(), "coefficients": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0]), "n_masks": int(len(runs)), "n_below": int(target.sum()),
            "auc_in_sample": float(roc_auc_score(target, score)), "flag_above": flag_above}


def qc_auc(table: pd.DataFrame, threshold: float = DICE_TARGET) -> dict[str, float]:
    """How well ``qc_score`` finds the masks of a stress test whose mean Dice is below ``threshold``: the area under
    the ROC curve of ``qc_score`` and of ``qc_volume_z`` (volume z-scores alone, the baseline), the counts, and the
    sensitivity and specificity of sending masks with ``qc_score >= REVIEW_SCORE`` (0.5) to review."""
    from sklearn.metrics import roc_auc_score

    runs = run_dice(table)
    target = (runs["mean_dice"] < threshold).to_numpy()
    out: dict[str, float] = {"n_masks": float(len(runs)), "n_below": float(target.sum())}
    for column, key in (("qc_score", "auc_qc_score"), ("qc_volume_z", "auc_volume_z")):
        values = runs[column].to_numpy(dtype=float) if column in runs else np.full(len(runs), np.nan)
        ok = np.isfinite(values)
        valid = ok.any() and 0 < target[ok].sum() < ok.sum()
        out[key] = float(roc_auc_score(target[ok], values[ok])) if valid else math.nan
    scores = runs["qc_score"].to_numpy(dtype=float) if "qc_score" in runs else np.full(len(runs), np.nan)
    flagged = scores >= REVIEW_SCORE
    out["sensitivity_at_review"] = float(flagged[target].mean()) if target.any() else math.nan
    out["specificity_at_review"] = float((~flagged[~target]).mean()) if (~target).any() else math.nan
    return out


def calibrate_quality(model: Any, cohort: Any, *, out_dir: str | os.PathLike, reference: Any = None,
                      mask_column: str = "mask", image_column: str = "image",
                      perturbations: str | Sequence[str] | None = None, severities: Sequence[float] = (0, 0.5, 1),
                      threshold: float = DICE_TARGET, seed: int = 0, jobs: int | None = None, executor: Any = None,
                      progress: bool = False) -> dict[str, Any]:
    """Write the quality statistics into a bundle's card (in place) and return its ``quality`` section.

    ``reference``: the training cases with masks (a cohort); their statistics (:func:`reference_statistics`)
    replace the card's ``quality.reference``; ``None`` keeps the card's (an error when it has none). Then every
    case of ``cohort`` (validation cases with reference masks, never trained on) is stress-tested
    (:func:`~radiobio.segmentation.stress.stress_test` with ``perturbations``, ``severities``, ``seed``, into
    ``out_dir``) and the score is fitted on those masks (:func:`fit_calibration`); the card records the cases,
    perturbations and severities. ``model`` must be a bundle folder (the card is rewritten there).
    """
    from radiobio.cohort import read_cohort
    from radiobio.segmentation.bundle import read_bundle, write_card
    from radiobio.segmentation.stress import stress_test

    bundle = read_bundle(model)
    if not os.access(bundle.path / "model_card.json", os.W_OK):
        raise ModelBundleError(f"{bundle.path}: the model card is not writable; copy the bundle folder and "
                               f"calibrate the copy")
    if not 0 < float(threshold) < 1:
        raise SettingsError(f"threshold {threshold!r}: give a mean Dice between 0 and 1, e.g. 0.8")
    table = read_cohort(cohort)
    for column in (image_column, mask_column):
        if column not in table.columns:
            raise SettingsError(f"calibration cohort has no column {column!r} (columns: {list(table.columns)})")
    card = bundle.card
    section = dict(card.get(CARD_SECTION) or {})
    if reference is not None:
        section["reference"] = reference_statistics(reference, bundle.config, image_column=image_column,
                                                    mask_column=mask_column, progress=progress)
    elif not section.get("reference"):
        raise SettingsError(f"{bundle.name}'s card has no quality reference statistics; give reference= (CLI "
                            f"--reference) the training cases with their masks")
    section.pop("calibration", None)
    card[CARD_SECTION] = section
    write_card(bundle.path, card)
    stress = stress_test(bundle.path, table, perturbations=perturbations, severities=severities,
                         mask_column=mask_column, image_column=image_column, out_dir=out_dir, seed=seed, jobs=jobs,
                         executor=executor, progress=progress)
    calibration = fit_calibration(run_dice(stress), threshold)
    provenance = stress.attrs.get("provenance", {})
    calibration.update({"cases": sorted(str(c) for c in table["case_id"]),
                        "perturbations": provenance.get("perturbations"),
                        "severities": provenance.get("severities"), "seed": int(seed)})
    section["calibration"] = calibration
    write_card(bundle.path, card)  # card[CARD_SECTION] is this very section
    return section


def add_quality_statistics(bundle_dir: str | os.PathLike, training: Any, validation: Any, *,
                           image_column: str = "image", mask_column: str = "mask", calibrate: bool = True,
                           progress: bool = False) -> dict[str, Any]:
    """What ``radiobio train`` does once a bundle is written: the card's reference statistics from ``training``
    and, with ``calibrate``, the score's calibration on stress-tested ``validation`` cases (all perturbations of the
    model's modality at severities 0, 0.5 and 1; the predicted masks are removed afterwards). When the calibration
    cannot be fitted (every validation mask on one side of the target, or volumes given to a 2D model), the card
    keeps the reference statistics and says why in ``quality.calibration_note``. Returns the ``quality`` section."""
    import shutil

    from radiobio.segmentation.bundle import config_from_card, read_card, write_card

    folder = Path(bundle_dir)
    scratch = folder / "qc_calibration"
    try:
        if calibrate:
            return calibrate_quality(folder, validation, out_dir=scratch, reference=training,
                                     mask_column=mask_column, image_column=image_column, progress=progress)
        card = read_card(folder)
        config = config_from_card(card, str(folder))
        card[CARD_SECTION] = {"reference": reference_statistics(training, config, image_column=image_column,
                                                                mask_column=mask_column, progress=progress),
                              "calibration_note": "not calibrated (train --no-qc-calibration)"}
        write_card(folder, card)
        return card[CARD_SECTION]
    except SettingsError as exc:
        card = read_card(folder)
        section = dict(card.get(CARD_SECTION) or {})
        section["calibration_note"] = f"not calibrated: {exc}"
        card[CARD_SECTION] = section
        write_card(folder, card)
        return section
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

