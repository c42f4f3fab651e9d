"""Segmentation loss and metric, written with ``keras.ops`` and registered for safe loading.

``y_true`` holds integer labels ``(batch, *spatial)`` or ``(batch, *spatial, 1)``; ``y_pred`` softmax
probabilities ``(batch, *spatial, classes)``.
"""

from __future__ import annotations

import keras
from keras import ops


def _one_hot(y_true, num_classes: int):
    labels = ops.cast(y_true, "int32")
    if len(labels.shape) > 1 and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    return ops.one_hot(labels, num_classes, dtype="float32")


@keras.saving.register_keras_serializable(package="radiobio")
class DiceCrossEntropy(keras.losses.Loss):
    """``dice_weight`` × (1 − soft Dice of the foreground classes) + ``ce_weight`` × cross-entropy (nnU-Net's loss).

    The soft Dice pools the whole batch (a class absent from one patch does not make its Dice undefined).
    """

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, smooth: float = 1e-5,
                 name: str = "dice_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        classes = y_pred.shape[-1]
        truth = _one_hot(y_true, classes)
        probs = ops.clip(y_pred, 1e-7, 1.0)
        spatial = tuple(range(1, len(y_pred.shape) - 1))
        cross_entropy = -ops.mean(ops.sum(truth * ops.log(probs), axis=-1), axis=spatial)
        pooled = (0, *spatial)
        intersection = ops.sum(truth * y_pred, axis=pooled)[1:]
        total = ops.sum(truth, axis=pooled)[1:] + ops.sum(y_pred, axis=pooled)[1:]
        dice = ops.mean((2.0 * intersection + self.smooth) / (total + self.smooth))
        return self.ce_weight * cross_entropy + self.dice_weight * (1.0 - dice)

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "ce_weight": self.ce_weight,
                "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="radiobio")
class DiceScore(keras.metrics.Metric):
    """Mean hard Dice of the foreground classes, accumulated over every batch of an epoch (argmax predictions)."""

    def __init__(self, num_classes: int, name: str = "dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.intersection = self.add_variable((self.num_classes,), initializer="zeros", name="intersection")
        self.total = self.add_variable((self.num_classes,), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = _one_hot(y_true, self.num_classes)
        predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes, dtype="float32")
        axes = tuple(range(len(truth.shape) - 1))
        self.intersection.assign_add(ops.sum(truth * predicted, axis=axes))
        self.total.assign_add(ops.sum(truth, axis=axes) + ops.sum(predicted, axis=axes))

    def result(self):
        dice = (2.0 * self.intersection[1:] + 1e-5) / (self.total[1:] + 1e-5)
        return ops.mean(dice)

    def reset_state(self):
        self.intersection.assign(ops.zeros((self.num_classes,)))
        self.total.assign(ops.zeros((self.num_classes,)))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
