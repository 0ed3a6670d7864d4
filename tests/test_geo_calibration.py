"""Per-geo calibration rows: ``liftlab export-calibration --per-geo`` gives a geo test as one
pymc-marketing row set per treatment geo (dimension ``geo``), each geo analysed alone
against the controls; the national row stays the default; Robyn and Meridian, which take no
geo, refuse the option; trimmed match (one pooled iROAS) is refused per geo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from liftlab.analyses.calibration import meridian, pymc_marketing, records_from_results
from liftlab.app.cli import app
from liftlab.app.geo_synth import write_geo_metrics
from liftlab.stats.geo import tbr

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "tv-winter.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("geo")
    (root / "data").mkdir()
    write_geo_metrics(root / "data")
    out = root / "out"
    res = runner.invoke(
        app, ["analyze", str(EXAMPLE), "--data", str(root / "data"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    return root, out, json.loads((out / "results.json").read_text())


def test_each_treatment_geo_has_its_own_estimate(analysed):
    _, _, results = analysed
    g = results["geo"]
    per = g["per_geo"]
    assert [p["geo"] for p in per] == g["treatment_geos"]
    # each geo's spend change adds up to the test's (the counterfactual spend is linear)
    assert sum(p["spend_change"] for p in per) == pytest.approx(g["spend_change"], rel=1e-9)
    # the geos' own fits need not add up to the joint one, but come close on the demo
    assert sum(p["incremental"] for p in per) == pytest.approx(g["incremental"], rel=0.05)
    for p in per:
        lo, hi = p["incremental_ci"]
        assert lo < p["incremental"] < hi and 0 <= p["p_value"] <= 1


def test_tbr_per_geo_is_tbr_on_that_geo_alone(analysed, tmp_path):
    root, _, _ = analysed
    spec = tmp_path / "tbr.yaml"
    spec.write_text(
        EXAMPLE.read_text()
        .replace("method: synthetic_control", "method: tbr")
        .replace("demean: true ", "")
    )
    res = runner.invoke(
        app, ["analyze", str(spec), "--data", str(root / "data"), "--out", str(tmp_path / "out")]
    )
    assert res.exit_code == 0, res.output
    g = json.loads((tmp_path / "out" / "results.json").read_text())["geo"]
    frame = pl.read_parquet(root / "data" / "geo_metrics.parquet").filter(
        (pl.col("date") >= pl.date(2025, 10, 13)) & (pl.col("date") < pl.date(2026, 2, 9))
    )
    wide = frame.pivot(on="geo", index="date", values="sales").sort("date")
    controls = wide.select(g["control_geos"]).to_numpy()
    fit = tbr.fit(wide.select("lyon").to_numpy(), controls, 91, 0.05)
    lyon = g["per_geo"][0]
    assert lyon["geo"] == "lyon" and lyon["incremental"] == pytest.approx(fit.effect, rel=1e-9)
    assert lyon["se"] == pytest.approx(fit.se, rel=1e-9)
    assert lyon["incremental_ci"] == pytest.approx(list(fit.effect_ci), rel=1e-9)


def test_pymc_marketing_rows_per_geo_and_the_national_default(analysed, tmp_path):
    _, out, results = analysed
    national = tmp_path / "national.csv"
    res = runner.invoke(
        app, ["export-calibration", str(out), "--format", "pymc-marketing", "--out", str(national)]
    )
    assert res.exit_code == 0, res.output
    assert "geo" not in pl.read_csv(national).columns  # one national test by default
    per_geo = tmp_path / "per_geo.csv"
    res = runner.invoke(
        app,
        [
            "export-calibration",
            str(out),
            "--format",
            "pymc-marketing",
            "--per-geo",
            "--out",
            str(per_geo),
        ],
    )
    assert res.exit_code == 0, res.output
    table = pl.read_csv(per_geo)
    assert table.height == 5 * 4  # five geos, four weekly periods each
    for p in results["geo"]["per_geo"]:
        rows = table.filter(pl.col("geo") == p["geo"])
        assert rows["delta_y"].sum() == pytest.approx(p["incremental"], rel=1e-9)
        assert rows["delta_x"].sum() == pytest.approx(p["spend_change"], rel=1e-9)
        half = (p["incremental_ci"][1] - p["incremental_ci"][0]) / 2 / 1.959963984540054
        # four independent weekly rows carry the geo's standard error
        assert float(np.sqrt((rows["sigma"] ** 2).sum())) == pytest.approx(half, rel=1e-9)


@pytest.mark.parametrize(
    ("fmt", "words"), [("robyn", "Robyn models one market"), ("meridian", "carry no geo")]
)
def test_formats_without_geo_refuse_the_option(analysed, tmp_path, fmt, words):
    _, out, results = analysed
    res = runner.invoke(
        app,
        [
            "export-calibration",
            str(out),
            "--format",
            fmt,
            "--per-geo",
            "--out",
            str(tmp_path / "x.csv"),
        ],
    )
    assert res.exit_code == 1 and words in res.output, res.output
    # and a per-geo record reaching Meridian's writer is refused, not written without its geo
    done = meridian(records_from_results(results, per_geo=True))
    assert done.table.is_empty() and all("carry no geo" in r.reason for r in done.refused)


def test_trimmed_match_and_old_results_are_refused_per_geo(analysed):
    _, _, results = analysed
    paired = {**results, "geo": {**results["geo"], "method": "trimmed_match", "per_geo": None}}
    ledger = records_from_results(paired, per_geo=True)
    assert ledger.records == () and "one iROAS for all pairs" in ledger.refused[0].reason
    old = {**results, "geo": {k: v for k, v in results["geo"].items() if k != "per_geo"}}
    assert "no per-geo estimates" in records_from_results(old, per_geo=True).refused[0].reason
    running = records_from_results({**results, "status": "running"}, per_geo=True)
    assert "still running" in running.refused[0].reason
    assert pymc_marketing(records_from_results(results, per_geo=True)).table.height == 5
