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
    versions = card.get("versions", {})
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()) or "–", ""]
    if card.get("license") or card.get("citation"):
        lines += ["## Licence and citation", "", _fmt(card.get("license")), "", _fmt(card.get("citation")), ""]
    lines += [f"Created {card.get('created')}.", ""]
    return "\n".join(lines)
