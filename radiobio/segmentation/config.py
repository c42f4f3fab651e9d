"""Segmentation settings: one YAML file (or dict) with ``labels``, ``model``, ``preprocessing``, ``training`` and
``inference`` sections. Unknown keys are refused with the list of known ones, so a typo never passes silently.

Axis conventions: sizes, spacings and patch sizes follow SimpleITK order, ``(x, y, z)``; spacing in mm.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiobio.errors import SettingsError


@dataclass
class ModelSettings:
    """Network architecture. ``architecture``: ``unet2d``, ``unet3d``, ``applications_unet2d`` or ``sm``."""

    architecture: str = "unet3d"
    depth: int = 4
    base_filters: int = 16
    max_filters: int = 320
    normalization: str = "instance"  # instance | batch | group | none
    dropout: float = 0.0
    deep_supervision: bool = False
    in_channels: int = 1
    backbone: str | None = None  # keras.applications encoder (ResNet50, ...) or segmentation-models backbone
    sm_architecture: str = "Unet"  # Unet | FPN | Linknet | PSPNet


@dataclass
class IntensitySettings:
    """Intensity normalisation: ``zscore`` (MR: per image, after clipping to percentiles), ``ct`` (clip to
    ``window`` HU, then map the window linearly onto [-1, 1]) or ``none``."""

    mode: str = "zscore"
    window: tuple[float, float] | None = None  # HU, for mode "ct"
    clip_percentiles: tuple[float, float] | None = (0.5, 99.5)  # for mode "zscore"


@dataclass
class PreprocessingSettings:
    """Geometry and intensity preparation shared by training and inference."""

    target_spacing: tuple[float, ...] | None = None  # mm (x, y, z); None: keep each image's spacing
    orientation: str = "LPS"  # every image is reoriented (permute/flip, no interpolation) to this code first
    patch_size: tuple[int, ...] | None = None  # voxels (x, y, z) for 3D, (x, y) for 2D
    intensity: IntensitySettings = field(default_factory=IntensitySettings)


@dataclass
class AugmentationSettings:
    """Random augmentation applied to training patches."""

    probability: float = 0.5  # chance of each spatial / intensity transform per sample
    flip_axes: tuple[str, ...] = ("x",)
    rotation_degrees: float = 10.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    intensity_scale: float = 0.1  # multiply by U(1 - s, 1 + s)
    intensity_shift: float = 0.1  # add U(-s, s) (in normalised units)
    noise_sd: float = 0.05


@dataclass
class TrainingSettings:
    """Optimisation, validation split and stopping."""

    epochs: int = 100
    batch_size: int = 2
    samples_per_epoch: int | None = None  # None: one sample per training case
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "poly"  # poly | cosine | constant
    validation_fraction: float = 0.2
    seed: int = 0
    foreground_fraction: float = 0.33
    patience: int = 20
    max_minutes: float | None = None  # stop after this wall time (the best checkpoint is kept)
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)


@dataclass
class PostprocessingSettings:
    """Clean-up of predicted label maps."""

    largest_component: bool = False  # keep only the largest connected component of each label
    fill_holes: bool = False


@dataclass
class InferenceSettings:
    """Sliding window, batching and test-time augmentation."""

    overlap: float = 0.5  # fraction of the patch shared by neighbouring windows (nnU-Net: 0.5)
    sigma_scale: float = 0.125  # Gaussian weight sigma as a fraction of the patch size (nnU-Net: 1/8)
    batch_size: int = 2
    tta_flips: tuple[str, ...] = ()  # axes to mirror for test-time augmentation, e.g. ("x",)
    postprocessing: PostprocessingSettings = field(default_factory=PostprocessingSettings)


@dataclass
class SegmentationConfig:
    """Everything a model bundle needs to be trained and applied; ``labels`` maps label value to name."""

    labels: dict[int, str] = field(default_factory=lambda: {1: "foreground"})
    model: ModelSettings = field(default_factory=ModelSettings)
    preprocessing: PreprocessingSettings = field(default_factory=PreprocessingSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    inference: InferenceSettings = field(default_factory=InferenceSettings)

    @property
    def num_classes(self) -> int:
        """Output channels: background plus the highest label (labels are 1..N)."""
        return max(self.labels) + 1

    @property
    def dims(self) -> int:
        """2 for slice models, 3 for volume models."""
        return 3 if self.model.architecture == "unet3d" else 2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready dict (tuples as lists, label keys as strings)."""
        data = _plain(dataclasses.asdict(self))
        data["labels"] = {str(k): v for k, v in self.labels.items()}
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls, data: Any, where: str):
    if data is None:
        return cls()
    if dataclasses.is_dataclass(data):
        return data
    if not isinstance(data, dict):
        raise SettingsError(f"{where} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(where + '.' + k for k in unknown)}; known settings of "
                            f"{where}: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        nested = _NESTED.get((cls, name))
        if nested is not None:
            values[name] = _build(nested, value, f"{where}.{name}")
        elif isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


_NESTED = {
    (PreprocessingSettings, "intensity"): IntensitySettings,
    (TrainingSettings, "augmentation"): AugmentationSettings,
    (InferenceSettings, "postprocessing"): PostprocessingSettings,
    (SegmentationConfig, "model"): ModelSettings,
    (SegmentationConfig, "preprocessing"): PreprocessingSettings,
    (SegmentationConfig, "training"): TrainingSettings,
    (SegmentationConfig, "inference"): InferenceSettings,
}

_AXES = ("x", "y", "z")


def as_config(source: SegmentationConfig | dict[str, Any] | str | os.PathLike | None) -> SegmentationConfig:
    """Parse a config (dataclass, dict, or YAML/JSON path) and validate it; raise :class:`SettingsError`.

    A dict holding only model settings (``architecture`` at top level, optional ``num_classes``) is accepted too,
    so ``build_model({"architecture": "unet2d", "num_classes": 3})`` works.
    """
    if isinstance(source, SegmentationConfig):
        config = source
    else:
        if source is None:
            data: dict[str, Any] = {}
        elif isinstance(source, (str, os.PathLike)):
            data = _read_file(Path(source))
        elif isinstance(source, dict):
            data = dict(source)
        else:
            raise SettingsError(f"config must be a dict, a YAML path or a SegmentationConfig, not "
                                f"{type(source).__name__}")
        if "architecture" in data and "model" not in data:
            num_classes = int(data.pop("num_classes", 2))
            patch = data.pop("patch_size", None)
            data = {"model": data, "labels": {i: f"label{i}" for i in range(1, num_classes)}}
            if patch is not None:
                data["preprocessing"] = {"patch_size": patch}
        labels = data.pop("labels", None)
        config = _build(SegmentationConfig, data, "config")
        if labels is not None:
            config.labels = _labels(labels)
    _validate(config)
    return config


def _read_file(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise SettingsError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: a config file holds a mapping with sections labels, model, preprocessing, "
                            f"training, inference")
    return data


def _labels(labels: Any) -> dict[int, str]:
    if isinstance(labels, (list, tuple)):
        labels = {i + 1: str(name) for i, name in enumerate(labels)}
    if not isinstance(labels, dict) or not labels:
        raise SettingsError("labels must map label values (1, 2, ...) to names, e.g. {1: liver, 2: spleen}")
    try:
        parsed = {int(k): str(v) for k, v in labels.items()}
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"labels keys must be integers, got {list(labels)}") from exc
    if min(parsed) < 1:
        raise SettingsError("label 0 is background; labels start at 1")
    return dict(sorted(parsed.items()))


