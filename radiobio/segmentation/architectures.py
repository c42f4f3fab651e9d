"""Encoder-decoder segmentation networks: ``build_model(config)``.

Three families, chosen by ``model.architecture``:

* ``unet2d`` / ``unet3d`` — U-Nets written with Keras layers only (they run on TensorFlow, JAX and PyTorch);
* ``applications_unet2d`` — a 2D U-Net decoder on a ``keras.applications`` encoder (``weights=None``);
* ``sm`` — the ``segmentation-models`` zoo (Unet, FPN, Linknet, PSPNet), TensorFlow backend only.

Every model maps ``(batch, *spatial, channels)`` float32 input to per-class softmax probabilities
``(batch, *spatial, num_classes)``; with deep supervision extra lower-resolution heads (upsampled to full size)
follow the main output.
"""

from __future__ import annotations

import os
from typing import Any

from radiobio.errors import SettingsError
from radiobio.segmentation.config import ModelSettings, SegmentationConfig, as_config

#: ``keras.applications`` encoders and the layers whose outputs feed the decoder's skips (strides 2, 4, 8, 16).
#: The deepest feature map (stride 32) is the model's output.
APPLICATION_SKIPS: dict[str, tuple[str, ...]] = {
    "ResNet50": ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out"),
    "ResNet101": ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block23_out"),
    "ResNet50V2": ("conv1_conv", "conv2_block3_1_relu", "conv3_block4_1_relu", "conv4_block6_1_relu"),
    "MobileNetV2": ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu"),
    "EfficientNetB0": ("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation",
                       "block6a_expand_activation"),
    "EfficientNetB1": ("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation",
                       "block6a_expand_activation"),
    "DenseNet121": ("conv1_relu", "pool2_relu", "pool3_relu", "pool4_relu"),
    "VGG16": ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"),
}

#: Architectures of the segmentation-models zoo.
SM_ARCHITECTURES = ("Unet", "FPN", "Linknet", "PSPNet")


def build_model(config: SegmentationConfig | dict[str, Any]):
    """Build the Keras model a configuration describes (full config, or its ``model`` section plus ``num_classes``).

    Returns an uncompiled ``keras.Model``. Raises :class:`SettingsError` for an unknown architecture, encoder or
    an architecture the current Keras backend cannot run.
    """
    config = as_config(config)
    settings = config.model
    patch = config.preprocessing.patch_size
    builders = {"unet2d": _plain_unet, "unet3d": _plain_unet, "applications_unet2d": _applications_unet,
                "sm": _sm_model}
    if settings.architecture not in builders:
        raise SettingsError(f"unknown model.architecture {settings.architecture!r}; choose one of {sorted(builders)}")
    return builders[settings.architecture](settings, config.num_classes, patch)


def size_multiple(settings: ModelSettings) -> int:
    """Every spatial input size must be a multiple of this (the total down-sampling of the encoder)."""
    if settings.architecture in ("unet2d", "unet3d"):
        return 2 ** (settings.depth - 1)
    return 32 if settings.architecture == "applications_unet2d" or settings.sm_architecture != "PSPNet" else 48


def _normalization(kind: str, filters: int, name: str):
    import keras

    if kind == "batch":
        return keras.layers.BatchNormalization(name=name)
    if kind == "instance":
        return keras.layers.GroupNormalization(groups=filters, name=name)
    if kind == "group":
        return keras.layers.GroupNormalization(groups=min(8, filters), name=name)
    return None


def _conv_block(x, filters: int, dims: int, settings: ModelSettings, name: str):
    import keras

    conv = keras.layers.Conv3D if dims == 3 else keras.layers.Conv2D
    for i in (1, 2):
        use_bias = settings.normalization == "none"
        x = conv(filters, 3, padding="same", use_bias=use_bias, kernel_initializer="he_normal",
                 name=f"{name}_conv{i}")(x)
        norm = _normalization(settings.normalization, filters, f"{name}_norm{i}")
        if norm is not None:
            x = norm(x)
        x = keras.layers.LeakyReLU(negative_slope=0.01, name=f"{name}_act{i}")(x)
    if settings.dropout > 0:
        x = keras.layers.SpatialDropout3D(settings.dropout, name=f"{name}_drop")(x) if dims == 3 else \
            keras.layers.SpatialDropout2D(settings.dropout, name=f"{name}_drop")(x)
    return x


def _head(x, num_classes: int, dims: int, name: str, upsample: int = 1):
    import keras

    conv = keras.layers.Conv3D if dims == 3 else keras.layers.Conv2D
    x = conv(num_classes, 1, name=f"{name}_logits")(x)
    if upsample > 1:
        up = keras.layers.UpSampling3D if dims == 3 else keras.layers.UpSampling2D
        x = up(upsample, name=f"{name}_upsample")(x)
    return keras.layers.Activation("softmax", dtype="float32", name=name)(x)


