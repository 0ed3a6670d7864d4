"""The multichannel analysis end to end on contract tables with known truth: latent value
drives both web adoption and spending, so the naive premium is inflated; pre-period
covariates move the adjusted premium toward the causal one; the decomposition multiplies back
exactly and matches a numpy computation from the raw orders."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from liftlab.analyses.multichannel import MultichannelResult, analyze_multichannel
from liftlab.core.errors import UserError
from liftlab.data.folder import FolderSource
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.engines.polars_multichannel import channel_profile, usage
from liftlab.stats.causal import FACTORS, PairStats, wald_iv

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PRE, LOOKBACK, OUTCOME = 90, 28, 28
RATE_PREMIUM, BASKET_PREMIUM = 1.2, 1.1   # caused by using the web as well as the store
TRUE_PREMIUM = RATE_PREMIUM * BASKET_PREMIUM
LB = ((START + dt.timedelta(days=PRE)).date(), (START + dt.timedelta(days=PRE + LOOKBACK)).date())


def _ts(day_from: float, day_to: float, rng: np.random.Generator, k: int) -> pl.Series:
    seconds = rng.uniform(day_from * 86400, day_to * 86400, k)
    start_us = int(START.timestamp() * 1e6)
    return pl.Series("ts", (start_us + seconds * 1e6).astype(np.int64)).cast(
        pl.Datetime("us", "UTC"))


def make_world(path: Path, n: int = 30_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Store clients; the better ones (latent value v) adopt the web at the start of the
    look-back (so the pre-period precedes adoption). Everyone buys in store in the look-back
    (at least once) and adopters also visit the web there, so multichannel = adopter.
    Adopting multiplies the order rate by 1.2 and baskets by 1.1: E[Y(multi)] / E[Y(single)]
    = 1.32 for any population. Orders straddle each period."""
    rng = np.random.default_rng(seed)
    v = rng.lognormal(0, 0.8, n)
    adopt = rng.random(n) < 1 / (1 + np.exp(-(-1.0 + 1.2 * np.log(v))))
    rate = 0.03 * v * np.where(adopt, RATE_PREMIUM, 1.0)
    basket = 40 * v**0.3 * np.where(adopt, BASKET_PREMIUM, 1.0)
    periods = [(0, PRE, 0.03 * v, 40 * v**0.3, 0),              # pre-period: before adoption
               (PRE, PRE + LOOKBACK, rate, basket, 1),          # look-back: at least 1 order
               (PRE + LOOKBACK, PRE + LOOKBACK + OUTCOME, rate, basket, 0),
               (PRE + LOOKBACK + OUTCOME, PRE + LOOKBACK + OUTCOME + 10, rate, basket, 0)]
    frames = []
    for lo, hi, r, b, at_least in periods:
        k = rng.poisson(r * (hi - lo)) + at_least
        cid = np.repeat(np.arange(n), k)
        web = adopt[cid] & (rng.random(len(cid)) < 0.4) & (lo > PRE)  # not in look-back
        frames.append(pl.DataFrame({
            "customer_id": cid, "ts": _ts(lo, hi, rng, len(cid)),
            "channel": np.where(web, "web", "store"),
            "revenue": rng.gamma(4.0, b[cid] / 4.0)}))
    orders = pl.concat(frames).with_columns(pl.int_range(pl.len()).alias("order_id"))
    visitors = np.flatnonzero(adopt)
    k = 1 + rng.poisson(3, len(visitors))
    cid = np.repeat(visitors, k)
    events = pl.concat([
        pl.DataFrame({"customer_id": cid, "channel": "web", "event": "visit",
                      "ts": _ts(PRE, PRE + LOOKBACK, rng, len(cid))}),
        # email opens are not channel usage and must not make anyone multichannel
        pl.DataFrame({"customer_id": np.arange(n), "channel": "email", "event": "open",
                      "ts": _ts(PRE, PRE + LOOKBACK, rng, n)})])
    path.mkdir(parents=True, exist_ok=True)
    orders.write_parquet(path / "orders.parquet")
    events.write_parquet(path / "events.parquet")
    signup = np.datetime64("2024-11-27") + rng.integers(0, 380, n).astype("timedelta64[D]")
    pl.DataFrame({"customer_id": np.arange(n),
                  "segment": np.where(v * rng.lognormal(0, 0.3, n) > 1.5, "gold", "standard"),
                  "signup_date": signup}).write_parquet(path / "customers.parquet")
    return {"adopt": adopt}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("mc")
    return path, make_world(path)


