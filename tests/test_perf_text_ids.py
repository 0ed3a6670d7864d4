"""Text and sparse integer unit ids take the direct-address route of the aggregation (issue
23): each unit's slot is its row in the unit table. It gives, bit for bit, what integer ids
in the same order give; the hash route's numbers to 1e-12; and byte-identical reruns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import liftlab.engines.dense as dense_module
import liftlab.engines.polars_engine as engine
from layouts import Layout, base_tables, experiments_for, id_text, write_layout
from liftlab.app.run import analyze_to_folder
from liftlab.data.folder import FolderSource
from liftlab.engines.polars_engine import aggregate
from liftlab.engines.shared import shared_reads
from liftlab.engines.slots import Slots
from liftlab.spec.aggregation import AggregationPlan
from test_dense import END, MEASURES, PRE, START, _write

TABLES = ("orders", "events", "contacts")
NAMES = [m.name for m in MEASURES]
PLANS = {
    "pre, two keys": AggregationPlan(
        "customer_id",
        (START, END),
        PRE,
        MEASURES,
        tuple((a, b) for a in NAMES for b in NAMES if a <= b),
        ("arm", "segment"),
    ),
    "window only, no key": AggregationPlan(
        "customer_id",
        (START, END),
        None,
        tuple(m for m in MEASURES if m.period == "window"),
        (("revenue", "revenue"),),
        (),
    ),
    "landing": AggregationPlan(
        "customer_id",
        (START, END),
        PRE,
        MEASURES[:2],
        (("revenue", "revenue"),),
        ("arm",),
        landing=True,
    ),
}


def _relabelled(root: Path, dest: Path, units: pl.DataFrame, ids: pl.Expr) -> pl.DataFrame:
    """The tables of ``root`` written into ``dest`` with every customer id rewritten by
    ``ids`` (an expression of ``customer_id``); the units, in the same order, likewise."""
    dest.mkdir()
    for table in ("customers", *TABLES):
        frame = pl.read_parquet(root / f"{table}.parquet")
        frame.with_columns(ids.alias("customer_id")).write_parquet(dest / f"{table}.parquet")
    return units.with_columns(ids.alias("customer_id"))


def _data(tmp_path: Path, seed: int, ids: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Integer-id tables (units with gaps, non-units, null ids) and the same relabelled."""
    units = _write(tmp_path, np.random.default_rng(seed), 400, 2, 3000, 1000)
    return units, _relabelled(tmp_path, tmp_path / "relabelled", units, ids)


TEXT = id_text("text", "c", pl.col("customer_id"))
SPARSE = pl.col("customer_id") * 10**9 + 17


@pytest.mark.parametrize("plan", PLANS.values(), ids=PLANS.keys())
@pytest.mark.parametrize("ids", [TEXT, SPARSE], ids=["text", "sparse"])
def test_relabelled_ids_give_the_integer_route_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: AggregationPlan, ids: pl.Expr
) -> None:
    """The same rows in the same order reach the same slots: equal to the last bit. The
    positional route is the one taken (the hash route would fail here)."""
    units, relabelled = _data(tmp_path, 4, ids)
    want = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    assert Slots.fit(relabelled["customer_id"]) is None

    def no_hash_route(*args: object) -> None:
        raise AssertionError("hash route taken")

    monkeypatch.setattr(engine, "_unit_outcomes", no_hash_route)
    got = aggregate(
        plan, relabelled, FolderSource(tmp_path / "relabelled"), relabelled.schema["customer_id"]
    )
    assert got.equals(want)


@pytest.mark.parametrize("seed", [1, 2])
def test_text_ids_equal_the_hash_route(tmp_path: Path, seed: int) -> None:
    plan = PLANS["pre, two keys"]
    _, units = _data(tmp_path, seed, TEXT)
    source = FolderSource(tmp_path / "relabelled")
    fast = aggregate(plan, units, source, pl.String)
    slow = aggregate(plan, units, source, pl.String, dense=False)
    assert fast.columns == slow.columns
    _same_cells(fast, slow)


def test_units_listed_twice_get_their_rows_in_each_slot(tmp_path: Path) -> None:
    """As the hash route's join does."""
    plan = PLANS["pre, two keys"]
    _, units = _data(tmp_path, 3, TEXT)
    units = pl.concat([units, units.head(30)])
    source = FolderSource(tmp_path / "relabelled")
    fast = aggregate(plan, units, source, pl.String)
    slow = aggregate(plan, units, source, pl.String, dense=False)
    _same_cells(fast, slow)


