"""What the dashboards show at a glance: the scorecard's alarm, sentences with p-values,
intervals that cannot be, the over-time chart per channel, the index's counts and rows."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path

import polars as pl

from liftlab.report import charts
from liftlab.report import format as fmt
from liftlab.report.daily import DailyRun, Outcome, render_index, run_daily
from liftlab.report.pages import render_experiment
from test_daily import DATE, fixture_analyze, specs
from test_daily import spec as daily_spec
from test_report import load


def _card(html: str, section: str, following: str) -> str:
    return html[html.index(f'id="{section}"'):html.index(f'id="{following}"')]


def test_scorecard_is_green_when_the_design_holds(tmp_path: Path):
    html = render_experiment(load("spring-factorial"), tmp_path)
    score = _card(html, "scorecard", "guardrails")
    assert "alarm-banner" not in score and "suspect" not in score
    assert 'class="badge desired"' in score


def test_scorecard_turns_red_when_the_sample_ratio_check_fails(tmp_path: Path):
    r = load("spring-factorial")
    r["health"].update(srm_ok=False, srm_p_value=1e-7)
    html = render_experiment(r, tmp_path)
    for card, nxt in (("scorecard", "guardrails"), ("guardrails", "over-time")):
        block = _card(html, card, nxt)
        assert 'class="alarm"' in block and "alarm-banner" in block
        assert "sample-ratio check failed (p &lt; 0.001)" in block
        assert 'class="badge desired"' not in block
        assert _number_cells(block) and all('class="suspect"' in c for c in _number_cells(block))


def _number_cells(block: str) -> list[str]:
    body = block[block.index("<tbody>"):block.index("</tbody>")]
    return re.findall(r'<td class="num[^"]*"[^>]*>(.*?)</td>', body, re.S)


def test_scorecard_turns_red_on_a_design_check_at_error(tmp_path: Path):
    r = load("spring-factorial")
    check = {"channel": "email", "check": "contamination", "share": 0.12, "status": "error"}
    r["health"]["design_checks"] = [check]
    html = render_experiment(r, tmp_path)
    score = _card(html, "scorecard", "guardrails")
    assert f"Design check at error: {check['channel']} {check['check']}." in score
    assert all('class="suspect"' in c for c in _number_cells(score))


def test_p_values_read_as_sentences():
    assert fmt.p_is(0.0004, "always-valid p") == "always-valid p < 0.001"
    assert fmt.p_is(0.0142) == "p = 0.014"


def test_no_p_equals_less_than_on_any_page(tmp_path: Path):
    for name in ("spring-factorial", "email-flash", "web-onboarding"):
        r = load(name)
        r["health"]["srm_p_value"] = 1e-9
        if r.get("sequential"):
            r["sequential"]["always_valid_p_value"] = 1e-9
        assert "= &lt;" not in render_experiment(r, tmp_path), name


def three_channel_timeline() -> dict:
    """The factorial's results as the monitor writes them: one timeline row per hour and
    channel, interleaved, and mail decided (by the response-count test) before the first
    look at which its lift test can estimate anything."""
    r = load("spring-factorial")
    rows = r["sequential"]["timeline"]
    assert sorted(rows[k]["channel"] for k in range(3)) == ["email", "mail", "sms"]
    first = next(t["at"] for t in rows if t["channel"] == "mail" and t["estimate"] is not None)
    (mail,) = [c for c in r["sequential"]["comparisons"] if c["channel"] == "mail"]
    assert mail["decision"] == "treatment_wins" and mail["decided_at"] < first
    return r


def test_over_time_draws_one_named_series_per_channel(tmp_path: Path):
    """The 3-channel factorial: one lift line and one band per channel (no line zig-zagging
    between channels), a channel column in the CSV, the y-axis says what the lift is, and no
    decision marker sits before the first plotted point."""
    r = three_channel_timeline()
    seq = r["sequential"]
    (mail,) = [c for c in seq["comparisons"] if c["channel"] == "mail"]
    mail["decided_at"] = "2026-02-02T09:00:00Z"  # before the first look the chart plots
    chart = charts.timeline(seq, r["primary_metric"], None, "t")
    assert chart is not None
    fig = chart.plotly_figure()  # with the data arrays (charts.lean)
    lines = [t for t in fig.data if t.name.endswith(": lift")]
    assert sorted(t.name for t in lines) == sorted(f"{c}: lift" for c in r["channels"])
    for t in lines:
        assert t.legendgroup == t.name.split(":")[0]
        want = sorted((x["at"], x["estimate"]) for x in seq["timeline"]
                      if x["channel"] == t.legendgroup and x["estimate"] is not None
                      and x["metric"] == r["primary_metric"])
        assert list(zip(t.x, t.y, strict=True)) == want
    bands = [t for t in fig.data if t.fill == "tonexty"]
    assert sorted(t.name for t in bands) == sorted(
        f"{c}: {test}, 95% confidence sequence" for c in r["channels"]
        for test in ("lift", "rate ratio"))
    assert all(t.name.startswith(f"{t.legendgroup}: ") for t in fig.data)
    assert chart.table["channel"].unique().sort().to_list() == sorted(r["channels"])
    assert "response window" in chart.figure.layout.yaxis.title.text
    first = min(x for t in fig.data if t.legendgroup == "mail" for x in t.x)
    markers = [s.x0 for s in chart.figure.layout.shapes if s.line.dash == "dash"]
    assert markers and all(x >= first for x in markers)
    notes = " ".join(a.text for a in chart.figure.layout.annotations)
    assert "before the first plotted look" in notes


def test_over_time_csv_has_the_channel_column(tmp_path: Path):
    r = three_channel_timeline()
    render_experiment(r, tmp_path)
    table = pl.read_csv(tmp_path / "tables" / r["experiment"] / "spring-factorial-timeline-0.csv")
    assert table.columns[0] == "channel"
    assert set(table["channel"]) == set(r["channels"])


def _outcome(id_: str, result: dict | None = None, error: str | None = None) -> Outcome:
    return Outcome(id_, f"Experiment {id_}", f"{id_}.yaml", result, error)


def _decided() -> dict:
    """The factorial, ended, with mail decided by the monitor and no error-level warning."""
    r = three_channel_timeline()
    r["status"] = "ended"
    r["health"]["warnings"] = [w for w in r["health"]["warnings"] if w["severity"] != "error"]
    return r


def test_index_statuses_mean_what_they_say():
    decided = _decided()
    harmed = load("spring-factorial")  # an error-level warning: harm on a guardrail
    harmed["health"]["warnings"].append({"code": "harm", "severity": "error", "message":
                                         "sequential monitor: harm since 2026-02-10 08:00 UTC"})
    ended = _inconclusive(load("web-onboarding"))
    ended.update(status="ended", sequential=None)
    running = load("email-flash")
    running.update(status="running", sequential={"decision": "continue"})
    srm = load("email-flash")
    srm["health"]["srm_ok"] = False
    assert _outcome("a", decided).status == "decided"
    assert _outcome("b", ended).status == "needs attention"  # ended without any decision
    ended["effects"] = load("web-onboarding")["effects"]  # its fixed-horizon verdict: desired
    assert _outcome("g", ended).status == "decided"
    assert _outcome("c", running).status == "running"
    assert _outcome("d", srm).status == "needs attention"
    assert _outcome("f", harmed).status == "needs attention"
    assert _outcome("e", error="boom").status == "failed"


def test_index_counts_and_one_row_per_channel(tmp_path: Path):
    fact = _decided()
    ended = _inconclusive(load("web-onboarding"))
    ended.update(status="ended", sequential=None)
    run = DailyRun(DATE, (_outcome("spring-factorial", fact), _outcome("web-onboarding", ended),
                          _outcome("broken", error="boom")), tmp_path)
    html = render_index(run, tmp_path)
    strip = html[html.index('class="strip"'):html.index("</section>")]
    count = dict(re.findall(r'data-status="([^"]+)"><b>(\d+)</b>', strip))
    # the returns note both carry is about the shared orders table: said once, not counted
    assert count == {"running": "0", "decided": "1", "needs attention": "1", "failed": "1",
                     "with warnings": "0"}
    returns = next(w["message"] for w in ended["health"]["warnings"]
                   if w["code"] == "data_quality")
    assert html.count(returns) == 1 and "About the shared tables every experiment reads" in html
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    assert len(rows) == 3 + 1 + 1
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    assert [c[1] for c in cells[:3]] == ["email", "sms", "mail"]
    for c, e in zip(cells[:3], (e for e in fact["effects"] if e["segment"] is None
                                and e["metric"] == fact["primary_metric"]), strict=True):
        assert fmt.pct(e["lift_rel"]) in c[3] and fmt.ratio(e["roi"]) in c[7]
        assert fmt.interval(e["roi_ci"], "ratio") in c[7]
        assert f">{e['verdict']}<" in c[5]  # the scorecard's verdict, next to the monitor's
        assert "CUPED-adjusted" in c[3]
    # email and sms: no sequential decision, so their fixed-horizon verdict at the planned end
    assert [re.search(r'class="badge [\w-]+">([^<]+)<', c[6]).group(1) for c in cells[:3]] == [
        "treatment_wins", "treatment_wins", "treatment_wins"]
    assert [("fixed-horizon" in c[6], "response-count" in c[6]) for c in cells[:3]] == [
        (True, False), (True, False), (False, True)]
    assert "ended, no decision" in cells[3][6]


def _inconclusive(r: dict) -> dict:
    """The result with its primary metric's verdict inconclusive on every channel."""
    for e in r["effects"]:
        if e["metric"] == r["primary_metric"] and e["segment"] is None:
            e["verdict"] = "inconclusive"
    return r


