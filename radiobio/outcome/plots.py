"""Figures of outcome results: Kaplan-Meier curves with numbers at risk, forest plot of hazard ratios, ROC curve,
calibration plot and the Kaplan-Meier curves of a signature's risk groups.

Each function returns a :class:`matplotlib.figure.Figure` (made without pyplot, so nothing is shown or kept
open) and saves it as PNG when ``path`` is given. The result objects' ``plot()`` methods call these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radiobio.errors import OutcomeError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Candidate tick values of the forest plot's log axis (hazard ratios), written as plain numbers.
#: Roundest first: the forest plot takes them in this order while they keep their distance.
HR_TICKS = (1.0, 0.5, 2.0, 0.1, 10.0, 0.2, 5.0, 0.25, 4.0, 0.75, 1.5, 3.0, 0.8, 1.25, 0.01, 100.0, 0.05, 20.0,
            50.0, 0.02, 0.3, 0.4, 0.6, 0.7, 0.9, 1.1, 1.2)


def _save(figure: Figure, path: str | os.PathLike | None, dpi: int = 150) -> None:
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        figure.savefig(path, dpi=dpi, bbox_inches="tight")


def km_plot(km: Any, *, path: str | os.PathLike | None = None, at_risk: bool = True, ci: bool = True,
            time_label: str | None = None, title: str | None = None) -> Figure:
    """Kaplan-Meier curves of a :class:`~radiobio.outcome.survival.KaplanMeierResult`, one per group, labelled
    with the group variable (``horTh = yes``), with the log-rank p-value and (``at_risk``) lifelines'
    numbers-at-risk table under the axis. ``time_label`` names the time axis with its unit (default: the duration
    column)."""
    from lifelines.plotting import add_at_risk_counts
    from matplotlib.figure import Figure

    fitters = list(getattr(km, "fitters", {}).values())
    if not fitters:
        raise OutcomeError("km_plot needs the result of radiobio.outcome.kaplan_meier")
    figure = Figure(figsize=(6.5, 4.8 if at_risk else 4.0))
    ax = figure.add_subplot(1, 1, 1)
    for fitter in fitters:
        fitter.plot_survival_function(ax=ax, ci_show=ci)
    ax.set_xlabel(time_label or km.duration_column)
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


def forest_plot(cox: Any, *, path: str | os.PathLike | None = None, title: str | None = None) -> Figure:
    """Forest plot of hazard ratios with 95% CIs on a log axis, from a
    :class:`~radiobio.outcome.survival.CoxResult` or its ``summary`` table. The axis is labelled with plain
    numbers (0.5, 1, 2 ...) chosen so that they never overlap."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    frame = getattr(cox, "summary", cox)
    needed = {"covariate", "hr", "hr_lower_95", "hr_upper_95"}
    if not isinstance(frame, pd.DataFrame) or not needed <= set(frame.columns):
        raise OutcomeError(f"forest_plot needs a table with columns {sorted(needed)} (the result of cox())")
    frame = frame.iloc[::-1].reset_index(drop=True)
    figure = Figure(figsize=(6.5, 1.0 + 0.4 * len(frame)))
    ax = figure.add_subplot(1, 1, 1)
    y = np.arange(len(frame))
    hr = frame["hr"].to_numpy(float)
    lower, upper = frame["hr_lower_95"].to_numpy(float), frame["hr_upper_95"].to_numpy(float)
    ax.errorbar(hr, y, xerr=[hr - lower, upper - hr], fmt="s", color="black", ecolor="black", capsize=3)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    finite = np.concatenate([lower, upper, [1.0]])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    low, high = finite.min() / 1.15, finite.max() * 1.15
    ax.set_xlim(low, high)
    ticks = _log_ticks(low, high)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
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


def _log_ticks(low: float, high: float, most: int = 7, gap: float = 0.12) -> list[float]:
    """Plain tick values inside [low, high] on a log axis: the roundest values of :data:`HR_TICKS` first (1, the
    line of no effect, always when inside), each at least ``gap`` of the axis' log width from the others so that
    labels never overlap; at most ``most`` of them."""
    width = np.log10(high / low)
    chosen: list[float] = []
    for t in HR_TICKS:
        if low <= t <= high and all(abs(np.log10(t / c)) >= gap * width for c in chosen):
            chosen.append(t)
        if len(chosen) == most:
            break
    if len(chosen) < 2:  # a very narrow axis: its two ends, rounded
        chosen = sorted({float(f"{low * 1.02:.2g}"), float(f"{high / 1.02:.2g}"), *chosen})
    return sorted(chosen)


def roc_plot(truth: Sequence[int], *, scores: Sequence[float], path: str | os.PathLike | None = None,
             label: str = "model", title: str | None = None) -> Figure:
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


def calibration_plot(truth: Sequence[int], *, probability: Sequence[float], path: str | os.PathLike | None = None,
                     bins: int = 10, title: str | None = None) -> Figure:
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


def risk_group_plot(signature: Any, *, repeat: int = 0, path: str | os.PathLike | None = None,
                    time_label: str | None = None, title: str | None = None) -> Figure:
    """Kaplan-Meier curves of the high- and low-risk groups of a survival signature, out of fold.

    Uses the out-of-fold predictions of one ``repeat`` of :func:`radiobio.outcome.nested_cv`: the risk scores of
    different outer folds come from different models, so each fold's test patients are split at that fold's
    median risk (high = above it); the log-rank p compares the two groups.
    """
    from radiobio.outcome.survival import kaplan_meier

    if getattr(signature, "endpoint", None) != "survival":
        raise OutcomeError("risk_group_plot needs a survival signature (nested_cv with duration and event columns)")
    predictions = signature.predictions
    chosen = predictions[predictions["repeat"] == repeat].copy()
    if chosen.empty:
        raise OutcomeError(f"no predictions for repeat {repeat}; repeats run from 0 to "
                           f"{int(predictions['repeat'].max())}")
    fold_median = chosen.groupby("fold")["prediction"].transform("median")
    chosen["predicted risk"] = np.where(chosen["prediction"] > fold_median, "high", "low")
    if chosen["predicted risk"].nunique() < 2:
        raise OutcomeError("every out-of-fold risk is equal within its fold: the model predicts no risk groups")
    km = kaplan_meier(chosen, duration_column=signature.duration_column, event_column=signature.event_column,
                      group_column="predicted risk")
    return km_plot(km, path=path, time_label=time_label,
                   title=title or "Predicted risk groups (out of fold, split at each fold's median)")
