"""Last-touch credit on polars tables: the row work behind the landing section's comparison
of the experiment's increment with what last-touch attribution would credit."""

from __future__ import annotations

import datetime as dt

import polars as pl

from liftlab.core.stable import stable_sum

UNATTRIBUTED = "(none)"
UTC_US = pl.Datetime("us", "UTC")
CREDIT_SCHEMA = {"credited_channel": pl.String, "purchase_channel": pl.String,
                 "revenue": pl.Float64, "orders": pl.UInt32}


def last_touch_credit(orders: pl.LazyFrame, contacts: pl.LazyFrame, start: dt.datetime,
                      end: dt.datetime, lookback_days: float = 7) -> pl.DataFrame:
    """Revenue and orders in [start, end) credited by last-touch attribution: each order goes
    to the customer's last contact at or before the order and at most ``lookback_days``
    earlier (contacts before ``start`` count), else to ``(none)``; by contact channel and
    purchase channel. One as-of join, no per-row Python.

    ``orders`` has customer_id, ts, channel (purchase channel), revenue; ``contacts`` has
    customer_id, channel, sent_at (filter them to the experiment first). Timestamps are
    compared in UTC (naive ones are read as UTC). Two contacts at the same instant credit the
    channel name that sorts first, so reruns agree."""
    if not lookback_days > 0:
        message = f"lookback_days must be positive, got {lookback_days}"
        raise ValueError(message)
    lo, hi = _utc(start), _utc(end)
    orders_in = (orders
                 .select("customer_id", pl.col("ts").cast(UTC_US),
                         pl.col("channel").alias("purchase_channel"),
                         pl.col("revenue").cast(pl.Float64))
                 .filter((pl.col("ts") >= lo) & (pl.col("ts") < hi)))
    lookback = dt.timedelta(days=lookback_days)
    # Contacts older than the look-back before the window's start credit no order: leaving
    # them out is exact, and the group-by and sort below then see weeks, not the history.
    touches = (contacts
               .select("customer_id", pl.col("sent_at").cast(UTC_US).alias("ts"),
                       pl.col("channel").alias("credited_channel"))
               .filter((pl.col("ts") >= lo - lookback) & (pl.col("ts") < hi))
               # Contacts of customers without an order in the window credit nothing either:
               # a semi-join (one hash of the customer) shrinks the group-by on two keys and
               # the sort (tests/test_perf_whole.py compares with an order-by-order route).
               .join(orders_in.select("customer_id"), on="customer_id", how="semi")
               .group_by("customer_id", "ts").agg(pl.col("credited_channel").min())
               .sort("ts"))
    joined = orders_in.sort("ts").join_asof(touches, on="ts", by="customer_id", strategy="backward",
                                 tolerance=lookback,
                                 check_sortedness=False)  # both sides sorted by ts above
    return (joined
            .group_by(pl.col("credited_channel").fill_null(UNATTRIBUTED), "purchase_channel")
            .agg(stable_sum(pl.col("revenue")), pl.len().cast(pl.UInt32).alias("orders"))
            .sort("credited_channel", "purchase_channel")
            .collect()
            .cast(CREDIT_SCHEMA))


def _utc(ts: dt.datetime) -> dt.datetime:
    """Aware timestamps in UTC; naive ones are taken to be UTC already."""
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
