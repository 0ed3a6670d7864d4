"""The hourly monitor on a batch email built in the test: pending responses are not counted
as non-responses, the winner is called early, harm and SRM stop the test, cached hours are
reused (and invalidated when the data change), and an A/A send calls nothing."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from liftlab.monitor import MonitorResult, run_monitor, tables_from_source
from liftlab.spec_loader import parse_experiment

SEND = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
TS = pl.Datetime("us", "UTC")
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
RATE, DELAY_H, LOG_MU, LOG_SD = 0.05, 10.0, 3.5, 0.8


def make_send(lift: float, n: int = 40_000, seed: int = 0, unsub_lift: float = 0.0,
              treated_share: float = 0.9) -> dict[str, pl.DataFrame]:
    """A batch send at 09:00 to 90% of ``n`` customers; orders (Poisson, rate 5% x (1 +
    lift)) arrive after exponential delays (mean 10 h); unsubscribes within hours."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    treated = rng.random(n) < treated_share
    k = rng.poisson(RATE * np.where(treated, 1 + lift, 1.0))
    who = np.repeat(ids, k)
    delay = rng.exponential(DELAY_H * 3600e6, len(who)).astype(np.int64)
    send_us = int(SEND.timestamp() * 1e6)
    orders = pl.DataFrame({"order_id": np.arange(len(who)), "customer_id": who,
                           "ts": send_us + delay, "channel": "web",
                           "revenue": rng.lognormal(LOG_MU, LOG_SD, len(who))}
                          ).with_columns(pl.col("ts").cast(TS))
    assignments = pl.DataFrame({"customer_id": ids, "channel": "email",
                                "group": np.where(treated, "treatment", "holdout"),
                                "assigned_at": send_us - 3_600_000_000}
                               ).with_columns(pl.col("assigned_at").cast(TS))
    contacts = pl.DataFrame({"customer_id": ids[treated], "channel": "email",
                             "sent_at": send_us, "cost": 0.002,
                             "experiment_id": "batch-email"}
                            ).with_columns(pl.col("sent_at").cast(TS))
    p_unsub = 0.003 * np.where(treated, 1 + unsub_lift, 1.0)
    unsub = ids[rng.random(n) < p_unsub]
    events = pl.DataFrame({"customer_id": unsub, "channel": "email", "event": "unsubscribe",
                           "ts": send_us + rng.exponential(3 * 3600e6, len(unsub)).astype(
                               np.int64)}).with_columns(pl.col("ts").cast(TS))
    return {"assignments": assignments, "contacts": contacts, "orders": orders,
            "events": events}


def monitor(data: dict[str, pl.DataFrame], hours: float, cache: Path | None = None,
            spec: str = SPEC) -> MonitorResult:
    tables = {k: v.lazy() for k, v in data.items()}
    return run_monitor(parse_experiment(spec), tables, SEND + dt.timedelta(hours=hours), cache)


def window_means(data: dict[str, pl.DataFrame], hours: float) -> dict[str, tuple[float, float,
                                                                             int]]:
    """Mean, variance and n of each unit's revenue in its first ``hours``, by arm (numpy)."""
    a = data["assignments"]
    o = data["orders"].filter(pl.col("ts") < SEND + dt.timedelta(hours=hours))
    rev = np.zeros(a.height + 1)
    np.add.at(rev, o["customer_id"].to_numpy(), o["revenue"].to_numpy())
    out = {}
    for arm in ("treatment", "holdout"):
        x = rev[a.filter(pl.col("group") == arm)["customer_id"].to_numpy()]
        out[arm] = (float(x.mean()), float(x.var(ddof=1)), len(x))
    return out


def _close(x: object, y: object) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(a, b) for a, b in zip(x, y, strict=True))
    return x == y


def assert_same_timeline(a: MonitorResult, b: MonitorResult) -> None:
    """Equal rows up to float summation order (parallel aggregation)."""
    assert len(a.timeline) == len(b.timeline)
    for x, y in zip(a.timeline, b.timeline, strict=True):
        assert x.keys() == y.keys()
        assert all(_close(x[k], y[k]) for k in x), (x, y)


@pytest.fixture(scope="module")
def winner() -> dict[str, pl.DataFrame]:
    return make_send(lift=0.5)


def test_no_unit_counts_before_its_window_closes(winner):
    early = monitor(winner, 20)
    assert all(r["n_treatment"] == 0 and r["n_holdout"] == 0 for r in early.timeline)
    assert all(r["estimate"] is None for r in early.timeline)
    # ... while the event-indexed test already sees the responses that have arrived
    assert early.timeline[-1]["events_treatment"] > 500


