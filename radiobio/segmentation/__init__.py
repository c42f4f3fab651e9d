"""Segmentation: Keras encoder-decoder models that train on a cohort, segment a cohort and are scored in mm.

``build_model(config)`` builds a network, ``train(cohort, config=..., out_dir=...)`` writes a model bundle,
``segment(cohort, model=..., out_dir=...)`` adds a mask column, ``evaluate(cohort, ref_column=...)`` scores it.
Keras (and with it TensorFlow / PyTorch / JAX) is imported only when a function that needs it runs; TensorFlow then
starts
without its console chatter (:func:`radiobio.quiet.quiet_tensorflow`). ``read_bundle(name)`` checks a bundle and
its card without importing Keras at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from radiobio._lazy import lazy_exports
from radiobio.quiet import quiet_tensorflow

quiet_tensorflow()  # cheap: makes the first `import tensorflow` of the process, whoever makes it, quiet

_LAZY = {
    "build_model": "radiobio.segmentation.architectures",
    "train": "radiobio.segmentation.training",
    "validate_bundle": "radiobio.segmentation.training",
    "segment": "radiobio.segmentation.inference",
    "segment_image": "radiobio.segmentation.inference",
    "evaluate": "radiobio.segmentation.metrics",
    "summarize": "radiobio.segmentation.metrics",
    "compare_masks": "radiobio.segmentation.metrics",
    "stress_test": "radiobio.segmentation.stress",
    "PERTURBATIONS": "radiobio.segmentation.perturbations",
    "load_bundle": "radiobio.segmentation.bundle",
    "read_bundle": "radiobio.segmentation.bundle",
    "ModelBundle": "radiobio.segmentation.bundle",
    "find_bundle": "radiobio.segmentation.catalogue",
    "list_bundles": "radiobio.segmentation.catalogue",
    "SegmentationConfig": "radiobio.segmentation.config",
    "as_config": "radiobio.segmentation.config",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from radiobio.segmentation.architectures import build_model
    from radiobio.segmentation.bundle import ModelBundle, load_bundle, read_bundle
    from radiobio.segmentation.catalogue import find_bundle, list_bundles
    from radiobio.segmentation.config import SegmentationConfig, as_config
    from radiobio.segmentation.inference import segment, segment_image
    from radiobio.segmentation.metrics import compare_masks, evaluate, summarize
    from radiobio.segmentation.perturbations import PERTURBATIONS
    from radiobio.segmentation.stress import stress_test
    from radiobio.segmentation.training import train, validate_bundle
