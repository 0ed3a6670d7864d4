"""The daily report shares table passes between its experiments (engines/shared.py, issue 23):
each experiment's results.json is the one it gets analysed alone, without sharing, to the
byte."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from layouts import CANONICAL, Layout, base_tables, write_layout
from liftlab.app import run
from liftlab.engines import shared
from liftlab.engines.dense import Unexpected

EXPERIMENT = Path(__file__).parent.parent / "experiments" / "spring-factorial.yaml"
DATE = dt.date(2026, 2, 24)
IDS = ("spring-a", "spring-b")


def _experiments(folder: Path) -> Path:
    """The spring factorial under two ids, arms by the stable hash of each id, and once
    more under its own id (arms from the assignments table, when the layout has one)."""
    folder.mkdir(parents=True)
    text = EXPERIMENT.read_text()
    (folder / "spring-factorial.yaml").write_text(text)
    for i in IDS:
        (folder / f"{i}.yaml").write_text(
            text.replace("id: spring-factorial", f"id: {i}\nassignment: hash", 1)
        )
    return folder


@contextlib.contextmanager
def _plain(budget: int = 0) -> Iterator[None]:
    """No sharing: every pass reads its table."""
    yield


@pytest.mark.parametrize(
    "layout", [CANONICAL, Layout(customer_id="text")], ids=["int-ids", "text-ids"]
)
def test_shared_report_equals_each_experiment_alone(
    tmp_path: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_layout(layout, base_tables(tmp_path / "base"), tmp_path / "data")
    if layout.customer_id == "text":  # contacts of no experiment in particular: shared too
        contacts = pl.read_parquet(data / "contacts.parquet").drop("experiment_id")
        contacts.write_parquet(data / "contacts.parquet")
    folder = _experiments(tmp_path / "experiments")
    used: list[shared.SharedReads] = []

    @contextlib.contextmanager
    def recorded(budget: int = shared.SHARED_BYTES) -> Iterator[shared.SharedReads]:
        with shared.shared_reads(budget) as reads:
            used.append(reads)
            yield reads

    monkeypatch.setattr(run, "shared_reads", recorded)
    together = run.run_report(folder, data, DATE, tmp_path / "together")
    assert [o.error for o in together.outcomes] == [None] * 3
    assert used[0].copies > 0 and used[0].passes > 0  # later experiments share
    monkeypatch.setattr(run, "shared_reads", _plain)
    for o in together.outcomes:
        alone = tmp_path / "alone" / o.id
        alone.mkdir(parents=True)
        (alone / f"{o.id}.yaml").write_text(Path(o.source).read_text())
        run.run_report(alone, data, DATE, tmp_path / "out" / o.id)
        name = f"{DATE}/experiments/{o.id}/results.json"
        together_bytes = (tmp_path / "together" / name).read_bytes()
        alone_bytes = (tmp_path / "out" / o.id / name).read_bytes()
        if layout.customer_id == "int":
            assert together_bytes == alone_bytes, o.id
        else:  # the hash route sums in thread order: two plain runs differ in the last bits
            _same(json.loads(together_bytes), json.loads(alone_bytes), o.id)


def _same(a: Any, b: Any, where: str) -> None:
    """Equal field by field; floats to 1e-9 relative."""
    if isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12, nan_ok=True), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_a_block_is_the_pass_and_a_stopped_pass_keeps_nothing() -> None:
    """A shared block is the pass's own array; a pass that stops leaves nothing to share;
    over the budget the least recently used block goes."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(50, 2))

    def add() -> np.ndarray:
        return values.copy()

    def stops() -> np.ndarray:
        raise Unexpected

    def nbytes(a: np.ndarray) -> int:
        return int(a.nbytes)

    with shared.shared_reads(budget=2 * values.nbytes) as reads:
        first = shared.shared_result("src", "a", add, nbytes)
        assert shared.shared_result("src", "a", add, nbytes) is first
        assert (reads.passes, reads.copies) == (1, 1)
        assert np.array_equal(first, values)
        with pytest.raises(Unexpected):
            shared.shared_result("src", "b", stops, nbytes)
        shared.shared_result("src", "b", add, nbytes)
        shared.shared_result("other", "a", add, nbytes)  # evicts ("src", "a")
        assert shared.shared_result("src", "a", add, nbytes) is not first
        assert (reads.passes, reads.copies) == (4, 1)
    assert shared.shared_result("src", "a", add, nbytes) is not first  # outside: no sharing
