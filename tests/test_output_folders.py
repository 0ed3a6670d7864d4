"""liftlab never destroys what it did not write: output folders carry an ownership marker; a
folder, file or link that is not liftlab's is refused (exit 1) unless --force, which writes
beside and never over the user's files; leftovers of killed runs cannot block later runs; no
write goes through a symbolic link; the monitor's cache is never trusted after a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liftlab.app.cli import app
from liftlab.core import fsio
from liftlab.core.errors import UserError
from test_daily import DATE, files, fixture_analyze, specs
from test_monitor import assert_same_timeline, make_send, monitor


@pytest.fixture(scope="module")
def analyze_args(tiny_spec_path: Path, tiny_data: Path) -> list[str]:
    return ["analyze", str(tiny_spec_path), "--data", str(tiny_data), "--as-of", "2026-02-20"]


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    return res.exit_code, res.output


def project(root: Path) -> dict[Path, bytes]:
    """A user's project: data, experiments and a report history liftlab did not write."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "orders.csv").write_text("order_id\n1\n")
    (root / "experiments").mkdir()
    (root / "experiments" / "x.yaml").write_text("id: x\n")
    (root / "results.json").write_text('{"mine": true}')
    return files(root)


def test_analyze_into_a_project_folder_is_refused(tmp_path: Path, analyze_args: list[str]):
    before = project(tmp_path)
    code, output = run(*analyze_args, "--out", str(tmp_path))
    assert code == 1 and "was not written by liftlab" in output and "--force" in output
    assert files(tmp_path) == before and sorted(os.listdir(tmp_path)) == [
        "data", "experiments", "results.json"]


def test_forced_analyze_writes_beside_and_never_over(tmp_path: Path, analyze_args: list[str]):
    before = project(tmp_path)
    code, output = run(*analyze_args, "--out", str(tmp_path), "--force")
    assert code == 1 and "results.json" in output and "did not write" in output
    assert files(tmp_path) == before  # refused before writing anything
    (tmp_path / "results.json").unlink()
    del before[Path("results.json")]
    code, output = run(*analyze_args, "--out", str(tmp_path), "--force")
    assert code == 0, output
    after = files(tmp_path)
    assert all(after[k] == v for k, v in before.items())  # the user's files, byte-intact
    marker = fsio.read_marker(tmp_path)
    assert marker and "results.json" in marker["files"] and "data/orders.csv" not in marker[
        "files"]
    code, output = run(*analyze_args, "--out", str(tmp_path))  # still the user's folder
    assert code == 1 and "holds files liftlab did not write (data/orders.csv" in output
    code, output = run(*analyze_args, "--out", str(tmp_path), "--force")  # replaces its own
    assert code == 0, output
    assert all(files(tmp_path)[k] == v for k, v in before.items())


def test_analyze_into_the_report_history_is_refused(tmp_path: Path, analyze_args: list[str]):
    from liftlab.report.daily import run_daily

    run_daily(specs(), DATE, tmp_path / "reports", fixture_analyze)
    before = files(tmp_path / "reports")
    code, output = run(*analyze_args, "--out", str(tmp_path / "reports"))
    assert code == 1 and "'reports' output, not 'analyze'" in output
    assert files(tmp_path / "reports") == before


def test_a_file_as_output_folder_is_refused(tmp_path: Path, analyze_args: list[str]):
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    for extra in ([], ["--force"]):
        code, output = run(*analyze_args, "--out", str(target), *extra)
        assert code == 1 and "is a file, not a folder" in output
    assert os.listdir(tmp_path) == ["notes.txt"] and target.read_text() == "my notes"


def test_analyze_replaces_its_own_output_but_never_a_file_added_to_it(
        tmp_path: Path, analyze_args: list[str]):
    out = tmp_path / "out"
    assert run(*analyze_args, "--out", str(out))[0] == 0
    marker = fsio.read_marker(out)
    assert marker and marker["kind"] == "analyze" and "results.json" in marker["files"]
    mine = out / "tables" / "my-notes.txt"
    mine.write_text("added by a person")
    code, output = run(*analyze_args, "--out", str(out))
    assert code == 1 and "did not write (tables/my-notes.txt)" in output
    assert run(*analyze_args, "--out", str(out), "--force")[0] == 0
    assert mine.read_text() == "added by a person"
    mine.unlink()
    assert run(*analyze_args, "--out", str(out))[0] == 0  # only its own files again: swapped
    assert os.listdir(tmp_path) == ["out"]


