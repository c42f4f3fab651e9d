"""Training data: prepared cases, foreground-aware patch (3D) or slice (2D) sampling, augmentation, and a
``keras.utils.PyDataset`` that serves batches on any Keras backend.

Augmentation (flips, small rotations, isotropic scaling, intensity scale/shift/noise) is applied while a patch is
extracted: the patch's sampling grid is rotated and scaled around its centre and interpolated from the whole case
(linear for the image, nearest for the labels), so rotated patches have no empty corners when the case is larger
than the patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras
import numpy as np
from scipy import ndimage

from radiobio.segmentation.config import AugmentationSettings, SegmentationConfig

AXIS_INDEX = {"z": 0, "y": 1, "x": 2}  # numpy axes of a (z, y, x) volume


@dataclass
class TrainingCase:
    """One prepared training case: image ``(z, y, x, c)`` float32, labels ``(z, y, x)`` uint8."""

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    foreground: dict[int, np.ndarray] = field(default_factory=dict)  # label -> (n, 3) voxel indices (subsampled)

    def __post_init__(self):
        if not self.foreground:
            rng = np.random.default_rng(0)
            for label in np.unique(self.labels):
                if label == 0:
                    continue
                voxels = np.argwhere(self.labels == label)
                if len(voxels) > 10000:  # a sample of the voxels is enough to pick patch centres from
                    voxels = voxels[rng.choice(len(voxels), 10000, replace=False)]
                self.foreground[int(label)] = voxels

    @property
    def background(self) -> float:
        """Padding value: the lowest (normalised) intensity of the case."""
        return float(self.image.min())


def patch_shape(config: SegmentationConfig) -> tuple[int, ...]:
    """Model input patch in numpy order: ``(z, y, x)`` for 3D, ``(1, y, x)`` for 2D (one slice)."""
    patch = config.preprocessing.patch_size
    return (patch[2], patch[1], patch[0]) if config.dims == 3 else (1, patch[1], patch[0])


def random_transform(rng: np.random.Generator, settings: AugmentationSettings, dims: int) -> np.ndarray | None:
    """A random rotation × isotropic scale matrix in numpy axis order, or ``None`` (identity) this time."""
    rotate = settings.rotation_degrees > 0 and rng.random() < settings.probability
    scale = settings.scale_range != (1.0, 1.0) and rng.random() < settings.probability
    if not (rotate or scale):
        return None
    matrix = np.eye(3)
    if rotate:
        limit = math.radians(settings.rotation_degrees)
        planes = [(1, 2)] if dims == 2 else [(0, 1), (0, 2), (1, 2)]
        for a, b in planes:
            angle = rng.uniform(-limit, limit)
            r = np.eye(3)
            r[a, a] = r[b, b] = math.cos(angle)
            r[a, b], r[b, a] = -math.sin(angle), math.sin(angle)
            matrix = matrix @ r
    if scale:
        factor = rng.uniform(*settings.scale_range)
        scaling = np.diag([1.0 if dims == 2 else factor, factor, factor])
        matrix = matrix @ scaling
    return matrix


def extract_patch(case: TrainingCase, centre: np.ndarray, shape: tuple[int, ...],
                  matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut a ``shape`` patch centred on ``centre`` (voxel indices, numpy order), padding outside the case.

    With ``matrix`` the patch grid is mapped through it around the centre (rotation/scale) and interpolated.
    """
    shape_arr = np.array(shape)
    start = np.round(centre - (shape_arr - 1) / 2.0).astype(int)
    if matrix is None:
        return _crop(case.image, start, shape, case.background), _crop(case.labels, start, shape, 0)
    centre = start + (shape_arr - 1) / 2.0  # so an identity matrix samples voxel centres exactly
    offsets = np.stack(np.meshgrid(*[np.arange(s) - (s - 1) / 2.0 for s in shape], indexing="ij"), axis=0)
    coords = np.tensordot(matrix, offsets, axes=1) + centre.reshape(3, *([1] * 3))
    image = np.stack([ndimage.map_coordinates(case.image[..., c], coords, order=1, mode="constant",
                                              cval=case.background)
                      for c in range(case.image.shape[-1])], axis=-1)
    labels = ndimage.map_coordinates(case.labels, coords, order=0, mode="constant", cval=0)
    return image.astype(np.float32), labels.astype(np.uint8)


def _crop(array: np.ndarray, start: np.ndarray, shape: tuple[int, ...], fill: float) -> np.ndarray:
    out = np.full((*shape, *array.shape[3:]), fill, dtype=array.dtype)
    src, dst = [], []
    for axis, (s, n) in enumerate(zip(start, shape)):
        lo, hi = max(s, 0), min(s + n, array.shape[axis])
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = array[tuple(src)]
    return out


