"""The multichannel analysis's row work on a data folder (polars): channel usage per
client, the channel-profile segment, one row per client with outcome and pre-period
covariates, the group sums the estimators need and the model matrix."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from liftlab.core.stable import stable_mean, stable_sum
from liftlab.data.folder import FolderSource, parse_timestamps

# Events that count as using their (digital) channel, like a purchase does.
USAGE_EVENTS = ("visit", "app_session", "session", "login", "account_created")
# Propensity and outcome models are fit on a deterministic hash subsample of at most this many
# clients: the estimates' standard errors at that size are far below the selection bias.
MAX_CLIENTS_FOR_MODELS = 500_000
MAX_SEGMENT_LEVELS = 20      # rarer levels of a segment column are pooled as "(other)"


def _ts(d: dt.date) -> dt.datetime:
    return dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC)


def _between(start: dt.date, end: dt.date) -> pl.Expr:
    return (pl.col("ts") >= _ts(start)) & (pl.col("ts") < _ts(end))


def _id_type(source: FolderSource) -> pl.DataType:
    return source.scan("customers").collect_schema()["customer_id"]


def usage(source: FolderSource, start: dt.date, end: dt.date,
          usage_events: Sequence[str] = USAGE_EVENTS) -> pl.LazyFrame:
    """Per client active in [start, end): the sorted channels used (purchase channels, and
    the channel of any event named in ``usage_events``), their number, the combination text
    ("store+web") and whether it is multichannel."""
    ids = _id_type(source)
    parts = [source.scan("orders", ids).filter(_between(start, end))
             .select("customer_id", pl.col("channel").cast(pl.String))]
    if usage_events and source.has("events"):
        parts.append(source.scan("events", ids)
                     .filter(_between(start, end) & pl.col("event").is_in(list(usage_events)))
                     .select("customer_id", pl.col("channel").cast(pl.String)))
    return (pl.concat(parts).drop_nulls("channel").group_by("customer_id")
            .agg(pl.col("channel").unique().sort().alias("channels"))
            .with_columns(pl.col("channels").list.len().alias("n_channels"),
                          pl.col("channels").list.join("+").alias("combination"))
            .with_columns((pl.col("n_channels") > 1).alias("multi")))


def channel_profile(source: FolderSource, before: dt.date, days: int = 90,
                    usage_events: Sequence[str] = USAGE_EVENTS,
                    max_named: int = 1) -> pl.LazyFrame:
    """(customer_id, channel_profile) for every customer over the ``days`` before
    ``before``: the channel combination ("store", or "store+web" with ``max_named=2``) when
    it has at most ``max_named`` channels, "multichannel" beyond, "inactive" without
    activity. Joined as a segment dimension, it reports each campaign's lift per profile;
    the default keeps few, well-filled profiles."""
    prof = usage(source, before - dt.timedelta(days=days), before, usage_events).select(
        "customer_id", pl.when(pl.col("n_channels") > max_named).then(pl.lit("multichannel"))
        .otherwise(pl.col("combination")).alias("channel_profile"))
    return (source.scan("customers").select("customer_id")
            .join(prof, on="customer_id", how="left")
            .with_columns(pl.col("channel_profile").fill_null("inactive")))


def clients(source: FolderSource, lookback: tuple[dt.date, dt.date], outcome_days: int = 28,
            pre_days: int = 90, usage_events: Sequence[str] = USAGE_EVENTS,
            attributes: Sequence[str] = ("segment",)) -> pl.LazyFrame:
    """One row per client active in the look-back: usage (channels, combination, multi),
    outcome-period ``orders`` and ``value`` (revenue), pre-period ``pre_orders`` and
    ``pre_revenue``, ``recency_days`` (since the last order before the look-back, capped at
    2 x pre_days), ``tenure_days`` (since signup_date, else the first order; 0 when new) and
    the customer ``attributes`` present."""
    start, end = lookback
    ids = _id_type(source)
    orders = source.scan("orders", ids)
    out_end = end + dt.timedelta(days=outcome_days)
    outcome = (orders.filter(_between(end, out_end)).group_by("customer_id")
               .agg(pl.len().alias("orders"), stable_sum(pl.col("revenue")).alias("value")))
    in_pre = pl.col("ts") >= _ts(start - dt.timedelta(days=pre_days))
    history = (orders.filter(pl.col("ts") < _ts(start)).group_by("customer_id").agg(
        in_pre.sum().alias("pre_orders"),
        stable_sum(pl.col("revenue").filter(in_pre)).alias("pre_revenue"),
        pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts")))
    names = source.schema("customers").names()
    attrs = [a for a in attributes if a in names]
    signup = ([(pl.lit(start) - _as_date(source, "signup_date")).dt.total_days()
               .alias("signup_days")] if "signup_date" in names else [])
    tenure = [pl.col("signup_days")] if signup else []
    customers = source.scan("customers", ids).select("customer_id", *attrs, *signup)
    cap = 2 * pre_days
    return (usage(source, start, end, usage_events)
            .join(outcome, on="customer_id", how="left")
            .join(history, on="customer_id", how="left")
            .join(customers, on="customer_id", how="left")
            .with_columns(
                pl.col("orders", "pre_orders").fill_null(0).cast(pl.Int64),
                pl.col("value", "pre_revenue").fill_null(0.0),
                (_ts(start) - pl.col("last_ts")).dt.total_days().fill_null(cap).clip(0, cap)
                .alias("recency_days"),
                pl.coalesce(*tenure,
                            (_ts(start) - pl.col("first_ts")).dt.total_days(), pl.lit(0))
                .clip(0).alias("tenure_days"))
            .drop("first_ts", "last_ts", *(["signup_days"] if signup else [])))


def _as_date(source: FolderSource, column: str) -> pl.Expr:
    """A customers column of dates as stored: Date, a timestamp, or ISO text (a CSV; a date
    is its wall-clock date, whatever the data's timezone)."""
    if source.schema("customers")[column] == pl.String:
        return parse_timestamps(pl.col(column), "UTC").dt.date()
    return pl.col(column).cast(pl.Date)


def design(frame: pl.DataFrame, attributes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Pre-period covariates of the propensity and outcome models, with their names: pre
    orders and revenue (levels: outcomes scale with past spend; logs: propensity saturates),
    log recency, log tenure and segment dummies (first level the reference). Look-back
    behaviour is left out: it is partly caused by being multichannel."""
    cols: list[np.ndarray] = []
    names: list[str] = []
    for c in ("pre_orders", "pre_revenue"):
        x = frame[c].cast(pl.Float64).clip(0).to_numpy()
        cols += [x, np.log1p(x)]
        names += [c, f"log1p_{c}"]
    for c in ("recency_days", "tenure_days"):
        cols.append(np.log1p(frame[c].cast(pl.Float64).to_numpy()))
        names.append(f"log1p_{c}")
    for a in attributes:
        values = frame[a].cast(pl.String).fill_null("(missing)")
        top = values.value_counts(sort=True).head(MAX_SEGMENT_LEVELS)[a].to_list()
        values = pl.select(pl.when(values.is_in(top)).then(values)
                           .otherwise(pl.lit("(other)"))).to_series()
        for level in sorted(values.unique().to_list())[1:]:
            cols.append((values == level).cast(pl.Float64).to_numpy())
            names.append(f"{a}={level}")
    X = np.column_stack(cols)
    keep = X.std(axis=0) > 0
    return X[:, keep], [nm for nm, k in zip(names, keep, strict=True) if k]


# ---------------------------------------------------------------- the whole analysis


@dataclass(frozen=True)
class GroupSums:
    """The small tables the estimators read: per group (``multi`` true / false) the sums of a
    ``ValueStats``; clients, value and retention per channel combination; the share of each
    segment's clients using each channel. ``attributes``: the customer columns present."""

    sums: pl.DataFrame
    combinations: pl.DataFrame
    appetence: pl.DataFrame
    attributes: tuple[str, ...]


def group_sums(frame: pl.LazyFrame, attributes: Sequence[str]) -> GroupSums:
    """One pass over the clients (``clients``) into the tables of ``GroupSums``."""
    attrs = tuple(a for a in attributes if a in frame.collect_schema().names())
    seg = pl.col(attrs[0]).cast(pl.String).fill_null("(missing)") if attrs else pl.lit("all")
    o, v = pl.col("orders").cast(pl.Float64), pl.col("value")
    sums = frame.group_by("multi").agg(
        pl.len().alias("n"), (o > 0).sum().alias("active"), o.sum().alias("orders_sum"),
        stable_sum(v).alias("revenue"), (o * o).sum().alias("orders_sq"),
        stable_sum(v * v).alias("revenue_sq"), stable_sum(v * o).alias("revenue_orders"))
    combos = (frame.group_by("combination").agg(
        pl.len().alias("clients"), pl.col("multi").first(),
        stable_mean(v).alias("value_per_client"),
        (o > 0).mean().alias("retention")).sort("clients", "combination", descending=[True,
                                                                                      False]))
    used = (frame.select(seg.alias("segment"), "channels").explode("channels")
            .group_by("segment", pl.col("channels").alias("channel")).len())
    sizes = frame.group_by(seg.alias("segment")).agg(pl.len().alias("clients"))
    appetence = (used.join(sizes, on="segment")
                 .select("segment", "channel", (pl.col("len") / pl.col("clients"))
                         .alias("share"), "clients").sort("segment", "channel"))
    sums_df, combos_df, app_df = pl.collect_all([sums, combos, appetence])
    return GroupSums(sums_df, combos_df, app_df, attrs)


@dataclass(frozen=True)
class ModelRows:
    """What the propensity and outcome models see: the covariates (``design``) with their
    names, whether each client is multichannel and its value, of at most
    ``MAX_CLIENTS_FOR_MODELS`` clients (a hash subsample when ``subsampled``) sorted by id,
    so the fits see the same rows in one order."""

    covariates: np.ndarray
    names: list[str]
    multi: np.ndarray
    value: np.ndarray
    subsampled: bool


def model_rows(frame: pl.LazyFrame, attributes: Sequence[str], n_clients: int,
               seed: int) -> ModelRows:
    """The models' rows of the ``n_clients`` clients (a deterministic hash subsample beyond
    ``MAX_CLIENTS_FOR_MODELS``)."""
    subsampled = n_clients > MAX_CLIENTS_FOR_MODELS
    if subsampled:
        keep = round(MAX_CLIENTS_FOR_MODELS / n_clients * 1_000_000)
        frame = frame.filter(pl.col("customer_id").hash(seed) % 1_000_000 < keep)
    rows = frame.sort("customer_id").select(
        "multi", "value", "pre_orders", "pre_revenue", "recency_days", "tenure_days",
        *attributes).collect()
    X, names = design(rows, attributes)
    return ModelRows(X, names, rows["multi"].to_numpy(), rows["value"].to_numpy(), subsampled)


@dataclass(frozen=True)
class PolarsClients:
    """The clients of one look-back (``clients``) read from a data folder."""

    source: FolderSource
    frame: pl.LazyFrame
    attributes: tuple[str, ...]  # the customer columns asked for and present

    def group_sums(self) -> GroupSums:
        with self.source.reading():
            return group_sums(self.frame, self.attributes)

    def model_rows(self, n_clients: int, seed: int) -> ModelRows:
        with self.source.reading():
            return model_rows(self.frame, self.attributes, n_clients, seed)
