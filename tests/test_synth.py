"""The synthetic retailer: deterministic, contract-shaped, realistic, and its recorded truth
is recovered by the analysis within its confidence intervals."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from liftlab.analysis import analyze
from liftlab.data.open import open_engine
from liftlab.data.schema import REQUIRED
from liftlab.spec_loader import load_experiment
from liftlab.synth import generate

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("synth")
    generate(path, 60_000, 7)
    return path


def test_deterministic_for_a_seed(world: Path, tmp_path: Path):
    generate(tmp_path, 60_000, 7)
    for table in ("customers", "orders", "assignments"):
        assert pl.read_parquet(world / f"{table}.parquet").equals(
            pl.read_parquet(tmp_path / f"{table}.parquet"))


def test_contract_columns_and_unique_ids(world: Path):
    for table, cols in REQUIRED.items():
        frame = pl.read_parquet(world / f"{table}.parquet")
        assert set(cols) <= set(frame.columns), table
    assert pl.read_parquet(world / "orders.parquet")["order_id"].is_unique().all()
    assert pl.read_parquet(world / "customers.parquet")["customer_id"].is_unique().all()


def test_heavy_tail_and_self_selection(world: Path):
    orders = pl.read_parquet(world / "orders.parquet")
    per = orders.group_by("customer_id").agg(pl.col("revenue").sum()).sort(
        "revenue", descending=True)
    top = per.head(len(per) // 100)["revenue"].sum() / per["revenue"].sum()
    assert top > 0.08
    cust = pl.read_parquet(world / "customers.parquet")
    value = per.join(cust, on="customer_id").group_by(pl.col("profile") == "store").agg(
        pl.col("revenue").mean())
    single, multi = (value.filter(pl.col("profile"))["revenue"][0],
                     value.filter(~pl.col("profile"))["revenue"][0])
    assert multi > 1.3 * single


@pytest.mark.parametrize("experiment,metric", [("spring-factorial", "revenue"),
                                               ("spring-factorial", "conversion"),
                                               ("email-flash", "revenue")])
def test_truth_is_within_the_confidence_intervals(world: Path, experiment: str, metric: str):
    truth = json.loads((world / "truth.json").read_text())["experiments"][experiment]
    spec = load_experiment(EXPERIMENTS / f"{experiment}.yaml")
    spec = spec.model_copy(update={"monitoring": spec.monitoring.model_copy(
        update={"sequential": False})})
    result = analyze(spec, open_engine(world))
    for channel, value in truth[metric].items():
        [e] = [e for e in result.effects if e.channel == channel and e.metric.name == metric
               and e.segment is None]
        lo, hi = e.lift.abs_ci
        # 99.9% interval: 7 checks at once should not fail by chance
        half = (hi - lo) / 2 * 3.29 / 1.96
        assert e.lift.abs - half <= value <= e.lift.abs + half, (channel, e.lift.abs, value)