@pytest.fixture(scope="module")
def result(world: tuple[Path, dict[str, np.ndarray]]) -> MultichannelResult:
    return analyze_multichannel(PolarsEngine(FolderSource(world[0])), LB, OUTCOME, PRE)


def test_usage_classifies_adopters_as_multichannel(world, result):
    _, truth = world
    assert result.n_clients == len(truth["adopt"])  # everyone shops in the look-back
    assert result.share_multichannel == pytest.approx(truth["adopt"].mean(), abs=1e-12)
    combos = {c["combination"]: c["clients"] for c in result.combinations}
    assert combos == {"store": int((~truth["adopt"]).sum()),
                      "store+web": int(truth["adopt"].sum())}


def test_decomposition_is_exact_and_matches_the_raw_orders(world, result):
    path, truth = world
    dec = result.decomposition
    product = math.prod(dec.factors[f].value for f in FACTORS)
    assert product == pytest.approx(dec.naive.value, rel=1e-13)
    # independent route: numpy on the raw outcome-period orders
    o = pl.read_parquet(path / "orders.parquet").filter(
        (pl.col("ts") >= dt.datetime.combine(LB[1], dt.time(), dt.UTC))
        & (pl.col("ts") < dt.datetime.combine(LB[1] + dt.timedelta(days=OUTCOME), dt.time(),
                                              dt.UTC)))
    n = len(truth["adopt"])
    k = np.bincount(o["customer_id"].to_numpy(), minlength=n)
    rev = np.bincount(o["customer_id"].to_numpy(), o["revenue"].to_numpy(), minlength=n)
    parts = {}
    for g, m in (("multi", truth["adopt"]), ("single", ~truth["adopt"])):
        parts[g] = {"retention": (k[m] > 0).mean(), "frequency": k[m].sum() / (k[m] > 0).sum(),
                    "basket": rev[m].sum() / k[m].sum(), "value": rev[m].mean()}
    for f in FACTORS:
        assert dec.factors[f].value == pytest.approx(parts["multi"][f] / parts["single"][f],
                                                     rel=1e-9)
    assert dec.naive.value == pytest.approx(parts["multi"]["value"] / parts["single"]["value"],
                                            rel=1e-9)


def test_naive_is_inflated_and_adjustment_moves_toward_truth(result):
    naive = result.naive.value
    assert naive > 2 * TRUE_PREMIUM   # selection inflates the naive premium, as designed
    assert result.naive.ci[0] > 2 * TRUE_PREMIUM
    adj = result.adjusted.ratios
    for name in ("regression", "ipw", "aipw"):
        # measured: each removes 85-90% of the selection bias (1.45-1.49 vs naive 2.98);
        # the rest is residual confounding, the pre-period being a noisy proxy of value
        assert abs(adj[name].value - TRUE_PREMIUM) < 0.2 * (naive - TRUE_PREMIUM), name
        assert adj[name].ci[1] < result.naive.ci[0]
    ov = result.adjusted.overlap
    assert ov.max_abs_smd_after < 0.05 < 0.5 < ov.max_abs_smd_before
    assert result.warnings == ()


