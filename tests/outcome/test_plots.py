"""Figures (Agg backend): Kaplan-Meier curves with numbers at risk, forest plots on a log axis, ROC and calibration."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_gbsg2, load_rossi
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from radiobio.errors import OutcomeError
from radiobio.outcome import calibration_plot, cox, forest_plot, kaplan_meier, km_plot, roc_plot


@pytest.fixture(autouse=True)
def agg_backend():
    """Headless figures: the Agg backend, whatever the environment sets."""
    matplotlib.use("Agg")


def test_km_plot_has_one_curve_per_group_and_numbers_at_risk(tmp_path):
    rossi = load_rossi()
    km = kaplan_meier(rossi, duration_column="week", event_column="arrest", group_column="fin")
    figure = km_plot(km, path=tmp_path / "km.png", time_label="weeks")
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert {line.get_label() for line in ax.get_lines()} >= {"fin = 0", "fin = 1"}  # the variable is named
    assert ax.get_xlabel() == "weeks"
    at_risk_axes = [a for a in figure.axes if a is not ax]
    labels = " ".join(t.get_text() for a in at_risk_axes for t in a.get_xticklabels())
    assert str((rossi.fin == 0).sum()) in labels  # 216 at risk at time 0 in each arm
    assert any("log-rank p" in t.get_text() for t in ax.texts)
    assert (tmp_path / "km.png").stat().st_size > 1000
    assert km.plot().axes[0].get_xlabel() == "week"  # default: the duration column


def test_forest_plot_places_hazard_ratios_on_a_log_axis_with_plain_ticks_that_do_not_overlap():
    result = cox(load_rossi(), duration_column="week", event_column="arrest", covariates=["fin", "age", "prio"],
                 ph_test=False)
    figure = forest_plot(result)
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["prio", "age", "fin"]
    x = ax.lines[0].get_xdata()
    assert np.allclose(x, result.summary["hr"].iloc[::-1])
    with pytest.raises(OutcomeError, match="hr_lower_95"):
        forest_plot(pd.DataFrame({"covariate": ["a"]}))
    gbsg = cox(load_gbsg2(), duration_column="time", event_column="cens", covariates=["age", "horTh", "pnodes"])
    for fit in (result, gbsg):
        figure = fit.plot()
        ax = figure.axes[0]
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        renderer = canvas.get_renderer()
        shown = [t for t in ax.xaxis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
        texts = [t.get_text() for t in shown]
        assert len(texts) >= 2 and "1" in texts  # the line of no effect is labelled
        assert all(float(text) > 0 for text in texts)  # plain numbers, no 10^x mathtext
        boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False))  # no two labels overlap


def test_roc_and_calibration_plots(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 400)
    y = rng.binomial(1, p)
    roc = roc_plot(y, scores=p, path=tmp_path / "roc.png")
    fpr, tpr = roc.axes[0].lines[0].get_data()
    assert fpr[0] == 0 and tpr[-1] == 1 and "AUC" in roc.axes[0].get_legend().get_texts()[0].get_text()
    calibration = calibration_plot(y, probability=p, bins=5)
    predicted, observed = calibration.axes[0].lines[1].get_data()
    assert len(predicted) == 5 and np.allclose(predicted, observed, atol=0.12)  # calibrated by construction
    assert (tmp_path / "roc.png").exists()
