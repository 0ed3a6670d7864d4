"""The index at the end of an experiment (issue 21): a healthy experiment that ran to its
planned end without a sequential decision is decided by the scorecard's fixed-horizon test,
and says so; an inconclusive one still needs a person; a failed health check keeps it out
of "decided". The portfolio's euro axis title fits its plot."""

from __future__ import annotations

import copy
from pathlib import Path

from liftlab.report import charts
from liftlab.report.daily import DailyRun, Outcome, render_index, since_yesterday
from test_daily import DATE
from test_report import load


def _ended(verdict: str) -> dict:
    """web-onboarding (no sequential monitor), ended, its primary metric's verdict set."""
    r = copy.deepcopy(load("web-onboarding"))
    r.update(status="ended", sequential=None)
    for e in r["effects"]:
        if e["metric"] == r["primary_metric"] and e["segment"] is None:
            e["verdict"] = verdict
    return r


def _outcome(result: dict) -> Outcome:
    return Outcome(result["experiment"], result["name"], "x.yaml", result)


def test_an_ended_experiment_is_decided_by_its_fixed_horizon_verdict(tmp_path: Path):
    won, lost, unsure = _ended("desired"), _ended("undesired"), _ended("inconclusive")
    assert _outcome(won).status == "decided"
    assert _outcome(lost).status == "decided"
    assert _outcome(unsure).status == "needs attention"
    summary = DailyRun(DATE, (_outcome(won),), tmp_path).summary()
    (channel,) = summary["experiments"][0]["channels"]
    assert channel["decision"] == "treatment_wins" and channel["decided_by"] == "fixed_horizon"
    html = render_index(DailyRun(DATE, (_outcome(won),), tmp_path), tmp_path)
    assert "treatment_wins" in html
    assert "by the scorecard&#39;s fixed-horizon test at the planned end" in html
    lost_html = render_index(DailyRun(DATE, (_outcome(lost),), tmp_path), tmp_path)
    assert "treatment_loses" in lost_html
    unsure_html = render_index(DailyRun(DATE, (_outcome(unsure),), tmp_path), tmp_path)
    assert "ended, no decision" in unsure_html and "by the scorecard&#39;s fixed" not in unsure_html


def test_a_running_or_unhealthy_experiment_is_not_decided_by_its_verdict(tmp_path: Path):
    running = _ended("desired")
    running["status"] = "running"
    assert _outcome(running).status == "running"
    srm = _ended("desired")
    srm["health"]["srm_ok"] = False
    assert _outcome(srm).status == "needs attention"
    (channel,) = DailyRun(DATE, (_outcome(srm),), tmp_path).summary()["experiments"][0]["channels"]
    assert channel["decision"] == "continue" and channel["decided_by"] is None


def test_the_decision_at_the_end_is_news_since_yesterday(tmp_path: Path):
    before, after = _ended("desired"), _ended("desired")
    before["status"] = "running"
    yesterday = DailyRun(DATE, (_outcome(before),), tmp_path).summary()
    today = DailyRun(DATE, (_outcome(after),), tmp_path).summary()
    since = since_yesterday(today, yesterday)
    assert since is not None
    assert [(d["decision"], d["by"]) for d in since["decisions"]] == [
        ("treatment_wins", "the scorecard's fixed-horizon test at the planned end")
    ]


def test_the_portfolio_euro_axis_title_fits_its_plot():
    """Plotly does not wrap axis titles: at 13 px one character takes about 7.5 px, so the
    title must stay shorter than the plot area's height (the browser test measures it)."""
    items = [
        {**e, "experiment": "x"}
        for e in load("spring-factorial")["effects"]
        if e["segment"] is None and e["metric"] == "revenue"
    ]
    chart = charts.portfolio(items, "p")
    assert chart is not None
    layout = chart.figure.layout
    plot_height = layout.height - layout.margin.t - layout.margin.b
    for axis in (layout.yaxis, layout.yaxis2):
        assert len(axis.title.text) * 7.5 < 0.8 * plot_height, axis.title.text
    assert "Incremental revenue (primary metric)" in [a.text for a in layout.annotations]
