"""Fast readout of email tests: an always-valid decision at any hour.

**Exposure.** A unit's exposure time is its first contact of the channel (``sent_at``); a unit
without a contact (the holdout) is exposed when the send would have reached it: the batch send
time (the channel's earliest ``sent_at``), or its ``assigned_at`` if later (continuous
enrolment), or ``assigned_at`` when the channel has no contacts at all.

**Two tests of the primary metric, neither counting a pending response as a non-response.**

1. Exposure-time cohorts: a unit counts only once its response window
   (``monitoring.response_window_hours``) has closed, with its outcome in that window; the
   mixture confidence sequence (:mod:`liftlab.stats.sequential`) runs on these matured units,
   on the estimator the fixed-horizon analysis reports (:func:`_fits`): the mean, Lin's
   regression-adjusted mean (the YAML's covariates; under CUPED the metric's own pre-period
   value), a ratio metric's delta-method estimate (adjusted on its linearisation under
   regression adjustment), each with its variance, from the hourly sums and cross-products.
2. Event-indexed: every responding unit so far (its first response in its window), whatever
   the maturity; under no effect each falls in the treatment arm with probability equal to the
   treatment's share of units (a mixture SPRT). It decides in the first hours of a batch send.
   A ratio metric has none: its responses' split says nothing about the ratio.

Each runs at ``alpha / (2 m)`` for ``m`` comparisons (variants vs holdout, across channels):
Bonferroni keeps the overall false-positive rate at ``alpha`` however often one looks. The
reported p-value of a comparison is ``min(1, 2 m min(p_cohort, p_event))`` with each ``p`` a
running minimum, so a decision is exactly ``p < alpha``.

**Guardrails** (``guardrail: true`` metrics): one-sided (harm only) versions of both tests at
``alpha / (2 m g)`` for ``g`` guardrails (a ratio guardrail: the cohort test only).
**SRM**: the sequential multinomial test of the arms' assignment counts against the design's
fractions at ``monitoring.srm_alpha``.

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
from typing import Any, Literal

import numpy as np
import polars as pl

from liftlab.core.errors import DataError, Problem
from liftlab.core.fsio import atomic_write_bytes, atomic_write_text, claim_cache, refuse_link
from liftlab.engines.base import HourlySource
from liftlab.engines.polars_monitor import HOUR, TS, PolarsHourly, monitor_variables
from liftlab.spec.models import HOLDOUT, Experiment, Metric
from liftlab.stats import regression
from liftlab.stats import sequential as seq
from liftlab.stats.regression import ArmFit, Moments

Decision = Literal["continue", "treatment_wins", "treatment_loses", "harm", "srm"]
PRECEDENCE: tuple[Decision, ...] = ("srm", "harm", "treatment_loses", "treatment_wins",
                                    "continue")
MAX_TIMELINE_HOURS = 3 * 366 * 24  # one timeline row per hour and comparison
CACHE_VERSION = 4  # 4: ratio parts, covariates and their cross-products per hour
MANIFEST = "manifest.json"
CACHE_FILE = re.compile(r"(cohort|events|exposures)-[0-9a-f]{16}\.parquet")
CACHE_TEMP = re.compile(r"\.((cohort|events|exposures)-[0-9a-f]{16}\.parquet|manifest\.json)"
                        r"\.liftlab-\w+\.tmp")  # an atomic write killed half-way
LEGACY_CACHE_FILES = ("meta.json", "cohort.parquet", "events.parquet")
log = logging.getLogger("liftlab.analyses.monitor")


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




def run_monitor(spec: Experiment, data: HourlySource | Mapping[str, pl.LazyFrame],
                as_of: dt.datetime, cache_dir: Path | None = None) -> MonitorResult:
    """The sequential readout at ``as_of``. ``data``: an engine's hourly source
    (``engine.hourly(spec, units)``), or polars tables (``assignments`` of this experiment's
    population with ``assigned_at``; ``contacts``, ``orders``, ``events`` as the metrics
    need)."""
    source = PolarsHourly(spec, data) if isinstance(data, Mapping) else data
    with source.reading():
        return _readout(spec, source, as_of, cache_dir)


def _readout(spec: Experiment, source: HourlySource, as_of: dt.datetime,
             cache_dir: Path | None) -> MonitorResult:
    metrics = list(spec.metrics)
    tested = [m for m in metrics if m.name == spec.primary_metric or m.guardrail]
    source.check(metrics, tested)
    as_of = as_of.astimezone(dt.UTC)
    window = dt.timedelta(hours=spec.monitoring.response_window_hours)
    horizon = horizon_end(spec)
    last = min(_floor_hour(as_of), horizon)
    clipped = horizon if horizon < as_of else None
    cache = _Cache(cache_dir, spec, window)
    cache.restore(source)  # what the last readout kept of the same files
    exposure = source.exposures(window)
    _check_span(spec, exposure, last)
    empty = MonitorResult(spec.id, as_of, "continue", None, 1.0, 1.0, (), (), (), 0, 0, 0,
                          clipped)
    if exposure.height == 0 or exposure["exposed_at"].min() >= last:
        return empty
    prior = cache.read(source, exposure, metrics)
    memo = _Memo({} if prior is None else dict(prior.looks))
    if prior is not None and prior.last >= last:
        cohort, events, baseline = prior.cohort, prior.events, prior.baseline
        computed, rows, save = 0, 0, False
    else:
        after = prior.last if prior is not None else None
        new = source.hourly(exposure, metrics, tested, window, after, last)
        baseline = prior.baseline if prior is not None else source.baseline(
            exposure, window, tested)  # after hourly: read along with it when it can be
        cohort = new.cohort if prior is None else pl.concat([prior.cohort, new.cohort])
        events = new.events if prior is None else pl.concat([prior.events, new.events])
        rows = new.rows
        computed = _hours(after or _floor_hour(exposure["exposed_at"].min()), last)
        save = True
    cached_hours = 0 if prior is None else _hours(
        _floor_hour(exposure["exposed_at"].min()), min(prior.last, last))
    per_time = cache.per_time(exposure)
    out = _decide(spec, exposure, tested, cohort.filter(pl.col("hour") <= last),
                  events.filter(pl.col("hour") <= last), baseline, last, memo, per_time)
    if save:  # after the decisions: the cache keeps the looks they solved (``_Memo``)
        cache.write(source, exposure, metrics, cohort, events, baseline, last, memo.saved(),
                    per_time)
    return MonitorResult(spec.id, as_of, out.decision, out.decided_at, out.p_value,
                         out.srm_p_value, out.guardrails, out.comparisons, out.timeline,
                         computed, cached_hours, rows, clipped)


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


@dataclass(frozen=True)
class _Levels:
    """Bonferroni levels: ``m`` comparisons, each test of the primary metric at
    ``alpha / (2 m)``, of a guardrail at ``alpha / (2 m g)``."""

    m: int
    guards: int
    primary: float
    guard: float

    @classmethod
    def of(cls, alpha: float, comparisons: int, guards: int) -> _Levels:
        m, g = max(comparisons, 1), max(guards, 1)
        return cls(m, guards, alpha / (2 * m), alpha / (2 * m * g))


@dataclass(frozen=True)
class _Hourly:
    """The cumulative inputs of every look: cohort statistics per (channel, arm, hour),
    first responses per (metric, channel, arm, hour), and the running SRM p per (channel,
    hour)."""

    hours: list[dt.datetime]
    cohort: dict[tuple[str, str, dt.datetime], dict[str, float]]
    events: dict[tuple[str, str, str, dt.datetime], int]
    srm: dict[tuple[str, dt.datetime], float]


@dataclass(frozen=True)
class _Setting:
    """What every look of every comparison shares: the experiment, the test levels, the
    group-sequential schedule (None for the mixture tests), the guardrails and the hourly
    inputs."""

    spec: Experiment
    levels: _Levels
    gs: _GsPlan | None
    guards: list[Metric]
    data: _Hourly
    memo: _Memo = dataclasses.field(default_factory=lambda: _Memo({}))


@dataclass(frozen=True)
class _Memo:
    """Looks computed once per distinct input. A cohort stays the same from the hour its
    last unit matures (all at once after a batch send), and first responses stop with the
    windows, so most hours repeat an earlier hour's fits, sequences and event tests (1.2 s
    of fits at 2 M units before, the same numbers: they are pure functions of the keys)."""

    store: dict[tuple[Any, ...], Any]

    def fits(self, spec: Experiment, metric: Metric, t: dict[str, float] | None,
             h: dict[str, float] | None) -> tuple[ArmFit, ArmFit] | None:
        key = ("fits", metric.name, _row_key(t), _row_key(h))
        if key not in self.store:
            self.store[key] = _fits(spec, metric, t, h)
        return self.store[key]  # type: ignore[no-any-return]

    def fitted(self, spec: Experiment, metric: Metric, t: dict[str, float],
               h: dict[str, float], n_star: float, alpha: float,
               scale: seq.Scale = "absolute", side: seq.Side = "two-sided"
               ) -> seq.SequentialLook:
        """``seq.fitted_look`` of the metric's fits on these cohort rows."""
        key = ("look", metric.name, _row_key(t), _row_key(h), n_star, alpha, scale, side)
        if key not in self.store:
            fits = self.fits(spec, metric, t, h)
            assert fits is not None
            self.store[key] = seq.fitted_look(*fits, int(t["n"] + h["n"]), n_star, alpha,
                                              scale, side)
        return self.store[key]  # type: ignore[no-any-return]

    def event(self, k_t: int, k_h: int, share: float, conc: float, alpha: float
              ) -> seq.EventLook:
        key = ("event", k_t, k_h, share, conc, alpha)
        if key not in self.store:
            self.store[key] = seq.event_look(k_t, k_h, share, conc, alpha)
        return self.store[key]  # type: ignore[no-any-return]

    def srm(self, counts: list[int], probs: list[float], conc: float) -> float:
        key = ("srm", tuple(counts), tuple(probs), conc)
        if key not in self.store:
            self.store[key] = seq.multinomial_mixture_p(counts, probs, conc)
        return self.store[key]  # type: ignore[no-any-return]

    # The event looks and SRM tests are pure functions of a few numbers, and an hourly
    # update repeats every earlier hour's: the cache keeps them (``saved``, read back by
    # ``loaded``), so an update solves only its new looks. Without that each update
    # imported scipy.optimize and scipy.special (0.3 s) to solve the looks of hours solved
    # before. JSON keeps every float exactly (shortest repr), so a look read back is the
    # look solved (tests/test_perf_hourly.py compares readouts with and without them).
    def saved(self) -> dict[str, Any]:
        """The event looks and SRM p-values solved so far, for the cache (JSON)."""
        events = [[*key[1:], *dataclasses.astuple(v)] for key, v in self.store.items()
                  if key[0] == "event"]
        srm = [[list(key[1]), list(key[2]), key[3], v] for key, v in self.store.items()
               if key[0] == "srm"]
        return {"version": _LOOKS_VERSION, "scipy": _scipy_version(), "event": events,
                "srm": srm}

    @staticmethod
    def loaded(saved: dict[str, Any]) -> dict[tuple[Any, ...], Any]:
        """The memo entries of ``saved`` (none when another scipy or format solved them)."""
        if saved.get("version") != _LOOKS_VERSION or saved.get("scipy") != _scipy_version():
            return {}
        out: dict[tuple[Any, ...], Any] = {}
        for k_t, k_h, share, conc, alpha, *look in saved["event"]:
            out[("event", int(k_t), int(k_h), float(share), float(conc), float(alpha))] = (
                seq.EventLook(int(look[0]), int(look[1]), *map(float, look[2:])))
        for counts, probs, conc, p in saved["srm"]:
            out[("srm", tuple(int(c) for c in counts), tuple(float(q) for q in probs),
                 float(conc))] = float(p)
        return out


