"""Faults and hostile input: an output folder that cannot be written gives a clear error (exit
1), experiment ids cannot escape the output folder, filters are never evaluated as Python,
and a global holdout (one blind zone) measures the whole programme."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from liftlab.analysis import analyze
from liftlab.cli import app
from liftlab.data.open import open_engine
from liftlab.errors import SpecError
from liftlab.filters import FilterSyntaxError, parse
from liftlab.spec import Experiment
from liftlab.spec_loader import parse_experiment

from tinydata import SPEC_YAML

UNWRITABLE = Path("/proc/liftlab-cannot-write-here")  # not writable even by root


def test_unwritable_output_is_a_clear_error(tiny_spec_path: Path, tiny_data: Path):
    res = CliRunner().invoke(app, ["analyze", str(tiny_spec_path), "--data", str(tiny_data),
                                   "--out", str(UNWRITABLE / "out")])
    assert res.exit_code == 1, res.output
    assert "cannot" in res.output and "Traceback" not in res.output


def test_report_to_unwritable_folder_is_a_clear_error(tiny_spec_path: Path, tiny_data: Path):
    res = CliRunner().invoke(app, ["report", "--experiments", str(tiny_spec_path.parent),
                                   "--data", str(tiny_data), "--date", "2026-02-24",
                                   "--out", str(UNWRITABLE)])
    assert res.exit_code == 1, res.output
    assert "cannot" in res.output


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "..", "ID", "x y", "/abs"])
def test_experiment_ids_cannot_escape_the_output_folder(bad_id: str):
    with pytest.raises(SpecError):
        parse_experiment(SPEC_YAML.replace("id: tiny-factorial", f"id: '{bad_id}'"))


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "exec('x')",
                                  "segment == 'a'; import os", "lambda: 1",
                                  "(" * 200 + "x" + ")" * 200])
def test_filters_are_parsed_never_evaluated(text: str):
    with pytest.raises(FilterSyntaxError):
        parse(text)


def test_global_holdout_measures_the_programme(tiny_data: Path):
    text = (SPEC_YAML.replace("design: factorial", "")
            .replace("email: {holdout: 0.3, cost_per_contact: 0.01}",
                     "email: {holdout: 0.4, cost_per_contact: 0.01}")
            .replace("id: tiny-factorial", "id: blind-zone\nassignment: hash")
            .replace("start: 2026-02-02", "start: 2026-02-02\ndesign: global_holdout"))
    spec = Experiment.model_validate(yaml.safe_load(text))
    result = analyze(spec, open_engine(tiny_data))
    arms = result.cells.frame.select("arm:email", "arm:mail").unique()
    # one blind zone: a unit held out of one channel is held out of every channel
    blind = arms.filter((arms["arm:email"] == "holdout") | (arms["arm:mail"] == "holdout"))
    assert blind.height == 1 and blind.row(0) == ("holdout", "holdout")
    [programme] = result.to_dict()["contribution"]
    assert programme["programme"] is True and programme["ci"][0] < programme["ci"][1]


def test_a_killed_report_run_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    """Leftovers of a SIGKILLed writer: its staging folder goes; a report it had moved
    aside (killed between the two renames) is put back; the next write replaces it whole."""
    from liftlab.fsio import MARKER, atomic_dir, recover_leftovers

    dest = tmp_path / "2026-02-24"
    staging = tmp_path / ".2026-02-24.liftlab-abc123.tmp"
    staging.mkdir()
    (staging / MARKER).write_text('{"liftlab": "output", "kind": "report-date"}')
    (staging / "half.html").write_text("half")
    moved = tmp_path / ".2026-02-24.liftlab-4242.old"
    moved.mkdir()
    (moved / MARKER).write_text('{"liftlab": "output", "kind": "report-date"}')
    (moved / "index.html").write_text("yesterday's run")
    (tmp_path / ".2026-02-23.liftlab-x.tmp").mkdir()  # another date's writer: not ours
    (tmp_path / ".2026-02-24.liftlab-user.tmp").mkdir()  # no marker, not empty: not ours
    (tmp_path / ".2026-02-24.liftlab-user.tmp" / "keep").write_text("the user's")
    recover_leftovers(dest)
    assert (dest / "index.html").read_text() == "yesterday's run"
    expected = [".2026-02-23.liftlab-x.tmp", ".2026-02-24.liftlab-user.tmp", "2026-02-24"]
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    with atomic_dir(dest, "report-date") as tmp:
        (tmp / "index.html").write_text("today")
    assert (dest / "index.html").read_text() == "today"
    assert sorted(p.name for p in tmp_path.iterdir()) == expected


def test_recovery_keeps_a_complete_report(tmp_path: Path) -> None:
    from liftlab.fsio import recover_leftovers

    dest = tmp_path / "run"
    dest.mkdir()
    (dest / "index.html").write_text("complete")
    old = tmp_path / ".run.liftlab-1.old"
    old.mkdir()
    recover_leftovers(dest)
    assert (dest / "index.html").read_text() == "complete"
    assert not old.exists()
    recover_leftovers(tmp_path / "missing" / "run")  # nothing there yet: nothing to do
