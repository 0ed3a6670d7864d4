"""One metric definition, several engines: polars, DuckDB, PostgreSQL and Spark compute the
same sufficient statistics and therefore the same results.json effects."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from liftlab.analysis import AnalysisResult, analyze
from liftlab.data.open import open_engine
from liftlab.spec import Experiment
from pgserver import find_bin, load_tables, postgres_server

from tinydata import SPEC_YAML

TABLES = ["customers", "orders", "events", "assignments"]


@pytest.fixture(scope="module", params=["table", "hash"])
def spec(request) -> Experiment:
    """With the assignments table (id as in the data), and without (liftlab hashes)."""
    base = Experiment.model_validate(yaml.safe_load(SPEC_YAML))
    if request.param == "hash":
        return base.model_copy(update={"id": "hashed-arms"})
    return base


def _effects(result: AnalysisResult) -> list[dict]:
    return [{k: v for k, v in e.to_dict().items()} for e in result.effects]


def _assert_same(a: AnalysisResult, b: AnalysisResult) -> None:
    assert a.assigned_by == b.assigned_by
    ea, eb = _effects(a), _effects(b)
    assert len(ea) == len(eb)
    for x, y in zip(ea, eb, strict=True):
        assert x.keys() == y.keys()
        for key, v in x.items():
            w = y[key]
            if isinstance(v, float) and not math.isnan(v):
                assert w == pytest.approx(v, rel=1e-9, abs=1e-12), key
            elif isinstance(v, list):
                assert w == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True), key
            elif not (isinstance(v, float) and math.isnan(v)):
                assert w == v, key
    assert a.to_dict()["health"] == {**b.to_dict()["health"]}


def test_duckdb_matches_polars(tiny_data: Path, tmp_path: Path, spec: Experiment):
    db = tmp_path / "tiny.duckdb"
    con = duckdb.connect(str(db))
    for t in TABLES:
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{tiny_data / t}.parquet')")
    con.close()
    _assert_same(analyze(spec, open_engine(tiny_data)),
                 analyze(spec, open_engine(f"duckdb:///{db}")))


@pytest.mark.skipif(find_bin("initdb") is None,
                    reason="PostgreSQL server not installed (scripts/system-deps.sh installs it)")
def test_postgres_matches_polars(tiny_data: Path, spec: Experiment):
    with postgres_server() as url:
        load_tables(url, tiny_data, TABLES)
        _assert_same(analyze(spec, open_engine(tiny_data)), analyze(spec, open_engine(url)))


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")
def test_spark_matches_polars(tiny_data: Path, spec: Experiment):
    pytest.importorskip("pyspark", reason="install the spark extra")
    _assert_same(analyze(spec, open_engine(tiny_data)),
                 analyze(spec, open_engine(tiny_data, engine="spark")))


def test_database_errors_are_clear_and_mask_the_password(monkeypatch):
    from liftlab.errors import UserError

    with pytest.raises(UserError) as err:
        open_engine("postgresql://bob:s3cret@127.0.0.1:1/db")
    text = str(err.value)
    assert "s3cret" not in text and "***" in text and "cannot connect" in text
    with pytest.raises(UserError, match="does not exist"):
        open_engine("duckdb:////nonexistent/file.duckdb")
    with pytest.raises(UserError, match="unsupported"):
        open_engine("mysql://x/y")
