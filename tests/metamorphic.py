"""Run every command of the real CLI on a data folder and collect what it produced, in a form
that two layouts of the same data can be compared on (numbers to 1e-9 relative, names as the
canonical layout spells them, paths left out)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from typer.testing import CliRunner

from layouts import CUSTOMERS, Layout, customer_id_map
from liftlab.app.cli import app

runner = CliRunner()
MONITOR_AS_OF = "2026-02-18T00:00"
REPORT_DATE = "2026-02-24"


@dataclass(frozen=True)
class Outcome:
    """What one command did: its exit code, and its output (JSON-ready) or its error."""

    exit_code: int
    payload: Any


@dataclass(frozen=True)
class Ctx:
    data: Path
    experiments: Path
    out: Path
    layout: Layout


def cli(*args: object) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one in-process run of the command line."""
    result = runner.invoke(app, [str(a) for a in args])
    stderr = result.stderr if result.stderr_bytes is not None else ""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # the error handler itself crashed: an internal error all the same
        return 2, result.stdout, f"{stderr}{type(result.exception).__name__}: {result.exception}"
    return result.exit_code, result.stdout, stderr


def _validate(c: Ctx) -> Outcome:
    code, stdout, stderr = cli("validate", c.experiments, "--data", c.data)
    return _outcome(code, stdout.splitlines(), stderr, c)


def _analyze(c: Ctx) -> Outcome:
    out = c.out / "analyze"
    code, _, stderr = cli("analyze", c.experiments / "spring-factorial.yaml", "--data", c.data,
                          "--out", out)
    payload = None
    if code == 0:
        payload = {**json.loads((out / "results.json").read_text()),
                   "calibration": _calibration(out)}
    return _outcome(code, payload, stderr, c)


def _calibration(analysis: Path) -> dict[str, Any]:
    """The analysis in each export-calibration format (rows, or the refusal)."""
    tables: dict[str, Any] = {}
    for fmt in ("pymc-marketing", "robyn", "meridian"):
        target = analysis.parent / f"{fmt}.csv"
        code, _, stderr = cli("export-calibration", analysis, "--format", fmt, "--out", target)
        tables[fmt] = pl.read_csv(target).to_dicts() if code == 0 else stderr.strip()
    return tables


def _monitor(c: Ctx) -> Outcome:
    code, stdout, stderr = cli("monitor", c.experiments / "email-flash.yaml", "--data", c.data,
                               "--as-of", MONITOR_AS_OF, "--json", "--cache", c.out / "cache")
    return _outcome(code, json.loads(stdout) if code == 0 else None, stderr, c)


def _multichannel(c: Ctx) -> Outcome:
    code, stdout, stderr = cli("multichannel", "--data", c.data, "--json")
    return _outcome(code, json.loads(stdout) if code == 0 else None, stderr, c)


def _multichannel_iv(c: Ctx) -> Outcome:
    code, stdout, stderr = cli("multichannel", "--data", c.data, "--json", "--experiment",
                               c.experiments / "web-onboarding.yaml")
    return _outcome(code, json.loads(stdout) if code == 0 else None, stderr, c)


def _plan(c: Ctx) -> Outcome:
    payload, codes, errors = {}, [], []
    for name in ("spring-factorial", "email-flash"):
        code, stdout, stderr = cli("plan", c.experiments / f"{name}.yaml", "--data", c.data,
                                   "--json")
        codes.append(code)
        errors.append(stderr)
        payload[name] = json.loads(stdout) if code == 0 else None
    return _outcome(max(codes), payload, "".join(errors), c)


def _report(c: Ctx) -> Outcome:
    out = c.out / "report"
    code, _, stderr = cli("report", "--experiments", c.experiments, "--data", c.data,
                          "--date", REPORT_DATE, "--out", out)
    folder = out / REPORT_DATE
    payload = None
    if code == 0:
        payload = {p.relative_to(folder).as_posix(): json.loads(p.read_text())
                   for p in sorted(folder.glob("**/*.json"))}
    return _outcome(code, payload, stderr, c)


