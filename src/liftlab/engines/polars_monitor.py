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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

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
    # The baseline read along with a first ``hourly`` call (the same rows), for ``baseline``
    # of the same exposures and tested metrics: (exposure, window, tested names, baseline).
    _read_along: list[tuple[pl.DataFrame, dt.timedelta, list[str], dict[str, dict[str, float]]]
                      ] = field(default_factory=list, compare=False, repr=False)

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
        """Cohort statistics and first responses for hours in (after, last]. Without
        ``after`` (nothing cached) the same read gives the baseline, which ``baseline`` then
        returns: call ``hourly`` first."""
        cohort, events, rows, baseline = _hourly(self.spec, self.tables, exposure, metrics,
                                                 tested, window, after, last)
        if baseline is not None:
            self._read_along[:] = [(exposure, window, [m.name for m in tested], baseline)]
        return HourlyStats(cohort, events, rows)

    def baseline(self, exposure: pl.DataFrame, window: dt.timedelta,
                 tested: list[Metric]) -> dict[str, dict[str, float]]:
        for seen, width, names, baseline in self._read_along:
            if seen is exposure and width == window and names == [m.name for m in tested]:
                return baseline
        return _baseline(self.spec, self.tables, exposure, window, tested)

    def fingerprint(self, exposure: pl.DataFrame, metrics: list[Metric],
                    until: dt.datetime) -> list[str]:
        """The exposures and the rows the hours before ``until`` depend on of every table a
        metric reads (their count and the wrapped sum of their row hashes): rows from one
        response window before the first exposure (the baseline's pre-period) on. Older
        rows change no cached hour, and leaving them out spares an hourly update hashing
        the table's whole history."""
        parts = [str(exposure.height), str(_digest(exposure.lazy()))]
        window = dt.timedelta(hours=self.spec.monitoring.response_window_hours)
        lo = exposure["exposed_at"].min() - window if exposure.height else until
        for table in sorted({m.table or "" for m in metrics}):
            ts = pl.col(TS_COLUMN[table]).cast(TS)
            old = self.tables[table].filter((ts >= lo) & (ts < until))
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
    channels = list(spec.channels)
    start = dt.datetime.combine(spec.start, dt.time(), tzinfo=dt.UTC)
    wide = units.frame.lazy()
    if source.has("assignments") and "assigned_at" in source.schema("assignments"):
        table = source.scan("assignments", uid)
        if "experiment_id" in source.schema("assignments"):
            table = table.filter(pl.col("experiment_id") == spec.id)
        # Each unit's assignment time per channel as one group-by on the unit with a column
        # per channel, joined to the one-row-per-unit frame on the unit alone: cheaper than
        # joining (unit, channel) pairs (tests/test_perf_monitor.py checks the times).
        at = table.select(unit, *[
            pl.when(pl.col("channel") == ch).then(pl.col("assigned_at").cast(TS)).alias(_per(ch))
            for ch in channels]).group_by(unit).agg(pl.col(_per(ch)).min() for ch in channels)
        wide = wide.join(at, on=unit, how="left")
        when = {ch: pl.col(_per(ch)).fill_null(start) for ch in channels}
    else:
        when = {ch: pl.lit(start).cast(TS) for ch in channels}
    long = pl.concat([wide.select(
        unit, pl.lit(ch).alias("channel"), pl.col(f"arm:{ch}").cast(pl.String).alias("group"),
        when[ch].cast(TS).alias("assigned_at")) for ch in channels]
    ).filter(pl.col("group").is_not_null())
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
        # Each unit's first send per channel, as one group-by on the unit with a column per
        # channel: hashing one key instead of (unit, channel) pairs halves the work of this
        # group-by over every contact (tests/test_perf_monitor.py compares the routes).
        channels = list(spec.channels)
        sends = contacts.select(unit, *[
            pl.when(pl.col("channel") == ch).then(pl.col("sent_at").cast(TS)).alias(_per(ch))
            for ch in channels]).group_by(unit).agg(pl.col(_per(ch)).min() for ch in channels)
        frame = frame.join(sends, on=unit, how="left").with_columns(
            _pick(channels, lambda ch: pl.col(_per(ch))).alias("sent")).drop(map(_per, channels))
        frame = frame.with_columns(pl.col("sent").min().over("xch").alias("batch"))
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


def _per(ch: str, name: str = "sent") -> str:
    """A per-channel column of a one-row-per-unit frame."""
    return f"{name}\x1f{ch}"


def _pick(channels: list[str], column: Callable[[str], pl.Expr]) -> pl.Expr:
    """On one-row-per-(unit, channel) rows, the per-channel column of the row's channel."""
    expr = pl.when(pl.col("xch") == channels[0]).then(column(channels[0]))
    for ch in channels[1:]:
        expr = expr.when(pl.col("xch") == ch).then(column(ch))
    return expr


