"""Simulated survival outcomes with a known effect, so an outcome model can be checked against the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_survival(exposed: np.ndarray | pd.Series, hazard_ratio: float = 2.0, baseline_median_days: float = 900.0,
                      age: np.ndarray | pd.Series | None = None, age_log_hr_per_year: float = 0.02,
                      follow_up_days: float = 1825.0, dropout_rate_per_year: float = 0.05,
                      seed: int = 0) -> pd.DataFrame:
    """Exponential survival times in which ``exposed`` (e.g. sarcopenia) multiplies the hazard by ``hazard_ratio``.

    Baseline hazard ln2 / ``baseline_median_days`` (per day); optional ``age`` (years) adds
    ``age_log_hr_per_year`` × (age − 65) to the log hazard. Administrative censoring at ``follow_up_days`` and random
    drop-out (exponential, ``dropout_rate_per_year``). Returns ``os_days`` (float, days) and ``os_event`` (1 death,
    0 censored), deterministic by ``seed``.
    """
    rng = np.random.default_rng(seed)
    exposed = np.asarray(exposed, dtype=float)
    log_hazard = np.log(np.log(2.0) / baseline_median_days) + np.log(hazard_ratio) * exposed
    if age is not None:
        log_hazard = log_hazard + age_log_hr_per_year * (np.asarray(age, dtype=float) - 65.0)
    death = rng.exponential(1.0 / np.exp(log_hazard))
    dropout = rng.exponential(365.25 / dropout_rate_per_year, exposed.size) if dropout_rate_per_year > 0 else np.inf
    censor = np.minimum(dropout, follow_up_days)
    return pd.DataFrame({"os_days": np.minimum(death, censor).round(1), "os_event": (death <= censor).astype(int)})
