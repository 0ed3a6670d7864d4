"""Fast readout of email tests: an always-valid decision at any hour.

Delayed responses are handled with exposure-time cohorts: a unit counts only once its
response window (``monitoring.response_window_hours`` after its send) has closed, with the
outcome it had in that window. So a recipient whose window is still open is never counted
as a non-converter. The heavy work ends in hourly sufficient statistics (per hour of
maturity and arm); hours that have matured never change, so they are cached and a later
call only computes the hours after the last cached one, reading only recent rows.

Decisions per hour, in order of precedence: ``srm`` (sequential sample-ratio test),
``harm`` (a guardrail such as unsubscribes rises, one-sided), ``treatment_wins`` /
``treatment_loses`` (the primary metric's confidence sequence excludes zero), else
``continue``. No decision before the burn-in (``min_events_per_arm`` responding units per
arm). Once reached, a decision and its hour stay.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from liftlab.data.folder import FolderSource
from liftlab.data.quality import TS_COLUMN
from liftlab.fsio import atomic_write_bytes, atomic_write_text
from liftlab.metrics import Measure, arm_col, metric_measure
from liftlab.spec import HOLDOUT, Experiment, Metric
from liftlab.stats import sequential
from liftlab.units import Units

HOUR = dt.timedelta(hours=1)
Decision = str  # continue | treatment_wins | treatment_loses | harm | srm


@dataclass(frozen=True)
class MonitorResult:
    experiment: str
    as_of: dt.datetime
    decision: Decision
    decided_at: dt.datetime | None
    always_valid_p_value: float
    srm_p_value: float
    guardrails: tuple[dict[str, Any], ...]
    timeline: tuple[dict[str, Any], ...]
    hours_computed: int
    hours_from_cache: int

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "as_of": _iso(self.as_of),
                "decision": self.decision, "decided_at": _iso(self.decided_at),
                "always_valid_p_value": self.always_valid_p_value,
                "srm_p_value": self.srm_p_value, "guardrails": list(self.guardrails),
                "timeline": list(self.timeline),
                "cache": {"hours_computed": self.hours_computed,
                          "hours_from_cache": self.hours_from_cache}}

    def sequential_summary(self) -> dict[str, Any]:
        """The results.json ``sequential`` block."""
        return {"always_valid_p_value": self.always_valid_p_value, "decision": self.decision,
                "decided_at": _iso(self.decided_at), "srm_p_value": self.srm_p_value,
                "guardrails": list(self.guardrails), "timeline": list(self.timeline)}


def _iso(ts: dt.datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor_hour(ts: dt.datetime) -> dt.datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def run_monitor(spec: Experiment, source: FolderSource, units: Units, as_of: dt.datetime,
                cache_dir: Path | None = None) -> MonitorResult:
    """The sequential readout of the experiment's first channel at ``as_of``."""
    channel = next(iter(spec.channels))
    metrics = [m for m in spec.metrics if m.kind != "ratio"]
    uid = units.frame.schema[spec.unit]
    exposure = _exposures(spec, source, units, channel, uid)
    window = dt.timedelta(hours=spec.monitoring.response_window_hours)
    first = exposure["exposed_at"].min()
    if first is None or first >= as_of:
        return MonitorResult(spec.id, as_of, "continue", None, 1.0, 1.0, (), (), 0, 0)
    cached, last = _read_cache(cache_dir, spec, source)
    hourly_new = _hourly(spec, source, exposure, metrics, window, uid,
                         after=last, until=_floor_hour(as_of))
    hourly = pl.concat([cached, hourly_new], how="diagonal_relaxed") if cached is not None \
        else hourly_new
    hourly = hourly.filter(pl.col("hour") <= _floor_hour(as_of))
    if cache_dir is not None and hourly.height:
        _write_cache(cache_dir, spec, source, hourly, _floor_hour(as_of))
    n_cached = 0 if cached is None else cached["hour"].n_unique()
    events = _event_counts(spec, source, exposure, window, uid, _floor_hour(as_of))
    return _decide(spec, channel, metrics, hourly, events, first, as_of, exposure,
                   hourly_new["hour"].n_unique(), n_cached)


