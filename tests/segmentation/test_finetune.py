"""Fine-tuning a bundle (``train(from_model=...)``, ``radiobio train --from``): real Keras, tiny sphere models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.cli import main
from radiobio.errors import ModelBundleError, SettingsError
from radiobio.segmentation import load_bundle, read_bundle, train
from radiobio.segmentation.finetune import finetune_config
from radiobio.segmentation.training import split_cases
from radiobio.synthetic import write_cohort

from .helpers import REPO, sphere_cases


@pytest.fixture(scope="module")
def new_cases(tmp_path_factory) -> pd.DataFrame:
    """Four sphere phantoms the parent never saw, with a dimmer, noisier "scanner" (intensities × 0.6 + 40)."""
    phantoms = sphere_cases(4, seed=5)
    for phantom in phantoms:
        phantom.image = sitk.Cast(phantom.image, sitk.sitkFloat32) * 0.6 + 40.0
    return write_cohort(phantoms, tmp_path_factory.mktemp("site2"))


def _weights(bundle) -> list[np.ndarray]:
    return load_bundle(bundle).model.get_weights()


def test_finetune_starts_from_the_parents_weights_and_records_it(tiny_bundle, new_cases, tmp_path):
    # a learning rate of 1e-9 moves no weight by more than ~1e-8: the child must hold the parent's weights, which a
    # model that started anywhere else (a fresh initialisation) would not
    child = train(new_cases, from_model=tiny_bundle, out_dir=tmp_path / "child",
                  config={"training": {"learning_rate": 1e-9, "epochs": 1, "samples_per_epoch": 8}})
    parent = read_bundle(tiny_bundle)
    before, after = _weights(tiny_bundle), _weights(child)
    assert len(before) == len(after)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(before, after)) < 1e-5

    card = json.loads((child / "model_card.json").read_text())
    assert card["parent"] == {"name": "spheres", "digest": parent.digest, "path": str(tiny_bundle.resolve())}
    assert card["labels"] == {"1": "sphere"} and card["patch_size"] == [16, 16, 16]
    assert card["architecture"] == parent.card["architecture"]
    assert card["training"]["settings"]["learning_rate"] == 1e-9
    assert card["training_data"]["n_cases"] == 4
    assert card["training_data"]["n_validation"] == 1 and card["training_data"]["n_train"] == 3
    assert set(card["training_data"]["validation_cases"]) <= set(new_cases["case_id"])
    assert card["validation_metrics"]["n_cases"] == 1
    assert 0.0 <= card["training"]["parent_validation_dice_patches"] <= 1.0
    assert card["training"]["best_epoch"] in (0, 1)
    assert f"Fine-tuned from spheres ({parent.digest})" in (child / "MODEL_CARD.md").read_text()
    assert read_bundle(child).digest != parent.digest  # a new bundle, checked like any other


def test_finetune_defaults_scale_the_parents_training(tiny_bundle):
    parent = read_bundle(tiny_bundle).config.training
    config = finetune_config(tiny_bundle)
    assert config.training.learning_rate == pytest.approx(parent.learning_rate / 10)
    assert config.training.epochs == 1  # ceil(10 / 10)
    assert config.training.samples_per_epoch == parent.samples_per_epoch
    assert config.training.seed == parent.seed
    overridden = finetune_config(tiny_bundle, {"training": {"epochs": 3, "augmentation": {"probability": 0.0}}})
    assert overridden.training.epochs == 3 and overridden.training.patience == 3  # still no early stopping
    assert overridden.training.augmentation.probability == 0.0
    assert overridden.training.augmentation.flip_axes == ("x", "y", "z")  # the parent's, key by key


@pytest.mark.parametrize(("override", "key"), [
    ({"model": {"depth": 3}}, "config.model.depth"),
    ({"labels": {1: "sphere", 2: "cube"}}, "config.labels"),
    ({"preprocessing": {"target_spacing": [1.0, 1.0, 1.0]}}, "config.preprocessing.target_spacing"),
    ({"preprocessing": {"intensity": {"mode": "none"}}}, "config.preprocessing.intensity.mode"),
])
def test_finetune_refuses_another_architecture_before_any_case(tiny_bundle, tmp_path, override, key):
    missing = pd.DataFrame({"case_id": ["a", "b"], "image": [str(tmp_path / "none.nii.gz")] * 2,
                            "mask": [str(tmp_path / "none.nii.gz")] * 2})  # never read: the settings fail first
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        train(missing, from_model=tiny_bundle, config=override, out_dir=tmp_path / "child")
    assert not (tmp_path / "child").exists()


def test_finetune_accepts_the_parents_own_settings(tiny_bundle):
    parent = read_bundle(tiny_bundle).config.to_dict()
    config = finetune_config(tiny_bundle, {**parent, "training": {"epochs": 2}})
    assert config.model == read_bundle(tiny_bundle).config.model and config.training.epochs == 2


def test_finetune_refuses_a_label_the_parent_does_not_know(tiny_bundle, new_cases, tmp_path):
    cohort = new_cases.copy()
    mask = sitk.ReadImage(cohort.at[2, "mask"])
    sitk.WriteImage(sitk.Cast(mask * 2, sitk.sitkUInt8), str(tmp_path / "two.nii.gz"))  # label 1 became 2
    cohort.loc[2, "mask"] = str(tmp_path / "two.nii.gz")
    with pytest.raises(SettingsError, match=r"case case002: mask holds label\(s\) \[2\] that the parent model "
                                            r"spheres does not know"):
        train(cohort, from_model=tiny_bundle, out_dir=tmp_path / "child")


def test_missing_parent_or_config_and_overwriting_the_parent_are_refused(tiny_bundle, tmp_path, new_cases):
    with pytest.raises(ModelBundleError, match="no-such-model"):
        train(new_cases, from_model="no-such-model", out_dir=tmp_path / "child")
    with pytest.raises(SettingsError, match="parent bundle's folder"):
        train(new_cases, from_model=tiny_bundle, out_dir=tiny_bundle)
    with pytest.raises(SettingsError, match="needs config"):
        train(new_cases, out_dir=tmp_path / "child")


def test_split_of_a_small_cohort_holds_out_a_few_cases():
    ten = pd.DataFrame({"case_id": [f"c{i}" for i in range(10)]})
    train_rows, val_rows = split_cases(ten, 0.2, 42)
    assert len(val_rows) == 2 and len(train_rows) == 8 and not set(train_rows) & set(val_rows)
    assert [len(part) for part in split_cases(ten.iloc[:2], 0.2, 0)] == [1, 1]


def test_cli_train_from_a_bundle(tiny_bundle, new_cases, tmp_path, capsys):
    manifest = tmp_path / "site2.csv"
    new_cases.to_csv(manifest, index=False)
    (tmp_path / "overrides.yaml").write_text("training:\n  samples_per_epoch: 16\n")
    out = tmp_path / "spheres-site2"
    assert main(["train", str(manifest), "--from", str(tiny_bundle), "-o", str(out),
                 "-c", str(tmp_path / "overrides.yaml"), "-q"]) == 0
    assert "model bundle written" in capsys.readouterr().out
    card = json.loads((out / "model_card.json").read_text())
    parent = read_bundle(tiny_bundle)
    assert card["parent"]["digest"] == parent.digest
    assert card["training"]["settings"]["samples_per_epoch"] == 16
    assert card["training"]["settings"]["learning_rate"] == pytest.approx(parent.config.training.learning_rate / 10)
    # the parent segments spheres well; a tenth of its learning rate on similar cases must not break it
    assert card["validation_metrics"]["mean_dice"] > 0.7


def test_cli_usage_errors_exit_2_before_tensorflow_loads(tmp_path, new_cases):
    manifest = tmp_path / "site2.csv"
    new_cases.to_csv(manifest, index=False)
    script = (
        "import sys\n"
        "from radiobio.cli import main\n"
        f"print(main(['train', {str(manifest)!r}, '-o', {str(tmp_path / 'a')!r}]))\n"
        f"print(main(['train', {str(manifest)!r}, '--from', 'hippocampus-3dd', '-o', {str(tmp_path / 'b')!r}]))\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.split() == ["2", "2", "False", "False"], done.stderr
    assert "-c/--config CONFIG.yaml is required" in done.stderr
    assert "ModelBundleError: hippocampus-3dd" in done.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_training_without_calibration_keeps_the_reference_statistics(tiny_bundle, new_cases, tmp_path):
    child = train(new_cases, from_model=tiny_bundle, out_dir=tmp_path / "child", qc_calibration=False,
                  config={"training": {"epochs": 1, "samples_per_epoch": 4}})
    quality = json.loads((child / "model_card.json").read_text())["quality"]
    assert quality["reference"]["n_cases"] == 3 and "calibration" not in quality  # the 3 training cases of 4
    assert "not calibrated" in quality["calibration_note"]
    assert "not calibrated" in (child / "MODEL_CARD.md").read_text()
    assert not (child / "qc_calibration").exists()
