"""Reporting: QC overlays of masks on images, and one self-contained HTML page of a results folder.

    from radiobio import report
    report.overlay(image, mask, slice=0, window="soft_tissue", path="qc.png")   # contours per label
    report.write_qc(cohort, "results/qc", mask_column="mask")                  # per-case PNGs + montage
    report.write_results_qc("results")                                         # QC of a results folder
    report.write_report("results")                                             # results/report.html
    report.write_review("results")                                             # results/review.html

The layout of a results folder is described in :mod:`radiobio.report.results`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from radiobio._lazy import lazy_exports

_LAZY = {
    "ReportError": "radiobio.errors",
    "collect_failures": "radiobio.report.html",
    "write_report": "radiobio.report.html",
    "CT_WINDOWS": "radiobio.report.overlays",
    "DEFAULT_COLOURS": "radiobio.report.overlays",
    "L3_COLOURS": "radiobio.report.overlays",
    "apply_window": "radiobio.report.overlays",
    "extract_slice": "radiobio.report.overlays",
    "montage": "radiobio.report.overlays",
    "overlay": "radiobio.report.overlays",
    "overlay_array": "radiobio.report.overlays",
    "window_limits": "radiobio.report.overlays",
    "parse_label_names": "radiobio.report.qc",
    "write_qc": "radiobio.report.qc",
    "write_results_qc": "radiobio.report.qc",
    "package_versions": "radiobio.report.results",
    "result_tables": "radiobio.report.results",
    "write_survival": "radiobio.report.results",
    "write_versions": "radiobio.report.results",
    "read_verdicts": "radiobio.report.viewer",
    "review_queue": "radiobio.report.viewer",
    "serve_results": "radiobio.report.viewer",
    "write_review": "radiobio.report.viewer",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
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
    from radiobio.report.viewer import read_verdicts, review_queue, serve_results, write_review
