"""The monitor's compiled per-unit pass (engines/dense_monitor.py) gives the polars route's
frame bit for bit (``_unit_pass_polars``, the definition), and the whole readout is the same
document either way: integer, text and UUID ids, naive and zoned timestamps, CSV and Parquet
parts, a ratio primary with regression covariates, a winsorised metric, guardrails, an
incremental update from a cache."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from layouts import CANONICAL, Layout, base_tables, write_layout
from liftlab.analyses.monitor import run_monitor
from liftlab.engines import polars_monitor as pm
from liftlab.engines.open import open_engine
from liftlab.spec.loader import load_experiment

EXPERIMENT = Path(__file__).parent.parent / "experiments" / "spring-factorial.yaml"
AS_OF = dt.datetime(2026, 2, 20, 12, tzinfo=dt.UTC)
LAYOUTS = (
    CANONICAL,
    Layout(customer_id="text", fmt="parts", ts="naive"),
    Layout(customer_id="uuid", order_id="text", fmt="csv", ts="zone", zone="Asia/Tokyo"),
)
VARIANTS = {
    # a ratio primary, regression on pre-period values, an attribute and the join date
    "ratio": (
        ("primary_metric: revenue", "primary_metric: aov"),
        (
            "covariates: {pre_period_days: 28}",
            "covariates: {pre_period_days: 60, attributes: [optin_sms], joined: signup_date}",
        ),
    ),
    # a winsorised primary with CUPED, a purchase-channel count as a guardrail
    "capped": (
        (
            "{name: revenue, kind: mean, table: orders, value: revenue}",
            "{name: revenue, kind: mean, table: orders, value: revenue, winsorize: 0.95}\n"
            "  - {name: web, kind: count, table: orders, purchase_channel: web, "
            "guardrail: true, direction: increase}",
        ),
    ),
}


def _spec_file(folder: Path, layout: Layout, variant: str) -> Path:
    text = EXPERIMENT.read_text()
    for old, new in VARIANTS[variant]:
        assert old in text
        text = text.replace(old, new)
    if layout.zone != "UTC":
        text = text.replace(
            "\nschema_version: 1", f"\ntimezone: {layout.zone}\nschema_version: 1", 1
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{variant}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dense")
    base = base_tables(root / "base")
    return {layout.id: write_layout(layout, base, root / layout.id / "data") for layout in LAYOUTS}


def _hourly(
    folders: dict[str, Path], tmp: Path, layout: Layout, variant: str
) -> tuple[object, pm.PolarsHourly]:
    spec = load_experiment(_spec_file(tmp / layout.id, layout, variant))
    engine = open_engine(folders[layout.id], spec.timezone)
    return spec, engine.hourly(spec, engine.units(spec))  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.id)
def test_unit_pass_is_the_polars_route(
    folders: dict[str, Path], tmp_path: Path, layout: Layout, variant: str
) -> None:
    """Every column of every (unit, channel) row, nulls included, for the hourly pass (with
    the baseline read along, pre-periods, first responses), for all units and for some of
    them in some of their channels."""
    spec, source = _hourly(folders, tmp_path, layout, variant)
    metrics = list(spec.metrics)  # type: ignore[attr-defined]
    tested = [m for m in metrics if m.name == spec.primary_metric or m.guardrail]  # type: ignore[attr-defined]
    plan = pm._Plan.of(spec, metrics, tested)  # type: ignore[arg-type]
    window = dt.timedelta(hours=spec.monitoring.response_window_hours)  # type: ignore[attr-defined]
    exposure = source.exposures(window)
    pre = dt.timedelta(days=spec.covariates.pre_period_days) if plan.pre else None  # type: ignore[attr-defined]
    needs = pm._Needs(
        plan.window,
        plan.pre,
        tuple(m for m in tested if m.kind != "ratio"),
        *pm._baseline_needs(spec, tested),
    )  # type: ignore[arg-type]
    frame = exposure.select(spec.unit, "xch", "arm", "exposed_at", "mature")  # type: ignore[attr-defined]
    lo = exposure["exposed_at"].min() - max(pre or window, window)
    some = frame.gather_every(3)  # some units, in some of their channels (an update's)
    for units in (frame, some):
        args = (spec, source.tables, units, window, pre, lo, AS_OF, needs)
        dense, dense_rows = pm._unit_pass_dense(*args)  # type: ignore[arg-type]
        plain, plain_rows = pm._unit_pass_polars(*args)  # type: ignore[arg-type]
        assert dense_rows == plain_rows > 0
        assert set(needs.columns) <= set(plain.columns)
        assert dense.select(plain.columns)[needs.columns].null_count().sum_horizontal().item() > 0
        keys = [spec.unit, "xch"]  # type: ignore[attr-defined]
        assert_frame_equal(
            dense.select(plain.columns).sort(keys), plain.sort(keys), check_exact=True
        )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.id)
def test_readout_is_the_same_document(
    folders: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    layout: Layout,
    variant: str,
) -> None:
    """The whole readout, fresh and updated from a cache one day on, with the compiled pass
    and with the polars route: the same JSON document."""
    docs = {}
    for dense in (True, False):
        monkeypatch.setattr(pm, "DENSE_MONITOR", dense)
        spec, source = _hourly(folders, tmp_path, layout, variant)
        cache = tmp_path / f"cache-{dense}"
        first = run_monitor(spec, source, AS_OF - 24 * pm.HOUR, cache)  # type: ignore[arg-type]
        spec, source = _hourly(folders, tmp_path, layout, variant)
        later = run_monitor(spec, source, AS_OF, cache)  # type: ignore[arg-type]
        assert later.hours_from_cache > 0
        docs[dense] = (first.to_json(), later.to_json())
    assert docs[True] == docs[False]
    timeline = docs[True][1]["timeline"]
    assert any(r["estimate"] is not None for r in timeline)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.id)
def test_exposures_are_the_polars_route(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout
) -> None:
    """Assignment times and first sends by the compiled scatter: the same rows as the
    group-by route's."""
    frames = {}
    for dense in (True, False):
        monkeypatch.setattr(pm, "DENSE_MONITOR", dense)
        _, source = _hourly(folders, tmp_path, layout, "capped")
        frames[dense] = source.exposures(dt.timedelta(hours=72)).sort("customer_id", "xch")
    assert frames[True].height > 0
    assert_frame_equal(frames[True], frames[False], check_exact=True)


