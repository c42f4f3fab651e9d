"""``radiobio.tables``: one reader and writer, one rule per suffix, ids kept as text, status columns read back as "",
path columns rebased onto the file's folder, provenance restored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from radiobio.errors import CohortError, SettingsError
from radiobio.tables import check_table_suffix, provenance_sidecar, read_table, rebase_paths, write_table


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_round_trip_keeps_ids_status_and_provenance(tmp_path: Path, suffix: str) -> None:
    table = pd.DataFrame({"case_id": ["003", "NA", "null", "N/A"], "value": [1.5, 2.0, None, 4.0],
                          "note": ["", "a note", "", ""], "error": ["", "", "MaskError: empty", ""]})
    table.attrs["provenance"] = {"stage": "extract", "params_hash": "abc"}
    path = write_table(table, tmp_path / f"t{suffix}")
    back = read_table(path)
    assert back["case_id"].tolist() == ["003", "NA", "null", "N/A"]
    assert back["error"].tolist() == ["", "", "MaskError: empty", ""]  # the README's failure filter works
    assert (back["error"] != "").sum() == 1 and back["note"].tolist() == ["", "a note", "", ""]
    assert back.attrs["provenance"] == {"stage": "extract", "params_hash": "abc"}
    assert pd.isna(back["value"].iloc[2]) and back["value"].iloc[3] == 4.0


def test_txt_is_tab_separated_when_its_header_has_a_tab(tmp_path: Path) -> None:
    (tmp_path / "tabs.txt").write_text("case_id\tx\nA\t1\n")
    (tmp_path / "commas.txt").write_text("case_id,x\nA,1\n")
    for name in ("tabs.txt", "commas.txt"):
        frame = read_table(tmp_path / name)
        assert frame.columns.tolist() == ["case_id", "x"] and frame["x"].iloc[0] == 1


def test_paths_are_rebased_onto_the_files_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "elsewhere" / "img.nii.gz"
    table = pd.DataFrame({"case_id": ["a"], "image": [str(outside)], "mask": ["results/masks/a.nii.gz"],
                          "mask_x": [None], "note_path": ["results/masks/a.nii.gz"]})
    write_table(table, "results/cohort.csv")
    written = pd.read_csv(tmp_path / "results" / "cohort.csv")
    assert written["mask"].iloc[0] == "masks/a.nii.gz"  # below the folder: relative to it
    assert written["image"].iloc[0] == str(outside)  # elsewhere: absolute
    assert written["note_path"].iloc[0] == "results/masks/a.nii.gz"  # not a path column: untouched
    based = rebase_paths(pd.DataFrame({"image": ["img.nii.gz"]}), tmp_path / "out", base_dir=tmp_path / "data")
    assert based["image"].iloc[0] == str(tmp_path / "data" / "img.nii.gz")


def test_bad_suffixes_and_unreadable_tables_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"\.xlsx"):
        check_table_suffix(tmp_path / "features.xlsx")
    with pytest.raises(SettingsError):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "x.json")
    with pytest.raises(CohortError, match="not found"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "semi.csv").write_text("case_id;image\na;b\n")
    with pytest.raises(CohortError, match="semicolons"):
        read_table(tmp_path / "semi.csv")
    pq.write_table(pa.table({"case_id": ["a"], "paths": [["x", "y"]]}), tmp_path / "nested.parquet")
    with pytest.raises(CohortError, match="lists or nested"):
        read_table(tmp_path / "nested.parquet")


def test_a_stale_sidecar_is_removed_when_a_table_without_provenance_replaces_it(tmp_path: Path) -> None:
    table = pd.DataFrame({"a": [1]})
    table.attrs["provenance"] = {"stage": "evaluate"}
    path = write_table(table, tmp_path / "t.csv")
    assert json.loads(provenance_sidecar(path).read_text()) == {"stage": "evaluate"}
    write_table(pd.DataFrame({"a": [2]}), path)
    assert not provenance_sidecar(path).exists() and read_table(path).attrs == {}


def test_jsonable_makes_provenance_and_cards_plain_json() -> None:
    import dataclasses

    import numpy as np

    from radiobio.provenance import jsonable

    @dataclasses.dataclass
    class Settings:
        labels: dict
        spacing: tuple
        cutoffs: pd.DataFrame
        where: Path

    value = Settings({1: "muscle"}, (np.float32(0.5), float("nan")), pd.DataFrame({"t": [1.5]}), Path("/x"))
    plain = jsonable(value)
    assert plain == {"labels": {"1": "muscle"}, "spacing": [0.5, None], "cutoffs": [{"t": 1.5}], "where": "/x"}
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
