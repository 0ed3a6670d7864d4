"""A small contract data set with known effects (email lifts revenue), written to a folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

START = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
END = dt.datetime(2026, 2, 23, tzinfo=dt.UTC)

SPEC_YAML = """\
schema_version: 1
id: tiny-factorial
name: Tiny factorial
start: 2026-02-02
end: 2026-02-23
channels:
  email: {holdout: 0.3, cost_per_contact: 0.01}
  mail:
    holdout: 0.4
    variants: {big: 0.3, small: 0.3}
    cost_per_contact: 0.5
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: conversion, kind: binary, table: orders}
  - {name: aov, kind: ratio, numerator: revenue, denominator: orders}
  - {name: clicks, kind: count, table: events, event: click}
  - {name: unsubscribe, kind: binary, table: events, event: unsubscribe, guardrail: true}
primary_metric: revenue
covariates: {pre_period_days: 28}
segments: [segment]
"""


def make_tiny(path: Path, n: int = 6000, seed: int = 11) -> Path:
    """Customers with a pre-period and an in-window purchase history; email lifts revenue."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    value = rng.lognormal(0, 0.8, n)
    seg = np.where(value > 1.2, "gold", "silver")
    email = np.where(rng.random(n) < 0.3, "holdout", "treatment")
    mail = rng.choice(["holdout", "big", "small"], n, p=[0.4, 0.3, 0.3])
    rate = 0.8 * value * (1 + 0.25 * (email == "treatment")) * (1 + 0.15 * (mail == "big"))
    orders = []
    periods = ((START - dt.timedelta(days=28), 28, 0.8 * value), (START, 21, rate))
    for period_start, days, lam in periods:
        k = rng.poisson(lam)
        cid = np.repeat(ids, k)
        ts = [period_start + dt.timedelta(seconds=float(s))
              for s in rng.uniform(0, days * 86400, len(cid))]
        orders.append(pl.DataFrame({"customer_id": cid, "ts": ts,
                                    "channel": rng.choice(["web", "store"], len(cid)),
                                    "revenue": rng.lognormal(3.5, 0.9, len(cid))}))
    od = pl.concat(orders).with_columns(
        pl.int_range(pl.len()).alias("order_id"),
        (pl.col("revenue") * 0.4).alias("margin"),
        pl.col("ts").dt.cast_time_unit("us"))
    clicks = rng.poisson(np.where(email == "treatment", 1.5, 0.2))
    cid = np.repeat(ids, clicks)
    ev = pl.DataFrame({"customer_id": cid, "channel": "email", "event": "click",
                       "ts": [START + dt.timedelta(hours=float(h))
                              for h in rng.uniform(0, 400, len(cid))]})
    unsub = ids[rng.random(n) < np.where(email == "treatment", 0.02, 0.01)]
    ev = pl.concat([ev, pl.DataFrame({"customer_id": unsub, "channel": "email",
                                      "event": "unsubscribe",
                                      "ts": [START + dt.timedelta(days=1)] * len(unsub)})])
    path.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"customer_id": ids, "segment": seg}).write_parquet(path / "customers.parquet")
    od.write_parquet(path / "orders.parquet")
    ev.with_columns(pl.col("ts").dt.cast_time_unit("us")).write_parquet(path / "events.parquet")
    assign = pl.concat([
        pl.DataFrame({"experiment_id": "tiny-factorial", "customer_id": ids, "channel": "email",
                      "group": email, "assigned_at": [START] * n}),
        pl.DataFrame({"experiment_id": "tiny-factorial", "customer_id": ids, "channel": "mail",
                      "group": mail, "assigned_at": [START] * n})])
    assign.write_parquet(path / "assignments.parquet")
    return path
