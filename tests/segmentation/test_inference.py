"""Sliding window (streamed, Gaussian-weighted), test-time flips and post-processing."""

from __future__ import annotations

import numpy as np

from radiobio.segmentation.config import PostprocessingSettings
from radiobio.segmentation.inference import gaussian_weights, postprocess, sliding_window, window_starts


def _threshold_model(batch):
    """A fake network: class 1 where the (first channel of the) input is positive."""
    p = (batch[..., 0] > 0).astype("float32")
    return np.stack([1 - p, p], axis=-1)


def test_window_starts_cover_the_volume_with_overlap():
    assert window_starts(10, 16, 0.5) == [0]
    starts = window_starts(100, 32, 0.5)
    assert starts[0] == 0 and starts[-1] == 68
    assert all(b - a <= 16 for a, b in zip(starts, starts[1:]))


def test_gaussian_weights_peak_in_the_middle():
    w = gaussian_weights((9, 9, 9), 0.125)
    assert w[4, 4, 4] == w.max() == 1.0
    assert w.min() > 0 and w[0, 0, 0] < 0.01


def test_streamed_sliding_window_reproduces_the_volume():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(37, 41, 29, 1)).astype("float32")
    labels = sliding_window(_threshold_model, volume, (16, 16, 16), 0.5, 0.125, 2, batch_size=3)
    np.testing.assert_array_equal(labels, (volume[..., 0] > 0).astype(np.uint8))


def test_2d_slices_in_batches_and_volumes_smaller_than_the_window():
    volume = np.random.default_rng(1).normal(size=(7, 20, 24, 1)).astype("float32")
    labels = sliding_window(_threshold_model, volume, (1, 32, 32), 0.5, 0.125, 2, batch_size=4, dims=2)
    np.testing.assert_array_equal(labels, (volume[..., 0] > 0).astype(np.uint8))


def test_postprocessing_keeps_the_largest_component_and_fills_holes():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:12, 2:12, 2:12] = 1
    labels[6, 6, 6] = 0  # a hole
    labels[16:18, 16:18, 16:18] = 1  # a stray blob
    out = postprocess(labels, PostprocessingSettings(largest_component=True, fill_holes=True), [1])
    assert out[16, 16, 16] == 0 and out[6, 6, 6] == 1
    assert out.sum() == 1000
