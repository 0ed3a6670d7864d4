"""The experiment's units: segments as Enums of their values, counted among the units.

Stored segments are read as Enums of the values found first among the (filtered) customers;
the limit on their number applies to the values the units have. Checked against DuckDB,
which counts them in SQL over its own unit table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from liftlab.engines.open import open_engine
from liftlab.engines.units import MAX_SEGMENT_VALUES
from liftlab.spec.models import Experiment

from tinydata import SPEC_YAML


@pytest.fixture()
def data(tiny_data: Path, tmp_path: Path) -> Path:
    """The tiny data with a second segment: many values among customers without an
    assignment, two among those with one, and a 'tier' for a population filter."""
    root = Path(shutil.copytree(tiny_data, tmp_path / "data"))
    customers = pl.read_parquet(root / "customers.parquet")
    assigned = set(pl.read_parquet(root / "assignments.parquet")["customer_id"].to_list())
    extra = pl.DataFrame({"customer_id": range(10**6, 10**6 + 200)}).with_columns(
        pl.col("customer_id").cast(customers.schema["customer_id"]))
    customers = pl.concat([customers, extra], how="diagonal").with_columns(
        pl.when(pl.col("customer_id").is_in(list(assigned)))
        .then(pl.when(pl.col("customer_id") % 2 == 0).then(pl.lit("even")).otherwise(None))
        .otherwise(pl.format("v{}", pl.col("customer_id") % 97)).alias("region"),
        pl.when(pl.col("customer_id") % 3 == 0).then(pl.lit("vip")).otherwise(pl.lit("std"))
        .alias("tier"))
    customers.write_parquet(root / "customers.parquet")
    return root


def _spec(**changes: object) -> Experiment:
    raw = yaml.safe_load(SPEC_YAML) | {"segments": ["segment", "region"]} | changes
    return Experiment.model_validate(raw)


@pytest.mark.parametrize("where", [None, "tier == 'vip'"])
def test_segments_are_enums_of_the_units_values(data: Path, where: str | None) -> None:
    spec = _spec(population={"where": where}) if where else _spec()
    units = open_engine(data).units(spec)
    assert units.segments == ("segment", "region")  # 2 values among units, 97+ among customers
    frame = units.frame
    assert isinstance(frame.schema["region"], pl.Enum)
    assert set(frame["region"].cast(pl.String).unique().to_list()) == {"even", "(missing)"}
    # 99 values among the customers: read as text, then an Enum of the units' values only
    assert frame.schema["region"].categories.to_list() == ["(missing)", "even"]
    expected = pl.read_parquet(data / "customers.parquet").join(
        pl.read_parquet(data / "assignments.parquet").select("customer_id").unique(),
        on="customer_id")
    if where:
        expected = expected.filter(pl.col("tier") == "vip")
    expected = expected.select("customer_id", pl.col("region").fill_null("(missing)")).sort(
        "customer_id")
    got = frame.select("customer_id", pl.col("region").cast(pl.String)).sort("customer_id")
    assert got.equals(expected)


def test_a_segment_with_too_many_values_among_the_units_is_dropped(data: Path) -> None:
    path = data / "customers.parquet"
    customers = pl.read_parquet(path)
    customers.with_columns(pl.format("r{}", pl.col("customer_id") % (MAX_SEGMENT_VALUES + 5))
                           .alias("region")).write_parquet(path)
    units = open_engine(data).units(_spec())
    assert units.segments == ("segment",) and "region" not in units.frame.columns
    assert any(f"segment 'region' has {MAX_SEGMENT_VALUES + 5} values" in w
               for w in units.warnings)


def test_duckdb_counts_the_same_segments(data: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "tiny.duckdb"))
    for table in ("customers", "orders", "events", "assignments"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet("
                    f"'{data / (table + '.parquet')}')")
    con.close()
    spec = _spec()
    polars_units = open_engine(data).units(spec)
    sql_units = open_engine(f"duckdb:///{tmp_path / 'tiny.duckdb'}").units(spec)
    assert sql_units.segments == polars_units.segments
    assert sql_units.warnings == polars_units.warnings
    assert sql_units.n == polars_units.n


def test_customers_from_csv_give_the_same_units(data: Path) -> None:
    spec = _spec(segments=["segment", "region", "tier"])
    from_parquet = open_engine(data).units(spec)
    pl.read_parquet(data / "customers.parquet").write_csv(data / "customers.csv")
    (data / "customers.parquet").unlink()
    from_csv = open_engine(data).units(spec)
    assert from_csv.segments == from_parquet.segments == ("segment", "region", "tier")

    def text(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col(pl.Enum).cast(pl.String)).sort("customer_id")

    assert text(from_csv.frame).equals(text(from_parquet.frame))
