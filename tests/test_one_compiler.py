"""One metric compiler (issue 19): the monitor's hourly route and the batch route compile the
same aggregation-plan measures, so at the final hour, with every unit exposed when the
experiment starts and a response window as long as the experiment, both give the same
sufficient statistics: filters (event, purchase channel), winsorising and ids (int or text)
included."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from liftlab.analyses.monitor import horizon_end
from liftlab.data.folder import FolderSource
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.engines.units import window_bounds
from liftlab.spec.aggregation import arm_col, build_aggregation, prod_col, sum_col
from liftlab.spec.loader import parse_experiment

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
SPEC = """\
schema_version: 1
id: one-compiler
start: 2026-03-02
end: 2026-03-04
channels:
  email: {holdout: 0.3}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue, winsorize: 0.9}
  - {name: web_orders, kind: count, table: orders, purchase_channel: web}
  - {name: visited, kind: binary, table: events, event: visit}
primary_metric: revenue
monitoring: {sequential: true, response_window_hours: 48}
"""
METRICS = ("revenue", "web_orders", "visited")
US = pl.Datetime("us", "UTC")


def _write(folder: Path, ids: str, seed: int = 3, n: int = 600) -> None:
    rng = np.random.default_rng(seed)
    raw = np.arange(1, n + 1)
    uid = pl.Series(raw) if ids == "int" else pl.Series([f"c-{i:05d}" for i in raw])
    start_us = int(START.timestamp() * 1e6)
    span = 4 * 86_400_000_000  # rows from a day before the start to a day after the end

    def times(k: int) -> pl.Series:
        return pl.Series(start_us - 86_400_000_000 + rng.integers(0, span, k)).cast(US)

    pl.DataFrame({"customer_id": uid}).write_parquet(folder / "customers.parquet")
    pl.DataFrame({"experiment_id": "one-compiler", "customer_id": uid, "channel": "email",
                  "group": np.where(rng.random(n) < 0.7, "treatment", "holdout"),
                  "assigned_at": pl.Series([START] * n).cast(US)}
                 ).write_parquet(folder / "assignments.parquet")
    k = 1500
    pl.DataFrame({"order_id": np.arange(k), "customer_id": uid.gather(rng.integers(0, n, k)),
                  "ts": times(k), "channel": rng.choice(["web", "store"], k),
                  "revenue": rng.lognormal(3.0, 1.2, k)}).write_parquet(folder / "orders.parquet")
    pl.DataFrame({"customer_id": uid.gather(rng.integers(0, n, k)), "ts": times(k),
                  "channel": "web", "event": rng.choice(["visit", "login"], k)}
                 ).write_parquet(folder / "events.parquet")


def _routes(folder: Path, spec_text: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per arm: the batch route's sums and the hourly route's cohort sums at the last hour."""
    spec = parse_experiment(spec_text)
    engine = PolarsEngine(FolderSource(folder))
    units = engine.units(spec)
    plan = build_aggregation(spec, window_bounds(spec, None), (arm_col("email"),))
    batch = engine.aggregate(plan, units, spec.id).select(
        pl.col(arm_col("email")).alias("arm"), pl.col("n").cast(pl.Int64),
        *[pl.col(sum_col(m)).alias(f"s:{m}") for m in METRICS],
        *[pl.col(prod_col(m, m)).alias(f"q:{m}") for m in METRICS]).sort("arm")
    source = engine.hourly(spec, units)
    window = dt.timedelta(hours=spec.monitoring.response_window_hours)
    exposure = source.exposures(window)
    metrics = [m for m in spec.metrics if m.kind != "ratio"]
    stats = source.hourly(exposure, metrics, [], window, None, horizon_end(spec))
    hourly = stats.cohort.group_by("arm").agg(
        pl.col("n").sum(), *[pl.col(f"{p}:{m}").sum() for p in "sq" for m in METRICS]
    ).select(batch.columns).sort("arm")
    return batch, hourly


@pytest.mark.parametrize("ids", ["int", "text"])
def test_batch_and_hourly_routes_agree_at_the_final_hour(tmp_path: Path, ids: str):
    _write(tmp_path, ids)
    batch, hourly = _routes(tmp_path, SPEC)
    assert batch["arm"].to_list() == hourly["arm"].to_list() == ["holdout", "treatment"]
    assert batch["n"].to_list() == hourly["n"].to_list()
    for col in batch.columns[2:]:
        assert hourly[col].to_numpy() == pytest.approx(batch[col].to_numpy(), rel=1e-9), col
    assert batch["s:web_orders"].sum() > 0 and batch["s:visited"].sum() > 0


def test_the_hourly_route_winsorises_like_the_batch_route(tmp_path: Path):
    _write(tmp_path, "int")
    _, capped = _routes(tmp_path, SPEC)
    _, raw = _routes(tmp_path, SPEC.replace(", winsorize: 0.9", ""))
    assert (capped["s:revenue"] < raw["s:revenue"]).all()
    assert (capped["s:web_orders"] == raw["s:web_orders"]).all()
