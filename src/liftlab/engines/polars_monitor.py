"""The monitor's row work on polars tables: exposures, hourly cohort statistics and first
responses, the pre-exposure baseline and a digest of the rows (methods: the docstring of
``liftlab.analyses.monitor``).

Per-unit outcomes are the aggregation plan's measures (``spec.aggregation.metric_measure``)
compiled by the batch route's ``measure_expr``, so filters, winsorising and id handling are
the batch route's; only the time window differs (each unit's response window after its
exposure instead of the experiment's dates). Winsorising caps a metric at its quantile among
the units of one channel maturing in the same hour: a matured cohort never changes (it is
cached), and when every unit is exposed at once this is the batch route's cap at the final
hour.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import polars as pl

from liftlab.core.errors import DataError, Problem
from liftlab.core.stable import stable_mean, stable_std, stable_sum
from liftlab.data.folder import FolderSource
from liftlab.data.quality import TS_COLUMN
from liftlab.engines.polars_measures import measure_condition, measure_expr
from liftlab.engines.units import Units
from liftlab.spec.aggregation import metric_measure
from liftlab.spec.models import Experiment, Metric

HOUR = dt.timedelta(hours=1)
TS = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class HourlyStats:
    """Cohort statistics per (channel ``xch``, arm, maturity ``hour``): ``n`` and per metric
    ``s:``, ``q:`` (sums of values and squares) and ``nz:`` (units with a non-zero value);
    first responses per (``xch``, arm, ``hour``, ``metric``): ``k``; rows read."""

    cohort: pl.DataFrame
    events: pl.DataFrame
    rows: int


@dataclass(frozen=True)
class PolarsHourly:
    """The monitor's input tables: ``assignments`` of this experiment's population (with
    ``assigned_at``) and ``contacts``, ``orders``, ``events`` as the metrics need; ``source``
    names the file behind a read failure."""

    spec: Experiment
    tables: Mapping[str, pl.LazyFrame]
    source: FolderSource | None = None

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self.source.reading() if self.source is not None else contextlib.nullcontext():
            yield

    def check(self, metrics: list[Metric]) -> None:
        _check_tables(self.spec, self.tables, metrics)

    def exposures(self, window: dt.timedelta) -> pl.DataFrame:
        """One row per (unit, channel ``xch``): ``arm``, ``assigned_at``, ``exposed_at`` and
        the ``mature`` hour (exposure plus the response window, rounded up)."""
        return _exposures(self.spec, self.tables, window)

    def hourly(self, exposure: pl.DataFrame, metrics: list[Metric], tested: list[Metric],
               window: dt.timedelta, after: dt.datetime | None, last: dt.datetime
               ) -> HourlyStats:
        return HourlyStats(*_hourly(self.spec, self.tables, exposure, metrics, tested, window,
                                    after, last))

    def baseline(self, exposure: pl.DataFrame, window: dt.timedelta,
                 tested: list[Metric]) -> dict[str, dict[str, float]]:
        return _baseline(self.spec, self.tables, exposure, window, tested)

    def fingerprint(self, exposure: pl.DataFrame, metrics: list[Metric],
                    until: dt.datetime) -> list[str]:
        """The exposures and the rows before ``until`` of every table a metric reads (their
        count and the wrapped sum of their row hashes)."""
        parts = [str(exposure.height), str(_digest(exposure.lazy()))]
        for table in sorted({m.table or "" for m in metrics}):
            old = self.tables[table].filter(pl.col(TS_COLUMN[table]).cast(TS) < until)
            parts.append(f"{table}:{_digest(old)}")
        return parts


def _outcome(m: Metric) -> pl.Expr:
    """The metric of one unit over its rows (the batch route's compiled measure)."""
    return measure_expr(metric_measure(m)).alias(m.name)


def _condition(m: Metric) -> pl.Expr:
    """The rows that count as a response to the metric (its event and purchase channel)."""
    return measure_condition(metric_measure(m))


def tables_from_source(spec: Experiment, source: FolderSource, units: Units
                       ) -> dict[str, pl.LazyFrame]:
    """The monitor's input tables from a data folder and the experiment's units: the
    assignments of this experiment's population (from the table when present, else the hash
    assignment at the start date) and the contacts, orders and events tables as they are."""
    unit = spec.unit
    uid = units.frame.schema[unit]
    long = pl.concat([units.frame.lazy().select(
        unit, pl.lit(ch).alias("channel"), pl.col(f"arm:{ch}").cast(pl.String).alias("group"))
        for ch in spec.channels]).filter(pl.col("group").is_not_null())
    start = dt.datetime.combine(spec.start, dt.time(), tzinfo=dt.UTC)
    if source.has("assignments") and "assigned_at" in source.schema("assignments"):
        table = source.scan("assignments", uid)
        if "experiment_id" in source.schema("assignments"):
            table = table.filter(pl.col("experiment_id") == spec.id)
        long = long.join(table.select(unit, "channel", "assigned_at"), on=[unit, "channel"],
                         how="left").with_columns(pl.col("assigned_at").fill_null(start))
    else:
        long = long.with_columns(pl.lit(start).cast(TS).alias("assigned_at"))
    tables = {"assignments": long}
    for name in ("contacts", "orders", "events"):
        if source.has(name):
            tables[name] = source.scan(name, uid)
    return tables


def _check_tables(spec: Experiment, tables: Mapping[str, pl.LazyFrame],
                  metrics: list[Metric]) -> None:
    """Every table and column the monitor needs, all problems at once."""
    need: dict[str, set[str]] = {"assignments": {spec.unit, "channel", "group", "assigned_at"}}
    if "contacts" in tables:
        need["contacts"] = {spec.unit, "channel", "sent_at"}
    for m in metrics:
        cols = need.setdefault(m.table or "", {spec.unit})
        cols.add(TS_COLUMN[m.table or "orders"])
        cols |= {c for c in (m.value,) if c}
        cols |= {"event"} if m.event else set()
        cols |= {"channel"} if m.purchase_channel else set()
    problems = []
    for table, cols in need.items():
        if table not in tables:
            problems.append(Problem(f"the monitor needs the {table} table", table=table,
                                    hint=f"add {table}.parquet (or .csv) to the data folder"))
            continue
        missing = sorted(cols - set(tables[table].collect_schema().names()))
        if missing:
            problems.append(Problem(f"missing column(s) {', '.join(missing)}", table=table,
                                    hint="add them; see docs/data.md, section Tables"))
    if problems:
        raise DataError(problems)


def _exposures(spec: Experiment, tables: Mapping[str, pl.LazyFrame],
               window: dt.timedelta) -> pl.DataFrame:
    """One row per (unit, channel): arm, assignment and exposure time, maturity hour."""
    unit = spec.unit
    frame = (tables["assignments"]
             .filter(pl.col("channel").is_in(list(spec.channels)))
             .select(unit, pl.col("channel").alias("xch"), pl.col("group").alias("arm"),
                     pl.col("assigned_at").cast(TS)))
    if "contacts" in tables:
        contacts = tables["contacts"].filter(pl.col("channel").is_in(list(spec.channels)))
        if "experiment_id" in contacts.collect_schema().names():
            contacts = contacts.filter(pl.col("experiment_id") == spec.id)
        sends = contacts.group_by(unit, pl.col("channel").alias("xch")).agg(
            pl.col("sent_at").cast(TS).min().alias("sent"))
        frame = frame.join(sends, on=[unit, "xch"], how="left").with_columns(
            pl.col("sent").min().over("xch").alias("batch"))
        fallback = pl.when(pl.col("batch").is_null()).then(pl.col("assigned_at")).otherwise(
            pl.max_horizontal("batch", "assigned_at"))
        frame = frame.with_columns(pl.coalesce("sent", fallback).alias("exposed_at")).drop(
            "sent", "batch")
    else:
        frame = frame.with_columns(pl.col("assigned_at").alias("exposed_at"))
    return frame.with_columns(_ceil_hour(pl.col("exposed_at") + window).alias("mature")
                              ).collect()


def _ceil_hour(e: pl.Expr) -> pl.Expr:
    floor = e.dt.truncate("1h")
    return pl.when(floor < e).then(floor + pl.duration(hours=1)).otherwise(floor)


def _rows(spec: Experiment, tables: Mapping[str, pl.LazyFrame], table: str,
          lo: dt.datetime, hi: dt.datetime, exposure: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``table`` with ``lo <= ts < hi`` joined to the units' exposures, as ``ts``."""
    ts = TS_COLUMN[table]
    rows = tables[table].with_columns(pl.col(ts).cast(TS).alias("_ts")).filter(
        (pl.col("_ts") >= lo) & (pl.col("_ts") < hi))
    return rows.join(exposure.lazy(), on=spec.unit, how="inner").collect()


def _hourly(spec: Experiment, tables: Mapping[str, pl.LazyFrame], exposure: pl.DataFrame,
            metrics: list[Metric], tested: list[Metric], window: dt.timedelta,
            after: dt.datetime | None, last: dt.datetime
            ) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Cohort statistics for maturity hours in (after, last] and first-response counts for
    hours in (after, last], reading only rows of units whose window was open after ``after``.
    """
    unit = spec.unit
    open_ = exposure if after is None else exposure.filter(
        pl.col("exposed_at") + window > after)
    cohort_units = open_.filter(pl.col("mature") <= last)
    per_unit = cohort_units.select(unit, "xch", "arm", "mature")
    firsts: list[pl.DataFrame] = []
    rows_read = 0
    lo = open_["exposed_at"].min()
    for table in sorted({m.table or "" for m in metrics}):
        if open_.height == 0:
            break
        rows = _rows(spec, tables, table, lo, last, open_).filter(
            (pl.col("_ts") >= pl.col("exposed_at"))
            & (pl.col("_ts") < pl.col("exposed_at") + window))
        rows_read += rows.height
        mine = [m for m in metrics if m.table == table]
        agg = rows.group_by(unit, "xch").agg(_outcome(m) for m in mine)
        per_unit = per_unit.join(agg, on=[unit, "xch"], how="left")
        for m in (m for m in tested if m.table == table):
            first = (rows.filter(_condition(m)).group_by(unit, "xch", "arm")
                     .agg(pl.col("_ts").min().alias("first"))
                     .with_columns((pl.col("first").dt.truncate("1h") + HOUR).alias("hour")))
            if after is not None:
                first = first.filter(pl.col("hour") > after)
            firsts.append(first.group_by("xch", "arm", "hour").agg(
                pl.len().cast(pl.Int64).alias("k")).with_columns(pl.lit(m.name).alias("metric")))
    names = [m.name for m in metrics]
    per_unit = per_unit.with_columns(
        pl.col(n).fill_null(0.0) if n in per_unit.columns else pl.lit(0.0).alias(n)
        for n in names)
    capped = [m for m in metrics if m.winsorize is not None]
    if capped:  # the batch route's cap, within each channel's cohort of one maturity hour
        per_unit = per_unit.with_columns(
            pl.col(m.name).clip(upper_bound=pl.col(m.name).quantile(m.winsorize, "linear")
                                .over("xch", "mature")) for m in capped)
    aggs: list[pl.Expr] = [pl.len().cast(pl.Int64).alias("n")]
    for n in names:
        aggs += [stable_sum(pl.col(n)).alias(f"s:{n}"),
                 stable_sum(pl.col(n) ** 2).alias(f"q:{n}"),
                 (pl.col(n) != 0).sum().cast(pl.Int64).alias(f"nz:{n}")]
    cohort = (per_unit.filter(pl.col("mature") <= last) if after is None
              else per_unit.filter(pl.col("mature") > after))
    cohort = cohort.group_by("xch", "arm", pl.col("mature").alias("hour")).agg(aggs)
    schema = {"xch": pl.String, "arm": pl.String, "hour": TS, "k": pl.Int64,
              "metric": pl.String}
    events = pl.concat(firsts) if firsts else pl.DataFrame(schema=schema)
    return (cohort.with_columns(pl.col("hour").cast(TS)),
            events.select(list(schema)).cast(schema), rows_read)


def _baseline(spec: Experiment, tables: Mapping[str, pl.LazyFrame], exposure: pl.DataFrame,
              window: dt.timedelta, tested: list[Metric]) -> dict[str, dict[str, float]]:
    """Per channel, from the window-long period before each unit's exposure (untouched by
    the treatment): mean and sd of the primary metric and the share of units responding for
    each tested metric. Fixed before any outcome is seen, so it may tune the tests."""
    unit = spec.unit
    primary = spec.metric(spec.primary_metric)
    per_unit = exposure.select(unit, "xch")
    first, end = exposure["exposed_at"].min() - window, exposure["exposed_at"].max()
    needed = [m for m in {m.name: m for m in [primary, *tested]}.values()]
    for table in sorted({m.table or "" for m in needed}):
        rows = _rows(spec, tables, table, first, end, exposure).filter(
            (pl.col("_ts") < pl.col("exposed_at"))
            & (pl.col("_ts") >= pl.col("exposed_at") - window))
        mine = [m for m in needed if m.table == table]
        outcome = [_outcome(m) for m in mine if m.name == primary.name]
        agg = rows.group_by(unit, "xch").agg(
            *outcome, *[_condition(m).any().cast(pl.Float64).alias(f"r:{m.name}")
                        for m in mine])
        per_unit = per_unit.join(agg, on=[unit, "xch"], how="left")
    cols = [primary.name, *[f"r:{m.name}" for m in needed]]
    per_unit = per_unit.with_columns(
        pl.col(c).fill_null(0.0) if c in per_unit.columns else pl.lit(0.0).alias(c)
        for c in cols)
    stats = per_unit.group_by("xch").agg(
        stable_mean(pl.col(primary.name)).alias("mean"),
        stable_std(pl.col(primary.name)).alias("sd"),
        *[stable_mean(pl.col(f"r:{m.name}")).alias(f"r:{m.name}") for m in needed])
    return {row.pop("xch"): {k: float(v or 0.0) for k, v in row.items()}
            for row in stats.iter_rows(named=True)}


def _digest(frame: pl.LazyFrame) -> tuple[int, int]:
    """Order-independent content digest: row count and the sum of 32-bit row hashes."""
    out = frame.select(pl.len().alias("n"),
                       (pl.struct(pl.all()).hash(seed=7) % (1 << 32)).sum().alias("h")
                       ).collect()
    return int(out["n"][0]), int(out["h"][0] or 0)