def test_pid_named_leftovers_never_block_analyze(tmp_path: Path, analyze_args: list[str]):
    """A folder named like an old-style leftover of this very pid (a container's PID 1 after
    a kill) made every later run fail with exit 2; names are unique now."""
    out = tmp_path / "out"
    assert run(*analyze_args, "--out", str(out))[0] == 0
    stale = tmp_path / f".out.old-{os.getpid()}"
    stale.mkdir()
    (stale / "results.json").write_text("{}")
    code, output = run(*analyze_args, "--out", str(out))
    assert code == 0, output
    assert (stale / "results.json").read_text() == "{}"  # not liftlab's naming: left alone


def test_report_root_not_written_by_liftlab_needs_force(tmp_path: Path):
    from liftlab.report.daily import run_daily

    before = project(tmp_path)
    with pytest.raises(UserError, match="was not written by liftlab"):
        run_daily(specs(), DATE, tmp_path, fixture_analyze)
    assert files(tmp_path) == before
    run_daily(specs(), DATE, tmp_path, fixture_analyze, force=True)
    assert all(files(tmp_path)[k] == v for k, v in before.items())
    assert fsio.read_marker(tmp_path) == {"liftlab": "output", "kind": "reports"}
    assert all(files(tmp_path)[k] == v for k, v in before.items())
    run_daily(specs(), DATE, tmp_path, fixture_analyze)  # adopted: no --force needed now


def test_report_for_a_date_keeps_the_other_dates(tmp_path: Path):
    import datetime as dt

    from liftlab.report.daily import run_daily

    run_daily(specs(), DATE - dt.timedelta(days=1), tmp_path, fixture_analyze)
    history = files(tmp_path / "2026-02-23")
    run_daily(specs(), DATE, tmp_path, fixture_analyze)
    run_daily(specs()[:1], DATE, tmp_path, fixture_analyze)
    assert files(tmp_path / "2026-02-23") == history
    assert not (tmp_path / "2026-02-24" / "experiments" / "web-onboarding").exists()


def test_demo_into_a_foreign_folder_is_refused(tmp_path: Path):
    from liftlab.app.run import run_demo

    before = project(tmp_path)
    with pytest.raises(UserError, match="was not written by liftlab"):
        run_demo(tmp_path, tmp_path / "experiments", 500, 7)
    assert files(tmp_path) == before


def test_demo_data_not_written_by_liftlab_is_never_overwritten(tmp_path: Path):
    from liftlab.app.run import run_demo

    (tmp_path / "demo").mkdir()
    fsio.atomic_write_json(tmp_path / "demo" / fsio.MARKER, {"liftlab": "output",
                                                             "kind": "demo"})
    (tmp_path / "demo" / "data").mkdir()
    (tmp_path / "demo" / "data" / "orders.parquet").write_bytes(b"the user's orders")
    with pytest.raises(UserError, match="was not written by liftlab"):
        run_demo(tmp_path / "demo", tmp_path / "experiments", 500, 7)
    assert (tmp_path / "demo" / "data" / "orders.parquet").read_bytes() == b"the user's orders"


