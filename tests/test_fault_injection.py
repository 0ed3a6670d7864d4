"""Fault injection on every write path: ``analyze``, the daily ``report`` and the monitor's
cache are killed, or fail with a full disk / file-size limit / read-only file system /
refused permission, at their file-system operations (see faultkit.py). After each fault the
previous outputs are byte-intact (or the new output is complete: never a mix), and the next
run succeeds with the output of a clean run.

The monitor's cache is failed at every operation with every fault. ``analyze`` and ``report``
replay the exact files of a clean run (the same writes in the same folders, without the
seconds of rendering): a hundred operations or more, most of them alike (files written into
the staging folder), so they are killed at every operation of the first and last EDGE and at
points drawn with SEEDS between, and fail with each errno at points drawn with SEEDS. The
real ``analyze`` is also killed at drawn points, SIGKILLed as a subprocess, and run under a
file-size limit. FAULT_POINTS counts the faults exercised (printed with ``pytest -s``)."""

from __future__ import annotations

import datetime as dt
import errno
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faultkit import Killed, count_operations, inject
from liftlab.core import fsio
from liftlab.core.errors import UserError
from test_daily import files, fixture_analyze, specs
from test_monitor import assert_same_timeline, make_send, monitor

FAULT_POINTS: dict[str, int] = {}
SEEDS = (0, 1, 2)
ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES)
EDGE = 15
AS_OF_OLD = dt.datetime(2026, 2, 16, tzinfo=dt.UTC)
AS_OF_NEW = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)
Tree = dict[Path, bytes] | None


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    yield
    print("\nfault points exercised:", FAULT_POINTS, "total", sum(FAULT_POINTS.values()),
          "seeds", SEEDS)


