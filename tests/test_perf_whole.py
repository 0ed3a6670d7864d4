"""Fast routes of the whole analyze command (issue 23) give what plain routes give."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import numpy as np
import polars as pl
import pytest

from liftlab.engines.polars_attribution import UNATTRIBUTED, last_touch_credit

T0 = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
UTC = pl.Datetime("us", "UTC")
DAY = dt.timedelta(days=1)


def test_last_touch_credit_equals_crediting_order_by_order():
    """Random contacts (some at the same instant, some of customers without orders) and
    orders; each order credited by a loop over its customer's contacts."""
    rng = np.random.default_rng(8)
    n_c, n_o = 3000, 2000
    lo, hi = T0, T0 + 14 * DAY
    span = int((hi - lo + 10 * DAY).total_seconds() // 3600)
    contacts = pl.DataFrame(
        {
            "customer_id": rng.integers(0, 600, n_c),
            "channel": rng.choice(["email", "sms", "mail"], n_c),
            "sent_at": [
                lo - 10 * DAY + dt.timedelta(hours=int(h)) for h in rng.integers(0, span, n_c)
            ],
        },
        schema_overrides={"sent_at": UTC},
    )
    orders = pl.DataFrame(
        {
            "customer_id": rng.integers(0, 400, n_o),
            "ts": [lo - DAY + dt.timedelta(hours=int(h)) for h in rng.integers(0, 16 * 24, n_o)],
            "channel": rng.choice(["web", "store"], n_o),
            "revenue": np.round(rng.lognormal(3, 1, n_o), 2),
        },
        schema_overrides={"ts": UTC},
    )
    got = last_touch_credit(orders.lazy(), contacts.lazy(), lo, hi)
    by_customer = defaultdict(list)
    for r in contacts.iter_rows(named=True):
        by_customer[r["customer_id"]].append((r["sent_at"], r["channel"]))
    want: dict = defaultdict(list)
    for r in orders.iter_rows(named=True):
        if not lo <= r["ts"] < hi:
            continue
        seen = [
            (at, ch)
            for at, ch in by_customer[r["customer_id"]]
            if r["ts"] - 7 * DAY <= at <= r["ts"]
        ]
        last = max((at for at, _ in seen), default=None)
        credit = min((ch for at, ch in seen if at == last), default=UNATTRIBUTED)
        want[(credit, r["channel"])].append(r["revenue"])
    assert {
        (r["credited_channel"], r["purchase_channel"]): (r["revenue"], r["orders"])
        for r in got.iter_rows(named=True)
    } == {k: (pytest.approx(math.fsum(v), rel=1e-12), len(v)) for k, v in want.items()}
