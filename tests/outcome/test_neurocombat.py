"""ComBat against the reference implementation, neuroCombat (Fortin et al. 2018), on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radiobio.outcome.harmonization import ComBat


def site_data(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_sites, per_site, n_features = 3, 40, 12
    batch = np.repeat(np.arange(n_sites), per_site)
    age = rng.uniform(40, 80, batch.size)
    shift = rng.normal(0, 2.0, (n_sites, n_features))
    scale = rng.uniform(0.6, 1.8, (n_sites, n_features))
    signal = 0.05 * age[:, None] + rng.normal(0, 1, (batch.size, n_features))
    values = 10 + signal * scale[batch] + shift[batch]
    frame = pd.DataFrame(values, columns=[f"f{i}" for i in range(n_features)])
    return frame, batch, age


@pytest.mark.parametrize("empirical_bayes", [True, False])
@pytest.mark.parametrize("with_age", [False, True])
def test_matches_neurocombat(empirical_bayes: bool, with_age: bool) -> None:
    from neuroCombat import neuroCombat

    features, batch, age = site_data()
    covars = pd.DataFrame({"batch": batch, "age": age})
    reference = neuroCombat(dat=features.to_numpy().T, covars=covars if with_age else covars[["batch"]],
                            batch_col="batch", continuous_cols=["age"] if with_age else None,
                            eb=empirical_bayes)["data"].T
    data = features.assign(age=age) if with_age else features
    ours = ComBat(covariates=["age"] if with_age else [], empirical_bayes=empirical_bayes).fit_transform(
        data, batch=batch)
    ours = ours[features.columns].to_numpy() if isinstance(ours, pd.DataFrame) else np.asarray(ours)[:, :12]
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-6)
