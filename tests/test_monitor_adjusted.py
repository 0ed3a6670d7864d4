"""The hourly monitor on ratio metrics and with regression adjustment, end to end on a
batch email built here: the matured cohort's estimate equals statsmodels' OLS with centred
covariates interacted with treatment (Lin 2013) on the units' window outcomes, for a mean
and for a ratio's linearisation; the adjusted interval is narrower than the raw one; the
hourly table and its cache carry what these need."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from liftlab.analyses.monitor import MonitorResult, run_monitor
from liftlab.core.errors import DataError
from liftlab.engines.polars_monitor import PolarsHourly
from liftlab.spec.loader import parse_experiment
from liftlab.stats import regression
from liftlab.stats.regression import Moments

SEND = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
TS = pl.Datetime("us", "UTC")
WINDOW_H, PRE_DAYS = 24, 28
SPEC = """\
schema_version: 1
id: batch-email
start: 2026-03-02
end: 2026-03-23
channels:
  email: {holdout: 0.3}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: aov, kind: ratio, numerator: revenue, denominator: orders}
primary_metric: PRIMARY
COVARIATES
monitoring: {sequential: true, response_window_hours: 24, min_events_per_arm: 20}
"""
REGRESSION = "covariates: {pre_period_days: 28, method: regression, attributes: [tenure]}"


def spec_text(primary: str, covariates: str = REGRESSION) -> str:
    return SPEC.replace("PRIMARY", primary).replace("COVARIATES", covariates)


def make_send(n: int = 6000, seed: int = 0, lift: float = 0.2) -> dict[str, pl.DataFrame]:
    """A batch send at 09:00 to 70% of ``n`` customers. A customer's taste drives orders in
    the 28 days before and in the response window (exponential delays, mean 10 h), and a
    basket size drives both periods' order values."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    treated = rng.random(n) < 0.7
    taste = rng.gamma(2.0, 0.5, n)
    basket = rng.lognormal(3.0, 0.5, n)
    send_us = int(SEND.timestamp() * 1e6)
    day_us = 86_400_000_000
    k_pre = rng.poisson(8 * taste)
    k_win = rng.poisson(2 * taste * np.where(treated, 1 + lift, 1.0))
    who = np.concatenate([np.repeat(ids, k_pre), np.repeat(ids, k_win)])
    ts = np.concatenate(
        [
            send_us - rng.integers(1, PRE_DAYS * day_us, k_pre.sum()),
            send_us + rng.exponential(10 * 3600e6, k_win.sum()).astype(np.int64),
        ]
    )
    revenue = basket[who - 1] * rng.lognormal(0.0, 0.3, len(who))
    orders = pl.DataFrame(
        {
            "order_id": np.arange(len(who)),
            "customer_id": who,
            "ts": ts,
            "channel": "web",
            "revenue": revenue,
        }
    ).with_columns(pl.col("ts").cast(TS))
    assignments = pl.DataFrame(
        {
            "customer_id": ids,
            "channel": "email",
            "group": np.where(treated, "treatment", "holdout"),
            "assigned_at": send_us - 3_600_000_000,
        }
    ).with_columns(pl.col("assigned_at").cast(TS))
    contacts = pl.DataFrame(
        {"customer_id": ids[treated], "channel": "email", "sent_at": send_us, "cost": 0.002}
    ).with_columns(pl.col("sent_at").cast(TS))
    customers = pl.DataFrame({"customer_id": ids, "tenure": np.round(rng.gamma(2, 200, n) * taste)})
    return {
        "assignments": assignments,
        "contacts": contacts,
        "orders": orders,
        "customers": customers,
    }


def monitor(
    data: dict[str, pl.DataFrame], spec: str, hours: float = 40, cache: Path | None = None
) -> MonitorResult:
    tables = {k: v.lazy() for k, v in data.items()}
    return run_monitor(parse_experiment(spec), tables, SEND + dt.timedelta(hours=hours), cache)


