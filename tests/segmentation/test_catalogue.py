"""Bundles by name: the model search path (RADIOBIO_MODEL_PATH, the installed share folder, a checkout's models/),
``radiobio models``, and a wheel that carries the shipped bundles to an installed radiobio."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from radiobio.cli import main as cli
from radiobio.errors import ModelBundleError
from radiobio.segmentation import find_bundle, list_bundles, load_bundle, segment
from radiobio.segmentation.catalogue import MODEL_PATH_VARIABLE, model_search_path

from .helpers import HIPPOCAMPUS_BUNDLE, REPO


def test_names_resolve_through_the_search_path_in_order(tiny_bundle, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(tiny_bundle, first / "spheres")
    shutil.copytree(tiny_bundle, second / "spheres")
    shutil.copytree(tiny_bundle, second / "hippocampus-3d")  # shadows the shipped bundle of that name
    monkeypatch.setenv(MODEL_PATH_VARIABLE, os.pathsep.join([str(first), str(tmp_path / "absent"), str(second)]))
    assert model_search_path()[:2] == [first, second]
    assert find_bundle("spheres") == first / "spheres"
    assert find_bundle("hippocampus-3d") == second / "hippocampus-3d"
    table = list_bundles()
    assert list(table["name"]).count("spheres") == 1
    assert table.set_index("name").loc["hippocampus-3d", "path"] == str(second / "hippocampus-3d")
    assert table.set_index("name").loc["spheres", "labels"] == "1=sphere"
    # a folder given by path is used as it is, whatever the search path says
    assert find_bundle(tiny_bundle) == tiny_bundle
    assert load_bundle("spheres").path == first / "spheres"


def test_unknown_name_lists_what_is_available(tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_PATH_VARIABLE, str(tmp_path))
    with pytest.raises(ModelBundleError, match=r"no-such-model.*l3-muscle-demo.*RADIOBIO_MODEL_PATH"):
        load_bundle("no-such-model")
    with pytest.raises(ModelBundleError, match="bundle folder not found"):
        load_bundle(tmp_path / "missing" / "bundle")


def test_shipped_bundles_load_by_name(hippocampus_bundle, monkeypatch):
    monkeypatch.delenv(MODEL_PATH_VARIABLE, raising=False)
    assert find_bundle("hippocampus-3d").resolve() == HIPPOCAMPUS_BUNDLE.resolve()
    names = set(list_bundles()["name"])
    assert {"hippocampus-3d", "l3-muscle-demo"} <= names
    assert load_bundle("hippocampus-3d").config.labels == {1: "anterior", 2: "posterior"}


def test_cli_lists_models_and_segments_by_name(tiny_bundle, sphere_cohort, tmp_path, monkeypatch, capsys):
    shutil.copytree(tiny_bundle, tmp_path / "models" / "my-spheres")
    monkeypatch.setenv(MODEL_PATH_VARIABLE, str(tmp_path / "models"))
    assert cli(["models"]) == 0
    listing = capsys.readouterr().out
    assert "my-spheres" in listing and "1=sphere" in listing and "unet3d" in listing
    assert cli(["models", "--search-path"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "models")
    cohort = sphere_cohort.head(2)
    by_name = segment(cohort, model="my-spheres", out_dir=tmp_path / "masks", progress=False)
    assert (by_name["error"] == "").all() and all(Path(p).is_file() for p in by_name["mask"])


@pytest.mark.timeout(300)
def test_wheel_installs_the_shipped_bundles(tmp_path):
    """Build the wheel from a copy of the sources, install it into a fresh environment (dependencies borrowed from
    the test environment), and find the bundles there by name, away from any checkout."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "cohort.csv")
    shutil.copytree(REPO / "radiobio", source / "radiobio", ignore=ignore)
    shutil.copytree(REPO / "models", source / "models", ignore=ignore)
    run = lambda *args, **kw: subprocess.run(args, capture_output=True, text=True, timeout=240, **kw)  # noqa: E731
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", ".",
                cwd=source)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((source / "dist").glob("radiobio-*.whl"))
    env_dir = tmp_path / "env"
    made = run(sys.executable, "-m", "venv", "--without-pip", str(env_dir))
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    installed = run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel))
    assert installed.returncode == 0, installed.stderr[-2000:]
    # the environment borrows radiobio's dependencies as a plain path entry (its editable hook is not run)
    site = run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(site, "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = ("import radiobio, sys; from radiobio.segmentation import find_bundle, list_bundles; "
             "print(radiobio.__file__); print(find_bundle('hippocampus-3d')); print(sorted(list_bundles()['name']))")
    env = {k: v for k, v in os.environ.items() if k != MODEL_PATH_VARIABLE}
    done = run(str(python), "-c", probe, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    module, bundle, names = done.stdout.strip().splitlines()
    assert Path(module).is_relative_to(env_dir)
    assert Path(bundle) == env_dir / "share" / "radiobio" / "models" / "hippocampus-3d"
    assert (Path(bundle) / "model.keras").stat().st_size == (HIPPOCAMPUS_BUNDLE / "model.keras").stat().st_size
    assert names == "['hippocampus-3d', 'l3-muscle-demo']"
