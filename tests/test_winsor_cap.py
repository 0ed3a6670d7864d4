"""The winsorising cap (issue 21): every engine returns the value it capped a metric at (its
quantile over the pooled arms), results.json carries it, and the pages and chart CSVs say
"winsorised at € 279.84 (p95)". The cap and the capped sums are checked against numpy on the
raw tables (an independent route), and the engines against each other."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import jsonschema
import numpy as np
import polars as pl
import pytest

from liftlab.analyses.experiment import analyze
from liftlab.core.errors import SpecError
from liftlab.data.folder import FolderSource
from liftlab.engines.open import open_engine
from liftlab.engines.polars_engine import aggregate
from liftlab.engines.units import window_bounds
from liftlab.report.pages import estimate_label, render_experiment
from liftlab.spec.aggregation import arm_col, build_aggregation, cap_col, pre_name, sum_col
from liftlab.spec.loader import parse_experiment
from liftlab.spec.models import Experiment
from pgserver import find_bin, load_tables, postgres_server

from tinydata import SPEC_YAML, START

Q = 0.95
SPEC = SPEC_YAML.replace("value: revenue}", f"value: revenue, winsorize: {Q}}}", 1)
SCHEMA = Path(__file__).parent.parent / "docs" / "results.schema.json"
TABLES = ("customers", "orders", "events", "assignments")


@pytest.fixture(scope="module")
def spec() -> Experiment:
    return parse_experiment(SPEC)


@pytest.fixture(scope="module")
def duckdb_url(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    db = tmp_path_factory.mktemp("duck") / "tiny.duckdb"
    con = duckdb.connect(str(db))
    for t in TABLES:
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{tiny_data / t}.parquet')")
    con.close()
    return f"duckdb:///{db}"


@pytest.fixture(scope="module")
def pg_url(tiny_data: Path) -> Iterator[str]:
    if find_bin("initdb") is None:
        pytest.skip("PostgreSQL server not installed (scripts/system-deps.sh installs it)")
    with postgres_server() as url:
        load_tables(url, tiny_data, list(TABLES))
        yield url


def _truth(tiny_data: Path, spec: Experiment) -> tuple[float, dict[str, float]]:
    """The cap and each email arm's capped revenue sum, by numpy on the raw tables."""
    lo, hi = window_bounds(spec, None)
    orders = pl.read_parquet(tiny_data / "orders.parquet").filter(
        (pl.col("ts") >= lo) & (pl.col("ts") < hi)
    )
    arms = pl.read_parquet(tiny_data / "assignments.parquet").filter(channel="email")
    per_unit = arms.join(
        orders.group_by("customer_id").agg(pl.col("revenue").sum()), on="customer_id", how="left"
    ).with_columns(pl.col("revenue").fill_null(0))
    cap = float(np.quantile(per_unit["revenue"].to_numpy(), Q))  # numpy's default: linear
    sums = {
        arm: float(np.minimum(frame["revenue"].to_numpy(), cap).sum())
        for (arm,), frame in per_unit.group_by("group")
    }
    return cap, sums


def _frame(engine_source: str | Path, spec: Experiment) -> pl.DataFrame:
    engine = open_engine(engine_source, spec.timezone)
    plan = build_aggregation(spec, window_bounds(spec, None), (arm_col("email"),))
    return engine.aggregate(plan, engine.units(spec), spec.id)


def _check_frame(frame: pl.DataFrame, cap: float, sums: dict[str, float]) -> None:
    assert frame[cap_col("revenue")].to_list() == pytest.approx([cap] * frame.height, rel=1e-9)
    got = dict(zip(frame[arm_col("email")], frame[sum_col("revenue")], strict=True))
    assert got == pytest.approx(sums, rel=1e-9)
    assert cap_col("clicks") not in frame.columns  # only winsorised measures have a cap
    assert frame[cap_col(pre_name("revenue"))].n_unique() == 1  # the pre-period's own cap


