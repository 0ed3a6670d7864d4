"""The calibration ledger and its three formats: totals from a real analysis, by-hand values
for each format (pymc-marketing per-period rows, Robyn's calibration_input, Meridian's
experiment priors), the refusals, and `liftlab export-calibration` end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from liftlab.analyses.calibration import (
    Z95,
    CalibrationRecord,
    Ledger,
    meridian,
    pymc_marketing,
    records_from_results,
    robyn,
)
from liftlab.app.cli import app
from liftlab.app.run import analyze_to_folder

ROBYN_COLUMNS = [
    "channel",
    "liftStartDate",
    "liftEndDate",
    "liftAbs",
    "spend",
    "confidence",
    "metric",
    "calibration_scope",
]


@pytest.fixture(scope="module")
def analysed(tiny_data: Path, tiny_spec_path: Path, tmp_path_factory) -> Path:
    """A real analysis of the tiny factorial (3 weeks; email and two mail variants)."""
    out = tmp_path_factory.mktemp("analysis") / "out"
    analyze_to_folder(tiny_spec_path, tiny_data, None, out)
    return out


def _record(**kw: object) -> CalibrationRecord:
    base = CalibrationRecord(
        source="spring",
        channel="mail",
        kpi="revenue",
        kpi_is_money=True,
        start=dt.date(2026, 2, 2),
        end=dt.date(2026, 2, 23),
        spend=9000.0,
        incremental=42000.0,
        se=12000.0,
        p_value=0.0005,
        estimate="welch_cuped",
    )
    return dataclasses.replace(base, **kw)


def test_ledger_of_a_real_analysis(analysed: Path):
    """Totals over the treated units (lift x n, se x n), the cost as spend, the window's
    dates; one record per channel and variant on the primary metric."""
    results = json.loads((analysed / "results.json").read_text())
    ledger = records_from_results(results)
    assert ledger.refused == ()
    got = {r.channel: r for r in ledger.records}
    assert set(got) == {"email", "mail_big", "mail_small"}
    for e in results["effects"]:
        if e["metric"] != "revenue" or e["segment"] is not None:
            continue
        r = got[e["channel"] + (f"_{e['variant']}" if e["variant"] else "")]
        assert r.incremental == pytest.approx(e["lift_abs"] * e["n_treatment"], rel=1e-12)
        assert r.se == pytest.approx(e["se"] * e["n_treatment"], rel=1e-12)
        assert r.spend == pytest.approx(e["cost"]) and r.p_value == e["p_value"]
    email = got["email"]
    assert (email.start, email.end, email.days) == (dt.date(2026, 2, 2), dt.date(2026, 2, 23), 21)
    assert email.kpi == "revenue" and email.kpi_is_money
    assert email.spend == pytest.approx(0.01 * results["effects"][0]["n_treatment"])


def test_unfit_lifts_are_refused_with_the_reason(analysed: Path):
    results = json.loads((analysed / "results.json").read_text())
    running = records_from_results({**results, "status": "running"})
    assert running.records == () and len(running.refused) == 3
    assert "still running" in running.refused[0].reason
    free = [{**e, "cost": 0.0} if e["channel"] == "email" else e for e in results["effects"]]
    ledger = records_from_results({**results, "effects": free})
    assert [r.channel for r in ledger.refused] == ["email"]
    assert "no known spend" in ledger.refused[0].reason
    no_se = [{**e, "se": None} if e["channel"] == "email" else e for e in results["effects"]]
    ledger = records_from_results({**results, "effects": no_se})
    assert "no total increment" in ledger.refused[0].reason
    yaml_text = results["definition"]["yaml"].replace("value: revenue}", "value: items}")
    items = records_from_results({**results, "definition": {"yaml": yaml_text}})
    assert {r.kpi_is_money for r in items.records} == {False}
    ratio = records_from_results({**results, "primary_metric": "aov"})
    assert ratio.records == () and "ratio" in ratio.refused[0].reason


def test_pymc_marketing_rows_per_period_carry_the_test_precision():
    """A 3-week test in a weekly model: 3 rows of spend/3, increment/3, se/sqrt(3); their
    inverse-variance combination is the per-period mean with sd se/3, as one row would be."""
    r = _record()
    table = pymc_marketing(Ledger((r,)), period_days=7, baseline_spend={"mail": 150.0}).table
    assert table.columns == ["channel", "date", "x", "delta_x", "delta_y", "sigma", "source"]
    assert table["date"].to_list() == ["2026-02-02", "2026-02-09", "2026-02-16"]
    assert table["x"].to_list() == [150.0] * 3
    assert table["delta_x"].sum() == pytest.approx(9000.0)
    assert table["delta_y"].sum() == pytest.approx(42000.0)
    assert table["sigma"].to_list() == pytest.approx([12000.0 / math.sqrt(3)] * 3)
    weights = 1 / table["sigma"].to_numpy() ** 2
    assert 1 / math.sqrt(weights.sum()) == pytest.approx(12000.0 / 3)
    whole = pymc_marketing(Ledger((r,))).table  # the whole test as one period
    assert whole.height == 1 and whole["sigma"][0] == pytest.approx(12000.0)
    assert whole["delta_y"][0] == pytest.approx(42000.0)
    daily = pymc_marketing(Ledger((r,)), period_days=1).table
    assert daily.height == 21 and daily["sigma"][0] == pytest.approx(12000.0 / math.sqrt(21))


def test_pymc_marketing_per_period_sigma_matches_a_simulation():
    """Independent route: daily increments simulated around the truth, summed to a 3-week
    total whose sd is se; one week's increment then has sd se/sqrt(3) (Monte Carlo error of
    an sd from 20,000 draws: about 0.5%)."""
    rng = np.random.default_rng(5)
    se = 12000.0
    daily = rng.normal(2000.0, se / math.sqrt(21), size=(20_000, 21))
    weekly = daily.reshape(20_000, 3, 7).sum(axis=2)
    row = pymc_marketing(Ledger((_record(se=se),)), period_days=7).table
    assert weekly[:, 0].std() == pytest.approx(row["sigma"][0], rel=0.02)
    assert daily.sum(axis=1).std() == pytest.approx(se, rel=0.02)


def test_pymc_marketing_dims_and_refusals():
    geo = _record(channel="tv", dims=(("geo", "DE"),))
    national = _record()
    export = pymc_marketing(Ledger((geo, national)), period_days=7)
    assert [r.channel for r in export.refused] == ["mail"]
    assert "dimensions geo" in export.refused[0].reason
    both = pymc_marketing(Ledger((geo, national)), period_days=7, dims={"geo": "DE"}).table
    assert both.columns[:3] == ["channel", "geo", "date"] and set(both["geo"]) == {"DE"}
    clash = pymc_marketing(Ledger((geo,)), dims={"geo": "FR"})
    assert clash.table.is_empty() and "geo=DE" in clash.refused[0].reason
    odd = pymc_marketing(Ledger((_record(end=dt.date(2026, 2, 12)),)), period_days=7)
    assert odd.table.is_empty() and "10 days are not a whole number" in odd.refused[0].reason


def test_robyn_calibration_input():
    table = robyn(Ledger((_record(), _record(channel="tv", dims=(("geo", "DE"),))))).table
    assert table.columns == ROBYN_COLUMNS
    assert table.row(0, named=True) == {
        "channel": "mail",
        "liftStartDate": "2026-02-02",
        "liftEndDate": "2026-02-22",
        "liftAbs": 42000.0,
        "spend": 9000.0,
        "confidence": pytest.approx(0.9995),
        "metric": "revenue",
        "calibration_scope": "immediate",
    }
    refused = robyn(Ledger((_record(channel="tv", dims=(("geo", "DE"),)),))).refused
    assert "one market" in refused[0].reason


def test_meridian_experiment_priors_and_refusal_of_a_significant_loss():
    count = _record(kpi="orders", kpi_is_money=False, incremental=300.0, se=100.0)
    loss = _record(channel="tv", incremental=-30000.0, se=10000.0)  # upper -30k + 19.6k < 0
    close = _record(channel="radio", incremental=-19000.0, se=10000.0)  # upper just above 0
    export = meridian(Ledger((_record(), count, loss, close)))
    rows = {r["channel"] + r["metric"]: r for r in export.table.iter_rows(named=True)}
    assert rows["mailroi"] == {
        "channel": "mail",
        "metric": "roi",
        "point_estimate": pytest.approx(42000 / 9000),
        "standard_error": pytest.approx(12000 / 9000),
        "total_spend": 9000.0,
        "experiment_start_date": "2026-02-02",
        "experiment_end_date": "2026-02-22",
        "kpi": "revenue",
        "source": "spring",
    }
    assert rows["mailikpc"]["point_estimate"] == pytest.approx(300 / 9000)
    assert rows["radioroi"]["point_estimate"] + Z95 * rows["radioroi"]["standard_error"] > 0
    assert [r.channel for r in export.refused] == ["tv"]
    assert "significantly negative" in export.refused[0].reason


def test_export_calibration_command(analysed: Path, tmp_path: Path):
    runner = CliRunner()

    def run(*args: object):
        result = runner.invoke(app, ["export-calibration", *[str(a) for a in args]])
        assert "Traceback" not in result.output
        return result

    for fmt in ("pymc-marketing", "robyn", "meridian"):
        out = tmp_path / f"{fmt}.csv"
        res = run(analysed, "--format", fmt, "--out", out)
        assert res.exit_code == 0, res.output
        table = pl.read_csv(out)
        assert table.height == (9 if fmt == "pymc-marketing" else 3), (fmt, table)
        assert run(analysed / "results.json", "--format", fmt, "--out", out).exit_code == 0
    assert pl.read_csv(tmp_path / "robyn.csv").columns == ROBYN_COLUMNS
    bad = run(analysed, "--format", "robyn", "--out", tmp_path / "meridian.csv")
    assert bad.exit_code == 1 and "not a robyn calibration table" in bad.output
    assert run(analysed, "--format", "robin", "--out", tmp_path / "x.csv").exit_code == 1
    ignored = run(analysed, "--format", "robyn", "--period-days", "7", "--out", tmp_path / "y.csv")
    assert ignored.exit_code == 1 and "pymc-marketing only" in ignored.output
    odd = run(
        analysed, "--format", "pymc-marketing", "--period-days", "5", "--out", tmp_path / "z.csv"
    )
    assert odd.exit_code == 1 and "not a whole number of 5-day" in odd.output
    assert not (tmp_path / "z.csv").exists()
    zero = run(
        analysed, "--format", "pymc-marketing", "--period-days", "0", "--out", tmp_path / "v.csv"
    )
    assert zero.exit_code == 1 and "positive number of days" in zero.output
    stray = run(
        analysed,
        "--format",
        "pymc-marketing",
        "--baseline-spend",
        "tv=10",
        "--out",
        tmp_path / "u.csv",
    )
    assert stray.exit_code == 1 and "tv, which no exported test measured" in stray.output
    missing = run(tmp_path / "nowhere", "--format", "robyn", "--out", tmp_path / "w.csv")
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_analyze_writes_the_whole_test_lift_rows(analysed: Path):
    """The analysis folder keeps mmm_lift_tests.csv: the whole test as one period."""
    table = pl.read_csv(analysed / "mmm_lift_tests.csv")
    results = json.loads((analysed / "results.json").read_text())
    assert table["channel"].to_list() == ["email", "mail_big", "mail_small"]
    email = next(
        e
        for e in results["effects"]
        if e["channel"] == "email" and e["metric"] == "revenue" and not e["segment"]
    )
    assert table["sigma"][0] == pytest.approx(email["se"] * email["n_treatment"])
    assert table["delta_x"][0] == pytest.approx(email["cost"])
