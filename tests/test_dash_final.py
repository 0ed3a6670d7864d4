"""What the pages still got wrong when looked at as an analyst (issue 21): a healthy
experiment that ran to its planned end without a sequential decision is decided by the
scorecard's fixed-horizon test, and says so (an inconclusive one still needs a person; a
failed health check keeps it out of "decided"); the portfolio's euro axis title fits its
plot; an open conversion window, a design check at warning and poor convergence mark the
numbers they undermine."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from liftlab.report import charts
from liftlab.report.daily import DailyRun, Outcome, render_index, since_yesterday
from liftlab.report.pages import render_experiment
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


def _section(html: str, section: str, following: str) -> str:
    return html[html.index(f'id="{section}"') : html.index(f'id="{following}"')]


def test_an_open_conversion_window_marks_every_lift_provisional(tmp_path: Path):
    """email-flash is on day 8 of 21: its scorecard, guardrails and money say the numbers are
    provisional and mark each one; a finished experiment carries no such mark."""
    running = load("email-flash")
    html = render_experiment(running, tmp_path)
    score = _section(html, "scorecard", "guardrails")
    assert "Provisional numbers (marked …)" in score and "8.0 of 21 days observed" in score
    rows = [e for e in running["effects"] if e["segment"] is None and not e["guardrail"]]
    assert score.count('class="provisional"') == 6 * len(rows)  # n, means, 2 lifts, p, P(>0)
    for section, following in (("guardrails", "over-time"), ("money", "segments")):
        assert "Provisional numbers" in _section(html, section, following), section
    ended = render_experiment(load("spring-factorial"), tmp_path)
    assert 'class="provisional' not in ended and "Provisional numbers" not in ended


def test_a_design_warning_is_a_caveat_and_poor_convergence_marks_the_posteriors(tmp_path: Path):
    r = copy.deepcopy(load("spring-factorial"))
    check = r["health"]["design_checks"][0]
    check.update(status="warning", share=0.031)
    r["bayes"] = {
        **(r.get("bayes") or {}),
        "diagnostics": {"warnings": ["r_hat 1.08 > 1.01"], "r_hat_max": 1.08, "divergences": 3},
    }
    html = render_experiment(r, tmp_path)
    score = _section(html, "scorecard", "guardrails")
    assert f"Design check at warning: {check['channel']} {check['check']} 3.1%." in score
    doubts = [e for e in r["effects"] if e["segment"] is None and not e["guardrail"]]
    assert score.count('class="provisional doubt"') == len(doubts)  # P(lift > 0)
    bayes = _section(html, "bayes", "plan")
    assert "Doubtful posteriors" in bayes and "r_hat 1.08 &gt; 1.01" in bayes
    r["health"]["srm_ok"] = False  # an alarm outranks a caveat: one mark, the red one
    alarmed = render_experiment(r, tmp_path)
    assert 'class="provisional' not in _section(alarmed, "scorecard", "guardrails")
    assert "Do not trust these numbers yet" in alarmed


def test_poor_convergence_of_the_dose_response_model_marks_the_optimum(tmp_path: Path):
    """The dose-response example as `liftlab analyze` writes it on the synthetic retailer of
    ``app.synth_pressure`` (its sampler warned of divergences): the health strip says so and
    every optimum, gain and P(pays) of the pressure section is marked doubtful."""
    r = load("email-frequency")
    assert r["pressure"]["diagnostics"]["warnings"]
    html = render_experiment(r, tmp_path)
    assert "Convergence (dose-response)" in html
    start = html.index('id="pressure"')
    section = html[start : html.index("</section>", start)]
    assert "Doubtful optimum, gains and P(pays)" in section
    rows = 1 + sum(len(values) for values in r["pressure"]["segments"].values())
    assert section.count('class="provisional doubt"') == 3 * rows
    r["pressure"]["diagnostics"]["warnings"] = []
    assert 'class="provisional doubt"' not in render_experiment(r, tmp_path)


def test_the_guardrails_card_names_each_harmed_metric_once(tmp_path: Path):
    """email-frequency harms unsubscribe and complaint on all four dose arms: the health card
    says so once per metric (each arm's lift follows)."""
    r = load("email-frequency")
    html = render_experiment(r, tmp_path)
    assert "harm on unsubscribe, complaint;" in html


def test_the_forest_and_segment_charts_say_which_estimate_they_draw():
    r = load("spring-factorial")
    forest = charts.forest(r["effects"], "revenue", "f")
    assert "95% CI; CUPED-adjusted;" in forest.figure.layout.title.text
    assert "95% CI; raw;" in charts.forest(r["effects"], "aov", "f").figure.layout.title.text
    seg = charts.segments(r["effects"], "revenue", "region", "s")
    assert seg.figure.layout.title.text.endswith("(95% CI; CUPED-adjusted)")
    capped = [{**e, "winsorize": 0.99, "winsorize_cap": 412.3} for e in r["effects"]]
    assert "CUPED-adjusted, winsorised at € 412.30 (p99);" in (
        charts.forest(capped, "revenue", "f").figure.layout.title.text
    )


def test_the_shared_tables_note_survives_a_geo_test_on_the_index(tmp_path: Path):
    """The returns note every customer-level experiment carries is said once on the index even
    when a geo test (which reads its own table and carries no such note) runs beside them."""
    geo = copy.deepcopy(load("web-onboarding"))
    geo["health"]["warnings"] = []
    outcomes = [
        _outcome(load("email-flash")),
        _outcome(load("spring-factorial")),
        Outcome("tv", "TV", "tv.yaml", geo),
    ]
    html = render_index(DailyRun(DATE, tuple(outcomes), tmp_path), tmp_path)
    note = next(
        w["message"]
        for w in load("email-flash")["health"]["warnings"]
        if w["code"] == "data_quality"
    )
    assert "About the shared tables every experiment reads" in html and html.count(note) == 1


def test_the_index_marks_a_running_experiment_provisional_and_signs_ratios(tmp_path: Path):
    """email-flash's conversion window is open: its row says "… provisional" (with why) where
    a finished experiment says healthy; a negative ROI bound reads with a minus sign."""
    from liftlab.report import format as fmt

    html = render_index(DailyRun(DATE, (_outcome(load("email-flash")),), tmp_path), tmp_path)
    assert "… provisional" in html and "8.0 of 21 days observed" in html
    assert re.search(r'data-status="with warnings"><b>0</b>', html)  # a note, not a warning
    done = render_index(DailyRun(DATE, (_outcome(load("spring-factorial")),), tmp_path), tmp_path)
    assert "… provisional" not in done
    assert fmt.ratio(-0.0213) == "−0.02×" and fmt.ratio(-12.4) == "−12×"


def test_the_posterior_labels_are_not_cut_at_the_plot_edge():
    """P(>0) sits above each point: the top row's label would be clipped by the plot area."""
    chart = charts.posteriors(load("web-onboarding")["effects"], "p")
    assert chart is not None
    assert all(t.cliponaxis is False for t in chart.figure.data)


def test_an_adjusted_interval_says_its_level_under_both_lifts(tmp_path: Path):
    """After a multiple-testing adjustment the relative interval is the wider one too (its
    level under it, as under the absolute one), not the 95% the header names."""
    r = load("spring-factorial")
    html = render_experiment(r, tmp_path)
    score = _section(html, "scorecard", "guardrails")
    cells = re.findall(r'<td class="num lift"[^>]*>(.*?)</td>', score, re.S)
    adjusted = [e for e in r["effects"] if e["segment"] is None and not e["guardrail"]]
    for e, (rel, ab) in zip(adjusted, zip(cells[::2], cells[1::2], strict=True), strict=True):
        note = f"{e['ci_level'] * 100:.4g}% CI (adjusted)"
        assert (note in rel, note in ab) == ((e["p_adjusted"] is not None,) * 2), e["metric"]


def test_the_plan_says_which_adjustment_it_assumes(tmp_path: Path):
    """The plan column states the variance the sizing assumes removed and by which
    adjustment: Lin's regression on the YAML's covariates, or CUPED with its correlation."""
    r = copy.deepcopy(load("spring-factorial"))
    rows = r["plan"]["channels"]
    rows[0].update(adjustment="lin_regression", variance_reduction=0.475)
    rows[1].update(adjustment="cuped", variance_reduction=0.25, cuped_rho=0.5)
    rows[2].update(adjustment="none", variance_reduction=0.0)
    html = render_experiment(r, tmp_path)
    assert "variance removed by adjustment" in html and "CUPED correlation" not in html
    assert "48% (regression)" in html
    assert "25% (CUPED, ρ 0.50)" in html
    plan = html[html.index('id="plan"'):]
    assert re.search(r'<td class="num">none</td>', plan)


def test_the_pressure_chart_names_every_trace_and_draws_the_arms_of_results_json():
    """The dose-response curves: per group (overall and each segment value) one named trace
    of each kind, bands included; the observed markers are the arms' means in results.json."""
    from collections import Counter

    from liftlab.report.pressure_page import curves

    p = load("email-frequency")["pressure"]
    groups = 1 + sum(len(values) for values in p["segments"].values())
    chart = curves(p, "pressure")
    names = Counter(t.name for t in chart.figure.data)
    assert None not in names
    assert set(names.values()) == {groups}
    observed = [t for t in chart.figure.data if t.name == "arm mean (observed)"]
    arms = [a for a in p["overall"]["arms"] if "metrics" in a]
    primary = next(iter(arms[0]["metrics"]))
    assert list(observed[0].y) == [a["metrics"][primary]["mean"] for a in arms]
    assert list(observed[0].x) == [a["frequency"] for a in arms]