def _row_key(row: dict[str, float] | None) -> tuple[Any, ...] | None:
    return None if row is None else tuple(row.items())


_LOOKS_VERSION = 1  # the layout of ``_Memo.saved``


def _scipy_version() -> str:
    """The installed scipy's version without importing it (the looks' solver)."""
    from importlib.metadata import version

    return version("scipy")


@dataclass(frozen=True)
class _Readout:
    """The decision part of a ``MonitorResult``."""

    decision: Decision
    decided_at: dt.datetime | None
    p_value: float
    srm_p_value: float
    guardrails: tuple[dict[str, Any], ...]
    comparisons: tuple[dict[str, Any], ...]
    timeline: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class _Tuning:
    """A comparison's tests as tuned before any outcome: the cohort sequence's ``n_star`` and
    the event tests' mixture concentration per metric."""

    n_star: float
    concentration: dict[str, float]


@dataclass
class _GuardState:
    """A guardrail's decision across comparisons (``harm`` at its earliest hour)."""

    metric: str
    decision: Decision = "continue"
    p_value: float = 1.0
    decided_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "decision": self.decision, "p_value": self.p_value,
                "decided_at": _iso(self.decided_at)}


@dataclass
class _Running:
    """One comparison's running state over the hours: the running minimum p-values of the
    cohort and event tests and of each guardrail, the group-sequential looks so far and the
    first decision reached."""

    p_cohort: float = 1.0
    p_event: float = 1.0
    guards: dict[str, float] = dataclasses.field(default_factory=dict)
    looks: list[tuple[dt.datetime, seq.GroupSequentialLook]] = dataclasses.field(
        default_factory=list)
    decision: Decision = "continue"
    decided_at: dt.datetime | None = None
    decided_by: str | None = None  # the test: cohort, event, group_sequential, srm, guardrail
    p_value: float = 1.0