def _assign(c: Ctx) -> Outcome:
    target = c.out / "assign.parquet"
    code, _, stderr = cli("assign", c.experiments / "spring-factorial.yaml", "--data", c.data,
                          "--out", target)
    return _outcome(code, pl.read_parquet(target) if code == 0 else None, stderr, c)


COMMANDS: dict[str, Callable[[Ctx], Outcome]] = {
    "validate": _validate, "analyze": _analyze, "monitor": _monitor,
    "multichannel": _multichannel, "multichannel_iv": _multichannel_iv, "plan": _plan,
    "report": _report, "assign": _assign}


def run_command(name: str, layout: Layout, data: Path, experiments: Path, out: Path) -> Outcome:
    out.mkdir(parents=True, exist_ok=True)
    return COMMANDS[name](Ctx(data, experiments, out, layout))


def _outcome(code: int, payload: Any, stderr: str, c: Ctx) -> Outcome:
    if code != 0:
        return Outcome(code, _normalise(stderr.strip(), c))
    return Outcome(code, _normalise(payload, c))


def _normalise(value: Any, c: Ctx) -> Any:
    """Names as the canonical layout spells them, this run's folders as placeholders, and the
    assignments table (a frame) keyed by canonical customer ids."""
    if isinstance(value, pl.DataFrame):
        return _canonical_assignments(value, c.layout)
    if isinstance(value, dict):  # the definition echoes the YAML text, spelt per layout
        return {_normalise(k, c): _normalise(v, c) for k, v in value.items()
                if k != "definition"}
    if isinstance(value, list):
        return [_normalise(v, c) for v in value]
    if isinstance(value, str):
        text = value.replace(str(c.data), "<data>").replace(str(c.experiments), "<experiments>")
        return c.layout.display(text.replace(str(c.out), "<out>"))
    return value


def _canonical_assignments(table: pl.DataFrame, layout: Layout) -> list[tuple[Any, ...]]:
    if layout.customer_id != "int":
        mapping = customer_id_map(layout, pl.Series(range(1, CUSTOMERS + 1)))
        table = table.with_columns(pl.col("customer_id").replace_strict(mapping,
                                                                        return_dtype=pl.Int64))
    table = table.with_columns(pl.col("assigned_at").cast(pl.String))
    return sorted(table.rows())


def assert_same(got: Outcome, want: Outcome, where: str = "") -> None:
    assert got.exit_code == want.exit_code, (
        f"{where}: exit {got.exit_code} ({str(got.payload)[:800]}) vs canonical "
        f"{want.exit_code} ({str(want.payload)[:800]})")
    if got.exit_code != 0:
        assert _first_line(got.payload) == _first_line(want.payload), where
        return
    close(got.payload, want.payload, where)


def _first_line(message: Any) -> str:
    return str(message).splitlines()[0] if message else ""


def close(x: Any, y: Any, key: str) -> None:
    """Equal structure, equal text, numbers equal to 1e-9 relative."""
    if isinstance(x, dict):
        assert isinstance(y, dict), key
        assert sorted(x) == sorted(y), f"{key}: keys {sorted(set(x) ^ set(y))} differ"
        for k in x:
            close(x[k], y[k], f"{key}.{k}")
    elif isinstance(x, list | tuple):
        assert isinstance(y, list | tuple) and len(x) == len(y), f"{key}: lengths differ"
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            close(a, b, f"{key}[{i}]")
    elif isinstance(x, float) and isinstance(y, int | float) and not isinstance(y, bool):
        if math.isnan(x) or math.isnan(y):
            assert math.isnan(x) and math.isnan(y), f"{key}: {x} vs {y}"
        else:
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), f"{key}: {x} vs {y}"
    else:
        assert x == y, f"{key}: {x!r} vs {y!r}"
