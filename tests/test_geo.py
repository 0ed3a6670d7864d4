"""Geo experiments end to end: the YAML (errors at their line), the geo_metrics table in
several layouts, bad data, the analysis on the demo regions with known truth, the daily
report's ledger and the calibration row."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from layouts import Layout, write_layout
from liftlab.analyses.geo import calibration_row
from liftlab.app.cli import app
from liftlab.app.geo_synth import CITIES, write_geo_metrics
from liftlab.spec.geo import GeoExperiment
from liftlab.spec.loader import parse_experiment

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "tv-winter.yaml"
ISSUE_YAML = """\
schema_version: 1
id: tv-spring
design: geo
channel: tv
method: tbr
kpi: sales                 # a column of geo_metrics
spend: tv_spend            # optional: a spend column, for iROAS
geos: {treatment: [lyon, lille, nantes], exclude: [paris]}   # control: all the others
pre_period: {start: 2026-01-05, end: 2026-02-16}
test_period: {start: 2026-02-16, end: 2026-03-16}
alpha: 0.10
"""
runner = CliRunner()


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("regions")
    truth = write_geo_metrics(folder)
    return folder, truth.__dict__


@pytest.fixture(scope="module")
def analysed(regions, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("out") / "tv"
    result = invoke("analyze", EXAMPLE, "--data", regions[0], "--out", out)
    assert result.exit_code == 0, result.output
    assert "incremental sales" in result.output and "iROAS" in result.output
    assert (out / "dashboard.html").exists()
    return json.loads((out / "results.json").read_text())


def test_the_issue_definition_validates():
    spec = parse_experiment(ISSUE_YAML, "tv-spring.yaml")
    assert isinstance(spec, GeoExperiment)
    assert spec.geos.treatment == ["lyon", "lille", "nantes"] and spec.geos.exclude == ["paris"]
    assert (spec.start, spec.end) == (dt.date(2026, 2, 16), dt.date(2026, 3, 16))
    assert spec.alpha == 0.10 and spec.method == "tbr" and spec.heavy_up


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (("method: tbr", "methd: tbr"), 5, "did you mean 'method'"),
        (("method: tbr", "method: lasso"), 5, "tbr, synthetic_control"),
        (("exclude: [paris]", "exclude: [lyon]"), 8, "in both treatment and exclude"),
        (("alpha: 0.10", "alpha: 0.10\ndemean: true"), 1, "an option of method: synthetic_control"),
        (("end: 2026-02-16}\ntest", "end: 2026-02-20}\ntest"), 1, "before test_period.start"),
        (
            ("start: 2026-02-16, end: 2026-03-16", "start: 2026-02-16, end: 2026-02-10"),
            10,
            "must be after start",
        ),
        (("treatment: [lyon, lille, nantes]", "treatment: []"), 8, "at least 1"),
    ],
)
def test_bad_definitions_are_reported_at_their_line(tmp_path, change, line, words):
    path = tmp_path / "tv-spring.yaml"
    path.write_text(ISSUE_YAML.replace(*change))
    result = invoke("validate", path)
    assert result.exit_code == 1, result.output
    assert f"{path}:{line}:" in result.output and words in result.output, result.output


def test_demo_flight_is_recovered(analysed, regions):
    truth = regions[1]
    geo = analysed["geo"]
    for key in (
        "incremental",
        "incremental_ci",
        "lift_rel",
        "lift_rel_ci",
        "iroas",
        "iroas_ci",
        "p_value",
        "att_per_period",
        "diagnostics",
        "placebo_in_time",
        "placebo_in_space",
    ):
        assert key in geo
    lo, hi = geo["incremental_ci"]
    assert lo < truth["incremental_sales"] < hi
    assert geo["iroas_ci"][0] < truth["iroas"] < geo["iroas_ci"][1]
    assert geo["spend_change"] == pytest.approx(truth["spend"], rel=1e-9)
    assert geo["p_value"] < 0.05 and geo["ci_level"] == pytest.approx(0.95)
    assert len(geo["att_per_period"]) == 28 and geo["diagnostics"]["pre_mape"] < 0.05
    assert sum(geo["diagnostics"]["weights"]) == pytest.approx(1.0)
    [effect] = analysed["effects"]
    assert effect["channel"] == "tv" and effect["incremental_total"] == geo["incremental"]
    assert effect["roi"] == pytest.approx(
        (geo["incremental"] - geo["spend_change"]) / geo["spend_change"]
    )
    assert analysed["status"] == "ended" and not analysed["health"]["warnings"]


def test_tbr_on_the_demo_warns_and_holdback_flips_signs(regions, tmp_path):
    text = (
        EXAMPLE.read_text()
        .replace("method: synthetic_control", "method: tbr")
        .replace("demean: true ", "")
    )
    results = {}
    for kind in ("heavy_up", "holdback"):
        path = tmp_path / f"{kind}.yaml"
        path.write_text(text.replace("test_type: heavy_up", f"test_type: {kind}"))
        res = invoke("analyze", path, "--data", regions[0], "--out", tmp_path / kind)
        assert res.exit_code == 0, res.output
        results[kind] = json.loads((tmp_path / kind / "results.json").read_text())
    codes = {w["code"] for w in results["heavy_up"]["health"]["warnings"]}
    up, back = results["heavy_up"]["geo"], results["holdback"]["geo"]
    assert back["incremental"] == pytest.approx(-up["incremental"])
    assert back["incremental_ci"] == pytest.approx(
        [-up["incremental_ci"][1], -up["incremental_ci"][0]]
    )
    assert back["lift_rel"] == pytest.approx(-up["incremental"] / up["observed_total"])
    # the regions drift apart slowly (regional loadings on a common wave, AR(1) days): TBR's
    # independent-errors interval misses the truth here, and the placebo in time says so
    assert not up["incremental_ci"][0] < regions[1]["incremental_sales"]
    assert up["placebo_in_time"]["p_value"] < 0.10 and "geo_placebo_time" in codes


GEO_LAYOUTS = [
    Layout(fmt="csv"),
    Layout(fmt="csv_semicolon", ts="offset"),
    Layout(fmt="parts", ts="zone", categorical=True),
    Layout(ts="naive", extras=True),
    Layout(fmt="csv_bom", ts="date", extras=True),
]


@pytest.mark.parametrize("layout", GEO_LAYOUTS, ids=lambda x: x.id)
def test_layouts_give_the_same_numbers(layout, regions, analysed, tmp_path):
    base = {"geo_metrics": pl.read_parquet(regions[0] / "geo_metrics.parquet")}
    data = write_layout(layout, base, tmp_path / "data")
    res = invoke("analyze", EXAMPLE, "--data", data, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "out" / "results.json").read_text())["geo"]
    assert got["incremental"] == pytest.approx(analysed["geo"]["incremental"], rel=1e-9)
    assert got["incremental_ci"] == pytest.approx(analysed["geo"]["incremental_ci"], rel=1e-6)


def test_integer_geo_ids(regions, analysed, tmp_path):
    """Geo ids stored as integers (codes) are named as numbers in the YAML."""
    code = {c: i + 1 for i, c in enumerate(CITIES)}
    frame = pl.read_parquet(regions[0] / "geo_metrics.parquet").with_columns(
        pl.col("geo").replace_strict(code, return_dtype=pl.Int64)
    )
    (tmp_path / "data").mkdir()
    frame.write_csv(tmp_path / "data" / "geo_metrics.csv")
    text = EXAMPLE.read_text()
    for city in ("lyon", "lille", "nantes", "bordeaux", "rennes", "paris"):
        text = re.sub(rf"\b{city}\b", str(code[city]), text)
    (tmp_path / "ids.yaml").write_text(text)
    res = invoke(
        "analyze", tmp_path / "ids.yaml", "--data", tmp_path / "data", "--out", tmp_path / "out"
    )
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "out" / "results.json").read_text())["geo"]
    assert got["incremental"] == pytest.approx(analysed["geo"]["incremental"], rel=1e-9)


LYON_DEC_1 = (pl.col("geo") == "lyon") & (pl.col("date") == dt.date(2025, 12, 1))


def _broken(regions, tmp_path, change) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    frame = pl.read_parquet(regions[0] / "geo_metrics.parquet")
    if change is not None:
        change(frame).write_parquet(data / "geo_metrics.parquet")
    return data


@pytest.mark.parametrize(
    ("case", "change", "words"),
    [
        ("no table", None, "table 'geo_metrics' not found"),
        (
            "misspelt column",
            lambda f: f.rename({"tv_spend": "tvspend"}),
            "table geo_metrics, column tv_spend: column 'tv_spend' not found",
        ),
        (
            "repeated row",
            lambda f: pl.concat([f, f.filter(LYON_DEC_1)]),
            "more than one row (e.g. geo 'lyon' on 2025-12-01)",
        ),
        (
            "missing value",
            lambda f: f.with_columns(
                pl.when(LYON_DEC_1).then(None).otherwise(pl.col("sales")).alias("sales")
            ),
            "column sales: 1 geo and date pair(s) without a finite number",
        ),
        (
            "unreadable date",
            lambda f: f.with_columns(pl.col("date").cast(pl.String)).with_columns(
                pl.when(pl.int_range(pl.len()) == 7)
                .then(pl.lit("soon"))
                .otherwise(pl.col("date"))
                .alias("date")
            ),
            "column date: 1 row(s) with a missing or unreadable date (rows 8)",
        ),
        (
            "missing geo-day",
            lambda f: f.filter(
                ~((pl.col("geo") == "lyon") & (pl.col("date") == dt.date(2026, 1, 20)))
            ),
            "lack some dates",
        ),
        (
            "ends before the test",
            lambda f: f.filter(pl.col("date") < dt.date(2026, 1, 1)),
            "before the test period starts",
        ),
    ],
)
def test_bad_data_exits_1_naming_the_table(regions, tmp_path, case, change, words):
    data = _broken(regions, tmp_path, change)
    res = invoke("analyze", EXAMPLE, "--data", data, "--out", tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert words in " ".join(res.output.split()), res.output


def test_an_unknown_geo_is_reported_at_its_yaml_line(regions, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(EXAMPLE.read_text().replace("nantes,", "nante,"))
    res = invoke("analyze", path, "--data", regions[0], "--out", tmp_path / "out")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "nante," in t)
    assert res.exit_code == 1 and f"{path}:{line}: geos.treatment: 'nante'" in res.output
    checked = invoke("validate", path, "--data", regions[0])
    assert checked.exit_code == 1 and "'nante'" in checked.output
    ok = invoke("validate", EXAMPLE, "--data", regions[0])
    assert ok.exit_code == 0 and "50 geos in geo_metrics (5 treatment, 44 control)" in " ".join(
        ok.output.split()
    ), ok.output


def test_daily_report_lists_the_geo_test_in_the_ledger(regions, tmp_path):
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "tv-winter.yaml").write_text(EXAMPLE.read_text())
    res = invoke(
        "report",
        "--experiments",
        experiments,
        "--data",
        regions[0],
        "--date",
        "2026-02-20",
        "--out",
        tmp_path / "reports",
    )
    assert res.exit_code == 0, res.output
    day = tmp_path / "reports" / "2026-02-20"
    summary = json.loads((day / "summary.json").read_text())
    [item] = summary["experiments"]
    assert item["experiment"] == "tv-winter" and item["roi"] is not None
    # ended with a clear lift: the final readout is its decision
    assert item["decision"] == "treatment_wins" and item["status"] == "decided"
    index = (day / "index.html").read_text()
    assert "experiments/tv-winter/index.html" in index
    page = (day / "experiments" / "tv-winter" / "index.html").read_text()
    assert "Observed vs counterfactual" in page and "Cumulative incremental sales" in page
    portfolio = pl.read_csv(day / "tables" / "portfolio-by-channel.csv")
    assert portfolio.filter(pl.col("channel") == "tv").height == 1


def test_calibration_row(analysed):
    row = calibration_row(analysed)
    geo = analysed["geo"]
    assert row["channel"] == "tv" and row["start"] == "2026-01-12"
    assert row["end"] == "2026-02-09" and row["incremental"] == geo["incremental"]
    assert row["spend"] == geo["spend_change"]
    half = (geo["incremental_ci"][1] - geo["incremental_ci"][0]) / 2
    assert row["se"] == pytest.approx(half / 1.959963984540054)


def test_the_calibration_export_includes_the_geo_test(analysed):
    """One national lift test for all the treatment geos, in each of the three formats."""
    from liftlab.analyses.calibration import meridian, pymc_marketing, records_from_results, robyn

    ledger = records_from_results(analysed)
    assert ledger.refused == ()
    (record,) = ledger.records
    row = calibration_row(analysed)
    assert (record.channel, record.incremental, record.se, record.spend) == (
        "tv", row["incremental"], row["se"], row["spend"])
    assert record.start.isoformat() == "2026-01-12" and record.end.isoformat() == "2026-02-09"
    assert record.p_value == analysed["geo"]["p_value"] and record.kpi_is_money
    for export in (pymc_marketing(ledger), robyn(ledger), meridian(ledger)):
        assert export.table.height >= 1 and export.refused == ()
    running = records_from_results({**analysed, "status": "running"})
    assert running.records == () and "still running" in running.refused[0].reason
    no_spend = {**analysed, "geo": {**analysed["geo"], "spend_change": None}}
    assert "no known spend" in records_from_results(no_spend).refused[0].reason


def test_numeric_geo_ids_are_read_as_text():
    """Geo ids in the definition are compared as text: 7 and '7' name the same geo."""
    spec = parse_experiment(ISSUE_YAML.replace("[lyon, lille, nantes]", "[7, '8', lille]"))
    assert isinstance(spec, GeoExperiment) and spec.geos.treatment == ["7", "8", "lille"]


@pytest.mark.parametrize("command", ["monitor", "assign"])
def test_customer_level_commands_refuse_a_geo_experiment(regions, tmp_path, command):
    res = invoke(command, EXAMPLE, "--data", regions[0], "--out", tmp_path / "out")
    assert res.exit_code == 1 and "geo experiment" in res.output, res.output


def _paired_regions(folder: Path, iroas: float, seed: int = 3) -> tuple[list[str], list[str]]:
    """24 pairs of similar regions, 8 weeks of daily sales; in each pair a coin decides which
    region gets TV for the last two weeks (spend ~ 5% of its sales, each euro returning
    ``iroas``)."""
    rng = np.random.default_rng(seed)
    days = [dt.date(2026, 1, 5) + dt.timedelta(days=i) for i in range(56)]
    rows, treated, control = [], [], []
    for p in range(24):
        size = rng.lognormal(np.log(1000), 0.5)
        first = rng.random() < 0.5
        names = (f"p{p:02d}a", f"p{p:02d}b")
        treated.append(names[0 if first else 1])
        control.append(names[1 if first else 0])
        for name, own in zip(names, (size, size * rng.normal(1, 0.05)), strict=True):
            level = own * rng.lognormal(0, 0.02)
            for i, d in enumerate(days):
                sales = level * (1 + 0.1 * (d.weekday() >= 5)) * rng.lognormal(0, 0.05)
                spend = 0.05 * level if name == treated[-1] and i >= 42 else 0.0
                rows.append((name, d, sales + iroas * spend, spend))
    pl.DataFrame(rows, schema=["geo", "date", "sales", "tv_spend"], orient="row").write_parquet(
        folder / "geo_metrics.parquet")
    return treated, control


def test_trimmed_match_on_randomised_pairs(tmp_path):
    (tmp_path / "data").mkdir()
    treated, control = _paired_regions(tmp_path / "data", iroas=3.0)
    spec = tmp_path / "pairs.yaml"
    spec.write_text(
        "schema_version: 1\nid: tv-pairs\ndesign: geo\nchannel: tv\nmethod: trimmed_match\n"
        f"kpi: sales\nspend: tv_spend\ngeos:\n  treatment: [{', '.join(treated)}]\n"
        f"  control: [{', '.join(control)}]\n"
        "pre_period: {start: 2026-01-05, end: 2026-02-16}\n"
        "test_period: {start: 2026-02-16, end: 2026-03-02}\nalpha: 0.10\n")
    res = invoke("analyze", spec, "--data", tmp_path / "data", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    geo = results["geo"]
    assert geo["iroas_ci"][0] < 3.0 < geo["iroas_ci"][1] and geo["p_value"] < 0.10
    d = geo["diagnostics"]
    assert d["pairs"] == 24 and 0 <= d["trim_rate"] <= 0.25
    assert geo["iroas"] == pytest.approx(d["iroas"]) and geo["incremental"] == pytest.approx(
        d["iroas"] * geo["spend_change"])
    assert geo["placebo_in_time"] is None and (tmp_path / "out" / "dashboard.html").exists()


def test_trimmed_match_needs_pairs(tmp_path):
    path = tmp_path / "tm.yaml"
    path.write_text(ISSUE_YAML.replace("method: tbr", "method: trimmed_match"))
    res = invoke("validate", path)
    assert res.exit_code == 1 and "one control geo per treatment geo" in res.output


@pytest.mark.slow
def test_bayesian_tbr_agrees_with_tbr(regions, tmp_path):
    """PyMC's posterior of TBR's model (flat-ish priors) gives TBR's answer: the mean effect
    within 2% and the interval ends within 5% of the t interval's (about 2 minutes: sampling
    on a shared machine)."""
    text = EXAMPLE.read_text().replace("demean: true ", "")
    results = {}
    for method in ("tbr", "bayesian_tbr"):
        path = tmp_path / f"{method}.yaml"
        path.write_text(text.replace("method: synthetic_control", f"method: {method}"))
        res = invoke("analyze", path, "--data", regions[0], "--out", tmp_path / method)
        assert res.exit_code == 0, res.output
        results[method] = json.loads((tmp_path / method / "results.json").read_text())["geo"]
    freq, bayes = results["tbr"], results["bayesian_tbr"]
    assert bayes["incremental"] == pytest.approx(freq["incremental"], rel=0.02)
    assert bayes["incremental_ci"] == pytest.approx(freq["incremental_ci"], rel=0.05)
    d = bayes["diagnostics"]
    assert d["r_hat"] <= 1.01 and d["divergences"] == 0