def _decide(spec: Experiment, exposure: pl.DataFrame, tested: list[Metric],
            cohort: pl.DataFrame, events: pl.DataFrame, baseline: dict[str, dict[str, float]],
            last: dt.datetime, memo: _Memo, per_time: pl.DataFrame) -> _Readout:
    primary = spec.metric(spec.primary_metric)
    guards = [m for m in tested if m.guardrail and m.name != primary.name]
    # ``per_time``: units per (channel, arm, assignment time), few rows (units share batch
    # times), for both the arms' sizes and the assignment counts by hour
    sizes = {(r["xch"], r["arm"]): r["len"] for r in per_time.group_by("xch", "arm").agg(
        pl.col("len").sum()).iter_rows(named=True)}
    comps = [_Comparison(ch, arm, None if cfg.variants is None else arm,
                         sizes.get((ch, arm), 0), sizes.get((ch, HOLDOUT), 0))
             for ch, cfg in spec.channels.items() for arm in cfg.treatment_arms
             if sizes.get((ch, arm), 0) and sizes.get((ch, HOLDOUT), 0)]
    levels = _Levels.of(spec.monitoring_alpha, len(comps), len(guards))
    hours = pl.datetime_range(_floor_hour(exposure["exposed_at"].min()) + HOUR, last, "1h",
                              time_unit="us", time_zone="UTC", eager=True).to_list()
    data = _Hourly(hours, _cumulate(cohort, hours), _cumulate_events(events, hours),
                   _srm_timeline(spec, {c.channel for c in comps}, sizes,
                                 _assigned_from(per_time, hours), hours, memo))
    setting = _Setting(spec, levels, _GsPlan.of(spec, exposure), guards, data, memo)
    guard_out = {g.name: _GuardState(g.name) for g in guards}
    timeline: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for c in comps:
        tuning = _tune(spec, c, baseline.get(c.channel, {}), guards, levels)
        run = _Running(guards={g.name: 1.0 for g in guards})
        for hour in hours:
            timeline.append(_look(setting, c, hour, tuning, run, guard_out))
        states.append({"channel": c.channel, "variant": c.variant, "metric": primary.name,
                       "decision": run.decision, "decided_at": run.decided_at,
                       "decided_by": run.decided_by, "p_value": run.p_value,
                       "n_star": tuning.n_star, **_estimator_json(spec, primary),
                       **(_method_json(setting.gs, run.looks))})
    timeline.sort(key=lambda r: (r["at"], r["channel"], r["variant"] or ""))
    decision, decided_at = _overall(states)
    overall_p = min([1.0, *[s["p_value"] for s in states]])
    srm_p = min([1.0, *data.srm.values()])
    comparisons = tuple({**s, "decided_at": _iso(s["decided_at"])} for s in states)
    return _Readout(decision, decided_at, overall_p, srm_p,
                    tuple(g.to_json() for g in guard_out.values()), comparisons,
                    tuple(timeline))