def test_relative_intervals_of_rates_and_counts_never_go_below_minus_100(tmp_path: Path):
    """The fixtures hold binary guardrails whose Fieller/HDI lower ends are far below −100%:
    no page says so (they read "≥ −100%"), no chart draws it, results.json keeps them."""
    def analyze(spec, as_of):
        return _below_minus_100(fixture_analyze(spec, as_of))

    run = run_daily(specs(), DATE, tmp_path / "reports", analyze)
    shown = []
    for page in run.folder.rglob("*.html"):
        text = page.read_text()
        shown += [(page.name, v) for v in re.findall(r"\[([+\-−]?[\d,.]+)%", text)
                  if float(v.replace("−", "-").replace(",", "")) < -100]
    assert shown == []
    assert "[≥ −100%," in (run.folder / "experiments" / "email-flash" / "index.html").read_text()
    for name in ("email-flash", "spring-factorial"):
        effects = _below_minus_100(load(name))["effects"]
        for chart in (charts.forest(effects, "unsubscribe", "f"),
                      charts.posteriors(effects, "p")):
            for t in chart.figure.data:
                lows = [x - m for x, m in zip(t.x, t.error_x.arrayminus, strict=True)]
                assert min(lows) >= -100 - 1e-9, (name, chart.key)
    raw = json.loads((run.folder / "experiments" / "email-flash" / "results.json").read_text())
    assert min(e["lift_rel_ci"][0] for e in raw["effects"] if e["lift_rel_ci"][0] is not None) < -1