@dataclass(frozen=True)
class _Needs:
    """What one read of a table computes per unit and channel: each metric of ``window``
    over the unit's response window, the first response of each metric of ``first`` and,
    over the window-long period before exposure, each metric of ``pre`` (as ``pre:NAME``)
    and whether the unit responded to each metric of ``responded`` (``r:NAME``)."""

    window: list[Metric]
    first: list[Metric]
    pre: list[Metric]
    responded: list[Metric]

    def of(self, table: str) -> _Needs:
        return _Needs(*([m for m in ms if (m.table or "") == table]
                        for ms in (self.window, self.first, self.pre, self.responded)))

    @property
    def columns(self) -> list[str]:
        return ([m.name for m in self.window] + [f"first:{m.name}" for m in self.first]
                + [f"pre:{m.name}" for m in self.pre] + [f"r:{m.name}" for m in self.responded])

    @property
    def tables(self) -> list[str]:
        return sorted({m.table or "" for ms in (self.window, self.first, self.pre,
                                                self.responded) for m in ms})


def _unit_pass(spec: Experiment, tables: Mapping[str, pl.LazyFrame],
               units: pl.DataFrame, window: dt.timedelta, lo: dt.datetime, hi: dt.datetime,
               needs: _Needs) -> tuple[pl.DataFrame, int]:
    """``units`` (one row per unit and channel ``xch``, with ``exposed_at``) with the columns
    of ``needs`` from the rows of each table with ``lo <= ts < hi``; and the rows read.

    One read, one join and one group-by on the unit per table, whatever the number of
    channels and statistics: the exposures go wide (a column per channel) so that a row
    joins its unit once, not once per channel, and the response window, the pre-period and
    the first responses are conditions inside one aggregation; the per-unit results come
    back to (unit, channel) rows in one join per channel (tests/test_perf_monitor.py
    compares this with the per-unit definitions)."""
    unit = spec.unit
    channels = sorted(units["xch"].unique().to_list())
    wide = units.lazy().select(unit, *[
        pl.when(pl.col("xch") == ch).then(pl.col("exposed_at")).alias(_per(ch, "e"))
        for ch in channels]).group_by(unit).agg(pl.col(_per(ch, "e")).min() for ch in channels)
    ts = pl.col("_ts")
    merged: pl.LazyFrame | None = None
    rows_read = pl.lit(0, pl.Int64)
    for name in needs.tables:
        mine = needs.of(name)
        aggs: list[pl.Expr] = [pl.len().cast(pl.Int64).alias(_per(name, "rows"))]
        masks: list[pl.Expr] = []  # each row's periods, computed once before the group-by
        for ch in channels:
            e = pl.col(_per(ch, "e"))
            masks += [((ts >= e) & (ts < e + window)).alias(_per(ch, "in")),
                      ((ts < e) & (ts >= e - window)).alias(_per(ch, "before"))]
            inside, before = pl.col(_per(ch, "in")), pl.col(_per(ch, "before"))
            aggs += [measure_expr(metric_measure(m), inside).alias(_per(ch, m.name))
                     for m in mine.window]
            aggs += [ts.filter(inside & _condition(m)).min().alias(_per(ch, f"first:{m.name}"))
                     for m in mine.first]
            aggs += [measure_expr(metric_measure(m), before).alias(_per(ch, f"pre:{m.name}"))
                     for m in mine.pre]
            aggs += [(before & _condition(m)).any().cast(pl.Float64)
                     .alias(_per(ch, f"r:{m.name}")) for m in mine.responded]
        agg = (tables[name].with_columns(pl.col(TS_COLUMN[name]).cast(TS).alias("_ts"))
               .filter((ts >= lo) & (ts < hi))
               .join(wide, on=unit, how="inner")
               .with_columns(masks)
               .group_by(unit).agg(aggs))
        merged = agg if merged is None else merged.join(agg, on=unit, how="full",
                                                          coalesce=True)
        rows_read = rows_read + pl.col(_per(name, "rows")).fill_null(0).sum()
    names = needs.columns
    if merged is None:
        return units, 0
    merged = merged.collect()
    back = pl.concat([  # each channel's rows take their channel's columns only
        units.lazy().filter(pl.col("xch") == ch).join(
            merged.lazy().select(unit, *[pl.col(_per(ch, n)).alias(n) for n in names]),
            on=unit, how="left") for ch in channels]).collect()
    return back, int(merged.select(rows_read).item())


