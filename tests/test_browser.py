"""The real pages in headless Chromium, offline: no console errors, every chart drawn, the
selectors change what is shown, links between pages work. Screenshots go to tests/artifacts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from liftlab.run import run_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed and could not be "
    "(scripts/system-deps.sh installs Debian's chromium): browser test skipped")]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    run_demo(out, experiments, 20_000, 7)
    return out / "reports" / "2026-02-24"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS)
        requests: list[str] = []
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
    assert all(u.startswith(("file://", "data:", "about:")) for u in requests), \
        [u for u in requests if not u.startswith(("file://", "data:", "about:"))]


def test_selectors_and_links(report: Path, browser):
    context, _ = browser
    page, errors = _open(context, (report / "index.html").as_uri())
    page.click("text=Spring collection, email x SMS x catalog")
    page.wait_for_load_state("load")
    assert page.url.endswith("experiments/spring-factorial/index.html")
    visible = page.locator("tr[data-metric='revenue']:not(.hidden)").count()
    assert visible > 0 and page.locator("tr[data-metric='conversion']:not(.hidden)").count() == 0
    page.select_option("#metric-select", "conversion")
    assert page.locator("tr[data-metric='conversion']:not(.hidden)").count() > 0
    assert page.locator("tr[data-metric='revenue']:not(.hidden)").count() == 0
    page.click("text=table / forest plot")
    assert page.locator("#score-forest").is_visible()
    page.click("text=← daily report")
    page.wait_for_load_state("load")
    assert page.url.endswith("2026-02-24/index.html")
    assert errors == []