def unit_table(data: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Per unit: arm, revenue and orders in the window and in the pre-period, tenure."""
    o = data["orders"]
    win = o.filter((pl.col("ts") >= SEND) & (pl.col("ts") < SEND + dt.timedelta(hours=WINDOW_H)))
    pre = o.filter((pl.col("ts") < SEND) & (pl.col("ts") >= SEND - dt.timedelta(days=PRE_DAYS)))

    def per(frame: pl.DataFrame, suffix: str) -> pl.DataFrame:
        return frame.group_by("customer_id").agg(
            pl.col("revenue").sum().alias(f"rev{suffix}"),
            pl.len().cast(pl.Float64).alias(f"ord{suffix}"),
        )

    return (
        data["assignments"]
        .select("customer_id", "group")
        .join(per(win, ""), on="customer_id", how="left")
        .join(per(pre, "_pre"), on="customer_id", how="left")
        .join(data["customers"], on="customer_id", how="left")
        .fill_null(0.0)
        .sort("customer_id")
    )


def lin_ols(y: np.ndarray, treated: np.ndarray, x: np.ndarray) -> float:
    """statsmodels: the coefficient of T in y ~ 1 + T + xc + T:xc, xc centred overall."""
    xc = x - x.mean(axis=0)
    design = np.column_stack([np.ones(len(y)), treated, xc, treated[:, None] * xc])
    return float(sm.OLS(y, design).fit().params[1])


@pytest.fixture(scope="module")
def data() -> dict[str, pl.DataFrame]:
    return make_send()


def test_adjusted_mean_equals_statsmodels_interacted_ols(data):
    res = monitor(data, spec_text("revenue"))
    last = res.timeline[-1]
    u = unit_table(data)
    treated = (u["group"] == "treatment").to_numpy().astype(float)
    x = u.select("rev_pre", "tenure").to_numpy()  # a mean's own pre-period value, attributes
    expected = lin_ols(u["rev"].to_numpy(), treated, x)
    assert last["n_treatment"] + last["n_holdout"] == u.height
    assert last["estimate"] == pytest.approx(expected, rel=1e-9)
    assert last["ci"][0] < last["estimate"] < last["ci"][1]


def test_adjusted_ratio_equals_statsmodels_on_the_linearisation(data):
    """Per arm, z = R_a + (num - R_a den) / mean(den); Lin's OLS of z gives the adjusted
    difference of ratios (the delta method's linearisation, as at the fixed horizon)."""
    res = monitor(data, spec_text("aov"))
    last = res.timeline[-1]
    u = unit_table(data)
    treated = (u["group"] == "treatment").to_numpy()
    num, den = u["rev"].to_numpy(), u["ord"].to_numpy()
    z = np.empty(len(num))
    for arm in (treated, ~treated):
        r = num[arm].sum() / den[arm].sum()
        z[arm] = r + (num[arm] - r * den[arm]) / den[arm].mean()
    x = u.select("rev_pre", "ord_pre", "tenure").to_numpy()
    assert last["estimate"] == pytest.approx(lin_ols(z, treated.astype(float), x), rel=1e-9)
    raw = monitor(data, spec_text("aov", "")).timeline[-1]
    r_t = num[treated].sum() / den[treated].sum()
    r_h = num[~treated].sum() / den[~treated].sum()
    assert raw["estimate"] == pytest.approx(r_t - r_h, rel=1e-9)  # no covariates: the ratio
    assert raw["rate_ratio"] is None and raw["event_p_value"] is None  # no event test


@pytest.mark.parametrize("primary", ["revenue", "aov"])
def test_adjusted_interval_is_narrower_than_the_raw_one(data, primary):
    adjusted = monitor(data, spec_text(primary)).timeline[-1]
    raw = monitor(data, spec_text(primary, "")).timeline[-1]
    width = adjusted["ci"][1] - adjusted["ci"][0]
    assert width < 0.9 * (raw["ci"][1] - raw["ci"][0])


def test_cuped_spec_adjusts_by_the_own_pre_period_value(data):
    """method: cuped (pre_period_days alone): Lin's regression on the metric's own
    pre-period value only; a ratio stays unadjusted, as at the fixed horizon."""
    cuped = "covariates: {pre_period_days: 28}"
    last = monitor(data, spec_text("revenue", cuped)).timeline[-1]
    u = unit_table(data)
    treated = (u["group"] == "treatment").to_numpy().astype(float)
    expected = lin_ols(u["rev"].to_numpy(), treated, u.select("rev_pre").to_numpy())
    assert last["estimate"] == pytest.approx(expected, rel=1e-9)
    ratio = monitor(data, spec_text("aov", cuped)).timeline[-1]
    assert ratio["ci"] == monitor(data, spec_text("aov", "")).timeline[-1]["ci"]


def test_cache_carries_the_cross_products(data, tmp_path: Path):
    spec = spec_text("aov")
    first = monitor(data, spec, hours=20, cache=tmp_path)
    later = monitor(data, spec, hours=40, cache=tmp_path)
    fresh = monitor(data, spec, hours=40)
    assert first.hours_computed > 0 and later.hours_from_cache > 0
    assert [r["estimate"] is None for r in later.timeline] == [
        r["estimate"] is None for r in fresh.timeline
    ]
    for a, b in zip(later.timeline, fresh.timeline, strict=True):
        if a["estimate"] is not None:
            assert (a["estimate"], *a["ci"]) == pytest.approx((b["estimate"], *b["ci"]), rel=1e-9)


def test_attributes_without_a_customers_table_is_a_user_error(data):
    tables = {k: v for k, v in data.items() if k != "customers"}
    with pytest.raises(DataError, match="customers"):
        monitor(tables, spec_text("revenue"))


def test_group_sequential_look_uses_the_adjusted_ratio(data):
    """method: group_sequential on an adjusted ratio: the look's z is Lin's adjusted ratio
    difference over its standard error, computed here from the units' own cross-products."""
    spec = spec_text("aov").replace(
        "monitoring: {sequential: true,",
        "monitoring: {sequential: true, method: group_sequential, horizon_hours: 48, looks: 2,",
    )
    res = monitor(data, spec, hours=60)
    looks = res.comparisons[0]["looks"]
    assert len(looks) == 1 and looks[0]["final"]  # one batch: the cohort matures at 24 h
    u = unit_table(data)
    names = ["rev", "ord", "rev_pre", "ord_pre", "tenure"]
    arms = [u.filter(pl.col("group") == g) for g in ("treatment", "holdout")]
    mt, mh = (Moments.from_columns({c: a[c].to_numpy() for c in names}) for a in arms)
    lift = regression.lin_ratio(mt, mh, "rev", "ord", ["rev_pre", "ord_pre", "tenure"])
    assert looks[0]["z"] == pytest.approx(lift.abs / lift.abs_se, rel=1e-9)
    assert looks[0]["fraction"] == pytest.approx(1.0)


def test_ratio_baseline_is_the_delta_method_linearisation(data):
    """The pre-exposure baseline of a ratio primary (it tunes expected_lift): the ratio and
    the sample sd of (num - R den) / mean(den) over the window before exposure (numpy)."""
    spec = parse_experiment(spec_text("aov"))
    source = PolarsHourly(spec, {k: v.lazy() for k, v in data.items()})
    window = dt.timedelta(hours=WINDOW_H)
    base = source.baseline(source.exposures(window), window, [spec.metric("aov")])["email"]
    o = data["orders"].filter((pl.col("ts") < SEND) & (pl.col("ts") >= SEND - window))
    ids = data["assignments"]["customer_id"].to_numpy()
    num, den = np.zeros(ids.max() + 1), np.zeros(ids.max() + 1)
    np.add.at(num, o["customer_id"].to_numpy(), o["revenue"].to_numpy())
    np.add.at(den, o["customer_id"].to_numpy(), 1.0)
    num, den = num[ids], den[ids]
    r = num.sum() / den.sum()
    assert base["mean"] == pytest.approx(r, rel=1e-9)
    assert base["sd"] == pytest.approx(((num - r * den) / den.mean()).std(ddof=1), rel=1e-9)


def test_a_count_metric_counts_each_units_rows(data):
    """A count metric without an event filter counts a unit's rows in its window (not 1 per
    responding unit)."""
    spec = spec_text("n_orders", "").replace(
        "  - {name: aov,", "  - {name: n_orders, kind: count, table: orders}\n  - {name: aov,"
    )
    last = monitor(data, spec).timeline[-1]
    u = unit_table(data)
    means = [u.filter(pl.col("group") == g)["ord"].mean() for g in ("treatment", "holdout")]
    assert u["ord"].max() > 1
    assert last["estimate"] == pytest.approx(means[0] - means[1], rel=1e-9)


@pytest.mark.parametrize(
    "primary,covariates,estimator",
    [
        ("revenue", REGRESSION, "lin_regression"),
        ("aov", REGRESSION, "delta_ratio_regression"),
        ("aov", "", "delta_ratio"),
        ("revenue", "", "mean"),
    ],
)
def test_each_comparison_names_its_estimator(data, primary, covariates, estimator):
    comp = monitor(data, spec_text(primary, covariates)).comparisons[0]
    assert comp["estimator"] == estimator
    assert bool(comp["covariates"]) == (covariates != "")


def test_a_ratio_guardrail_stops_the_test_on_harm(data):
    """A ratio guardrail (basket value, harmed when it falls) runs its one-sided cohort test
    on the adjusted delta-method estimate: treated orders at 70% of their value are harm."""
    treated = data["assignments"].filter(pl.col("group") == "treatment")["customer_id"]
    cheaper = pl.when(pl.col("customer_id").is_in(treated.implode()) & (pl.col("ts") >= SEND))
    harmed = {
        **data,
        "orders": data["orders"].with_columns(
            cheaper.then(pl.col("revenue") * 0.7).otherwise(pl.col("revenue")).alias("revenue")
        ),
    }
    spec = spec_text("revenue").replace(
        "{name: aov, kind: ratio, numerator: revenue, denominator: orders}",
        "{name: aov, kind: ratio, numerator: revenue, denominator: orders, guardrail: true, "
        "direction: increase}",
    )
    res = monitor(harmed, spec)  # (the primary's event test called the win hours earlier)
    assert [g["metric"] for g in res.guardrails] == ["aov"]
    assert res.guardrails[0]["decision"] == "harm"
    assert monitor(data, spec).guardrails[0]["decision"] == "continue"
