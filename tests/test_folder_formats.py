"""The folder reader on layouts the contract allows: CSV with another separator or a byte-order
mark, categorical text columns, dates stored as text (found by the metamorphic tests)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from layouts import CUSTOMERS, Layout, base_tables, write_layout
from liftlab.data.folder import FolderSource, csv_separator
from liftlab.engines.polars_multichannel import clients


def test_csv_separator_is_sniffed_from_the_header(tmp_path: Path):
    path = tmp_path / "orders.csv"
    path.write_bytes(b'\xef\xbb\xbfcustomer_id;note;revenue\n1;"a,b\nc";2.5\n')
    assert csv_separator(path) == ";"
    frame = FolderSource(tmp_path).raw("orders").collect()
    assert frame.columns == ["customer_id", "note", "revenue"]
    assert frame.row(0) == (1, "a,b\nc", 2.5)
    path.write_text("customer_id,note\n1,x;y\n")
    assert csv_separator(path) == ","


def test_categorical_channels_read_as_text(tmp_path: Path):
    pl.DataFrame({"customer_id": [1, 2], "channel": ["web", "store"]}).with_columns(
        pl.col("channel").cast(pl.Categorical)).write_parquet(tmp_path / "events.parquet")
    scanned = FolderSource(tmp_path).scan("events").collect()
    assert scanned.schema["channel"] == pl.String
    joined = scanned.join(pl.DataFrame({"channel": ["web"]}), on="channel")
    assert joined["customer_id"].to_list() == [1]


def test_multichannel_reads_signup_dates_from_csv(tmp_path: Path):
    base = base_tables(tmp_path / "base")
    import datetime as dt

    lookback = (dt.date(2026, 1, 5), dt.date(2026, 2, 2))
    frames = []
    for layout in (Layout(), Layout(fmt="csv")):  # dates stay dates in any timezone
        source = FolderSource(write_layout(layout, base, tmp_path / layout.id), "Asia/Tokyo")
        frames.append(clients(source, lookback).collect().sort("customer_id"))
    assert frames[0].height > CUSTOMERS // 4
    assert_frame_equal(frames[0], frames[1], check_exact=False, rel_tol=1e-12)


def test_numeric_experiment_ids_are_read_as_text(tmp_path: Path):
    """A float experiment_id column (NaN in a row) made validate exit 2 (exit-code test)."""
    pl.DataFrame({"experiment_id": [float("nan"), 2.0], "customer_id": [1, 2]}).write_parquet(
        tmp_path / "assignments.parquet")
    scanned = FolderSource(tmp_path).scan("assignments")
    found = scanned.filter(pl.col("experiment_id") == "spring-factorial").collect()
    assert found.height == 0


def test_text_column_read_as_true_false_is_a_clear_error(tmp_path: Path):
    """optin_email stored as text made the population filter exit 2 (exit-code test)."""
    from typer.testing import CliRunner

    from liftlab.app.cli import app

    base = base_tables(tmp_path / "base")
    data = write_layout(Layout(), base, tmp_path / "data")
    customers = pl.read_parquet(data / "customers.parquet")
    customers.with_columns(pl.col("optin_email").cast(pl.String)).write_parquet(
        data / "customers.parquet")
    spec = Path(__file__).parent.parent / "experiments" / "email-flash.yaml"
    result = CliRunner().invoke(app, ["validate", str(spec), "--data", str(data)])
    assert result.exit_code == 1, result.output
    assert ("table customers, column optin_email: the population filter reads 'optin_email' "
            "as true/false, but it holds String") in result.stderr


def test_multichannel_checks_the_tables_first(tmp_path: Path):
    """customers without customer_id made multichannel exit 2 (KeyError; exit-code test)."""
    from typer.testing import CliRunner

    from liftlab.app.cli import app

    data = write_layout(Layout(), base_tables(tmp_path / "base"), tmp_path / "data")
    pl.read_parquet(data / "customers.parquet").drop("customer_id").write_parquet(
        data / "customers.parquet")
    result = CliRunner().invoke(app, ["multichannel", "--data", str(data), "--json"])
    assert result.exit_code == 1, result.output
    assert "table customers, column customer_id: required column 'customer_id' is missing" in (
        result.stderr)