def _hourly(spec: Experiment, tables: Mapping[str, pl.LazyFrame], exposure: pl.DataFrame,
            metrics: list[Metric], tested: list[Metric], window: dt.timedelta,
            after: dt.datetime | None, last: dt.datetime
            ) -> tuple[pl.DataFrame, pl.DataFrame, int, dict[str, dict[str, float]] | None]:
    """Cohort statistics for maturity hours in (after, last] and first-response counts for
    hours in (after, last], reading only rows of units whose window was open after ``after``;
    and, from the same read, the baseline (``_baseline``) when ``after`` is None and every
    unit was exposed by ``last`` (else None)."""
    unit = spec.unit
    open_ = exposure if after is None else exposure.filter(
        pl.col("exposed_at") + window > after)
    with_base = (after is None and open_.height > 0
                 and open_["exposed_at"].max() <= last)
    needs = _Needs(metrics, tested, *_baseline_metrics(spec, tested) if with_base else ([], []))
    frame = open_.select(unit, "xch", "arm", "exposed_at", "mature")
    rows_read = 0
    if open_.height:
        lo = open_["exposed_at"].min() - (window if with_base else dt.timedelta(0))
        frame, rows_read = _unit_pass(spec, tables, frame, window, lo, last, needs)
    names = [m.name for m in metrics]
    frame = frame.with_columns(
        pl.col(n).fill_null(0.0) if n in frame.columns else pl.lit(0.0).alias(n)
        for n in names)
    firsts: list[pl.DataFrame] = []
    for m in tested if open_.height else []:
        first = (frame.filter(pl.col(f"first:{m.name}").is_not_null())
                 .select("xch", "arm", (pl.col(f"first:{m.name}").dt.truncate("1h") + HOUR)
                         .alias("hour")))
        if after is not None:
            first = first.filter(pl.col("hour") > after)
        firsts.append(first.group_by("xch", "arm", "hour").agg(
            pl.len().cast(pl.Int64).alias("k")).with_columns(pl.lit(m.name).alias("metric")))
    per_unit = frame.filter(pl.col("mature") <= last)  # every per-unit column rides along
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
    cohort = per_unit if after is None else per_unit.filter(pl.col("mature") > after)
    cohort = cohort.group_by("xch", "arm", pl.col("mature").alias("hour")).agg(aggs)
    schema = {"xch": pl.String, "arm": pl.String, "hour": TS, "k": pl.Int64,
              "metric": pl.String}
    events = pl.concat(firsts) if firsts else pl.DataFrame(schema=schema)
    baseline = _baseline_stats(spec, frame, tested) if with_base else None
    return (cohort.with_columns(pl.col("hour").cast(TS)),
            events.select(list(schema)).cast(schema), rows_read, baseline)


def _baseline_metrics(spec: Experiment, tested: list[Metric]) -> tuple[list[Metric],
                                                                        list[Metric]]:
    """The baseline's pre-period outcomes (the primary metric) and responses (the primary
    metric and the tested ones)."""
    primary = spec.metric(spec.primary_metric)
    return [primary], list({m.name: m for m in [primary, *tested]}.values())


def _baseline(spec: Experiment, tables: Mapping[str, pl.LazyFrame], exposure: pl.DataFrame,
              window: dt.timedelta, tested: list[Metric]) -> dict[str, dict[str, float]]:
    """Per channel, from the window-long period before each unit's exposure (untouched by
    the treatment): mean and sd of the primary metric and the share of units responding for
    each tested metric. Fixed before any outcome is seen, so it may tune the tests."""
    needs = _Needs([], [], *_baseline_metrics(spec, tested))
    frame = exposure.select(spec.unit, "xch", "exposed_at")
    first, end = exposure["exposed_at"].min() - window, exposure["exposed_at"].max()
    frame, _ = _unit_pass(spec, tables, frame, window, first, end, needs)
    return _baseline_stats(spec, frame, tested)


def _baseline_stats(spec: Experiment, frame: pl.DataFrame, tested: list[Metric]
                    ) -> dict[str, dict[str, float]]:
    """The baseline from one row per exposed unit and channel with its ``pre:`` and ``r:``
    columns (missing: no row in the pre-period)."""
    (primary,), responded = _baseline_metrics(spec, tested)
    cols = [f"pre:{primary.name}", *[f"r:{m.name}" for m in responded]]
    frame = frame.with_columns(
        pl.col(c).fill_null(0.0) if c in frame.columns else pl.lit(0.0).alias(c)
        for c in cols)
    stats = frame.group_by("xch").agg(
        stable_mean(pl.col(cols[0])).alias("mean"), stable_std(pl.col(cols[0])).alias("sd"),
        *[stable_mean(pl.col(f"r:{m.name}")).alias(f"r:{m.name}") for m in responded])
    return {row.pop("xch"): {k: float(v or 0.0) for k, v in row.items()}
            for row in stats.iter_rows(named=True)}


def _digest(frame: pl.LazyFrame) -> tuple[int, int]:
    """Order-independent content digest: row count and the sum of 32-bit row hashes."""
    out = frame.select(pl.len().alias("n"),
                       (pl.struct(pl.all()).hash(seed=7) % (1 << 32)).sum().alias("h")
                       ).collect()
    return int(out["n"][0]), int(out["h"][0] or 0)