def augment_intensity(image: np.ndarray, rng: np.random.Generator, settings: AugmentationSettings) -> np.ndarray:
    """Random intensity scale, shift and Gaussian noise (normalised units)."""
    if settings.intensity_scale > 0 and rng.random() < settings.probability:
        image = image * rng.uniform(1 - settings.intensity_scale, 1 + settings.intensity_scale)
    if settings.intensity_shift > 0 and rng.random() < settings.probability:
        image = image + rng.uniform(-settings.intensity_shift, settings.intensity_shift)
    if settings.noise_sd > 0 and rng.random() < settings.probability:
        image = image + rng.normal(0, settings.noise_sd, image.shape).astype(np.float32)
    return image.astype(np.float32, copy=False)


class SegmentationDataset(keras.utils.PyDataset):
    """Batches of ``(image, labels)`` patches for ``model.fit``.

    Training mode draws ``samples_per_epoch`` random patches per epoch (a share ``foreground_fraction`` centred on a
    random voxel of a random foreground label), augmented. Validation mode serves fixed, unaugmented patches: one
    per case centred on its foreground (3D), or every foreground slice plus as many background slices (2D).
    Labels come as ``(batch, *spatial, 1)`` int32; with ``outputs > 1`` (deep supervision) they are repeated.
    """

    def __init__(self, cases: list[TrainingCase], config: SegmentationConfig, training: bool = True, seed: int = 0,
                 outputs: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.cases = cases
        self.config = config
        self.training = training
        self.seed = seed
        self.epoch = 0
        self.outputs = outputs
        self.shape = patch_shape(config)
        settings = config.training
        self.batch_size = settings.batch_size
        self.samples = settings.samples_per_epoch or len(cases)
        self.fixed = None if training else self._fixed_samples()

    def __len__(self) -> int:
        count = self.samples if self.training else len(self.fixed)
        return max(1, math.ceil(count / self.batch_size))

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, index: int):
        if self.training:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            patches = [self._random_sample(rng) for _ in range(self.batch_size)]
        else:
            chosen = self.fixed[index * self.batch_size:(index + 1) * self.batch_size]
            patches = [extract_patch(self.cases[c], centre, self.shape) for c, centre in chosen]
        return self._batch(patches)

    def _batch(self, patches):
        images = np.stack([p[0] for p in patches])
        labels = np.stack([p[1] for p in patches]).astype(np.int32)[..., None]
        if self.config.dims == 2:  # (b, 1, y, x, ...) -> (b, y, x, ...)
            images, labels = images[:, 0], labels[:, 0]
        if self.outputs > 1:
            return images, tuple([labels] * self.outputs)
        return images, labels

    def _random_sample(self, rng: np.random.Generator):
        case = self.cases[rng.integers(len(self.cases))]
        centre = self._centre(case, rng)
        augmentation = self.config.training.augmentation
        matrix = random_transform(rng, augmentation, self.config.dims)
        image, labels = extract_patch(case, centre, self.shape, matrix)
        for axis in augmentation.flip_axes:
            if rng.random() < 0.5:
                image = np.flip(image, AXIS_INDEX[axis])
                labels = np.flip(labels, AXIS_INDEX[axis])
        return augment_intensity(np.ascontiguousarray(image), rng, augmentation), np.ascontiguousarray(labels)

    def _centre_range(self, case: TrainingCase) -> tuple[np.ndarray, np.ndarray]:
        """Patch centres that keep the patch inside the case (the case's middle where it is smaller)."""
        size = np.array(case.labels.shape)
        half = (np.array(self.shape) - 1) / 2.0
        return np.minimum(half, (size - 1) / 2.0), np.maximum(size - 1 - half, (size - 1) / 2.0)

    def _centre(self, case: TrainingCase, rng: np.random.Generator) -> np.ndarray:
        low, high = self._centre_range(case)
        if case.foreground and rng.random() < self.config.training.foreground_fraction:
            label = list(case.foreground)[rng.integers(len(case.foreground))]
            voxels = case.foreground[label]
            point = voxels[rng.integers(len(voxels))].astype(float)
            # Jitter so the foreground voxel is anywhere inside the patch, not always in its middle.
            half = (np.array(self.shape) - 1) / 2.0
            centre = point + rng.uniform(-half, half)
        else:
            centre = rng.uniform(low, high)
        if self.config.dims == 2:
            centre[0] = np.round(centre[0])
        return np.clip(centre, low, high)

    def _fixed_samples(self) -> list[tuple[int, np.ndarray]]:
        rng = np.random.default_rng(self.seed)
        samples = []
        for c, case in enumerate(self.cases):
            size = np.array(case.labels.shape)
            if self.config.dims == 3:
                voxels = np.concatenate(list(case.foreground.values())) if case.foreground else None
                centre = voxels.mean(axis=0) if voxels is not None else (size - 1) / 2.0
                samples.append((c, np.round(np.clip(centre, *self._centre_range(case)))))
                continue
            has_fg = np.flatnonzero(case.labels.reshape(len(case.labels), -1).any(axis=1))
            empty = np.setdiff1d(np.arange(len(case.labels)), has_fg)
            picked = list(has_fg) + list(rng.choice(empty, min(len(empty), max(1, len(has_fg))), replace=False))
            for z in sorted(picked):
                samples.append((c, np.array([z, (size[1] - 1) / 2.0, (size[2] - 1) / 2.0])))
        return samples
