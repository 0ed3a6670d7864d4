"""Multichannel value with known truth: selection inflates the naive premium, adjustment
moves toward the causal one, the IV covers the truth over repeated simulations, and the
decomposition multiplies back exactly."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from liftlab.data.folder import FolderSource
from liftlab.multichannel import PairStats, analyse, wald_iv

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TRUE_PREMIUM = 1.3  # multichannel clients buy 30% more often, caused by being multichannel


def make_world(path: Path, n: int = 30_000, seed: int = 0) -> Path:
    """Latent value drives both web adoption (selection) and spending; a 90-day pre-period,
    a 28-day look-back and a 28-day outcome period."""
    rng = np.random.default_rng(seed)
    value = rng.lognormal(0, 0.8, n)
    multi = rng.random(n) < 1 / (1 + np.exp(-(-0.8 + 1.0 * np.log(value))))
    rate = 0.03 * value * np.where(multi, TRUE_PREMIUM, 1.0)
    rows = []
    for offset, days in ((0, 90), (90, 28), (118, 28)):
        k = rng.poisson(rate * days)
        cid = np.repeat(np.arange(n), k)
        ts = START + pd_seconds(rng.uniform(offset * 86400, (offset + days) * 86400, len(cid)))
        web = multi[cid] & (rng.random(len(cid)) < 0.5)
        # single-channel clients still need a first purchase in the look-back to be active
        rows.append(pl.DataFrame({"customer_id": cid, "ts": ts,
                                  "channel": np.where(web, "web", "store"),
                                  "revenue": rng.lognormal(3.5, 0.7, len(cid))}))
    orders = pl.concat(rows).with_columns(pl.int_range(pl.len()).alias("order_id"))
    path.mkdir(parents=True, exist_ok=True)
    orders.write_parquet(path / "orders.parquet")
    pl.DataFrame({"customer_id": np.arange(n),
                  "segment": np.where(value > 1.5, "gold", "standard")}
                 ).write_parquet(path / "customers.parquet")
    return path


def pd_seconds(seconds: np.ndarray) -> pl.Series:
    return pl.Series((seconds * 1e6).astype(np.int64)).cast(pl.Duration("us"))


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = make_world(tmp_path_factory.mktemp("mc"))
    lb = (START + dt.timedelta(days=90)).date()
    return analyse(FolderSource(path), (lb, lb + dt.timedelta(days=28)))


def test_decomposition_multiplies_back_exactly(result):
    d = result.decomposition
    assert d["retention"].value * d["frequency"].value * d["basket"].value == pytest.approx(
        result.naive.value, rel=1e-12)


def test_naive_is_inflated_and_adjustment_moves_toward_truth(result):
    assert result.naive.value > TRUE_PREMIUM * 1.3  # selection inflates the naive figure
    for name in ("regression", "ipw", "aipw"):
        adj = result.adjusted[name].value
        assert abs(adj - TRUE_PREMIUM) < abs(result.naive.value - TRUE_PREMIUM), name
    assert result.adjusted["aipw"].value == pytest.approx(TRUE_PREMIUM, rel=0.15)
    assert result.overlap["max_abs_smd_after"] < result.overlap["max_abs_smd_before"]


def _encouragement(rng: np.random.Generator, n: int, effect: float):
    z = rng.random(n) < 0.5
    value = rng.lognormal(0, 0.7, n)
    p_adopt = 0.1 + 0.25 * z
    d = rng.random(n) < np.clip(p_adopt * value / value.mean(), 0, 1)  # selective adoption
    y = 20 * value + effect * d + rng.normal(0, 10, n)
    return z, d.astype(float), y


def test_wald_matches_two_stage_least_squares():
    rng = np.random.default_rng(1)
    z, d, y = _encouragement(rng, 50_000, 8.0)
    est = wald_iv(PairStats.from_values(y[z], d[z]), PairStats.from_values(y[~z], d[~z]))
    first = sm.OLS(d, sm.add_constant(z.astype(float))).fit()
    second = sm.OLS(y, sm.add_constant(first.fittedvalues)).fit()
    assert est.effect == pytest.approx(second.params[1], rel=1e-9)
    # 2SLS robust SE computed with the structural residuals
    resid = y - second.params[0] - second.params[1] * d
    Xh = sm.add_constant(first.fittedvalues)
    bread = np.linalg.inv(Xh.T @ Xh)
    meat = (Xh * resid[:, None] ** 2).T @ Xh
    se = math.sqrt((bread @ meat @ bread)[1, 1])
    half = (est.effect_ci[1] - est.effect_ci[0]) / 2 / 1.959964
    assert half == pytest.approx(se, rel=0.02)


def test_iv_covers_the_truth_over_replications():
    rng = np.random.default_rng(2)
    reps, hits = 300, 0
    for _ in range(reps):
        z, d, y = _encouragement(rng, 4000, 8.0)
        est = wald_iv(PairStats.from_values(y[z], d[z]), PairStats.from_values(y[~z], d[~z]))
        hits += est.effect_ci[0] <= 8.0 <= est.effect_ci[1]
    assert abs(hits / reps - 0.95) < 3 * math.sqrt(0.05 * 0.95 / reps)
