"""The demo end to end, as `make demo` runs it (small): data generated, every example
experiment analysed, the daily report written with a page each and the multichannel page."""

from __future__ import annotations

import json
from pathlib import Path

from liftlab.app.run import run_demo

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_demo_runs_every_example(tmp_path: Path, monkeypatch):
    import liftlab.app.run

    analysed: list[str] = []
    real = liftlab.app.run.analyze

    def counting(spec, *args, **kwargs):
        analysed.append(spec.id)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(liftlab.app.run, "analyze", counting)
    summary = run_demo(tmp_path, EXPERIMENTS, 8_000, 3)
    day = tmp_path / "reports" / "2026-02-24"
    assert "report:" in summary
    report = json.loads((day / "summary.json").read_text())
    ids = {e["experiment"]: e for e in report["experiments"]}
    assert set(ids) == {p.stem for p in EXPERIMENTS.glob("*.yaml")}
    assert all(e["status"] != "failed" for e in ids.values()), ids
    geo = set()
    for exp in ids:
        assert (day / "experiments" / exp / "index.html").exists()
        results = json.loads((day / "experiments" / exp / "results.json").read_text())
        assert results["effects"] and "health" in results
        if "geo" in results:  # a geo experiment reads geo_metrics (liftlab.analyses.geo)
            geo.add(exp)
    assert geo == {"tv-winter"}
    assert (day / "multichannel.html").exists() and (day / "assets" / "plotly.min.js").exists()
    # each experiment analysed once: the multichannel page takes the IV from its analysis
    assert sorted(a for a in analysed if a in ids) == sorted(set(ids) - geo)
    assert analysed.count("email-frequency") == 1  # the dose-response example, on its own data
    onboarding = json.loads(
        (day / "experiments" / "web-onboarding" / "results.json").read_text())
    assert json.loads((day / "multichannel.json").read_text())["iv"] == onboarding["iv"]
    flash = json.loads((day / "experiments" / "email-flash" / "results.json").read_text())
    assert flash["sequential"]["decision"] in ("treatment_wins", "continue", "harm")


def test_demo_reports_the_dose_response_example_on_its_own_retailer(tmp_path: Path):
    """experiments/dose-response runs on the pressure retailer (known optimum), reported on
    its end date beside the main report; the summary states the true optimum."""
    summary = run_demo(tmp_path, EXPERIMENTS, 8_000, 3)
    assert "true optimum (contacts a week)" in summary
    day = tmp_path / "pressure" / "reports" / "2026-04-27"
    report = json.loads((day / "summary.json").read_text())
    ids = {e["experiment"]: e for e in report["experiments"]}
    assert set(ids) == {p.stem for p in (EXPERIMENTS / "dose-response").glob("*.yaml")}
    assert all(e["status"] != "failed" for e in ids.values()), ids
    results = json.loads(
        (day / "experiments" / "email-frequency" / "results.json").read_text())
    assert results["pressure"]["overall"]["arms"]
    assert (tmp_path / "pressure" / "data" / "truth.json").exists()
    # a second run replaces what the first wrote, nothing else
    again = run_demo(tmp_path, EXPERIMENTS, 8_000, 3)
    assert again == summary
