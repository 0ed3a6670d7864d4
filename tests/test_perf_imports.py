"""What the quick commands load (issue 23): ``liftlab --help`` and ``liftlab validate`` of an
experiment answer in well under half a second because they import none of the heavy libraries.
Each command runs in a fresh interpreter, as a user runs it, and reports which of them it
loaded; no timing is asserted (the machine's load would decide), only the imports, so that a
new top-level import of a heavy library anywhere on these paths fails here."""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def small_retailer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from liftlab.app.synth import generate

    data = tmp_path_factory.mktemp("retailer") / "data"
    generate(data, 3000, 7)
    return data


# Records, for scipy.stats and each statsmodels submodule, the liftlab function whose call
# first imported it ("file.py:function"); statsmodels' version module (read for results.json)
# is not counted.
WHO = """
import sys, traceback
IMPORTERS = set()
class Who:
    def find_spec(self, name, path=None, target=None):
        if name == "scipy.stats" or (name.startswith("statsmodels.")
                                     and name != "statsmodels._version"):
            here = [f for f in traceback.extract_stack() if "/liftlab/" in f.filename]
            if here:
                IMPORTERS.add(f"{here[-1].filename.rsplit('/', 1)[-1]}:{here[-1].name}")
        return None
sys.meta_path.insert(0, Who())
"""


def _importers(*args: str) -> tuple[int, set[str], str]:
    """Run liftlab in a fresh interpreter: its exit code, the liftlab functions that imported
    scipy.stats or a statsmodels module, and its stderr."""
    probe = WHO + RUN + 'print("IMPORTERS", ",".join(sorted(IMPORTERS)), file=sys.stderr)\n'
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{probe}", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=300,
    )
    lines = dict(
        line.split(" ", 1)
        for line in done.stderr.splitlines()
        if line.startswith(("EXIT ", "IMPORTERS "))
    )
    assert "IMPORTERS" in lines, done.stderr
    return int(lines["EXIT"]), set(filter(None, lines["IMPORTERS"].split(","))), done.stderr


@pytest.mark.parametrize("experiment", ["spring-factorial", "web-onboarding"])
def test_analyze_loads_scipy_stats_only_for_fisher_and_no_statsmodels_routine(
    small_retailer: Path, tmp_path: Path, experiment: str
):
    """The frequentist readout, SRM, the closed-form Bayes, IV and the sequential bounds take
    their distributions from ``liftlab.stats.distributions`` (scipy.special) and the score
    test of binary metrics from ``liftlab.stats.proportions``: an ``analyze`` that fits no
    model loads no statsmodels routine (1.1 s of CPU), and scipy.stats (0.7 s) only for
    Fisher's exact test, exactly when an effect used it (a rare metric in a small segment: the
    unsubscribes of this small retailer; web-onboarding has none)."""
    out = tmp_path / "out"
    code, importers, err = _importers(
        "analyze",
        str(EXPERIMENTS / f"{experiment}.yaml"),
        "--data",
        str(small_retailer),
        "--out",
        str(out),
    )
    assert code == 0, err
    effects = json.loads((out / "results.json").read_text())["effects"]
    fisher = any(e["method"] == "fisher_exact" for e in effects)
    assert importers == ({"proportions.py:_score_route"} if fisher else set())
    assert fisher == (experiment != "web-onboarding")


def test_the_import_probe_sees_scipy_stats(small_retailer: Path):
    """The probe itself can fail: ``plan`` computes power with scipy.stats."""
    code, importers, err = _importers(
        "plan", str(EXPERIMENTS / "spring-factorial.yaml"), "--data", str(small_retailer)
    )
    assert code == 0, err
    assert importers == {"planning.py:<module>"}
