"""The whole-command benchmark runs (so the script cannot rot); no timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_whole.py"


def _run(tmp_path: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(tmp_path), "--repeat", "1", *args],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_small_run_prints_the_table(tmp_path: Path) -> None:
    stdout = _run(
        tmp_path,
        "--sizes",
        "3000",
        "--layouts",
        "text-customer",
        "--routes",
        "liftlab,floor",
        "--no-commands",
    )
    row = next(line for line in stdout.splitlines() if line.startswith("| text-customer |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "3,000"
    assert float(cells[2].removesuffix(" s")) > 0 and float(cells[4]) > 0


@pytest.mark.slow
def test_quick_run_every_layout_route_and_command(tmp_path: Path) -> None:
    pytest.importorskip("tea_tasting")
    stdout = _run(tmp_path, "--quick")
    for name in ("int-utc", "text-order", "text-customer", "naive", "csv", "parts"):
        assert f"| {name} | 200,000 |" in stdout
    for command in ("help", "validate", "report-1", "report-10", "monitor-hour"):
        assert f"| 200,000 | {command} |" in stdout
