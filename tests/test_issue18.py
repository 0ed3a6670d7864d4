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

from liftlab.app.cli import app
from liftlab.app.synth import generate

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


def test_float_ids_beyond_exact_integers_are_a_data_error(demo: Path, tmp_path: Path):
    """Found by the wide exit-code search: a customer id of 1e308 (whole, finite) crashed the
    integer cast (exit 2)."""
    data = variant(demo, tmp_path, lambda d: rewrite(d, "customers", lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(1e308)
        .otherwise(pl.col("customer_id").cast(pl.Float64)).alias("customer_id"))))
    res = invoke("validate", EXPERIMENTS / "spring-factorial.yaml", "--data", data)
    assert res.exit_code == 1, res.output
    assert "table customers, column customer_id" in res.output
    assert "not whole numbers within ±2^53" in res.output and "(rows 4)" in res.output


def test_null_customer_ids_are_named_as_such(demo: Path, tmp_path: Path):
    data = variant(demo, tmp_path, lambda d: rewrite(d, "customers", lambda c: c.with_columns(
        pl.when(pl.col("customer_id") % 1000 == 0).then(None).otherwise(pl.col("customer_id"))
        .alias("customer_id"))))
    for command in (["analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", data, "--out",
                     tmp_path / "out"],
                    ["validate", EXPERIMENTS / "spring-factorial.yaml", "--data", data]):
        res = invoke(*command)
        assert res.exit_code == 1, res.output
        assert "table customers, column customer_id: 8 row(s) have no customer_id" in res.output
        assert "repeat" not in res.output


def test_internal_error_message_with_brackets_is_printed(monkeypatch, tmp_path: Path):
    """The internal-error handler itself must not crash on rich markup in the message."""
    import liftlab.app.run

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot read [/data/x] [bold]")

    monkeypatch.setattr(liftlab.app.run, "analyze_to_folder", boom)
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", tmp_path)
    assert res.exit_code == 2
    assert "cannot read [/data/x] [bold]" in res.output


# ----------------------------------------------------------------------- design checks


