"""``segment`` writes a results folder the next stage reads unchanged, records which model made each mask, and never
mixes masks of two models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio import read_cohort
from radiobio.batch import case_file_name
from radiobio.errors import ModelBundleError
from radiobio.imaging import write_image
from radiobio.segmentation import evaluate, segment
from radiobio.segmentation.inference import mask_model
from radiobio.tables import read_table

from .helpers import sphere_cases


def _cohort(tmp_path: Path, ids: list[str]) -> pd.DataFrame:
    cases = sphere_cases(len(ids))
    return pd.DataFrame({"case_id": ids,
                         "image": [str(write_image(c.image, tmp_path / f"img{i}.nii.gz")) for i, c in enumerate(cases)],
                         "mask_truth": [str(write_image(c.mask, tmp_path / f"ref{i}.nii.gz"))
                                        for i, c in enumerate(cases)],
                         "age": [61, 72][: len(ids)]})


def test_results_folder_reads_back_from_another_working_directory(tiny_bundle: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cohort = _cohort(tmp_path, ["P1 a", "P1_a"])  # ids that sanitise to the same text
    monkeypatch.chdir(tmp_path)
    result = segment(cohort, model=tiny_bundle, out_dir="results", progress=False)
    names = [case_file_name(c) for c in cohort["case_id"]]
    assert len(set(names)) == 2  # collision-free file names
    written = read_table(tmp_path / "results" / "cohort.csv")
    assert written["mask"].tolist() == [f"masks/{n}.nii.gz" for n in names]  # relative to the folder
    assert written.attrs["provenance"]["model"]["digest"] == mask_model(result.loc[0, "mask"])
    assert (tmp_path / "results" / "models" / "spheres" / "model_card.json").is_file()
    # the next stage reads the manifest from anywhere, and the clinical columns pass through
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = read_cohort(Path("..") / "results" / "cohort.csv")
    assert [Path(p).is_file() for p in again["mask"]] == [True, True]
    scores = evaluate(Path("..") / "results" / "cohort.csv", pred_column="mask", ref_column="mask_truth")
    assert (scores["error"] == "").all() and scores["age"].notna().all()
    truth = sitk.GetArrayFromImage(sitk.ReadImage(cohort.loc[0, "mask_truth"]))
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(again.loc[0, "mask"]))
    assert np.count_nonzero(predicted) > 0.5 * np.count_nonzero(truth)


def test_masks_of_another_model_are_refused_and_same_model_masks_kept(tiny_bundle: Path, tmp_path: Path) -> None:
    cohort = _cohort(tmp_path, ["a", "b"])
    first = segment(cohort.iloc[:1], model=tiny_bundle, out_dir=tmp_path / "out", progress=False)
    stamp = os.stat(first.loc[0, "mask"]).st_mtime_ns
    second = segment(cohort, model=tiny_bundle, out_dir=tmp_path / "out", progress=False)
    assert second.attrs["provenance"]["reused_masks"] == 1
    assert os.stat(second.loc[0, "mask"]).st_mtime_ns == stamp
    other = tmp_path / "other-model"
    shutil.copytree(tiny_bundle, other)
    card = json.loads((other / "model_card.json").read_text())
    card["name"] = "other-spheres"
    (other / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelBundleError, match=r"2 by spheres \(.*overwrite"):
        segment(cohort, model=other, out_dir=tmp_path / "out", progress=False)
    assert os.stat(second.loc[0, "mask"]).st_mtime_ns == stamp  # nothing was touched
    replaced = segment(cohort, model=other, out_dir=tmp_path / "out", overwrite=True, progress=False)
    assert replaced.attrs["provenance"]["model"]["name"] == "other-spheres"
    assert {mask_model(p) for p in replaced["mask"]} == {replaced.attrs["provenance"]["model"]["digest"]}


def test_upstream_errors_reach_the_next_stage(tiny_bundle: Path, tmp_path: Path) -> None:
    cohort = _cohort(tmp_path, ["a", "b"])
    cohort.loc[1, "image"] = str(tmp_path / "nowhere")
    segment(cohort, model=tiny_bundle, out_dir=tmp_path / "out", progress=False)
    scores = evaluate(tmp_path / "out" / "cohort.csv", pred_column="mask", ref_column="mask_truth")
    failed = scores.loc[scores["case_id"] == "b", "error"].iloc[0]
    assert "image file not found" in failed  # the root cause, not "no mask"