def test_a_channel_only_non_units_show_stops_the_guess_as_with_integer_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of ids that are not units still reach the pass (with no slot): a purchase
    channel that only they show, after the guessed rows, gets its landing column on both
    routes."""
    monkeypatch.setattr(engine, "GUESS_ROWS", 8)
    monkeypatch.setattr(dense_module, "BATCH_ROWS", 8)
    units, relabelled = _data(tmp_path, 5, TEXT)
    for root in (tmp_path, tmp_path / "relabelled"):
        orders = pl.read_parquet(root / "orders.parquet")
        extra = orders.filter(pl.col("ts").is_between(START, END, closed="left")).head(1)
        extra = extra.with_columns(
            pl.lit("kiosk").alias("channel"),
            (pl.lit(10**12) if root == tmp_path else pl.lit("stranger"))
            .cast(orders.schema["customer_id"])
            .alias("customer_id"),
        )
        pl.concat([orders, extra]).write_parquet(root / "orders.parquet")
    plan = PLANS["landing"]
    want = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    got = aggregate(plan, relabelled, FolderSource(tmp_path / "relabelled"), pl.String)
    assert "sum:revenue@kiosk" in want.columns
    assert got.equals(want)


def test_shared_passes_follow_the_units_order(tmp_path: Path) -> None:
    """Inside a daily run the slots array of a pass (all tables) is rows of one experiment's
    units: another experiment with other units (or the same in another order) builds its own,
    one with the same list shares it whole; every result equals the experiment run alone."""
    plan = PLANS["pre, two keys"]
    _, units = _data(tmp_path, 6, TEXT)
    source = FolderSource(tmp_path / "relabelled")
    others = [units, units.reverse(), units.head(250), units]
    alone = [aggregate(plan, u, source, pl.String) for u in others]
    with shared_reads() as reads:
        shared = [aggregate(plan, u, source, pl.String) for u in others]
    assert all(a.equals(b) for a, b in zip(alone, shared, strict=True))
    assert (reads.passes, reads.copies) == (3, 1)  # one array per distinct units list


def test_reruns_on_text_customer_ids_are_byte_identical(tmp_path: Path) -> None:
    """``analyze`` twice on the retailer with text customer ids: the same results.json."""
    layout = Layout(customer_id="text")
    data = write_layout(layout, base_tables(tmp_path / "base"), tmp_path / "data")
    experiments = experiments_for(
        layout, Path(__file__).parent.parent / "experiments", tmp_path / "experiments"
    )
    spec = experiments / "spring-factorial.yaml"
    files = []
    for run in ("one", "two"):
        analyze_to_folder(spec, data, None, tmp_path / run)
        files.append((tmp_path / run / "results.json").read_bytes())
    assert files[0] == files[1]
    assert json.loads(files[0])["effects"]


@pytest.mark.parametrize("fails", ["table", "lookup"])
def test_ids_sharing_a_hash_take_the_join_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """Two ids with one 64-bit hash (among the units, or a row's id and a unit's): the
    order-keeping join gives the slots, and the same sums."""
    from liftlab.engines.hashed_ids import HashedIds

    plan = PLANS["pre, two keys"]
    units, relabelled = _data(tmp_path, 7, TEXT)
    want = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    if fails == "table":
        monkeypatch.setattr(HashedIds, "of", staticmethod(lambda ids: None))
    else:
        monkeypatch.setattr(HashedIds, "find", lambda self, ids: None)
    got = aggregate(plan, relabelled, FolderSource(tmp_path / "relabelled"), pl.String)
    assert got.equals(want)


def test_a_unit_without_an_id_has_no_rows_as_on_the_hash_route(tmp_path: Path) -> None:
    plan = PLANS["pre, two keys"]
    _, units = _data(tmp_path, 8, TEXT)
    units = pl.concat(
        [units, units.head(1).with_columns(pl.lit(None, pl.String).alias("customer_id"))]
    )
    source = FolderSource(tmp_path / "relabelled")
    fast = aggregate(plan, units, source, pl.String)
    slow = aggregate(plan, units, source, pl.String, dense=False)
    _same_cells(fast, slow)


def _same_cells(fast: pl.DataFrame, slow: pl.DataFrame) -> None:
    """The direct-address route's cells against the hash route's: the same cells and counts,
    sums equal up to the rounding of another addition order."""
    assert fast.select("arm", "segment", "n").equals(slow.select("arm", "segment", "n"))
    for col in fast.columns[3:]:
        np.testing.assert_allclose(
            fast[col].to_numpy(), slow[col].to_numpy(), rtol=1e-12, atol=1e-12, err_msg=col
        )