def yaml_variant(tmp_path: Path, name: str, edit: Callable[[str], str]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(edit((EXPERIMENTS / f"{name}.yaml").read_text()))
    return path


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_assignments_without_the_experiment_id_are_an_error(demo: Path, tmp_path: Path):
    data = variant(demo, tmp_path, lambda d: rewrite(d, "assignments", lambda a: a.with_columns(
        pl.col("experiment_id").str.replace("spring-factorial", "spring-2025"))))
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", data, "--out",
                 tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "no rows for experiment 'spring-factorial'" in res.output
    assert "'spring-2025'" in res.output and "assignment: hash" in res.output
    spec = yaml_variant(tmp_path, "spring-factorial", lambda t: t.replace(
        "design: factorial", "design: factorial\nassignment: hash"))
    res = invoke("analyze", spec, "--data", data, "--out", tmp_path / "hashed")
    assert res.exit_code == 0, res.output
    assert results(tmp_path / "hashed")["assigned_by"] == "hash"


def test_assignment_table_required_by_the_yaml(demo: Path, tmp_path: Path):
    data = variant(demo, tmp_path, lambda d: (d / "assignments.parquet").unlink())
    spec = yaml_variant(tmp_path, "spring-factorial", lambda t: t.replace(
        "design: factorial", "design: factorial\nassignment: table"))
    res = invoke("analyze", spec, "--data", data, "--out", tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "no assignments table" in res.output


def test_channel_without_units_is_an_error(demo: Path, tmp_path: Path):
    spec = yaml_variant(tmp_path, "spring-factorial", lambda t: t.replace(
        "  mail:", "  push:  {holdout: 0.20, cost_per_contact: 0.01}\n  mail:"))
    res = invoke("analyze", spec, "--data", demo, "--out", tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "channel 'push' has no units in arm(s) 'holdout', 'treatment'" in res.output


def test_channel_absent_from_contacts_has_no_roi(demo: Path, tmp_path: Path):
    """A channel nobody was contacted on: a warning, and no ROI (it used to be priced as
    assigned units x cost_per_contact)."""
    spec = yaml_variant(tmp_path, "spring-factorial", lambda t: t.replace(
        "  mail:", "  push:  {holdout: 0.20, cost_per_contact: 0.01}\n  mail:").replace(
        "design: factorial", "design: factorial\nassignment: hash"))
    res = invoke("analyze", spec, "--data", demo, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    r = results(tmp_path / "out")
    push = next(e for e in r["effects"] if e["channel"] == "push" and e["segment"] is None
                and e["metric"] == "revenue")
    assert push["roi"] is None and push["roas"] is None and push["cost"] == 0
    assert "no contacts" in push["roi_note"]
    checks = [c for c in r["health"]["design_checks"] if c["channel"] == "push"]
    assert [c["check"] for c in checks] == ["contacts"] and checks[0]["status"] == "warning"
    assert any(w["code"] == "contacts" for w in r["health"]["warnings"])


def _contaminate(d: Path, share: float) -> None:
    """Contact ``share`` of the email holdout on email, and drop 40% of the treated ones'
    email contacts."""
    a = pl.read_parquet(d / "assignments.parquet").filter(
        (pl.col("experiment_id") == "spring-factorial") & (pl.col("channel") == "email"))
    held = a.filter(pl.col("group") == "holdout")["customer_id"]
    held = held.head(round(share * held.len()))
    treated = a.filter(pl.col("group") == "treatment")["customer_id"]
    dropped = treated.head(round(0.4 * treated.len()))

    def change(c: pl.DataFrame) -> pl.DataFrame:
        c = c.filter(~((pl.col("channel") == "email")
                       & pl.col("customer_id").is_in(dropped.implode())
                       & (pl.col("experiment_id") == "spring-factorial")))
        extra = c.filter(pl.col("channel") == "email").head(1).select(pl.exclude("customer_id"))
        added = pl.DataFrame({"customer_id": held}).join(extra, how="cross").select(c.columns)
        return pl.concat([c, added])

    rewrite(d, "contacts", change)


def test_contamination_and_exposure_are_health_items(demo: Path, tmp_path: Path):
    data = variant(demo, tmp_path, lambda d: _contaminate(d, 0.10))
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", data, "--out",
                 tmp_path / "out")
    assert res.exit_code == 0, res.output
    r = results(tmp_path / "out")
    email = {c["check"]: c for c in r["health"]["design_checks"] if c["channel"] == "email"}
    n_hold = next(e for e in r["effects"] if e["channel"] == "email")["n_holdout"]
    assert email["contamination"]["status"] == "error"
    assert email["contamination"]["units"] == n_hold
    assert email["contamination"]["share"] == pytest.approx(0.10, abs=0.01)
    assert email["exposure"]["status"] == "warning"
    assert email["exposure"]["share"] == pytest.approx(0.60, abs=0.01)
    sms = {c["check"]: c["status"] for c in r["health"]["design_checks"]
           if c["channel"] == "sms"}
    assert sms == {"contamination": "ok", "exposure": "ok"}
    page = (tmp_path / "out" / "dashboard.html").read_text()
    assert "Design checks" in page and "contamination of email" in page
    folder = tmp_path / "exps"
    folder.mkdir()
    shutil.copy(EXPERIMENTS / "spring-factorial.yaml", folder)
    res = invoke("report", "--experiments", folder, "--data", data, "--date", "2026-02-24",
                 "--out", tmp_path / "reports")
    assert res.exit_code == 0, res.output
    index = (tmp_path / "reports" / "2026-02-24" / "index.html").read_text()
    assert "✖ contamination" in index and "! exposure" in index
    # thresholds from the YAML
    spec = yaml_variant(tmp_path, "spring-factorial", lambda t: t + (
        "checks: {contamination: {warn: 0.2, error: 0.3}, exposure: {warn: 0.5, error: 0.4}}\n"))
    res = invoke("analyze", spec, "--data", data, "--out", tmp_path / "lenient")
    assert res.exit_code == 0, res.output
    statuses = {c["check"]: c["status"] for c in results(tmp_path / "lenient")["health"][
        "design_checks"] if c["channel"] == "email"}
    assert statuses == {"contamination": "ok", "exposure": "ok"}


def test_check_thresholds_are_validated(tmp_path: Path):
    spec = yaml_variant(tmp_path, "spring-factorial", lambda t: t + (
        "checks: {contamination: {warn: 0.2, error: 0.1}}\n"))
    res = invoke("validate", spec)
    assert res.exit_code == 1 and "warn must not exceed error" in res.output


# ------------------------------------------------------------------ columns the YAML names


@pytest.mark.parametrize("edit,where,column", [
    (lambda t: t.replace("value: revenue}", "value: revenu}", 1), ":32:55:", "'revenu'"),
    (lambda t: t.replace("segments: [segment, region]", "segments: [segment, regoin]"),
     ":38:21:", "'regoin'"),
    (lambda t: t.replace('where: "optin_email"', 'where: "optin_emial"'), ":25:", "'optin_emial'"),
    (lambda t: t.replace("numerator: revenue, denominator: orders",
                         "numerator: margin, denominator: orders"), None, None),
])
def test_columns_named_by_the_yaml_are_checked(demo: Path, tmp_path: Path, edit, where,
                                                column):
    spec = yaml_variant(tmp_path, "spring-factorial", edit)
    data = variant(demo, tmp_path, lambda d: rewrite(d, "orders", lambda o: o.drop("margin")))
    if where is None:  # margin is a built-in quantity read from orders.margin
        where, column = ":34:", "'margin'"
    for command in (["validate", spec, "--data", data],
                    ["analyze", spec, "--data", data, "--out", tmp_path / "out"],
                    ["plan", spec, "--data", data]):
        res = invoke(*command)
        assert res.exit_code == 1, (command, res.output)
        assert f"spring-factorial.yaml{where}" in res.output, res.output
        assert column in res.output
    folder = tmp_path / "exps"
    folder.mkdir()
    shutil.copy(spec, folder / "spring-factorial.yaml")
    res = invoke("report", "--experiments", folder, "--data", data, "--date", "2026-02-24",
                 "--out", tmp_path / "reports")
    assert res.exit_code == 1, res.output
    index = (tmp_path / "reports" / "2026-02-24" / "index.html").read_text()
    assert column.replace("'", "&#39;") in index and "SELECT" not in index


def test_group_sequential_keys_are_refused_under_the_mixture(tmp_path: Path):
    spec = yaml_variant(tmp_path, "email-flash", lambda t: t.replace(
        "  sequential: true", "  horizon_hours: 72\n  sequential: true"))
    res = invoke("validate", spec)
    assert res.exit_code == 1, res.output
    assert "horizon_hours: only for method: group_sequential" in res.output


def test_ratio_primary_metric_is_monitored_sequentially(demo: Path, tmp_path: Path):
    """A ratio primary under sequential: true runs the always-valid test on its
    delta-method estimate (as at the fixed horizon: CUPED leaves a ratio unadjusted), not a
    refusal."""
    spec = yaml_variant(tmp_path, "spring-factorial", lambda t: t.replace(
        "primary_metric: revenue", "primary_metric: aov"))
    assert invoke("validate", spec).exit_code == 0
    res = invoke("analyze", spec, "--data", demo, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    block = results(tmp_path / "out")["sequential"]
    assert {c["metric"] for c in block["comparisons"]} == {"aov"}
    last = [r for r in block["timeline"] if r["estimate"] is not None][-1]
    assert last["ci"][0] < last["estimate"] < last["ci"][1]
    assert last["rate_ratio"] is None and last["event_p_value"] is None  # no event test


# ------------------------------------------------------------------------ default as-of


def _cut(d: Path, day: int = 9) -> None:
    for table, ts in (("orders", "ts"), ("events", "ts"), ("contacts", "sent_at")):
        rewrite(d, table, lambda f, ts=ts: f.filter(
            pl.col(ts) < pl.datetime(2026, 2, day, 7, 30, time_zone="UTC")))


def test_as_of_defaults_to_the_data_freshness(demo: Path, tmp_path: Path):
    data = variant(demo, tmp_path, _cut)
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", data, "--out",
                 tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "as of 2026-02-09T08:00:00Z (default: data freshness; last order/event " \
           "2026-02-09T07:" in res.output
    r = results(tmp_path / "out")
    assert r["as_of"] == "2026-02-09T08:00:00Z" and r["status"] == "running"
    assert r["as_of_source"] == "data freshness"
    assert r["data_freshness"].startswith("2026-02-09T07:")
    assert any(w["code"] == "data_freshness" for w in r["health"]["warnings"])
    page = (tmp_path / "out" / "dashboard.html").read_text()
    assert "default: data freshness" in page
    # data through the end: the experiment's end, said so
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", demo, "--out",
                 tmp_path / "full")
    assert results(tmp_path / "full")["as_of_source"] == "experiment end"
    assert results(tmp_path / "full")["status"] == "ended"
    # an explicit --as-of is used as given
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", "--data", data, "--out",
                 tmp_path / "given", "--as-of", "2026-02-08")
    assert results(tmp_path / "given")["as_of"] == "2026-02-08T00:00:00Z"
    assert "as_of_source" not in results(tmp_path / "given")


def test_monitor_as_of_defaults_to_the_data_freshness(demo: Path, tmp_path: Path):
    data = variant(demo, tmp_path, lambda d: _cut(d, 17))
    res = invoke("monitor", EXPERIMENTS / "email-flash.yaml", "--data", data, "--cache",
                 tmp_path / "cache", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["as_of"] == "2026-02-17T08:00:00Z"
    assert out["as_of_basis"].startswith("default: data freshness")


# ------------------------------------------------------------------------ multichannel


def test_multichannel_without_experiment_prints_and_exits_0(demo: Path):
    res = invoke("multichannel", "--data", demo)
    assert res.exit_code == 0, res.output
    assert "naive premium" in res.output and "instrumented" not in res.output


def test_multichannel_experiment_reads_the_outcome_in_its_window(demo: Path, tmp_path: Path):
    """Data that ends with the experiment: the outcome is the experiment's window."""
    data = variant(demo, tmp_path, lambda d: _cut(d, 2))
    res = invoke("multichannel", "--data", data, "--experiment",
                 EXPERIMENTS / "web-onboarding.yaml", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["lookback"] == {"start": "2025-12-08", "end": "2026-01-05"}
    assert out["outcome_period"] == {"start": "2026-01-05", "end": "2026-02-02"}
    assert out["iv"]["experiment"] == "web-onboarding"


def test_multichannel_outcome_beyond_the_data_says_so(demo: Path, tmp_path: Path):
    res = invoke("multichannel", "--data", demo, "--lookback-start", "2026-01-20",
                 "--lookback-end", "2026-02-10")
    assert res.exit_code == 1, res.output
    assert "the outcome period 2026-02-10..2026-03-10" in res.output
    assert "its last order is 2026-02-23" in res.output


# ---------------------------------------------------------------------- optional extras


@pytest.mark.parametrize("args,module,extra", [
    (["--data", "postgresql://me@localhost/crm"], "psycopg", "sql"),
    (["--data", "duckdb:///tmp/x.duckdb"], "duckdb", "sql"),
    (["--data", "DATA", "--engine", "spark"], "pyspark", "spark"),
])
def test_missing_extra_says_what_to_install(monkeypatch, tmp_path: Path, args, module, extra):
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))
    for name in [module, *(n for n in sys.modules if n.startswith(module + "."))]:
        monkeypatch.setitem(sys.modules, name, None)  # ``import module`` fails too, even
        # when another test of this process imported it (and its submodules) before
    args = [str(tmp_path) if a == "DATA" else a for a in args]
    res = invoke("analyze", EXPERIMENTS / "spring-factorial.yaml", *args, "--out",
                 tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert f"pip install 'liftlab[{extra}]'" in res.output


# ---------------------------------------------------------------------------- engines


def _effects_of(result) -> list[tuple[str, str, float]]:
    return sorted((e.channel, e.metric.name, e.lift.abs) for e in result.effects
                  if e.segment is None)


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")
@pytest.mark.parametrize("name", ["spring-factorial", "web-onboarding"])
def test_demo_filters_on_spark(demo: Path, name: str):
    """Population filters reach Spark SQL with backticks (a double-quoted name was a string
    literal there: CAST("optin_email" AS BOOLEAN), and web-onboarding's population empty)."""
    pytest.importorskip("pyspark", reason="install the spark extra")
    from liftlab.analyses.experiment import analyze
    from liftlab.engines.open import open_engine
    from liftlab.spec.loader import load_experiment

    spec = load_experiment(EXPERIMENTS / f"{name}.yaml")
    polars = analyze(spec, open_engine(demo))
    spark = analyze(spec, open_engine(demo, engine="spark"))
    assert spark.n_units == polars.n_units
    same(_effects_of(spark), _effects_of(polars))
    assert [c.to_dict() for c in spark.design] == [c.to_dict() for c in polars.design]


def test_demo_experiments_on_duckdb(demo: Path, tmp_path: Path):
    import duckdb

    from liftlab.analyses.experiment import analyze
    from liftlab.engines.open import open_engine
    from liftlab.spec.loader import load_experiment

    db = tmp_path / "demo.duckdb"
    con = duckdb.connect(str(db))
    for t in ("customers", "orders", "contacts", "events", "assignments"):
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{demo / t}.parquet')")
    con.close()
    for name in ("spring-factorial", "web-onboarding", "email-flash"):
        spec = load_experiment(EXPERIMENTS / f"{name}.yaml")
        polars, sql = analyze(spec, open_engine(demo)), analyze(spec, open_engine(f"duckdb:///{db}"))
        same(_effects_of(sql), _effects_of(polars))
        assert [c.to_dict() for c in sql.design] == [c.to_dict() for c in polars.design]
        assert sql.as_of == polars.as_of


@pytest.mark.parametrize("layout", ["text_orders", "float_ids", "fractional", "huge"])
def test_customer_ids_of_different_types_on_duckdb(demo: Path, tmp_path: Path, layout: str):
    import duckdb

    from liftlab.analyses.experiment import analyze
    from liftlab.core.errors import DataError
    from liftlab.engines.open import open_engine
    from liftlab.spec.loader import load_experiment

    db = tmp_path / "ids.duckdb"
    con = duckdb.connect(str(db))
    cast = {"text_orders": {"orders": "CAST(customer_id AS VARCHAR)"},
            "float_ids": {"customers": "CAST(customer_id AS DOUBLE)",
                          "events": "CAST(customer_id AS DOUBLE)"},
            "fractional": {"events": "customer_id + 0.5"},
            "huge": {"events": "CASE WHEN customer_id = 7 THEN 1e300 ELSE customer_id END"}}[layout]
    for t in ("customers", "orders", "contacts", "events", "assignments"):
        expr = cast.get(t)
        select = f"* REPLACE ({expr} AS customer_id)" if expr else "*"
        con.execute(f"CREATE TABLE {t} AS SELECT {select} FROM read_parquet('{demo / t}.parquet')")
    con.close()
    spec = load_experiment(EXPERIMENTS / "spring-factorial.yaml")
    engine = open_engine(f"duckdb:///{db}")
    if layout in ("fractional", "huge"):
        with pytest.raises(DataError, match=r"table events, column customer_id: .* not whole"):
            analyze(spec, engine)
        return
    same(_effects_of(analyze(spec, engine)), _effects_of(analyze(spec, open_engine(demo))))


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")
def test_customer_ids_of_different_types_on_spark(demo: Path, tmp_path: Path):
    pytest.importorskip("pyspark", reason="install the spark extra")
    from liftlab.analyses.experiment import analyze
    from liftlab.core.errors import DataError
    from liftlab.engines.open import open_engine
    from liftlab.spec.loader import load_experiment

    def change(d: Path) -> None:
        rewrite(d, "orders", lambda o: o.with_columns(pl.col("customer_id").cast(pl.String)))
        rewrite(d, "events", lambda f: f.with_columns(pl.col("customer_id").cast(pl.Float64)))

    data = variant(demo, tmp_path, change)
    spec = load_experiment(EXPERIMENTS / "web-onboarding.yaml")
    same(_effects_of(analyze(spec, open_engine(data, engine="spark"))),
         _effects_of(analyze(spec, open_engine(demo))))
    rewrite(data, "events", lambda f: f.with_columns(pl.col("customer_id") + 0.5))
    with pytest.raises(DataError, match=r"table events, column customer_id: .* not whole"):
        open_engine(data, engine="spark").scan("events")


def test_assign_on_a_database_is_refused_clearly(demo: Path, tmp_path: Path):
    import duckdb

    db = tmp_path / "demo.duckdb"
    con = duckdb.connect(str(db))
    for t in ("customers", "orders"):
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{demo / t}.parquet')")
    con.close()
    res = invoke("assign", EXPERIMENTS / "spring-factorial.yaml", "--data", f"duckdb:///{db}",
                 "--out", tmp_path / "a.parquet")
    assert res.exit_code == 1, res.output
    assert "assign writes the assignments of a data folder" in res.output
