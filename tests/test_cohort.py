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


# --------------------------------------------------------------------------------------------------------------
# Manifests checked at the door


def test_parquet_with_list_columns_or_broken_pandas_metadata_is_a_cohort_error(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    make_files(tmp_path, ["a.nii"])
    nested = tmp_path / "nested.parquet"
    pd.DataFrame({"case_id": ["a"], "image": ["a.nii"], "mask_labels": [[1, 2]]}).to_parquet(nested)
    with pytest.raises(CohortError, match=r"nested\.parquet.*\['mask_labels'\].*lists or nested.*flatten"):
        read_cohort(nested)
    table = pa.Table.from_pandas(pd.DataFrame({"case_id": ["a"], "image": ["a.nii"]}))
    for name, metadata in {"garbled": b"{not json",
                           "lost_index": b'{"columns": [], "index_columns": ["gone"], "column_indexes": []}'}.items():
        broken = tmp_path / f"{name}.parquet"
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"pandas": metadata}), broken)
        with pytest.raises(CohortError, match=rf"{name}\.parquet: the pandas metadata .* is broken"):
            read_cohort(broken)
    not_parquet = tmp_path / "text.parquet"
    not_parquet.write_text("case_id,image\na,a.nii\n")
    with pytest.raises(CohortError, match="cannot read this Parquet"):
        read_cohort(not_parquet)


def test_symlink_loops_are_cohort_errors(tmp_path: Path) -> None:
    import os

    make_files(tmp_path, ["ok.nii"])
    os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
    os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
    frame = pd.DataFrame({"case_id": ["ok", "looped", "inside"],
                          "image": ["ok.nii", "loop_a", "loop_a/scan.nii.gz"]})
    with pytest.raises(CohortError) as info:
        read_cohort(frame, base_dir=tmp_path)
    message = str(info.value)
    assert "2 bad row(s)" in message
    assert "row 1 (looped): image path is a symlink loop" in message
    assert "row 2 (inside): image path is a symlink loop" in message
    marked = read_cohort(frame, base_dir=tmp_path, errors="mark")
    assert marked["error"].tolist()[0] == "" and "symlink loop" in marked["error"].tolist()[1]
    with pytest.raises(CohortError, match="manifest path is a symlink loop"):
        read_cohort(tmp_path / "loop_a")
    os.symlink(tmp_path / "gone.nii", tmp_path / "dangling.nii")
    with pytest.raises(CohortError, match="broken symbolic link to .*gone.nii"):
        read_cohort(pd.DataFrame({"case_id": ["d"], "image": ["dangling.nii"]}), base_dir=tmp_path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".tsv"])
def test_na_like_case_ids_stay_identifiers(tmp_path: Path, suffix: str) -> None:
    from radiobio.tables import write_table

    ids = ["NA", "None", "null", "N/A", "nan", "003"]
    make_files(tmp_path, [f"{i}.nii" for i in range(len(ids))])
    manifest = write_table(pd.DataFrame({"case_id": ids, "image": [str(tmp_path / f"{i}.nii") for i in range(6)]}),
                           tmp_path / f"cohort{suffix}")
    cohort = read_cohort(manifest)
    assert cohort["case_id"].tolist() == ids
    twice = pd.DataFrame({"case_id": ["NA", "NA"], "image": ["0.nii", "1.nii"]})
    twice.to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(CohortError, match="duplicate case_id 'NA'"):
        read_cohort(tmp_path / "twice.csv")


def test_windows_paths(tmp_path: Path) -> None:
    make_files(tmp_path, ["images/hippocampus_003.nii.gz", "labels/hippocampus_003.nii.gz"])
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("case_id,image,mask\n"
                        "003,images\\hippocampus_003.nii.gz,labels\\hippocampus_003.nii.gz\n"
                        "004,C:\\data\\hippo\\images\\hippocampus_004.nii.gz,\n"
                        "005,\\\\server\\share\\hippocampus_005.nii.gz,\n")
    cohort = read_cohort(manifest, errors="mark")
    assert cohort.loc[0, "image"] == str(tmp_path / "images" / "hippocampus_003.nii.gz")
    assert cohort.loc[0, "mask"] == str(tmp_path / "labels" / "hippocampus_003.nii.gz")
    assert cohort.loc[0, "error"] == ""
    assert "image file not found: C:\\data\\hippo\\images\\hippocampus_004.nii.gz: looks like a Windows path" in \
        cohort.loc[1, "error"]
    assert "looks like a Windows path" in cohort.loc[2, "error"]
    with pytest.raises(CohortError, match=r"row 1 \(004\).*looks like a Windows path; give the path as this"):
        read_cohort(manifest)


def test_folder_or_semicolon_file_given_as_manifest(tmp_path: Path) -> None:
    make_files(tmp_path, ["results/a.nii"])
    pd.DataFrame({"case_id": ["a"], "image": ["a.nii"]}).to_csv(tmp_path / "results" / "cohort.csv", index=False)
    with pytest.raises(CohortError, match=r"results is a folder, not a cohort manifest; it holds cohort\.csv: give"):
        read_cohort(tmp_path / "results")
    (tmp_path / "excel.csv").write_text("case_id;image\na;results/a.nii\n")
    with pytest.raises(CohortError, match="separated by semicolons.*commas"):
        read_cohort(tmp_path / "excel.csv")


def test_series_uid_column_is_text_and_empty_cells_are_none(tmp_path: Path) -> None:
    make_files(tmp_path, ["dicom/1.dcm", "b.nii"])
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("case_id,image,series_uid\na,dicom,1.2.826.0.1.3680043.8.498.1 \nb,b.nii,\n")
    cohort = read_cohort(manifest)
    assert cohort["series_uid"].tolist() == ["1.2.826.0.1.3680043.8.498.1", None]


def test_options_after_the_source_are_keyword_only(tmp_path: Path) -> None:
    frame = pd.DataFrame({"case_id": ["a"], "image": ["a.nii"]})
    with pytest.raises(TypeError):
        read_cohort(frame, "mark")  # type: ignore[misc]
    with pytest.raises(ValueError, match="errors must be"):
        read_cohort(frame, errors="ignore")  # type: ignore[arg-type]
