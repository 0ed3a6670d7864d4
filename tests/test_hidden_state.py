"""No hidden state (issue 19, item 6): each experiment's SQL units table is its own, the
password comes from the environment only, Spark gets its Python from its config (the process
environment is left alone), the compiled kernels wait for their first use, and the SQL data
checks name offending rows by their keys."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import duckdb
import pytest
import yaml
from polars.testing import assert_frame_equal

from liftlab.engines.open import open_engine
from liftlab.engines.units import window_bounds
from liftlab.spec.aggregation import arm_col, build_aggregation
from liftlab.spec.models import Experiment

from tinydata import SPEC_YAML

TABLES = ["customers", "orders", "events", "assignments"]


def _duckdb(tiny_data: Path, path: Path) -> Path:
    with duckdb.connect(str(path)) as con:
        for t in TABLES:
            con.execute(f"CREATE TABLE {t} AS SELECT * FROM "
                        f"read_parquet('{tiny_data / t}.parquet')")
    return path


def test_a_second_experiment_keeps_the_first_ones_units(tiny_data: Path, tmp_path: Path):
    engine = open_engine(f"duckdb:///{_duckdb(tiny_data, tmp_path / 'crm.duckdb')}")
    first = Experiment.model_validate(yaml.safe_load(SPEC_YAML))
    second = first.model_copy(update={"id": "second-test", "assignment": "hash"})
    plan = build_aggregation(first, window_bounds(first, None),
                             tuple(arm_col(ch) for ch in first.channels))
    units = engine.units(first)
    before = engine.aggregate(plan, units, first.id)
    other = engine.units(second)  # hash arms: a different units table
    assert other.frame != units.frame
    after = engine.aggregate(plan, units, first.id)
    assert_frame_equal(before, after)
    assert engine.query(f"SELECT COUNT(*) FROM {units.frame}")[0][0] == units.n


def test_the_password_comes_from_the_environment_only(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    import psycopg

    from liftlab.engines.sql_engine import connect

    seen: dict[str, Any] = {}

    def fake_connect(**kwargs: Any) -> object:
        seen.update(kwargs)
        raise psycopg.OperationalError("refused")

    monkeypatch.setattr(psycopg, "connect", fake_connect)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("LIFTLAB_DB_PASSWORD", raising=False)
    (tmp_path / ".env").write_text("LIFTLAB_DB_PASSWORD=from-a-file\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match="cannot connect"):
        connect("postgresql://analyst@db.example/crm")
    assert "password" not in seen  # the .env file was not read
    monkeypatch.setenv("LIFTLAB_DB_PASSWORD", "from-the-environment")
    with pytest.raises(Exception, match="cannot connect"):
        connect("postgresql://analyst@db.example/crm")
    assert seen["password"] == "from-the-environment"


def test_spark_gets_its_python_without_touching_the_environment(
        monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    from liftlab.engines.spark_engine import spark_session

    class Builder:
        conf: ClassVar[dict[str, str]] = {}

        def master(self, _: str) -> Builder:
            return self

        def appName(self, _: str) -> Builder:
            return self

        def config(self, key: str, value: str) -> Builder:
            self.conf[key] = value
            return self

        def getOrCreate(self) -> SimpleNamespace:
            return SimpleNamespace(sparkContext=SimpleNamespace(pythonExec="python3"))

    monkeypatch.setattr(SparkSession, "builder", Builder())
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    session = spark_session()
    assert "PYSPARK_PYTHON" not in os.environ
    assert Builder.conf["spark.pyspark.python"] == sys.executable
    assert session.sparkContext.pythonExec == sys.executable


def test_the_compiled_kernels_wait_for_their_first_use():
    code = ("import liftlab.engines.polars_engine\n"
            "from liftlab.engines import dense\n"
            "print(len(dense._count_repeats.signatures))\n"
            "import polars as pl\n"
            "dense.repeated(pl.LazyFrame({'id': [2, 1, 2]}))\n"  # unsorted: the bitmap
            "print(len(dense._count_repeats.signatures))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                         check=True).stdout.split()
    assert out == ["0", "1"]


def test_sql_data_checks_name_the_offending_keys(tiny_data: Path, tmp_path: Path):
    path = _duckdb(tiny_data, tmp_path / "crm.duckdb")
    with duckdb.connect(str(path)) as con:
        first, second = con.execute(
            "SELECT order_id FROM orders ORDER BY order_id LIMIT 2").fetchall()
        con.execute("UPDATE orders SET revenue = 'NaN'::DOUBLE WHERE order_id = ?", second)
        con.execute("INSERT INTO orders SELECT * FROM orders WHERE order_id = ?", first)
    report = open_engine(f"duckdb:///{path}").quality(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    messages = {p.column: p for p in report.errors}
    assert messages["order_id"].keys is not None
    assert messages["order_id"].keys.values == (str(first[0]),)
    assert messages["revenue"].keys.values == (str(second[0]),)
    assert f"(order_id {second[0]})" in str(messages["revenue"])
    assert all(not p.rows for p in report.errors)  # no invented row numbers
