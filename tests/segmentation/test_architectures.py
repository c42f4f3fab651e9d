"""build_model: plain U-Nets, keras.applications encoders, the segmentation-models zoo; .keras round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from radiobio.errors import SettingsError
from radiobio.segmentation import build_model
from radiobio.segmentation.bundle import load_keras_model


def _round_trip(model, path, shape):
    model.save(path)
    loaded = load_keras_model(path)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    np.testing.assert_allclose(model.predict_on_batch(x), loaded.predict_on_batch(x), atol=1e-5)
    return loaded


@pytest.mark.parametrize("architecture, shape", [("unet2d", (1, 32, 48, 1)), ("unet3d", (1, 16, 16, 24, 1))])
@pytest.mark.parametrize("normalization", ["instance", "batch"])
def test_plain_unets(architecture, shape, normalization, tmp_path):
    model = build_model({"architecture": architecture, "num_classes": 3, "depth": 3, "base_filters": 4,
                         "normalization": normalization, "dropout": 0.1})
    out = _round_trip(model, tmp_path / "m.keras", shape).predict_on_batch(np.zeros(shape, "float32"))
    assert out.shape == (*shape[:-1], 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_deep_supervision_adds_full_size_heads():
    model = build_model({"architecture": "unet3d", "num_classes": 2, "depth": 4, "base_filters": 4,
                         "deep_supervision": True})
    outputs = model.predict_on_batch(np.zeros((1, 16, 16, 16, 1), "float32"))
    assert len(outputs) == 3
    assert all(o.shape == (1, 16, 16, 16, 2) for o in outputs)


@pytest.mark.parametrize("backbone", ["MobileNetV2", "EfficientNetB0"])
def test_keras_applications_encoder(backbone, tmp_path):
    model = build_model({"architecture": "applications_unet2d", "backbone": backbone, "num_classes": 2,
                         "base_filters": 8})
    loaded = _round_trip(model, tmp_path / "m.keras", (1, 64, 64, 1))
    assert loaded.predict_on_batch(np.zeros((1, 64, 64, 1), "float32")).shape == (1, 64, 64, 2)


def test_unknown_architecture_and_encoder():
    with pytest.raises(SettingsError, match="architecture"):
        build_model({"architecture": "transformer"})
    with pytest.raises(SettingsError, match="ResNet50"):
        build_model({"architecture": "applications_unet2d", "backbone": "AlexNet"})


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="segmentation-models needs TensorFlow")
@pytest.mark.parametrize("architecture, backbone, patch",
                         [("Unet", "resnet18", None), ("PSPNet", "resnet18", [96, 96])])
def test_segmentation_models_zoo(architecture, backbone, patch, tmp_path):
    config = {"architecture": "sm", "sm_architecture": architecture, "backbone": backbone, "num_classes": 3}
    if patch:
        config["patch_size"] = patch
    model = build_model(config)
    loaded = _round_trip(model, tmp_path / "m.keras", (1, 96, 96, 1))
    assert loaded.output_shape[-1] == 3