def _srm_timeline(spec: Experiment, channels: set[str], sizes: Mapping[tuple[str, str], int],
                  assigned: Mapping[tuple[str, str, dt.datetime], int],
                  hours: list[dt.datetime], memo: _Memo) -> dict[tuple[str, dt.datetime], float]:
    """Per channel (of a comparison) and hour, the running minimum of the sequential
    multinomial test of the arms' assignment counts against the design's fractions."""
    out: dict[tuple[str, dt.datetime], float] = {}
    for ch, cfg in spec.channels.items():
        if ch not in channels:
            continue
        conc = seq.mixture_concentration(sum(v for (c, _), v in sizes.items() if c == ch),
                                         spec.monitoring.srm_alpha)
        running = 1.0
        for hour in hours:
            counts = [assigned.get((ch, arm, hour), 0) for arm in cfg.arms]
            if sum(counts):
                running = min(running, memo.srm(counts, list(cfg.arms.values()), conc))
            out[(ch, hour)] = running
    return out


def _tune(spec: Experiment, c: _Comparison, base: Mapping[str, float], guards: list[Metric],
          levels: _Levels) -> _Tuning:
    """The cohort sequence is tightest at the audience (or at the expected lift); the event
    tests expect the pre-period's responses, or without any those the burn-in needs."""
    mon = spec.monitoring
    audience = c.n_treatment + c.n_holdout
    lift = mon.expected_lift
    n_star = seq.tune_n_star(audience, levels.primary, unit_sd=base.get("sd"),
                             effect=None if lift is None else lift * base.get("mean", 0.0),
                             treatment_share=c.share)
    burn = mon.min_events_per_arm / min(c.share, 1 - c.share)
    conc = {g.name: seq.mixture_concentration(
        base.get(f"r:{g.name}", 0.0) * audience or burn, levels.guard) for g in guards}
    conc[spec.primary_metric] = seq.mixture_concentration(
        base.get(f"r:{spec.primary_metric}", 0.0) * audience or burn, levels.primary)
    return _Tuning(n_star, conc)


