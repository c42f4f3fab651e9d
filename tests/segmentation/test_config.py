"""Settings: YAML parsing, validation, unknown keys."""

from __future__ import annotations

import pytest

from radiobio.errors import SettingsError
from radiobio.segmentation.config import as_config


def test_yaml_config_round_trips(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("labels: {1: liver, 2: spleen}\nmodel: {architecture: unet2d, depth: 3}\n"
                    "preprocessing: {patch_size: [64, 64], intensity: {mode: ct, window: [-160, 240]}}\n")
    config = as_config(path)
    assert config.labels == {1: "liver", 2: "spleen"}
    assert config.num_classes == 3 and config.dims == 2
    assert config.preprocessing.intensity.window == (-160, 240)
    assert as_config(config.to_dict()).to_dict() == config.to_dict()


def test_model_only_dict_is_accepted():
    config = as_config({"architecture": "unet3d", "num_classes": 4, "depth": 2})
    assert config.num_classes == 4 and config.model.depth == 2


@pytest.mark.parametrize("data, fragment", [
    ({"model": {"archtecture": "unet2d"}}, "config.model.archtecture"),
    ({"trainig": {}}, "config.trainig"),
    ({"model": {"normalization": "layer"}}, "normalization"),
    ({"preprocessing": {"intensity": {"mode": "ct"}}}, "window"),
    ({"model": {"architecture": "unet3d"}, "preprocessing": {"patch_size": [32, 32]}}, "patch_size"),
    ({"inference": {"tta_flips": ["w"]}}, "tta_flips"),
    ({"labels": {0: "background"}}, "label 0"),
    # types and ranges: a value that would pass here and fail later, per case, inside SimpleITK or Keras
    ({"preprocessing": {"target_spacing": [1.0, "1", 1.0]}},
     r"config\.preprocessing\.target_spacing \[1\.0, '1', 1\.0\]: must be 3 positive finite"),
    ({"preprocessing": {"target_spacing": [1.0, 1.0]}}, r"target_spacing \[1\.0, 1\.0\].*3D unet3d"),
    ({"preprocessing": {"target_spacing": [1.0, 0.0, 1.0]}}, r"target_spacing \[1\.0, 0\.0, 1\.0\]"),
    ({"preprocessing": {"patch_size": [32, 32, 32.5]}}, r"patch_size \[32, 32, 32\.5\]: must be 3 positive integers"),
    ({"preprocessing": {"patch_size": "32"}}, r"patch_size '32': must be a list"),
    ({"preprocessing": {"intensity": {"mode": "ct", "window": [240, -160]}}}, r"window \[240, -160\].*low < high"),
    ({"preprocessing": {"intensity": {"mode": "ct", "window": [-160, "240"]}}}, r"window \[-160, '240'\]"),
    ({"preprocessing": {"intensity": {"clip_percentiles": [1, 101]}}}, r"clip_percentiles \[1, 101\]"),
    ({"preprocessing": {"orientation": "LLS"}}, r"orientation 'LLS'"),
    ({"training": {"batch_size": "4"}}, r"config\.training\.batch_size '4': must be an integer"),
    ({"training": {"learning_rate": 0}}, r"training\.learning_rate 0"),
    ({"training": {"dice_weight": 0, "ce_weight": 0}}, r"both 0"),
    ({"training": {"augmentation": {"scale_range": [1.1, 0.9]}}}, r"scale_range \[1\.1, 0\.9\]"),
    ({"inference": {"batch_size": 0}}, r"inference\.batch_size 0"),
    ({"inference": {"postprocessing": {"fill_holes": "yes"}}}, r"fill_holes 'yes': must be true or false"),
    ({"model": {"architecture": "unet4d"}}, r"model\.architecture 'unet4d': choose one of"),
    ({"model": {"depth": 2.5}}, r"model\.depth 2\.5"),
    ({"labels": {1: "liver", 2: "liver"}}, r"name\(s\) \['liver'\]"),
    ({"labels": {1: None}}, r"label 1 has name None"),
    ({"labels": {"one": "liver"}}, r"key 'one'"),
])
def test_invalid_settings_are_refused_with_the_key(data, fragment):
    with pytest.raises(SettingsError, match=fragment):
        as_config(data)


def test_missing_config_file(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        as_config(tmp_path / "nope.yaml")


def test_2d_models_take_two_or_three_spacings_and_codes_are_normalised():
    config = as_config({"model": {"architecture": "unet2d"}, "preprocessing": {"target_spacing": [0.8, 0.8],
                                                                               "orientation": "ras"}})
    assert config.preprocessing.target_spacing == (0.8, 0.8) and config.preprocessing.orientation == "RAS"
    config = as_config({"model": {"architecture": "unet2d"}, "preprocessing": {"target_spacing": [0.8, 0.8, 5]}})
    assert config.preprocessing.target_spacing == (0.8, 0.8, 5.0)


def test_shipped_training_configs_are_valid():
    from .helpers import REPO

    for name, dims in (("hippocampus-3d", 3), ("l3-muscle-demo", 2)):
        config = as_config(REPO / "models" / name / "config.yaml")
        assert config.dims == dims and len(config.preprocessing.target_spacing) == dims
