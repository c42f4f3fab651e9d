"""Radiomics features: PyRadiomics extraction into feature tables, presets, and robustness analysis.

Names are imported lazily so the extraction path never loads scikit-learn.
"""

from __future__ import annotations

from radiobio._lazy import lazy_exports

_LAZY = {
    "extract_features": "radiobio.features.extraction",
    "read_feature_table": "radiobio.features.extraction",
    "load_params": "radiobio.features.settings",
    "robustness_table": "radiobio.features.robustness",
    "icc": "radiobio.features.robustness",
    "robust_features": "radiobio.features.robustness",
    "perturb_cohort": "radiobio.features.robustness",
    "to_wide": "radiobio.features.wide",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