def test_appetence_table(world, result):
    rows = {(r["segment"], r["channel"]): r for r in result.appetence}
    assert {c for _, c in rows} == {"store", "web"}
    for seg in ("gold", "standard"):
        assert rows[(seg, "store")]["share"] == 1.0
        assert 0 < rows[(seg, "web")]["share"] < 1
    assert rows[("gold", "web")]["share"] > rows[("standard", "web")]["share"]
    assert sum(rows[(s, "store")]["clients"] for s in ("gold", "standard")) == result.n_clients


def test_to_json_has_the_contract_fields(result):
    iv = wald_iv(PairStats(100, 900.0, 30.0, 9000.0, 30.0, 400.0),
                 PairStats(100, 700.0, 10.0, 6000.0, 10.0, 100.0), "web-onboarding")
    out = json.loads(json.dumps(
        MultichannelResult(**{**result.__dict__, "iv": iv}).to_json(), allow_nan=False))
    assert out["lookback"] == {"start": LB[0].isoformat(), "end": LB[1].isoformat()}
    assert set(out["decomposition"]) == {"frequency", "basket", "retention"}
    assert out["adjusted_method"] == "aipw"
    assert out["adjusted_ratio"] == result.adjusted.ratios["aipw"].value
    assert len(out["adjusted_ratio_ci"]) == 2 and out["naive_ratio"] == result.naive.value
    assert {"experiment", "itt", "first_stage", "effect", "effect_ci"} <= set(out["iv"])
    assert out["iv"]["effect"] == pytest.approx(2.0 / 0.2)
    assert json.loads(json.dumps(result.to_json()))["iv"] is None


def _tiny(path: Path) -> FolderSource:
    """Four customers: store+web (an order and a visit), store only, web orders before the
    window only, nothing; an email open and a visit after the window are ignored."""
    def ts(day: int) -> dt.datetime:
        return START + dt.timedelta(days=day)

    pl.DataFrame({"customer_id": [1, 2, 3, 4], "segment": ["a", "a", "b", "b"]}).write_parquet(
        path / "customers.parquet")
    pl.DataFrame({"order_id": [1, 2, 3, 4], "customer_id": [1, 2, 2, 3],
                  "ts": [ts(1), ts(2), ts(3), ts(-5)], "channel": ["store"] * 3 + ["web"],
                  "revenue": [10.0, 20.0, 5.0, 7.0]}).write_parquet(path / "orders.parquet")
    pl.DataFrame({"customer_id": [1, 2, 2, 4], "channel": ["web", "email", "app", "web"],
                  "event": ["visit", "open", "app_session", "visit"],
                  "ts": [ts(2), ts(2), ts(40), ts(40)]}).write_parquet(path / "events.parquet")
    return FolderSource(path)


def test_usage_and_channel_profile_on_a_tiny_table(tmp_path: Path):
    src = _tiny(tmp_path)
    got = usage(src, START.date(), (START + dt.timedelta(days=10)).date()).collect()
    rows = {r["customer_id"]: r for r in got.to_dicts()}
    assert set(rows) == {1, 2}
    assert rows[1]["combination"] == "store+web" and rows[1]["multi"]
    assert rows[2]["channels"] == ["store"] and not rows[2]["multi"]
    prof = dict(channel_profile(src, (START + dt.timedelta(days=10)).date(), days=20)
                .collect().iter_rows())
    assert prof == {1: "multichannel", 2: "store", 3: "web", 4: "inactive"}
    named = dict(channel_profile(src, (START + dt.timedelta(days=10)).date(), days=20,
                                 max_named=2).collect().iter_rows())
    assert named[1] == "store+web"
    wide = dict(channel_profile(src, (START + dt.timedelta(days=50)).date(), days=60,
                                max_named=2).collect().iter_rows())
    assert wide == {1: "store+web", 2: "app+store", 3: "web", 4: "web"}


def test_too_few_clients_is_a_user_error(tmp_path: Path):
    src = _tiny(tmp_path)
    with pytest.raises(UserError, match="multichannel and 1 single-channel"):
        analyze_multichannel(PolarsEngine(src),
                             (START.date(), (START + dt.timedelta(days=10)).date()))