def _look(setting: _Setting, c: _Comparison, hour: dt.datetime, tuning: _Tuning,
          run: _Running, guard_out: dict[str, _GuardState]) -> dict[str, Any]:
    """One comparison at one hour: update its running state and the guardrails', decide,
    and return its timeline row."""
    spec, levels, gs, data = setting.spec, setting.levels, setting.gs, setting.data
    mon = spec.monitoring
    primary = spec.metric(spec.primary_metric)
    t, h = data.cohort.get((c.channel, c.arm, hour)), data.cohort.get((c.channel, HOLDOUT, hour))
    look = look_rel = None
    fits = setting.memo.fits(spec, primary, t, h)
    if t is not None and h is not None and fits is not None:
        look = setting.memo.fitted(spec, primary, t, h, tuning.n_star, levels.primary)
        look_rel = setting.memo.fitted(spec, primary, t, h, tuning.n_star, levels.primary,
                                       "relative")
        if _burnt_in(spec, primary, t, h) and gs is None:
            run.p_cohort = min(run.p_cohort, look.p_value)
        elif _burnt_in(spec, primary, t, h) and gs is not None and hour in gs.index:
            nxt = gs.look(c, fits, (int(t["n"]), int(h["n"])), [g for _, g in run.looks],
                          hour, 2 * levels.primary)
            run.looks += [(hour, nxt)] if nxt is not None else []
    k_t = data.events.get((primary.name, c.channel, c.arm, hour), 0)
    k_h = data.events.get((primary.name, c.channel, HOLDOUT, hour), 0)
    e_look = None if primary.kind == "ratio" else setting.memo.event(
        k_t, k_h, c.share, tuning.concentration[primary.name], levels.primary)
    if e_look is not None and min(k_t, k_h) >= mon.min_events_per_arm and gs is None:
        run.p_event = min(run.p_event, e_look.p_value)
    srm = data.srm[(c.channel, hour)]
    now: Decision = "srm" if srm < mon.srm_alpha else "continue"
    by: str | None = "srm" if now == "srm" else None
    harmed = _guard_looks(setting, c, hour, tuning, run, guard_out)
    if harmed is not None and now == "continue":
        now, by = "harm", f"guardrail:{harmed}"
    rejected = next((g for _, g in run.looks if g.reject), None)
    if now == "continue" and rejected is not None:
        good = (rejected.z > 0) == (primary.desired_direction == "increase")
        now = "treatment_wins" if good else "treatment_loses"
        by = "group_sequential"
    elif now == "continue" and min(run.p_cohort, run.p_event) < levels.primary:
        cohort = run.p_cohort < levels.primary and look is not None
        up = (look.estimate > 0 if cohort and look is not None
              else e_look is not None and e_look.rate_ratio > 1)
        good = up == (primary.desired_direction == "increase")
        now = "treatment_wins" if good else "treatment_loses"
        by = "cohort" if cohort else "event"
    if run.decided_at is None and now != "continue":
        run.decision, run.decided_at, run.decided_by = now, hour, by
    run.p_value = (min(1.0, levels.m * run.looks[-1][1].p_value) if run.looks
                   else min(1.0, 2 * levels.m * min(run.p_cohort, run.p_event)))
    return {
        "at": _iso(hour), "channel": c.channel, "metric": primary.name, "variant": c.variant,
        "n_treatment": int(t["n"]) if t else 0, "n_holdout": int(h["n"]) if h else 0,
        "estimate": _num(look.estimate) if look else None,
        "ci": [_num(look.lower), _num(look.upper)] if look else [None, None],
        "estimate_rel": _num(look_rel.estimate) if look_rel else None,
        "ci_rel": [_num(look_rel.lower), _num(look_rel.upper)] if look_rel else [None, None],
        "p_value": run.p_value, "events_treatment": k_t, "events_holdout": k_h,
        "rate_ratio": _num(e_look.rate_ratio) if e_look else None,
        "rate_ratio_ci": [_num(e_look.lower), _num(e_look.upper)] if e_look else [None, None],
        "event_p_value": min(1.0, 2 * levels.m * run.p_event) if e_look else None,
        "srm_p_value": srm,
        "decision": run.decision if run.decided_at else now}


