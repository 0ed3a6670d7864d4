"""The real pages in headless Chromium, offline: no console errors, every chart drawn, the
selectors change what is shown, links between pages work. Screenshots go to tests/artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from liftlab.report.daily import run_daily
from test_daily import DATE, fixture_analyze, spec, specs
from test_dashboards import three_channel_timeline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"
LOCAL = ("file://", "data:", "about:")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed and could not be "
    "(scripts/system-deps.sh installs Debian's chromium): browser test skipped")]


def analyze(experiment, as_of):
    """The stored results; the factorial's timeline as the monitor writes it now (one row
    per hour and channel, three channels)."""
    if experiment.id == "spring-factorial":
        return three_channel_timeline()
    return fixture_analyze(experiment, as_of)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The daily report of the demo retailer's stored results, plus one failing experiment."""
    out = tmp_path_factory.mktemp("reports")
    mc = json.loads((Path(__file__).parent / "fixtures" / "multichannel.json").read_text())
    run = run_daily([*specs(), (Path("broken.yaml"), spec("broken-one"))], DATE, out,
                    analyze, {"orders": "2026-02-23 23:57 UTC"},
                    multichannel=lambda results: mc)
    return run.folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS)
        requests: list[str] = []
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            LOCAL) else route.abort())  # offline: anything else is blocked, then reported
        context.on("request", lambda r: requests.append(r.url))
        yield context, requests
        context.close()


def _open(context, url: str):
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors


def _charts_drawn(page) -> int:
    divs = page.locator(".js-plotly-plot")
    count = divs.count()
    for i in range(count):
        n = page.evaluate("(el) => (el.data || []).length", divs.nth(i).element_handle())
        assert n > 0, f"chart {i} has no data"
    return count


def test_every_page_loads_offline_with_charts(report: Path, browser):
    context, requests = browser
    ARTIFACTS.mkdir(exist_ok=True)
    pages = [report / "index.html", report / "multichannel.html",
             *sorted(report.glob("experiments/*/index.html"))]
    assert len(pages) >= 4
    for path in pages:
        page, errors = _open(context, path.as_uri())
        assert errors == [], (path, errors)
        assert _charts_drawn(page) >= 1, path
        name = "_".join(path.relative_to(report).with_suffix("").parts)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        page.close()
    assert [u for u in requests if not u.startswith(LOCAL)] == []


def _visible(page, selector: str) -> int:
    return page.locator(selector).evaluate_all(
        "els => els.filter(e => e.offsetParent !== null).length")


def test_selectors_toggles_sorting_and_links(report: Path, browser):
    context, requests = browser
    page, errors = _open(context, (report / "index.html").as_uri())
    assert "disk on fire while reading broken-one" in page.inner_text("#experiments")
    def names():
        return page.locator("#experiments tbody tr td:first-child .sub").all_inner_texts()
    page.click("#experiments th:has-text('primary lift')")
    ascending = names()
    page.click("#experiments th:has-text('primary lift')")
    assert names() != ascending and set(names()) == set(ascending)

    page.click("a[href='experiments/spring-factorial/index.html']")
    page.wait_for_load_state("load")
    assert page.url.endswith("experiments/spring-factorial/index.html")
    assert _visible(page, "tr[data-metric='revenue']") == 3  # every metric on load
    assert _visible(page, "tr[data-metric='conversion']") == 3
    page.select_option("#metric-select", "conversion")
    assert _visible(page, "tr[data-metric='conversion']") == 3
    assert _visible(page, "tr[data-metric='revenue']") == 0

    assert not page.locator("#score-forest").is_visible()
    page.click("#view-toggle")
    assert page.locator("#score-forest").is_visible()
    assert not page.locator("#score-table").is_visible()
    forest = page.locator("#score-forest div[data-metric='conversion'] .js-plotly-plot")
    assert forest.is_visible() and forest.evaluate("el => el.data.length") > 0

    def shown():
        return page.locator("[data-seg]").evaluate_all(
            "els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.seg)")
    assert shown() == ["revenue|region"]
    page.select_option("#seg-dim", "segment")
    assert shown() == ["revenue|segment"]
    page.select_option("#seg-metric", "aov")
    assert shown() == ["aov|segment"]
    page.screenshot(path=str(ARTIFACTS / "spring-factorial_selected.png"), full_page=True)

    csv = page.locator("a[href$='spring-factorial-money.csv']").get_attribute("href")
    assert (report / "experiments" / "spring-factorial" / csv).resolve().exists()
    page.click("text=← daily report")
    page.wait_for_load_state("load")
    assert page.url.endswith("2026-02-24/index.html")
    page.click("text=Value of multichannel clients")
    page.wait_for_load_state("load")
    assert page.url.endswith("2026-02-24/multichannel.html")
    assert errors == []
    assert [u for u in requests if not u.startswith(LOCAL)] == []


