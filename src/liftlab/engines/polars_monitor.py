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

Ratio metrics and covariates (:func:`monitor_variables`): each tested metric's outcome parts
(a ratio's numerator and denominator) and its covariates get their sums and cross-products
per hour (``x:a:b``), so the monitor fits the fixed-horizon estimator (Lin's adjustment, the
delta method) on each look from this small table. A pre-period covariate is the measure over
the ``covariates.pre_period_days`` before each unit's own exposure; ``joined`` is 1 for a
customer who joined after that period's first day; ``attributes`` are customers columns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from liftlab.core.errors import DataError, Problem
from liftlab.core.stable import stable_mean, stable_std, stable_sum
from liftlab.data.folder import FolderSource, parse_timestamps
from liftlab.data.quality import TS_COLUMN
from liftlab.engines.cohort_sums import cohort_sums
from liftlab.engines.earliest import first_times_direct
from liftlab.engines.polars_measures import measure_condition, measure_expr
from liftlab.engines.shared import Content, shared_result, sharing
from liftlab.engines.units import Units
from liftlab.spec.aggregation import (
    JOINED,
    Measure,
    attribute,
    builtin_measure,
    covariates_of,
    metric_measure,
    pre_name,
)
from liftlab.spec.models import Experiment, Metric

# engines/dense_monitor.py (numba, 0.2 s to import) is imported inside the functions that
# run a compiled pass: an hourly monitor update that runs none does not load it.
if TYPE_CHECKING:
    from liftlab.engines import dense_monitor

HOUR = dt.timedelta(hours=1)
TS = pl.Datetime("us", "UTC")
DENSE_MONITOR = True  # the compiled per-unit pass (dense_monitor.py); False: polars only


def monitor_variables(spec: Experiment, metric: Metric) -> tuple[tuple[str, ...],
                                                                   tuple[str, ...]]:
    """A tested metric's outcome parts (its name, or a ratio's numerator and denominator)
    and the covariates the fixed-horizon analysis adjusts it for: under regression
    adjustment those of ``spec.aggregation.covariates_of``; under CUPED (``pre_period_days``
    alone) a per-unit metric's own pre-period value (a ratio is not adjusted there); none
    without a pre-period. The monitor fits them all by Lin's regression."""
    parts = ((metric.numerator, metric.denominator) if metric.kind == "ratio"
             else (metric.name,))
    cov = spec.covariates
    if cov.regression:
        covs = covariates_of(spec, metric, cov.pre_period_days > 0)
    elif cov.pre_period_days and metric.kind != "ratio":
        covs = (pre_name(metric.name),)
    else:
        covs = ()
    return tuple(p for p in parts if p is not None), covs


@dataclass(frozen=True)
class _Plan:
    """What the hourly pass computes per unit: window measures (each non-ratio metric's, and
    the built-in parts of ratio metrics), pre-period measures, customers covariates, and the
    pairs of variables whose cross-products the tested metrics need."""

    window: tuple[Measure, ...]
    pre: tuple[Measure, ...]
    customers: tuple[Measure, ...]
    products: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, spec: Experiment, metrics: list[Metric], tested: list[Metric]) -> _Plan:
        by_name = {m.name: metric_measure(m) for m in metrics if m.kind != "ratio"}
        window = dict(by_name)
        pre: dict[str, Measure] = {}
        customers: dict[str, Measure] = {}
        products: list[tuple[str, str]] = []
        for m in tested:
            parts, covs = monitor_variables(spec, m)
            for p in parts:
                window.setdefault(p, by_name.get(p) or builtin_measure(p))
            for c in covs:
                if c == JOINED:
                    customers[c] = Measure(c, "customers", "after", value=spec.covariates.joined)
                elif c.endswith("|attr"):
                    col = c.removesuffix("|attr")
                    assert attribute(col) == c
                    customers[c] = Measure(c, "customers", "value", value=col)
                else:
                    base = c.removesuffix("|pre")
                    assert pre_name(base) == c
                    source = by_name.get(base) or window.get(base) or builtin_measure(base)
                    pre[c] = Measure(c, source.table, source.agg, value=source.value,
                                     event=source.event, channel=source.channel, period="pre",
                                     winsorize=source.winsorize)
            names = [*parts, *covs]
            products += [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        return cls(tuple(window.values()), tuple(pre.values()), tuple(customers.values()),
                   tuple(dict.fromkeys(products)))

    @property
    def tables(self) -> list[str]:
        return sorted({m.table for m in (*self.window, *self.pre)})


@dataclass(frozen=True)
class HourlyStats:
    """Cohort statistics per (channel ``xch``, arm, maturity ``hour``): ``n`` and per
    variable (a metric, a ratio's part, a covariate) ``s:``, ``q:`` (sums of values and
    squares) and ``nz:`` (units with a non-zero value), ``x:a:b`` (sums of products of the
    pairs a tested metric's regression needs); first responses per (``xch``, arm, ``hour``,
    ``metric``): ``k`` (not for ratio metrics: see the monitor); rows read."""

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
    # Digests computed so far (``fingerprint``): of the exposures, and per (table, first
    # time) the digest of its rows up to each ``until`` asked.
    _digests: dict[object, list[tuple[object, tuple[int, int]]]] = field(
        default_factory=dict, compare=False, repr=False)
    # The exposures an earlier readout kept (``restore``): their key, a reader of the frame
    # and its digest.
    _kept: list[tuple[str, Callable[[], pl.DataFrame | None], tuple[int, int]]] = field(
        default_factory=list, compare=False, repr=False)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self.source.reading() if self.source is not None else contextlib.nullcontext():
            yield

    def check(self, metrics: list[Metric], tested: list[Metric]) -> None:
        _check_tables(self.spec, self.tables, _Plan.of(self.spec, metrics, tested))

    def exposures(self, window: dt.timedelta) -> pl.DataFrame:
        """One row per (unit, channel ``xch``): ``arm``, ``assigned_at``, ``exposed_at`` and
        the ``mature`` hour (exposure plus the response window, rounded up). The frame an
        earlier readout kept when the files they come from are the same (``restore``)."""
        key = self._exposure_key(window)
        for kept_key, read, digest in self._kept:
            frame = read() if key is not None and kept_key == key else None
            if frame is not None:
                self._digests["exposure"] = [(frame, digest)]
                return frame
        return _exposures(self.spec, self.tables, window)

    # An hourly update asks the same of the same files as the readout an hour before: the
    # units, assignment times and first sends behind the exposures (0.6 s of reading and
    # joining at 2 M customers) and the digests of the rows the cached hours depend on
    # (0.15 s of hashing 28 days of orders). ``state`` gives the monitor's cache what it
    # may keep, each with a signature of the files it was computed from (name, size,
    # modification and change times, inode of each file: a file rewritten or replaced has
    # another), and ``restore`` takes back only what the same files would give again. A
    # changed file, a new part or another spec recompute as before
    # (tests/test_perf_hourly.py).
    def state(self, exposure: pl.DataFrame, window: dt.timedelta) -> dict[str, Any]:
        """What a later readout of the same files may reuse (JSON): the key of these
        exposures with their digest (key None: not read from files), and per table read so
        far the digest of its rows up to the latest time asked, with its files'
        signature."""
        if self.source is None:
            return {}
        digests = []
        for key, known in self._digests.items():
            if key == "exposure" or not known:
                continue
            table, columns, lo = key  # type: ignore[misc]
            until, (n, h) = max(known, key=lambda k: k[0])  # type: ignore[arg-type, return-value]
            digests.append([table, list(columns), lo.isoformat(), until.isoformat(), n, h,
                            _signature(self.source, [table])])
        return {"exposures": self._exposure_key(window),
                "exposure_digest": list(self._digest_of(exposure)), "digests": digests}

    def restore(self, state: Mapping[str, Any],
                exposures: Callable[[], pl.DataFrame | None]) -> None:
        """Take back what ``state`` kept that these files would give again; ``exposures``
        reads the kept frame (None when it cannot)."""
        if self.source is None or not state:
            return
        if state.get("exposures") is not None:
            digest = state["exposure_digest"]
            self._kept[:] = [(state["exposures"], exposures, (int(digest[0]), int(digest[1])))]
        for table, columns, lo, until, n, h, signature in state.get("digests", []):
            if signature == _signature(self.source, [table]):
                key = (table, tuple(columns), dt.datetime.fromisoformat(lo))
                self._digests.setdefault(key, []).append(
                    (dt.datetime.fromisoformat(until), (int(n), int(h))))

    def _exposure_key(self, window: dt.timedelta) -> str | None:
        """What the exposures depend on: the spec, the window, the time zone, polars, and the
        files of the tables the units, assignment times and sends come from."""
        if self.source is None:
            return None
        return "|".join([self.spec.model_dump_json(), str(window), self.source.timezone,
                         pl.__version__,
                         _signature(self.source, ["assignments", "customers", "contacts"])])

    def hourly(self, exposure: pl.DataFrame, metrics: list[Metric], tested: list[Metric],
               window: dt.timedelta, after: dt.datetime | None, last: dt.datetime
               ) -> HourlyStats:
        """Cohort statistics and first responses for hours in (after, last]. Without
        ``after`` (nothing cached) the same read gives the baseline, which ``baseline`` then
        returns: call ``hourly`` first."""
        cohort, events, rows, baseline = _hourly(self.spec, self.tables, exposure, metrics,
                                                 tested, window, after, last, self.source)
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
        response window (the baseline's pre-period) or the covariates' pre-period, the
        longer, before the first exposure on. Older
        rows change no cached hour, and leaving them out spares an hourly update hashing
        the table's whole history."""
        parts = [str(exposure.height), str(self._digest_of(exposure))]
        window = dt.timedelta(hours=self.spec.monitoring.response_window_hours)
        reach = max(window, dt.timedelta(days=self.spec.covariates.pre_period_days))
        lo = exposure["exposed_at"].min() - reach if exposure.height else until
        read = _measure_columns(self.spec, _Plan.of(self.spec, metrics, metrics))
        for table in _read_tables(self.spec, metrics):
            if table == "customers":  # no time column: one row per customer
                parts.append(f"customers:{_digest(self.tables[table])}")
                continue
            parts.append(f"{table}:{self._rows_digest(table, sorted(read[table]), lo, until)}")
        return parts

    def _digest_of(self, exposure: pl.DataFrame) -> tuple[int, int]:
        """The exposures' digest, once per exposure frame (an update checks the cache and
        then writes it: two fingerprints of the same exposures)."""
        for seen, digest in self._digests.get("exposure", []):
            if seen is exposure:
                return digest
        digest = _digest(exposure.lazy())
        self._digests["exposure"] = [(exposure, digest)]
        return digest

    def _rows_digest(self, table: str, columns: list[str], lo: dt.datetime,
                     until: dt.datetime) -> tuple[int, int]:
        """The digest of a table's rows with ``lo <= ts < until``, of the ``columns`` the
        measures read (no other column changes a statistic; hashing fewer columns is
        cheaper). A digest is a count and a sum, so after one up to an earlier ``until``
        (the cache check) only the rows since are hashed (the cache write's): an hourly
        update hashes the table's history once, not twice."""
        key = (table, tuple(columns), lo)
        known = [(upto, d) for upto, d in self._digests.get(key, []) if upto <= until]
        start, (n, h) = max(known, key=lambda k: k[0]) if known else (lo, (0, 0))
        more = _digest(self._between(table, start, until).select(columns))
        digest = (n + more[0], h + more[1])
        self._digests.setdefault(key, []).append((until, digest))
        return digest

    def _between(self, table: str, lo: dt.datetime, hi: dt.datetime) -> pl.LazyFrame:
        """The table's rows with ``lo <= ts < hi``. From a folder, filtered on the stored
        timestamps first (``FolderSource.scan_between``): naive or zoned timestamps are
        converted before a filter on them, which then reads every row group (0.6 s for the
        hour an update hashes at 2 M customers, instead of a few row groups). The same rows
        and columns either way (tests/test_perf_hourly.py compares the digests)."""
        if self.source is None:
            ts = pl.col(TS_COLUMN[table]).cast(TS)
            return self.tables[table].filter((ts >= lo) & (ts < hi))
        return self.source.scan_between(table, TS_COLUMN[table], lo, hi,
                                        self.source.id_type(self.spec.unit))


def _signature(source: FolderSource, tables: list[str]) -> str:
    """The files of ``tables`` as they are now: each file's name, size, modification and
    change times (ns) and inode (a part folder: each of its Parquet files)."""
    parts = []
    for table in tables:
        path = source.path(table)
        files = [] if path is None else sorted(path.glob("*.parquet")) if path.is_dir() else [
            path]
        for f in files:
            st = f.stat()
            parts.append(f"{table}/{f.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:"
                         f"{st.st_ino}")
        parts.append(f"{table}:{len(files)}")
    return ";".join(parts)


def _read_tables(spec: Experiment, metrics: list[Metric]) -> list[str]:
    """The tables the hourly pass reads for ``metrics``: theirs, the orders for a ratio's
    built-in parts, the customers for covariates from there."""
    plan = _Plan.of(spec, metrics, metrics)
    return sorted({*plan.tables, *(m.table for m in plan.customers)})


def _condition(m: Metric) -> pl.Expr:
    """The rows that count as a response to the metric (its event and purchase channel)."""
    return measure_condition(metric_measure(m))


def tables_from_source(spec: Experiment, source: FolderSource,
                       units: Units | Callable[[], Units]) -> dict[str, pl.LazyFrame]:
    """The monitor's input tables from a data folder and the experiment's units: the
    assignments of this experiment's population (from the table when present, else the hash
    assignment at the start date) and the contacts, orders and events tables as they are.

    ``units`` may be a function giving them: the assignments are then built when a query
    first reads them (``pl.defer``), so a readout whose exposures its cache kept builds no
    units at all."""
    if callable(units):
        return _deferred(spec, source, units)
    unit = spec.unit
    uid = units.frame.schema[unit]
    channels = list(spec.channels)
    start = dt.datetime.combine(spec.start, dt.time(), tzinfo=dt.UTC)
    wide = units.frame.lazy()
    if source.has("assignments") and "assigned_at" in source.schema("assignments"):
        table = source.scan("assignments", uid)
        if "experiment_id" in source.schema("assignments"):
            table = table.filter(pl.col("experiment_id") == spec.id)
        if DENSE_MONITOR and not units.frame[unit].null_count():
            with source.reading():  # a read failure names the file
                long = _assigned_at(spec, units.frame, table, start)
            return {"assignments": long.lazy(), **_scans(source, uid)}
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
    long = _long(wide, unit, channels, when)
    return {"assignments": long, **_scans(source, uid)}


def _deferred(spec: Experiment, source: FolderSource, units: Callable[[], Units]
              ) -> dict[str, pl.LazyFrame]:
    """``tables_from_source`` with the assignments built from ``units()`` on first read."""
    uid = source.id_type(spec.unit)  # the units' id type (PolarsEngine.units)

    @functools.cache
    def assignments() -> pl.DataFrame:
        made = units()
        assert made.frame.schema[spec.unit] == uid
        return tables_from_source(spec, source, made)["assignments"].collect()

    schema = {spec.unit: uid, "channel": pl.String, "group": pl.String, "assigned_at": TS}
    return {"assignments": pl.defer(assignments, schema=schema, validate_schema=True),
            **_scans(source, uid)}


def _scans(source: FolderSource, uid: pl.DataType) -> dict[str, pl.LazyFrame]:
    return {name: source.scan(name, uid) for name in ("contacts", "orders", "events", "customers")
            if source.has(name)}


def _long(wide: pl.LazyFrame, unit: str, channels: list[str],
          when: Mapping[str, pl.Expr]) -> pl.LazyFrame:
    """One row per unit and channel it is assigned in: ``group`` and ``assigned_at``."""
    return pl.concat([wide.select(
        unit, pl.lit(ch).alias("channel"), pl.col(f"arm:{ch}").cast(pl.String).alias("group"),
        when[ch].cast(TS).alias("assigned_at")) for ch in channels]
    ).filter(pl.col("group").is_not_null())


def _assigned_at(spec: Experiment, frame: pl.DataFrame, table: pl.LazyFrame,
                 start: dt.datetime) -> pl.DataFrame:
    """The assignments rows of ``tables_from_source`` with each unit's earliest
    ``assigned_at`` per channel (the start when it has none) by the compiled scatter of
    dense_monitor.py instead of a group-by over the assignments table and a join
    (tests/test_perf_monitor_dense.py compares both)."""
    from liftlab.engines import dense_monitor  # numba: imported where a pass runs
    unit, channels = spec.unit, list(spec.channels)
    long = _long(frame.lazy(), unit, channels,
                 {ch: pl.lit(None, TS) for ch in channels}).collect()
    rows = table.filter(pl.col("channel").is_in(channels)).select(
        unit, dense_monitor.channel_code(channels),
        pl.col("assigned_at").cast(TS).dt.epoch("us").alias("time")).collect()
    at = _first_times(long.rename({"channel": "xch"}), unit, channels, rows)
    return long.with_columns(pl.from_epoch(at, "us").dt.replace_time_zone("UTC")
                             .fill_null(start).alias("assigned_at"))


def _measure_columns(spec: Experiment, plan: _Plan) -> dict[str, set[str]]:
    """The columns of each table the plan's measures read."""
    need: dict[str, set[str]] = {}
    for m in (*plan.window, *plan.pre, *plan.customers):
        cols = need.setdefault(m.table, {spec.unit})
        cols |= {TS_COLUMN[m.table]} if m.table != "customers" else set()
        cols |= {c for c in (m.value,) if c}
        cols |= {"event"} if m.event else set()
        cols |= {"channel"} if m.channel else set()
    return need


def _check_tables(spec: Experiment, tables: Mapping[str, pl.LazyFrame], plan: _Plan) -> None:
    """Every table and column the monitor needs, all problems at once."""
    need: dict[str, set[str]] = {"assignments": {spec.unit, "channel", "group", "assigned_at"}}
    if "contacts" in tables:
        need["contacts"] = {spec.unit, "channel", "sent_at"}
    for table, cols in _measure_columns(spec, plan).items():
        need[table] = need.get(table, set()) | cols
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
    schema = tables["customers"].collect_schema() if plan.customers else {}
    for m in plan.customers:
        assert m.value is not None
        dtype = schema[m.value]
        if m.agg == "value" and not (dtype.is_numeric() or dtype == pl.Boolean):
            raise DataError([Problem(
                f"covariate column {m.value!r} holds {dtype}, not numbers or true/false",
                table="customers", column=m.value,
                hint="name numeric customers columns in covariates.attributes")])


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
        # Each unit's first send per channel: by the compiled scatter (_with_first_sends),
        # else as one group-by on the unit with a column per channel (hashing one key
        # instead of (unit, channel) pairs halves the work of this group-by over every
        # contact; tests/test_perf_monitor.py and test_perf_monitor_dense.py compare).
        channels = list(spec.channels)
        eager = frame.collect()
        if DENSE_MONITOR and not eager[unit].null_count():
            frame = _with_first_sends(unit, eager, contacts, channels).lazy()
        else:
            sends = contacts.select(unit, *[
                pl.when(pl.col("channel") == ch).then(pl.col("sent_at").cast(TS))
                .alias(_per(ch)) for ch in channels]).group_by(unit).agg(
                pl.col(_per(ch)).min() for ch in channels)
            frame = eager.lazy().join(sends, on=unit, how="left").with_columns(
                _pick(channels, lambda ch: pl.col(_per(ch))).alias("sent")).drop(
                map(_per, channels))
        frame = frame.with_columns(pl.col("sent").min().over("xch").alias("batch"))
        fallback = pl.when(pl.col("batch").is_null()).then(pl.col("assigned_at")).otherwise(
            pl.max_horizontal("batch", "assigned_at"))
        frame = frame.with_columns(pl.coalesce("sent", fallback).alias("exposed_at")).drop(
            "sent", "batch")
    else:
        frame = frame.with_columns(pl.col("assigned_at").alias("exposed_at"))
    # one chunk per column: the query leaves 100-200 uneven chunks per column at 2 M
    # customers, and every later selection that pairs columns (or hands one to numpy)
    # re-chunked all 5 M rows again
    return frame.with_columns(_ceil_hour(pl.col("exposed_at") + window).alias("mature")
                              ).collect().rechunk()


def _with_first_sends(unit: str, frame: pl.DataFrame, contacts: pl.LazyFrame,
                      channels: list[str]) -> pl.DataFrame:
    """``frame`` (a unit and channel ``xch`` per row) with its first send (``sent``) from
    ``contacts`` of those channels, by the compiled scatter of dense_monitor.py: a third of
    the hash group-by's time over every contact (tests/test_perf_monitor_dense.py compares
    both)."""
    from liftlab.engines import dense_monitor  # numba: imported where a pass runs
    rows = contacts.select(unit, dense_monitor.channel_code(channels),
                           pl.col("sent_at").cast(TS).dt.epoch("us").alias("time")).collect()
    sent = _first_times(frame, unit, channels, rows)
    return frame.with_columns(pl.from_epoch(sent, "us").dt.replace_time_zone("UTC")
                              .alias("sent"))


def _first_times(units: pl.DataFrame, unit: str, channels: list[str],
                 rows: pl.DataFrame) -> pl.Series:
    """``dense_monitor.first_times``; for integer ids in a dense range by numpy alone
    (engines/earliest.py: the same minima without numba's 0.6 s start-up, which an hourly
    update paid for this alone)."""
    if rows.height == 0:
        # no time to place: every row's is null. A daily run's other experiments find no
        # rows of theirs in a table that names only one (0.3 s of slots at 2 M customers)
        return pl.repeat(None, units.height, dtype=pl.Int64, eager=True)
    from liftlab.engines import dense_monitor  # numba: imported where a pass runs
    direct = first_times_direct(units, unit, channels, rows)
    return dense_monitor.first_times(units, unit, channels, rows) if direct is None else direct


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
    """What one read of a table computes per unit and channel (``_unit_pass``): each measure
    of ``window`` over the unit's response window, each of ``pre`` over the covariates'
    pre-period before its exposure, the first response of each metric of ``first`` and, over
    the window-long period before exposure (the baseline's), each measure of ``base`` and
    whether the unit responded to each metric of ``responded`` (``r:NAME``)."""

    window: tuple[Measure, ...] = ()
    pre: tuple[Measure, ...] = ()
    first: tuple[Metric, ...] = ()
    base: tuple[Measure, ...] = ()
    responded: tuple[Metric, ...] = ()

    def of(self, table: str) -> _Needs:
        return _Needs(*(tuple(m for m in ms if (m.table or "") == table)
                        for ms in (self.window, self.pre, self.first, self.base,
                                   self.responded)))

    @property
    def columns(self) -> list[str]:
        return ([m.name for m in (*self.window, *self.pre)]
                + [f"first:{m.name}" for m in self.first] + [m.name for m in self.base]
                + [f"r:{m.name}" for m in self.responded])

    @property
    def tables(self) -> list[str]:
        return sorted({m.table or "" for ms in (self.window, self.pre, self.first, self.base,
                                                self.responded) for m in ms})


def _measure_over(m: Measure, period: pl.Expr) -> pl.Expr:
    """A unit's value of a measure over its rows in ``period``: the batch route's compiled
    measure, with sums taken in an order-independent way (stable.py) so reruns give the same
    bits whatever order the join delivers the rows in."""
    if m.agg == "sum":
        assert m.value is not None
        return stable_sum(pl.col(m.value).filter(period & measure_condition(m))).cast(
            pl.Float64).alias(m.name)
    return measure_expr(m, period).alias(m.name)


def _unit_pass(spec: Experiment, tables: Mapping[str, pl.LazyFrame], units: pl.DataFrame,
               window: dt.timedelta, pre_span: dt.timedelta | None, lo: dt.datetime,
               hi: dt.datetime, needs: _Needs, source: FolderSource | None = None,
               exposed: Content | None = None) -> tuple[pl.DataFrame, int]:
    """``units`` (one row per unit and channel ``xch``, with ``exposed_at``) with the columns
    of ``needs`` from the rows of each table with ``lo <= ts < hi``; and the rows read.

    The compiled route (engines/dense_monitor.py) when the run allows it: the polars route
    below (``_unit_pass_polars``) is the definition it is tested against, and stays for
    ``DENSE_MONITOR = False``."""
    if not DENSE_MONITOR or units.height == 0 or units[spec.unit].null_count():
        return _unit_pass_polars(spec, tables, units, window, pre_span, lo, hi, needs)
    return _unit_pass_dense(spec, tables, units, window, pre_span, lo, hi, needs, source,
                            exposed)


def _tasks(needs: _Needs) -> list[dense_monitor.Task]:
    """The statistics of one table's ``needs`` for the compiled pass."""
    from liftlab.engines import dense_monitor  # numba: imported where a pass runs
    def task(name: str, period: str, m: Measure, kind: str | None = None
             ) -> dense_monitor.Task:
        cond = measure_condition(m) if m.event is not None or m.channel is not None else None
        agg = kind or ("sum" if m.agg == "sum" else "count" if m.agg == "count" else "any")
        return dense_monitor.Task(name, period, agg, cond, m.value if agg == "sum" else None)

    return ([task(m.name, "in", m) for m in needs.window]
            + [task(m.name, "pre", m) for m in needs.pre]
            + [task(f"first:{m.name}", "in", metric_measure(m), "first") for m in needs.first]
            + [task(m.name, "before", m) for m in needs.base]
            + [task(f"r:{m.name}", "before", metric_measure(m), "any")
               for m in needs.responded])


def _unit_pass_dense(spec: Experiment, tables: Mapping[str, pl.LazyFrame],
                     units: pl.DataFrame, window: dt.timedelta, pre_span: dt.timedelta | None,
                     lo: dt.datetime, hi: dt.datetime, needs: _Needs,
                     source: FolderSource | None = None, exposed: Content | None = None
                     ) -> tuple[pl.DataFrame, int]:
    """``_unit_pass`` by the compiled loop: the same frame, row for row and bit for bit
    (nulls where the polars route's joins leave them: a unit without rows of a table in the
    read range, a unit without a response). ``source``: the folder ``tables`` (but the
    assignments) are the scans of, to share passes within a daily run (None: no sharing);
    ``exposed``: ``units``' unit, ``xch`` and ``exposed_at`` (computed here when None)."""
    from liftlab.engines import dense_monitor  # numba: imported where a pass runs
    if not needs.tables:
        return units, 0
    if exposed is None and source is not None:
        exposed = Content.of(units.select(spec.unit, "xch", "exposed_at"))
    channels = sorted(units["xch"].unique().to_list())
    # the polars route's row order (each channel's rows in turn): later means over these
    # rows (the baseline's) then add in the same order
    chan = dense_monitor.channel_codes(units["xch"], channels)
    if chan.size and np.any(chan[1:] < chan[:-1]):
        units = units[np.argsort(chan, kind="stable")]
    us = dt.timedelta(microseconds=1)
    width, pre = window // us, (pre_span or dt.timedelta(0)) // us
    ts = pl.col("_ts")
    indexed: list[dense_monitor.UnitIndex] = []  # built once, only when a table is read

    def table_columns(name: str, tasks: list[dense_monitor.Task]) -> tuple[pl.DataFrame, int]:
        if not indexed:
            indexed.append(dense_monitor.UnitIndex.of(units, spec.unit, channels))
        scan = (tables[name].with_columns(pl.col(TS_COLUMN[name]).cast(TS).alias("_ts"))
                .filter((ts >= lo) & (ts < hi)))
        stats = dense_monitor.table_stats(scan, indexed[0], tasks, width, pre)
        missing = pl.Series(~stats.has)
        columns = []
        for t in tasks:
            if t.kind == "first":
                raw = stats.firsts[t.name]
                col = pl.Series(t.name, raw).cast(pl.Datetime("us")).dt.replace_time_zone(
                    "UTC")
                col = col.set(pl.Series(raw == dense_monitor.NO_FIRST), None)  # type: ignore[arg-type]
            else:
                col = pl.Series(t.name, stats.values[t.name]).set(missing, None)  # type: ignore[arg-type]
            columns.append(col)
        return pl.DataFrame(columns), stats.rows

    # A daily run's experiments often have the same units and exposures (only their arms
    # differ): the columns of a table are then the same, and are computed once for the run
    # (engines/shared.py). Their key: the table (``source.scan(name, id type)``), its
    # statistics, the periods and the read range; the units, channels and exposure times in
    # the order given (``exposed``) are compared by value.
    frames: list[pl.DataFrame] = []
    rows = 0
    for name in needs.tables:
        tasks = _tasks(needs.of(name))
        key = ("monitor-unit-pass", name, tuple(_task_key(t) for t in tasks), width, pre,
               lo, hi, tuple(channels))
        frame, read = shared_result(source, key, partial(table_columns, name, tasks),
                                    lambda built: int(built[0].estimated_size()), exposed)
        frames.append(frame)
        rows += read
    columns = {c.name: c for frame in frames for c in frame.get_columns()}
    return units.with_columns(columns[n] for n in needs.columns), rows


def _task_key(t: dense_monitor.Task) -> tuple[str, str, str, str | None, str | None]:
    """A task by value (a condition by its serialised expression)."""
    cond = None if t.cond is None else t.cond.meta.serialize(format="json")
    return t.name, t.period, t.kind, cond, t.value


def _unit_pass_polars(spec: Experiment, tables: Mapping[str, pl.LazyFrame],
                      units: pl.DataFrame, window: dt.timedelta,
                      pre_span: dt.timedelta | None, lo: dt.datetime, hi: dt.datetime,
                      needs: _Needs) -> tuple[pl.DataFrame, int]:
    """The polars route of ``_unit_pass``.

    One read, one join and one group-by on the unit per table, whatever the number of
    channels and statistics: the exposures go wide (a column per channel) so that a row
    joins its unit once, not once per channel, and the response window, the pre-periods and
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
            if pre_span is not None and mine.pre:
                masks.append(((ts < e) & (ts >= e - pre_span)).alias(_per(ch, "pre")))
            inside, before = pl.col(_per(ch, "in")), pl.col(_per(ch, "before"))
            aggs += [_measure_over(m, inside).alias(_per(ch, m.name)) for m in mine.window]
            aggs += [_measure_over(m, pl.col(_per(ch, "pre"))).alias(_per(ch, m.name))
                     for m in mine.pre]
            aggs += [ts.filter(inside & _condition(m)).min().alias(_per(ch, f"first:{m.name}"))
                     for m in mine.first]
            aggs += [_measure_over(m, before).alias(_per(ch, m.name)) for m in mine.base]
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
            after: dt.datetime | None, last: dt.datetime, source: FolderSource | None = None
            ) -> tuple[pl.DataFrame, pl.DataFrame, int, dict[str, dict[str, float]] | None]:
    """Cohort statistics for maturity hours in (after, last] and first-response counts for
    hours in (after, last], reading only rows of units whose window was open after ``after``
    (and, for pre-period covariates, those units' rows before their exposure); and, from the
    same read, the baseline (``_baseline``) when ``after`` is None and every unit was exposed
    by ``last`` (else None). ``source``: see ``_unit_pass_dense``."""
    unit = spec.unit
    plan = _Plan.of(spec, metrics, tested)
    pre_span = dt.timedelta(days=spec.covariates.pre_period_days) if plan.pre else None
    open_ = exposure if after is None else exposure.filter(
        pl.col("exposed_at") + window > after)
    with_base = (after is None and open_.height > 0
                 and open_["exposed_at"].max() <= last)
    needs = _Needs(plan.window, plan.pre, tuple(m for m in tested if m.kind != "ratio"),
                   *(_baseline_needs(spec, tested) if with_base else ((), ())))
    frame = open_.select(unit, "xch", "arm", "exposed_at", "mature")
    # what the shared per-unit pass and baseline depend on besides their keys
    exposed = None if source is None else Content.of(frame.select(unit, "xch", "exposed_at"))
    rows_read = 0
    if open_.height:
        reach = max(pre_span or dt.timedelta(0), window if with_base else dt.timedelta(0))
        lo = open_["exposed_at"].min() - reach
        frame, rows_read = _unit_pass(spec, tables, frame, window, pre_span, lo, last, needs,
                                      source, exposed)
    firsts: list[pl.DataFrame] = []
    for m in needs.first if open_.height else ():
        first = (frame.filter(pl.col(f"first:{m.name}").is_not_null())
                 .select("xch", "arm", (pl.col(f"first:{m.name}").dt.truncate("1h") + HOUR)
                         .alias("hour")))
        if after is not None:
            first = first.filter(pl.col("hour") > after)
        firsts.append(first.group_by("xch", "arm", "hour").agg(
            pl.len().cast(pl.Int64).alias("k")).with_columns(pl.lit(m.name).alias("metric")))
    per_unit = frame.filter(pl.col("mature") <= last)
    if plan.customers:
        per_unit = per_unit.join(_customer_values(spec, tables, plan), on=unit, how="left")
        if pre_span is not None and JOINED in per_unit.columns:
            per_unit = per_unit.with_columns(
                (pl.col(JOINED) > (pl.col("exposed_at") - pre_span).dt.date())
                .fill_null(False).cast(pl.Float64).alias(JOINED))
    names = [m.name for m in (*plan.window, *plan.pre, *plan.customers)]
    per_unit = per_unit.with_columns(
        pl.col(n).fill_null(0.0) if n in per_unit.columns else pl.lit(0.0).alias(n)
        for n in names)
    capped = [m for m in (*plan.window, *plan.pre) if m.winsorize is not None]
    if capped:  # the batch route's cap, within each channel's cohort of one maturity hour
        per_unit = per_unit.with_columns(
            pl.col(m.name).clip(upper_bound=pl.col(m.name).quantile(m.winsorize, "linear")
                                .over("xch", "mature")) for m in capped)
    aggs: list[pl.Expr] = [pl.len().cast(pl.Int64).alias("n")]
    for n in names:
        aggs += [stable_sum(pl.col(n)).alias(f"s:{n}"),
                 stable_sum(pl.col(n) ** 2).alias(f"q:{n}"),
                 (pl.col(n) != 0).sum().cast(pl.Int64).alias(f"nz:{n}")]
    aggs += [stable_sum(pl.col(a) * pl.col(b)).alias(f"x:{a}:{b}") for a, b in plan.products]
    cohort = per_unit if after is None else per_unit.filter(pl.col("mature") > after)
    if sharing() and source is not None and cohort.height:
        # a daily run: the values' sorted order is shared by its experiments (the sort is
        # most of this group-by's time), each adds its own groups' values in that order
        placed = (window, last, after, None if exposed is None else exposed.digest)
        cohort = cohort_sums(cohort.rename({"mature": "hour"}), names, plan.products,
                             source, placed)
    else:
        cohort = cohort.group_by("xch", "arm", pl.col("mature").alias("hour")).agg(aggs)
    schema = {"xch": pl.String, "arm": pl.String, "hour": TS, "k": pl.Int64,
              "metric": pl.String}
    events = pl.concat(firsts) if firsts else pl.DataFrame(schema=schema)
    baseline = None
    if with_base:
        # like the per-unit pass, the same for a daily run's experiments with the same units
        # and exposures (it does not group by arm): computed once (engines/shared.py)
        base = _Needs((), (), (), *_baseline_needs(spec, tested))
        key = ("monitor-baseline", tuple(_task_key(t) for n in base.tables
                                         for t in _tasks(base.of(n))), window, lo, last)
        kept = shared_result(
            source, key, partial(_baseline_stats, spec, frame, tested), lambda _: 0, exposed)
        baseline = {ch: dict(stats) for ch, stats in kept.items()}  # the caller's own copy
    return (cohort.with_columns(pl.col("hour").cast(TS)),
            events.select(list(schema)).cast(schema), rows_read, baseline)


def _customer_values(spec: Experiment, tables: Mapping[str, pl.LazyFrame],
                     plan: _Plan) -> pl.DataFrame:
    """Per customer, the customers covariates: a number (null read as 0), or the join date
    (the missing indicator compares it with the first day of the pre-period before the
    unit's exposure)."""
    exprs = []
    schema = tables["customers"].collect_schema()
    for m in plan.customers:
        assert m.value is not None
        if m.agg == "after":  # a date as stored: Date, a timestamp, or ISO text (a CSV)
            col = pl.col(m.value)
            date = (parse_timestamps(col, "UTC").dt.date() if schema[m.value] == pl.String
                    else col.cast(pl.Date))
            exprs.append(date.alias(m.name))
        else:
            exprs.append(pl.col(m.value).fill_null(0).cast(pl.Float64).alias(m.name))
    return tables["customers"].select(spec.unit, *exprs).collect()


def _baseline_needs(spec: Experiment, tested: list[Metric]
                    ) -> tuple[tuple[Measure, ...], tuple[Metric, ...]]:
    """The baseline's pre-exposure outcomes (the primary metric, or a ratio primary's
    numerator and denominator, as ``v:NAME``) and responses (the primary metric and the
    tested per-unit ones)."""
    primary = spec.metric(spec.primary_metric)
    by_name = {m.name: metric_measure(m) for m in spec.metrics if m.kind != "ratio"}
    parts = ([primary.numerator, primary.denominator] if primary.kind == "ratio"
             else [primary.name])
    measures = tuple(dataclasses.replace(by_name.get(p) or builtin_measure(p), name=f"v:{p}")
                     for p in parts if p is not None)
    responders = tuple(m for m in {m.name: m for m in [primary, *tested]}.values()
                       if m.kind != "ratio")
    return measures, responders


def _baseline(spec: Experiment, tables: Mapping[str, pl.LazyFrame], exposure: pl.DataFrame,
              window: dt.timedelta, tested: list[Metric]) -> dict[str, dict[str, float]]:
    """Per channel, from the window-long period before each unit's exposure (untouched by
    the treatment): mean and sd of the primary metric (of a ratio: the ratio and the sd of
    its per-unit linearisation ``(num - R den) / mean(den)``, the delta method's) and the
    share of units responding for each tested per-unit metric. Fixed before any outcome is
    seen, so it may tune the tests."""
    needs = _Needs((), (), (), *_baseline_needs(spec, tested))
    frame = exposure.select(spec.unit, "xch", "exposed_at")
    first, end = exposure["exposed_at"].min() - window, exposure["exposed_at"].max()
    frame, _ = _unit_pass(spec, tables, frame, window, None, first, end, needs)
    return _baseline_stats(spec, frame, tested)


def _baseline_stats(spec: Experiment, frame: pl.DataFrame, tested: list[Metric]
                    ) -> dict[str, dict[str, float]]:
    """The baseline from one row per exposed unit and channel with its ``v:`` and ``r:``
    columns (missing: no row in the pre-period)."""
    measures, responders = _baseline_needs(spec, tested)
    cols = [m.name for m in measures] + [f"r:{m.name}" for m in responders]
    per_unit = frame.with_columns(
        pl.col(c).fill_null(0.0) if c in frame.columns else pl.lit(0.0).alias(c)
        for c in cols)
    if len(measures) == 2:  # a ratio primary metric
        num, den = pl.col(measures[0].name), pl.col(measures[1].name)
        ratio = (stable_sum(num) / stable_sum(den)).over("xch")
        per_unit = per_unit.with_columns(
            ratio.alias("|ratio"),
            ((num - ratio * den) / den.mean().over("xch")).alias("|value"))
        mean = pl.col("|ratio").first()
    else:
        per_unit = per_unit.with_columns(pl.col(measures[0].name).alias("|value"))
        mean = stable_mean(pl.col("|value"))
    stats = per_unit.group_by("xch").agg(
        mean.alias("mean"), stable_std(pl.col("|value")).alias("sd"),
        *[stable_mean(pl.col(f"r:{m.name}")).alias(f"r:{m.name}") for m in responders])
    return {row.pop("xch"): {k: float(v or 0.0) if v is None or math.isfinite(v) else 0.0
                             for k, v in row.items()}
            for row in stats.iter_rows(named=True)}


def _digest(frame: pl.LazyFrame) -> tuple[int, int]:
    """Order-independent content digest: row count and the sum of 32-bit row hashes."""
    out = frame.select(pl.len().alias("n"),
                       (pl.struct(pl.all()).hash(seed=7) % (1 << 32)).sum().alias("h")
                       ).collect()
    return int(out["n"][0]), int(out["h"][0] or 0)
