"""Full-page screenshots of every page of a daily report, 1280 px wide, in headless Chromium,
offline (anything that is not a local file is blocked).

    python scripts/screenshots.py REPORT_FOLDER OUT_FOLDER

REPORT_FOLDER is one date of a report (``demo/reports/2026-02-24``); one PNG per page is
written to OUT_FOLDER: ``index.png``, ``multichannel.png``, ``experiment-ID.png``, 1280 px
wide, quantised to 256 colours to keep them small.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

WIDTH = 1280
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL = ("file://", "data:", "about:")


def pages(report: Path) -> list[tuple[str, Path]]:
    """Every page of the report with the name of its screenshot."""
    found = [("index", report / "index.html"), ("multichannel", report / "multichannel.html")]
    found += [
        (f"experiment-{p.parent.name}", p) for p in sorted(report.glob("experiments/*/index.html"))
    ]
    return [(name, path) for name, path in found if path.is_file()]


def shoot(report: Path, out: Path) -> list[Path]:
    """One full-page PNG per page; returns the files written."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: run `make system-deps` first")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": WIDTH, "height": 900})
        context.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(LOCAL) else route.abort()
            ),
        )
        for name, path in pages(report):
            page = context.new_page()
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            page.wait_for_timeout(300)  # plotly's resize after the last chart is drawn
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=True)
            _shrink(target)
            written.append(target)
            page.close()
        browser.close()
    return written


def _shrink(path: Path) -> None:
    """The PNG quantised to a 256-colour palette: the pages are flat colours and text, so it
    reads the same at a fraction of the size (the screenshots are committed)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 1
    report, out = Path(argv[0]).resolve(), Path(argv[1])  # a page is opened by its file URI
    if not (report / "index.html").is_file():
        print(f"{report} holds no index.html: give one date of a report", file=sys.stderr)
        return 1
    for path in shoot(report, out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
