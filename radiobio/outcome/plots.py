"""Figures of outcome results: Kaplan-Meier curves with numbers at risk, forest plot of hazard ratios, ROC curve and
calibration plot. Each function returns a matplotlib Figure and saves it when ``path`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from radiobio.errors import OutcomeError


def _save(figure: object, path: str | os.PathLike | None, dpi: int = 150) -> None:
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        figure.savefig(path, dpi=dpi, bbox_inches="tight")


def km_plot(km: object, path: str | os.PathLike | None = None, at_risk: bool = True, ci: bool = True,
            time_label: str | None = None, title: str | None = None) -> object:
    """Kaplan-Meier curves of a :class:`~radiobio.outcome.survival.KaplanMeierResult`, one per group, with the
    log-rank p-value and (``at_risk``) lifelines' numbers-at-risk table under the axis."""
    from lifelines.plotting import add_at_risk_counts
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4.8 if at_risk else 4.0))
    ax = figure.add_subplot(1, 1, 1)
    fitters = list(km.fitters.values())
    for fitter in fitters:
        fitter.plot_survival_function(ax=ax, ci_show=ci)
    ax.set_xlabel(time_label or km.duration)
    ax.set_ylabel("Survival probability")
    ax.set_ylim(0, 1.02)
    if km.logrank is not None:
        p = float(km.logrank["p"].iloc[0])
        ax.text(0.98, 0.95, f"log-rank p = {p:.3g}", transform=ax.transAxes, ha="right", va="top")
    if title:
        ax.set_title(title)
    if at_risk:
        add_at_risk_counts(*fitters, ax=ax, fig=figure)
    figure.tight_layout()
    _save(figure, path)
    return figure


def forest_plot(table: object, path: str | os.PathLike | None = None, title: str | None = None) -> object:
    """Forest plot of hazard ratios with 95% CIs (log scale) from a Cox result or its ``table``."""
    from matplotlib.figure import Figure

    frame = getattr(table, "table", table)
    needed = {"covariate", "hr", "hr_lower_95", "hr_upper_95"}
    if not isinstance(frame, pd.DataFrame) or not needed <= set(frame.columns):
        raise OutcomeError(f"forest_plot needs a table with columns {sorted(needed)} (the result of cox())")
    frame = frame.iloc[::-1].reset_index(drop=True)
    figure = Figure(figsize=(6.5, 1.0 + 0.4 * len(frame)))
    ax = figure.add_subplot(1, 1, 1)
    y = np.arange(len(frame))
    hr = frame["hr"].to_numpy(float)
    errors = [hr - frame["hr_lower_95"].to_numpy(float), frame["hr_upper_95"].to_numpy(float) - hr]
    ax.errorbar(hr, y, xerr=errors,
                fmt="s", color="black", ecolor="black", capsize=3)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(y, frame["covariate"])
    ax.set_xlabel("Hazard ratio (95% CI)")
    if "p" in frame.columns:
        for i, row in frame.iterrows():
            ax.annotate(f"{row['hr']:.2f} ({row['hr_lower_95']:.2f}–{row['hr_upper_95']:.2f}), p={row['p']:.3g}",
                        (1.02, i), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    if title:
        ax.set_title(title)
    figure.tight_layout()
    _save(figure, path)
    return figure


def roc_plot(truth: Sequence[int], scores: Sequence[float], path: str | os.PathLike | None = None,
             label: str = "model", title: str | None = None) -> object:
    """ROC curve of scores against a 0/1 outcome (scikit-learn's ``roc_curve``), AUC in the legend."""
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    truth, scores = np.asarray(truth), np.asarray(scores, dtype=float)
    if len(np.unique(truth)) < 2:
        raise OutcomeError("roc_plot needs both outcome classes (0 and 1) in `truth`")
    fpr, tpr, _ = roc_curve(truth, scores)
    figure = Figure(figsize=(4.8, 4.8))
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, label=f"{label} (AUC = {roc_auc_score(truth, scores):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_aspect("equal")
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    figure.tight_layout()
    _save(figure, path)
    return figure


def calibration_plot(truth: Sequence[int], probability: Sequence[float], path: str | os.PathLike | None = None,
                     bins: int = 10, title: str | None = None) -> object:
    """Calibration plot: observed event fraction against mean predicted probability per quantile bin
    (scikit-learn's ``calibration_curve``), with the ideal diagonal."""
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    truth, probability = np.asarray(truth), np.asarray(probability, dtype=float)
    observed, predicted = calibration_curve(truth, probability, n_bins=bins, strategy="quantile")
    figure = Figure(figsize=(4.8, 4.8))
    ax = figure.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="ideal")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set_xlabel("Predicted probability")
    ax.set_ylabel("Observed fraction")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    figure.tight_layout()
    _save(figure, path)
    return figure