def test_no_card_scrolls_sideways_at_1280px(report: Path, browser):
    """Every card (section) of every page fits a 1280 px window: nothing of the scorecard,
    such as P(lift > 0) or the verdict, hides behind a horizontal scrollbar."""
    context, _ = browser
    pages = [report / "index.html", report / "multichannel.html",
             *sorted(report.glob("experiments/*/index.html"))]
    for path in pages:
        page, errors = _open(context, path.as_uri())
        page.set_viewport_size({"width": 1280, "height": 900})
        wide = page.evaluate("""() => Array.from(document.querySelectorAll('section'))
            .filter(s => s.scrollWidth > s.clientWidth)
            .map(s => [s.id || s.innerText.slice(0, 30), s.scrollWidth, s.clientWidth])""")
        assert wide == [], (path, wide)
        assert errors == []
        page.close()


def test_no_axis_title_is_clipped_at_1280px(report: Path, browser):
    """Every axis title of every chart (the portfolio's euro axis among them) lies inside its
    figure at 1280 px: none runs past the top or the bottom of the plot and gets cut."""
    context, _ = browser
    pages = [report / "index.html", report / "multichannel.html",
             *sorted(report.glob("experiments/*/index.html"))]
    checked = 0
    for path in pages:
        page, errors = _open(context, path.as_uri())
        page.set_viewport_size({"width": 1280, "height": 900})
        page.wait_for_timeout(200)
        found = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
            .flatMap(el => {
                const box = el.querySelector('svg.main-svg').getBoundingClientRect();
                return Array.from(el.querySelectorAll('.g-xtitle text, .g-ytitle text, '
                                                      + '.g-y2title text'))
                    .filter(t => t.textContent)
                    .map(t => { const r = t.getBoundingClientRect();
                        return [el.id, t.textContent, r.top >= box.top - 0.5
                                && r.bottom <= box.bottom + 0.5 && r.left >= box.left - 0.5
                                && r.right <= box.right + 0.5]; }); })""")
        page.close()
        assert errors == []
        assert [f for f in found if not f[2]] == [], path
        checked += len(found)
        if path.name == "index.html" and path.parent == report:
            assert any("€" in f[1] for f in found)  # the portfolio's euro axis was checked
    assert checked > 20


def test_a_standalone_dashboard_has_no_link_to_itself(tmp_path: Path, browser):
    """liftlab analyze writes dashboard.html with itself as home: no "← daily report" link
    leading back to the same page; the daily report's pages keep theirs."""
    from liftlab.report.pages import copy_plotly, render_experiment

    context, _ = browser
    r = json.loads((Path(__file__).parent / "fixtures" / "email-flash.json").read_text())
    copy_plotly(tmp_path / "assets")
    (tmp_path / "dashboard.html").write_text(render_experiment(r, tmp_path,
                                                               home="dashboard.html"))
    page, errors = _open(context, (tmp_path / "dashboard.html").as_uri())
    assert page.locator("text=← daily report").count() == 0 and errors == []
    page.close()
    (tmp_path / "page.html").write_text(render_experiment(r, tmp_path, home="dashboard.html"))
    page, errors = _open(context, (tmp_path / "page.html").as_uri())
    assert page.locator("text=← daily report").count() == 1 and errors == []
    page.close()


def _figures(page) -> list[dict]:
    """Every plotly figure of the page as drawn: its div id and, per trace, its name, legend
    group, y values (the outer level of a two-level axis) and its error bars' left arms."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .map(el => ({id: el.id, traces: el.data.map(t => ({
            name: t.name || '', group: t.legendgroup || '', type: t.type || 'scatter',
            y: (Array.isArray((t.y || [])[0]) ? t.y[0] : Array.from(t.y || [])).map(String),
            x: Array.from(t.x || []),
            minus: t.error_x && t.error_x.arrayminus ? Array.from(t.error_x.arrayminus) : null
        }))}))""")


def _arms(effects: list[dict], metric: str | None = None) -> set[str]:
    return {e["channel"] + (f" / {e['variant']}" if e.get("variant") else "")
            for e in effects if e["segment"] is None and metric in (None, e["metric"])}