def _plain_unet(settings: ModelSettings, num_classes: int, patch: tuple[int, ...] | None):
    import keras

    dims = 3 if settings.architecture == "unet3d" else 2
    if settings.depth < 1:
        raise SettingsError(f"model.depth must be at least 1, got {settings.depth}")
    inputs = keras.Input((*([None] * dims), settings.in_channels), name="image")
    pool = keras.layers.MaxPooling3D if dims == 3 else keras.layers.MaxPooling2D
    transpose = keras.layers.Conv3DTranspose if dims == 3 else keras.layers.Conv2DTranspose
    filters = [min(settings.base_filters * 2 ** level, settings.max_filters) for level in range(settings.depth)]
    skips = []
    x = inputs
    for level, f in enumerate(filters[:-1]):
        x = _conv_block(x, f, dims, settings, f"enc{level}")
        skips.append(x)
        x = pool(2, name=f"pool{level}")(x)
    x = _conv_block(x, filters[-1], dims, settings, "bottleneck")
    heads = []
    for level in reversed(range(settings.depth - 1)):
        x = transpose(filters[level], 2, strides=2, use_bias=False, name=f"up{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, filters[level], dims, settings, f"dec{level}")
        if settings.deep_supervision and 0 < level <= 2:
            heads.append(_head(x, num_classes, dims, f"aux{level}", upsample=2 ** level))
    outputs = _head(x, num_classes, dims, "segmentation")
    if heads:
        return keras.Model(inputs, [outputs, *reversed(heads)], name=settings.architecture)
    return keras.Model(inputs, outputs, name=settings.architecture)


def _applications_unet(settings: ModelSettings, num_classes: int, patch: tuple[int, ...] | None):
    import keras

    from radiobio.segmentation.layers import RepeatChannels

    name = settings.backbone or "ResNet50"
    matches = [k for k in APPLICATION_SKIPS if k.lower() == name.lower()]
    if not matches:
        raise SettingsError(f"model.backbone {name!r} is not a supported keras.applications encoder; choose one of "
                            f"{sorted(APPLICATION_SKIPS)}")
    name = matches[0]
    inputs = keras.Input((None, None, settings.in_channels), name="image")
    x = inputs if settings.in_channels == 3 else RepeatChannels(3, name="to_rgb")(inputs)
    encoder = getattr(keras.applications, name)(include_top=False, weights=None, input_tensor=x)
    skip_names = APPLICATION_SKIPS[name]
    skips = [encoder.get_layer(n).output for n in skip_names]
    x = encoder.output
    if name == "VGG16":  # VGG's last skip is at stride 16, its output at stride 32 after the final pooling
        skips = skips[:4]
    decoder_filters = [min(settings.base_filters * 2 ** level, settings.max_filters) for level in range(5)]
    for level in reversed(range(5)):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}")(x)
        if level > 0:
            x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level - 1]])
        x = _conv_block(x, decoder_filters[level], 2, settings, f"dec{level}")
    outputs = _head(x, num_classes, 2, "segmentation")
    return keras.Model(inputs, outputs, name=f"{name.lower()}_unet")


def _sm_model(settings: ModelSettings, num_classes: int, patch: tuple[int, ...] | None):
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise SettingsError(f"model.architecture 'sm' (segmentation-models) needs the TensorFlow backend, but Keras "
                            f"runs on {backend!r}; set KERAS_BACKEND=tensorflow before importing radiobio, or use "
                            f"'unet2d' / 'applications_unet2d', which run on every backend")
    if settings.sm_architecture not in SM_ARCHITECTURES:
        raise SettingsError(f"model.sm_architecture {settings.sm_architecture!r}: choose one of {SM_ARCHITECTURES}")
    os.environ["SM_FRAMEWORK"] = "tf.keras"
    import segmentation_models as sm

    backbone = settings.backbone or "resnet34"
    if backbone not in sm.get_available_backbone_names():
        raise SettingsError(f"model.backbone {backbone!r} is not a segmentation-models backbone; choose one of "
                            f"{sorted(sm.get_available_backbone_names())}")
    builder = getattr(sm, settings.sm_architecture)
    shape = (None, None, settings.in_channels)
    if settings.sm_architecture == "PSPNet":  # PSPNet pools to fixed grids, so it needs a fixed input size
        if patch is None:
            raise SettingsError("PSPNet needs preprocessing.patch_size (a multiple of 48)")
        shape = (patch[1], patch[0], settings.in_channels)
    return builder(backbone, input_shape=shape, classes=num_classes, activation="softmax", encoder_weights=None)
