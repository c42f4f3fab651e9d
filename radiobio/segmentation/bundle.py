"""Model bundles: a folder with ``model.keras``, ``model_card.json`` and a human ``MODEL_CARD.md``.

The Keras file is loaded with ``safe_mode=True`` (no Lambda layers, no pickled code); the card is validated key by
key, so a bundle written by a newer, incompatible radiobio is refused rather than misread.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radiobio.atomic import atomic_path, write_text_atomic
from radiobio.errors import ModelBundleError, RadiobioError
from radiobio.provenance import jsonable
from radiobio.quiet import import_keras
from radiobio.segmentation.card import UNSTATED_USE
from radiobio.segmentation.config import SegmentationConfig, as_config, parse_config

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
CARD_FORMAT = 1

#: Keys a model card may hold; ``labels`` .. ``inference`` rebuild the configuration the model was trained with.
CARD_KEYS = {
    "format_version", "name", "description", "intended_use", "created", "labels", "target_spacing", "orientation",
    "intensity_normalisation", "patch_size", "architecture", "backend", "inference", "training", "training_data",
    "validation_metrics", "versions", "license", "citation", "parent",
}
REQUIRED_CARD_KEYS = {"format_version", "labels", "architecture", "patch_size", "intensity_normalisation"}

#: Card keys holding free text, and those holding a JSON object.
TEXT_KEYS = ("name", "description", "intended_use", "created", "backend", "license", "citation")
OBJECT_KEYS = ("architecture", "intensity_normalisation", "inference", "training", "training_data",
               "validation_metrics", "versions", "parent")
BACKENDS = ("tensorflow", "torch", "jax", "numpy", "openvino")

#: Characters of the hexadecimal SHA-256 kept in :attr:`ModelBundle.digest`.
DIGEST_LENGTH = 16


@dataclass
class ModelBundle:
    """A bundle: its folder, the Keras model (``None`` from :func:`read_bundle`), its configuration and its card.

    ``digest`` fingerprints the bundle: the first 16 hexadecimal characters of the SHA-256 of ``model.keras``
    and ``model_card.json``; two bundles with the same digest make the same masks.
    """

    path: Path
    model: Any
    config: SegmentationConfig
    card: dict[str, Any]
    digest: str

    @property
    def name(self) -> str:
        """The card's ``name``, else the folder's name."""
        return str(self.card.get("name") or self.path.name)

    @property
    def intended_use(self) -> str:
        """The card's ``intended_use`` (short text, e.g. "synthetic data only, not for clinical use")."""
        return str(self.card.get("intended_use") or UNSTATED_USE)

    @property
    def synthetic_only(self) -> bool:
        """True when the card says the model was trained on synthetic data only (a demo, not for real images)."""
        return is_synthetic_only(self.card)

    def __repr__(self) -> str:
        return (f"ModelBundle(name={self.name!r}, digest={self.digest!r}, path={str(self.path)!r}, "
                f"labels={self.config.labels}, {self.config.dims}D {self.config.model.architecture}, "
                f"intended_use={self.intended_use!r})")


def is_synthetic_only(card: dict[str, Any]) -> bool:
    """True when a card's ``intended_use`` says the model was trained on synthetic data (a demo model)."""
    return "synthetic" in str(card.get("intended_use") or "").lower()


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


#: Configuration sections and the card keys that hold them ("" : the section's settings are top-level keys).
_CARD_SECTIONS = (("preprocessing.intensity", "intensity_normalisation"), ("preprocessing", ""),
                  ("model", "architecture"), ("training", "training.settings"))


def _card_key(path: str) -> str:
    """The card key of a configuration setting (``preprocessing.intensity.window`` ->
    ``intensity_normalisation.window``)."""
    for section, card_key in _CARD_SECTIONS:
        if path == section:
            return card_key or path
        if path.startswith(section + "."):
            rest = path[len(section) + 1:]
            return f"{card_key}.{rest}" if card_key else rest
    return path or "model card"


