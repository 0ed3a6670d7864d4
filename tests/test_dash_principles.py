"""The dashboard principles of issue 21 beyond the scorecard: one estimate per effect (money
table and scorecard agree, each number says which estimate it is), one named trace per
channel in the segments, the index's "since yesterday" strip, shared data notes said once,
and `liftlab monitor` naming each channel."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from liftlab.analyses.experiment import analyze
from liftlab.app.monitor_readout import _comparison_lines
from liftlab.data.folder import FolderSource
from liftlab.data.quality import build_report, declare_checks
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.report import charts
from liftlab.report.daily import run_daily, since_yesterday
from liftlab.report.format import money
from liftlab.report.pages import estimate_label, render_experiment
from liftlab.spec.models import Experiment
from test_daily import DATE, fixture_analyze, specs
from test_report import load

from tinydata import SPEC_YAML


@pytest.fixture(scope="module")
def margin_result(tiny_data):
    """The tiny factorial with margin as its primary metric (CUPED on its pre-period)."""
    text = SPEC_YAML.replace(
        "  - {name: revenue, kind: mean, table: orders, value: revenue}\n",
        "  - {name: revenue, kind: mean, table: orders, value: revenue}\n"
        "  - {name: margin, kind: mean, table: orders, value: margin}\n",
    ).replace("primary_metric: revenue", "primary_metric: margin")
    spec = Experiment.model_validate(yaml.safe_load(text))
    return analyze(spec, PolarsEngine(FolderSource(tiny_data))).to_dict()


def _primary(r: dict) -> list[dict]:
    return [e for e in r["effects"] if e["segment"] is None and e["metric"] == r["primary_metric"]]


def test_money_and_scorecard_are_one_estimate(margin_result, tmp_path: Path):
    """With margin as the primary metric, the money table's margin is the scorecard's
    CUPED-adjusted estimate (not a raw second one), shown once, labelled; revenue's ROAS uses
    revenue's CUPED estimate too, as revenue is a metric with a pre-period."""
    r = margin_result
    for e in _primary(r):
        assert e["cuped"] and e["incremental_margin"] == pytest.approx(e["incremental_total"])
        assert e["incremental_margin_per_customer"] == pytest.approx(e["lift_abs"])
        [rev] = [
            x
            for x in r["effects"]
            if x["segment"] is None
            and x["metric"] == "revenue"
            and x["channel"] == e["channel"]
            and x["variant"] == e["variant"]
        ]
        assert e["incremental_revenue_per_customer"] == pytest.approx(rev["lift_abs"])
    html = render_experiment(r, tmp_path)
    money = html[html.index('id="money"') : html.index("Where the increment landed")]
    heads = re.findall(r"<th[^>]*>([^<]+)</th>", money)
    assert sum("incremental margin" in h for h in heads) == 1
    assert "CUPED-adjusted" in money


def test_every_number_says_which_estimate_it_is():
    base = {"metric": "revenue", "cuped": False, "winsorize": None}
    assert estimate_label(base) == "raw"
    assert estimate_label({**base, "cuped": True}) == "CUPED-adjusted"
    assert (
        estimate_label({**base, "cuped": True, "winsorize": 0.99})
        == "CUPED-adjusted, winsorised at the 99th percentile"
    )
    assert estimate_label({**base, "winsorize": 0.995}) == "winsorised at the 99.5th percentile"


def test_the_contribution_table_does_not_repeat_the_lift_raw(tmp_path: Path):
    """The factorial's contribution table shows the Shapley split and the solo and
    leave-one-out effects (labelled raw), not a second, raw, estimate of each channel's lift."""
    r = load("spring-factorial")
    html = render_experiment(r, tmp_path)
    block = html[html.index("Contribution of each channel") : html.index("Interactions between")]
    assert "not CUPED-adjusted" in block and "incremental revenue / customer" not in block
    for c in r["contribution"]:
        shown = f'"num">{money(c["incremental_revenue_per_customer"], True)} <span'
        assert shown not in block and f'"num">{money(c["shapley"], True)} <span' in block
    # one channel: its "split" is its own lift, raw (EUR 2.75 next to the scorecard's 2.46)
    r = load("email-flash")
    assert len(r["contribution"]) == 1
    html = render_experiment(r, tmp_path)
    block = html[html.index("Contribution of each channel") : html.index("Interactions between")]
    assert "<table>" not in block and "Not in this result" in block