def test_matured_cohort_equals_the_window_outcome(winner):
    """After the 24 h window: each unit's revenue in its window, recomputed with numpy."""
    res = monitor(winner, 40)
    m = window_means(winner, 24)
    last = res.timeline[-1]
    assert (last["n_treatment"], last["n_holdout"]) == (m["treatment"][2], m["holdout"][2])
    assert last["estimate"] == pytest.approx(m["treatment"][0] - m["holdout"][0], rel=1e-9)
    assert last["estimate_rel"] == pytest.approx(m["treatment"][0] / m["holdout"][0] - 1,
                                                 rel=1e-9)
    assert last["ci"][0] < last["estimate"] < last["ci"][1]


def test_winner_called_within_the_first_day(winner):
    res = monitor(winner, 72)
    assert res.decision == "treatment_wins"
    assert res.decided_at - SEND <= dt.timedelta(hours=24)
    assert res.always_valid_p_value < 0.05
    hours = [r["at"] for r in res.timeline]
    assert hours == sorted(hours) and len(hours) == 72
    decided = [r["decision"] for r in res.timeline if r["at"] >= res.to_json()["decided_at"]]
    assert set(decided) == {"treatment_wins"}  # once reached, a decision stays
    # the test that made it is named, and its own p-value crossed alpha at that hour
    (c,) = res.comparisons
    (row,) = [r for r in res.timeline if r["at"] == res.to_json()["decided_at"]]
    assert c["decided_by"] in ("cohort", "event")
    assert (row["event_p_value"] < 0.05) == (c["decided_by"] == "event")
    assert row["p_value"] < 0.05


def test_naive_count_of_pending_units_is_biased_cohorts_are_not():
    """At +12 h, counting every recipient with its revenue so far (pending = zero) shrinks the
    lift by the share of responses still to come (about 23% here); matured cohorts estimate
    the 24 h lift: true value rate x lift x E[revenue] x P(delay < 24 h)."""
    lift = 2.0
    data = make_send(lift=lift, n=80_000, seed=11)
    truth_per_unit = RATE * lift * math.exp(LOG_MU + LOG_SD**2 / 2) * (1 - math.exp(-24 / 10))
    naive = window_means(data, 12)
    naive_est = naive["treatment"][0] - naive["holdout"][0]
    naive_se = math.sqrt(naive["treatment"][1] / naive["treatment"][2]
                         + naive["holdout"][1] / naive["holdout"][2])
    cohort = monitor(data, 30).timeline[-1]
    cohort_se = (cohort["ci"][1] - cohort["ci"][0]) / 2 / 2.5  # CS wider than 2.5 SE
    assert naive_est < truth_per_unit - 3 * naive_se  # biased towards zero
    assert abs(cohort["estimate"] - truth_per_unit) < 3 * cohort_se


def test_cache_reuses_matured_hours(winner, tmp_path: Path):
    first = monitor(winner, 30, tmp_path)
    again = monitor(winner, 60, tmp_path)
    fresh = monitor(winner, 60)
    assert first.hours_from_cache == 0 and first.hours_computed == 30 and first.rows_scanned
    # every window closed at +24 h: the later call reads no order or event rows at all
    assert (again.hours_computed, again.hours_from_cache, again.rows_scanned) == (30, 30, 0)
    assert_same_timeline(again, fresh)
    assert again.decision == fresh.decision and again.decided_at == fresh.decided_at


def test_cache_from_an_open_window_only_rereads_open_units(winner, tmp_path: Path):
    early = monitor(winner, 10, tmp_path)
    later = monitor(winner, 36, tmp_path)
    assert later.hours_from_cache == 10 and later.hours_computed == 26
    assert_same_timeline(later, monitor(winner, 36))
    assert early.rows_scanned < later.rows_scanned  # windows still open at +10 h are re-read


def test_changed_data_invalidates_the_cache(winner, tmp_path: Path):
    monitor(winner, 30, tmp_path)
    changed = {**winner, "orders": winner["orders"].slice(1)}
    res = monitor(changed, 40, tmp_path)
    assert res.hours_from_cache == 0 and res.hours_computed == 40
    assert_same_timeline(res, monitor(changed, 40))


