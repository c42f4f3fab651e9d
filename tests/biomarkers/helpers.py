"""Helpers of the biomarker tests: images from arrays, files written to disk, truth counted with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def to_image(array: np.ndarray, spacing: tuple[float, ...], origin: tuple[float, ...] | None = None) -> sitk.Image:
    """A SimpleITK image of ``array`` (numpy order) with ``spacing`` (x, y[, z]) in mm."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    if origin is not None:
        image.SetOrigin(origin)
    return image


def save(image: sitk.Image, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return str(path)


def array(path: str | Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def voxel_mm3(path: str | Path) -> float:
    return float(np.prod(sitk.ReadImage(str(path)).GetSpacing()))
