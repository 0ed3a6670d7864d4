"""The daily run: which experiments are on the report, a failing one isolated, byte-identical
reruns, atomic output (an interrupted or SIGKILLed run leaves the previous report whole) and
concurrent runs serialised by the lock."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from liftlab.core.errors import SpecError
from liftlab.report.daily import is_active, run_daily
from liftlab.spec.models import Experiment

from tinydata import SPEC_YAML

FIXTURES = Path(__file__).parent / "fixtures"
DATE = dt.date(2026, 2, 24)
IDS = ("email-flash", "spring-factorial", "web-onboarding")


def spec(id_: str, start: dt.date = dt.date(2026, 2, 2),
         end: dt.date = dt.date(2026, 2, 23)) -> Experiment:
    base = Experiment.model_validate(yaml.safe_load(SPEC_YAML))
    return base.model_copy(update={"id": id_, "name": f"Experiment {id_}", "start": start,
                                   "end": end})


def fixture_analyze(spec: Experiment, as_of: dt.datetime) -> dict:
    """The stored results of the demo experiments; anything else fails like a bug would."""
    path = FIXTURES / f"{spec.id}.json"
    if not path.exists():
        raise RuntimeError(f"disk on fire while reading {spec.id}")
    return json.loads(path.read_text())


def specs() -> list[tuple[Path, Experiment | SpecError]]:
    return [(Path(f"{i}.yaml"), spec(i)) for i in IDS]


def files(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_active_window():
    s = spec("x", dt.date(2026, 1, 5), dt.date(2026, 2, 2))
    assert not is_active(s, dt.date(2026, 1, 4))
    assert is_active(s, dt.date(2026, 1, 5)) and is_active(s, dt.date(2026, 3, 2))
    assert not is_active(s, dt.date(2026, 3, 3))  # 29 days after the end: final readout done


def test_run_writes_every_page_and_only_active_experiments(tmp_path: Path):
    later = (Path("future.yaml"), spec("future-one", dt.date(2026, 3, 1), dt.date(2026, 3, 9)))
    run = run_daily([*specs(), later], DATE, tmp_path, fixture_analyze)
    assert run.folder == tmp_path / "2026-02-24"
    assert [o.id for o in run.outcomes] == list(IDS)
    got = files(run.folder)
    for i in IDS:
        assert Path(f"experiments/{i}/index.html") in got
        assert json.loads(got[Path(f"experiments/{i}/results.json")]) == \
            fixture_analyze(spec(i), dt.datetime.now(dt.UTC))
    for name in ("index.html", "summary.json", "summary.md", "assets/plotly.min.js",
                 "tables/portfolio-by-channel.csv"):
        assert Path(name) in got, name
    assert "future-one" not in got[Path("index.html")].decode()
    # every relative link of every page resolves to a written file
    for page in [p for p in got if p.suffix == ".html"]:
        for link in re.findall(r'(?:href|src)="([^"#:]+)"', got[page].decode()):
            assert (run.folder / page.parent / link).resolve().exists(), (page, link)


def test_a_failing_experiment_is_isolated_and_listed(tmp_path: Path):
    broken = [(Path("broken.yaml"), spec("broken-one")),
              (Path("bad.yaml"), SpecError("bad.yaml:3:1: unknown key 'chanels'"))]
    run = run_daily([*specs(), *broken], DATE, tmp_path, fixture_analyze)
    index = (run.folder / "index.html").read_text()
    assert "disk on fire while reading broken-one" in index
    assert "unknown key &#39;chanels&#39;" in index
    for i in IDS:
        assert (run.folder / "experiments" / i / "index.html").exists()
    assert not (run.folder / "experiments" / "broken-one").exists()
    summary = json.loads((run.folder / "summary.json").read_text())
    status = {e["experiment"]: e["status"] for e in summary["experiments"]}
    assert status["broken-one"] == "failed" and status["bad"] == "failed"
    assert {status[i] for i in IDS} <= {"running", "decided", "needs attention"}
    assert (run.folder / "summary.md").read_text().count("FAILED") == 2


def test_summary_carries_the_primary_lift_of_each_experiment(tmp_path: Path):
    run = run_daily(specs(), DATE, tmp_path, fixture_analyze)
    summary = json.loads((run.folder / "summary.json").read_text())
    for item in summary["experiments"]:
        r = fixture_analyze(spec(item["experiment"]), dt.datetime.now(dt.UTC))
        primary = next(e for e in r["effects"] if e["segment"] is None
                       and e["metric"] == r["primary_metric"])
        assert item["lift_rel"] == primary["lift_rel"]
        assert item["lift_rel_ci"] == primary["lift_rel_ci"]
        assert item["roi"] == primary["roi"]
        assert item["decision"] == ((r.get("sequential") or {}).get("decision") or "continue")


def test_rerun_gives_byte_identical_files(tmp_path: Path):
    first = files(run_daily(specs(), DATE, tmp_path / "one", fixture_analyze).folder)
    second = files(run_daily(specs(), DATE, tmp_path / "two", fixture_analyze).folder)
    assert first.keys() == second.keys()
    for name, data in first.items():
        assert data == second[name], name


def test_unsafe_ids_never_become_paths(tmp_path: Path):
    evil = spec("ok-id").model_copy(update={"id": "../../escape"})
    run = run_daily([(Path("evil.yaml"), evil)], DATE, tmp_path / "out", fixture_analyze)
    assert run.outcomes[0].error and "not a safe file name" in run.outcomes[0].error
    assert not (tmp_path / "escape").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".liftlab-output", ".liftlab.lock", "2026-02-24"]


def test_keyboard_interrupt_keeps_the_previous_report(tmp_path: Path):
    run = run_daily(specs(), DATE, tmp_path, fixture_analyze)
    before = files(run.folder)

    def interrupted(s: Experiment, as_of: dt.datetime) -> dict:
        if s.id == "spring-factorial":
            raise KeyboardInterrupt
        return fixture_analyze(s, as_of)

    with pytest.raises(KeyboardInterrupt):
        run_daily(specs(), DATE, tmp_path, interrupted)
    assert files(run.folder) == before


def test_failure_while_writing_keeps_the_previous_report(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    from liftlab.report import daily

    run = run_daily(specs(), DATE, tmp_path, fixture_analyze)
    before = files(run.folder)

    def half_written(*args: object, **kwargs: object) -> str:
        raise OSError("no space left on device")

    monkeypatch.setattr(daily, "render_index", half_written)  # pages written, index fails
    with pytest.raises(OSError):
        run_daily(specs(), DATE, tmp_path, fixture_analyze)
    assert files(run.folder) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


KILLED_RUN = textwrap.dedent("""
    import datetime as dt, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import test_daily
    from liftlab.report import daily
    real = daily.atomic_write_text
    calls = []

    def slow_write(path, text):
        real(path, text)
        calls.append(path)
        if len(calls) == 3:  # three files of the new report written, more to come
            print("WRITING", flush=True)
            time.sleep(60)

    daily.atomic_write_text = slow_write
    daily.run_daily(test_daily.specs(), test_daily.DATE, Path({out!r}),
                    test_daily.fixture_analyze)