def test_every_chart_draws_one_named_trace_per_channel(report: Path, browser):
    """Read the figures as the browser drew them: the forest plot of each metric has one
    trace per channel (named after it, all its points on its own row); the posteriors and the
    segments one per channel; every over-time trace is named with its channel and each
    channel has one lift line; the portfolio one per experiment."""
    context, _ = browser
    for path in sorted(report.glob("experiments/*/index.html")):
        r = json.loads((path.parent / "results.json").read_text())
        page, errors = _open(context, path.as_uri())
        figures = _figures(page)
        page.close()
        assert errors == []
        kinds = set()
        timelines = 0
        for fig in figures:
            names = [t["name"] for t in fig["traces"]]
            kind = fig["id"].removeprefix(r["experiment"] + "-").split("-")[0]
            kinds.add(kind)
            if kind == "forest":
                metric = _forest_metric(r, fig["id"])
                assert sorted(names) == sorted(_arms(r["effects"], metric)), fig["id"]
                assert all(t["y"] == [t["name"]] for t in fig["traces"]), fig["id"]
            elif kind in ("posteriors", "segments"):
                assert len(names) == len(set(names)) and set(names) <= _arms(r["effects"])
            elif kind == "timeline" and any(t["group"] for t in fig["traces"]):
                channels = {t["name"].split(": ")[0] for t in fig["traces"]}
                assert all(t["name"].startswith(f"{t['group']}: ") for t in fig["traces"])
                assert [n for n in names if n.endswith(": lift")] == [
                    f"{c}: lift" for c in sorted(channels)], fig["id"]
                timelines += len(channels) > 1
            elif kind == "timeline":  # a result without channels on its rows: one series
                assert names.count("lift") == 1
        assert {"forest", "segments"} <= kinds, path
        assert timelines == (r["experiment"] == "spring-factorial"), path
    page, errors = _open(context, (report / "index.html").as_uri())
    (portfolio,) = _figures(page)
    page.close()
    names = [t["name"] for t in portfolio["traces"] if t["type"] == "bar"]
    assert sorted(set(names)) == sorted(p.parent.name for p in
                                        report.glob("experiments/*/results.json"))


def _metrics(r: dict) -> list[str]:
    return list(dict.fromkeys(e["metric"] for e in r["effects"]
                              if e["segment"] is None and not e.get("guardrail")))


def test_scorecard_numbers_are_results_json(report: Path, browser):
    """Every scorecard row as the browser shows it (lift, its CI, the p-value the verdict
    used, the verdict) is the formatted number of results.json, row for row."""
    from liftlab.report import format as fmt

    context, _ = browser
    for path in sorted(report.glob("experiments/*/index.html")):
        r = json.loads((path.parent / "results.json").read_text())
        page, errors = _open(context, path.as_uri())
        rows = page.evaluate("""() => Array.from(document.querySelectorAll('table.score tbody tr'))
            .map(tr => Array.from(tr.cells).map(td => [td.innerText, td.dataset.sort ?? null]))""")
        page.close()
        overall = [e for e in r["effects"] if e["segment"] is None]
        want = ([e for e in overall if not e.get("guardrail")]
                + [e for e in overall if e.get("guardrail")])
        assert len(rows) == len(want) and errors == []
        # a conversion window still open marks every lift provisional ("…")
        provisional = any(w["code"] == "immature_window" for w in r["health"]["warnings"])
        assert provisional == (r["experiment"] == "email-flash")
        for row, e in zip(rows, want, strict=True):
            arm = e["channel"] + (f" / {e['variant']}" if e.get("variant") else "")
            assert row[0][0].splitlines()[0] == e["metric"] and row[1][0] == arm
            lift = row[4][0].splitlines()[0]
            assert lift.startswith("… ") == provisional, (e["metric"], arm)
            assert lift.removeprefix("… ") == fmt.pct(e["lift_rel"]), (e["metric"], arm)
            assert row[4][1] == repr(e["lift_rel"])
            p = e["p_adjusted"] if e.get("p_adjusted") is not None else e["p_value"]
            assert row[7][1] == repr(p) and fmt.pvalue(p) in row[7][0]
            assert e["verdict"] in row[9][0]


def test_no_relative_interval_of_a_rate_below_minus_100_as_drawn(report: Path, browser):
    """The forest and posterior charts as drawn: no error bar of a relative lift of a rate
    or a count reaches below −100% (the fixtures hold such intervals in results.json)."""
    context, _ = browser
    checked = 0
    for path in sorted(report.glob("experiments/*/index.html")):
        r = json.loads((path.parent / "results.json").read_text())
        bounded = {e["metric"] for e in r["effects"] if e.get("metric_kind") in
                   ("binary", "count")}
        page, _ = _open(context, path.as_uri())
        figures = _figures(page)
        page.close()
        for fig in figures:
            if not any(k in fig["id"] for k in ("-forest-", "-posteriors")):
                continue
            for t in fig["traces"]:
                for x, minus, y in zip(t["x"], t["minus"] or [], t["y"], strict=False):
                    metric = (_forest_metric(r, fig["id"]) if "-forest-" in fig["id"] else y)
                    if metric in bounded:
                        checked += 1
                        assert x - minus >= -100 - 1e-9, (fig["id"], t["name"], x - minus)
    assert checked > 0


def _forest_metric(r: dict, div: str) -> str:
    return _metrics(r)[int(div.rsplit("-", 1)[1])]