def _validate(config: SegmentationConfig) -> None:
    m, p, t, i = config.model, config.preprocessing, config.training, config.inference
    if m.normalization not in ("instance", "batch", "group", "none"):
        raise SettingsError(f"model.normalization {m.normalization!r}: choose instance, batch, group or none")
    if not 0 <= m.dropout < 1:
        raise SettingsError(f"model.dropout must lie in [0, 1), got {m.dropout}")
    if m.in_channels < 1:
        raise SettingsError(f"model.in_channels must be at least 1, got {m.in_channels}")
    dims = config.dims
    if p.patch_size is not None:
        p.patch_size = tuple(int(s) for s in p.patch_size)
        if len(p.patch_size) != dims or min(p.patch_size) < 1:
            raise SettingsError(f"preprocessing.patch_size {p.patch_size} must give {dims} positive sizes (x, y"
                                f"{', z' if dims == 3 else ''}) for a {m.architecture} model")
    if p.target_spacing is not None:
        p.target_spacing = tuple(float(s) for s in p.target_spacing)
        if len(p.target_spacing) not in (2, 3) or min(p.target_spacing) <= 0:
            raise SettingsError(f"preprocessing.target_spacing {p.target_spacing} must be 2 or 3 positive mm values")
    if p.intensity.mode not in ("zscore", "ct", "none"):
        raise SettingsError(f"preprocessing.intensity.mode {p.intensity.mode!r}: choose zscore, ct or none")
    if p.intensity.mode == "ct" and (p.intensity.window is None or len(p.intensity.window) != 2):
        raise SettingsError("preprocessing.intensity.window [low, high] (HU) is required for mode 'ct'")
    if len(p.orientation) != 3 or not all(c in "LRAPSI" for c in p.orientation.upper()):
        raise SettingsError(f"preprocessing.orientation {p.orientation!r} must be a 3-letter code such as LPS or RAS")
    for name, axes in (("training.augmentation.flip_axes", t.augmentation.flip_axes),
                       ("inference.tta_flips", i.tta_flips)):
        bad = [a for a in axes if a not in _AXES[:dims]]
        if bad:
            raise SettingsError(f"{name}: unknown axes {bad}; use {list(_AXES[:dims])}")
    if not 0 <= i.overlap < 1:
        raise SettingsError(f"inference.overlap must lie in [0, 1), got {i.overlap}")
    if not 0 < t.validation_fraction < 1:
        raise SettingsError(f"training.validation_fraction must lie in (0, 1), got {t.validation_fraction}")
    if t.lr_schedule not in ("poly", "cosine", "constant"):
        raise SettingsError(f"training.lr_schedule {t.lr_schedule!r}: choose poly, cosine or constant")
    if t.batch_size < 1 or t.epochs < 1:
        raise SettingsError("training.batch_size and training.epochs must be at least 1")
