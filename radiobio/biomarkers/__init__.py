"""Imaging biomarkers from masks, as DataFrames in physical units.

Every function takes a cohort (a table or manifest path, see :func:`radiobio.read_cohort`) and returns one row per
case (or per case × label / region), joined on ``case_id``, with ``note`` and ``error`` columns: a case that fails
becomes an ``error`` row and the rest of the cohort is computed. Definitions, formulas and references:
``docs/biomarkers.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from radiobio._lazy import lazy_exports

_LAZY = {
    "case_counts": "radiobio.biomarkers._common",
    "DEFAULT_HU": "radiobio.biomarkers.body_composition",
    "cutoff_for": "radiobio.biomarkers.body_composition",
    "load_cutoffs": "radiobio.biomarkers.body_composition",
    "sarcopenia": "radiobio.biomarkers.body_composition",
    "vertebra_slice_index": "radiobio.biomarkers.body_composition",
    "CARDIAC_LABELS": "radiobio.biomarkers.cardiac",
    "cardiac_function": "radiobio.biomarkers.cardiac",
    "ejection_fraction_pct": "radiobio.biomarkers.cardiac",
    "TOTALSEGMENTATOR_LOBES": "radiobio.biomarkers.lung",
    "lung_involvement": "radiobio.biomarkers.lung",
    "nodule_categories": "radiobio.biomarkers.lung",
    "nodule_category": "radiobio.biomarkers.lung",
    "nodule_growth": "radiobio.biomarkers.lung",
    "nodule_volumetry": "radiobio.biomarkers.lung",
    "volume_doubling_time": "radiobio.biomarkers.lung",
    "volume_growth_pct": "radiobio.biomarkers.lung",
    "HIPPOCAMPUS_LABELS": "radiobio.biomarkers.neuro",
    "hippocampal_volume": "radiobio.biomarkers.neuro",
    "slice_area_cm2": "radiobio.biomarkers.volumes",
    "volumetry": "radiobio.biomarkers.volumes",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from radiobio.biomarkers._common import case_counts
    from radiobio.biomarkers.body_composition import (
        DEFAULT_HU,
        cutoff_for,
        load_cutoffs,
        sarcopenia,
        vertebra_slice_index,
    )
    from radiobio.biomarkers.cardiac import CARDIAC_LABELS, cardiac_function, ejection_fraction_pct
    from radiobio.biomarkers.lung import (
        TOTALSEGMENTATOR_LOBES,
        lung_involvement,
        nodule_categories,
        nodule_category,
        nodule_growth,
        nodule_volumetry,
        volume_doubling_time,
        volume_growth_pct,
    )
    from radiobio.biomarkers.neuro import HIPPOCAMPUS_LABELS, hippocampal_volume
    from radiobio.biomarkers.volumes import slice_area_cm2, volumetry
