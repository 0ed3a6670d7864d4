"""Direct-address aggregation (engines/dense.py) against the hash group-by and polars itself."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liftlab.data.folder import FolderSource
from liftlab.engines.dense import (
    AHEAD,
    Slots,
    _chunks,
    _scatter_counts,
    _scatter_sums,
    repeated,
    table_layout,
)
from liftlab.engines.polars_engine import aggregate
from liftlab.spec.aggregation import AggregationPlan, Measure, prod_col, sum_col

START = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
END = dt.datetime(2026, 2, 16, tzinfo=dt.UTC)
PRE = (START - dt.timedelta(days=14), START)
MEASURES = (
    Measure("revenue", "orders", "sum", value="revenue"),
    Measure("revenue|pre", "orders", "sum", value="revenue", period="pre"),
    Measure("margin", "orders", "sum", value="margin"),
    Measure("buyer", "orders", "any"),
    Measure("buyer|pre", "orders", "any", period="pre"),
    Measure("orders", "orders", "count"),
    Measure("revenue@web", "orders", "sum", value="revenue", channel="web"),
    Measure("revenue@store", "orders", "sum", value="revenue", channel="store"),
    Measure("clicks", "events", "count", event="click"),
    Measure("email_clicks", "events", "count", event="click", channel="email"),
    Measure("unsub", "events", "any", event="unsubscribe"),
    Measure("cost@email", "contacts", "sum", value="cost", channel="email"),
    Measure("contacts", "contacts", "count"),
    Measure("capped", "orders", "sum", value="revenue", winsorize=0.9),
)


def _write(root: Path, rng: np.random.Generator, n_units: int, spread: int, n_rows: int,
           offset: int) -> pl.DataFrame:
    """Tables whose ids are a gappy integer range, with rows of non-units, null ids and
    timestamps, and rows outside the periods; returns the unit table."""
    pool = offset + rng.choice(n_units * spread, n_units, replace=False)
    others = offset + n_units * spread + rng.integers(0, 50, 20)  # ids that are not units

    def ids(k: int) -> list[int | None]:
        out = rng.choice(np.concatenate([pool, others]), k).tolist()
        return [None if rng.random() < 0.03 else int(i) for i in out]

    def stamps(k: int) -> list[dt.datetime | None]:
        secs = rng.uniform(-20 * 86400, 18 * 86400, k)
        return [None if rng.random() < 0.02 else START + dt.timedelta(seconds=float(s))
                for s in secs]

    pl.DataFrame({"customer_id": pool}).write_parquet(root / "customers.parquet")
    pl.DataFrame({
        "order_id": np.arange(n_rows), "customer_id": ids(n_rows), "ts": stamps(n_rows),
        "channel": rng.choice(["web", "store", "phone", None], n_rows).tolist(),
        "revenue": rng.lognormal(3, 1, n_rows), "margin": rng.normal(10, 5, n_rows),
    }).write_parquet(root / "orders.parquet")
    pl.DataFrame({
        "customer_id": ids(n_rows), "ts": stamps(n_rows),
        "channel": rng.choice(["email", "sms"], n_rows).tolist(),
        "event": rng.choice(["click", "open", "unsubscribe", None], n_rows).tolist(),
    }).write_parquet(root / "events.parquet")
    pl.DataFrame({
        "customer_id": ids(n_rows), "sent_at": stamps(n_rows),
        "channel": rng.choice(["email", "mail"], n_rows).tolist(),
        "cost": rng.uniform(0, 1, n_rows),
    }).write_parquet(root / "contacts.parquet")
    return pl.DataFrame({"customer_id": pool,
                         "arm": rng.choice(["treatment", "holdout"], n_units),
                         "segment": rng.choice(["a", "b", "c"], n_units)})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_units=st.integers(1, 300),
       spread=st.integers(1, 3), offset=st.integers(-10**6, 10**6),
       subset=st.sets(st.integers(0, len(MEASURES) - 1), min_size=1),
       pre=st.booleans(), keys=st.sampled_from([(), ("arm",), ("arm", "segment")]))
def test_dense_equals_hash_group_by(seed: int, n_units: int, spread: int, offset: int,
                                    subset: set[int], pre: bool,
                                    keys: tuple[str, ...]) -> None:
    """Every kind of measure, ids with gaps, negative ids, rows of non-units, nulls."""
    rng = np.random.default_rng(seed)
    measures = tuple(MEASURES[i] for i in sorted(subset)
                     if pre or MEASURES[i].period == "window")
    if not measures:
        return
    with tempfile.TemporaryDirectory() as tmp:
        units = _write(Path(tmp), rng, n_units, spread, 4 * n_units + 5, offset)
        names = [m.name for m in measures]
        plan = AggregationPlan("customer_id", (START, END), PRE if pre else None, measures,
                               tuple((a, b) for a in names for b in names if a <= b),
                               keys)
        source = FolderSource(Path(tmp))
        assert Slots.fit(units["customer_id"]) is not None
        fast = aggregate(plan, units, source, pl.Int64, dense=True)
        slow = aggregate(plan, units, source, pl.Int64, dense=False)
    assert fast.columns == slow.columns
    assert fast.select(*keys, "n").equals(slow.select(*keys, "n"))
    for col in fast.columns[len(keys) + 1:]:
        np.testing.assert_allclose(fast[col].to_numpy(), slow[col].to_numpy(),
                                   rtol=1e-10, atol=1e-9, err_msg=col)


def test_dense_sums_equal_a_direct_polars_computation(tmp_path: Path) -> None:
    """Revenue in the window and its square per arm, computed from the rows by hand."""
    rng = np.random.default_rng(3)
    units = _write(tmp_path, rng, 500, 2, 3000, 7)
    plan = AggregationPlan("customer_id", (START, END), None, (MEASURES[0],),
                           (("revenue", "revenue"),), ("arm",))
    got = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    per_unit = (pl.read_parquet(tmp_path / "orders.parquet")
                .filter((pl.col("ts") >= START) & (pl.col("ts") < END))
                .group_by("customer_id").agg(pl.col("revenue").sum()))
    want = (units.join(per_unit, on="customer_id", how="left").fill_null(0.0)
            .group_by("arm").agg(pl.len().alias("n"), pl.col("revenue").sum().alias("s"),
                                 (pl.col("revenue") ** 2).sum().alias("q")).sort("arm"))
    assert got["n"].to_list() == want["n"].to_list()
    np.testing.assert_allclose(got[sum_col("revenue")], want["s"], rtol=1e-12)
    np.testing.assert_allclose(got[prod_col("revenue", "revenue")], want["q"], rtol=1e-12)


def test_slots_take_compact_integers_only() -> None:
    assert Slots.fit(pl.Series([5, 7, 9])) == Slots(5, 5)
    assert Slots.fit(pl.Series(["a", "b"])) is None
    assert Slots.fit(pl.Series([1, None])) is None
    sparse = pl.Series(np.arange(100_000) * 1000)  # 1000 slots per unit: hash instead
    assert Slots.fit(sparse) is None


def test_rows_feeding_the_same_measures_share_a_class() -> None:
    """Pre-period rows of every channel feed the same two measures: one class, not four."""
    measures = (MEASURES[0], MEASURES[1], MEASURES[3], MEASURES[4], MEASURES[5],
                MEASURES[6], MEASURES[7])
    layout = table_layout(measures, "ts", (START, END), PRE)
    assert layout.n_classes == 4  # pre | window web | window store | window other
    assert layout.value_columns == ("revenue",)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_rows=st.integers(0, 3 * AHEAD), lo=st.integers(-5, 5))
def test_scatter_loops_equal_numpy_add_at(seed: int, n_rows: int, lo: int) -> None:
    """The compiled loops (which ask for slots ahead, near the end of a batch too) against
    ``np.add.at``: ids outside the slots and rows of no class are skipped."""
    rng = np.random.default_rng(seed)
    size, offset, n_classes = 7, 2, 3
    ids = rng.integers(lo - 3, lo + size + 3, n_rows)
    codes = rng.integers(0, 5, n_rows).astype(np.int32)
    class_of = np.array([0, 1, 2, -1, 1])
    vals = (rng.normal(size=n_rows), rng.normal(size=n_rows))
    keep = (class_of[codes] >= 0) & (ids >= lo) & (ids < lo + size)
    j, c = ids[keep] - lo, class_of[codes[keep]]
    expected = np.zeros((size, offset + n_classes * 3))
    np.add.at(expected, (j, offset + c * 3), 1.0)
    for v, column in enumerate(vals):
        np.add.at(expected, (j, offset + c * 3 + 1 + v), column[keep])
    acc = np.zeros_like(expected)
    assert _scatter_sums(acc, offset, lo, ids, codes, class_of, vals) == 0
    np.testing.assert_allclose(acc, expected, rtol=1e-12, atol=1e-12)
    counts = np.zeros((size, offset + n_classes))
    np.add.at(expected := np.zeros_like(counts), (j, offset + c), 1.0)
    assert _scatter_counts(counts, offset, lo, ids, codes, class_of) == 0
    np.testing.assert_array_equal(counts, expected)


def test_batches_are_read_chunk_by_chunk_without_copies() -> None:
    parts = [pl.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}), pl.DataFrame({"a": [3], "b": [2.5]})]
    batch = pl.concat(parts, rechunk=False)
    got = list(_chunks(batch, ("b", "a")))
    assert [[c.tolist() for c in part] for part in got] == [[[0.5, 1.5], [1, 2]], [[2.5], [3]]]
    assert not got[0][1].flags.owndata  # a view of the engine's memory
    mixed = batch.with_columns(pl.Series("a", [1, 2, 3]))  # "a" in one chunk, "b" in two
    assert [[c.tolist() for c in part] for part in _chunks(mixed, ("a", "b"))] == [
        [[1, 2, 3], [0.5, 1.5, 2.5]]]
    constant = batch.with_columns(pl.lit(7).alias("k"))  # cut to the chunks of "a"
    assert [[c.tolist() for c in part] for part in _chunks(constant, ("a", "k"))] == [
        [[1, 2], [7, 7]], [[3], [7]]]


@pytest.mark.parametrize("values", [
    [3, 1, 3, 3, 2, None, None, None],
    list(range(-5, 5)) * 2,
    [],
    [None, None],
])
def test_repeated_counts_like_n_unique(values: list[int | None]) -> None:
    """Nulls are not repeats (missing ids are a check of their own)."""
    known = pl.Series(values, dtype=pl.Int64).drop_nulls()
    frame = pl.LazyFrame({"x": pl.Series(values, dtype=pl.Int64)})
    expected = len(known) - known.n_unique()
    assert repeated(frame) == expected


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-50, 50)), max_size=200),
       st.integers(1, 9))
def test_repeated_matches_polars(values: list[int | None], batch_rows: int) -> None:
    """Small batches make the bitmap grow downwards and upwards as the ids arrive."""
    series = pl.Series(values, dtype=pl.Int64)
    frame = pl.LazyFrame({"x": series})
    known = series.drop_nulls()
    assert repeated(frame, batch_rows) == len(known) - known.n_unique()


def test_repeated_declines_unsorted_text_and_sparse_ids() -> None:
    assert repeated(pl.LazyFrame({"x": ["b", "a", "b"]})) is None
    assert repeated(pl.LazyFrame({"x": [10**15, 0]})) is None
    assert repeated(pl.LazyFrame({"x": ["a", "a"]})) == 1  # sorted: any type
    assert repeated(pl.LazyFrame({"x": [0, 10**15, 10**15]})) == 1


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-50, 50)), max_size=200),
       st.integers(1, 9), st.booleans(), st.booleans())
def test_sorted_repeats_count_like_n_unique(values: list[int | None], batch_rows: int,
                                            text: bool, shuffle: bool) -> None:
    """Sorted values (nulls anywhere) are counted by neighbours, across batch bounds; values
    out of order are declined (None), never miscounted."""
    import random

    from liftlab.engines.dense import sorted_repeats

    known = sorted(v for v in values if v is not None)
    ordered = iter(known)
    column = [None if v is None else next(ordered) for v in values]  # nulls stay in place
    if shuffle:
        random.Random(len(values)).shuffle(column)
    series = pl.Series(column, dtype=pl.Int64)
    if text:  # fixed width: text order is number order
        series = series.map_elements(lambda v: f"id{v + 100:04d}", return_dtype=pl.String)
    found = sorted_repeats(pl.LazyFrame({"x": series}), batch_rows)
    if series.drop_nulls().is_sorted():
        assert found == series.drop_nulls().len() - series.drop_nulls().n_unique()
    else:
        assert found is None
    if not text:
        assert repeated(pl.LazyFrame({"x": series}), batch_rows) == len(known) - len(set(known))


def test_memory_cap_falls_back_to_the_hash_route(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import liftlab.engines.dense as dense_passes  # imported where the pass runs
    import liftlab.engines.polars_engine as engine

    units = _write(tmp_path, np.random.default_rng(5), 200, 2, 800, 0)
    plan = AggregationPlan("customer_id", (START, END), PRE, MEASURES[:6],
                           (("revenue", "revenue|pre"),), ("arm",))
    dense = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    calls: list[int] = []
    monkeypatch.setattr(engine, "DENSE_BYTES", 0)
    monkeypatch.setattr(dense_passes, "accumulate", lambda *a: calls.append(1))
    capped = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    assert not calls
    for col in dense.columns[1:]:
        np.testing.assert_allclose(dense[col].to_numpy(), capped[col].to_numpy(), rtol=1e-10)


def test_too_many_key_combinations_fall_back_to_the_hash_route(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import liftlab.engines.dense as dense_module
    from liftlab.engines.dense import Groups

    units = _write(tmp_path, np.random.default_rng(6), 200, 2, 800, 0)
    plan = AggregationPlan("customer_id", (START, END), None, MEASURES[:1],
                           (("revenue", "revenue"),), ("arm", "segment"))
    want = aggregate(plan, units, FolderSource(tmp_path), pl.Int64, dense=False)
    monkeypatch.setattr(dense_module, "MAX_GROUPS", 5)  # 3 x 4 combinations > 5
    assert Groups.of(units, ("arm", "segment")) is None
    got = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    assert got.select("arm", "segment", "n").equals(want.select("arm", "segment", "n"))
    for col in got.columns[3:]:  # the hash route sums in parallel: last-bit differences
        np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-12)


def test_unsigned_ids_beyond_the_signed_range_are_skipped(tmp_path: Path) -> None:
    """A UInt64 id too large for the slots (a stray export value) is not a unit."""
    ids = pl.Series("customer_id", [1, 2, 3, 2**64 - 1], dtype=pl.UInt64)
    pl.DataFrame({"customer_id": ids[:3]}).write_parquet(tmp_path / "customers.parquet")
    pl.DataFrame({"order_id": [1, 2, 3, 4], "customer_id": ids, "ts": [START] * 4,
                  "channel": ["web"] * 4, "revenue": [1.0, 2.0, 3.0, 100.0]}
                 ).write_parquet(tmp_path / "orders.parquet")
    units = pl.DataFrame({"customer_id": ids[:3], "arm": ["a", "b", "a"]})
    plan = AggregationPlan("customer_id", (START, END), None, (MEASURES[0],),
                           (("revenue", "revenue"),), ("arm",))
    got = aggregate(plan, units, FolderSource(tmp_path), pl.UInt64)
    assert got[sum_col("revenue")].to_list() == [4.0, 2.0]
    assert got.equals(aggregate(plan, units, FolderSource(tmp_path), pl.UInt64, dense=False))


def _orders_in_order(root: Path, units: pl.DataFrame, channels: list[str | None],
                     ts: list[dt.datetime], ids: list[int] | None = None) -> None:
    """An orders table whose rows come in exactly this order (the first ones make the guess)."""
    n = len(channels)
    pool = units["customer_id"].to_list()
    pl.DataFrame({
        "order_id": np.arange(n), "ts": ts, "channel": channels,
        "customer_id": ids if ids is not None else [pool[i % len(pool)] for i in range(n)],
        "revenue": np.linspace(1.0, 9.0, n),
    }).write_parquet(root / "orders.parquet", row_group_size=8)


IN = START + dt.timedelta(days=1)
BEFORE = START - dt.timedelta(days=1)


@pytest.mark.parametrize(("tail", "tail_ts", "tail_ids", "looked_up", "landing"), [
    # every channel among the first rows: the pass plans from them, no lookup
    (["web", "store"], IN, None, False, ["store", "web"]),
    # a channel first seen late in the window: the guess is checked, the channels looked up
    (["phone"], IN, None, True, ["phone", "store", "web"]),
    # ... also when only a non-customer bought there (channels of the window, as before)
    (["phone"], IN, [10**9], True, ["phone", "store", "web"]),
    # a purchase without a channel first seen late: no slots were kept for it
    ([None], IN, None, True, ["store", "web"]),
    # a new channel before the window only: not a purchase channel of the window
    (["phone"], BEFORE, None, False, ["store", "web"]),
])
def test_purchase_channels_found_during_the_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: list[str | None],
        tail_ts: dt.datetime, tail_ids: list[int] | None, looked_up: bool,
        landing: list[str]) -> None:
    """The direct-address pass guesses the purchase channels from the first rows and checks
    every later row; whatever the order of the rows, it equals looking them up first."""
    import liftlab.engines.dense as dense_module
    import liftlab.engines.polars_engine as engine

    monkeypatch.setattr(engine, "GUESS_ROWS", 8)  # the guess sees the first 8 window rows
    monkeypatch.setattr(dense_module, "BATCH_ROWS", 8)
    lookups: list[str] = []
    real = engine._distinct
    monkeypatch.setattr(engine, "_distinct", lambda *a: lookups.append(a[1]) or real(*a))
    units = _write(tmp_path, np.random.default_rng(9), 40, 1, 10, 0)
    head = ["web", "store"] * 20
    _orders_in_order(tmp_path, units, [*head, *tail * 5],
                     [IN] * len(head) + [tail_ts] * (5 * len(tail)),
                     None if tail_ids is None else
                     [*units["customer_id"].head(len(head)).to_list(), *tail_ids * 5])
    base = AggregationPlan("customer_id", (START, END), PRE, MEASURES[:2],
                           (("revenue", "revenue"),), ("arm",), landing=True)
    fast = aggregate(base, units, FolderSource(tmp_path), pl.Int64)
    assert bool(lookups) == looked_up
    slow = aggregate(base, units, FolderSource(tmp_path), pl.Int64, dense=False)
    assert fast.columns == slow.columns
    assert sorted(c.split("@")[1] for c in fast.columns if c.startswith("sum:revenue@")) == \
        landing
    assert fast.select("arm", "n").equals(slow.select("arm", "n"))
    for col in fast.columns[2:]:
        np.testing.assert_allclose(fast[col].to_numpy(), slow[col].to_numpy(), rtol=1e-12,
                                   err_msg=col)


def test_one_or_too_many_purchase_channels_give_no_landing(tmp_path: Path) -> None:
    units = _write(tmp_path, np.random.default_rng(2), 30, 1, 10, 0)
    base = AggregationPlan("customer_id", (START, END), None, MEASURES[:1],
                           (("revenue", "revenue"),), (), landing=True)
    for names in (["web"], [f"shop{i}" for i in range(13)]):
        _orders_in_order(tmp_path, units, names * 3, [IN] * (3 * len(names)))
        for dense in (True, False):
            got = aggregate(base, units, FolderSource(tmp_path), pl.Int64, dense=dense)
            assert not [c for c in got.columns if "@" in c], (names, dense)


def test_units_summed_by_several_threads_give_the_same_cells(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import liftlab.engines.dense as dense_module

    units = _write(tmp_path, np.random.default_rng(4), 500, 2, 3000, 0)
    plan = AggregationPlan("customer_id", (START, END), PRE, MEASURES[:6],
                           (("revenue", "revenue|pre"), ("buyer", "margin")),
                           ("arm", "segment"))
    one = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    monkeypatch.setattr(dense_module, "SPLIT_UNITS", 0)
    monkeypatch.setattr(dense_module, "THREADS", 3)
    three = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    assert one.select("arm", "segment", "n").equals(three.select("arm", "segment", "n"))
    for col in one.columns[3:]:
        np.testing.assert_allclose(one[col].to_numpy(), three[col].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("n_levels", [3, 40])
def test_group_codes_give_back_each_units_keys(n_levels: int) -> None:
    """Text, integer and Enum keys with nulls: each unit's code names its own key values."""
    from liftlab.engines.dense import Groups

    rng = np.random.default_rng(n_levels)
    text = [None if v == 0 else f"s{v}" for v in rng.integers(0, n_levels, 500)]
    ints = [None if v == 0 else int(v) * 7 for v in rng.integers(0, 4, 500)]
    arms = pl.Series(rng.choice(["treatment", "holdout", None], 500).tolist(),
                     dtype=pl.Enum(["holdout", "other", "treatment"]))  # a level unused
    frame = pl.DataFrame({"text": text, "ints": ints, "arm": arms})
    groups = Groups.of(frame, ("text", "ints", "arm"))
    assert groups is not None
    assert groups.frame(groups.codes).equals(frame.with_columns(pl.col("arm").cast(pl.String)))


