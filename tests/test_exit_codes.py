"""Exit 2 is a bug: good inputs, mutated (tables, columns, types, values, files, YAML), must end
every command in exit 0, or exit 1 with a message naming the file or table, and never with a
traceback. Hypothesis draws the mutations (derandomized in CI, see conftest.py)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layouts import base_tables
from metamorphic import cli

EXPERIMENTS = Path(__file__).parent.parent / "experiments"
TABLES = ("customers", "orders", "contacts", "events", "assignments")
COLUMNS = {"customers": ("customer_id", "segment", "optin_email", "profile", "signup_date"),
           "orders": ("order_id", "customer_id", "ts", "channel", "revenue", "margin"),
           "contacts": ("customer_id", "channel", "sent_at", "cost", "experiment_id"),
           "events": ("customer_id", "channel", "event", "ts"),
           "assignments": ("experiment_id", "customer_id", "channel", "group", "assigned_at")}
VALUES = (None, float("nan"), float("inf"), float("-inf"), -1.0, 1e308, 0, "", "x;y\n\"z",
          "2026-13-45", "ü" * 3)
FILE_DAMAGE = ("empty", "truncated", "garbage", "header_only", "drop")
COLUMN_DAMAGE = ("drop", "rename", "as_text", "as_bool", "as_float", "all_null")
RUNS: Counter[str] = Counter()
# Generated data mutations per run (YAML: three quarters of it); LIFTLAB_MUTATIONS=500 with
# HYPOTHESIS_PROFILE=thorough searches wider.
MUTATIONS = int(os.environ.get("LIFTLAB_MUTATIONS", "40"))


@dataclass(frozen=True)
class Mutation:
    """One change to a good input: ``target`` is a table, or ``yaml``."""

    kind: str                 # file | column | values | yaml
    target: str
    detail: str = ""
    column: str = ""
    value: object = None
    share: float = 0.1


def commands(data: Path, exps: Path, out: Path) -> dict[str, list[object]]:
    return {
        "validate": ["validate", exps / "spring-factorial.yaml", "--data", data],
        "analyze": ["analyze", exps / "spring-factorial.yaml", "--data", data, "--out",
                    out / "analyze"],
        "analyze_iv": ["analyze", exps / "web-onboarding.yaml", "--data", data, "--out",
                       out / "iv"],
        "monitor": ["monitor", exps / "email-flash.yaml", "--data", data, "--as-of",
                    "2026-02-18T00:00", "--json", "--cache", out / "cache"],
        "plan": ["plan", exps / "email-flash.yaml", "--data", data, "--json"],
        "multichannel": ["multichannel", "--data", data, "--json"],
        "assign": ["assign", exps / "spring-factorial.yaml", "--data", data, "--out",
                   out / "assign.parquet"]}


COMMANDS = tuple(commands(Path(), Path(), Path()))

data_mutations = st.one_of(
    st.builds(Mutation, kind=st.just("file"), target=st.sampled_from(TABLES),
              detail=st.sampled_from(FILE_DAMAGE)),
    st.sampled_from(TABLES).flatmap(lambda t: st.builds(
        Mutation, kind=st.just("column"), target=st.just(t),
        detail=st.sampled_from(COLUMN_DAMAGE), column=st.sampled_from(COLUMNS[t]))),
    st.sampled_from(TABLES).flatmap(lambda t: st.builds(
        Mutation, kind=st.just("values"), target=st.just(t),
        column=st.sampled_from(COLUMNS[t]), value=st.sampled_from(VALUES),
        share=st.sampled_from((0.001, 0.1, 1.0)))))

YAML_EDITS = (
    ("holdout: 0.20", "holdout: lots"), ("holdout: 0.20", "holdout: [0.2]"),
    ("holdout: 0.20", "holdout: 1.5"), ("start: 2026-02-02", "start: 12"),
    ("start: 2026-02-02", "start: 2026-02-31"), ("end: 2026-02-23", "end: 2026-01-01"),
    ("id: spring-factorial", "id: Spring Factorial!"), ("id: spring-factorial", "id: [a]"),
    ("channels:", "channels: 3\nchannelz:"), ("design: factorial", "design: fractal"),
    ("value: revenue}", "value: revenu}"), ("table: orders, value", "table: ordrs, value"),
    ("primary_metric: revenue", "primary_metric: profit"),
    ("segments: [segment, region]", "segments: [segment, nowhere]"),
    ("segments: [segment, region]", "segments: {a: {b: {c: {d: [1, [2, [3]]]}}}}"),
    ("pre_period_days: 28", "pre_period_days: -3"), ("pre_period_days: 28", "pre_period_days: 1e9"),
    ('where: "optin_email"', 'where: "optin_email and __import__(\'os\')"'),
    ('where: "optin_email"', 'where: "[/bold] [red"'), ('where: "optin_email"', "where: 5"),
    ("monitoring: {sequential: true, alpha: 0.05}", "monitoring: {sequential: yes, alpha: 2}"),
    ("schema_version: 1", "schema_version: 99"), ("schema_version: 1", "unknown_key: 1"),
    ("name: Spring", "name: " + "x" * 100_000 + " Spring"),
    ("{name: conversion, kind: binary", "{name: conversion, kind: bimodal"),
    ("metrics:", "metrics: []\nmetricz:"), ("\n", "\n\t"), ("sms:", "sms: &a\n  <<: *a\nsmz:"),
)
yaml_mutations = st.one_of(
    st.builds(Mutation, kind=st.just("yaml"), target=st.just("yaml"),
              detail=st.sampled_from([f"{a}=>{b}" for a, b in YAML_EDITS])),
    st.builds(Mutation, kind=st.just("yaml_bytes"), target=st.just("yaml"),
              value=st.sampled_from((b"", b"\xff\xfe\x00garbage", b"- a\n- b\n", b"{{{{",
                                     b"a: " + b"[" * 5000, b"id: x\n" * 3))))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good data (Parquet and CSV copies) and the example experiments."""
    root = tmp_path_factory.mktemp("good")
    base = base_tables(root / "base")
    for fmt in ("parquet", "csv"):
        (root / fmt).mkdir()
        for name, frame in base.items():
            if fmt == "parquet":
                frame.write_parquet(root / fmt / f"{name}.parquet")
            else:
                frame.write_csv(root / fmt / f"{name}.csv")
    return root


