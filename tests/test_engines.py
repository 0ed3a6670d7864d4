"""One metric definition, several engines: polars, DuckDB, PostgreSQL and Spark compute the
same sufficient statistics and therefore the same results.json effects."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from liftlab.analyses.experiment import AnalysisResult, analyze
from liftlab.engines.open import open_engine
from liftlab.spec.models import Experiment
from pgserver import find_bin, load_tables, postgres_server

from tinydata import SPEC_YAML

TABLES = ["customers", "orders", "events", "assignments"]


@pytest.fixture(scope="module", params=["table", "hash"])
def spec(request) -> Experiment:
    """With the assignments table (id as in the data), and by the hash (`assignment: hash`)."""
    base = Experiment.model_validate(yaml.safe_load(SPEC_YAML))
    if request.param == "hash":
        return base.model_copy(update={"id": "hashed-arms", "assignment": "hash"})
    return base


def _close(x: object, y: object, key: str) -> None:
    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), key
        for k in x:
            _close(x[k], y[k], f"{key}.{k}")
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), key
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            _close(a, b, f"{key}[{i}]")
    elif isinstance(x, float) and math.isnan(x):
        assert isinstance(y, float) and math.isnan(y), key
    elif isinstance(x, float):
        assert y == pytest.approx(x, rel=1e-9, abs=1e-12), key
    else:
        assert x == y, key


def _assert_same(a: AnalysisResult, b: AnalysisResult) -> None:
    assert a.assigned_by == b.assigned_by
    da, db = a.to_dict(), b.to_dict()
    for section in ("effects", "health", "contribution", "interactions"):
        _close(da.get(section), db.get(section), section)


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
    from liftlab.core.errors import UserError

    with pytest.raises(UserError) as err:
        open_engine("postgresql://bob:s3cret@127.0.0.1:1/db")
    text = str(err.value)
    assert "s3cret" not in text and "***" in text and "cannot connect" in text
    with pytest.raises(UserError, match="does not exist"):
        open_engine("duckdb:////nonexistent/file.duckdb")
    with pytest.raises(UserError, match="unsupported"):
        open_engine("mysql://x/y")
