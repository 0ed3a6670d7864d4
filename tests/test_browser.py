"""The real pages in headless Chromium, offline: no console errors, every chart drawn, the
selectors change what is shown, links between pages work. Screenshots go to tests/artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from liftlab.report.daily import run_daily
from test_daily import DATE, fixture_analyze, spec, specs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"
LOCAL = ("file://", "data:", "about:")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed and could not be "
    "(scripts/system-deps.sh installs Debian's chromium): browser test skipped")]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The daily report of the demo retailer's stored results, plus one failing experiment."""
    out = tmp_path_factory.mktemp("reports")
    mc = json.loads((Path(__file__).parent / "fixtures" / "multichannel.json").read_text())
    run = run_daily([*specs(), (Path("broken.yaml"), spec("broken-one"))], DATE, out,
                    fixture_analyze, {"orders": "2026-02-23 23:57 UTC"},
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
    assert _visible(page, "tr[data-metric='revenue']") == 3
    assert _visible(page, "tr[data-metric='conversion']") == 0
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
