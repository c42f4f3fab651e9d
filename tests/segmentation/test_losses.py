"""Dice + cross-entropy loss and the Dice metric: values and serialisation."""

from __future__ import annotations

import keras
import numpy as np

from radiobio.segmentation.losses import DiceCrossEntropy, DiceScore


def test_perfect_prediction_has_near_zero_loss():
    labels = np.random.default_rng(0).integers(0, 3, (2, 8, 8, 1))
    perfect = keras.ops.one_hot(labels[..., 0], 3)
    loss = DiceCrossEntropy()(labels, perfect)
    assert float(loss) < 1e-3
    uniform = np.full((2, 8, 8, 3), 1 / 3, "float32")
    assert float(DiceCrossEntropy()(labels, uniform)) > 1.0


def test_dice_metric_counts_hard_overlap():
    truth = np.zeros((1, 4, 4, 1), int)
    truth[0, :2] = 1
    pred = np.zeros((1, 4, 4, 2), "float32")
    pred[..., 0] = 1
    pred[0, :1, :, 0], pred[0, :1, :, 1] = 0, 1  # predicts half of the object
    metric = DiceScore(2)
    metric.update_state(truth, pred)
    assert abs(float(metric.result()) - 2 * 4 / (8 + 4)) < 1e-4


def test_loss_and_metric_serialise():
    loss = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(DiceCrossEntropy(0.5, 2.0)))
    assert isinstance(loss, DiceCrossEntropy) and loss.dice_weight == 0.5 and loss.ce_weight == 2.0
    metric = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(DiceScore(4)))
    assert metric.num_classes == 4
