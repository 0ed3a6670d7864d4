"""The monitor's compiled per-unit statistics (``dense_monitor.table_stats``: rows put in
unit order, then each unit's rows read together) against their definition written in
polars, on rows chosen to reach every branch: units with many rows in one period (the sums'
sort of more than 16 values), zero, negative, null and NaN values, times on each period's
edges, exposures missing or given twice for one unit and channel, rows of ids that are no
unit's, statistics with and without a condition, integer and text ids."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_series_equal

from liftlab.core.stable import stable_sum
from liftlab.engines import dense_monitor as dm

HOUR = 3_600_000_000  # µs
WINDOW, PRE = 72 * HOUR, 28 * 24 * HOUR
START = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
CHANNELS = ["email", "mail", "sms"]
TASKS = [
    dm.Task("revenue", "in", "sum", None, "revenue"),
    dm.Task("revenue|pre", "pre", "sum", None, "revenue"),
    dm.Task("v:revenue", "before", "sum", None, "revenue"),
    dm.Task("web", "in", "sum", pl.col("kind") == "web", "revenue"),
    dm.Task("orders", "in", "count", pl.col("kind") == "web"),
    dm.Task("conversion", "in", "any"),
    dm.Task("r:web", "before", "any", pl.col("kind") == "web"),
    dm.Task("first:revenue", "in", "first"),
    dm.Task("first:web", "in", "first", pl.col("kind") == "web"),
]
PERIOD = {  # µs relative to the exposure: [lo, hi)
    "in": (0, WINDOW),
    "before": (-WINDOW, 0),
    "pre": (-PRE, 0),
}


def _data(seed: int, text: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(unit, xch, exposed_at) rows and (unit, _ts, kind, revenue) rows."""
    rng = np.random.default_rng(seed)
    n_units = 300
    units = pl.DataFrame(
        {
            "u": np.repeat(np.arange(n_units), 3),
            "xch": np.tile(CHANNELS, n_units),
            "exposed_at": rng.integers(30 * 24, 40 * 24, 3 * n_units) * HOUR
            + rng.integers(0, HOUR, 3 * n_units),
        }
    ).filter(pl.Series(rng.random(3 * n_units) < 0.8))  # units in some of the channels
    twice = units.head(40).with_columns(pl.col("exposed_at") - rng.integers(-HOUR, HOUR, 40))
    units = pl.concat([units, twice]).with_columns(  # twice: the earliest counts
        pl.when(pl.Series(rng.random(units.height + 40) < 0.03))
        .then(None)
        .otherwise(pl.col("exposed_at"))
        .alias("exposed_at")
    )
    n = 20_000
    u = rng.integers(-5, n_units + 5, n)
    u = np.concatenate([u[u % 10 != 0], np.full(60, 7)])  # units 0, 10, ...: no rows; 7: many
    first_e = units.filter(pl.col("u") == 7)["exposed_at"].drop_nulls().min()
    at = np.concatenate(
        [rng.integers(0, 50 * 24 * HOUR, u.size - 60), first_e + rng.integers(0, WINDOW, 60)]
    )
    edges = units.drop_nulls("exposed_at").filter(pl.col("u") % 10 != 0).head(50)  # on edges
    offsets = np.array([0, -1, WINDOW - 1, WINDOW, -WINDOW, -WINDOW - 1, -PRE, -PRE - 1])
    u = np.concatenate([u, np.repeat(edges["u"].to_numpy(), offsets.size)])
    at = np.concatenate([at, (edges["exposed_at"].to_numpy()[:, None] + offsets).ravel()])
    m = u.size
    revenue = np.round(rng.normal(30, 40, m), 2)
    revenue[rng.random(m) < 0.2] = 0.0
    revenue[rng.integers(0, m, 3)] = np.nan
    rows = pl.DataFrame(
        {
            "u": u,
            "_ts": at,
            "kind": pl.Series(rng.choice(["web", "store"], m)).set(
                pl.Series(rng.random(m) < 0.1), None
            ),
            "revenue": pl.Series(revenue).set(pl.Series(rng.random(m) < 0.02), None),
        }
    ).sample(fraction=1.0, shuffle=True, seed=seed)
    ts = pl.from_epoch(pl.col("_ts"), "us").dt.replace_time_zone("UTC")
    rows = rows.with_columns(ts)
    units = units.with_columns(pl.from_epoch("exposed_at", "us").dt.replace_time_zone("UTC"))
    if text:
        units = units.with_columns(pl.format("c-{}", "u").alias("u"))
        rows = rows.with_columns(pl.format("c-{}", "u").alias("u"))
    return units, rows


def _definition(units: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """Each statistic per exposure row, in polars: the slot's exposure is the earliest of
    its rows; sums are ``stable_sum``."""
    slot = units.group_by("u", "xch").agg(pl.col("exposed_at").min().alias("e"))
    joined = (
        units.with_row_index("row")
        .join(slot, on=["u", "xch"])
        .join(rows, on="u", how="left")
        .with_columns((pl.col("_ts") - pl.col("e")).dt.total_microseconds().alias("d"))
    )
    aggs = []
    for t in TASKS:
        lo, hi = PERIOD[t.period]
        keep = (pl.col("d") >= lo) & (pl.col("d") < hi)
        if t.cond is not None:
            keep = keep & t.cond
        keep = keep.fill_null(False)
        if t.kind == "sum":
            expr = stable_sum(pl.col("revenue").fill_null(0.0).filter(keep))
        elif t.kind == "count":
            expr = keep.sum().cast(pl.Float64)
        elif t.kind == "any":
            expr = keep.any().cast(pl.Float64)
        else:
            expr = pl.col("_ts").filter(keep).min().dt.epoch("us").fill_null(dm.NO_FIRST)
        aggs.append(expr.alias(t.name))
    has = pl.col("_ts").is_not_null().any().alias("has")
    d = pl.col("d")
    values = ((d >= 0) & (d < WINDOW) & (pl.col("revenue") != 0)).sum().alias("values")
    return joined.group_by("row").agg(*aggs, has, values).sort("row")


@pytest.mark.parametrize("text", [False, True], ids=["int", "text"])
@pytest.mark.parametrize("seed", [1, 2])
def test_table_stats_is_the_definition(seed: int, text: bool) -> None:
    units, rows = _data(seed, text)
    index = dm.UnitIndex.of(units, "u", CHANNELS)
    got = dm.table_stats(rows.lazy(), index, TASKS, WINDOW, PRE)
    want = _definition(units, rows)
    assert got.rows == rows.filter(pl.col("u").is_in(units["u"].implode())).height
    assert_series_equal(pl.Series("has", got.has), want["has"])
    assert want["has"].sum() > 0 and (~want["has"]).sum() > 0
    for t in TASKS:
        mine = got.firsts[t.name] if t.kind == "first" else got.values[t.name]
        assert_series_equal(pl.Series(t.name, mine), want[t.name], check_exact=True)
    # the branches are reached: sums of more than 16 values and of a few, a NaN sum
    assert want["values"].max() > 16 and want["values"].is_between(2, 16).sum() > 10  # type: ignore[operator]
    assert any(np.isnan(got.values[t.name]).any() for t in TASKS if t.kind == "sum")
