"""The configuration of a fine-tune: the parent bundle's card, with training settings of its own.

``finetune_config(parent, overrides)`` takes labels, architecture, preprocessing and inference settings from the
parent's card and training settings from ``overrides`` over :func:`finetune_defaults`. Reads no case and imports
no Keras, so a command line can check a fine-tune's settings before TensorFlow loads.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

from radiobio.errors import SettingsError
from radiobio.provenance import jsonable
from radiobio.segmentation.bundle import ModelBundle, read_bundle
from radiobio.segmentation.config import SegmentationConfig, TrainingSettings, _labels, _read_file, parse_config

#: Configuration sections a fine-tune takes unchanged from its parent's card.
PARENT_SECTIONS = ("labels", "model", "preprocessing", "inference")

#: A fine-tune's learning rate, epochs and time limit are the parent's divided by this (see :func:`finetune_defaults`).
FINETUNE_FACTOR = 10


def finetune_defaults(parent: TrainingSettings) -> dict[str, Any]:
    """The training settings of a fine-tune that gives none: the parent's, with a tenth of its learning rate, a
    tenth of its epochs (at least 1) and a tenth of its time limit (minutes), and no early stopping.

    Why: the parent's weights already sit in a good minimum for the task; a tenth of the rate moves them towards the
    new images without unlearning what the parent's many cases taught (a full rate on a few cases forgets), and
    features that need not be learned again need a fraction of the epochs. Early stopping on the two or so
    validation cases of a small cohort would be noise, so ``patience`` is the number of epochs; the best epoch (or
    the parent's own weights, when no epoch beats them on the validation patches) is what the bundle keeps. Batch
    size, patches per epoch, schedule, loss weights, split and augmentation stay the parent's.
    """
    settings = copy.deepcopy(parent)
    settings.learning_rate = parent.learning_rate / FINETUNE_FACTOR
    settings.epochs = max(1, math.ceil(parent.epochs / FINETUNE_FACTOR))
    settings.patience = settings.epochs
    settings.max_minutes = None if parent.max_minutes is None else parent.max_minutes / FINETUNE_FACTOR
    return SegmentationConfig(training=settings).to_dict()["training"]


def finetune_config(parent: ModelBundle | str | os.PathLike,
                    overrides: SegmentationConfig | dict[str, Any] | str | os.PathLike | None = None
                    ) -> SegmentationConfig:
    """The configuration of a fine-tune of ``parent`` (a bundle, its folder or its name on the model search path).

    Labels, architecture, preprocessing (spacing, orientation, intensity normalisation, patch size) and inference
    settings are the parent's card's. ``overrides`` (a dict, a YAML path or a :class:`SegmentationConfig`) may give
    ``training`` settings, which replace those of :func:`finetune_defaults` one by one (``augmentation`` too, key
    by key; ``epochs`` without ``patience`` sets ``patience`` to the same number). It may repeat a parent's setting
    with the parent's value (so the parent's own ``config.yaml`` is accepted), but a different value is a
    :class:`SettingsError` naming the key, as is an unknown section. Reads no
    case and imports no Keras.
    """
    bundle = read_bundle(parent)
    base = bundle.config.to_dict()
    if overrides is None:
        data: dict[str, Any] = {}
    elif isinstance(overrides, SegmentationConfig):
        data = overrides.to_dict()
    elif isinstance(overrides, (str, os.PathLike)):
        data = _read_file(Path(overrides))
    elif isinstance(overrides, dict):
        data = copy.deepcopy(overrides)
    else:
        raise SettingsError(f"config must be a dict, a YAML path or a SegmentationConfig, not "
                            f"{type(overrides).__name__}")
    unknown = sorted(str(k) for k in set(data) - {*PARENT_SECTIONS, "training"})
    if unknown:
        raise SettingsError(f"unknown section(s) {', '.join(f'config.{k}' for k in unknown)}; a fine-tune's config "
                            f"holds a 'training' section (and may repeat the parent's {', '.join(PARENT_SECTIONS)})")
    for section in PARENT_SECTIONS:
        if section in data:
            _check_same(data[section], base[section], section, bundle.name)
    training = finetune_defaults(bundle.config.training)
    given = data.get("training") or {}
    if not isinstance(given, dict):
        raise SettingsError(f"config.training must be a mapping of training settings, got {given!r}")
    if "epochs" in given and "patience" not in given:
        training["patience"] = given["epochs"]  # still no early stopping (see finetune_defaults)
    augmentation = given.get("augmentation")
    if isinstance(augmentation, dict):
        given = {**given, "augmentation": {**training["augmentation"], **augmentation}}
    return parse_config({**base, "training": {**training, **given}})


def _check_same(given: Any, parent: Any, path: str, name: str) -> None:
    """Raise :class:`SettingsError` where ``given`` (part of a fine-tune's config) differs from the parent's."""
    if path == "labels":
        given = {str(k): v for k, v in _labels(given, "config.labels").items()}
    if isinstance(given, dict) and isinstance(parent, dict) and path != "labels":
        for key, value in given.items():
            child = f"{path}.{key}"
            if key not in parent:
                raise SettingsError(f"unknown setting config.{child}; known settings of config.{path}: "
                                    f"{', '.join(parent)}")
            _check_same(value, parent[key], child, name)
        return
    if jsonable(given) != jsonable(parent):
        raise SettingsError(f"config.{path} {jsonable(given)!r} differs from the parent model {name}'s "
                            f"{jsonable(parent)!r}; a fine-tune keeps its parent's labels, architecture, "
                            f"preprocessing and inference settings and may change only 'training' settings: remove "
                            f"config.{path}, or train a new model with -c CONFIG instead of --from")
