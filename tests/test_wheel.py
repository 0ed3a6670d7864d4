"""The built wheel installs with its core dependencies only, in a clean venv, and runs
`liftlab demo`. Slow (a venv and its packages, a minute or more): `make test` runs it once
after the suite, with LIFTLAB_SLOW=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("pytest", "duckdb", "psycopg", "pyspark", "pymc_marketing", "playwright")


def _run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_wheel_installs_its_core_and_runs_the_demo(tmp_path: Path):
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("liftlab-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel)
    _run(python, "-m", "pip", "check")
    present = _run(
        python,
        "-c",
        "import importlib.util as u, json, sys; print(json.dumps("
        f"[m for m in {EXTRAS_ONLY!r} if u.find_spec(m)]))",
    )
    assert json.loads(present.stdout) == [], "the core install pulled an extra's package"
    _run(
        tmp_path / "venv" / "bin" / "liftlab",
        "demo",
        "--out",
        tmp_path / "demo",
        "--experiments",
        ROOT / "experiments",
        "--customers",
        "4000",
        cwd=tmp_path,
    )
    day = tmp_path / "demo" / "reports" / "2026-02-24"
    summary = json.loads((day / "summary.json").read_text())
    assert summary["experiments"] and all(e["status"] != "failed" for e in summary["experiments"])
    assert (day / "index.html").exists()