""")


def test_sigkill_midway_leaves_the_previous_report_whole(tmp_path: Path):
    run = run_daily(specs(), DATE, tmp_path, fixture_analyze)
    before = files(run.folder)
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "WRITING", proc.stderr.read()
        leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert leftovers, "the new report should be half-built in a temporary folder"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert files(run.folder) == before
    # the next run is not blocked by the dead one (the lock died with it)
    again = run_daily(specs(), DATE, tmp_path, fixture_analyze)
    assert files(again.folder) == before


TIMED_RUN = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import test_daily
    from liftlab.report import daily
    real = daily.write_run

    def logged(run, folder):  # the writing phase, slowed and logged (enter, exit)
        with open({log!r}, "a") as fh:
            fh.write(f"enter {{os.getpid()}} {{time.time()}}\\n")
        time.sleep(0.6)
        real(run, folder)
        with open({log!r}, "a") as fh:
            fh.write(f"exit {{os.getpid()}} {{time.time()}}\\n")

    daily.write_run = logged
    daily.run_daily(test_daily.specs()[:1], test_daily.DATE, Path({out!r}),
                    test_daily.fixture_analyze)
""")


def test_concurrent_runs_are_serialised(tmp_path: Path):
    log = tmp_path / "log.txt"
    script = TIMED_RUN.format(tests=str(Path(__file__).parent), log=str(log),
                              out=str(tmp_path / "out"))
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    events = [line.split() for line in log.read_text().splitlines()]
    assert [e[0] for e in events] == ["enter", "exit", "enter", "exit"]  # never interleaved
    assert events[0][1] == events[1][1] and events[2][1] == events[3][1]
    assert events[0][1] != events[2][1]
    folder = tmp_path / "out" / "2026-02-24"
    assert (folder / "index.html").exists()
    assert [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".2026")] == []


def test_reruns_for_the_same_date_are_byte_identical(tmp_path: Path):
    """Two report runs and two analyze runs on the same data, each its own process, write the
    same bytes (float sums once depended on how polars' threads finished: the landing table,
    the monitor's timeline and the multichannel page differed in their last digits)."""
    from liftlab.app.synth import generate

    root = Path(__file__).parents[1]
    data = tmp_path / "data"
    generate(data, 30_000, 7)

    def cli(*args: object) -> None:
        done = subprocess.run([sys.executable, "-m", "liftlab.app.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr

    for run in ("a", "b"):
        cli("report", "--experiments", root / "experiments", "--data", data, "--date",
            "2026-02-24", "--out", tmp_path / run / "reports")
        cli("analyze", root / "experiments" / "spring-factorial.yaml", "--data", data,
            "--out", tmp_path / run / "analysis")
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert len(a) > 20 and any(p.name == "multichannel.json" for p in a)
    assert {p: a[p] for p in a if a[p] != b.get(p)} == {}


def test_summary_md_shows_hostile_names_as_text(tmp_path: Path):
    hostile = '<img src=x onerror=alert(1)> **big** [click](javascript:alert(1))\n# heading'
    named = [(Path(f"{i}.yaml"), spec(i).model_copy(update={"name": hostile})) for i in IDS]
    broken = spec("broken-one").model_copy(update={"name": hostile})
    run = run_daily([*named, (Path("broken.yaml"), broken)], DATE, tmp_path, fixture_analyze)
    md = (run.folder / "summary.md").read_text()
    assert "<img" not in md and "**big**" not in md and "[click](" not in md
    assert "\n# heading" not in md
    assert md.count(r"&lt;img src=x onerror=alert\(1\)&gt; \*\*big\*\* \[click\]") == 4
    assert md.count("\n- ") == 4  # one item per experiment: no injected list items
