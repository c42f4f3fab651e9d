"""Segmentation settings: one YAML file (or dict) with ``labels``, ``model``, ``preprocessing``, ``training`` and
``inference`` sections. Unknown keys are refused with the list of known ones, so a typo never passes silently.

Axis conventions: sizes, spacings and patch sizes follow SimpleITK order, ``(x, y, z)``; spacing in mm.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiobio.errors import SettingsError
from radiobio.provenance import jsonable


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
        data = jsonable(dataclasses.asdict(self))
        data["labels"] = {str(k): v for k, v in self.labels.items()}
        return data



KeyNamer = Callable[[str], str]


def _config_key(path: str) -> str:
    """The name a configuration file gives to the setting at ``path`` (``model.depth`` -> ``config.model.depth``)."""
    return f"config.{path}" if path else "config"


def _build(cls, data: Any, path: str, key: KeyNamer):
    if data is None:
        return cls()
    if dataclasses.is_dataclass(data):
        return data
    if not isinstance(data, dict):
        raise SettingsError(f"{key(path)} must be a mapping, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{path}." if path else ""
        raise SettingsError(f"unknown setting(s) {', '.join(key(prefix + str(k)) for k in unknown)}; known settings "
                            f"of {key(path)}: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        nested = _NESTED.get((cls, name))
        child = f"{path}.{name}" if path else name
        if nested is not None:
            values[name] = _build(nested, value, child, key)
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

#: Network builders of :func:`radiobio.segmentation.build_model`.
ARCHITECTURES = ("unet2d", "unet3d", "applications_unet2d", "sm")
SM_ARCHITECTURES = ("Unet", "FPN", "Linknet", "PSPNet")
NORMALIZATIONS = ("instance", "batch", "group", "none")
INTENSITY_MODES = ("zscore", "ct", "none")
LR_SCHEDULES = ("poly", "cosine", "constant")


def as_config(source: SegmentationConfig | dict[str, Any] | str | os.PathLike | None) -> SegmentationConfig:
    """Parse a config (dataclass, dict, or YAML/JSON path) and validate it; raise :class:`SettingsError`.

    Every setting is checked for type and range (sizes positive integers, spacings positive finite mm, windows
    ordered, names from their known lists) and the message names the setting and the bad value. A dict holding
    only model settings (``architecture`` at top level, optional ``num_classes``) is accepted too, so
    ``build_model({"architecture": "unet2d", "num_classes": 3})`` works.
    """
    if isinstance(source, SegmentationConfig):
        _validate(source, _config_key)
        return source
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
        num_classes = data.pop("num_classes", 2)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise SettingsError(f"num_classes {num_classes!r} must be an integer of at least 2 (background and one "
                                f"label)")
        patch = data.pop("patch_size", None)
        data = {"model": data, "labels": {i: f"label{i}" for i in range(1, num_classes)}}
        if patch is not None:
            data["preprocessing"] = {"patch_size": patch}
    return parse_config(data, _config_key)


def parse_config(data: dict[str, Any], key: KeyNamer = _config_key) -> SegmentationConfig:
    """Build and validate a :class:`SegmentationConfig` from its plain-dict form (:meth:`SegmentationConfig.to_dict`).

    ``key`` turns a setting's path (``preprocessing.patch_size``) into the name messages use, so a model card can
    name its own keys. Raises :class:`SettingsError`.
    """
    data = dict(data)
    labels = data.pop("labels", None)
    config = _build(SegmentationConfig, data, "", key)
    if labels is not None:
        config.labels = _labels(labels, key("labels"))
    _validate(config, key)
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


def _labels(labels: Any, name: str = "labels") -> dict[int, str]:
    if isinstance(labels, (list, tuple)):
        labels = {i + 1: label for i, label in enumerate(labels)}
    if not isinstance(labels, dict) or not labels:
        raise SettingsError(f"{name} {labels!r}: labels must map label values (1, 2, ...) to names, e.g. "
                            f"{{1: liver, 2: spleen}}")
    parsed: dict[int, str] = {}
    for value, label in labels.items():
        number = _label_value(value)
        if number is None:
            raise SettingsError(f"{name}: key {value!r} is not a label value; keys are integers 1, 2, ... (label 0 "
                                f"is background)")
        if number < 1:
            raise SettingsError(f"{name}: label {number} is not allowed; label 0 is background and labels start at 1")
        if number > 255:
            raise SettingsError(f"{name}: label {number} is above 255, the most a uint8 mask holds")
        if not isinstance(label, str) or not label.strip():
            raise SettingsError(f"{name}: label {number} has name {label!r}; give each label a non-empty name")
        parsed[number] = label
    names = list(parsed.values())
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SettingsError(f"{name}: name(s) {twice} given to several labels; each label needs its own name")
    return dict(sorted(parsed.items()))


def _label_value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class _Checker:
    """Type and range checks whose messages name the setting (through ``key``) and the bad value."""

    def __init__(self, key: KeyNamer):
        self.key = key

    def fail(self, path: str, value: Any, need: str) -> None:
        shown = list(value) if isinstance(value, tuple) else value  # as the file wrote it
        raise SettingsError(f"{self.key(path)} {shown!r}: {need}")

    def integer(self, path: str, value: Any, minimum: int | None = 1) -> int:
        if not _is_int(value) or (minimum is not None and value < minimum):
            self.fail(path, value, "must be an integer" + (f" of at least {minimum}" if minimum is not None else ""))
        return int(value)

    def number(self, path: str, value: Any, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
        ok = _is_number(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            interval = f"{'(' if low_open else '['}{'-inf' if low is None else low}, " \
                       f"{'inf' if high is None else high}{')' if high_open or high is None else ']'}"
            self.fail(path, value, f"must be a finite number in {interval}")
        return float(value)

    def optional_number(self, path: str, value: Any, **limits: Any) -> float | None:
        return None if value is None else self.number(path, value, **limits)

    def choice(self, path: str, value: Any, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self.fail(path, value, f"choose one of {', '.join(choices)}")
        return value

    def boolean(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(path, value, "must be true or false")
        return value

    def sequence(self, path: str, value: Any, lengths: tuple[int, ...], what: str) -> tuple:
        if not isinstance(value, (list, tuple)) or len(value) not in lengths:
            self.fail(path, value, f"must be a list of {' or '.join(map(str, lengths))} {what}")
        return tuple(value)

    def pair(self, path: str, value: Any, what: str, strict: bool = True, **limits: Any) -> tuple[float, float]:
        pair = self.sequence(path, value, (2,), what)
        if not all(_is_number(v) for v in pair):
            self.fail(path, value, f"must be [low, high], two finite numbers ({what})")
        low, high = (float(v) for v in pair)
        if limits:
            try:
                for v in (low, high):
                    self.number(path, v, **limits)
            except SettingsError as exc:
                self.fail(path, value, f"each value {str(exc).split(': ', 1)[1]}")
        if not (low < high if strict else low <= high):
            self.fail(path, value, f"must be [low, high] with low {'<' if strict else '<='} high ({what})")
        return low, high

    def axes(self, path: str, value: Any, dims: int) -> tuple[str, ...]:
        axes = self.sequence(path, value, tuple(range(0, dims + 1)), "axis names")
        bad = [a for a in axes if a not in _AXES[:dims]]
        if bad:
            self.fail(path, value, f"unknown axes {bad}; use {list(_AXES[:dims])}")
        return axes


def _orientation_ok(code: Any) -> bool:
    if not isinstance(code, str) or len(code) != 3:
        return False
    pairs = [{"L", "R"}, {"A", "P"}, {"S", "I"}]
    used = [next((i for i, p in enumerate(pairs) if c in p), None) for c in code.upper()]
    return None not in used and len(set(used)) == 3


def _validate(config: SegmentationConfig, key: KeyNamer = _config_key) -> None:
    check = _Checker(key)
    if not isinstance(config.labels, dict):
        check.fail("labels", config.labels, "must map label values (1, 2, ...) to names")
    config.labels = _labels(config.labels, key("labels"))
    m, p, t, i = config.model, config.preprocessing, config.training, config.inference
    check.choice("model.architecture", m.architecture, ARCHITECTURES)
    dims = config.dims
    check.integer("model.depth", m.depth)
    check.integer("model.base_filters", m.base_filters)
    check.integer("model.max_filters", m.max_filters)
    check.choice("model.normalization", m.normalization, NORMALIZATIONS)
    check.number("model.dropout", m.dropout, 0, 1, high_open=True)
    check.boolean("model.deep_supervision", m.deep_supervision)
    check.integer("model.in_channels", m.in_channels)
    if m.backbone is not None and (not isinstance(m.backbone, str) or not m.backbone):
        check.fail("model.backbone", m.backbone, "must be the name of an encoder (e.g. ResNet50) or null")
    check.choice("model.sm_architecture", m.sm_architecture, SM_ARCHITECTURES)

    axes = "x, y, z" if dims == 3 else "x, y"
    if p.patch_size is not None:
        size = check.sequence("preprocessing.patch_size", p.patch_size, (dims,), f"voxel counts ({axes}) for a "
                              f"{dims}D {m.architecture} model")
        if not all(_is_int(s) and s >= 1 for s in size):
            check.fail("preprocessing.patch_size", p.patch_size, f"must be {dims} positive integers ({axes} voxels)")
        p.patch_size = tuple(int(s) for s in size)
    if p.target_spacing is not None:
        # a 2D model may also resample between slices (x, y, z); a 3D model needs all three axes
        lengths = (3,) if dims == 3 else (2, 3)
        spacing = check.sequence("preprocessing.target_spacing", p.target_spacing, lengths,
                                 f"spacings in mm ({axes}) for a {dims}D {m.architecture} model")
        if not all(_is_number(s) and s > 0 for s in spacing):
            check.fail("preprocessing.target_spacing", p.target_spacing,
                       f"must be {len(spacing)} positive finite numbers (mm)")
        p.target_spacing = tuple(float(s) for s in spacing)
    if not _orientation_ok(p.orientation):
        check.fail("preprocessing.orientation", p.orientation,
                   "must be a 3-letter code naming each axis once, such as LPS or RAS")
    p.orientation = p.orientation.upper()
    intensity = p.intensity
    check.choice("preprocessing.intensity.mode", intensity.mode, INTENSITY_MODES)
    if intensity.window is not None:
        intensity.window = check.pair("preprocessing.intensity.window", intensity.window, "HU")
    elif intensity.mode == "ct":
        check.fail("preprocessing.intensity.window", None, "[low, high] (HU) is required for mode 'ct'")
    if intensity.clip_percentiles is not None:
        intensity.clip_percentiles = check.pair("preprocessing.intensity.clip_percentiles",
                                                intensity.clip_percentiles, "percentiles, 0 to 100", low=0, high=100)

    check.integer("training.epochs", t.epochs)
    check.integer("training.batch_size", t.batch_size)
    if t.samples_per_epoch is not None:
        check.integer("training.samples_per_epoch", t.samples_per_epoch)
    check.number("training.learning_rate", t.learning_rate, 0, low_open=True)
    check.number("training.weight_decay", t.weight_decay, 0)
    check.choice("training.lr_schedule", t.lr_schedule, LR_SCHEDULES)
    check.number("training.validation_fraction", t.validation_fraction, 0, 1, low_open=True, high_open=True)
    check.integer("training.seed", t.seed, minimum=0)
    check.number("training.foreground_fraction", t.foreground_fraction, 0, 1)
    check.integer("training.patience", t.patience)
    check.optional_number("training.max_minutes", t.max_minutes, low=0, low_open=True)
    check.number("training.dice_weight", t.dice_weight, 0)
    check.number("training.ce_weight", t.ce_weight, 0)
    if t.dice_weight == 0 and t.ce_weight == 0:
        check.fail("training.dice_weight", t.dice_weight, "and training.ce_weight are both 0; nothing would be "
                   "learned")
    a = t.augmentation
    check.number("training.augmentation.probability", a.probability, 0, 1)
    a.flip_axes = check.axes("training.augmentation.flip_axes", a.flip_axes, dims)
    check.number("training.augmentation.rotation_degrees", a.rotation_degrees, 0, 180)
    a.scale_range = check.pair("training.augmentation.scale_range", a.scale_range, "scale factors", strict=False,
                               low=0, low_open=True)
    check.number("training.augmentation.intensity_scale", a.intensity_scale, 0, 1, high_open=True)
    check.number("training.augmentation.intensity_shift", a.intensity_shift, 0)
    check.number("training.augmentation.noise_sd", a.noise_sd, 0)

    check.number("inference.overlap", i.overlap, 0, 1, high_open=True)
    check.number("inference.sigma_scale", i.sigma_scale, 0, low_open=True)
    check.integer("inference.batch_size", i.batch_size)
    i.tta_flips = check.axes("inference.tta_flips", i.tta_flips, dims)
    check.boolean("inference.postprocessing.largest_component", i.postprocessing.largest_component)
    check.boolean("inference.postprocessing.fill_holes", i.postprocessing.fill_holes)
