"""Imaging biomarkers from masks, as DataFrames in physical units.

Every function takes a cohort (a table or manifest path, see :func:`radiobio.read_cohort`) and returns one row per
case (or per case × label / region), joined on ``case_id``, with ``note`` and ``error`` columns: a case that fails
becomes an ``error`` row and the rest of the cohort is computed. Definitions, formulas and references:
``docs/biomarkers.md``.
"""

from radiobio.biomarkers._common import case_counts
from radiobio.biomarkers.body_composition import DEFAULT_HU, cutoff_for, load_cutoffs, sarcopenia, vertebra_slice_index
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

__all__ = [
    "CARDIAC_LABELS", "DEFAULT_HU", "HIPPOCAMPUS_LABELS", "TOTALSEGMENTATOR_LOBES", "cardiac_function",
    "case_counts", "cutoff_for", "ejection_fraction_pct", "hippocampal_volume", "vertebra_slice_index", "load_cutoffs",
    "lung_involvement", "nodule_categories", "nodule_category", "nodule_growth", "nodule_volumetry", "sarcopenia",
    "slice_area_cm2", "volume_doubling_time", "volume_growth_pct", "volumetry",
]
