"""The command line: exit codes 0/1/2, clear messages without tracebacks, atomic outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from liftlab.app.cli import app

from tinydata import SPEC_YAML

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture()
def data(tiny_data: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny data set that a test may break."""
    return Path(shutil.copytree(tiny_data, tmp_path / "data"))


def test_validate_ok_and_bad(tiny_spec_path: Path, tmp_path: Path):
    ok = invoke("validate", tiny_spec_path)
    assert ok.exit_code == 0, ok.output
    assert "tiny-factorial" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC_YAML.replace("holdout: 0.3", "holdot: 0.3"))
    res = invoke("validate", bad)
    assert res.exit_code == 1
    assert "bad.yaml:" in res.output and "holdout" in res.output


def test_analyze_writes_results(tiny_spec_path: Path, data: Path, tmp_path: Path):
    out = tmp_path / "out"
    res = invoke("analyze", tiny_spec_path, "--data", data, "--out", out)
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"] == "tiny-factorial"
    assert results["effects"] and results["health"]["srm_ok"] is True


def _break(data: Path, table: str, fn) -> None:
    path = data / f"{table}.parquet"
    fn(pl.read_parquet(path)).write_parquet(path)


@pytest.mark.parametrize("case,expect", [
    ("missing_table", "table 'orders' not found"),
    ("missing_column", "required column 'revenue' is missing"),
    ("two_arms", "in two arms of channel"),
    ("text_revenue", "expected numbers, found text"),
    ("empty_population", "the population is empty"),
])
def test_bad_data_exits_1_with_a_clear_message(case, expect, tiny_spec_path, data, tmp_path):
    spec = tiny_spec_path
    if case == "missing_table":
        (data / "orders.parquet").unlink()
    elif case == "missing_column":
        _break(data, "orders", lambda d: d.drop("revenue"))
    elif case == "two_arms":
        _break(data, "assignments", lambda d: pl.concat([d, d.head(1).with_columns(
            pl.lit("holdout" if d["group"][0] != "holdout" else "treatment").alias("group"))]))
    elif case == "text_revenue":
        orders = pl.read_parquet(data / "orders.parquet")
        (data / "orders.parquet").unlink()
        orders.with_columns(pl.col("revenue").cast(pl.String)).with_columns(
            pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("12,5 EUR"))
            .otherwise(pl.col("revenue")).alias("revenue")).write_csv(data / "orders.csv")
    elif case == "empty_population":
        spec = tmp_path / "empty.yaml"
        where = "population: {where: \"segment == 'none'\"}"
        spec.write_text(SPEC_YAML.replace("start: 2026-02-02", f"start: 2026-02-02\n{where}"))
    res = invoke("analyze", spec, "--data", data, "--out", tmp_path / "o")
    assert res.exit_code == 1, res.output
    assert expect in res.output
    if case == "text_revenue":
        assert "orders" in res.output and "revenue" in res.output and "rows 5" in res.output


def test_internal_error_exits_2(tiny_spec_path, data, tmp_path, monkeypatch):
    import liftlab.app.run

    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(liftlab.app.run, "analyze", boom)
    res = invoke("analyze", tiny_spec_path, "--data", data, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "internal error" in res.output and "kaboom" in res.output


def test_failed_run_keeps_previous_output(tiny_spec_path, data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke("analyze", tiny_spec_path, "--data", data, "--out", out).exit_code == 0
    before = (out / "results.json").read_bytes()
    (data / "orders.parquet").unlink()
    assert invoke("analyze", tiny_spec_path, "--data", data, "--out", out).exit_code == 1
    assert (out / "results.json").read_bytes() == before


def test_assign_writes_a_stable_table(tmp_path: Path, data: Path):
    spec = tmp_path / "new.yaml"
    spec.write_text(SPEC_YAML.replace("id: tiny-factorial", "id: brand-new"))
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert invoke("assign", spec, "--data", data, "--out", a).exit_code == 0
    assert invoke("assign", spec, "--data", data, "--out", b).exit_code == 0
    ta, tb = pl.read_parquet(a), pl.read_parquet(b)
    assert ta.equals(tb)
    assert set(ta["channel"].unique()) == {"email", "mail"}
