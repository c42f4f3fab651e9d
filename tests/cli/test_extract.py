"""``radiobio extract`` from the command line: PyRadiomics batch CSVs unchanged, summary line and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from radiobio.features import read_feature_table
from radiobio.synthetic import sphere_phantom, write_cohort

PARAMS = {"imageType": {"Original": {}}, "featureClass": {"shape": None, "firstorder": None}, "setting": {}}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radiobio.cli", *args], capture_output=True, text=True, timeout=300)


def test_extract_pyradiomics_batch_with_a_failing_case(tmp_path: Path) -> None:
    cohort = write_cohort([sphere_phantom(radius_mm=r, size=(24, 24, 24)) for r in (5, 7)], tmp_path)
    batch = pd.DataFrame({"ID": ["a", "b", "c"], "Image": [*cohort["image"], cohort["image"][0]],
                          "Mask": [*cohort["mask"], str(tmp_path / "missing.nii.gz")], "Label": [1, 1, 1]})
    batch.to_csv(tmp_path / "batch.csv", index=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    out = tmp_path / "features.csv"
    result = run_cli("extract", str(tmp_path / "batch.csv"), "-p", str(tmp_path / "params.yaml"), "-o", str(out),
                     "-j", "1", "--quiet")
    assert result.returncode == 1, result.stderr
    assert "2 cases ok, 1 failed" in result.stdout
    assert "c" in result.stderr and "mask file not found" in result.stderr
    table = read_feature_table(out)
    assert table["case_id"].tolist() == ["a", "b", "c"]
    assert table["original_shape_VoxelVolume"].iloc[1] > table["original_shape_VoxelVolume"].iloc[0]
    assert table.attrs["provenance"]["params"] == PARAMS


def test_extract_all_ok_exits_zero_and_help_has_example(tmp_path: Path) -> None:
    write_cohort([sphere_phantom(size=(24, 24, 24))], tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    result = run_cli("extract", str(tmp_path / "cohort.csv"), "-p", str(tmp_path / "params.yaml"),
                     "-o", str(tmp_path / "f.parquet"), "-j", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "1 cases ok, 0 failed" in result.stdout
    help_text = run_cli("extract", "--help").stdout
    assert "examples:" in help_text and "radiobio extract" in help_text
    assert run_cli("--version").stdout.startswith("radiobio ")
    assert run_cli("extract", "nope.csv", "-o", str(tmp_path / "x.csv")).returncode == 2


def test_extract_never_imports_tensorflow(tmp_path: Path) -> None:
    write_cohort([sphere_phantom(size=(20, 20, 20))], tmp_path)
    code = ("import sys, radiobio.cli as c; c.main(['extract', sys.argv[1], '-p', sys.argv[2], '-o', sys.argv[3], "
            "'-j', '1', '--quiet']); assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cohort.csv"), str(tmp_path / "params.yaml"),
                             str(tmp_path / "f.parquet")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_extract_on_a_dask_scheduler_address(tmp_path: Path) -> None:
    from distributed import LocalCluster

    write_cohort([sphere_phantom(radius_mm=r, size=(24, 24, 24)) for r in (5, 6, 7)], tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        result = run_cli("extract", str(tmp_path / "cohort.csv"), "-p", str(tmp_path / "params.yaml"),
                         "-o", str(tmp_path / "f.parquet"), "--scheduler", cluster.scheduler_address, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "3 cases ok, 0 failed" in result.stdout
    volumes = read_feature_table(tmp_path / "f.parquet")["original_shape_VoxelVolume"].tolist()
    assert volumes == sorted(volumes) and len(set(volumes)) == 3


def test_a_wrong_output_suffix_fails_before_the_first_case(tmp_path: Path) -> None:
    write_cohort([sphere_phantom(size=(20, 20, 20))], tmp_path)
    result = run_cli("extract", str(tmp_path / "cohort.csv"), "-o", str(tmp_path / "features.xlsx"), "-q")
    assert result.returncode == 2
    assert "radiobio extract: SettingsError:" in result.stderr and ".xlsx" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("features.xlsx*"))  # no parts folder: nothing was computed
