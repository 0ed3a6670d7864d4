"""A daily report shares whole results between its experiments (engines/shared.py,
``shared_result``: the monitor's per-unit pass per table, last-touch credit, a table's latest
time; issue 23): each experiment's results.json is, to the byte, the one it gets analysed
alone, also when its neighbours differ in exposures, response window or population, so that
nothing may be shared wrongly."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from layouts import CANONICAL, Layout, base_tables, write_layout
from liftlab.app import run
from liftlab.engines import polars_monitor as pm
from liftlab.engines import shared
from liftlab.engines.open import open_engine
from liftlab.report import daily
from liftlab.spec.loader import load_experiment
from liftlab.spec.models import Experiment

EXPERIMENT = Path(__file__).parent.parent / "experiments" / "spring-factorial.yaml"
DATE = dt.date(2026, 2, 24)


def _variant(
    text: str,
    new_id: str,
    *,
    hashed: bool = True,
    window: int | None = None,
    where: str | None = None,
) -> str:
    """The spring factorial under ``new_id``: arms by the stable hash of the id; another
    response window; another population filter."""
    out = text.replace(
        "id: spring-factorial", f"id: {new_id}" + ("\nassignment: hash" if hashed else ""), 1
    )
    if window is not None:
        out = out.replace(
            "monitoring: {sequential: true,",
            f"monitoring: {{response_window_hours: {window}, sequential: true,",
            1,
        )
    if where is not None:
        out = out.replace('where: "optin_email"', f'where: "{where}"', 1)
    assert out != text
    return out


def _experiments(folder: Path, own: bool) -> list[str]:
    """Two experiments that share everything but their arms; one with another response
    window; one with another population; with ``own``, the spring factorial under its own id
    (arms and exposures from its own assignments and contacts)."""
    folder.mkdir(parents=True)
    text = EXPERIMENT.read_text()
    assert "monitoring: {sequential: true," in text and 'where: "optin_email"' in text
    files = {
        "spring-a": _variant(text, "spring-a"),
        "spring-b": _variant(text, "spring-b"),
        "spring-window": _variant(text, "spring-window", window=48),
        "spring-sms": _variant(text, "spring-sms", where="optin_email and optin_sms"),
    }
    if own:  # arms from the assignments table, its own contacts (when they name it)
        files["spring-factorial"] = text
    for name, body in files.items():
        (folder / f"{name}.yaml").write_text(body)
    return sorted(files)


@contextlib.contextmanager
def _plain(budget: int = 0) -> Iterator[None]:
    """No sharing: every pass reads its table."""
    yield


@pytest.mark.parametrize(
    "named",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["contacts-of-no-experiment", "contacts-name-experiments"],
)
def test_daily_run_equals_each_experiment_alone(
    tmp_path: Path, named: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_layout(CANONICAL, base_tables(tmp_path / "base"), tmp_path / "data")
    if not named:  # every experiment's exposures are the same sends (named: none of the
        # hash experiments' ids is in the contacts: exposed at the start)
        contacts = pl.read_parquet(data / "contacts.parquet").drop("experiment_id")
        contacts.write_parquet(data / "contacts.parquet")
    ids = _experiments(tmp_path / "experiments", own=named)
    used: list[shared.SharedReads] = []
    built: list[tuple[object, ...]] = []  # the keys of the results built (not copied)
    by_experiment: dict[str, list[tuple[object, ...]]] = {}
    original, daily_run = shared.SharedReads.result, daily.run_daily

    def recording(self: shared.SharedReads, source: object, key: object, *args: object) -> object:
        before = self.passes
        value = original(self, source, key, *args)  # type: ignore[arg-type]
        if self.passes > before and isinstance(key, tuple):
            built.append(key)
        return value

    @contextlib.contextmanager
    def recorded(budget: int = shared.SHARED_BYTES) -> Iterator[shared.SharedReads]:
        with shared.shared_reads(budget) as reads:
            used.append(reads)
            yield reads

    def run_daily(specs: Any, date: Any, out: Any, analyze: Any, *args: Any) -> Any:
        def each(spec: Any, as_of: Any) -> Any:
            start = len(built)
            result = analyze(spec, as_of)
            by_experiment[spec.id] = built[start:]
            return result

        return daily_run(specs, date, out, each, *args)

    monkeypatch.setattr(shared.SharedReads, "result", recording)
    monkeypatch.setattr(run, "shared_reads", recorded)
    monkeypatch.setattr(daily, "run_daily", run_daily)
    together = run.run_report(tmp_path / "experiments", data, DATE, tmp_path / "together")
    monkeypatch.undo()
    assert [o.error for o in together.outcomes] == [None] * len(ids)
    assert used[0].copies > 0

    def unit_passes(experiment: str) -> set[object]:
        return {k[1] for k in by_experiment[experiment] if k[0] == "monitor-unit-pass"}

    # the per-unit pass of each table runs once for the experiments with the same units and
    # exposures (their arms differ), and again for another window, population or exposures
    tables = unit_passes("spring-a")
    assert tables and "orders" in tables
    assert unit_passes("spring-b") == set()
    assert unit_passes("spring-window") == tables
    assert unit_passes("spring-sms") == tables
    touches = [k for k in built if k[0] == "last-touch"]
    # the same contacts (named: none names the ids with arms by hash; the spring factorial
    # has its own)
    assert len(touches) == (2 if named else 1)
    if named:
        assert unit_passes("spring-factorial") == tables
    monkeypatch.setattr(run, "shared_reads", _plain)
    for o in together.outcomes:
        alone = tmp_path / "alone" / o.id
        alone.mkdir(parents=True)
        (alone / f"{o.id}.yaml").write_text(Path(o.source).read_text())
        run.run_report(alone, data, DATE, tmp_path / "out" / o.id)
        name = f"{DATE}/experiments/{o.id}/results.json"
        assert (tmp_path / "together" / name).read_bytes() == (
            tmp_path / "out" / o.id / name
        ).read_bytes(), o.id


@pytest.mark.parametrize(
    "layout", [CANONICAL, Layout(customer_id="text")], ids=["int-ids", "text-ids"]
)
def test_unit_pass_is_shared_only_for_equal_units_and_exposures(
    tmp_path: Path, layout: Layout
) -> None:
    """The per-unit pass of a table is handed to a later caller only when its units, their
    channels and exposure times are equal in value and order; what it hands over is the
    pass's own result (arms are the caller's)."""
    data = write_layout(layout, base_tables(tmp_path / "base"), tmp_path / "data")
    (tmp_path / "a.yaml").write_text(_variant(EXPERIMENT.read_text(), "spring-a"))
    spec = load_experiment(tmp_path / "a.yaml")
    assert isinstance(spec, Experiment)
    engine = open_engine(data, spec.timezone)
    source = engine.hourly(spec, engine.units(spec))
    window = dt.timedelta(hours=spec.monitoring.response_window_hours)
    exposure = source.exposures(window)
    assert exposure.height > 0
    tested = [m for m in spec.metrics if m.kind != "ratio"]
    needs = pm._Needs(pm._Plan.of(spec, spec.metrics, tested).window, (), tuple(tested))
    frame = exposure.select(spec.unit, "xch", "arm", "exposed_at")
    lo, hi = frame["exposed_at"].min() - window, frame["exposed_at"].max() + window
    later = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.col("exposed_at") + dt.timedelta(hours=5))
        .otherwise(pl.col("exposed_at"))
        .alias("exposed_at")
    )

    def unit_pass(units: pl.DataFrame, src: object) -> tuple[pl.DataFrame, int]:
        return pm._unit_pass_dense(spec, source.tables, units, window, None, lo, hi, needs, src)  # type: ignore[arg-type]

    flipped = frame.with_columns(pl.col("arm").reverse())  # other arms: the same columns
    cases = {"frame": frame, "flipped": flipped, "later": later}
    plain = {name: unit_pass(units, None) for name, units in cases.items()}
    assert not plain["frame"][0].equals(plain["later"][0])
    with shared.shared_reads() as reads:
        got = {"frame": unit_pass(frame, source.source)}
        passes = reads.passes
        assert passes == len(needs.tables)
        got["flipped"] = unit_pass(flipped, source.source)
        assert reads.passes == passes  # copied
        got["later"] = unit_pass(later, source.source)
        assert reads.passes == 2 * passes  # another exposure time: run again
    for name in cases:
        assert_frame_equal(got[name][0], plain[name][0], check_exact=True)
        assert got[name][1] == plain[name][1]


def test_a_result_is_kept_by_key_and_content() -> None:
    """``shared_result``: the same object for the same key and content (compared with its
    schema); built again otherwise, and always outside ``shared_reads()``."""
    calls: list[int] = []

    def build() -> list[int]:
        calls.append(1)
        return [len(calls)]

    ints = shared.Content.of(pl.DataFrame({"x": [1, 2, 3]}))
    floats = shared.Content.of(ints.frame.cast(pl.Float64))  # equal values, another schema
    reverse = shared.Content.of(ints.frame.reverse())
    with shared.shared_reads() as reads:
        a = shared.shared_result("src", "k", build, len, ints)
        assert (
            shared.shared_result("src", "k", build, len, shared.Content.of(ints.frame.clone())) is a
        )
        assert shared.shared_result("src", "k", build, len, floats) == [2]
        assert shared.shared_result("src", "k", build, len, reverse) == [3]
        assert shared.shared_result("other", "k", build, len, ints) == [4]
        assert shared.shared_result("src", "k2", build, len, ints) == [5]
        assert shared.shared_result("src", "k", build, len, None) == [6]
        assert shared.shared_result(None, "k", build, len, ints) == [7]  # no source
        assert (reads.passes, reads.copies) == (6, 1)
    assert shared.shared_result("src", "k", build, len, ints) == [8]
