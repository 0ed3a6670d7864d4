"""Cross-channel credit: where each channel's measured increment was bought, what last-touch
attribution would have credited instead (the export of lifts for marketing-mix models is
calibration.py).

The increment per purchase channel comes from the experiment (treatment vs holdout on the
revenue bought in that purchase channel); last-touch credit comes from the data (each order
credited to the customer's last contact within a look-back). Side by side they show the
over- or under-claim of last-touch reporting (a catalog whose increment is bought on the web
gets no last-touch credit when the web visit is the last touch).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from liftlab.contribution import Estimate, contrast
from liftlab.stable import stable_sum
from liftlab.stats.suffstats import ArmStats

UNATTRIBUTED = "(none)"
UTC_US = pl.Datetime("us", "UTC")
CREDIT_SCHEMA = {"credited_channel": pl.String, "purchase_channel": pl.String,
                 "revenue": pl.Float64, "orders": pl.UInt32}
ADDITIVITY_RTOL = 1e-9


@dataclass(frozen=True)
class LandedIncrement:
    """The increment bought in one purchase channel, per treated customer."""

    purchase_channel: str
    estimate: Estimate


@dataclass(frozen=True)
class Landing:
    """Where a channel's increment landed: one row per purchase channel, and the total."""

    n_treated: int
    rows: tuple[LandedIncrement, ...]
    total: Estimate

    def to_dicts(self, channel: str, variant: str | None = None,
                 last_touch: pl.DataFrame | None = None) -> list[dict[str, Any]]:
        """results.json ``landing`` rows (totals over the treated customers), each next to the
        revenue last-touch credits to ``channel`` in that purchase channel and the claim ratio
        (last-touch / measured; > 1 over-claims, None when the increment is not positive)."""
        out = []
        for row in self.rows:
            total = row.estimate.scaled(self.n_treated)
            credited = None
            if last_touch is not None:
                hit = last_touch.filter((pl.col("credited_channel") == channel)
                                        & (pl.col("purchase_channel") == row.purchase_channel))
                credited = float(hit["revenue"].sum())
            out.append({"channel": channel, "variant": variant,
                        "purchase_channel": row.purchase_channel,
                        "incremental_revenue": total.value, "ci": list(total.ci),
                        "incremental_revenue_per_customer": row.estimate.value,
                        "share_of_increment": (row.estimate.value / self.total.value
                                               if self.total.value else None),
                        "last_touch_revenue": credited,
                        "claim_ratio": (credited / total.value
                                        if credited is not None and total.value > 0 else None)})
        return out


def landing_by_purchase_channel(treated: Mapping[str, ArmStats], holdout: Mapping[str, ArmStats],
                                treated_total: ArmStats, holdout_total: ArmStats,
                                alpha: float = 0.05) -> Landing:
    """Incremental revenue per treated customer landed in each purchase channel, from each
    arm's revenue statistics per purchase channel; the total row comes from the total revenue's
    statistics (its variance needs the cross-channel covariance the parts do not carry).

    The per-channel increments add up to the total increment exactly, as long as the
    purchase-channel revenues add up to the total revenue in each arm (checked)."""
    missing = sorted(set(treated) ^ set(holdout))
    if missing:
        message = (f"purchase channels {missing} are in one arm only; give both arms the same "
                   "purchase channels (zero revenue is a valid value)")
        raise ValueError(message)
    for arm, parts, whole in (("treatment", treated, treated_total),
                              ("holdout", holdout, holdout_total)):
        _check_parts(arm, parts, whole)
    rows = tuple(LandedIncrement(pc, contrast({(True,): treated[pc], (False,): holdout[pc]},
                                              {(True,): 1.0, (False,): -1.0}, alpha))
                 for pc in sorted(treated))
    total = contrast({(True,): treated_total, (False,): holdout_total},
                     {(True,): 1.0, (False,): -1.0}, alpha)
    return Landing(treated_total.n, rows, total)


def _check_parts(arm: str, parts: Mapping[str, ArmStats], whole: ArmStats) -> None:
    wrong_n = {pc: s.n for pc, s in parts.items() if s.n != whole.n}
    if wrong_n:
        message = (f"{arm}: purchase-channel statistics must cover every unit of the arm "
                   f"({whole.n}), got {wrong_n}; count units without such orders as zero")
        raise ValueError(message)
    parts_sum = math.fsum(s.sum for s in parts.values())
    scale = math.fsum(abs(s.sum) for s in parts.values()) + abs(whole.sum)
    if abs(parts_sum - whole.sum) > ADDITIVITY_RTOL * max(scale, 1.0):
        message = (f"{arm}: revenue by purchase channel adds up to {parts_sum:,.2f}, not to "
                   f"the total revenue {whole.sum:,.2f}; orders without a listed purchase "
                   "channel need their own channel value")
        raise ValueError(message)


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
                 .filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
                 .sort("ts"))
    touches = (contacts
               .select("customer_id", pl.col("sent_at").cast(UTC_US).alias("ts"),
                       pl.col("channel").alias("credited_channel"))
               .filter(pl.col("ts") < hi)
               .group_by("customer_id", "ts").agg(pl.col("credited_channel").min())
               .sort("ts"))
    joined = orders_in.join_asof(touches, on="ts", by="customer_id", strategy="backward",
                                 tolerance=dt.timedelta(days=lookback_days),
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
