"""Atomic outputs: images and tables written through a temporary file get the usual permissions (0644 under
umask 022) and leave no temporary file behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd

from radiobio.imaging import write_image
from radiobio.synthetic import sphere_phantom
from radiobio.tables import write_table


def test_atomic_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        image = write_image(sphere_phantom(size=(8, 8, 8)).image, tmp_path / "m.nii.gz")
        table = write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv", provenance={"p": 1})
    finally:
        os.umask(umask)
    for path in (image, table, tmp_path / "t.csv.provenance.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nii.gz", "t.csv", "t.csv.provenance.json"]
