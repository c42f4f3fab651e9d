"""Radiomics features: PyRadiomics extraction into feature tables, presets, and robustness analysis.

Names are imported lazily so the extraction path never loads scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "extract_features": "radiobio.features.extraction",
    "read_feature_table": "radiobio.features.extraction",
    "load_params": "radiobio.features.settings",
    "robustness": "radiobio.features.robustness",
    "icc": "radiobio.features.robustness",
    "robust_features": "radiobio.features.robustness",
    "RobustnessFilter": "radiobio.features.robustness",
    "perturb_cohort": "radiobio.features.robustness",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radiobio.features' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
