"""The polars compile of one measure of the aggregation plan (``spec.aggregation.Measure``):
a unit's value over its rows. The batch route (``polars_engine``) and the monitor's hourly
route (``polars_monitor``) both use it, so a metric's filters and aggregate are written once."""

from __future__ import annotations

import polars as pl

from liftlab.spec.aggregation import Measure


def measure_condition(m: Measure) -> pl.Expr:
    """The rows a measure keeps besides its time window: its event and channel."""
    cond = pl.lit(True)
    if m.event is not None:
        cond = cond & (pl.col("event") == m.event)
    if m.channel is not None:
        cond = cond & (pl.col("channel") == m.channel)
    return cond


def measure_expr(m: Measure, window: pl.Expr | None = None) -> pl.Expr:
    """A unit's value of a measure over its rows (aggregated per unit), as Float64: the sum
    of ``value``, the number of rows or whether there is one, among the rows in ``window``
    (a condition on the row) that pass the measure's own filters. The batch route and the
    monitor's hourly route both compile measures here."""
    cond = measure_condition(m) if window is None else window & measure_condition(m)
    if m.agg == "sum":
        expr = pl.col(m.value).filter(cond).sum()
    elif m.agg == "count":
        expr = cond.sum()
    else:
        expr = cond.any()
    return expr.cast(pl.Float64).alias(m.name)
