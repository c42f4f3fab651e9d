"""Fine-tuning a bundle (``train(..., from_model=...)``, ``radiobio train --from``): the defaults derived from the
parent, overrides limited to training settings, the child starting from the parent's weights, the card's parent and
quality statistics, and the CLI's usage errors (before TensorFlow loads)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radiobio.cli import main
from radiobio.errors import SettingsError
from radiobio.segmentation.bundle import read_bundle, read_card
from radiobio.segmentation.config import fine_tune_config


def test_fine_tune_defaults_and_overrides(tiny_bundle):
    parent = read_bundle(tiny_bundle)
    config = fine_tune_config(parent)
    assert config.training.learning_rate == pytest.approx(parent.config.training.learning_rate / 10)
    assert config.training.epochs == max(1, round(parent.config.training.epochs / 4))
    assert config.labels == parent.config.labels and config.model == parent.config.model
    assert config.preprocessing == parent.config.preprocessing and config.inference == parent.config.inference
    tuned = fine_tune_config(parent, {"training": {"epochs": 3, "learning_rate": 1e-5}})
    assert (tuned.training.epochs, tuned.training.learning_rate, tuned.training.patience) == (3, 1e-5, 3)
    same = fine_tune_config(parent, {"labels": parent.config.to_dict()["labels"]})
    assert same.labels == parent.config.labels  # restating the parent's own labels is allowed
    with pytest.raises(SettingsError, match="'model'"):
        fine_tune_config(parent, {"model": {"architecture": "unet3d", "depth": 2}})
    with pytest.raises(SettingsError, match="'labels'"):
        fine_tune_config(parent, {"labels": {1: "liver"}})


def test_fine_tuning_starts_from_the_parent_and_records_it(tiny_bundle, sphere_cohort, tmp_path):
    from radiobio.segmentation import segment_image, train

    parent = read_bundle(tiny_bundle)
    # learning rate 1e-12: Adam moves each weight by about 1e-12 per step, so the child keeps its parent's weights
    child = train(sphere_cohort.head(4), from_model=tiny_bundle, out_dir=tmp_path / "child",
                  config={"training": {"epochs": 1, "samples_per_epoch": 4, "learning_rate": 1e-12}},
                  qc_calibration=False)
    from radiobio.segmentation.bundle import load_bundle

    for theirs, ours in zip(load_bundle(tiny_bundle).model.get_weights(), load_bundle(child).model.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-8)
    card = read_card(child)
    assert card["parent"] == {"name": parent.name, "digest": parent.digest, "path": str(parent.path)}
    assert card["training_data"]["n_cases"] == 4 and card["training_data"]["n_validation"] == 1
    assert card.get("intended_use") == parent.card.get("intended_use")
    assert "fine-tuned from spheres" in (child / "MODEL_CARD.md").read_text()
    assert card["quality"]["reference"]["n_cases"] == 3 and "calibration" not in card["quality"]
    image = sitk.ReadImage(sphere_cohort.at[5, "image"])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segment_image(image, child)),
                                  sitk.GetArrayFromImage(segment_image(image, tiny_bundle)))


def test_a_mask_label_the_parent_does_not_know_is_refused(tiny_bundle, sphere_cohort, tmp_path):
    from radiobio.segmentation import train

    mask = sitk.ReadImage(sphere_cohort.at[0, "mask"])
    sitk.WriteImage(mask * 3, str(tmp_path / "three.nii.gz"))  # label 3: the parent segments label 1 only
    cohort = sphere_cohort.head(3).copy()
    cohort.loc[0, "mask"] = str(tmp_path / "three.nii.gz")
    with pytest.raises(SettingsError, match=r"label\(s\) \[3\]"):
        train(cohort, from_model=tiny_bundle, out_dir=tmp_path / "child", qc_calibration=False)


def test_cli_usage_errors_before_tensorflow(tmp_path, capsys, tiny_bundle, sphere_cohort):
    cohort = tmp_path / "c.csv"
    sphere_cohort.to_csv(cohort, index=False)
    assert main(["train", str(cohort), "-o", str(tmp_path / "m")]) == 2
    assert "-c/--config is required" in capsys.readouterr().err
    assert main(["train", str(cohort), "--from", str(tmp_path / "missing"), "-o", str(tmp_path / "m")]) == 2
    assert "ModelBundleError" in capsys.readouterr().err
    overrides = tmp_path / "o.yaml"
    overrides.write_text("model:\n  depth: 2\n")
    assert main(["train", str(cohort), "--from", str(tiny_bundle), "-c", str(overrides), "-o",
                 str(tmp_path / "m")]) == 2
    assert "give only a 'training:' section" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