@pytest.fixture(params=["exchange", "two-renames"])
def swap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of swapping a folder in: renameat2 (Linux) and the portable two renames."""
    if request.param == "two-renames":
        monkeypatch.setattr(fsio, "_exchange", lambda a, b: False)
    return str(request.param)


def tree(folder: Path) -> Tree:
    return files(folder) if folder.is_dir() else None


def survive(run: Callable[[], object], at: int, code: int | None) -> None:
    """Run with the fault at operation ``at``: killed, or a clear UserError for an errno
    (a failure while cleaning up after the commit may pass unnoticed)."""
    with inject(at, code):
        try:
            run()
        except Killed:
            assert code is None
        except UserError as exc:
            assert code is not None, exc
            assert "cannot" in str(exc)


def faults(total: int, every: bool) -> list[tuple[int, int | None]]:
    """Where to fail: with ``every``, each fault at every operation. Otherwise a kill at
    every operation of the first and last EDGE (recovery, staging folder and marker; the
    swap and the clean-up) and at points drawn with each seed in the files between (all
    alike: writes into the staging folder), and each errno at points drawn with each seed."""
    if every:
        return [(at, code) for code in (None, *ERRNOS) for at in range(1, total + 1)]
    kills = {*range(1, min(EDGE, total) + 1), *range(max(1, total - EDGE + 1), total + 1)}
    points: list[tuple[int, int | None]] = []
    for seed in SEEDS:
        rng = random.Random(seed)
        kills |= {rng.randint(1, total) for _ in range(4)}
        points += [(rng.randint(1, total), code) for code in ERRNOS]
    return [(at, None) for at in sorted(kills)] + points


def each_fault(name: str, run: Callable[[], object], reset: Callable[[], None],
               check: Callable[[], None], every: bool = False) -> None:
    reset()
    total = count_operations(run)
    assert total > 5
    points = faults(total, every)
    for at, code in points:
        reset()
        survive(run, at, code)
        try:
            check()
        except AssertionError as exc:
            raise AssertionError(f"{name}: fault {code} at operation {at}/{total}") from exc
    FAULT_POINTS[name] = FAULT_POINTS.get(name, 0) + len(points)


def replay(source: Path) -> Callable[..., None]:
    """A writer of the files of a clean run (``fn(..., folder)``): every file, written the
    way liftlab writes it, into the folder it is given."""
    content = {rel: data for rel, data in files(source).items() if rel.name != fsio.MARKER}

    def write(*args: Any) -> None:
        for rel, data in sorted(content.items()):
            fsio.atomic_write_bytes(args[-1] / rel, data)

    return write


def shrink_assets(*outputs: Path) -> None:
    """plotly.min.js (4.6 MB) as a few bytes: the same writes, without copying megabytes
    hundreds of times."""
    for out in outputs:
        for js in out.rglob("plotly.min.js"):
            js.write_bytes(b"/* plotly */")


def copier(template: Path, work: Path) -> Callable[[], None]:
    def reset() -> None:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(template, work, symlinks=True)

    return reset


# -- analyze --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyses(tiny_spec_path: Path, tiny_data: Path) -> dict[dt.datetime, Any]:
    from liftlab.app.run import analyze_file

    return {t: analyze_file(tiny_spec_path, tiny_data, t) for t in (AS_OF_OLD, AS_OF_NEW)}


@pytest.fixture
def analyze(analyses: dict[dt.datetime, Any], monkeypatch: pytest.MonkeyPatch
            ) -> Callable[[Path, dt.datetime], None]:
    """``liftlab analyze --out ROOT/out`` with the analysis done once per as-of."""
    from liftlab.app import run as run_module

    monkeypatch.setattr(run_module, "analyze_file", lambda e, d, as_of, engine: analyses[as_of])

    def go(root: Path, as_of: dt.datetime) -> None:
        run_module.analyze_to_folder(Path("x.yaml"), "data", as_of, root / "out")

    return go


def analyze_check(work: Path, old: Tree, new: Tree, rerun: Callable[[], None]
                  ) -> Callable[[], None]:
    def check() -> None:
        fsio.recover_leftovers(work / "out")  # what the next run does first, under its lock
        assert tree(work / "out") in (old, new)
        rerun()
        assert tree(work / "out") == new
        assert [p.name for p in work.iterdir()] == ["out"]  # no leftovers

    return check


def test_analyze_killed_or_failing_anywhere(tmp_path: Path, analyze: Any, swap: str,
                                            monkeypatch: pytest.MonkeyPatch):
    from liftlab.app import run as run_module

    template, clean, work = tmp_path / "template", tmp_path / "clean", tmp_path / "work"
    analyze(template, AS_OF_OLD)
    analyze(clean, AS_OF_NEW)
    shrink_assets(template, clean)
    old, new = tree(template / "out"), tree(clean / "out")
    assert old != new
    monkeypatch.setattr(run_module, "write_analysis", replay(clean / "out"))

    def run() -> None:
        analyze(work, AS_OF_NEW)

    each_fault(f"analyze, replayed ({swap})", run, copier(template, work),
               analyze_check(work, old, new, run))


def test_real_analyze_killed_at_drawn_points(tmp_path: Path, analyze: Any):
    template, clean, work = tmp_path / "template", tmp_path / "clean", tmp_path / "work"
    analyze(template, AS_OF_OLD)
    analyze(clean, AS_OF_NEW)
    old, new = tree(template / "out"), tree(clean / "out")
    reset = copier(template, work)

    def run() -> None:
        analyze(work, AS_OF_NEW)

    reset()
    total = count_operations(run)
    check = analyze_check(work, old, new, run)
    for seed in SEEDS:
        reset()
        survive(run, random.Random(seed).randint(1, total), None)
        check()
    FAULT_POINTS["analyze, real"] = len(SEEDS)


# -- the daily report -----------------------------------------------------------------------
def test_report_killed_or_failing_anywhere(tmp_path: Path, swap: str,
                                           monkeypatch: pytest.MonkeyPatch):
    from liftlab.report import daily

    yesterday, today = dt.date(2026, 2, 23), dt.date(2026, 2, 24)

    def report(root: Path, date: dt.date, which: list[Any]) -> None:
        daily.run_daily(which, date, root, fixture_analyze)

    template, clean, work = tmp_path / "template", tmp_path / "clean", tmp_path / "work"
    report(template, yesterday, specs()[:1])
    report(template, today, specs()[1:2])
    report(clean, today, specs()[:1])
    shrink_assets(template, clean)
    history, old, new = (tree(template / yesterday.isoformat()),
                         tree(template / today.isoformat()), tree(clean / today.isoformat()))
    assert old != new
    monkeypatch.setattr(daily, "write_run", replay(clean / today.isoformat()))

    def run() -> None:
        report(work, today, specs()[:1])

    def check() -> None:
        assert tree(work / yesterday.isoformat()) == history  # other dates: never touched
        fsio.recover_leftovers(work / today.isoformat())
        assert tree(work / today.isoformat()) in (old, new)
        run()
        assert tree(work / today.isoformat()) == new
        assert tree(work / yesterday.isoformat()) == history
        assert sorted(p.name for p in work.iterdir()) == [
            ".liftlab-output", ".liftlab.lock", yesterday.isoformat(), today.isoformat()]

    each_fault(f"report, replayed ({swap})", run, copier(template, work), check)


# -- the monitor's cache --------------------------------------------------------------------
def test_monitor_cache_killed_or_failing_anywhere(tmp_path: Path):
    data = make_send(lift=0.3, n=6000, seed=1)
    template, work = tmp_path / "template", tmp_path / "work"
    monitor(data, 10, template)
    fresh, later = monitor(data, 36), monitor(data, 40)

    def check() -> None:
        again = monitor(data, 36, work)
        assert_same_timeline(again, fresh)  # never double counts what a dead save left
        assert again.hours_from_cache in (10, 36)
        assert_same_timeline(monitor(data, 40, work), later)
        names = sorted(p.name for p in (work / "batch-email").iterdir())
        assert len(names) == 3 and names[2] == "manifest.json", names  # others' files gone

    each_fault("monitor --cache", lambda: monitor(data, 36, work), copier(template, work),
               check, every=True)


# -- real processes: SIGKILL at a random moment, a file-size limit --------------------------
def cli(*args: str, limit: int | None = None) -> subprocess.Popen[bytes]:
    def set_limit() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen([sys.executable, "-m", "liftlab.app.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=set_limit)


def test_sigkilled_analyze_leaves_the_previous_output(tmp_path: Path, tiny_spec_path: Path,
                                                     tiny_data: Path):
    """The real command, SIGKILLed at a moment drawn with each seed (within a run's
    duration): the output is the previous one or the new one, and the next run cleans up."""
    args = ("analyze", str(tiny_spec_path), "--data", str(tiny_data), "--out",
            str(tmp_path / "out"), "--as-of", "2026-02-20")
    start = time.monotonic()
    assert cli(*args[:-1], "2026-02-16").wait() == 0
    duration = time.monotonic() - start
    before = tree(tmp_path / "out")
    states = []
    for seed in SEEDS[:2]:
        proc = cli(*args)
        time.sleep(random.Random(seed).uniform(0.3, 1.0) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states.append(tree(tmp_path / "out"))
    assert cli(*args).wait() == 0
    new = tree(tmp_path / "out")
    assert new is not None and before is not None and before != new
    for state in states:
        assert state is not None
        assert state.keys() in (before.keys(), new.keys())
        assert state[Path("results.json")] in (before[Path("results.json")],
                                               new[Path("results.json")])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    FAULT_POINTS["analyze, SIGKILL"] = len(states)


def test_file_size_limit_is_a_clear_error_and_keeps_the_output(tmp_path: Path,
                                                               tiny_spec_path: Path,
                                                               tiny_data: Path):
    """plotly.min.js (4.6 MB) exceeds a 1 MB limit: EFBIG, not a SIGXFSZ death or exit 2."""
    args = ("analyze", str(tiny_spec_path), "--data", str(tiny_data), "--out",
            str(tmp_path / "out"), "--as-of", "2026-02-16")
    assert cli(*args).wait() == 0
    before = tree(tmp_path / "out")
    proc = cli(*args[:-1], "2026-02-20", limit=1 << 20)
    _, stderr = proc.communicate()
    assert proc.returncode == 1, stderr
    assert b"file-size limit" in stderr and b"Traceback" not in stderr
    assert tree(tmp_path / "out") == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    FAULT_POINTS["analyze, RLIMIT_FSIZE"] = 1


def _can_mount_read_only() -> bool:
    try:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind / /mnt && "
                                "mount -o remount,ro,bind /mnt"], capture_output=True,
                               timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(),
                    reason="needs a private mount namespace (unshare -m) for a read-only mount")
def test_read_only_output_is_a_clear_error_and_keeps_the_output(
        tmp_path: Path, tiny_spec_path: Path, tiny_data: Path):
    """The output's file system mounted read-only (EROFS, a real one: root ignores mode
    bits) for analyze and the daily report: exit 1 with a message, the output unchanged."""
    out = tmp_path / "out"
    args = ["analyze", str(tiny_spec_path), "--data", str(tiny_data), "--out", str(out / "a"),
            "--as-of", "2026-02-16"]
    assert cli(*args).wait() == 0
    report = ["report", "--experiments", str(tiny_spec_path.parent), "--data", str(tiny_data),
              "--date", "2026-02-24", "--out", str(out / "reports")]
    assert cli(*report).wait() == 0
    before = tree(out)
    for command in ([*args[:-1], "2026-02-20"], report):
        where = shlex.quote(str(out))
        script = (f"mount --bind {where} {where} && mount -o remount,ro,bind {where} && exec "
                  + shlex.join([sys.executable, "-m", "liftlab.app.cli", *command]))
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True)
        assert proc.returncode == 1, proc.stderr
        assert b"read-only" in proc.stderr and b"Traceback" not in proc.stderr
        assert tree(out) == before
    FAULT_POINTS["analyze and report, read-only mount"] = 2