def test_fingerprint_after_an_earlier_one_is_the_fresh_one(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    """An update checks the cache's fingerprint, then writes a later one from the digest
    so far plus the new rows: the later one is what a fresh source computes, and it moves
    when a row in the new hours changes."""
    spec, source = _hourly(folders, tmp_path, CANONICAL, "capped")
    metrics = list(spec.metrics)  # type: ignore[attr-defined]
    exposure = source.exposures(dt.timedelta(hours=72))
    early = source.fingerprint(exposure, metrics, AS_OF - 24 * pm.HOUR)
    later = source.fingerprint(exposure, metrics, AS_OF)
    _, fresh = _hourly(folders, tmp_path, CANONICAL, "capped")
    assert later == fresh.fingerprint(exposure, metrics, AS_OF) != early
    ts = pl.col("ts")
    changed = {
        **source.tables,
        "orders": source.tables["orders"].with_columns(
            pl.when((ts >= AS_OF - pm.HOUR) & (ts < AS_OF))
            .then(pl.col("revenue") + 1)
            .otherwise(pl.col("revenue"))
            .alias("revenue")
        ),
    }
    other = pm.PolarsHourly(spec, changed)  # type: ignore[arg-type]
    assert other.fingerprint(exposure, metrics, AS_OF - 24 * pm.HOUR) == early
    assert other.fingerprint(exposure, metrics, AS_OF) != later


def test_ids_sharing_a_hash_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text ids are found by their 64-bit hash and then compared: two ids with one hash
    (forced here) go through the join, which tells them apart."""
    from liftlab.engines import dense_monitor as dm
    from liftlab.engines import hashed_ids as hi

    ids = pl.Series(["a", "b", "c", "a"])
    lookup, pos = dm.Lookup.of(ids)
    assert lookup.hashed is not None and pos.tolist() == [0, 1, 2, 0]
    real = hi._hash
    monkeypatch.setattr(hi, "_hash", lambda s: real(s.replace("z", "a")))  # z collides with a
    assert lookup.positions(pl.Series(["c", "z", None, "b", "q"])).tolist() == [2, -1, -1, 1, -1]
    monkeypatch.setattr(hi, "_hash", lambda s: np.zeros(s.len(), dtype=np.uint64))
    lookup, pos = dm.Lookup.of(ids)
    assert lookup.hashed is None and pos.tolist() == [0, 1, 2, 0]
    assert lookup.positions(pl.Series(["c", "z", None, "b"])).tolist() == [2, -1, -1, 1]