def _event_counts(spec: Experiment, source: FolderSource, exposure: pl.DataFrame,
                  window: dt.timedelta, uid: pl.DataType, until: dt.datetime) -> pl.DataFrame:
    """Responses of the primary metric (orders or events) per hour of arrival and arm, for
    the event-indexed test: no maturity needed, any arrival counts where it falls."""
    m = metric_measure(spec.metric(spec.primary_metric)) if spec.metric(
        spec.primary_metric).kind != "ratio" else None
    if m is None or exposure.height == 0:
        return pl.DataFrame(schema={"hour": pl.Datetime("us", "UTC"), "arm": pl.String,
                                    "events": pl.UInt32})
    ts = TS_COLUMN[m.table]
    rows = source.scan(m.table, uid).filter(
        (pl.col(ts) >= exposure["exposed_at"].min()) & (pl.col(ts) < until))
    if m.event is not None:
        rows = rows.filter(pl.col("event") == m.event)
    if m.channel is not None:
        rows = rows.filter(pl.col("channel") == m.channel)
    return (rows.join(exposure.lazy(), on=spec.unit, how="inner")
            .filter((pl.col(ts) >= pl.col("exposed_at"))
                    & (pl.col(ts) < pl.col("exposed_at") + window))
            .group_by(pl.col(ts).dt.truncate("1h").dt.offset_by("1h").alias("hour"), "arm")
            .agg(pl.len().alias("events")).collect()
            .with_columns(pl.col("hour").dt.cast_time_unit("us")))


def _exposures(spec: Experiment, source: FolderSource, units: Units, channel: str,
               uid: pl.DataType) -> pl.DataFrame:
    """Each unit's arm and exposure time: its send, or the batch send for the holdout."""
    frame = units.frame.select(spec.unit, pl.col(arm_col(channel)).alias("arm")).filter(
        pl.col("arm").is_not_null())
    sends = None
    if source.has("contacts"):
        contacts = source.scan("contacts", uid).filter(pl.col("channel") == channel)
        if "experiment_id" in source.schema("contacts"):
            contacts = contacts.filter(pl.col("experiment_id") == spec.id)
        sends = contacts.group_by(spec.unit).agg(pl.col("sent_at").min().alias("sent")
                                                 ).collect()
    start = dt.datetime.combine(spec.start, dt.time(), tzinfo=dt.UTC)
    if sends is None or sends.height == 0:
        return frame.with_columns(pl.lit(start).dt.cast_time_unit("us").alias("exposed_at"))
    batch = sends["sent"].min()
    return frame.join(sends, on=spec.unit, how="left").with_columns(
        pl.col("sent").fill_null(batch).alias("exposed_at")).drop("sent")


def _hourly(spec: Experiment, source: FolderSource, exposure: pl.DataFrame,
            metrics: list[Metric], window: dt.timedelta, uid: pl.DataType,
            after: dt.datetime | None, until: dt.datetime) -> pl.DataFrame:
    """Sufficient statistics per (hour of maturity, arm) for cohorts maturing in
    (after, until]; plus the hourly count of primary-metric events per arm."""
    unit = spec.unit
    cohort = exposure.with_columns(
        (pl.col("exposed_at") + window).dt.truncate("1h").alias("hour"))
    cohort = cohort.with_columns(
        pl.when(pl.col("hour") < pl.col("exposed_at") + window)
        .then(pl.col("hour") + pl.duration(hours=1)).otherwise(pl.col("hour")).alias("hour"))
    if after is not None:
        cohort = cohort.filter(pl.col("hour") > after)
    cohort = cohort.filter(pl.col("hour") <= until)
    lo = cohort["exposed_at"].min() if cohort.height else until
    per_unit = cohort.lazy()
    measures = [metric_measure(m) for m in metrics]
    for table in sorted({m.table for m in measures}):
        ts = TS_COLUMN[table]
        rows = (source.scan(table, uid).filter((pl.col(ts) >= lo) & (pl.col(ts) < until))
                .join(cohort.lazy().select(unit, "exposed_at"), on=unit, how="inner")
                .filter(pl.col(ts) < pl.col("exposed_at") + window))
        agg = rows.group_by(unit).agg(_expr(m) for m in measures if m.table == table)
        per_unit = per_unit.join(agg, on=unit, how="left")
    names = [m.name for m in measures]
    per_unit = per_unit.with_columns(pl.col(n).fill_null(0.0) for n in names)
    aggs = [pl.len().alias("n")]
    for n in names:
        aggs += [pl.col(n).sum().alias(f"s:{n}"), (pl.col(n) ** 2).sum().alias(f"q:{n}"),
                 (pl.col(n) != 0).sum().alias(f"nz:{n}")]
    return (per_unit.group_by("hour", "arm").agg(aggs).collect()
            .with_columns(pl.col("hour").dt.cast_time_unit("us")).sort("hour", "arm"))


