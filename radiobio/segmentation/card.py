"""Render a model card (``model_card.json``) as the human ``MODEL_CARD.md``."""

from __future__ import annotations

from typing import Any

#: Shown when a card does not state its intended use.
UNSTATED_USE = "not stated in the model card"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _axes(values: Any, unit: str) -> str:
    """``[1.0, 1.0, 2.5]`` as ``x 1.0, y 1.0, z 2.5 mm``; empty for a missing value."""
    if not isinstance(values, (list, tuple)) or not values:
        return ""
    return ", ".join(f"{axis} {v:g}" if isinstance(v, (int, float)) else f"{axis} {v}"
                     for axis, v in zip("xyz", values)) + unit


def render_card(card: dict[str, Any]) -> str:
    """Markdown summary of a model card: what it segments, how it was trained, how well it does."""
    arch = card.get("architecture", {})
    training = card.get("training", {})
    data = card.get("training_data", {})
    metrics = card.get("validation_metrics", {})
    labels = card.get("labels", {})
    parent = card.get("parent") or {}
    lines = [
        f"# Model card: {card.get('name', 'segmentation model')}",
        "",
        card.get("description", "A radiobio segmentation model bundle."),
        "",
        f"**Intended use:** {card.get('intended_use') or UNSTATED_USE}.",
        "",
        *([f"Fine-tuned from {parent.get('name')} ({parent.get('digest')}), bundle `{parent.get('path')}`.", ""]
          if parent else []),
        "## What it segments",
        "",
        "| label | name |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in labels.items()],
        "",
        "## Input and preprocessing",
        "",
        f"- orientation: images are reoriented to **{card.get('orientation')}** before inference "
        f"(masks come back on the input grid)",
        f"- target spacing: {_axes(card.get('target_spacing'), ' mm') or 'each image keeps its own spacing'}",
        f"- intensity normalisation: {card.get('intensity_normalisation')}",
        f"- patch size: {_axes(card.get('patch_size'), ' voxels') or '–'}",
        f"- inference: {card.get('inference')}",
        "",
        "## Architecture",
        "",
        f"- {arch.get('architecture')}: depth {arch.get('depth')}, base filters {arch.get('base_filters')}, "
        f"normalisation {arch.get('normalization')}, dropout {arch.get('dropout')}, deep supervision "
        f"{arch.get('deep_supervision')}" + (f", backbone {arch.get('backbone')}" if arch.get("backbone") else ""),
        f"- Keras backend used for training: {card.get('backend')}",
        "",
        "## Training",
        "",
        f"- data: {data.get('description')}",
        f"- split: {data.get('n_train')} training / {data.get('n_validation')} validation cases "
        f"({data.get('split')})",
        f"- command: `{training.get('command')}`",
        f"- epochs run: {training.get('epochs_run')} (best epoch {training.get('best_epoch')}), "
        f"fit time {training.get('fit_minutes')} min, total {training.get('total_minutes')} min on "
        f"{training.get('machine')}",
        "",
        "## Validation (held-out cases)",
        "",
    ]
    per_label = metrics.get("per_label", {})
    if per_label:
        lines += [
            f"{metrics.get('n_cases')} cases, {metrics.get('failed_cases', 0)} failed. {metrics.get('note', '')}",
            "",
            "| label | name | Dice mean (sd) | Dice median | IoU mean | HD95 mm mean (median) | ASSD mm mean |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, m in per_label.items():
            lines.append(
                f"| {label} | {labels.get(str(label), '')} | {_fmt(m.get('dice_mean'))} ({_fmt(m.get('dice_std'))}) "
                f"| {_fmt(m.get('dice_median'))} | {_fmt(m.get('iou_mean'))} | {_fmt(m.get('hd95_mm_mean'), 2)} "
                f"({_fmt(m.get('hd95_mm_median'), 2)}) | {_fmt(m.get('assd_mm_mean'), 2)} |")
        lines += ["", f"Mean Dice over labels and cases: **{_fmt(metrics.get('mean_dice'))}**"]
    else:
        lines.append("Not validated yet.")
    lines += _quality_lines(card.get("quality") or {}, labels)
    versions = card.get("versions", {})
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()) or "–", ""]
    if card.get("license") or card.get("citation"):
        lines += ["## Licence and citation", "", _fmt(card.get("license")), "", _fmt(card.get("citation")), ""]
    lines += [f"Created {card.get('created')}.", ""]
    return "\n".join(lines)


def _quality_lines(quality: dict[str, Any], labels: dict[str, Any]) -> list[str]:
    """The card's quality-score section: reference statistics and calibration (radiobio.segmentation.quality)."""
    lines = ["", "## Quality score (qc_score)", ""]
    reference = quality.get("reference")
    calibration = quality.get("calibration")
    if not reference and not calibration:
        return [*lines, "No quality statistics: segment scores masks uncalibrated (radiobio calibrate-qc adds them)."]
    if reference:
        unit = reference.get("size_unit", "mL")
        sizes = ", ".join(f"{labels.get(k, k)} {v['size_mean']:.3g} ± {v['size_sd']:.2g} {unit}"
                          for k, v in (reference.get("labels") or {}).items())
        lines.append(f"- reference: {reference.get('n_cases')} training cases ({reference.get('modality')}); label "
                     f"sizes {sizes}")
    if calibration:
        lines.append(f"- calibrated for {calibration.get('target')} on {calibration.get('n_masks')} masks of "
                     f"{len(calibration.get('cases') or [])} validation cases ({calibration.get('n_below')} below), "
                     f"perturbations {', '.join(calibration.get('perturbations') or [])} at severities "
                     f"{calibration.get('severities')}; in-sample AUC {_fmt(calibration.get('auc_in_sample'))}")
        lines.append("- logistic coefficients per SD of each signal: " + ", ".join(
            f"{n} {c:+.2f}" for n, c in zip(calibration.get("signals", []), calibration.get("coefficients", []))))
    else:
        lines.append(f"- {quality.get('calibration_note') or 'not calibrated'}: qc_score is uncalibrated "
                     f"(radiobio calibrate-qc)")
    return lines
