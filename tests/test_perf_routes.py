"""Fast routes of issue 23 give what the plain routes give (see also tests/test_stable.py)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from liftlab.engines.polars_attribution import last_touch_credit

T0 = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
UTC = pl.Datetime("us", "UTC")


def test_last_touch_skips_only_contacts_too_old_to_credit_an_order() -> None:
    """Contacts before start - lookback are left out before the as-of join; one exactly at
    that bound still credits an order at the window's first instant."""
    day = dt.timedelta(days=1)
    orders = pl.LazyFrame(
        {
            "customer_id": [1, 2, 3],
            "ts": [T0, T0, T0 + 3 * day],
            "channel": ["web", "web", "store"],
            "revenue": [10.0, 20.0, 40.0],
        },
        schema_overrides={"ts": UTC},
    )
    contacts = pl.LazyFrame(
        {
            "customer_id": [1, 2, 3, 3],
            "channel": ["email", "sms", "mail", "email"],
            "sent_at": [
                T0 - 7 * day,
                T0 - 7 * day - dt.timedelta(microseconds=1),
                T0 - 30 * day,
                T0 - 4 * day,
            ],
        },
        schema_overrides={"sent_at": UTC},
    )
    out = last_touch_credit(orders, contacts, T0, T0 + 21 * day, lookback_days=7)
    got = {
        (r["credited_channel"], r["purchase_channel"]): (r["revenue"], r["orders"])
        for r in out.iter_rows(named=True)
    }
    assert got == {
        ("email", "web"): (10.0, 1),
        ("(none)", "web"): (20.0, 1),
        ("email", "store"): (40.0, 1),
    }


def test_assignment_counts_by_distinct_time_equal_counts_over_every_unit() -> None:
    """The monitor's SRM counts per hour (units assigned by then), from counts per distinct
    assignment time, equal a search over every unit's sorted time."""
    import numpy as np

    from liftlab.analyses.monitor import _assigned

    rng = np.random.default_rng(5)
    n = 5000
    times = T0 + pl.Series(
        rng.choice([0, 0, 0, 3_600, 5_400, 86_400], n) * 1_000_000 + rng.integers(0, 3, n)
    ).cast(pl.Duration("us"))
    exposure = pl.DataFrame(
        {
            "xch": rng.choice(["email", "sms"], n),
            "arm": rng.choice(["holdout", "treatment"], n),
            "assigned_at": times,
        }
    )
    hours = [T0 + dt.timedelta(hours=h) for h in range(-1, 30)]
    got = _assigned(exposure, hours)
    for (ch, arm), group in exposure.group_by("xch", "arm"):
        at = np.sort(group["assigned_at"].dt.epoch("us").to_numpy())
        for h in hours:
            expected = int(np.searchsorted(at, int(h.timestamp() * 1_000_000), side="right"))
            assert got[(ch, arm, h)] == expected
