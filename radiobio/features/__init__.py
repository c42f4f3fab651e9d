"""Radiomics features: PyRadiomics extraction into feature tables, presets, and robustness analysis.

Names are imported lazily so the extraction path never loads scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    "ibsi_family_features": "radiobio.features.ibsi_families",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from radiobio.features.extraction import extract_features, read_feature_table
    from radiobio.features.ibsi_families import ibsi_family_features
    from radiobio.features.robustness import icc, perturb_cohort, robust_features, robustness_table
    from radiobio.features.settings import load_params
    from radiobio.features.wide import to_wide
