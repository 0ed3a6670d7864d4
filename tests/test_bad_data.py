"""Data nobody cleaned: each problem gets a clear message naming table, column and rows with
exit 1, or a reported data-quality warning when the analysis can still proceed honestly."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from liftlab.app.cli import app

from tinydata import SPEC_YAML

runner = CliRunner()


@pytest.fixture()
def data(tiny_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_data, tmp_path / "data"))


def edit(data: Path, table: str, fn) -> None:
    path = data / f"{table}.parquet"
    fn(pl.read_parquet(path)).write_parquet(path)


def run(spec: Path, data: Path, out: Path):
    result = runner.invoke(app, ["analyze", str(spec), "--data", str(data), "--out", str(out)])
    assert "Traceback" not in result.output
    return result


def row_value(col: str, row: int, value) -> callable:
    def fn(d: pl.DataFrame) -> pl.DataFrame:
        return d.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value))
                              .otherwise(pl.col(col)).alias(col))
    return fn


ERRORS = {
    "nan_revenue": ("orders", row_value("revenue", 6, float("nan")),
                    ["table orders, column revenue", "NaN, infinite or empty", "rows 7"]),
    "inf_revenue": ("orders", row_value("revenue", 2, float("inf")),
                    ["table orders, column revenue", "rows 3"]),
    "huge_revenue": ("orders", row_value("revenue", 4, 1.7e308),  # sums overflowed to inf
                     ["table orders, column revenue", "beyond ±1,000,000,000,000,000",
                      "rows 5"]),
    "duplicate_orders": ("orders", lambda d: pl.concat([d, d.slice(10, 2)]),
                         ["table orders, column order_id", "repeat an order id", "rows 11, 12"]),
    "duplicate_customers": ("customers", lambda d: pl.concat([d, d.head(1)]),
                            ["table customers, column customer_id", "rows 1"]),
    "unknown_group": ("assignments", row_value("group", 0, "control"),
                      ["groups 'control'", "expected one of"]),
    "no_channel_of_the_experiment": (
        "assignments", lambda d: d.with_columns(pl.lit(None, dtype=pl.String).alias("channel")),
        ["table assignments, column channel", "none for its channels", "found: (empty)"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_fatal_problems_exit_1(case, data, tiny_spec_path, tmp_path):
    table, fn, expected = ERRORS[case]
    edit(data, table, fn)
    res = run(tiny_spec_path, data, tmp_path / "out")
    assert res.exit_code == 1, res.output
    for text in expected:
        assert text in res.output, (text, res.output)


def _warnings(out: Path) -> list[str]:
    return [w["message"] for w in json.loads((out / "results.json").read_text())["health"][
        "warnings"]]


WARNINGS = {
    "negative_revenue": ("orders", row_value("revenue", 3, -25.0), "negative revenue"),
    "future_timestamps": ("orders", row_value("ts", 4, dt.datetime(2099, 1, 1, tzinfo=dt.UTC)),
                          "in the future"),
    "ancient_timestamps": ("events", row_value("ts", 0, dt.datetime(1970, 1, 1,
                                                                     tzinfo=dt.UTC)),
                           "before 1990"),
    "unknown_channel": ("assignments", lambda d: pl.concat([d, d.head(2).with_columns(
        pl.Series("channel", ["sms", None]))]), "channels not in the experiment were "
                                                 "ignored: (empty), sms"),
    "unknown_customers": ("assignments", lambda d: pl.concat([d, d.head(2).with_columns(
        (pl.col("customer_id") + 10**9).alias("customer_id"))]), "not in the population"),
}


@pytest.mark.parametrize("case", list(WARNINGS))
def test_recoverable_problems_are_reported(case, data, tiny_spec_path, tmp_path):
    table, fn, expected = WARNINGS[case]
    edit(data, table, fn)
    out = tmp_path / "out"
    res = run(tiny_spec_path, data, out)
    assert res.exit_code == 0, res.output
    assert any(expected in w for w in _warnings(out)), _warnings(out)


def test_mixed_id_types_are_joined(data, tiny_spec_path, tmp_path):
    edit(data, "orders", lambda d: d.with_columns(pl.col("customer_id").cast(pl.String)))
    out = tmp_path / "out"
    assert run(tiny_spec_path, data, out).exit_code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["effects"][0]["n_treatment"] > 0


def test_empty_arm_is_an_error(data, tmp_path):
    """An arm without units has no lift: an error naming the channel and arms (it was an
    SRM flag and NaN lifts with exit 0)."""
    edit(data, "assignments", lambda d: d.with_columns(
        pl.when(pl.col("channel") == "mail").then(pl.lit("big")).otherwise(pl.col("group"))
        .alias("group")))
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC_YAML)
    res = run(spec, data, tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "channel 'mail' has no units in arm(s) 'holdout', 'small'" in res.output


def test_constant_metric_and_tiny_segment(data, tmp_path):
    """Degenerate cells become errors in the results, never a crash."""
    edit(data, "customers", lambda d: d.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("solo")).otherwise(pl.col("segment"))
        .alias("segment")))
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC_YAML.replace(
        "primary_metric: revenue",
        "  - {name: never, kind: binary, table: events, event: nothing}\n"
        "primary_metric: revenue"))
    out = tmp_path / "out"
    res = run(spec, data, out)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    errors = {(e["channel"], e["metric"], json.dumps(e["segment"])): e["error"]
              for e in r["effects"]}
    assert "constant" in errors[("email", "never", "null")]
    assert "too few units" in errors[("email", "revenue", json.dumps({"segment": "solo"}))]


def _damage_parquet(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) // 4, 3 * len(raw) // 4, 97):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def test_a_damaged_parquet_file_is_named(data, tiny_spec_path, tmp_path):
    _damage_parquet(data / "orders.parquet")
    res = run(tiny_spec_path, data, tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "table orders: cannot read" in res.output and "orders.parquet" in res.output
    assert "not valid Parquet" in res.output


@pytest.mark.parametrize("damage", ["extra field", "open quote"])
def test_a_malformed_csv_is_named(damage, data, tiny_spec_path, tmp_path):
    orders = pl.read_parquet(data / "orders.parquet")
    (data / "orders.parquet").unlink()
    lines = orders.write_csv().splitlines()
    lines[40] += ',x,"y' if damage == "extra field" else '"'
    (data / "orders.csv").write_text("\n".join(lines) + "\n")
    res = run(tiny_spec_path, data, tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "table orders: cannot read" in res.output and "orders.csv" in res.output
    assert "not valid CSV" in res.output


def test_a_damaged_file_in_the_daily_run_is_a_data_error(data, tiny_spec_path, tmp_path):
    _damage_parquet(data / "events.parquet")
    res = runner.invoke(app, ["report", "--experiments", str(tiny_spec_path.parent), "--data",
                              str(data), "--date", "2026-02-24", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "internal error" not in res.output, res.output
    assert "cannot read" in res.output and "events.parquet" in res.output


def test_extreme_timestamps_are_warnings_not_crashes(data, tiny_spec_path, tmp_path):
    for row, year in ((0, 9999), (1, 1677), (2, 1)):
        edit(data, "orders", row_value("ts", row, dt.datetime(year, 1, 1, tzinfo=dt.UTC)))
    res = run(tiny_spec_path, data, tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "3 row(s) have ts before 1990 or in the future" in res.output


@pytest.mark.parametrize(("start", "end", "expected"), [
    ("9999-01-01", "9999-02-01", "start must be less than 2100-01-01"),
    ("1677-09-21", "1677-10-01", "start must be at least 1990-01-01"),
    ("2026-03-01", "2026-02-01", "end (2026-02-01) must be after start (2026-03-01)"),
    ("2099-01-04", "2099-02-01", "starts on 2099-01-04: nothing to analyse as of "
                                 "2026-02-23T00:00:00Z (the data ends at 2026-02-22T"),
])
def test_extreme_experiment_dates_exit_1(start, end, expected, data, tmp_path):
    spec = tmp_path / "dates.yaml"
    spec.write_text(SPEC_YAML.replace("start: 2026-02-02", f"start: {start}")
                    .replace("end: 2026-02-23", f"end: {end}")
                    + "monitoring: {sequential: true}\n")
    res = run(spec, data, tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert expected in res.output, res.output