def check_card(card: dict[str, Any], where: str = CARD_FILE) -> SegmentationConfig:
    """Validate every key of a model card and return the configuration it describes.

    Checks the keys present (only :data:`CARD_KEYS`, all of :data:`REQUIRED_CARD_KEYS`), the format version,
    the text and object keys' types, and the configuration part in full: labels a non-empty ``{value: name}``
    with integer values 1..255, ``target_spacing`` positive finite mm of the model's dimension (or null),
    ``patch_size`` positive integers of the model's dimension, an ordered intensity window, a known
    normalisation, positive batch sizes and so on. Raises :class:`ModelBundleError` naming the key and the value.
    """
    if not isinstance(card, dict):
        raise ModelBundleError(f"{where}: a model card is a JSON object, not {type(card).__name__}")
    unknown = sorted(set(card) - CARD_KEYS)
    if unknown:
        raise ModelBundleError(f"{where}: unknown key(s) {unknown}; a model card holds only {sorted(CARD_KEYS)}. "
                               f"Remove them, or upgrade radiobio if the bundle comes from a newer version")
    missing = sorted(REQUIRED_CARD_KEYS - set(card))
    if missing:
        raise ModelBundleError(f"{where}: missing key(s) {missing}; re-export the bundle with radiobio train")
    version = card["format_version"]
    if isinstance(version, bool) or version != CARD_FORMAT:
        raise ModelBundleError(f"{where}: format_version {version!r} is not supported (expected {CARD_FORMAT}); "
                               f"upgrade radiobio")
    for key in TEXT_KEYS:
        if card.get(key) is not None and not isinstance(card[key], str):
            raise ModelBundleError(f"{where}: {key} {card[key]!r}: must be text")
    if card.get("backend") is not None and card["backend"] not in BACKENDS:
        raise ModelBundleError(f"{where}: backend {card['backend']!r} is not a Keras backend; choose one of "
                               f"{', '.join(BACKENDS)}")
    for key in OBJECT_KEYS:
        if card.get(key) is not None and not isinstance(card[key], dict):
            raise ModelBundleError(f"{where}: {key} {card[key]!r}: must be a JSON object")
    if not isinstance(card["labels"], dict):
        raise ModelBundleError(f"{where}: labels {card['labels']!r}: must be a JSON object {{value: name}}, e.g. "
                               f'{{"1": "liver", "2": "spleen"}}')
    if card["patch_size"] is None:
        raise ModelBundleError(f"{where}: patch_size null; a bundle's card gives the patch size the model was "
                               f"trained with (voxels, x y[ z])")
    training = card.get("training") or {}
    if training.get("settings") is not None and not isinstance(training["settings"], dict):
        raise ModelBundleError(f"{where}: training.settings {training['settings']!r}: must be a JSON object")
    versions = card.get("versions") or {}
    bad = {k: v for k, v in versions.items() if not isinstance(v, str)}
    if bad:
        raise ModelBundleError(f"{where}: versions {bad}: must be text (package: version)")
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
        return parse_config(data, _card_key)
    except RadiobioError as exc:
        raise ModelBundleError(f"{where}: invalid card ({exc}); fix the card or re-export the bundle with "
                               f"radiobio train") from exc


def config_from_card(card: dict[str, Any], where: str = CARD_FILE) -> SegmentationConfig:
    """Rebuild the configuration stored in a card; raise :class:`ModelBundleError` when the card is invalid
    (see :func:`check_card`)."""
    return check_card(card, where)


def write_json_atomic(data: dict[str, Any], path: Path) -> Path:
    """Write JSON to a temporary file beside ``path``, then rename it into place (NaN becomes null)."""
    return write_text_atomic(json.dumps(jsonable(data), indent=2) + "\n", path)


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
    keras = import_keras()

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


def bundle_digest(folder: str | os.PathLike) -> str:
    """The fingerprint of a bundle folder: the first :data:`DIGEST_LENGTH` hexadecimal characters of the SHA-256
    of ``model.keras`` and ``model_card.json`` (their bytes, each preceded by its name). Reads both files once
    (a few MB: milliseconds)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for name in (MODEL_FILE, CARD_FILE):
        digest.update(name.encode() + b"\0")
        with open(folder / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:DIGEST_LENGTH]


def read_bundle(path: str | os.PathLike | ModelBundle) -> ModelBundle:
    """Check a bundle without loading its network, and without importing Keras or TensorFlow.

    ``path`` is a folder or a name on the model search path (see :func:`load_bundle`). Validates the folder, the
    card in full (:func:`check_card`) and that ``model.keras`` is a Keras archive, and computes the digest. The
    returned bundle has ``model=None``; a loaded bundle is returned as it is. Raises :class:`ModelBundleError`.
    Use it to fail fast (a CLI, before a batch) and to describe a bundle (name, labels, intended use, digest).
    """
    from radiobio.segmentation.catalogue import find_bundle

    if isinstance(path, ModelBundle):
        return path
    folder = find_bundle(path)
    if not folder.is_dir():
        raise ModelBundleError(f"{folder}: model bundle folder not found; give the folder radiobio train wrote "
                               f"(holding {MODEL_FILE} and {CARD_FILE})")
    card = read_card(folder)
    config = check_card(card, str(folder / CARD_FILE))
    _check_model_file(folder / MODEL_FILE)
    return ModelBundle(folder, None, config, card, bundle_digest(folder))


def load_bundle(path: str | os.PathLike | ModelBundle) -> ModelBundle:
    """Load a model bundle given by folder or by name (``"hippocampus-3d"``, looked up on the model search path of
    :mod:`radiobio.segmentation.catalogue`), or return an already loaded one.

    The folder and the card are checked (:func:`read_bundle`) before Keras is imported, so a typo in a name or a
    bad card fails in a fraction of a second. Raises :class:`ModelBundleError` for a missing folder or file, an
    invalid card, a corrupt ``.keras`` archive, a model that safe mode refuses (Lambda layers, pickled code), or a
    model whose inputs or classes disagree with its card.
    """
    if isinstance(path, ModelBundle) and path.model is not None:
        return path
    bundle = read_bundle(path)
    model = load_keras_model(bundle.path / MODEL_FILE)
    _check_model(model, bundle.config, bundle.path)
    bundle.model = model
    return bundle


def _check_model_file(path: Path) -> None:
    if not path.is_file():
        raise ModelBundleError(f"{path}: model file missing; the bundle is incomplete (re-run radiobio train or "
                               f"copy the whole bundle folder)")
    if not zipfile.is_zipfile(path):
        raise ModelBundleError(f"{path}: not a Keras archive (corrupt or truncated); restore the bundle from its "
                               f"source")


def load_keras_model(path: Path):
    """``keras.models.load_model(path, safe_mode=True)`` with errors a user can act on."""
    _check_model_file(path)
    keras = import_keras()

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