def _expr(m: Measure) -> pl.Expr:
    cond = pl.lit(True)
    if m.event is not None:
        cond = cond & (pl.col("event") == m.event)
    if m.channel is not None:
        cond = cond & (pl.col("channel") == m.channel)
    if m.agg == "sum":
        e = pl.col(m.value).filter(cond).sum()
    elif m.agg == "count":
        e = cond.sum()
    else:
        e = cond.any()
    return e.cast(pl.Float64).alias(m.name)


def _decide(spec: Experiment, channel: str, metrics: list[Metric], hourly: pl.DataFrame,
            events: pl.DataFrame, first: dt.datetime, as_of: dt.datetime,
            exposure: pl.DataFrame, computed: int, cached: int) -> MonitorResult:
    mon = spec.monitoring
    # Two tests may call the primary metric (matured cohorts, arrival split of responses):
    # each runs at alpha / 2 so that the decision keeps the overall alpha (Bonferroni).
    alpha = spec.monitoring_alpha / 2
    arms = spec.channels[channel].arms
    planned = exposure.group_by("arm").len()
    planned_n = dict(zip(planned["arm"].to_list(), planned["len"].to_list(), strict=True))
    hours = pl.datetime_range(_floor_hour(first) + HOUR, _floor_hour(as_of), "1h",
                              time_unit="us", time_zone="UTC", eager=True)
    grid = pl.DataFrame({"hour": hours}).join(
        pl.DataFrame({"arm": list(arms)}), how="cross")
    cum = (grid.join(hourly, on=["hour", "arm"], how="left")
           .join(events, on=["hour", "arm"], how="left").fill_null(0)
           .sort("arm", "hour").with_columns(
               pl.all().exclude("hour", "arm").cum_sum().over("arm")))
    primary = spec.metric(spec.primary_metric)
    guards = [m for m in metrics if m.guardrail]
    timeline: list[dict[str, Any]] = []
    decision, decided_at, p_min, srm_min = "continue", None, 1.0, 1.0
    guard_state = {m.name: ("continue", 1.0) for m in guards}
    ev_min: dict[str, float] = {}
    by_hour = cum.partition_by("hour", as_dict=True, maintain_order=True)
    for (hour,), rows in by_hour.items():
        stats = {r["arm"]: r for r in rows.iter_rows(named=True)}
        counts = [stats[a]["n"] for a in arms]
        if sum(counts):
            srm_min = min(srm_min, sequential.multinomial_mixture_p(counts, list(arms.values())))
        h = stats[HOLDOUT]
        for arm in spec.channels[channel].treatment_arms:
            t = stats[arm]
            n_star = planned_n.get(arm, 0) + planned_n.get(HOLDOUT, 0)
            look = _look(primary.name, t, h, n_star, alpha)
            burned_in = min(t[f"nz:{primary.name}"], h[f"nz:{primary.name}"]) >= \
                mon.min_events_per_arm
            if look is not None and burned_in:
                p_min = min(p_min, look.p_value)
            now = "continue"
            if srm_min < mon.srm_alpha:
                now = "srm"
            for g in guards:
                gl = _look(g.name, t, h, n_star, 4 * alpha)  # one-sided at the full alpha
                events = t[f"nz:{g.name}"] + h[f"nz:{g.name}"]
                if gl is not None and events >= 10:
                    harmful = gl.lower > 0 if g.desired_direction == "decrease" else gl.upper < 0
                    state = "harm" if harmful or guard_state[g.name][0] == "harm" else "continue"
                    guard_state[g.name] = (state, min(guard_state[g.name][1], gl.p_value))
                    if state == "harm" and now == "continue":
                        now = "harm"
            if now == "continue" and look is not None and burned_in and look.excludes_zero:
                up = look.lower > 0
                good = up == (primary.desired_direction == "increase")
                now = "treatment_wins" if good else "treatment_loses"
            # Event-indexed test: under no effect, responses split like the arms' sizes.
            k_t, k_h = t["events"], h["events"]
            share = planned_n.get(arm, 0) / max(n_star, 1)
            ev_p = sequential.multinomial_mixture_p([k_t, k_h], [share, 1 - share]) \
                if min(k_t, k_h) >= mon.min_events_per_arm and 0 < share < 1 else 1.0
            ev_min[arm] = min(ev_min.get(arm, 1.0), ev_p)
            if now == "continue" and ev_min[arm] < alpha:
                up = k_t / max(k_t + k_h, 1) > share
                good = up == (primary.desired_direction == "increase")
                now = "treatment_wins" if good else "treatment_loses"
            if decision == "continue" and now != "continue":
                decision, decided_at = now, hour
            timeline.append({
                "at": _iso(hour), "metric": primary.name,
                "variant": None if spec.channels[channel].variants is None else arm,
                "n_treatment": int(t["n"]), "n_holdout": int(h["n"]),
                "estimate": None if look is None else look.estimate,
                "ci": [None, None] if look is None else [_finite(look.lower),
                                                         _finite(look.upper)],
                "p_value": p_min, "events_treatment": int(k_t), "events_holdout": int(k_h),
                "event_p_value": ev_min[arm], "decision": decision if decided_at else now})
    guardrails = tuple({"metric": k, "decision": v[0], "p_value": v[1]}
                       for k, v in guard_state.items())
    overall = min(1.0, 2 * min([p_min, *ev_min.values()]))
    return MonitorResult(spec.id, as_of, decision, decided_at, overall, srm_min, guardrails,
                         tuple(timeline), computed, cached)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _look(metric: str, t: dict[str, Any], h: dict[str, Any], n_star: int,
          alpha: float) -> sequential.SequentialLook | None:
    if t["n"] < 2 or h["n"] < 2:
        return None

    def mv(r: dict[str, Any]) -> tuple[float, float]:
        n, s, q = r["n"], r[f"s:{metric}"], r[f"q:{metric}"]
        return s / n, max((q - s * s / n) / (n - 1), 0.0)

    (mt, vt), (mh, vh) = mv(t), mv(h)
    return sequential.look(mt - mh, vt / t["n"] + vh / h["n"], t["n"] + h["n"],
                           max(n_star, 2), alpha)