def _guard_looks(setting: _Setting, c: _Comparison, hour: dt.datetime, tuning: _Tuning,
                 run: _Running, guard_out: dict[str, _GuardState]) -> str | None:
    """Update each guardrail's running harm p for this comparison and its overall state;
    the first guardrail that shows harm at this hour (None when none does)."""
    spec, levels, data, guards = setting.spec, setting.levels, setting.data, setting.guards
    harm: str | None = None
    audience = c.n_treatment + c.n_holdout
    for g in guards:
        run.guards[g.name] = min(run.guards[g.name], _harm_p(
            setting.memo, spec, g, data.cohort.get((c.channel, c.arm, hour)),
            data.cohort.get((c.channel, HOLDOUT, hour)),
            data.events.get((g.name, c.channel, c.arm, hour), 0),
            data.events.get((g.name, c.channel, HOLDOUT, hour), 0), c, audience,
            tuning.concentration[g.name], levels.guard, spec.monitoring.min_events_per_arm))
        out = guard_out[g.name]
        out.p_value = min(out.p_value, min(1.0, run.guards[g.name] * 2 * levels.m
                                           * levels.guards))
        if run.guards[g.name] < levels.guard:
            if out.decided_at is None or hour < out.decided_at:
                out.decision, out.decided_at = "harm", hour
            harm = harm or g.name
    return harm


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
        planned = {(r["xch"], r["arm"]): r["len"] for r in exposure.lazy().filter(
            pl.col("mature") <= end).group_by("xch", "arm").len().collect().iter_rows(
                named=True)}  # lazy: the streaming engine (see _decide)
        return cls(mon.spending or "obrien_fleming", index, planned)

    def look(self, c: _Comparison, fits: tuple[ArmFit, ArmFit], sizes: tuple[int, int],
             previous: list[seq.GroupSequentialLook], hour: dt.datetime, alpha: float
             ) -> seq.GroupSequentialLook | None:
        """The analysis at this look hour of the metric's estimate (two-sided ``alpha``)."""
        fraction = seq.fitted_information_fraction(
            *fits, *sizes, self.planned.get((c.channel, c.arm), 0),
            self.planned.get((c.channel, HOLDOUT), 0))
        est, var = seq.fitted_difference(*fits)
        z = est / math.sqrt(var) if var > 0 else math.nan
        return seq.group_sequential_look(previous, fraction, z, alpha, self.spending,
                                         self.index[hour] == len(self.index) - 1)


def _method_json(gs: _GsPlan | None,
                 looks: list[tuple[dt.datetime, seq.GroupSequentialLook]]) -> dict[str, Any]:
    if gs is None:
        return {"method": "mixture"}
    return {"method": "group_sequential", "spending": gs.spending,
            "looks": [{"at": _iso(at), **g.to_json()} for at, g in looks]}


def _harm_p(memo: _Memo, spec: Experiment, g: Metric, t: dict[str, float] | None,
            h: dict[str, float] | None, k_t: int, k_h: int, c: _Comparison, audience: int,
            conc: float, alpha: float, burn_in: int) -> float:
    """One-sided always-valid p of harm on guardrail ``g`` at this hour: the smaller of the
    matured-cohort sequence (of the metric's fixed-horizon estimator, :func:`_fits`) and,
    for a per-unit metric, the event-indexed test (each at ``alpha``)."""
    worse: seq.Side = "greater" if g.desired_direction == "decrease" else "less"
    p = 1.0
    fits = memo.fits(spec, g, t, h)
    if t is not None and h is not None and fits is not None and _burnt_in(spec, g, t, h):
        p = memo.fitted(spec, g, t, h, audience, alpha, side=worse).p_value
    if g.kind != "ratio" and k_t + k_h >= burn_in:
        e = memo.event(k_t, k_h, c.share, conc, alpha)
        p = min(p, e.p_greater if worse == "greater" else e.p_less)
    return p


def _overall(states: list[dict[str, Any]]) -> tuple[Decision, dt.datetime | None]:
    """The most serious decision among comparisons, and when it was first reached."""
    for d in PRECEDENCE[:-1]:
        times = [s["decided_at"] for s in states if s["decision"] == d]
        if times:
            return d, min(times)
    return "continue", None


def _fits(spec: Experiment, metric: Metric, t: dict[str, float] | None,
          h: dict[str, float] | None) -> tuple[ArmFit, ArmFit] | None:
    """Each arm's estimate of ``metric`` from its cumulative cohort row, as at the fixed
    horizon: Lin's regression on the monitor's covariates (none: the raw mean), for a ratio
    the delta method on its linearisation (adjusted the same way). None when an arm has
    fewer than 2 units or a ratio's denominator sums to zero in an arm."""
    if t is None or h is None or min(t["n"], h["n"]) < 2:
        return None
    parts, covs = monitor_variables(spec, metric)
    mt, mh = _moments(t, [*parts, *covs]), _moments(h, [*parts, *covs])
    if metric.kind != "ratio":
        return regression.arm_fits(mt, mh, metric.name, covs)
    num, den = parts
    if not (t[f"s:{den}"] and h[f"s:{den}"]):
        return None
    return regression.ratio_arm_fits(mt, mh, num, den, covs)