def test_the_polars_routes_return_the_cap_numpy_computes(tiny_data: Path, spec: Experiment):
    cap, sums = _truth(tiny_data, spec)
    assert 50 < cap < 1000 and sum(sums.values()) > 0
    _check_frame(_frame(tiny_data, spec), cap, sums)
    units = open_engine(tiny_data, "UTC").units(spec)
    plan = build_aggregation(spec, window_bounds(spec, None), (arm_col("email"),))
    source = FolderSource(tiny_data)
    with source.reading():
        hashed = aggregate(
            plan, units.frame, source, units.frame.schema["customer_id"], spec.id, dense=False
        )
    _check_frame(hashed, cap, sums)


def test_duckdb_returns_the_same_cap(tiny_data: Path, spec: Experiment, duckdb_url: str):
    cap, sums = _truth(tiny_data, spec)
    _check_frame(_frame(duckdb_url, spec), cap, sums)


def test_postgresql_returns_the_same_cap(tiny_data: Path, spec: Experiment, pg_url: str):
    cap, sums = _truth(tiny_data, spec)
    _check_frame(_frame(pg_url, spec), cap, sums)


@pytest.mark.slow
def test_spark_returns_the_same_cap(tiny_data: Path, spec: Experiment):
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    pytest.importorskip("pyspark", reason="install the spark extra")
    cap, sums = _truth(tiny_data, spec)
    engine = open_engine(tiny_data, spec.timezone, engine="spark")
    plan = build_aggregation(spec, window_bounds(spec, None), (arm_col("email"),))
    _check_frame(engine.aggregate(plan, engine.units(spec), spec.id), cap, sums)


@pytest.fixture(scope="module")
def result(tiny_data: Path, spec: Experiment) -> dict:
    done = analyze(spec, open_engine(tiny_data, spec.timezone), as_of=START + dt.timedelta(days=21))
    return json.loads(json.dumps(done.to_dict(), default=str))


def test_results_json_carries_the_cap_on_every_revenue_effect(
    tiny_data: Path, spec: Experiment, result: dict
):
    jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    cap, _ = _truth(tiny_data, spec)
    revenue = [e for e in result["effects"] if e["metric"] == "revenue"]
    assert len(revenue) == 3 * 3  # email, mail/big, mail/small x whole population, 2 segments
    assert all(
        e["winsorize"] == Q and e["winsorize_cap"] == pytest.approx(cap, rel=1e-9) for e in revenue
    )
    assert all(e["winsorize_cap"] is None for e in result["effects"] if e["metric"] != "revenue")


def test_the_pages_and_csv_say_where_the_metric_was_capped(
    tiny_data: Path, spec: Experiment, result: dict, tmp_path: Path
):
    cap, _ = _truth(tiny_data, spec)
    label = f"winsorised at € {cap:,.2f} (p95)"
    revenue = next(e for e in result["effects"] if e["metric"] == "revenue")
    assert estimate_label(revenue) == f"CUPED-adjusted, {label}"
    html = render_experiment(result, tmp_path)
    assert html.count(label) >= 3  # the scorecard's three revenue rows and the money table
    forest = pl.read_csv(tmp_path / "tables" / "tiny-factorial" / "tiny-factorial-forest-0.csv")
    assert forest["metric"].unique().to_list() == ["revenue"]
    assert forest["winsorize_cap"].to_list() == pytest.approx([cap] * forest.height, rel=1e-9)
    assert forest["winsorize"].to_list() == [Q] * forest.height


def test_a_results_json_without_the_cap_still_names_the_quantile():
    e = {"metric": "revenue", "cuped": False, "winsorize": 0.995}
    assert estimate_label(e) == "winsorised at the 99.5th percentile"
    assert estimate_label({**e, "metric": "orders", "winsorize_cap": 7.0}) == (
        "winsorised at 7 (p99.5)"
    )


def test_a_ratio_metric_cannot_be_winsorised():
    text = SPEC_YAML.replace("denominator: orders}", "denominator: orders, winsorize: 0.99}")
    with pytest.raises(SpecError, match=r"<yaml>:15:\d+: metrics\[2\]: 'winsorize' caps"):
        parse_experiment(text)