# -- cache ----------------------------------------------------------------------------------
def _fingerprint(spec: Experiment, source: FolderSource) -> str:
    text = json.dumps([spec.model_dump(mode="json"), str(Path(source.root).resolve())],
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_cache(cache_dir: Path | None, spec: Experiment, source: FolderSource
                ) -> tuple[pl.DataFrame | None, dt.datetime | None]:
    if cache_dir is None:
        return None, None
    meta_path = cache_dir / spec.id / "meta.json"
    data_path = cache_dir / spec.id / "hourly.parquet"
    if not (meta_path.exists() and data_path.exists()):
        return None, None
    meta = json.loads(meta_path.read_text())
    if meta.get("fingerprint") != _fingerprint(spec, source):
        return None, None
    last = dt.datetime.fromisoformat(meta["last_hour"])
    return pl.read_parquet(data_path).filter(pl.col("hour") <= last), last


def _write_cache(cache_dir: Path, spec: Experiment, source: FolderSource,
                 hourly: pl.DataFrame, last: dt.datetime) -> None:
    import io

    buf = io.BytesIO()
    hourly.write_parquet(buf)
    atomic_write_bytes(cache_dir / spec.id / "hourly.parquet", buf.getvalue())
    atomic_write_text(cache_dir / spec.id / "meta.json", json.dumps(
        {"fingerprint": _fingerprint(spec, source), "last_hour": last.isoformat()}))
