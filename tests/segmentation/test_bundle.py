"""Model cards: validated key by key when a bundle loads, the bundle digest, the intended use, the rendered card,
and bundle checks that never import TensorFlow."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from radiobio.cli import main as cli
from radiobio.errors import ModelBundleError
from radiobio.segmentation import list_bundles, load_bundle, read_bundle
from radiobio.segmentation.bundle import CARD_FILE, MODEL_FILE, check_card
from radiobio.segmentation.card import render_card

from .helpers import REPO

L3_DEMO = REPO / "models" / "l3-muscle-demo"
HIPPOCAMPUS = REPO / "models" / "hippocampus-3d"


def _copy(bundle: Path, tmp_path: Path) -> Path:
    folder = tmp_path / bundle.name
    shutil.copytree(bundle, folder)
    return folder


def _edit(folder: Path, change) -> None:
    card = json.loads((folder / CARD_FILE).read_text())
    change(card)
    (folder / CARD_FILE).write_text(json.dumps(card))


def _set(path: str, value):
    def change(card):
        *parents, last = path.split(".")
        node = card
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return change


_DELETE = object()

# (card key, bad value, fragment the message must hold): each a mistake a hand-edited card can carry.
BAD_L3_CARDS = [
    ("target_spacing", [2.0, -1.0], r"target_spacing \[2\.0, -1\.0\].*positive"),
    ("target_spacing", [2.0, "2"], r"target_spacing \[2\.0, '2'\].*positive finite"),
    ("target_spacing", [2.0, math.inf], r"target_spacing \[2\.0, inf\]"),
    ("target_spacing", [2.0, math.nan], r"target_spacing \[2\.0, nan\]"),
    ("target_spacing", [2.0, 2.0, 2.0, 2.0], r"target_spacing .*2D unet2d"),
    ("target_spacing", 2.0, r"target_spacing 2\.0: must be a list"),
    ("patch_size", [256, 0], r"patch_size \[256, 0\].*positive integers"),
    ("patch_size", [256.5, 256], r"patch_size \[256\.5, 256\].*positive integers"),
    ("patch_size", [256, 256, 1], r"patch_size \[256, 256, 1\].*2D"),
    ("patch_size", None, r"patch_size null"),
    ("inference.batch_size", 0, r"inference\.batch_size 0: must be an integer of at least 1"),
    ("inference.batch_size", "4", r"inference\.batch_size '4'"),
    ("inference.overlap", 1.5, r"inference\.overlap 1\.5"),
    ("inference.tta_flips", ["z"], r"inference\.tta_flips \['z'\].*unknown axes"),
    ("training.settings.batch_size", -1, r"training\.settings\.batch_size -1"),
    ("labels", {}, r"labels \{\}"),
    ("labels", {"0": "background"}, r"labels: label 0"),
    ("labels", {"one": "muscle"}, r"labels: key 'one'"),
    ("labels", {"1": ""}, r"labels: label 1 has name ''"),
    ("labels", {"1": "muscle", "2": "muscle"}, r"labels: name\(s\) \['muscle'\]"),
    ("labels", ["muscle", "sat"], r"labels \[.muscle., .sat.\]: must be a JSON object"),
    ("labels", _DELETE, r"missing key\(s\) \['labels'\]"),
    ("intensity_normalisation.window", [300, -300], r"intensity_normalisation\.window \[300, -300\].*low < high"),
    ("intensity_normalisation.window", None, r"intensity_normalisation\.window None.*required for mode 'ct'"),
    ("intensity_normalisation.mode", "hu", r"intensity_normalisation\.mode 'hu': choose one of zscore, ct, none"),
    ("intensity_normalisation.clip_percentiles", [5, 200], r"clip_percentiles \[5, 200\]"),
    ("architecture.normalization", "layer", r"architecture\.normalization 'layer'"),
    ("architecture.architecture", "unet4d", r"architecture\.architecture 'unet4d'"),
    ("architecture.depth", 0, r"architecture\.depth 0"),
    ("architecture.deep_supervision", "no", r"architecture\.deep_supervision 'no': must be true or false"),
    ("orientation", "LPX", r"orientation 'LPX'"),
    ("orientation", "LLS", r"orientation 'LLS'"),
    ("intended_use", 5, r"intended_use 5: must be text"),
    ("backend", "theano", r"backend 'theano'"),
    ("versions", {"keras": 3}, r"versions \{'keras': 3\}"),
    ("training", [], r"training \[\]: must be a JSON object"),
    ("format_version", 2, r"format_version 2"),
    ("format_version", True, r"format_version True"),
]


@pytest.mark.parametrize("key, value, fragment", BAD_L3_CARDS, ids=[f"{k}={v!r}" for k, v, _ in BAD_L3_CARDS])
def test_bad_card_fails_at_load_naming_key_and_value(tmp_path, key, value, fragment):
    folder = _copy(L3_DEMO, tmp_path)
    _edit(folder, _set(key, value))
    with pytest.raises(ModelBundleError, match=fragment) as caught:
        load_bundle(folder)
    assert str(folder / CARD_FILE) in str(caught.value)  # the message names the file to fix
    with pytest.raises(ModelBundleError, match=fragment):
        read_bundle(folder)


def test_3d_card_needs_three_spacings_and_patch_sizes(tmp_path):
    folder = _copy(HIPPOCAMPUS, tmp_path)
    _edit(folder, _set("target_spacing", [1.0, 1.0]))
    with pytest.raises(ModelBundleError, match=r"target_spacing \[1\.0, 1\.0\].*3D unet3d"):
        load_bundle(folder)
    _edit(folder, _set("target_spacing", [1.0, 1.0, 1.0]))
    _edit(folder, _set("patch_size", [40, 56]))
    with pytest.raises(ModelBundleError, match=r"patch_size \[40, 56\].*3D unet3d"):
        load_bundle(folder)


def test_shipped_cards_are_valid_and_state_their_use():
    for bundle in (L3_DEMO, HIPPOCAMPUS):
        card = json.loads((bundle / CARD_FILE).read_text())
        check_card(card)
        assert card["intended_use"] and "clinical use" in card["intended_use"]
    assert "synthetic" in json.loads((L3_DEMO / CARD_FILE).read_text())["intended_use"]


def test_digest_fingerprints_model_and_card(tmp_path):
    folder = _copy(L3_DEMO, tmp_path)
    expected = hashlib.sha256(b"model.keras\0" + (folder / MODEL_FILE).read_bytes()
                              + b"model_card.json\0" + (folder / CARD_FILE).read_bytes()).hexdigest()[:16]
    bundle = read_bundle(folder)
    assert bundle.digest == expected and len(bundle.digest) == 16
    assert read_bundle(L3_DEMO).digest == expected  # the same files in another folder: the same digest
    assert bundle.model is None
    assert bundle.name == "l3-muscle-demo" and bundle.synthetic_only
    assert bundle.intended_use.startswith("demo only")
    _edit(folder, _set("description", "retrained"))
    assert read_bundle(folder).digest != expected
    other = read_bundle(HIPPOCAMPUS)
    assert other.digest != expected and not other.synthetic_only and other.config.dims == 3


def test_card_without_intended_use_says_so(tmp_path):
    folder = _copy(L3_DEMO, tmp_path)
    _edit(folder, _set("intended_use", _DELETE))
    _edit(folder, _set("name", _DELETE))
    bundle = read_bundle(folder)
    assert bundle.intended_use == "not stated in the model card"
    assert bundle.name == folder.name and not bundle.synthetic_only
    assert "**Intended use:** not stated in the model card." in render_card(bundle.card)


def test_rendered_card_shows_use_and_geometry():
    card = json.loads((L3_DEMO / CARD_FILE).read_text())
    text = render_card(card)
    assert f"**Intended use:** {card['intended_use']}." in text
    assert "- target spacing: x 2, y 2 mm" in text
    assert "- patch size: x 256, y 256 voxels" in text
    assert "| 4 | imat |" in text


def test_models_lists_use_and_flags_demo_models(capsys):
    table = list_bundles().set_index("name")
    assert bool(table.loc["l3-muscle-demo", "demo"]) and not bool(table.loc["hippocampus-3d", "demo"])
    assert table.loc["hippocampus-3d", "use"].startswith("research only")
    assert cli(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    demo = next(line for line in lines if line.startswith("l3-muscle-demo"))
    hippocampus = next(line for line in lines if line.startswith("hippocampus-3d"))
    assert "DEMO: synthetic data only" in demo and "DEMO" not in hippocampus
    assert any("use:  demo only" in line for line in lines)


def test_an_invalid_card_is_listed_with_the_reason(tmp_path, monkeypatch):
    folder = _copy(L3_DEMO, tmp_path / "models")
    _edit(folder, _set("patch_size", [0, 256]))
    monkeypatch.setenv("RADIOBIO_MODEL_PATH", str(tmp_path / "models"))
    row = list_bundles().set_index("name").loc["l3-muscle-demo"]
    assert row["path"] == str(folder) and "unusable card" in row["description"] and "patch_size" in row["description"]


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize("reference", ["l3-muscle-dem", "/nowhere/bundle"])
def test_bad_bundle_fails_without_importing_tensorflow(reference):
    result = _run_python(
        "import sys\n"
        "from radiobio.errors import ModelBundleError\n"
        "from radiobio.segmentation import load_bundle\n"
        "try:\n"
        f"    load_bundle({reference!r})\n"
        "except ModelBundleError as exc:\n"
        "    print('error:', exc)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"error: {reference}") and lines[-1] == "False False"


def test_bad_card_and_bad_config_fail_without_importing_tensorflow(tmp_path):
    folder = _copy(L3_DEMO, tmp_path)
    _edit(folder, _set("patch_size", [256, -1]))
    config = tmp_path / "config.yaml"
    config.write_text("labels: {1: liver}\nmodel: {architecture: unet2d}\ntraining: {batch_size: 0}\n")
    result = _run_python(
        "import sys\n"
        "from radiobio.errors import ModelBundleError, SettingsError\n"
        "from radiobio.segmentation import as_config, load_bundle, read_bundle\n"
        "print('ok', read_bundle('hippocampus-3d').digest)\n"
        f"for call in (lambda: load_bundle({str(folder)!r}), lambda: as_config({str(config)!r})):\n"
        "    try:\n"
        "        call()\n"
        "    except (ModelBundleError, SettingsError) as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"ok {read_bundle(HIPPOCAMPUS).digest}"
    assert lines[1].startswith("ModelBundleError") and "patch_size [256, -1]" in lines[1]
    assert lines[2].startswith("SettingsError") and "config.training.batch_size 0" in lines[2]
    assert lines[-1] == "False False"


def test_valid_bundle_loads_its_network(tmp_path):
    bundle = load_bundle(_copy(L3_DEMO, tmp_path))
    assert bundle.model is not None and bundle.model.outputs[0].shape[-1] == 5
    assert load_bundle(bundle) is bundle
    described = read_bundle(L3_DEMO)
    assert load_bundle(described).model is not None and described.digest == bundle.digest


def test_cli_segment_with_a_mistyped_model_fails_before_tensorflow(tmp_path):
    result = _run_python(
        "import sys\n"
        "from radiobio.cli import main\n"
        f"rc = main(['segment', 'cohort.csv', '-m', 'l3-muscle-dem', '-o', {str(tmp_path / 'out')!r}])\n"
        "print(rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    assert result.stdout.splitlines()[-1] == "2 False False", result.stderr
    assert "l3-muscle-dem" in result.stderr and "l3-muscle-demo" in result.stderr  # names what is available
