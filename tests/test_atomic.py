"""Atomic outputs (``radiobio.atomic``): a reader never sees half a file, a failed write leaves the old file, and
images and tables get the usual permissions of the umask (0644 under 022), leaving no temporary file behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from radiobio.atomic import atomic_path, write_text_atomic
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


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = write_text_atomic("first", tmp_path / "out.txt")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_outputs_follow_the_umask_and_parents_are_made(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        path = write_text_atomic("x", tmp_path / "a" / "b" / "out.txt")
    finally:
        os.umask(previous)
    assert path.read_text() == "x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # not mkstemp's owner-only 0600


def test_the_temporary_keeps_the_suffix_writers_infer_formats_from(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "mask.nii.gz", suffix=".nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"data")
    assert (tmp_path / "mask.nii.gz").read_bytes() == b"data"