def test_a_metrics_channel_missing_from_the_guess_is_looked_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric filtered on a channel the first rows did not show: that channel's orders
    contradict the guess (found in review: they used to be counted without a lookup)."""
    import liftlab.engines.dense as dense_module
    import liftlab.engines.polars_engine as engine

    monkeypatch.setattr(engine, "GUESS_ROWS", 8)
    monkeypatch.setattr(dense_module, "BATCH_ROWS", 8)
    units = _write(tmp_path, np.random.default_rng(11), 40, 1, 10, 0)
    _orders_in_order(tmp_path, units, ["web"] * 40 + ["phone"] * 10, [IN] * 50)
    base = AggregationPlan("customer_id", (START, END), None,
                           (MEASURES[0], Measure("phone", "orders", "sum", value="revenue",
                                                 channel="phone")),
                           (("revenue", "revenue"), ("phone", "phone")), ("arm",),
                           landing=True)
    fast = aggregate(base, units, FolderSource(tmp_path), pl.Int64)
    slow = aggregate(base, units, FolderSource(tmp_path), pl.Int64, dense=False)
    assert fast.columns == slow.columns and fast.select("arm", "n").equals(slow.select("arm", "n"))
    for col in fast.columns[2:]:
        np.testing.assert_allclose(fast[col].to_numpy(), slow[col].to_numpy(), rtol=1e-12)
    assert {"sum:revenue@phone", "sum:revenue@web"} <= set(fast.columns)


def test_many_channels_in_the_first_rows_skip_the_guess(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More than 12 channels already: no landing split, no lookup, no per-channel coding."""
    import liftlab.engines.dense as dense_passes  # imported where the pass runs
    import liftlab.engines.polars_engine as engine

    guesses: list[object] = []
    real = dense_passes.table_layout
    monkeypatch.setattr(dense_passes, "table_layout",
                        lambda *a: guesses.append(a[4]) or real(*a))
    monkeypatch.setattr(engine, "_distinct", lambda *a: pytest.fail("looked up"))
    units = _write(tmp_path, np.random.default_rng(12), 30, 1, 10, 0)
    names = [f"shop{i}" for i in range(20)]
    _orders_in_order(tmp_path, units, names * 3, [IN] * 60)
    base = AggregationPlan("customer_id", (START, END), None, MEASURES[:1],
                           (("revenue", "revenue"),), ("arm",), landing=True)
    got = aggregate(base, units, FolderSource(tmp_path), pl.Int64)
    assert not [c for c in got.columns if "@" in c]
    assert guesses == [None]  # the orders' layout codes no channel


def test_both_routes_return_integer_keys_as_integers(tmp_path: Path) -> None:
    units = _write(tmp_path, np.random.default_rng(13), 60, 1, 200, 0).with_columns(
        pl.col("segment").replace_strict({"a": 1, "b": 2, "c": 10}).alias("tier"))
    plan = AggregationPlan("customer_id", (START, END), None, MEASURES[:1],
                           (("revenue", "revenue"),), ("tier",))
    fast = aggregate(plan, units, FolderSource(tmp_path), pl.Int64)
    slow = aggregate(plan, units, FolderSource(tmp_path), pl.Int64, dense=False)
    assert fast.schema == slow.schema and fast["tier"].to_list() == [1, 2, 10]
    np.testing.assert_allclose(fast["sum:revenue"], slow["sum:revenue"], rtol=1e-12)
