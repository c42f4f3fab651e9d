"""Small segmented results folders for the review-page tests: synthetic CT volumes whose every slice differs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

#: Case ids of :func:`write_review_results` (one with leading zeros, one with a space), and their qc_score.
CASES = ("003", "p2", "p 3")
SCORES = (0.2, 0.9, math.nan)
FLAGS = ("", "small_mask, holes", "")
#: Label names of the synthetic model.
LABELS = {1: "lesion", 2: "bone"}
#: Shape (z, y, x) and spacing (x, y, z in mm) of each volume.
SHAPE = (24, 40, 48)
SPACING = (1.0, 1.0, 2.0)


def ct_volume(seed: int) -> tuple[sitk.Image, sitk.Image]:
    """A CT-like volume (HU: air −1000, a body ellipse whose density rises slice by slice, a bone bar) and its
    label map (1 a sphere lesion, 2 the bone bar)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE)
    image = np.full(SHAPE, -1000.0)
    body = ((x - 24) / 20) ** 2 + ((y - 20) / 16) ** 2 <= 1
    image[body] = 0.0 + 8.0 * z[body]  # every axial slice differs
    lesion = (x - 20) ** 2 + (y - 18) ** 2 + (2 * (z - 12)) ** 2 <= 64
    image[lesion] = 150.0
    bone = body & (abs(y - 30) <= 2) & (abs(x - 24) <= 6)
    image[bone] = 900.0
    image += rng.normal(0, 5, SHAPE)
    labels = np.zeros(SHAPE, np.uint8)
    labels[lesion] = 1
    labels[bone] = 2
    volume = sitk.GetImageFromArray(image.astype(np.int16))
    volume.SetSpacing(SPACING)
    mask = sitk.GetImageFromArray(labels)
    mask.CopyInformation(volume)
    return volume, mask


def write_review_results(root: Path, *, scored: bool = True, provenance: bool = True) -> Path:
    """A results folder as ``radiobio segment -o`` writes it (``cohort.csv`` with segment provenance, mask paths
    relative to it, images outside it, ``masks/``), for :data:`CASES`; with ``qc_score`` / ``qc_flags`` columns
    when ``scored``."""
    from radiobio.tables import write_table

    results = root / "results"
    (results / "masks").mkdir(parents=True)
    (root / "images").mkdir()
    rows = []
    for i, case_id in enumerate(CASES):
        volume, mask = ct_volume(i)
        name = case_id.replace(" ", "_")
        sitk.WriteImage(volume, str(root / "images" / f"{name}.nii.gz"), True)
        sitk.WriteImage(mask, str(results / "masks" / f"{name}.nii.gz"), True)
        rows.append({"case_id": case_id, "image": str(root / "images" / f"{name}.nii.gz"),
                     "mask": str(results / "masks" / f"{name}.nii.gz"),
                     "age": 60 + i, "error": ""})
    cohort = pd.DataFrame(rows)
    if scored:
        cohort["qc_score"] = list(SCORES)
        cohort["qc_flags"] = list(FLAGS)
    meta = {"stage": "segment", "mask_column": "mask", "reused_masks": 0,
            "model": {"name": "synthetic-ct", "digest": "0" * 16, "labels": {str(k): v for k, v in LABELS.items()},
                      "intended_use": "tests"}, "radiobio": "0.1.0"} if provenance else None
    write_table(cohort, results / "cohort.csv", meta)
    return results