def apply(mutation: Mutation, data: Path, exps: Path) -> None:
    """Apply ``mutation`` to a private copy of the data and experiments."""
    if mutation.kind == "yaml":
        old, new = mutation.detail.split("=>")
        path = exps / "spring-factorial.yaml"
        path.write_text(path.read_text().replace(old, new, 1))
        return
    if mutation.kind == "yaml_bytes":
        assert isinstance(mutation.value, bytes)
        (exps / "spring-factorial.yaml").write_bytes(mutation.value)
        return
    path = next(data.glob(f"{mutation.target}.*"))
    if mutation.kind == "file":
        _damage_file(path, mutation.detail)
        return
    frame = _read(path)
    if mutation.column not in frame.columns:
        return
    frame = (_damage_column(frame, mutation) if mutation.kind == "column"
             else _damage_values(frame, mutation))
    path.unlink()
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path) if path.suffix == ".csv" else pl.read_parquet(path)


def _damage_file(path: Path, detail: str) -> None:
    raw = path.read_bytes()
    damaged = {"empty": b"", "truncated": raw[: len(raw) // 2],
               "garbage": bytes(range(256)) * 8,
               "header_only": raw.split(b"\n", 1)[0] + b"\n" if path.suffix == ".csv" else b"",
               "drop": None}[detail]
    if damaged is None:
        path.unlink()
    else:
        path.write_bytes(damaged)


def _damage_column(frame: pl.DataFrame, m: Mutation) -> pl.DataFrame:
    col = pl.col(m.column)
    return {"drop": lambda: frame.drop(m.column),
            "rename": lambda: frame.rename({m.column: m.column.upper() + "_"}),
            "as_text": lambda: frame.with_columns(
                pl.format("#{}", col.cast(pl.String)).alias(m.column)),
            "as_bool": lambda: frame.with_columns((col.cast(pl.String).str.len_chars() > 3)
                                                  .alias(m.column)),
            "as_float": lambda: frame.with_columns(
                col.cast(pl.String).str.len_chars().cast(pl.Float64).alias(m.column)),
            "all_null": lambda: frame.with_columns(
                pl.lit(None, frame.schema[m.column]).alias(m.column)),
            }[m.detail]()


def _damage_values(frame: pl.DataFrame, m: Mutation) -> pl.DataFrame:
    """Every k-th row of the column set to the value (the column becomes text or float when
    the value does not fit its type)."""
    k = max(1, round(1 / m.share))
    hit = pl.int_range(pl.len()) % k == 0
    dtype = frame.schema[m.column]
    value = m.value
    if isinstance(value, str):
        target: pl.DataType = pl.String
    elif isinstance(value, float) and not dtype.is_float():
        target = pl.Float64
    else:
        target = dtype
    col = pl.col(m.column).cast(target, strict=False)
    return frame.with_columns(pl.when(hit).then(pl.lit(value, target)).otherwise(col)
                              .alias(m.column))


def run_mutated(good: Path, tmp: Path, fmt: str, mutation: Mutation, command: str) -> None:
    if tmp.exists():
        shutil.rmtree(tmp)
    data = Path(shutil.copytree(good / fmt, tmp / "data"))
    exps = Path(shutil.copytree(EXPERIMENTS, tmp / "experiments"))
    apply(mutation, data, exps)
    code, stdout, stderr = cli(*commands(data, exps, tmp / "out")[command])
    RUNS[f"{mutation.kind}:{command}"] += 1
    context = f"{command} on {fmt} after {mutation}: exit {code}\n{stderr[-2000:]}"
    assert code in (0, 1), context
    assert "Traceback" not in stdout + stderr, context
    if code == 1:
        named = ("table " in stderr or str(tmp) in stderr or "--" in stderr
                 or mutation.target in stderr)
        assert named, f"the message names no file, table or option: {context}"


@settings(max_examples=MUTATIONS, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(("parquet", "csv")), mutation=data_mutations,
       command=st.sampled_from(COMMANDS))
def test_mutated_data_never_crashes(good: Path, tmp_path: Path, fmt: str, mutation: Mutation,
                                    command: str):
    run_mutated(good, tmp_path / "case", fmt, mutation, command)


@settings(max_examples=MUTATIONS * 3 // 4,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=yaml_mutations, command=st.sampled_from(("validate", "analyze", "plan")))
def test_mutated_yaml_never_crashes(good: Path, tmp_path: Path, mutation: Mutation,
                                    command: str):
    run_mutated(good, tmp_path / "case", "parquet", mutation, command)


@pytest.fixture(scope="module", autouse=True)
def _report_count(request: pytest.FixtureRequest):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and RUNS:
        reporter.write_line(f"exit codes: {sum(RUNS.values())} generated runs "
                            f"({', '.join(f'{k} {v}' for k, v in sorted(RUNS.items()))})")
