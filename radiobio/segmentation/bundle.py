"""Model bundles: a folder with ``model.keras``, ``model_card.json`` and a human ``MODEL_CARD.md``.

The Keras file is loaded with ``safe_mode=True`` (no Lambda layers, no pickled code); the card is validated key by
key, so a bundle written by a newer, incompatible radiobio is refused rather than misread.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radiobio.atomic import atomic_path, write_text_atomic
from radiobio.errors import ModelBundleError, RadiobioError
from radiobio.segmentation.config import SegmentationConfig, as_config

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
CARD_FORMAT = 1

#: Keys a model card may hold; ``labels`` .. ``inference`` rebuild the configuration the model was trained with.
CARD_KEYS = {
    "format_version", "name", "description", "created", "labels", "target_spacing", "orientation",
    "intensity_normalisation", "patch_size", "architecture", "backend", "inference", "training", "training_data",
    "validation_metrics", "versions", "license", "citation",
}
REQUIRED_CARD_KEYS = {"format_version", "labels", "architecture", "patch_size", "intensity_normalisation"}


@dataclass
class ModelBundle:
    """A loaded bundle: the Keras model, its configuration and its card."""

    path: Path
    model: Any
    config: SegmentationConfig
    card: dict[str, Any]


def card_from_config(config: SegmentationConfig, **extra: Any) -> dict[str, Any]:
    """The configuration part of a model card (labels, geometry, intensity, architecture, inference settings)."""
    data = config.to_dict()
    pre = data["preprocessing"]
    card = {
        "format_version": CARD_FORMAT,
        "labels": data["labels"],
        "target_spacing": pre["target_spacing"],
        "orientation": pre["orientation"],
        "intensity_normalisation": pre["intensity"],
        "patch_size": pre["patch_size"],
        "architecture": data["model"],
        "inference": data["inference"],
        "training": {"settings": data["training"]},
    }
    card.update(extra)
    return card


def config_from_card(card: dict[str, Any], where: str = CARD_FILE) -> SegmentationConfig:
    """Rebuild the configuration stored in a card; raise :class:`ModelBundleError` when the card is invalid."""
    unknown = sorted(set(card) - CARD_KEYS)
    if unknown:
        raise ModelBundleError(f"{where}: unknown key(s) {unknown}; a model card holds only {sorted(CARD_KEYS)}. "
                               f"Remove them, or upgrade radiobio if the bundle comes from a newer version")
    missing = sorted(REQUIRED_CARD_KEYS - set(card))
    if missing:
        raise ModelBundleError(f"{where}: missing key(s) {missing}; re-export the bundle with radiobio train")
    if card["format_version"] != CARD_FORMAT:
        raise ModelBundleError(f"{where}: format_version {card['format_version']!r} is not supported (expected "
                               f"{CARD_FORMAT}); upgrade radiobio")
    training = card.get("training") or {}
    data = {
        "labels": card["labels"],
        "model": card["architecture"],
        "preprocessing": {"target_spacing": card.get("target_spacing"), "patch_size": card["patch_size"],
                          "orientation": card.get("orientation", "LPS"),
                          "intensity": card["intensity_normalisation"]},
        "inference": card.get("inference"),
        "training": training.get("settings"),
    }
    try:
        return as_config(data)
    except RadiobioError as exc:
        raise ModelBundleError(f"{where}: invalid settings ({exc})") from exc


def write_json_atomic(data: dict[str, Any], path: Path) -> Path:
    """Write JSON to a temporary file beside ``path``, then rename it into place (NaN becomes null)."""
    return write_text_atomic(json.dumps(_finite(data), indent=2, default=str) + "\n", path)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars
        return _finite(value.item())
    return value


def save_model_atomic(model, path: Path) -> Path:
    """Save a Keras model to ``path`` (``.keras``) through a temporary file, so a crash never leaves half a file."""
    path = Path(path)
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(str(tmp))
    return path


def write_card(folder: str | os.PathLike, card: dict[str, Any]) -> None:
    """Write ``model_card.json`` and the human ``MODEL_CARD.md`` rendered from it (both atomically)."""
    from radiobio.segmentation.card import render_card

    write_json_atomic(card, Path(folder) / CARD_FILE)
    write_text_atomic(render_card(card), Path(folder) / CARD_MARKDOWN)


def export_bundle(model, config: SegmentationConfig | dict[str, Any], folder: str | os.PathLike,
                  **card_fields: Any) -> Path:
    """Write a bundle for an existing Keras model (e.g. trained elsewhere): ``model.keras`` + the card files.

    ``card_fields`` add to the card (``description``, ``training_data``, ``validation_metrics``, ...).
    """
    import keras

    config = as_config(config)
    folder = Path(folder)
    save_model_atomic(model, folder / MODEL_FILE)
    card = card_from_config(config, name=folder.name, backend=keras.backend.backend(), **card_fields)
    config_from_card(card, str(folder / CARD_FILE))  # refuse to write a card that could not be read back
    write_card(folder, card)
    return folder


def read_card(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and parse a bundle's ``model_card.json`` (not validated)."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ModelBundleError(f"{path}: model card missing; a bundle folder holds {MODEL_FILE} and {CARD_FILE} "
                               f"(made by radiobio train)")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelBundleError(f"{path}: not valid JSON ({exc}); restore the bundle from its source") from exc
    if not isinstance(card, dict):
        raise ModelBundleError(f"{path}: a model card is a JSON object")
    return card


def load_bundle(path: str | os.PathLike | ModelBundle) -> ModelBundle:
    """Load a model bundle given by folder or by name (``"hippocampus-3d"``, looked up on the model search path of
    :mod:`radiobio.segmentation.catalogue`), or return an already loaded one.

    Raises :class:`ModelBundleError` for a missing folder or file, a corrupt ``.keras`` archive, a model that safe
    mode refuses (Lambda layers, pickled code), or an invalid card.
    """
    from radiobio.segmentation.catalogue import find_bundle

    if isinstance(path, ModelBundle):
        return path
    folder = find_bundle(path)
    if not folder.is_dir():
        raise ModelBundleError(f"{folder}: model bundle folder not found; give the folder radiobio train wrote "
                               f"(holding {MODEL_FILE} and {CARD_FILE})")
    card = read_card(folder)
    config = config_from_card(card, str(folder / CARD_FILE))
    model = load_keras_model(folder / MODEL_FILE)
    _check_model(model, config, folder)
    return ModelBundle(folder, model, config, card)


def load_keras_model(path: Path):
    """``keras.models.load_model(path, safe_mode=True)`` with errors a user can act on."""
    if not path.is_file():
        raise ModelBundleError(f"{path}: model file missing; the bundle is incomplete (re-run radiobio train or "
                               f"copy the whole bundle folder)")
    if not zipfile.is_zipfile(path):
        raise ModelBundleError(f"{path}: not a Keras archive (corrupt or truncated); restore the bundle from its "
                               f"source")
    import keras

    import radiobio.segmentation.layers  # noqa: F401  (registers radiobio's serialisable layers)
    import radiobio.segmentation.losses  # noqa: F401

    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise ModelBundleError(f"{path}: refused by Keras safe mode, the model holds code (a Lambda layer) that "
                                   f"would run on loading; only load bundles whose source you trust, and rebuild the "
                                   f"model without Lambda layers") from exc
        raise ModelBundleError(f"{path}: cannot load the model ({exc})") from exc
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise ModelBundleError(f"{path}: cannot load the model ({type(exc).__name__}: {exc}); the file is corrupt "
                               f"or was saved by an incompatible Keras") from exc


def _check_model(model, config: SegmentationConfig, folder: Path) -> None:
    outputs = model.outputs[0].shape if isinstance(model.outputs, list) else model.output.shape
    inputs = model.inputs[0].shape
    if len(inputs) != config.dims + 2:
        raise ModelBundleError(f"{folder}: the card describes a {config.dims}D model but {MODEL_FILE} takes "
                               f"{len(inputs) - 2}D input; the card does not belong to this model")
    if outputs[-1] != config.num_classes:
        raise ModelBundleError(f"{folder}: {MODEL_FILE} predicts {outputs[-1]} classes but the card lists labels "
                               f"{sorted(config.labels)} ({config.num_classes} classes with background)")
