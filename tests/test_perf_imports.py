"""What the quick commands load (issue 23): ``liftlab --help`` and ``liftlab validate`` of an
experiment answer in well under half a second because they import none of the heavy libraries.
Each command runs in a fresh interpreter, as a user runs it, and reports which of them it
loaded; no timing is asserted (the machine's load would decide), only the imports, so that a
new top-level import of a heavy library anywhere on these paths fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
# Each takes from 0.1 s (jinja2) to over a second (scipy.stats, pymc) to import.
HEAVY = (
    "scipy",
    "statsmodels",
    "plotly",
    "numba",
    "pymc",
    "arviz",
    "jinja2",
    "pyarrow",
    "polars",
    "numpy",
    "pandas",
    "narwhals",
    "sklearn",
    "duckdb",
    "pyspark",
)

RUN = """
import sys
sys.argv = ["liftlab", *sys.argv[1:]]
from liftlab.app.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("EXIT", code, file=sys.stderr)
print("LOADED", ",".join(sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))),
      file=sys.stderr)
"""


def _loaded(*args: str) -> tuple[int, set[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{RUN}", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    lines = dict(
        line.split(" ", 1)
        for line in done.stderr.splitlines()
        if line.startswith(("EXIT ", "LOADED "))
    )
    assert "LOADED" in lines, done.stderr
    return int(lines["EXIT"]), set(filter(None, lines["LOADED"].split(","))), done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("validate", "--help"),
        ("analyze", "--help"),
        ("validate", str(EXPERIMENTS / "spring-factorial.yaml")),
        ("validate", str(EXPERIMENTS / "dose-response")),
        ("validate", str(EXPERIMENTS)),
    ],
    ids=[
        "help",
        "validate-help",
        "analyze-help",
        "validate-one",
        "validate-folder",
        "validate-all",
    ],
)
def test_quick_commands_load_no_heavy_library(args: tuple[str, ...]):
    code, loaded, out = _loaded(*args)
    assert code == 0, out
    assert loaded == set(), f"liftlab {' '.join(args)} imported {sorted(loaded)}"


def test_the_probe_sees_a_heavy_import():
    """The check itself can fail: a command that does need the heavy libraries (``analyze``
    of a missing data folder still imports the engines before it reports the folder)."""
    code, loaded, _ = _loaded(
        "analyze",
        str(EXPERIMENTS / "spring-factorial.yaml"),
        "--data",
        str(ROOT / "no-such-folder"),
        "--out",
        os.devnull,
    )
    assert code == 1
    assert {"polars", "numpy"} <= loaded


def test_the_statistics_import_without_scipy_or_statsmodels():
    """Every module of ``liftlab.stats`` loads scipy and statsmodels inside the functions that
    use them: importing them all loads neither (only numpy)."""
    names = sorted(
        ".".join(p.relative_to(ROOT / "src").with_suffix("").parts)
        for p in (ROOT / "src" / "liftlab" / "stats").rglob("*.py")
    )
    assert "liftlab.stats.contribution" in names and "liftlab.stats.geo.tbr" in names
    code = f"import importlib, sys\nfor n in {names!r}: importlib.import_module(n)\n" + (
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
        check=True,
    )
    assert set(filter(None, done.stdout.strip().split(","))) == {"numpy"}, done.stdout
