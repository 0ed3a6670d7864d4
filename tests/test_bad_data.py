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

from liftlab.cli import app

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
