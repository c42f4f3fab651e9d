"""Reporting: QC overlays of masks on images, and one self-contained HTML page of a results folder.

    from radiobio import report
    report.overlay(image, mask, slice=0, window="soft_tissue", path="qc.png")   # contours per label
    report.write_qc(cohort, "results/qc", mask_column="mask")                  # per-case PNGs + montage
    report.html("results")                                                     # results/report.html

The layout of a results folder is described in :mod:`radiobio.report.results`.
"""

from radiobio.report.html import ReportError, collect_failures, html
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
from radiobio.report.qc import write_qc
from radiobio.report.results import package_versions, write_survival, write_versions

__all__ = ["CT_WINDOWS", "DEFAULT_COLOURS", "L3_COLOURS", "ReportError", "apply_window", "collect_failures",
           "extract_slice", "html", "montage", "overlay", "overlay_array", "package_versions", "window_limits",
           "write_qc", "write_survival", "write_versions"]
