"""Reporting: QC overlays of masks on images, and one self-contained HTML page of a results folder.

    from radiobio import report
    report.overlay(image, mask, slice=0, window="soft_tissue", path="qc.png")   # contours per label
    report.write_qc(cohort, "results/qc", mask_column="mask")                  # per-case PNGs + montage
    report.write_results_qc("results")                                         # QC of a results folder
    report.write_report("results")                                             # results/report.html

The layout of a results folder is described in :mod:`radiobio.report.results`.
"""

from radiobio.errors import ReportError
from radiobio.report.html import collect_failures, write_report
from radiobio.report.overlays import (
    CT_WINDOWS,
    DEFAULT_COLOURS,
    L3_COLOURS,
    apply_window,
    extract_slice,
    montage,
    overlay,
    overlay_array,
    window_limits,
)
from radiobio.report.qc import parse_label_names, write_qc, write_results_qc
from radiobio.report.results import package_versions, result_tables, write_survival, write_versions

__all__ = ["CT_WINDOWS", "DEFAULT_COLOURS", "L3_COLOURS", "ReportError", "apply_window",
           "collect_failures", "extract_slice", "montage", "overlay", "overlay_array", "package_versions",
           "parse_label_names", "result_tables", "window_limits", "write_qc", "write_report", "write_results_qc",
           "write_survival", "write_versions"]
