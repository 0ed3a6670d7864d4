"""A randomised two-channel experiment with known individual effects and costs, for the
targeting tests: e-mail pays in the north and east, SMS for customers over 50, both cost."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
VALUE = 0.5  # margin per EUR of revenue
COST = {"email": 0.2, "sms": 1.0}

SPEC_YAML = """\
schema_version: 1
id: target-synth
start: 2026-03-02
end: 2026-03-16
channels:
  email: {holdout: 0.5, cost_per_contact: 0.2}
  sms: {holdout: 0.5, cost_per_contact: 1.0}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
primary_metric: revenue
segments: [region]
targeting: {value_per_unit: 0.5, learner: LEARNER, folds: 3, pre_period_days: 28}
"""


def customers(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "customer_id": np.arange(1, n + 1),
        "age": rng.integers(20, 80, n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "tenure_days": rng.exponential(400, n).round(),
    })


def true_effects(c: pl.DataFrame) -> dict[str, np.ndarray]:
    """Revenue effect of each channel per customer (EUR)."""
    region = c["region"].to_numpy()
    age = c["age"].to_numpy()
    return {"email": np.where(np.isin(region, ["north", "east"]), 4.0, -0.5),
            "sms": np.where(age > 50, 4.0, 0.0)}


def baseline(c: pl.DataFrame) -> np.ndarray:
    return 20 + 0.1 * c["age"].to_numpy() + 0.004 * c["tenure_days"].to_numpy()


def write_period(path: Path, c: pl.DataFrame, received: dict[str, np.ndarray],
                 groups: dict[str, np.ndarray], experiment_id: str, start: dt.datetime,
                 seed: int) -> None:
    """Orders of one window (and of the 28 days before it) given who received what, and the
    assignments table; ``received`` holds 0/1 per channel, ``groups`` the arm labels."""
    rng = np.random.default_rng(seed)
    n = c.height
    effects = true_effects(c)
    base = baseline(c)
    y = base + sum(effects[ch] * received[ch] for ch in received) + rng.normal(0, 1, n)
    pre = base + rng.normal(0, 1, n)
    ids = c["customer_id"].to_numpy()
    orders = pl.DataFrame({
        "order_id": np.arange(1, 2 * n + 1),
        "customer_id": np.concatenate([ids, ids]),
        "ts": [start - dt.timedelta(days=10)] * n + [start + dt.timedelta(days=3)] * n,
        "channel": "web",
        "revenue": np.concatenate([np.maximum(pre, 0.01), np.maximum(y, 0.01)]),
    }).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    path.mkdir(parents=True, exist_ok=True)
    c.write_parquet(path / "customers.parquet")
    orders.write_parquet(path / "orders.parquet")
    pl.concat([pl.DataFrame({"experiment_id": experiment_id, "customer_id": ids,
                             "channel": ch, "group": g, "assigned_at": [start] * n})
               for ch, g in groups.items()]).with_columns(
        pl.col("assigned_at").dt.cast_time_unit("us")).write_parquet(
        path / "assignments.parquet")


def make_experiment(path: Path, n: int = 8000, seed: int = 3, learner: str = "t") -> Path:
    """The learning experiment: e-mail and SMS randomised independently (50/50 each)."""
    c = customers(n, seed)
    rng = np.random.default_rng(seed + 1)
    got = {ch: (rng.random(n) < 0.5).astype(float) for ch in COST}
    groups = {ch: np.where(v == 1, "treatment", "holdout") for ch, v in got.items()}
    write_period(path, c, got, groups, "target-synth", START, seed + 2)
    (path / "target-synth.yaml").write_text(SPEC_YAML.replace("LEARNER", learner))
    return path / "target-synth.yaml"


def net_value(c: pl.DataFrame, options: list[str | None]) -> np.ndarray:
    """True incremental margin minus contact cost per customer for the options received
    (an option names channels joined by ' + ')."""
    effects = true_effects(c)
    out = np.zeros(c.height)
    for i, option in enumerate(options):
        for ch in (option.split(" + ") if option else []):
            out[i] += VALUE * effects[ch][i] - COST[ch]
    return out
