"""The cohort table contract: manifests, PyRadiomics batch files, path resolution and row validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from radiobio import read_cohort
from radiobio.errors import CohortError, RadiobioError


def make_files(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def test_csv_relative_paths_resolve_against_manifest_folder(tmp_path: Path) -> None:
    make_files(tmp_path, ["img/a.nii.gz", "msk/a.nii.gz", "img/b.nii.gz"])
    manifest = tmp_path / "cohort.csv"
    pd.DataFrame({"case_id": ["a", "b"], "image": ["img/a.nii.gz", "img/b.nii.gz"],
                  "mask_tumour": ["msk/a.nii.gz", None], "height_m": [1.7, 1.8], "sex": ["F", "M"]}
                 ).to_csv(manifest, index=False)
    cohort = read_cohort(manifest)
    assert cohort["image"].tolist() == [str(tmp_path / "img/a.nii.gz"), str(tmp_path / "img/b.nii.gz")]
    assert cohort.loc[0, "mask_tumour"] == str(tmp_path / "msk/a.nii.gz")
    assert cohort.loc[1, "mask_tumour"] is None
    assert cohort["height_m"].tolist() == [1.7, 1.8]
    assert cohort["sex"].tolist() == ["F", "M"]


def test_parquet_manifest_and_numeric_case_ids_become_strings(tmp_path: Path) -> None:
    make_files(tmp_path, ["1.nrrd", "2.nrrd"])
    manifest = tmp_path / "cohort.parquet"
    pd.DataFrame({"case_id": [1, 2], "image": ["1.nrrd", "2.nrrd"]}).to_parquet(manifest)
    cohort = read_cohort(manifest)
    assert cohort["case_id"].tolist() == ["1", "2"]
    assert Path(cohort.loc[1, "image"]).is_absolute()


def test_pyradiomics_batch_csv_is_read(tmp_path: Path) -> None:
    make_files(tmp_path, ["i.nrrd", "m.nrrd"])
    batch = tmp_path / "batch.csv"
    pd.DataFrame({"ID": ["p1", "p1"], "Image": ["i.nrrd", "i.nrrd"], "Mask": ["m.nrrd", "m.nrrd"],
                  "Label": [1, 2]}).to_csv(batch, index=False)
    cohort = read_cohort(batch)
    assert list(cohort.columns[:4]) == ["case_id", "image", "mask", "label"]
    assert cohort["label"].tolist() == [1, 2]


def test_raise_lists_every_bad_row_at_once(tmp_path: Path) -> None:
    make_files(tmp_path, ["ok.nii"])
    frame = pd.DataFrame({"case_id": ["ok", "dup", "dup", "gone"],
                          "image": ["ok.nii", "ok.nii", "ok.nii", "missing.nii"]})
    with pytest.raises(CohortError) as info:
        read_cohort(frame, base_dir=tmp_path)
    message = str(info.value)
    assert "3 bad row(s)" in message
    assert "duplicate case_id 'dup'" in message
    assert "missing.nii" in message and "gone" in message
    assert isinstance(info.value, RadiobioError)


def test_mark_keeps_good_rows_and_explains_bad_ones(tmp_path: Path) -> None:
    make_files(tmp_path, ["ok.nii"])
    frame = pd.DataFrame({"case_id": ["ok", "gone"], "image": ["ok.nii", "missing.nii"], "age": [50, 60]})
    cohort = read_cohort(frame, errors="mark", base_dir=tmp_path)
    assert cohort["error"].tolist()[0] == ""
    assert "image file not found" in cohort["error"].tolist()[1]
    assert cohort["age"].tolist() == [50, 60]


def test_missing_required_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(CohortError, match="case_id"):
        read_cohort(pd.DataFrame({"image": ["a"]}))
    with pytest.raises(CohortError, match="'image'"):
        read_cohort(pd.DataFrame({"case_id": ["a"]}))
    with pytest.raises(CohortError, match="not found"):
        read_cohort(tmp_path / "nope.csv")


def test_mask_only_cohort_when_images_are_not_required(tmp_path: Path) -> None:
    make_files(tmp_path, ["ed.nii", "es.nii"])
    frame = pd.DataFrame({"case_id": ["a"], "mask_ed": ["ed.nii"], "mask_es": ["es.nii"]})
    with pytest.raises(CohortError, match="'image'"):
        read_cohort(frame, base_dir=tmp_path)
    cohort = read_cohort(frame, base_dir=tmp_path, require_image=False)
    assert cohort.loc[0, "mask_es"] == str(tmp_path / "es.nii")
