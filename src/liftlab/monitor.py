"""Fast readout of email tests: an always-valid decision at any hour.

**Exposure.** A unit's exposure time is its first contact of the channel (``sent_at``); a unit
without a contact (the holdout) is exposed when the send would have reached it: the batch send
time (the channel's earliest ``sent_at``), or its ``assigned_at`` if later (continuous
enrolment), or ``assigned_at`` when the channel has no contacts at all.

**Two tests of the primary metric, neither counting a pending response as a non-response.**

1. Exposure-time cohorts: a unit counts only once its response window
   (``monitoring.response_window_hours``) has closed, with its outcome in that window; the
   mixture confidence sequence (:mod:`liftlab.stats.sequential`) runs on these matured units.
2. Event-indexed: every responding unit so far (its first response in its window), whatever
   the maturity; under no effect each falls in the treatment arm with probability equal to the
   treatment's share of units (a mixture SPRT). It decides in the first hours of a batch send.

Each runs at ``alpha / (2 m)`` for ``m`` comparisons (variants vs holdout, across channels):
Bonferroni keeps the overall false-positive rate at ``alpha`` however often one looks. The
reported p-value of a comparison is ``min(1, 2 m min(p_cohort, p_event))`` with each ``p`` a
running minimum, so a decision is exactly ``p < alpha``.

**Guardrails** (``guardrail: true`` metrics): one-sided (harm only) versions of both tests at
``alpha / (2 m g)`` for ``g`` guardrails. **SRM**: the sequential multinomial test of the arms'
assignment counts against the design's fractions at ``monitoring.srm_alpha``.

**Decisions** per hour, by precedence ``srm``, ``harm``, ``treatment_loses`` /
``treatment_wins``, else ``continue``; none before the burn-in (``min_events_per_arm``
responding units per arm; guardrails' event test: that many events in total). Once reached, a
decision, its hour (``decided_at``) and the test that made it (``decided_by``: ``cohort``,
``event``, ``group_sequential``, ``srm`` or ``guardrail:NAME``) stay.

**Tuning** (from the planned audience, fixed before the outcomes are seen): the cohort sequence
is tightest at the comparison's audience, or earlier when ``monitoring.expected_lift`` is set
(:func:`liftlab.stats.sequential.tune_n_star` with the baseline mean and sd of the primary
metric over the same units in the window-long period before exposure); the event test's
concentration comes from the responses of that pre-period (without any: from the number of
responses the burn-in needs, ``min_events_per_arm / min(share, 1 - share)``).

**Cache.** The heavy data work ends in hourly sufficient statistics (per hour of maturity, arm
and channel) and hourly counts of first responses. A matured cohort never changes, so they are
stored in ``cache_dir``; a later call computes only later hours, reading only the rows of units
whose window was still open at the last cached hour. A fingerprint of the inputs (the spec, the
exposures, and the rows the cached hours depend on) invalidates a stale cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from liftlab.data.quality import TS_COLUMN
from liftlab.errors import DataError, Problem
from liftlab.fsio import atomic_write_bytes, atomic_write_text, claim_cache, refuse_link
from liftlab.spec import HOLDOUT, Experiment, Metric
from liftlab.stable import stable_mean, stable_std, stable_sum
from liftlab.stats import sequential as seq
from liftlab.stats.suffstats import ArmStats

if TYPE_CHECKING:
    from liftlab.data.folder import FolderSource
    from liftlab.units import Units

Decision = Literal["continue", "treatment_wins", "treatment_loses", "harm", "srm"]
PRECEDENCE: tuple[Decision, ...] = ("srm", "harm", "treatment_loses", "treatment_wins",
                                    "continue")
HOUR = dt.timedelta(hours=1)
MAX_TIMELINE_HOURS = 3 * 366 * 24  # one timeline row per hour and comparison
TS = pl.Datetime("us", "UTC")
CACHE_VERSION = 2
MANIFEST = "manifest.json"
CACHE_FILE = re.compile(r"(cohort|events)-[0-9a-f]{16}\.parquet")
CACHE_TEMP = re.compile(r"\.((cohort|events)-[0-9a-f]{16}\.parquet|manifest\.json)"
                        r"\.liftlab-\w+\.tmp")  # an atomic write killed half-way
LEGACY_CACHE_FILES = ("meta.json", "cohort.parquet", "events.parquet")
log = logging.getLogger("liftlab.monitor")


@dataclass(frozen=True)
class MonitorResult:
    """The readout at ``as_of``: the decision so far, guardrails, SRM and the hourly timeline
    (one row per hour and comparison). ``hours_computed`` / ``hours_from_cache`` /
    ``rows_scanned`` say how much work this call did (rows of orders/events/contacts read)."""

    experiment: str
    as_of: dt.datetime
    decision: Decision
    decided_at: dt.datetime | None
    always_valid_p_value: float
    srm_p_value: float
    guardrails: tuple[dict[str, Any], ...]
    comparisons: tuple[dict[str, Any], ...]
    timeline: tuple[dict[str, Any], ...]
    hours_computed: int
    hours_from_cache: int
    rows_scanned: int
    clipped_to: dt.datetime | None = None  # as_of was past the horizon: read out until here

    @property
    def note(self) -> str | None:
        if self.clipped_to is None:
            return None
        return (f"as of {_iso(self.as_of)} is past the experiment's end plus its response "
                f"window: the readout stops at {_iso(self.clipped_to)}")

    def to_json(self) -> dict[str, Any]:
        """The ``liftlab monitor --json`` document (docs/cli.md); ``clipped_to``
        and ``note`` say when the readout stopped at the horizon before ``as_of``."""
        return {"experiment": self.experiment, "as_of": _iso(self.as_of),
                "clipped_to": _iso(self.clipped_to), "note": self.note,
                "decision": self.decision, "decided_at": _iso(self.decided_at),
                "always_valid_p_value": self.always_valid_p_value,
                "srm_p_value": self.srm_p_value, "guardrails": list(self.guardrails),
                "comparisons": list(self.comparisons), "timeline": list(self.timeline),
                "cache": {"hours_computed": self.hours_computed,
                          "hours_from_cache": self.hours_from_cache,
                          "rows_scanned": self.rows_scanned}}

    def sequential_summary(self) -> dict[str, Any]:
        """The results.json ``sequential`` block (docs/results.md), with the guardrails,
        the per-comparison state and the timeline the dashboard draws."""
        return {"always_valid_p_value": self.always_valid_p_value, "decision": self.decision,
                "decided_at": _iso(self.decided_at), "srm_p_value": self.srm_p_value,
                "guardrails": list(self.guardrails), "comparisons": list(self.comparisons),
                "timeline": list(self.timeline)}


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


def run_monitor(spec: Experiment, tables: Mapping[str, pl.LazyFrame], as_of: dt.datetime,
                cache_dir: Path | None = None) -> MonitorResult:
    """The sequential readout at ``as_of`` from ``tables`` (``assignments`` of this
    experiment's population; ``contacts``, ``orders``, ``events`` as the metrics need)."""
    metrics = [m for m in spec.metrics if m.kind != "ratio"]
    _check_tables(spec, tables, metrics)
    as_of = as_of.astimezone(dt.UTC)
    window = dt.timedelta(hours=spec.monitoring.response_window_hours)
    horizon = horizon_end(spec)
    last = min(_floor_hour(as_of), horizon)
    clipped = horizon if horizon < as_of else None
    exposure = _exposures(spec, tables, window)
    _check_span(spec, exposure, last)
    empty = MonitorResult(spec.id, as_of, "continue", None, 1.0, 1.0, (), (), (), 0, 0, 0,
                          clipped)
    if exposure.height == 0 or exposure["exposed_at"].min() >= last:
        return empty
    tested = [m for m in metrics if m.name == spec.primary_metric or m.guardrail]
    cache = _Cache(cache_dir, spec, window)
    prior = cache.read(tables, exposure, metrics)
    if prior is not None and prior.last >= last:
        cohort, events, baseline = prior.cohort, prior.events, prior.baseline
        computed, rows = 0, 0
    else:
        after = prior.last if prior is not None else None
        baseline = prior.baseline if prior is not None else _baseline(
            spec, tables, exposure, window, tested)
        new_cohort, new_events, rows = _hourly(spec, tables, exposure, metrics, tested,
                                               window, after, last)
        cohort = new_cohort if prior is None else pl.concat([prior.cohort, new_cohort])
        events = new_events if prior is None else pl.concat([prior.events, new_events])
        computed = _hours(after or _floor_hour(exposure["exposed_at"].min()), last)
        cache.write(tables, exposure, metrics, cohort, events, baseline, last)
    cached_hours = 0 if prior is None else _hours(
        _floor_hour(exposure["exposed_at"].min()), min(prior.last, last))
    result = _decide(spec, exposure, tested, cohort.filter(pl.col("hour") <= last),
                     events.filter(pl.col("hour") <= last), baseline, as_of, last,
                     computed, cached_hours, rows)
    return dataclasses.replace(result, clipped_to=clipped)


def _check_span(spec: Experiment, exposure: pl.DataFrame, last: dt.datetime) -> None:
    """Refuse a timeline longer than MAX_TIMELINE_HOURS (one row per hour): exposures long
    before the end mean the experiment's dates do not match the data."""
    if exposure.height == 0:
        return
    first = exposure["exposed_at"].min()
    assert isinstance(first, dt.datetime)
    if _hours(_floor_hour(first), last) > MAX_TIMELINE_HOURS:
        raise DataError([Problem(
            f"the first exposure ({first:%Y-%m-%d %H:%M} UTC) is more than "
            f"{MAX_TIMELINE_HOURS // 24} days before the readout ({last:%Y-%m-%d %H:%M} UTC); "
            "the hourly monitor reads at most that span", table="contacts", column="sent_at",
            hint=f"check the experiment's dates ({spec.start} to {spec.end}) against the "
                 "contacts and assignments")])


def horizon_end(spec: Experiment) -> dt.datetime:
    """The last hour worth reading out (UTC): the experiment's end (in its time zone) plus
    its response window, so a unit exposed before the end has matured. A readout asked for
    later stops there: one timeline row per hour up to a far date would exhaust memory."""
    from zoneinfo import ZoneInfo

    end = dt.datetime.combine(spec.end, dt.time(), tzinfo=ZoneInfo(spec.timezone))
    last = end.astimezone(dt.UTC) + dt.timedelta(hours=spec.monitoring.response_window_hours)
    return last if last == _floor_hour(last) else _floor_hour(last) + HOUR


# -- inputs ----------------------------------------------------------------------------------
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


def _condition(m: Metric) -> pl.Expr:
    cond = pl.lit(True)
    if m.event is not None:
        cond = cond & (pl.col("event") == m.event)
    if m.purchase_channel is not None:
        cond = cond & (pl.col("channel") == m.purchase_channel)
    return cond


def _unit_outcome(m: Metric) -> pl.Expr:
    """The metric of one unit over its rows (docs/yaml.md: mean sums ``value``, count counts rows,
    binary is any row), as Float64."""
    cond = _condition(m)
    if m.kind == "mean":
        e = stable_sum(pl.col(m.value or "").filter(cond))
    elif m.kind == "count":
        e = cond.sum()
    else:
        e = cond.any()
    return e.cast(pl.Float64).alias(m.name)


def _rows(spec: Experiment, tables: Mapping[str, pl.LazyFrame], table: str,
          lo: dt.datetime, hi: dt.datetime, exposure: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``table`` with ``lo <= ts < hi`` joined to the units' exposures, as ``ts``."""
    ts = TS_COLUMN[table]
    rows = tables[table].with_columns(pl.col(ts).cast(TS).alias("_ts")).filter(
        (pl.col("_ts") >= lo) & (pl.col("_ts") < hi))
    return rows.join(exposure.lazy(), on=spec.unit, how="inner").collect()


# -- heavy pass: hourly sufficient statistics -----------------------------------------------
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
        agg = rows.group_by(unit, "xch").agg(_unit_outcome(m) for m in mine)
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
        outcome = [_unit_outcome(m) for m in mine if m.name == primary.name]
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


# -- decisions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Comparison:
    channel: str
    arm: str
    variant: str | None
    n_treatment: int
    n_holdout: int

    @property
    def share(self) -> float:
        return self.n_treatment / (self.n_treatment + self.n_holdout)


def _decide(spec: Experiment, exposure: pl.DataFrame, tested: list[Metric],
            cohort: pl.DataFrame, events: pl.DataFrame, baseline: dict[str, dict[str, float]],
            as_of: dt.datetime, last: dt.datetime, computed: int, cached: int,
            rows: int) -> MonitorResult:
    mon = spec.monitoring
    alpha = spec.monitoring_alpha
    primary = spec.metric(spec.primary_metric)
    guards = [m for m in tested if m.guardrail and m.name != primary.name]
    sizes = {(r["xch"], r["arm"]): r["len"]
             for r in exposure.group_by("xch", "arm").len().iter_rows(named=True)}
    comps = [_Comparison(ch, arm, None if cfg.variants is None else arm,
                         sizes.get((ch, arm), 0), sizes.get((ch, HOLDOUT), 0))
             for ch, cfg in spec.channels.items() for arm in cfg.treatment_arms
             if sizes.get((ch, arm), 0) and sizes.get((ch, HOLDOUT), 0)]
    m = max(len(comps), 1)
    a_primary = alpha / (2 * m)
    a_guard = alpha / (2 * m * max(len(guards), 1))
    hours = pl.datetime_range(_floor_hour(exposure["exposed_at"].min()) + HOUR, last, "1h",
                              time_unit="us", time_zone="UTC", eager=True).to_list()
    cum = _cumulate(cohort, hours)
    ev = _cumulate_events(events, hours)
    assigned = _assigned(exposure, hours)
    srm_state = {ch: 1.0 for ch in spec.channels}
    gs = _GsPlan.of(spec, exposure)
    timeline: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    guard_out: dict[str, dict[str, Any]] = {
        g.name: {"metric": g.name, "decision": "continue", "p_value": 1.0, "decided_at": None}
        for g in guards}
    for c in comps:
        base = baseline.get(c.channel, {})
        audience = c.n_treatment + c.n_holdout
        lift = mon.expected_lift
        n_star = seq.tune_n_star(audience, a_primary, unit_sd=base.get("sd"),
                                 effect=None if lift is None else lift * base.get("mean", 0.0),
                                 treatment_share=c.share)
        # planned responses: the pre-period's; without any, those the burn-in needs
        burn = mon.min_events_per_arm / min(c.share, 1 - c.share)
        conc = {g.name: seq.mixture_concentration(
            base.get(f"r:{g.name}", 0.0) * audience or burn, a_guard) for g in guards}
        conc[primary.name] = seq.mixture_concentration(
            base.get(f"r:{primary.name}", 0.0) * audience or burn, a_primary)
        srm_conc = seq.mixture_concentration(sum(v for (ch, _), v in sizes.items()
                                                 if ch == c.channel), mon.srm_alpha)
        state: dict[str, Any] = {"decision": "continue", "decided_at": None,
                                 "decided_by": None}
        p_cohort = p_event = 1.0
        gs_looks: list[tuple[dt.datetime, seq.GroupSequentialLook]] = []
        g_min = {g.name: 1.0 for g in guards}
        for hour in hours:
            counts = [assigned.get((c.channel, arm, hour), 0)
                      for arm in spec.channels[c.channel].arms]
            if sum(counts):
                srm_state[c.channel] = min(srm_state[c.channel], seq.multinomial_mixture_p(
                    counts, list(spec.channels[c.channel].arms.values()), srm_conc))
            t, h = cum.get((c.channel, c.arm, hour)), cum.get((c.channel, HOLDOUT, hour))
            look = look_rel = None
            if t is not None and h is not None:
                ts_, hs_ = _stats(t, primary.name), _stats(h, primary.name)
                look = seq.mixture_look(ts_, hs_, n_star, a_primary)
                look_rel = seq.mixture_look(ts_, hs_, n_star, a_primary, "relative")
                burnt_in = min(t[f"nz:{primary.name}"], h[f"nz:{primary.name}"]) \
                    >= mon.min_events_per_arm
                if burnt_in and gs is None:
                    p_cohort = min(p_cohort, look.p_value)
                elif burnt_in and gs is not None and hour in gs.index:
                    nxt = gs.look(c, ts_, hs_, [g for _, g in gs_looks], hour, 2 * a_primary)
                    gs_looks += [(hour, nxt)] if nxt is not None else []
            k_t = ev.get((primary.name, c.channel, c.arm, hour), 0)
            k_h = ev.get((primary.name, c.channel, HOLDOUT, hour), 0)
            e_look = seq.event_look(k_t, k_h, c.share, conc[primary.name], a_primary)
            if min(k_t, k_h) >= mon.min_events_per_arm and gs is None:
                p_event = min(p_event, e_look.p_value)
            now: Decision = "continue"
            by: str | None = None
            if srm_state[c.channel] < mon.srm_alpha:
                now, by = "srm", "srm"
            for g in guards:
                g_min[g.name] = min(g_min[g.name], _harm_p(
                    g, cum.get((c.channel, c.arm, hour)), cum.get((c.channel, HOLDOUT, hour)),
                    ev.get((g.name, c.channel, c.arm, hour), 0),
                    ev.get((g.name, c.channel, HOLDOUT, hour), 0), c, audience, conc[g.name],
                    a_guard, mon.min_events_per_arm))
                out = guard_out[g.name]
                out["p_value"] = min(out["p_value"], min(1.0, g_min[g.name] * 2 * m * len(guards)))
                if g_min[g.name] < a_guard:
                    if out["decided_at"] is None or hour < out["decided_at"]:
                        out["decision"], out["decided_at"] = "harm", hour
                    if now == "continue":
                        now, by = "harm", f"guardrail:{g.name}"
            rejected = next((g for _, g in gs_looks if g.reject), None)
            if now == "continue" and rejected is not None:
                good = (rejected.z > 0) == (primary.desired_direction == "increase")
                now = "treatment_wins" if good else "treatment_loses"
                by = "group_sequential"
            elif now == "continue" and min(p_cohort, p_event) < a_primary:
                cohort = p_cohort < a_primary and look is not None
                up = look.estimate > 0 if cohort and look is not None else e_look.rate_ratio > 1
                good = up == (primary.desired_direction == "increase")
                now = "treatment_wins" if good else "treatment_loses"
                by = "cohort" if cohort else "event"
            if state["decided_at"] is None and now != "continue":
                state["decision"], state["decided_at"], state["decided_by"] = now, hour, by
            p_comb = (min(1.0, m * gs_looks[-1][1].p_value) if gs_looks
                      else min(1.0, 2 * m * min(p_cohort, p_event)))
            timeline.append({
                "at": _iso(hour), "channel": c.channel, "metric": primary.name,
                "variant": c.variant,
                "n_treatment": int(t["n"]) if t else 0, "n_holdout": int(h["n"]) if h else 0,
                "estimate": _num(look.estimate) if look else None,
                "ci": [_num(look.lower), _num(look.upper)] if look else [None, None],
                "estimate_rel": _num(look_rel.estimate) if look_rel else None,
                "ci_rel": ([_num(look_rel.lower), _num(look_rel.upper)] if look_rel
                           else [None, None]),
                "p_value": p_comb, "events_treatment": k_t, "events_holdout": k_h,
                "rate_ratio": _num(e_look.rate_ratio),
                "rate_ratio_ci": [_num(e_look.lower), _num(e_look.upper)],
                "event_p_value": min(1.0, 2 * m * p_event), "srm_p_value": srm_state[c.channel],
                "decision": state["decision"] if state["decided_at"] else now})
        states.append({"channel": c.channel, "variant": c.variant, "metric": primary.name,
                       "decision": state["decision"], "decided_at": state["decided_at"],
                       "decided_by": state["decided_by"],
                       "p_value": p_comb if hours else 1.0,
                       "n_star": n_star, **(_method_json(gs, gs_looks))})
    timeline.sort(key=lambda r: (r["at"], r["channel"], r["variant"] or ""))
    decision, decided_at = _overall(states)
    overall_p = min([1.0, *[s["p_value"] for s in states]])
    comparisons = tuple({**s, "decided_at": _iso(s["decided_at"])} for s in states)
    guardrails = tuple({**g, "decided_at": _iso(g["decided_at"])} for g in guard_out.values())
    return MonitorResult(spec.id, as_of, decision, decided_at, overall_p,
                         min([1.0, *srm_state.values()]), guardrails, comparisons,
                         tuple(timeline), computed, cached, rows)


@dataclass(frozen=True)
class _GsPlan:
    """The group-sequential schedule: look hours (from the first exposure's hour) and, per
    (channel, arm), the units whose response window closes by the horizon (the planned
    information)."""

    spending: seq.Spending
    index: dict[dt.datetime, int]
    planned: dict[tuple[str, str], int]

    @classmethod
    def of(cls, spec: Experiment, exposure: pl.DataFrame) -> _GsPlan | None:
        mon = spec.monitoring
        if mon.method != "group_sequential" or mon.horizon_hours is None:
            return None
        origin = _floor_hour(exposure["exposed_at"].min())
        index = {origin + h * HOUR: i for i, h in enumerate(mon.look_hours)}
        end = origin + mon.horizon_hours * HOUR
        planned = {(r["xch"], r["arm"]): r["len"] for r in exposure.filter(
            pl.col("mature") <= end).group_by("xch", "arm").len().iter_rows(named=True)}
        return cls(mon.spending or "obrien_fleming", index, planned)

    def look(self, c: _Comparison, t: ArmStats, h: ArmStats,
             previous: list[seq.GroupSequentialLook], hour: dt.datetime, alpha: float
             ) -> seq.GroupSequentialLook | None:
        """The analysis at this look hour of the difference of means (two-sided ``alpha``)."""
        fraction = seq.information_fraction(t, h, self.planned.get((c.channel, c.arm), 0),
                                            self.planned.get((c.channel, HOLDOUT), 0))
        est, var = seq.difference(t, h)
        z = est / math.sqrt(var) if var > 0 else math.nan
        return seq.group_sequential_look(previous, fraction, z, alpha, self.spending,
                                         self.index[hour] == len(self.index) - 1)


def _method_json(gs: _GsPlan | None,
                 looks: list[tuple[dt.datetime, seq.GroupSequentialLook]]) -> dict[str, Any]:
    if gs is None:
        return {"method": "mixture"}
    return {"method": "group_sequential", "spending": gs.spending,
            "looks": [{"at": _iso(at), **g.to_json()} for at, g in looks]}


def _harm_p(g: Metric, t: dict[str, float] | None, h: dict[str, float] | None, k_t: int,
            k_h: int, c: _Comparison, audience: int, conc: float, alpha: float,
            burn_in: int) -> float:
    """One-sided always-valid p of harm on guardrail ``g`` at this hour: the smaller of the
    matured-cohort sequence and the event-indexed test (each at ``alpha``)."""
    worse: seq.Side = "greater" if g.desired_direction == "decrease" else "less"
    p = 1.0
    if t is not None and h is not None and min(t[f"nz:{g.name}"], h[f"nz:{g.name}"]) >= burn_in:
        p = seq.mixture_look(_stats(t, g.name), _stats(h, g.name), audience, alpha,
                             side=worse).p_value
    if k_t + k_h >= burn_in:
        e = seq.event_look(k_t, k_h, c.share, conc, alpha)
        p = min(p, e.p_greater if worse == "greater" else e.p_less)
    return p


def _overall(states: list[dict[str, Any]]) -> tuple[Decision, dt.datetime | None]:
    """The most serious decision among comparisons, and when it was first reached."""
    for d in PRECEDENCE[:-1]:
        times = [s["decided_at"] for s in states if s["decision"] == d]
        if times:
            return d, min(times)
    return "continue", None


def _stats(row: dict[str, float], metric: str) -> ArmStats:
    return ArmStats(int(row["n"]), row[f"s:{metric}"], row[f"q:{metric}"])


def _cumulate(cohort: pl.DataFrame, hours: list[dt.datetime]
              ) -> dict[tuple[str, str, dt.datetime], dict[str, float]]:
    """Cumulative cohort statistics at every hour, keyed by (channel, arm, hour)."""
    if cohort.height == 0 or not hours:
        return {}
    grid = pl.DataFrame({"hour": hours}, schema={"hour": TS}).join(
        cohort.select("xch", "arm").unique(), how="cross")
    cols = [c for c in cohort.columns if c not in ("xch", "arm", "hour")]
    full = (grid.join(cohort, on=["xch", "arm", "hour"], how="left").fill_null(0)
            .sort("xch", "arm", "hour")
            .with_columns(pl.col(cols).cum_sum().over("xch", "arm")))
    return {(r.pop("xch"), r.pop("arm"), r.pop("hour")): r for r in full.iter_rows(named=True)}


def _cumulate_events(events: pl.DataFrame, hours: list[dt.datetime]
                     ) -> dict[tuple[str, str, str, dt.datetime], int]:
    """Cumulative first responses at every hour, keyed by (metric, channel, arm, hour)."""
    if events.height == 0 or not hours:
        return {}
    grid = pl.DataFrame({"hour": hours}, schema={"hour": TS}).join(
        events.select("metric", "xch", "arm").unique(), how="cross")
    full = (grid.join(events.group_by("metric", "xch", "arm", "hour").agg(pl.col("k").sum()),
                      on=["metric", "xch", "arm", "hour"], how="left").fill_null(0)
            .sort("metric", "xch", "arm", "hour")
            .with_columns(pl.col("k").cum_sum().over("metric", "xch", "arm")))
    return {(r["metric"], r["xch"], r["arm"], r["hour"]): int(r["k"])
            for r in full.iter_rows(named=True)}


def _assigned(exposure: pl.DataFrame, hours: list[dt.datetime]
              ) -> dict[tuple[str, str, dt.datetime], int]:
    """Assignment counts per (channel, arm) at every hour: units assigned by that hour."""
    if not hours:
        return {}
    grid = np.array([int(h.timestamp() * 1_000_000) for h in hours])
    out: dict[tuple[str, str, dt.datetime], int] = {}
    per = exposure.group_by("xch", "arm").agg(
        pl.col("assigned_at").dt.epoch("us").sort().alias("at"))
    for ch, arm, at in per.iter_rows():
        counts = np.searchsorted(np.asarray(at), grid, side="right")
        out.update({(ch, arm, h): int(k) for h, k in zip(hours, counts, strict=True)})
    return out


# -- cache ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cached:
    last: dt.datetime
    cohort: pl.DataFrame
    events: pl.DataFrame
    baseline: dict[str, dict[str, float]]


class _Cache:
    """Hourly aggregates of one experiment in ``cache_dir/<id>/`` with a fingerprint.

    Crash-safe: each save writes its data files under new names, then commits them by an
    atomic rename of ``manifest.json``, which lists them with their sizes and SHA-256; a
    reader trusts only what the manifest lists and verifies it. Files of older saves (and of
    saves that died before their commit) are removed after the next commit; nothing else in
    the folder is touched.
    """

    def __init__(self, root: Path | None, spec: Experiment, window: dt.timedelta) -> None:
        self.root = None if root is None else Path(root)
        self.dir = None if root is None else Path(root) / spec.id
        self.spec = spec
        self.window = window

    def _fingerprint(self, tables: Mapping[str, pl.LazyFrame], exposure: pl.DataFrame,
                     metrics: list[Metric], until: dt.datetime) -> str:
        """Spec, polars version, exposures, and the rows before ``until`` of every table a
        metric reads (their count and the wrapped sum of their row hashes)."""
        parts = [self.spec.model_dump_json(), pl.__version__, str(CACHE_VERSION),
                 str(exposure.height), str(_digest(exposure.lazy()))]
        for table in sorted({m.table or "" for m in metrics}):
            ts = TS_COLUMN[table]
            old = tables[table].filter(pl.col(ts).cast(TS) < until)
            parts.append(f"{table}:{_digest(old)}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def read(self, tables: Mapping[str, pl.LazyFrame], exposure: pl.DataFrame,
             metrics: list[Metric]) -> _Cached | None:
        if self.dir is None or not (self.dir / MANIFEST).is_file():
            return None
        try:
            manifest = json.loads((self.dir / MANIFEST).read_text())
            frames = {name: self._verified(manifest["files"][name])
                      for name in ("cohort", "events")}
            last = dt.datetime.fromisoformat(manifest["last_hour"])
            baseline = manifest["baseline"]
        except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as exc:
            log.warning("ignoring the monitor cache %s (%s); recomputing from the data",
                        self.dir, exc)
            return None
        if manifest.get("fingerprint") != self._fingerprint(tables, exposure, metrics, last):
            return None  # the data or the spec changed: a stale cache is recomputed
        return _Cached(last, frames["cohort"], frames["events"], baseline)

    def _verified(self, entry: dict[str, Any]) -> pl.DataFrame:
        """A data file the manifest lists, after checking its name, size and checksum."""
        assert self.dir is not None
        name = str(entry["name"])
        if not CACHE_FILE.fullmatch(name):
            raise ValueError(f"unexpected file name {name!r} in the manifest")
        data = (self.dir / name).read_bytes()
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(f"{name} does not match the manifest")
        return pl.read_parquet(io.BytesIO(data))

    def write(self, tables: Mapping[str, pl.LazyFrame], exposure: pl.DataFrame,
              metrics: list[Metric], cohort: pl.DataFrame, events: pl.DataFrame,
              baseline: dict[str, dict[str, float]], last: dt.datetime) -> None:
        if self.dir is None or self.root is None:
            return
        claim_cache(self.root)
        refuse_link(self.dir)
        generation = secrets.token_hex(8)
        files = {}
        for name, frame in (("cohort", cohort), ("events", events)):
            buf = io.BytesIO()
            frame.write_parquet(buf)
            data = buf.getvalue()
            file = f"{name}-{generation}.parquet"
            atomic_write_bytes(self.dir / file, data)
            files[name] = {"name": file, "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_text(self.dir / MANIFEST, json.dumps({
            "fingerprint": self._fingerprint(tables, exposure, metrics, last),
            "last_hour": last.isoformat(), "baseline": baseline, "files": files}))
        self._clean({f["name"] for f in files.values()})

    def _clean(self, keep: set[str]) -> None:
        """Remove the data files of other saves (and the layout of older liftlab versions)."""
        assert self.dir is not None
        for path in self.dir.iterdir():
            name = path.name
            if name in keep or not (CACHE_FILE.fullmatch(name) or CACHE_TEMP.fullmatch(name)
                                    or name in LEGACY_CACHE_FILES):
                continue
            with contextlib.suppress(OSError):
                path.unlink()


def _digest(frame: pl.LazyFrame) -> tuple[int, int]:
    """Order-independent content digest: row count and the sum of 32-bit row hashes."""
    out = frame.select(pl.len().alias("n"),
                       (pl.struct(pl.all()).hash(seed=7) % (1 << 32)).sum().alias("h")
                       ).collect()
    return int(out["n"][0]), int(out["h"][0] or 0)


# -- small helpers --------------------------------------------------------------------------
def _iso(ts: dt.datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor_hour(ts: dt.datetime) -> dt.datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _hours(start: dt.datetime, end: dt.datetime) -> int:
    return max(0, int((end - start) / HOUR))


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None