def test_segments_draw_one_trace_per_channel_side_by_side():
    """Each segment's row holds one point per channel, at distinct heights, one trace per
    channel named after it; the CSV has channel, variant and segment columns."""
    r = load("spring-factorial")
    chart = charts.segments(r["effects"], "revenue", "region", "s")
    names = [t.name for t in chart.figure.data]
    assert sorted(names) == sorted(r["channels"])
    values = sorted(
        {
            e["segment"]["region"]
            for e in r["effects"]
            if e["segment"] and "region" in e["segment"] and e["metric"] == "revenue"
        }
    )
    heights = [y for t in chart.figure.data for y in t.y]
    assert len(heights) == len(set(heights)) == len(values) * len(r["channels"])
    for i, _ in enumerate(values):  # each channel's point sits within its segment's band
        assert sum(abs(y - i) < 0.5 for y in heights) == len(r["channels"])
    assert {"channel", "variant", "metric", "dimension", "segment"} <= set(chart.table.columns)
    for t in chart.figure.data:
        rows = chart.table.filter(chart.table["channel"] == t.name)
        assert sorted(rows["lift_abs"].to_list()) == sorted(t.x)


def test_portfolio_is_titled_with_the_metric_it_plots():
    items = [
        {**e, "experiment": "x", "metric": "margin"} for e in _primary(load("spring-factorial"))
    ]
    chart = charts.portfolio(items, "p")
    assert chart is not None
    titles = [a.text for a in chart.figure.layout.annotations]
    assert "Incremental margin (primary metric)" in titles
    assert not any("revenue" in t for t in titles)
    assert set(chart.table["metric"]) == {"margin"}


def _decide(r: dict, channel: str) -> dict:
    r = copy.deepcopy(r)
    for c in r["sequential"]["comparisons"]:
        if c["channel"] == channel:
            c.update(
                decision="treatment_wins", decided_at="2026-02-23T09:00:00Z", decided_by="event"
            )
    return r


def test_since_yesterday_reads_the_previous_days_report(tmp_path: Path):
    """Yesterday: the factorial undecided on email; today email is decided, a new warning
    appears and an experiment fails. The strip says exactly that, from yesterday's folder."""
    from test_dashboards import three_channel_timeline

    out = tmp_path / "reports"
    before = three_channel_timeline()
    before["status"] = "running"  # not yet at its end (where the scorecard decides)
    after = _decide(before, "email")
    after["health"]["warnings"].append(
        {"code": "data", "severity": "warning", "message": "something new"}
    )
    day = {DATE - dt.timedelta(days=1): before, DATE: after}

    def analyze_(spec, as_of):
        if spec.id == "spring-factorial":
            return day[as_of.date()]
        if spec.id == "web-onboarding" and as_of.date() == DATE:
            raise RuntimeError("disk full")
        return fixture_analyze(spec, as_of)

    first = run_daily(specs(), DATE - dt.timedelta(days=1), out, analyze_)
    html = (first.folder / "index.html").read_text()
    assert "No report of the previous day" in html
    run = run_daily(specs(), DATE, out, analyze_)
    since = since_yesterday(run.summary(), json.loads((first.folder / "summary.json").read_text()))
    assert since is not None
    assert [(d["experiment"], d["channel"], d["decision"]) for d in since["decisions"]] == [
        ("spring-factorial", "email", "treatment_wins")
    ]
    assert "response-count test" in since["decisions"][0]["by"]
    assert [(w["experiment"], w["message"]) for w in since["warnings"]] == [
        ("spring-factorial", "something new")
    ]
    assert [(f["experiment"], f["new"]) for f in since["failed"]] == [("web-onboarding", True)]
    html = (run.folder / "index.html").read_text()
    strip = html[html.index('id="since-yesterday"') : html.index("<h2>Experiments")]
    counts = dict(re.findall(r'data-since="(\w+)"><b>(\d+)</b>', strip))
    assert counts == {"decisions": "1", "warnings": "1", "failed": "1"}
    assert "web-onboarding (new)" in strip and f"report of {first.date}" in strip


