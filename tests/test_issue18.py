"""Regression tests of issue 18: data laid out differently, ordinary mistakes, defaults that
match the data. Each test failed before its fix."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from liftlab.cli import app
from liftlab.synth import generate

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
runner = CliRunner()


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "data"
    generate(path, 8000, 7)
    return path


def variant(demo: Path, tmp_path: Path, change: Callable[[Path], None]) -> Path:
    data = Path(shutil.copytree(demo, tmp_path / "data"))
    change(data)
    return data


def rewrite(data: Path, table: str, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    path = data / f"{table}.parquet"
    fn(pl.read_parquet(path)).write_parquet(path)


def effects(out: Path) -> list[tuple[str, str, float]]:
    results = json.loads((out / "results.json").read_text())
    return sorted((e["channel"], e["metric"], e["lift_abs"]) for e in results["effects"]
                  if e["segment"] is None)


def analyze_ok(spec: Path, data: Path, out: Path, *more: object) -> list[tuple[str, str, float]]:
    res = invoke("analyze", spec, "--data", data, "--out", out, *more)
    assert res.exit_code == 0, res.output
    return effects(out)


def same(a: list[tuple[str, str, float]], b: list[tuple[str, str, float]]) -> None:
    assert [x[:2] for x in a] == [x[:2] for x in b]
    assert [x[2] for x in a] == pytest.approx([x[2] for x in b], rel=1e-9, nan_ok=True)


# ------------------------------------------------------------------------------- ids


def test_text_order_ids_with_integer_customers(demo: Path, tmp_path: Path):
    """The sequential section (monitor) and the analysis read text order ids as stored."""
    data = variant(demo, tmp_path, lambda d: rewrite(d, "orders", lambda o: o.with_columns(
        ("o" + pl.col("order_id").cast(pl.String).str.zfill(9)).alias("order_id"))))
    spec = EXPERIMENTS / "spring-factorial.yaml"
    same(analyze_ok(spec, data, tmp_path / "a"), analyze_ok(spec, demo, tmp_path / "b"))
    res = invoke("monitor", EXPERIMENTS / "email-flash.yaml", "--data", data, "--as-of",
                 "2026-02-17T12:00", "--cache", tmp_path / "cache")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("layout", ["text_orders", "float_ids", "categorical"])
def test_customer_ids_of_different_types_across_tables(demo: Path, tmp_path: Path,
                                                       layout: str):
    def change(d: Path) -> None:
        if layout == "text_orders":
            rewrite(d, "orders", lambda o: o.with_columns(pl.col("customer_id").cast(pl.String)))
        elif layout == "float_ids":
            for t in ("customers", "events"):
                rewrite(d, t, lambda f: f.with_columns(pl.col("customer_id").cast(pl.Float64)))
        else:
            rewrite(d, "contacts", lambda f: f.with_columns(
                pl.col("customer_id").cast(pl.String).cast(pl.Categorical)))

    data = variant(demo, tmp_path, change)
    spec = EXPERIMENTS / "spring-factorial.yaml"
    same(analyze_ok(spec, data, tmp_path / "a"), analyze_ok(spec, demo, tmp_path / "b"))


def test_fractional_float_ids_are_a_data_error(demo: Path, tmp_path: Path):
    data = variant(demo, tmp_path, lambda d: rewrite(d, "events", lambda f: f.with_columns(
        (pl.col("customer_id").cast(pl.Float64) + 0.5).alias("customer_id"))))
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", data, "--out",
                 tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "table events, column customer_id" in res.output
    assert "not whole numbers" in res.output and "rows 1, 2" in res.output


def test_null_customer_ids_are_named_as_such(demo: Path, tmp_path: Path):
    data = variant(demo, tmp_path, lambda d: rewrite(d, "customers", lambda c: c.with_columns(
        pl.when(pl.col("customer_id") % 1000 == 0).then(None).otherwise(pl.col("customer_id"))
        .alias("customer_id"))))
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", data, "--out",
                 tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "8 row(s) have no customer_id" in res.output
    assert "repeat" not in res.output


def test_internal_error_message_with_brackets_is_printed(monkeypatch, tmp_path: Path):
    """The internal-error handler itself must not crash on rich markup in the message."""
    import liftlab.run

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot read [/data/x] [bold]")

    monkeypatch.setattr(liftlab.run, "analyze_to_folder", boom)
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", tmp_path)
    assert res.exit_code == 2
    assert "cannot read [/data/x] [bold]" in res.output
