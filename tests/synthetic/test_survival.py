"""Simulated survival: lifelines recovers the hazard ratio that was put in."""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter

from radiobio.synthetic.survival import simulate_survival


def test_cox_recovers_the_simulated_hazard_ratio() -> None:
    rng = np.random.default_rng(1)
    exposed = rng.random(3000) < 0.4
    age = rng.uniform(45, 85, 3000)
    outcome = simulate_survival(exposed, hazard_ratio=2.0, age=age, seed=2)
    assert 0.3 < outcome["os_event"].mean() < 0.95
    assert outcome["os_days"].max() <= 1825.0
    frame = pd.concat([outcome, pd.DataFrame({"exposed": exposed.astype(int), "age": age})], axis=1)
    fit = CoxPHFitter().fit(frame, "os_days", "os_event")
    low, high = np.exp(fit.confidence_intervals_.loc["exposed"])
    assert low < 2.0 < high
    assert abs(fit.params_["age"] - 0.02) < 0.01
