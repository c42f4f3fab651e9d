"""Helpers shared by the segmentation tests."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from radiobio.synthetic import Ellipsoid, ellipsoid_phantom

REPO = Path(__file__).resolve().parents[2]
HIPPOCAMPUS_BUNDLE = REPO / "models" / "hippocampus-3d"

#: A 3D U-Net small enough to train in seconds on 2 cores; resampling (1.5 → 2 mm) and a sliding window
#: (24 × 24 × 18 voxels after resampling, 16³ patches) are both exercised.
TINY_CONFIG = {
    "labels": {1: "sphere"},
    "model": {"architecture": "unet3d", "depth": 2, "base_filters": 8, "normalization": "instance"},
    "preprocessing": {"target_spacing": [2.0, 2.0, 2.0], "patch_size": [16, 16, 16],
                      "intensity": {"mode": "zscore"}},
    "training": {"epochs": 10, "batch_size": 4, "samples_per_epoch": 32, "learning_rate": 0.01,
                 "validation_fraction": 0.25, "seed": 0, "patience": 10,
                 "augmentation": {"flip_axes": ["x", "y", "z"], "rotation_degrees": 10}},
    "inference": {"batch_size": 4, "tta_flips": ["x"], "postprocessing": {"largest_component": True}},
}


def tiny_config() -> dict:
    """A fresh copy of :data:`TINY_CONFIG` (tests may change it)."""
    return copy.deepcopy(TINY_CONFIG)


def sphere_cases(count: int, seed: int = 0, size=(32, 32, 24), spacing=(1.5, 1.5, 1.5)):
    """Phantoms with one sphere each (label 1) of random radius and position."""
    rng = np.random.default_rng(seed)
    phantoms = []
    extent = np.array(size) * np.array(spacing)
    for i in range(count):
        radius = float(rng.uniform(7, 11))
        centre = tuple(float(c) for c in rng.uniform(radius + 2, extent - radius - 2))
        phantoms.append(ellipsoid_phantom([Ellipsoid(centre, (radius,) * 3, 1, 100.0)], size, spacing,
                                          noise_sd=15.0, seed=seed * 100 + i))
    return phantoms