def test_harmful_email_is_stopped_by_its_guardrail():
    res = monitor(make_send(lift=0.0, unsub_lift=2.0, seed=3), 48)
    assert res.decision == "harm"
    assert res.decided_at - SEND <= dt.timedelta(hours=24)
    [g] = res.guardrails
    assert g["metric"] == "unsubscribe" and g["decision"] == "harm" and g["p_value"] < 0.05
    assert [c["decided_by"] for c in res.comparisons] == ["guardrail:unsubscribe"]


def test_sample_ratio_mismatch_is_flagged():
    res = monitor(make_send(lift=0.5, seed=4, treated_share=0.87), 30)
    assert res.decision == "srm" and res.srm_p_value < 0.001
    assert [c["decided_by"] for c in res.comparisons] == ["srm"]


def test_aa_send_decides_nothing():
    res = monitor(make_send(lift=0.0, seed=5), 96)
    assert res.decision == "continue" and res.decided_at is None
    assert res.always_valid_p_value > 0.05
    assert [c["decided_by"] for c in res.comparisons] == [None]
    assert all(g["decision"] == "continue" for g in res.guardrails)


def test_json_has_the_contract_shape(winner):
    doc = monitor(winner, 30).to_json()
    assert {"experiment", "as_of", "decision", "guardrails", "timeline"} <= set(doc)
    assert doc["as_of"] == "2026-03-03T15:00:00Z"
    assert {"metric", "decision"} <= set(doc["guardrails"][0])
    row = doc["timeline"][-1]
    assert {"at", "metric", "variant", "n_treatment", "n_holdout", "estimate", "ci",
            "p_value", "decision"} <= set(row)
    summary = monitor(winner, 30).sequential_summary()
    assert {"always_valid_p_value", "decision", "decided_at"} <= set(summary)


def test_missing_table_is_a_clear_user_error(winner):
    from liftlab.errors import DataError

    with pytest.raises(DataError, match="needs the events table"):
        monitor({k: v for k, v in winner.items() if k != "events"}, 30)


def test_tables_from_a_data_folder(tmp_path: Path, winner):
    """The adapter the CLI uses: a data folder and its units give the same readout."""
    from liftlab.data.folder import FolderSource
    from liftlab.engines.polars_engine import PolarsEngine

    for name, frame in winner.items():
        frame = frame.with_columns(pl.lit("batch-email").alias("experiment_id")) \
            if name == "assignments" else frame
        frame.write_parquet(tmp_path / f"{name}.parquet")
    pl.DataFrame({"customer_id": winner["assignments"]["customer_id"]}).write_parquet(
        tmp_path / "customers.parquet")
    spec = parse_experiment(SPEC)
    engine = PolarsEngine(FolderSource(tmp_path))
    tables = tables_from_source(spec, engine.source, engine.units(spec))
    res = run_monitor(spec, tables, SEND + dt.timedelta(hours=30))
    assert_same_timeline(res, monitor(winner, 30))


def test_a_far_as_of_is_clipped_to_the_end_plus_the_response_window():
    """``--as-of 9999-12-31T23:00`` once built one timeline row per hour up to that date."""
    from liftlab.monitor import horizon_end

    data = make_send(0.3, n=4000)
    spec = parse_experiment(SPEC)
    horizon = horizon_end(spec)
    assert horizon == dt.datetime(2026, 3, 24, tzinfo=dt.UTC)  # end 2026-03-23 + 24 h
    tables = {k: v.lazy() for k, v in data.items()}
    far = run_monitor(spec, tables, dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC))
    at_horizon = run_monitor(spec, tables, horizon)
    assert far.timeline == at_horizon.timeline and far.decision == at_horizon.decision
    assert max(r["at"] for r in far.timeline) == "2026-03-24T00:00:00Z"
    doc = far.to_json()
    assert doc["clipped_to"] == "2026-03-24T00:00:00Z" and "readout stops at" in doc["note"]
    assert at_horizon.to_json()["clipped_to"] is None and at_horizon.note is None


def test_exposures_years_before_the_readout_are_a_data_error():
    """Dates typed for the wrong year once built one row per hour over decades."""
    from liftlab.errors import DataError

    data = make_send(0.3, n=2000)
    spec = SPEC.replace("start: 2026-03-02", "start: 2029-06-01").replace(
        "end: 2026-03-23", "end: 2029-07-01")
    with pytest.raises(DataError, match=r"table contacts, column sent_at: the first exposure "
                                        r"\(2026-03-02 09:00 UTC\) is more than 1098 days"):
        monitor(data, 24 * 365 * 3.5, spec=spec)
