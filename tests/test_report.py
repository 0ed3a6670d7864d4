"""Pages and the daily run: escaping, determinism, missing sections, atomic output, a broken
experiment isolated, concurrent runs serialised."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from liftlab.errors import SpecError
from liftlab.report.daily import run_daily
from liftlab.report.pages import render_experiment
from liftlab.spec import Experiment

from tinydata import SPEC_YAML

DATE = dt.date(2026, 2, 24)
HOSTILE = '<script>alert("x")</script>'


def _spec(**update) -> Experiment:
    return Experiment.model_validate(yaml.safe_load(SPEC_YAML)).model_copy(update=update)


@pytest.fixture(scope="module")
def results(tiny_data: Path) -> dict:
    from liftlab.analysis import analyze
    from liftlab.data.open import open_engine

    return analyze(_spec(name=HOSTILE), open_engine(tiny_data)).to_dict()


def test_hostile_strings_are_escaped(results: dict, tmp_path: Path):
    html = render_experiment(results, tmp_path)
    assert HOSTILE not in html
    assert "&lt;script&gt;" in html


def test_rendering_is_deterministic(results: dict, tmp_path: Path):
    assert render_experiment(results, tmp_path) == render_experiment(results, tmp_path)


def test_missing_sections_render(results: dict, tmp_path: Path):
    bare = {k: v for k, v in results.items()
            if k not in ("contribution", "interactions", "landing", "sequential")}
    html = render_experiment(bare, tmp_path)
    assert ("Scorecard" in html and "No money figures" not in html) or "Money" in html


def _analyze_ok(results: dict):
    def analyze(spec: Experiment, as_of: dt.datetime) -> dict:
        if spec.id == "broken":
            raise RuntimeError("disk on fire")
        return {**results, "experiment": spec.id, "name": spec.title}
    return analyze


def test_daily_run_isolates_a_failing_experiment(results: dict, tmp_path: Path):
    specs = [(Path("a.yaml"), _spec(id="good-one")), (Path("b.yaml"), _spec(id="broken")),
             (Path("c.yaml"), SpecError("c.yaml:3:1: bad key"))]
    run = run_daily(specs, DATE, tmp_path, _analyze_ok(results))
    index = (run.folder / "index.html").read_text()
    assert "good-one" in index and "broken" in index and "disk on fire" in index
    assert (run.folder / "experiments" / "good-one" / "index.html").exists()
    summary = json.loads((run.folder / "summary.json").read_text())
    status = {e["experiment"]: e["status"] for e in summary["experiments"]}
    assert status["broken"] == "failed" and status["c"] == "failed"
    assert status["good-one"] != "failed"
    assert (run.folder / "summary.md").read_text().count("FAILED") == 2


def test_rerun_gives_identical_files(results: dict, tmp_path: Path):
    specs = [(Path("a.yaml"), _spec(id="good-one"))]
    first = run_daily(specs, DATE, tmp_path / "one", _analyze_ok(results))
    second = run_daily(specs, DATE, tmp_path / "two", _analyze_ok(results))
    files = sorted(p.relative_to(first.folder) for p in first.folder.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second.folder) for p in second.folder.rglob("*")
                           if p.is_file())
    for f in files:
        assert (first.folder / f).read_bytes() == (second.folder / f).read_bytes(), f


def test_interrupted_run_keeps_the_previous_report(results: dict, tmp_path: Path):
    specs = [(Path("a.yaml"), _spec(id="good-one")), (Path("b.yaml"), _spec(id="other"))]
    run = run_daily(specs, DATE, tmp_path, _analyze_ok(results))
    before = {p: p.read_bytes() for p in run.folder.rglob("*") if p.is_file()}

    def interrupted(spec: Experiment, as_of: dt.datetime) -> dict:
        if spec.id == "other":
            raise KeyboardInterrupt
        return _analyze_ok(results)(spec, as_of)

    with pytest.raises(KeyboardInterrupt):
        run_daily(specs, DATE, tmp_path, interrupted)
    after = {p: p.read_bytes() for p in run.folder.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_killed_process_leaves_the_previous_report_whole(tiny_data: Path, tiny_spec_path: Path,
                                                         tmp_path: Path):
    """SIGKILL a real `liftlab report` while it writes; the previous report stays whole."""
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "tiny.yaml").write_text(tiny_spec_path.read_text())
    cmd = [sys.executable, "-m", "liftlab.cli", "report", "--experiments", str(exp),
           "--data", str(tiny_data), "--date", "2026-02-24", "--out", str(tmp_path / "out")]
    subprocess.run(cmd, check=True, capture_output=True)
    folder = tmp_path / "out" / "2026-02-24"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    for delay in (0.5, 1.5, 2.5):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        assert after == before


def _hold_lock(path: str, ready, release) -> None:
    from liftlab.fsio import exclusive_lock

    with exclusive_lock(Path(path)):
        ready.set()
        release.wait(10)


def test_concurrent_runs_are_serialised(tmp_path: Path):
    from liftlab.errors import UserError
    from liftlab.fsio import exclusive_lock

    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    lock = tmp_path / ".liftlab.lock"
    proc = ctx.Process(target=_hold_lock, args=(str(lock), ready, release))
    proc.start()
    assert ready.wait(10)
    with pytest.raises(UserError, match="another liftlab run"), exclusive_lock(lock, wait=False):
        pass
    release.set()
    proc.join(10)
    with exclusive_lock(lock, wait=False):
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_output_is_a_clear_error(results: dict, tmp_path: Path):
    from liftlab.errors import UserError

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(UserError, match="cannot"):
        run_daily([(Path("a.yaml"), _spec(id="good-one"))], DATE, ro, _analyze_ok(results))
