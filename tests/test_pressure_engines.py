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
import polars as pl
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


def _readout(source: str | Path) -> dict[Any, Any]:
    """The readout per arm (no model) as analyze computes it."""
    from liftlab.analyses.cells import CellTable
    from liftlab.analyses.pressure import arm_readout, pressure_plan
    from liftlab.engines.units import window_bounds
    from liftlab.spec.aggregation import arm_col, build_aggregation

    spec = parse_experiment(EXAMPLE.read_text())
    engine = open_engine(source, spec.timezone)
    units = engine.units(spec)
    window = window_bounds(spec, None)
    plan = build_aggregation(
        spec, window, (arm_col("email"), *units.segments), (), contact_channels=("email",)
    )
    frame = engine.aggregate(pressure_plan(spec, plan, engine), units, spec.id)
    return arm_readout(spec, CellTable(frame, ("email",), units.segments), window)[2]


def test_other_channels_count_with_an_experiment_id_column(data: Path, tmp_path: Path) -> None:
    """Contacts tagged by experiment: the e-mails of this experiment, SMS of another (or of
    none) and e-mails of another experiment. The arms' contacts and costs keep this
    experiment's rows; the touches count every row (polars' hash route and DuckDB)."""
    contacts = pl.read_parquet(data / "data" / "contacts.parquet")
    folder = tmp_path / "tagged"
    shutil.copytree(data / "data", folder)
    n = contacts.height
    other = contacts.filter(pl.col("channel") == "email").head(3_000)  # another test's emails
    tagged = pl.concat(
        [
            contacts.with_columns(
                experiment_id=pl.when(pl.col("channel") == "email")
                .then(pl.lit("email-frequency"))
                .when(pl.int_range(n) % 2 == 0)
                .then(pl.lit("sms-weekly"))
                .otherwise(pl.lit(None, pl.String))
            ),
            other.with_columns(experiment_id=pl.lit("email-subject-lines")),
        ]
    )
    tagged.write_parquet(folder / "contacts.parquet")
    extra = other.group_by("customer_id").len()
    for source in (folder, _duckdb(folder, tmp_path / "tagged.duckdb")):
        got, want = _readout(source), _readout(data / "data")
        for group in want:
            for a, b in zip(got[group], want[group], strict=True):
                touches = a.pop("touches_per_frequency_unit") - b.pop("touches_per_frequency_unit")
                close(a, b, f"{source} {group} {a['arm']}")
                if group == "all":  # the other experiment's e-mails are every arm's touches
                    ids = pl.read_parquet(folder / "assignments.parquet").filter(
                        pl.col("group") == a["arm"]
                    )["customer_id"]
                    more = extra.filter(pl.col("customer_id").is_in(ids.implode()))["len"].sum()
                    assert touches == pytest.approx(more / a["n"] / 8, rel=1e-9, abs=1e-12)


def _duckdb(folder: Path, db: Path) -> str:
    con = duckdb.connect(str(db))
    for table in TABLES:
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{folder / table}.parquet')"
        )
    con.close()
    return f"duckdb:///{db}"
