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
])
def test_invalid_settings_are_refused_with_the_key(data, fragment):
    with pytest.raises(SettingsError, match=fragment):
        as_config(data)


def test_missing_config_file(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        as_config(tmp_path / "nope.yaml")
