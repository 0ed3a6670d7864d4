"""The hourly monitor on a batch email built in the test: delayed responses are not counted
as non-conversions, the winner is called early, cached hours are reused, and an A/A send
calls nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from liftlab.data.folder import FolderSource
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.monitor import run_monitor
from liftlab.spec_loader import parse_experiment

SEND = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
SPEC = """\
schema_version: 1
id: batch-email
start: 2026-03-02
end: 2026-03-23
channels:
  email: {holdout: 0.1}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: unsubscribe, kind: binary, table: events, event: unsubscribe, guardrail: true}
primary_metric: revenue
monitoring: {sequential: true, response_window_hours: 24, min_events_per_arm: 100}
"""


def make_send(path: Path, lift: float, n: int = 40_000, seed: int = 0) -> Path:
    """A batch send at 09:00; orders arrive with exponential delays (mean 10 h)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    treated = rng.random(n) >= 0.1
    rate = 0.05 * np.where(treated, 1 + lift, 1.0)
    k = rng.poisson(rate)
    who = np.repeat(ids, k)
    delay_h = rng.exponential(10.0, len(who))
    ts = [SEND + dt.timedelta(hours=float(h)) for h in delay_h]
    path.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"customer_id": ids}).write_parquet(path / "customers.parquet")
    pl.DataFrame({"order_id": np.arange(len(who)), "customer_id": who, "ts": ts,
                  "channel": "web", "revenue": rng.lognormal(3.5, 0.8, len(who))}
                 ).with_columns(pl.col("ts").dt.cast_time_unit("us")
                                ).write_parquet(path / "orders.parquet")
    pl.DataFrame({"experiment_id": "batch-email", "customer_id": ids, "channel": "email",
                  "group": np.where(treated, "treatment", "holdout"),
                  "assigned_at": [SEND] * n}).with_columns(
        pl.col("assigned_at").dt.cast_time_unit("us")).write_parquet(
        path / "assignments.parquet")
    sent = ids[treated]
    pl.DataFrame({"customer_id": sent, "channel": "email", "sent_at": [SEND] * len(sent),
                  "cost": 0.002, "experiment_id": "batch-email"}).with_columns(
        pl.col("sent_at").dt.cast_time_unit("us")).write_parquet(path / "contacts.parquet")
    unsub = ids[rng.random(n) < 0.002]
    pl.DataFrame({"customer_id": unsub, "channel": "email", "event": "unsubscribe",
                  "ts": [SEND + dt.timedelta(hours=2)] * len(unsub)}).with_columns(
        pl.col("ts").dt.cast_time_unit("us")).write_parquet(path / "events.parquet")
    return path


def _monitor(path: Path, hours: float, cache: Path | None = None):
    spec = parse_experiment(SPEC)
    engine = PolarsEngine(FolderSource(path))
    return run_monitor(spec, engine.source, engine.units(spec),
                       SEND + dt.timedelta(hours=hours), cache)


@pytest.fixture(scope="module")
def winner(tmp_path_factory) -> Path:
    return make_send(tmp_path_factory.mktemp("win"), lift=0.6)


def test_no_unit_counts_before_its_window_closes(winner: Path):
    early = _monitor(winner, 20)
    assert all(r["n_treatment"] == 0 and r["n_holdout"] == 0 for r in early.timeline)


def test_matured_cohort_equals_the_window_outcome(winner: Path):
    """After the 24 h window, each unit's revenue within 24 h of the send, from the raw rows."""
    res = _monitor(winner, 40)
    orders = pl.read_parquet(winner / "orders.parquet").filter(
        pl.col("ts") < SEND + dt.timedelta(hours=24))
    arms = pl.read_parquet(winner / "assignments.parquet")
    per = arms.join(orders.group_by("customer_id").agg(pl.col("revenue").sum()),
                    on="customer_id", how="left").fill_null(0.0)
    means = per.group_by("group").agg(pl.col("revenue").mean())
    m = dict(means.iter_rows())
    last = res.timeline[-1]
    assert last["n_treatment"] + last["n_holdout"] == arms.height
    assert last["estimate"] == pytest.approx(m["treatment"] - m["holdout"], rel=1e-9)


def test_winner_called_within_the_first_days(winner: Path):
    res = _monitor(winner, 72)
    assert res.decision == "treatment_wins"
    assert res.decided_at - SEND <= dt.timedelta(hours=48)


def test_cache_reuses_matured_hours(winner: Path, tmp_path: Path):
    first = _monitor(winner, 30, tmp_path)
    again = _monitor(winner, 60, tmp_path)
    assert first.hours_computed >= 1 and first.hours_from_cache == 0
    assert again.hours_computed == 0 and again.hours_from_cache == first.hours_computed
    fresh = _monitor(winner, 60)
    assert [r["decision"] for r in again.timeline] == [r["decision"] for r in fresh.timeline]
    assert [r["n_treatment"] for r in again.timeline] == [r["n_treatment"] for r in fresh.timeline]
    for a, b in zip(again.timeline, fresh.timeline, strict=True):
        assert (a["estimate"] is None) == (b["estimate"] is None)
        if a["estimate"] is not None:
            assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-12)


def test_aa_send_decides_nothing(tmp_path: Path):
    res = _monitor(make_send(tmp_path, lift=0.0, seed=5), 120)
    assert res.decision == "continue"
    assert res.always_valid_p_value > 0.05
