"""radiobio: imaging biomarkers from CT and MRI cohorts.

Every stage takes a cohort DataFrame and returns one::

    import radiobio
    cohort = radiobio.read_cohort("cohort.csv")
    features = radiobio.extract_features(cohort, params="ct", out="features.parquet")

The public API is imported lazily, so ``import radiobio`` (and ``radiobio extract``) never loads TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from radiobio._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "read_cohort": "radiobio.cohort",
    "read_image": "radiobio.imaging",
    "read_mask": "radiobio.imaging",
    "check_geometry": "radiobio.imaging",
    "read_segmentation": "radiobio.masks",
    "scan_dicom": "radiobio.dicom.scan",
    "read_rtstruct": "radiobio.dicom.rtstruct",
    "write_rtstruct": "radiobio.dicom.rtstruct",
    "rtstruct_rois": "radiobio.dicom.rtstruct",
    "read_seg": "radiobio.dicom.seg",
    "write_seg": "radiobio.dicom.seg",
    "extract_features": "radiobio.features.extraction",
    "train": "radiobio.segmentation.training",
    "segment": "radiobio.segmentation.inference",
    "evaluate": "radiobio.segmentation.metrics",
    "kaplan_meier": "radiobio.outcome.survival",
    "cox": "radiobio.outcome.survival",
    "nested_cv": "radiobio.outcome.signature",
    "RadiobioError": "radiobio.errors",
    "CohortError": "radiobio.errors",
    "ImageReadError": "radiobio.errors",
    "GeometryError": "radiobio.errors",
    "MaskError": "radiobio.errors",
    "SettingsError": "radiobio.errors",
    "ModelBundleError": "radiobio.errors",
    "BiomarkerError": "radiobio.errors",
    "OutcomeError": "radiobio.errors",
}

__getattr__, __dir__, _exported = lazy_exports(__name__, _LAZY)
__all__ = [*_exported, "__version__"]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from radiobio.cohort import read_cohort
    from radiobio.dicom.rtstruct import read_rtstruct, rtstruct_rois, write_rtstruct
    from radiobio.dicom.scan import scan_dicom
    from radiobio.dicom.seg import read_seg, write_seg
    from radiobio.errors import (
        BiomarkerError,
        CohortError,
        GeometryError,
        ImageReadError,
        MaskError,
        ModelBundleError,
        OutcomeError,
        RadiobioError,
        SettingsError,
    )
    from radiobio.features.extraction import extract_features
    from radiobio.imaging import check_geometry, read_image, read_mask
    from radiobio.masks import read_segmentation
    from radiobio.outcome.signature import nested_cv
    from radiobio.outcome.survival import cox, kaplan_meier
    from radiobio.segmentation.inference import segment
    from radiobio.segmentation.metrics import evaluate
    from radiobio.segmentation.training import train
