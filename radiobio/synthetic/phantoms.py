"""Deterministic 3D phantoms with known truth: spheres, ellipsoids and multi-label scenes on physical grids.

The exact voxelised volume of every label is returned alongside the analytic one, so tests can compare
measurements with a truth computed independently of the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.imaging import write_image


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in physical space: centre (x, y, z) mm, semi-axes (a, b, c) mm, label, mean intensity."""

    center_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    label: int = 1
    intensity: float = 100.0

    @property
    def volume_mm3(self) -> float:
        """Analytic volume 4/3·π·a·b·c in mm³."""
        a, b, c = self.radii_mm
        return 4.0 / 3.0 * np.pi * a * b * c


@dataclass
class Phantom:
    """An image, its label map, and the truth about each label."""

    image: sitk.Image
    mask: sitk.Image
    shapes: list[Ellipsoid] = field(default_factory=list)

    def voxel_count(self, label: int) -> int:
        """Number of voxels carrying ``label`` in the mask."""
        return int(np.count_nonzero(sitk.GetArrayViewFromImage(self.mask) == label))

    def voxel_volume_mm3(self, label: int) -> float:
        """Volume of ``label`` counted from its voxels (mm³): the exact truth of the voxelised phantom."""
        return self.voxel_count(label) * float(np.prod(self.mask.GetSpacing()))


def physical_grid(size: tuple[int, int, int], spacing: tuple[float, float, float],
                  origin: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return z, y, x arrays (numpy order) of voxel-centre coordinates in mm for an axis-aligned grid."""
    axes = [origin[d] + spacing[d] * np.arange(size[d]) for d in range(3)]
    x, y, z = axes
    return z[:, None, None], y[None, :, None], x[None, None, :]


def ellipsoid_phantom(shapes: list[Ellipsoid], size: tuple[int, int, int] = (64, 64, 48),
                      spacing: tuple[float, float, float] = (1.0, 1.0, 1.5),
                      origin: tuple[float, float, float] = (0.0, 0.0, 0.0), background: float = 0.0,
                      noise_sd: float = 10.0, texture_sd: float = 0.0, seed: int = 0) -> Phantom:
    """Build an image and label map from ellipsoids (later shapes overwrite earlier ones).

    Sizes are in voxels (x, y, z), spacing and origin in mm. Intensities: ``background`` plus each shape's
    ``intensity`` inside it, plus Gaussian noise (``noise_sd``) and optional smooth texture (``texture_sd``).
    """
    rng = np.random.default_rng(seed)
    z, y, x = physical_grid(size, spacing, origin)
    shape = (size[2], size[1], size[0])
    labels = np.zeros(shape, dtype=np.uint8)
    values = np.full(shape, background, dtype=np.float32)
    for s in shapes:
        cx, cy, cz = s.center_mm
        a, b, c = s.radii_mm
        inside = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2 <= 1.0
        labels[inside] = s.label
        values[inside] = s.intensity
    if texture_sd > 0:
        texture = sitk.GetImageFromArray(rng.normal(0, 1, shape).astype(np.float32))
        texture = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(texture, 1.5))
        values += (texture / (texture.std() or 1.0) * texture_sd).astype(np.float32) * (labels > 0)
    values += rng.normal(0, noise_sd, shape).astype(np.float32) if noise_sd > 0 else 0
    image = sitk.GetImageFromArray(values)
    mask = sitk.GetImageFromArray(labels)
    for im in (image, mask):
        im.SetSpacing(spacing)
        im.SetOrigin(origin)
    return Phantom(image, mask, list(shapes))


def sphere_phantom(radius_mm: float = 10.0, size: tuple[int, int, int] = (48, 48, 40),
                   spacing: tuple[float, float, float] = (1.0, 1.0, 1.0), intensity: float = 100.0,
                   seed: int = 0) -> Phantom:
    """A single sphere (label 1) of ``radius_mm`` centred in the grid."""
    center = tuple(size[d] * spacing[d] / 2.0 for d in range(3))
    return ellipsoid_phantom([Ellipsoid(center, (radius_mm,) * 3, 1, intensity)], size, spacing, seed=seed)


def multi_organ_phantom(seed: int = 0, size: tuple[int, int, int] = (96, 96, 64),
                        spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> Phantom:
    """Five labelled ellipsoid 'organs' with distinct intensities and textures in a body ellipsoid (CT-like HU)."""
    rng = np.random.default_rng(seed)
    extent = [size[d] * spacing[d] for d in range(3)]
    cx, cy, cz = (e / 2 for e in extent)
    jitter = rng.uniform(-2.0, 2.0, size=(5, 3))
    organs = [
        Ellipsoid((cx - 18 + jitter[0, 0], cy - 8 + jitter[0, 1], cz + jitter[0, 2]), (14, 11, 22), 1, 60),
        Ellipsoid((cx + 20 + jitter[1, 0], cy - 10 + jitter[1, 1], cz + 6 + jitter[1, 2]), (8, 8, 16), 2, 45),
        Ellipsoid((cx - 20 + jitter[2, 0], cy + 18 + jitter[2, 1], cz - 8 + jitter[2, 2]), (6, 5, 12), 3, 30),
        Ellipsoid((cx + 18 + jitter[3, 0], cy + 18 + jitter[3, 1], cz - 8 + jitter[3, 2]), (6, 5, 12), 4, 30),
        Ellipsoid((cx + jitter[4, 0], cy + 22 + jitter[4, 1], cz + jitter[4, 2]), (7, 7, 26), 5, 400),
    ]
    body = Ellipsoid((cx, cy, cz), (extent[0] / 2 - 3, extent[1] / 2 - 8, extent[2]), 0, 0.0)
    phantom = ellipsoid_phantom(organs, size, spacing, background=-1000.0, noise_sd=15.0, texture_sd=20.0,
                                seed=seed)
    array = sitk.GetArrayFromImage(phantom.image)
    z, y, x = physical_grid(size, spacing, (0.0, 0.0, 0.0))
    a, b, c = body.radii_mm
    in_body = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0
    in_body = np.broadcast_to(in_body, array.shape)
    fat = (sitk.GetArrayViewFromImage(phantom.mask) == 0) & in_body
    array[fat] += 1000.0 - 90.0  # soft-tissue background inside the body, air outside
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(phantom.image)
    return Phantom(image, phantom.mask, organs)


def write_cohort(phantoms: list[Phantom], folder: str | Path, prefix: str = "case",
                 extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write phantoms as NIfTI files and a ``cohort.csv`` manifest; return the cohort table (absolute paths)."""
    folder = Path(folder)
    rows = []
    for i, phantom in enumerate(phantoms):
        case_id = f"{prefix}{i:03d}"
        image_path = write_image(phantom.image, folder / "images" / f"{case_id}.nii.gz")
        mask_path = write_image(phantom.mask, folder / "masks" / f"{case_id}.nii.gz")
        rows.append({"case_id": case_id, "image": str(image_path), "mask": str(mask_path)})
    cohort = pd.DataFrame(rows)
    if extra is not None:
        cohort = pd.concat([cohort, extra.reset_index(drop=True)], axis=1)
    relative = cohort.copy()
    for column in ("image", "mask"):
        relative[column] = [str(Path(p).relative_to(folder)) for p in cohort[column]]
    relative.to_csv(folder / "cohort.csv", index=False)
    return cohort