def test_monitor_out_into_an_analyze_folder_but_not_a_foreign_one(tmp_path: Path,
                                                                   tiny_spec_path: Path,
                                                                   tiny_data: Path,
                                                                   analyze_args: list[str]):
    args = ["monitor", str(tiny_spec_path), "--data", str(tiny_data), "--as-of",
            "2026-02-20", "--cache", str(tmp_path / "cache")]
    assert run(*analyze_args, "--out", str(tmp_path / "out"))[0] == 0
    code, output = run(*args, "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert json.loads((tmp_path / "out" / "monitor.json").read_text())["experiment"]
    before = project(tmp_path / "mine")
    code, output = run(*args, "--out", str(tmp_path / "mine"))
    assert code == 1 and "was not written by liftlab" in output
    assert files(tmp_path / "mine") == before
    assert fsio.read_marker(tmp_path / "cache") == {"liftlab": "output", "kind": "cache"}


# -- symbolic links ---------------------------------------------------------------------------
def test_a_linked_lock_is_refused_and_creates_nothing(tmp_path: Path):
    from liftlab.report.daily import run_daily

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_daily(specs(), DATE, tmp_path / "reports", fixture_analyze)
    (tmp_path / "reports" / ".liftlab.lock").unlink()
    (tmp_path / "reports" / ".liftlab.lock").symlink_to(elsewhere / "f")
    with pytest.raises(UserError, match="symbolic link"):
        run_daily(specs(), DATE, tmp_path / "reports", fixture_analyze)
    assert os.listdir(elsewhere) == []


@pytest.mark.parametrize("linked", ["out", "out/assets"])
def test_no_write_goes_through_a_link(tmp_path: Path, analyze_args: list[str], linked: str):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    if linked == "out/assets":  # a forced write into a folder whose assets/ is a link
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "mine.txt").write_text("mine")
    (tmp_path / linked).symlink_to(elsewhere)
    code, output = run(*analyze_args, "--out", str(tmp_path / "out"), "--force")
    assert code == 1 and "symbolic link" in output
    assert os.listdir(elsewhere) == ["keep.txt"]


def test_a_linked_report_date_is_refused(tmp_path: Path):
    from liftlab.report.daily import run_daily

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_daily(specs(), DATE, tmp_path / "reports", fixture_analyze)
    date_dir = tmp_path / "reports" / DATE.isoformat()
    fsio.remove_ours(date_dir)
    date_dir.symlink_to(elsewhere)
    with pytest.raises(UserError, match="symbolic link"):
        run_daily(specs(), DATE, tmp_path / "reports", fixture_analyze)
    assert os.listdir(elsewhere) == [] and date_dir.is_symlink()


# -- the monitor's cache after a crash ----------------------------------------------------------
class Died(BaseException):
    """The process died here."""


def test_a_save_killed_before_its_commit_is_never_trusted(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    """Killed after writing the data files, before the manifest (meta.json before): the
    next readout counted the later hours twice (516 vs 381 responses in the issue)."""
    from liftlab.analyses import monitor as monitor_module

    data = make_send(lift=0.3, n=6000, seed=1)
    monitor(data, 10, tmp_path)
    real = monitor_module.atomic_write_text

    def die_on_commit(path: Path, text: str) -> None:
        raise Died(path)

    monkeypatch.setattr(monitor_module, "atomic_write_text", die_on_commit)
    with pytest.raises(Died):
        monitor(data, 36, tmp_path)
    monkeypatch.setattr(monitor_module, "atomic_write_text", real)
    again = monitor(data, 36, tmp_path)
    assert_same_timeline(again, monitor(data, 36))
    assert again.hours_from_cache == 10


def test_a_damaged_cache_is_ignored_with_a_warning(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture):
    data = make_send(lift=0.3, n=6000, seed=1)
    monitor(data, 10, tmp_path)
    manifest = json.loads((tmp_path / "batch-email" / "manifest.json").read_text())
    cohort = tmp_path / "batch-email" / manifest["files"]["cohort"]["name"]
    cohort.write_bytes(cohort.read_bytes()[:-9] + b"123456789")  # same size, other bytes
    again = monitor(data, 36, tmp_path)
    assert again.hours_from_cache == 0 and "does not match the manifest" in caplog.text
    assert_same_timeline(again, monitor(data, 36))


def test_assign_never_overwrites_a_file_it_did_not_write(tmp_path: Path,
                                                         tiny_spec_path: Path,
                                                         tiny_data: Path):
    args = ["assign", str(tiny_spec_path), "--data", str(tiny_data), "--out"]
    for name in ("a.parquet", "a.csv"):
        mine = tmp_path / name
        mine.write_bytes(b"customer_id\n1\n")
        code, output = run(*args, str(mine))
        assert code == 1 and "is not an assignments table" in output
        assert mine.read_bytes() == b"customer_id\n1\n"
        mine.unlink()
        assert run(*args, str(mine))[0] == 0
        assert run(*args, str(mine))[0] == 0  # its own table: replaced
