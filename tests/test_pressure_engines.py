"""The dose-response analysis on every engine: the synthetic email-frequency retailer analysed
on DuckDB and Spark gives polars' results.json ``pressure`` object (the readout per arm to
1e-9 relative; the model, fitted on the same sufficient statistics with the same seed, to
the same tolerance). Spark runs with LIFTLAB_SLOW=1 (a JVM start)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from liftlab.analyses.experiment import analyze
from liftlab.app.synth_pressure import generate
from liftlab.engines.open import open_engine
from liftlab.spec.loader import parse_experiment
from metamorphic import close

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "experiments" / "dose-response" / "email-frequency.yaml"
TABLES = ("customers", "orders", "contacts", "events", "assignments")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pressure-engines")
    generate(folder / "data", 6_000, seed=5)
    con = duckdb.connect(str(folder / "data.duckdb"))
    for table in TABLES:
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM "
            f"read_parquet('{folder / 'data' / table}.parquet')"
        )
    con.close()
    return folder


def _pressure(source: str | Path, engine: str | None = None) -> dict[str, Any]:
    spec = parse_experiment(EXAMPLE.read_text() + "analysis: {draws: 100, tune: 100, chains: 2}\n")
    opened = open_engine(source, spec.timezone, **({"engine": engine} if engine else {}))
    out = json.loads(json.dumps(analyze(spec, opened).to_dict(), default=str))["pressure"]
    for key in ("compile_seconds", "sample_seconds"):
        out["diagnostics"].pop(key)
    return out


@pytest.fixture(scope="module")
def polars_pressure(data: Path) -> dict[str, Any]:
    return _pressure(data / "data")


def test_duckdb_gives_the_polars_pressure_object(
    data: Path, polars_pressure: dict[str, Any]
) -> None:
    got = _pressure(f"duckdb:///{data / 'data.duckdb'}")
    close(got, polars_pressure, "pressure on duckdb")
    assert polars_pressure["overall"]["arms"][1]["touches_per_frequency_unit"] > 0


@pytest.mark.slow
def test_spark_gives_the_polars_pressure_object(
    data: Path, polars_pressure: dict[str, Any]
) -> None:
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    pytest.importorskip("pyspark", reason="install the spark extra")
    close(_pressure(data / "data", "spark"), polars_pressure, "pressure on spark")