def _moments(row: dict[str, float], names: list[str]) -> Moments:
    """The sums and cross-products of ``names`` in one cumulative cohort row."""
    k = len(names)
    cross = np.zeros((k, k))
    for i, a in enumerate(names):
        cross[i, i] = row[f"q:{a}"]
        for j in range(i + 1, k):
            cross[i, j] = cross[j, i] = row[f"x:{a}:{names[j]}"]
    return Moments(tuple(names), int(row["n"]), np.array([row[f"s:{a}"] for a in names]),
                   cross)


def _estimator_json(spec: Experiment, metric: Metric) -> dict[str, Any]:
    """Which estimate the comparison's cohort test runs on (the fixed horizon's ``method``
    names) and its covariates (measure names, as results.json's effects list them)."""
    covs = monitor_variables(spec, metric)[1]
    name = ("delta_ratio" if metric.kind == "ratio" else "mean") if not covs else (
        "delta_ratio_regression" if metric.kind == "ratio" else "lin_regression")
    return {"estimator": name, "covariates": list(covs)}


def _burnt_in(spec: Experiment, metric: Metric, t: dict[str, float],
              h: dict[str, float]) -> bool:
    """Enough units with a response (a ratio: a non-zero numerator) in both arms."""
    first = monitor_variables(spec, metric)[0][0]
    return min(t[f"nz:{first}"], h[f"nz:{first}"]) >= spec.monitoring.min_events_per_arm


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


def _per_time(exposure: pl.DataFrame) -> pl.DataFrame:
    """Units per channel, arm and assignment time (``len``): one group-by of every unit, lazy
    because polars runs a lazy query on its streaming engine, a third of the CPU time of the
    eager group-by's in-memory engine over millions of rows."""
    return exposure.lazy().group_by("xch", "arm", "assigned_at").len().collect()


def _assigned(exposure: pl.DataFrame, hours: list[dt.datetime]
              ) -> dict[tuple[str, str, dt.datetime], int]:
    """Assignment counts per (channel, arm) at every hour: units assigned by that hour."""
    return _assigned_from(_per_time(exposure), hours)


def _assigned_from(per_time: pl.DataFrame, hours: list[dt.datetime]
                   ) -> dict[tuple[str, str, dt.datetime], int]:
    """``_assigned`` from the units per channel, arm and assignment time (``len``)."""
    if not hours:
        return {}
    grid = np.array([int(h.timestamp() * 1_000_000) for h in hours])
    out: dict[tuple[str, str, dt.datetime], int] = {}
    # Units share few assignment times (a batch): count units per distinct time and add the
    # counts up, instead of sorting every unit's time (tests/test_perf_routes.py compares).
    per = (per_time.sort("assigned_at")
           .group_by("xch", "arm")  # keeps each group's rows in order (sorted by time)
           .agg(pl.col("assigned_at").dt.epoch("us"), pl.col("len")))
    for ch, arm, at, k in per.iter_rows():
        before = np.concatenate([[0], np.cumsum(np.asarray(k, dtype=np.int64))])
        counts = before[np.searchsorted(np.asarray(at), grid, side="right")]
        out.update({(ch, arm, h): int(n) for h, n in zip(hours, counts, strict=True)})
    return out


