"""Experiment and multichannel pages rendered from results dicts (tests/fixtures holds real
results.json files of the demo retailer): escaping, missing sections, determinism, the numbers
shown and the CSV tables behind the charts checked against the dicts themselves."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import polars as pl
import pytest

from liftlab.report import format as fmt
from liftlab.report.pages import render_experiment, render_multichannel

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = '<script>alert("x")</script>'
NAMES = ("spring-factorial", "email-flash", "web-onboarding")


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def hostile(result: dict) -> dict:
    """Every free-text field a user or the data controls, replaced by a script tag."""
    r = copy.deepcopy(result)
    r["name"] = HOSTILE
    r["definition"]["yaml"] = HOSTILE
    r["definition"]["data_source"] = HOSTILE
    r["health"]["warnings"].append({"code": HOSTILE, "severity": "warning", "message": HOSTILE})
    r["health"]["data_checks"].append({"check": HOSTILE, "ok": False, "detail": HOSTILE})
    r["channels"] = [*r["channels"], HOSTILE]
    e = r["effects"][0]
    e.update(channel=HOSTILE, variant=HOSTILE, error=HOSTILE)
    seg = next(x for x in r["effects"] if x["segment"])
    seg["segment"] = {next(iter(seg["segment"])): HOSTILE}
    r["landing"].append({"channel": HOSTILE, "purchase_channel": HOSTILE,
                         "incremental_revenue": 1.0, "ci": [0.0, 2.0],
                         "last_touch_revenue": 3.0})
    r["interactions"].append({"channels": [HOSTILE, "sms"], "metric": "revenue",
                              "estimate": 1.0, "ci": [0.0, 2.0], "p_value": 0.5,
                              "kind": HOSTILE})
    return r


@pytest.mark.parametrize("name", NAMES)
def test_hostile_strings_are_escaped_everywhere(name: str, tmp_path: Path):
    html = render_experiment(hostile(load(name)), tmp_path)
    assert HOSTILE not in html
    assert "<script>alert" not in html
    assert html.count("&lt;script&gt;") >= 8
    # inside plotly's JSON the tag is neutralised too (< written as \u003c)
    assert "</script>alert" not in html


def test_hostile_strings_in_multichannel_page(tmp_path: Path):
    mc = load("multichannel")
    mc["appetence"][0]["segment"] = HOSTILE
    mc["warnings"] = [HOSTILE]
    html = render_multichannel(mc, tmp_path)
    assert HOSTILE not in html and "&lt;script&gt;" in html
    failed = render_multichannel({"error": HOSTILE}, tmp_path)
    assert HOSTILE not in failed and "&lt;script&gt;" in failed


@pytest.mark.parametrize("name", NAMES)
def test_rendering_is_byte_deterministic(name: str, tmp_path: Path):
    one = render_experiment(load(name), tmp_path / "one")
    two = render_experiment(load(name), tmp_path / "two")
    assert one == two
    csvs = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.csv"))
    assert csvs and csvs == sorted(p.relative_to(tmp_path / "two")
                                   for p in (tmp_path / "two").rglob("*.csv"))
    for f in csvs:
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()
    # plotly's default div ids are random uuids: every id on the page must be ours
    ids = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', one)
    assert ids and all(i.startswith(load(name)["experiment"]) for i in ids)


def test_a_bare_result_renders_and_names_what_is_absent(tmp_path: Path):
    full = load("spring-factorial")
    bare = {k: full[k] for k in ("experiment", "as_of", "health", "effects")}
    bare["health"] = {"srm_ok": True}
    html = render_experiment(bare, tmp_path)
    for absent in ("sequential monitoring timeline", "landing by purchase channel",
                   "channel contribution (Shapley; factorial designs of two or more channels)",
                   "interactions (factorial designs only)",
                   "definition"):
        assert f"Not in this result: {absent}." in html, absent
    assert 'id="scorecard"' in html and "revenue" in html


def test_no_effects_at_all_still_renders(tmp_path: Path):
    html = render_experiment({"experiment": "empty-one", "as_of": "2026-02-24T00:00:00Z",
                              "health": {}, "effects": []}, tmp_path)
    assert "Not in this result: effects on the outcome metrics." in html
    assert "Not in this result: segments." in html


def test_an_effect_that_could_not_be_estimated_shows_its_error(tmp_path: Path):
    r = load("email-flash")
    e = next(x for x in r["effects"] if x["segment"] is None and x["metric"] == "revenue")
    e.update(lift_abs=None, lift_abs_ci=None, lift_rel=None, lift_rel_ci=None, p_value=None,
             error="too few orders in the holdout to estimate revenue")
    html = render_experiment(r, tmp_path)
    assert "too few orders in the holdout to estimate revenue" in html


def test_scorecard_numbers_are_the_results_numbers(tmp_path: Path):
    """Each overall, non-guardrail effect appears with its own formatted lift and CI, in the
    scorecard row of its metric; guardrails sit in their own block."""
    r = load("spring-factorial")
    html = render_experiment(r, tmp_path)
    score = html[html.index('id="scorecard"'):html.index('id="guardrails"')]
    guard = html[html.index('id="guardrails"'):html.index('id="over-time"')]
    overall = [e for e in r["effects"] if e["segment"] is None]
    assert overall
    for e in overall:
        block = guard if e["guardrail"] else score
        text = f"{fmt.pct(e['lift_rel'])}</b> <span class=\"sub\">{fmt.interval(e['lift_rel_ci'])}"
        assert text in block, (e["metric"], e["channel"])
    assert 'data-metric="unsubscribe"' not in score
    visible = re.findall(r'<tr data-metric="(\w+)">', score)  # every metric on load
    assert visible == [e["metric"] for e in overall if not e["guardrail"]]


def test_csv_tables_hold_the_exact_values_behind_the_charts(tmp_path: Path):
    r = load("spring-factorial")
    html = render_experiment(r, tmp_path)
    tables = tmp_path / "tables" / r["experiment"]
    links = re.findall(r'href="(tables/[^"]+\.csv)"', html)
    assert links and all((tmp_path / link).exists() for link in links)
    forest = pl.read_csv(tables / "spring-factorial-forest-0.csv")
    want = {e["channel"]: e["lift_rel"] for e in r["effects"]
            if e["segment"] is None and e["metric"] == r["primary_metric"]}
    assert dict(zip(forest["channel"], forest["lift_rel"], strict=True)) == want
    money = pl.read_csv(tables / "spring-factorial-money.csv")
    net = sum(e["incremental_margin"] - e["cost"] for e in r["effects"]
              if e["segment"] is None and e["metric"] == r["primary_metric"])
    assert money["eur"].sum() == pytest.approx(net)
    timeline = pl.read_csv(tables / "spring-factorial-timeline-0.csv",
                           infer_schema_length=None).sort(
        "channel", "at", maintain_order=True)
    points = sorted((t for t in r["sequential"]["timeline"]
                     if t["estimate"] is not None or t.get("rate_ratio") is not None),
                    key=lambda t: (t["channel"], t["at"]))
    assert timeline.height == len(points)
    assert [x is None for x in timeline["estimate"]] == [t["estimate"] is None for t in points]
    assert timeline["estimate"].drop_nulls().to_list() == pytest.approx(
        [t["estimate"] for t in points if t["estimate"] is not None])
    assert timeline["rate_ratio"].drop_nulls().to_list() == pytest.approx(
        [t["rate_ratio"] for t in points if t.get("rate_ratio") is not None])


def test_segment_selector_covers_every_metric_and_dimension(tmp_path: Path):
    r = load("spring-factorial")
    html = render_experiment(r, tmp_path)
    keys = set(re.findall(r'data-seg="([^"]+)"', html))
    want = {f"{e['metric']}|{k}" for e in r["effects"] if e["segment"] for k in e["segment"]}
    assert keys == want
    for e in r["effects"]:  # every segment's size is on its chart, so noise is judged
        if e["segment"] and e["lift_abs"] is not None:
            assert f"(n={e['n_treatment'] + e['n_holdout']:,})" in html


def test_health_strip_reads_without_colour(tmp_path: Path):
    r = load("spring-factorial")
    harmed = next(e for e in r["effects"] if e["guardrail"] and e["segment"] is None)
    harmed["verdict"] = "undesired"  # harm on the unsubscribe guardrail
    html = render_experiment(r, tmp_path)
    strip = html[html.index('class="strip"'):html.index("</section>", html.index('"strip"'))]
    assert "✖ harm" in strip and "✔ ok" in strip
    r["health"]["srm_ok"] = False
    assert "✖ SRM" in render_experiment(r, tmp_path)


@pytest.mark.parametrize(("call", "want"), [
    (lambda: fmt.money(12340.4), "€ 12,340"), (lambda: fmt.money(-5.456, True), "−€ 5.46"),
    (lambda: fmt.pct(0.058), "+5.8%"), (lambda: fmt.interval([0.032, 0.085]), "[+3.2%, +8.5%]"),
    (lambda: fmt.pvalue(0.0004), "< 0.001"), (lambda: fmt.pvalue(0.0312), "0.031"),
    (lambda: fmt.value(0.0412, "conversion", "binary"), "4.12%"),
    (lambda: fmt.value(0.0031, "conversion", "binary", signed=True), "+0.31 pp"),
    (lambda: fmt.ratio(2.2875), "2.29×"), (lambda: fmt.ratio(597.3), "597×"),
    (lambda: fmt.money(float("nan")), "–"), (lambda: fmt.interval(None), "")])
def test_numbers_are_formatted_for_people(call, want: str):
    assert call() == want