def _below_minus_100(r: dict) -> dict:
    """The result with its binary guardrails' relative intervals and HDIs reaching far below
    −100%, as Fieller's interval and the posterior of a ratio of rare rates can."""
    for e in r["effects"]:
        if e["guardrail"] and e["metric_kind"] == "binary":
            e["lift_rel_ci"] = [-1.608, e["lift_rel_ci"][1]]
            if e.get("bayes") and e["bayes"].get("hdi_rel"):
                e["bayes"]["hdi_rel"] = [-1.5, e["bayes"]["hdi_rel"][1]]
    return r


def test_srm_warning_is_a_sentence_not_a_python_dict(tmp_path: Path):
    """The SRM warning of results.json (and so of summary.json and every page) says the arms,
    their planned shares and the p-value in words."""
    from liftlab.analyses.experiment import _health_warnings
    from liftlab.stats.srm import srm_check

    check = srm_check("email", {"holdout": 900, "treatment": 9100},
                      {"holdout": 0.2, "treatment": 0.8})
    spec = daily_spec("spring-factorial")
    window = (dt.datetime(2026, 2, 2, tzinfo=dt.UTC), dt.datetime(2026, 2, 23, tzinfo=dt.UTC))
    (warning,) = [w for w in _health_warnings(spec, window, (check,), True) if w.code == "srm"]
    assert warning.message == ("sample ratio mismatch on email: holdout 900 (20% planned), "
                               "treatment 9,100 (80% planned), p < 0.001; do not trust its "
                               "lifts until the assignment is explained")
    r = load("spring-factorial")
    r["health"].update(srm_ok=False, srm=[{**check.to_dict()}])
    from liftlab.analyses.serialize import warning_json

    r["health"]["warnings"].append(warning_json(warning))
    health = _card(render_experiment(r, tmp_path), "health", "scorecard")
    assert "{" not in health and "&#39;" not in health
    assert "holdout 900 (20% planned), treatment 9,100 (80% planned), p &lt; 0.001" in health
    summary = DailyRun(DATE, (_outcome("x", r),), tmp_path).summary()
    assert warning.message in summary["experiments"][0]["warnings"]


def test_a_single_channel_test_is_not_called_factorial(tmp_path: Path):
    r = load("email-flash")
    r.update(design="factorial", channels=["email"])
    assert "factorial design ·" not in render_experiment(r, tmp_path)
    assert "single-channel holdout" in render_experiment(r, tmp_path)
    r = load("spring-factorial")
    r.update(design="factorial", channels=["email", "sms", "mail"])
    assert "factorial design ·" in render_experiment(r, tmp_path)


def test_over_time_of_a_ratio_metric_says_it_has_no_response_count_test():
    """A ratio primary metric is monitored by its lift band only: the middle panel says so
    instead of standing empty with a boundary at 1."""
    r = three_channel_timeline()
    seq = copy.deepcopy(r["sequential"])
    for row in seq["timeline"]:
        row["rate_ratio"], row["rate_ratio_ci"] = None, [None, None]
    chart = charts.timeline(seq, r["primary_metric"], None, "t")
    assert chart is not None
    texts = [a.text for a in chart.figure.layout.annotations]
    assert any("no response-count test for a ratio metric" in t for t in texts)
    assert not any("band clear of 1" in t for t in texts)
    with_counts = charts.timeline(r["sequential"], r["primary_metric"], None, "t")
    assert any("band clear of 1" in a.text for a in with_counts.figure.layout.annotations)
