"""Radiomics features: PyRadiomics extraction into feature tables, presets, and robustness analysis."""

from radiobio.features.extraction import extract_features, read_feature_table
from radiobio.features.settings import load_params

__all__ = ["extract_features", "load_params", "read_feature_table"]