# -- cache ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cached:
    last: dt.datetime
    cohort: pl.DataFrame
    events: pl.DataFrame
    baseline: dict[str, dict[str, float]]
    looks: dict[tuple[Any, ...], Any]  # the memo's solved looks (``_Memo.saved``)


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
        self._loaded: list[dict[str, Any] | None] = []  # the manifest, once read
        self._kept: list[pl.DataFrame] = []  # the exposures frame read from the cache

    def _manifest(self) -> dict[str, Any] | None:
        """The manifest (None: none, or unreadable), read once."""
        if not self._loaded:
            manifest = None
            if self.dir is not None and (self.dir / MANIFEST).is_file():
                try:
                    manifest = json.loads((self.dir / MANIFEST).read_text())
                except (OSError, ValueError) as exc:
                    log.warning("ignoring the monitor cache %s (%s); recomputing from the data",
                                self.dir, exc)
            self._loaded.append(manifest if isinstance(manifest, dict) else None)
        return self._loaded[0]

    def restore(self, source: HourlySource) -> None:
        """Hand the source what the last save kept (``HourlySource.state``), when this
        liftlab cache format and polars version wrote it; the source takes back only what
        its files would give again."""
        manifest = self._manifest()
        if (manifest is None or manifest.get("version") != CACHE_VERSION
                or manifest.get("polars") != pl.__version__):
            return

        def exposures() -> pl.DataFrame | None:
            try:
                frame = self._verified(manifest["files"]["exposures"])
            except (OSError, ValueError, KeyError, TypeError,
                    pl.exceptions.PolarsError) as exc:
                log.warning("ignoring the exposures of the monitor cache %s (%s)", self.dir,
                            exc)
                return None
            self._kept[:] = [frame]
            return frame

        try:
            source.restore(manifest.get("source") or {}, exposures)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring what the monitor cache %s kept of the data (%s)", self.dir,
                        exc)

    def per_time(self, exposure: pl.DataFrame) -> pl.DataFrame:
        """Units per channel, arm and assignment time of ``exposure``; saved with the
        exposures and read back with them (a group-by of every unit, 0.1 s at 2 M, that an
        update would repeat on the same frame)."""
        saved = (self._manifest() or {}).get("per_time")
        if not (self._kept and exposure is self._kept[0] and isinstance(saved, list)):
            return _per_time(exposure)
        types = exposure.schema
        return pl.DataFrame(
            {"xch": [r[0] for r in saved], "arm": [r[1] for r in saved],
             "assigned_at": [r[2] for r in saved], "len": [r[3] for r in saved]},
            schema={"xch": types["xch"], "arm": types["arm"], "assigned_at": pl.Int64,
                    "len": pl.get_index_type()}).with_columns(
            pl.col("assigned_at").cast(types["assigned_at"]))

    def _fingerprint(self, source: HourlySource, exposure: pl.DataFrame,
                     metrics: list[Metric], until: dt.datetime) -> str:
        """Spec, polars version, and the source's digest of the exposures and of the rows
        before ``until`` of every table a metric reads."""
        parts = [self.spec.model_dump_json(), pl.__version__, str(CACHE_VERSION),
                 *source.fingerprint(exposure, metrics, until)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def read(self, source: HourlySource, exposure: pl.DataFrame,
             metrics: list[Metric]) -> _Cached | None:
        manifest = self._manifest()
        if manifest is None:
            return None
        try:
            frames = {name: self._verified(manifest["files"][name])
                      for name in ("cohort", "events")}
            last = dt.datetime.fromisoformat(manifest["last_hour"])
            baseline = manifest["baseline"]
            looks = _Memo.loaded(manifest.get("looks", {}))
        except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as exc:
            log.warning("ignoring the monitor cache %s (%s); recomputing from the data",
                        self.dir, exc)
            return None
        if manifest.get("fingerprint") != self._fingerprint(source, exposure, metrics, last):
            return None  # the data or the spec changed: a stale cache is recomputed
        return _Cached(last, frames["cohort"], frames["events"], baseline, looks)

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

    def write(self, source: HourlySource, exposure: pl.DataFrame,
              metrics: list[Metric], cohort: pl.DataFrame, events: pl.DataFrame,
              baseline: dict[str, dict[str, float]], last: dt.datetime,
              looks: dict[str, Any], per_time: pl.DataFrame) -> None:
        if self.dir is None or self.root is None:
            return
        claim_cache(self.root)
        refuse_link(self.dir)
        generation = secrets.token_hex(8)
        files = {}
        fingerprint = self._fingerprint(source, exposure, metrics, last)
        state = source.state(exposure, self.window)  # after it: with the digests up to last
        saved = [("cohort", cohort), ("events", events)]
        kept = (self._manifest() or {}).get("files", {}).get("exposures")
        if state.get("exposures") is not None and self._kept and exposure is self._kept[0]:
            files["exposures"] = kept  # read from that file: it stays
        elif state.get("exposures") is not None:
            saved.append(("exposures", exposure))
        counts = None if state.get("exposures") is None else [
            list(r) for r in per_time.with_columns(
                pl.col("assigned_at").dt.epoch("us")).iter_rows()]
        for name, frame in saved:
            buf = io.BytesIO()
            frame.write_parquet(buf)
            data = buf.getvalue()
            file = f"{name}-{generation}.parquet"
            atomic_write_bytes(self.dir / file, data)
            files[name] = {"name": file, "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_text(self.dir / MANIFEST, json.dumps({
            "fingerprint": fingerprint,
            "last_hour": last.isoformat(), "baseline": baseline, "files": files,
            "looks": looks, "version": CACHE_VERSION, "polars": pl.__version__,
            "source": state, "per_time": counts}))
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




# -- small helpers --------------------------------------------------------------------------
def _iso(ts: dt.datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor_hour(ts: dt.datetime) -> dt.datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _hours(start: dt.datetime, end: dt.datetime) -> int:
    return max(0, int((end - start) / HOUR))


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None
