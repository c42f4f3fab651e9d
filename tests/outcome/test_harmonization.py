"""ComBat: identity without batch effects, removes an injected site shift while keeping a real group effect, and its
non-EB variant equals a per-batch standardisation computed directly here."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from radiobio.errors import OutcomeError
from radiobio.outcome import ComBat
from radiobio.outcome.validation import OutcomeWarning

SITES = np.array(["A", "B", "C"])


def _cohort(seed: int = 0, n: int = 240, p: int = 30, shift: float = 3.0, scale: float = 2.0,
            group_effect: float = 1.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features = truth + site location/scale shift; ``group`` (balanced across sites) raises features 0-4."""
    rng = np.random.default_rng(seed)
    site = np.tile(SITES, n // 3)
    group = rng.binomial(1, 0.5, n)
    truth = rng.normal(0, 1, (n, p)) + 10.0
    truth[:, :5] += group_effect * group[:, None]
    observed = truth.copy()
    observed[site == "B"] = (observed[site == "B"] - 10.0) * scale + 10.0 + shift
    observed[site == "C"] -= shift / 2
    columns = [f"f{i}" for i in range(p)]
    return pd.DataFrame(observed, columns=columns), site, group


def _site_mean_gap(frame: pd.DataFrame, site: np.ndarray) -> float:
    means = np.vstack([frame[site == s].mean().to_numpy() for s in SITES])
    return float(np.abs(means - means.mean(axis=0)).max())


def test_no_batch_effect_is_nearly_identity():
    frame, site, _ = _cohort(shift=0.0, scale=1.0)
    out = ComBat().fit_transform(frame, batch=site)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(frame.columns)
    assert np.abs(out.to_numpy() - frame.to_numpy()).mean() < 0.1  # features have SD 1
    assert np.corrcoef(out.to_numpy().ravel(), frame.to_numpy().ravel())[0, 1] > 0.99


def test_site_shift_removed_group_effect_kept():
    frame, site, group = _cohort()
    assert _site_mean_gap(frame, site) > 2.0
    out = ComBat().fit_transform(frame, batch=site)
    noise_level = 4 * np.sqrt(1.0 / 80)  # 4 standard errors of a site mean of 80 unit-variance samples
    assert _site_mean_gap(out, site) < noise_level
    sds = np.vstack([out[site == s].std().to_numpy() for s in SITES])
    assert np.abs(sds[1] / sds[0] - 1).max() < 0.35  # site B's doubled scale is gone
    # ComBat returns data on the pooled scale: compare effects in units of the within-site, within-group SD
    residual = out - out.groupby([site, group]).transform("mean")
    effect = (out[group == 1].mean() - out[group == 0].mean()) / residual.std()
    assert np.allclose(effect[:5], 1.0, atol=0.3)  # true standardised group effect (Cohen's d) = 1
    assert np.abs(effect[5:]).max() < 0.4


def test_non_eb_variant_equals_direct_per_batch_standardisation():
    frame, site, _ = _cohort(seed=3)
    out = ComBat(empirical_bayes=False).fit_transform(frame, batch=site).to_numpy()
    x = frame.to_numpy()
    grand = x.mean(axis=0)
    residual = x.copy()
    for s in SITES:
        residual[site == s] -= x[site == s].mean(axis=0)
    pooled_sd = np.sqrt((residual ** 2).mean(axis=0))
    expected = np.empty_like(x)
    for s in SITES:
        rows = x[site == s]
        expected[site == s] = (rows - rows.mean(axis=0)) / rows.std(axis=0, ddof=1) * pooled_sd + grand
    assert np.allclose(out, expected, atol=1e-8)


def test_empirical_bayes_shrinks_towards_the_batch_prior():
    frame, site, _ = _cohort(seed=4, n=30)
    combat = ComBat().fit(frame, batch=site)
    for i in range(len(SITES)):
        gamma_bar = combat.gamma_hat_[i].mean()
        between = (combat.gamma_star_[i] - gamma_bar) / (combat.gamma_hat_[i] - gamma_bar)
        assert np.all((between > 0) & (between <= 1 + 1e-9))


def test_fit_on_train_transforms_new_data_of_the_same_sites():
    frame, site, _ = _cohort(seed=5, n=300)
    train = np.arange(len(frame)) < 210
    combat = ComBat().fit(frame[train], batch=site[train])
    out = combat.transform(frame[~train], batch=site[~train])
    assert _site_mean_gap(out, site[~train]) < 4 * np.sqrt(1.0 / 30)
    assert _site_mean_gap(frame[~train], site[~train]) > 2.0


def test_batch_column_inside_the_table_and_covariates_preserved():
    rng = np.random.default_rng(6)
    n = 300
    site = rng.choice(["A", "B"], n)
    group = np.where(site == "A", rng.binomial(1, 0.8, n), rng.binomial(1, 0.2, n))  # confounded with site
    x = rng.normal(0, 1, (n, 8)) + 1.5 * group[:, None] + 2.0 * (site == "B")[:, None]
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)]).assign(site=site, group=group)
    kept = ComBat(batch_column="site", covariates=["group"]).fit_transform(frame)
    assert "site" not in kept.columns and list(kept.columns[:1]) == ["group"]
    effect = kept[group == 1].iloc[:, 1:].mean() - kept[group == 0].iloc[:, 1:].mean()
    assert np.allclose(effect, 1.5, atol=0.3)
    site_gap = kept[site == "B"].iloc[:, 1:].mean() - kept[site == "A"].iloc[:, 1:].mean()
    expected_gap = 1.5 * (group[site == "B"].mean() - group[site == "A"].mean())  # only the group's share remains
    assert np.allclose(site_gap, expected_gap, atol=0.35)


def test_single_patient_batch_is_warned_and_location_only():
    frame, site, _ = _cohort(seed=7, n=60)
    site = site.copy()
    site[0] = "D"
    with pytest.warns(OutcomeWarning, match="single sample"):
        combat = ComBat().fit(frame, batch=site)
    d = list(combat.batches_).index("D")
    assert np.all(combat.delta_star_[d] == 1.0)
    assert np.isfinite(combat.transform(frame, batch=site).to_numpy()).all()


def test_unseen_batch_is_warned_and_left_unadjusted():
    frame, site, _ = _cohort(seed=8, n=60)
    combat = ComBat().fit(frame, batch=site)
    new_site = np.array(["Z"] * 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = combat.transform(frame.iloc[:5], batch=new_site)
    assert any(issubclass(w.category, OutcomeWarning) and "not seen" in str(w.message) for w in caught)
    assert np.allclose(out.to_numpy(), frame.iloc[:5].to_numpy())


def test_bad_batch_input():
    frame, site, _ = _cohort(seed=9, n=30)
    with pytest.raises(OutcomeError, match="batch"):
        ComBat().fit(frame)
    with pytest.raises(OutcomeError, match="'scanner'"):
        ComBat(batch_column="scanner").fit(frame)
    with pytest.raises(OutcomeError, match="missing values"):
        ComBat().fit(frame.mask(frame > 11.5), batch=site)
