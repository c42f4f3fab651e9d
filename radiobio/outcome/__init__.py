"""Outcome modelling: survival analysis, prediction and leakage-safe signature building from imaging biomarkers.

    from radiobio import outcome
    km = outcome.kaplan_meier(df, duration_column="os_days", event_column="os_event", group_column="sarcopenia")
    fit = outcome.cox(df, duration_column="os_days", event_column="os_event", covariates=["age", "smi_cm2_m2"])
    fit.print_summary(); fit.plot()
    signature = outcome.nested_cv(features, features=radiomics_columns, duration_column="os_days",
                                  event_column="os_event", patient_column="patient_id", batch_column="site")

All fitting is lifelines' and scikit-learn's; names are imported lazily so ``import radiobio.outcome`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from radiobio._lazy import lazy_exports

_LAZY = {
    "kaplan_meier": "radiobio.outcome.survival",
    "cox": "radiobio.outcome.survival",
    "KaplanMeierResult": "radiobio.outcome.survival",
    "CoxResult": "radiobio.outcome.survival",
    "nested_cv": "radiobio.outcome.signature",
    "metric_summary": "radiobio.outcome.signature",
    "SignatureResult": "radiobio.outcome.signature",
    "ComBat": "radiobio.outcome.harmonization",
    "CoxPHEstimator": "radiobio.outcome.modeling",
    "LassoCoxSelector": "radiobio.outcome.modeling",
    "L1LogisticSelector": "radiobio.outcome.modeling",
    "CorrelationFilter": "radiobio.outcome.modeling",
    "FeatureSubset": "radiobio.outcome.modeling",
    "build_pipeline": "radiobio.outcome.modeling",
    "cox_score_statistics": "radiobio.outcome.modeling",
    "survival_target": "radiobio.outcome.metrics",
    "concordance": "radiobio.outcome.metrics",
    "survival_brier": "radiobio.outcome.metrics",
    "survival_calibration_slope": "radiobio.outcome.metrics",
    "binary_calibration_slope": "radiobio.outcome.metrics",
    "km_plot": "radiobio.outcome.plots",
    "forest_plot": "radiobio.outcome.plots",
    "roc_plot": "radiobio.outcome.plots",
    "calibration_plot": "radiobio.outcome.plots",
    "risk_group_plot": "radiobio.outcome.plots",
    "OutcomeWarning": "radiobio.errors",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from radiobio.errors import OutcomeWarning
    from radiobio.outcome.harmonization import ComBat
    from radiobio.outcome.metrics import (
        binary_calibration_slope,
        concordance,
        survival_brier,
        survival_calibration_slope,
        survival_target,
    )
    from radiobio.outcome.modeling import (
        CorrelationFilter,
        CoxPHEstimator,
        FeatureSubset,
        L1LogisticSelector,
        LassoCoxSelector,
        build_pipeline,
        cox_score_statistics,
    )
    from radiobio.outcome.plots import calibration_plot, forest_plot, km_plot, risk_group_plot, roc_plot
    from radiobio.outcome.signature import SignatureResult, metric_summary, nested_cv
    from radiobio.outcome.survival import CoxResult, KaplanMeierResult, cox, kaplan_meier