def test_a_note_about_the_shared_tables_is_said_once(tmp_path: Path):
    """Returns in orders are counted as they should be: an info note (not a warning) from the
    quality checks, said once on the index instead of a badge on every row."""
    checks = declare_checks({"orders": ["order_id", "revenue", "ts", "customer_id"]})
    counts = [5 if c.name == "returns (negative revenue)" else 0 for c in checks]
    report = build_report(checks, counts, lambda c: ())
    assert report.warnings == () and report.notes == (
        "orders.revenue: 5 row(s) with negative revenue are counted as returns",
    )
    run = run_daily(specs(), DATE, tmp_path / "reports", fixture_analyze)
    html = (run.folder / "index.html").read_text()
    note = next(
        w["message"]
        for w in load("web-onboarding")["health"]["warnings"]
        if w["code"] == "data_quality"
    )
    assert html.count(note) == 1
    body = html[html.index("<tbody>") : html.index("</tbody>")]
    assert "data_quality" not in body


def test_monitor_lines_name_each_channel_and_the_deciding_test():
    from test_dashboards import three_channel_timeline

    seq = _decide(three_channel_timeline(), "mail")["sequential"]
    lines = _comparison_lines(seq["comparisons"], seq["timeline"])
    heads = [line.strip() for line in lines if not line.startswith("    ")]
    assert heads == [
        "email: continue",
        "sms: continue",
        "mail: treatment_wins by the response-count test (first responses per arm)",
    ]
    for channel in ("email", "sms", "mail"):
        last = [r for r in seq["timeline"] if r["channel"] == channel][-1]
        i = heads.index(next(h for h in heads if h.startswith(channel)))
        block = "\n".join(lines[lines.index("  " + heads[i]) :][:3])
        assert f"lift {last['estimate']:+.4g} per unit" in block


def test_multichannel_page_keeps_ratios_and_euros_in_their_own_columns(tmp_path: Path):
    from liftlab.report.pages import render_multichannel

    mc = json.loads((Path(__file__).parent / "fixtures" / "multichannel.json").read_text())
    mc["iv"] = {
        "experiment": "web-onboarding",
        "effect": 11.84,
        "effect_ci": [3.126, 20.55],
        "first_stage": 0.222,
        "weak_instrument": False,
    }
    html = render_multichannel(mc, tmp_path)
    table = html[html.index("<tbody>") : html.index("</tbody>")]
    rows = [re.findall(r'<td class="num">(.*?)</td>', row) for row in table.split("<tr>")[1:]]
    assert len(rows) == 2 + len(mc["adjusted"])
    for ratio_cell, euro_cell in rows:
        assert "€" not in ratio_cell and "x" not in euro_cell and "×" not in euro_cell
    assert rows[-1] == ["–", "+€ 11.84 [+€ 3.13, +€ 20.55]"]


def test_a_failed_sample_ratio_check_marks_every_card_of_numbers(tmp_path: Path):
    """Not only the scorecard: the money, over-time, segments and Bayesian cards of an
    experiment whose sample-ratio check failed turn red with the banner saying why."""
    r = load("spring-factorial")
    r["health"].update(srm_ok=False, srm_p_value=1e-7)
    html = render_experiment(r, tmp_path)
    order = ["scorecard", "guardrails", "over-time", "money", "segments", "bayes", "plan"]
    for card, nxt in itertools.pairwise(order):
        block = html[html.index(f'id="{card}"') : html.index(f'id="{nxt}"')]
        assert block.startswith(f'id="{card}" class="alarm"') and "alarm-banner" in block, card
    fine = render_experiment(load("spring-factorial"), tmp_path)
    assert 'class="alarm' not in fine
