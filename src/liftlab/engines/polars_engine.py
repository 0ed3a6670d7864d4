"""The polars engine: one lazy pass per table from scan to sufficient statistics.

Per table, the rows in [pre-period start, window end) are reduced to one row per unit with
every measure as a conditional aggregate (pre-period and window in the same pass), joined to
the unit table, and summed per group with the cross-products the statistics need. Only the
final table of sums (a few hundred rows) is materialised.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from liftlab.data.folder import FolderSource
from liftlab.data.quality import (
    MAX_ROWS_SHOWN,
    TS_COLUMN,
    Check,
    QualityReport,
    build_report,
    declare_checks,
    polars_condition,
    polars_count,
)
from liftlab.data.schema import TABLES
from liftlab.errors import Problem
from liftlab.metrics import AggregationPlan, Measure, prod_col, sum_col
from liftlab.spec import Experiment
from liftlab.units import Units, build_units, id_type


def unit_outcomes(plan: AggregationPlan, units: pl.LazyFrame, source: FolderSource,
                  uid_type: pl.DataType, experiment_id: str | None = None) -> pl.LazyFrame:
    """Per-unit measures (0 when the unit has no row), lazily, one row per unit."""
    unit = plan.unit
    out = units
    lo = plan.pre_window[0] if plan.pre_window else plan.window[0]
    hi = plan.window[1]
    ids = units.select(unit)
    for table in plan.tables:
        ts = TS_COLUMN[table]
        rows = source.scan(table, uid_type).filter(
            (pl.col(ts) >= lo) & (pl.col(ts) < hi))
        if table == "contacts" and experiment_id is not None and \
                "experiment_id" in source.schema("contacts"):
            rows = rows.filter(pl.col("experiment_id") == experiment_id)
        rows = rows.join(ids, on=unit, how="semi")
        per_unit = rows.group_by(unit).agg(_measure_expr(m, plan) for m in plan.measures_of(table))
        out = out.join(per_unit, on=unit, how="left")
    names = [m.name for m in plan.measures]
    out = out.with_columns(pl.col(n).fill_null(0.0) for n in names)
    capped = [m for m in plan.measures if m.winsorize is not None]
    if capped:
        out = out.with_columns(
            pl.col(m.name).clip(upper_bound=pl.col(m.name).quantile(m.winsorize, "linear"))
            for m in capped)
    return out


def aggregate(plan: AggregationPlan, units: pl.LazyFrame, source: FolderSource,
              uid_type: pl.DataType, experiment_id: str | None = None) -> pl.DataFrame:
    """The table of sufficient statistics: one row per group, n, sums and cross-products."""
    per_unit = unit_outcomes(plan, units, source, uid_type, experiment_id)
    aggs = [pl.len().alias("n")]
    aggs += [pl.col(m.name).sum().alias(sum_col(m.name)) for m in plan.measures]
    aggs += [(pl.col(a) * pl.col(b)).sum().alias(prod_col(a, b)) for a, b in plan.products]
    keys = list(plan.group_by)
    cells = per_unit.group_by(keys).agg(aggs) if keys else per_unit.select(aggs)
    return cells.collect(engine="streaming").sort(keys, nulls_last=True) if keys else \
        cells.collect(engine="streaming")


def _measure_expr(m: Measure, plan: AggregationPlan) -> pl.Expr:
    ts = pl.col(TS_COLUMN[m.table])
    if m.period == "pre":
        assert plan.pre_window is not None
        lo, hi = plan.pre_window
    else:
        lo, hi = plan.window
    cond = (ts >= lo) & (ts < hi)
    if m.event is not None:
        cond = cond & (pl.col("event") == m.event)
    if m.channel is not None:
        cond = cond & (pl.col("channel") == m.channel)
    if m.agg == "sum":
        expr = pl.col(m.value).filter(cond).sum()
    elif m.agg == "count":
        expr = cond.sum()
    else:
        expr = cond.any()
    return expr.cast(pl.Float64).alias(m.name)


@dataclass(frozen=True)
class PolarsEngine:
    """The contract tables in a folder, aggregated by polars on this machine."""

    source: FolderSource

    @property
    def label(self) -> str:
        return self.source.label

    def has(self, table: str) -> bool:
        return self.source.has(table)

    def columns(self, table: str) -> list[str]:
        return list(self.source.schema(table).names())

    def check(self) -> list[Problem]:
        return self.source.check()

    def quality(self, as_of: dt.datetime) -> QualityReport:
        """Every check of a table counted in one pass over it (ids checked as stored)."""
        src = self.source
        checks = declare_checks({t: self.columns(t) for t in TABLES if src.has(t)})

        def frame(c: Check) -> pl.LazyFrame:
            return src.raw(c.table) if c.kind == "duplicated" else src.scan(c.table)

        counts: dict[int, int] = {}
        for table in dict.fromkeys(c.table for c in checks):
            for raw in (True, False):
                mine = [(i, c) for i, c in enumerate(checks)
                        if c.table == table and (c.kind == "duplicated") == raw]
                if mine:
                    row = frame(mine[0][1]).select(
                        polars_count(c, as_of).alias(str(i)) for i, c in mine
                    ).collect().row(0)
                    counts.update({i: int(v or 0) for (i, _), v in zip(mine, row, strict=True)})

        def first_rows(c: Check) -> tuple[int, ...]:
            found = (frame(c).with_row_index("__row", offset=1)
                     .filter(polars_condition(c, as_of)).select("__row")
                     .head(MAX_ROWS_SHOWN).collect())
            return tuple(int(r) for r in found["__row"])

        return build_report(checks, [counts[i] for i in range(len(checks))], first_rows)

    def units(self, spec: Experiment) -> Units:
        return build_units(spec, self.source, id_type(self.source, spec.unit))

    def aggregate(self, plan: AggregationPlan, units: Units,
                  experiment_id: str) -> pl.DataFrame:
        assert isinstance(units.frame, pl.DataFrame)
        uid = units.frame.schema[plan.unit]
        return aggregate(plan, units.frame.lazy(), self.source, uid, experiment_id)

    def distinct(self, table: str, column: str, window: tuple[dt.datetime, dt.datetime]
                 ) -> list[str]:
        ts = pl.col(TS_COLUMN[table])
        values = (self.source.scan(table).filter((ts >= window[0]) & (ts < window[1]))
                  .select(pl.col(column).cast(pl.String).unique()).collect()[column])
        return sorted(v for v in values.to_list() if v is not None)

    def latest(self, table: str) -> dt.datetime | None:
        if not self.source.has(table):
            return None
        return self.source.scan(table).select(pl.col(TS_COLUMN[table]).max()).collect().item()
