"""The few custom Keras layers radiobio needs, written with ``keras.ops`` only and registered for safe loading."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="radiobio")
class RepeatChannels(keras.layers.Layer):
    """Repeat a 1-channel image to ``channels`` channels (ImageNet encoders expect RGB input)."""

    def __init__(self, channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, inputs):
        return ops.repeat(inputs, self.channels, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
