"""Fast routes of issue 23 (last-touch credit, data checks, layouts) give what the plain
routes give."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from layouts import Layout, base_tables, write_layout
from liftlab.data.folder import FolderSource
from liftlab.engines.dense_credit import LONG_RUN
from liftlab.engines.polars_attribution import last_touch_credit

T0 = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
UTC = pl.Datetime("us", "UTC")


def _tables(
    seed: int, customers: int, n_orders: int, n_contacts: int, heavy: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Orders and contacts with same-instant ties, null ids, channels and times, contacts
    before the window and after the orders, and ``heavy`` contacts of customer 0 (a run long
    enough to be sorted and bisected)."""
    rng = np.random.default_rng(seed)

    def times(n: int, lo: float, hi: float) -> pl.Series:
        hours = rng.integers(int(lo * 24), int(hi * 24), n)  # whole hours: many ties
        return pl.Series([T0 + dt.timedelta(hours=int(h)) for h in hours], dtype=UTC)

    def ids(n: int) -> pl.Series:
        values = rng.integers(0, customers, n).astype(object)
        values[rng.random(n) < 0.02] = None
        return pl.Series(values.tolist(), dtype=pl.Int64)

    orders = pl.DataFrame(
        {
            "customer_id": ids(n_orders),
            "ts": times(n_orders, -3, 24),
            "channel": rng.choice(["web", "store", "app"], n_orders),
            "revenue": rng.gamma(2.0, 30.0, n_orders).round(2),
        }
    )
    orders = orders.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 0).then(None).otherwise(pl.col("ts")).alias("ts")
    )
    heavy_orders = pl.DataFrame(
        {  # customer 0 buys often; their contacts tie at midnight
            "customer_id": [0] * heavy,
            "ts": times(heavy, 0, 12),
            "channel": ["web"] * heavy,
            "revenue": [1.0] * heavy,
        },
        schema=orders.schema,
    )
    orders = pl.concat([orders, heavy_orders])
    midnights = [T0 + dt.timedelta(days=int(d)) for d in rng.integers(-2, 12, heavy)]
    contacts = pl.DataFrame(
        {
            "customer_id": pl.concat([ids(n_contacts), pl.Series([0] * heavy, dtype=pl.Int64)]),
            "channel": pl.Series(
                rng.choice(
                    ["email", "sms", "mail", None], n_contacts + heavy, p=[0.4, 0.3, 0.25, 0.05]
                ),
                dtype=pl.String,
            ),
            "sent_at": pl.concat([times(n_contacts, -20, 24), pl.Series(midnights, dtype=UTC)]),
        }
    )
    contacts = contacts.with_columns(
        pl.when(pl.int_range(pl.len()) % 89 == 0)
        .then(None)
        .otherwise(pl.col("sent_at"))
        .alias("sent_at")
    )
    return orders, contacts


@pytest.mark.parametrize(
    ("seed", "lookback", "heavy"), [(1, 7, 0), (2, 2.5, 3 * LONG_RUN), (3, 0.5, LONG_RUN + 1)]
)
def test_direct_address_credit_equals_the_as_of_join(
    seed: int, lookback: float, heavy: int
) -> None:
    orders, contacts = _tables(seed, 300, 4000, 6000, heavy)
    end = T0 + dt.timedelta(days=21)
    fast = last_touch_credit(orders.lazy(), contacts.lazy(), T0, end, lookback)
    plain = last_touch_credit(orders.lazy(), contacts.lazy(), T0, end, lookback, dense=False)
    assert_frame_equal(fast, plain, check_exact=True)
    assert fast["orders"].sum() == orders.filter((pl.col("ts") >= T0) & (pl.col("ts") < end)).height
    assert set(fast["credited_channel"]) == {"email", "sms", "mail", "(none)"}


@pytest.mark.parametrize("kind", ["sparse", "text", "unsigned"])
def test_text_sparse_and_unsigned_ids_credit_alike(kind: str) -> None:
    orders, contacts = _tables(4, 200, 2000, 3000)
    if kind == "sparse":  # too spread for slots: indexed like text
        spread = pl.col("customer_id") * 10**12
        orders, contacts = (f.with_columns(spread) for f in (orders, contacts))
    elif kind == "text":
        orders, contacts = (
            f.with_columns(pl.col("customer_id").cast(pl.String)) for f in (orders, contacts)
        )
    else:
        orders, contacts = (
            f.with_columns(pl.col("customer_id").cast(pl.UInt32)) for f in (orders, contacts)
        )
    end = T0 + dt.timedelta(days=21)
    fast = last_touch_credit(orders.lazy(), contacts.lazy(), T0, end)
    plain = last_touch_credit(orders.lazy(), contacts.lazy(), T0, end, dense=False)
    assert_frame_equal(fast, plain, check_exact=True)


@pytest.mark.parametrize(
    "layout",
    [
        Layout(),
        Layout(ts="naive"),
        Layout(ts="naive", zone="Asia/Tokyo"),
        Layout(ts="zone"),
        Layout(ts="date"),
        Layout(ts="offset"),
        Layout(fmt="parts", ts="naive"),
    ],
    ids=lambda layout: layout.id,
)
def test_a_window_read_on_the_stored_timestamps_keeps_the_same_rows(
    layout: Layout, tmp_path: Path
) -> None:
    """``scan_between`` first filters the stored column with bounds a day wider, then the
    normalised one: the rows are those of the plain filter, in the same order."""
    base = base_tables(tmp_path / "base")
    source = FolderSource(write_layout(layout, base, tmp_path / layout.id), layout.zone)
    lo, hi = dt.datetime(2026, 2, 2, 3, tzinfo=dt.UTC), dt.datetime(2026, 2, 9, 22, tzinfo=dt.UTC)
    for table, column in (("orders", "ts"), ("contacts", "sent_at")):
        plain = source.scan(table).filter((pl.col(column) >= lo) & (pl.col(column) < hi))
        fast = source.scan_between(table, column, lo, hi).collect()
        assert fast.height > 100
        assert_frame_equal(fast, plain.collect(), check_exact=True)


def test_a_csv_table_is_parsed_once(tmp_path: Path) -> None:
    """Every query of a CSV table after the first reads the parsed (and normalised) columns,
    equal to those of a lazy scan (the file is overwritten by then)."""
    base = base_tables(tmp_path / "base")
    data = write_layout(Layout(fmt="csv"), base, tmp_path / "csv")
    source = FolderSource(data)
    first = source.scan("orders").collect()
    raw = source.raw("orders").collect()
    lazy = pl.scan_csv(data / "orders.csv", try_parse_dates=False, infer_schema_length=None)
    assert_frame_equal(raw, lazy.collect(), check_exact=True)
    assert_frame_equal(first, source._normalised(lazy, "orders", None).collect(), check_exact=True)
    (data / "orders.csv").write_text("order_id\n1\n")
    assert_frame_equal(source.scan("orders").collect(), first, check_exact=True)
    assert_frame_equal(source.raw("orders").collect(), raw, check_exact=True)


@pytest.mark.parametrize(
    "layout",
    [
        Layout(ts="naive"),
        Layout(ts="naive", zone="Asia/Tokyo"),
        Layout(ts="zone"),
        Layout(ts="date"),
        Layout(fmt="parts", ts="naive"),
    ],
    ids=lambda layout: layout.id,
)
def test_timestamp_checks_on_the_stored_column_count_what_the_plain_scan_counts(
    layout: Layout, tmp_path: Path
) -> None:
    """Null and out-of-range timestamps are looked for on the stored column first
    (``scan_outside``): the counts are those of a filter over every normalised row."""
    from liftlab.data.quality import EARLIEST
    from liftlab.engines.polars_engine import PolarsEngine

    base = dict(base_tables(tmp_path / "base"))
    odd = [
        dt.datetime(1985, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
        None,
        dt.datetime(1990, 1, 1, tzinfo=dt.UTC),  # on the bound: not counted
        dt.datetime(1989, 12, 31, 23, tzinfo=dt.UTC),
    ]  # an hour before: counted
    ts = base["orders"]["ts"].scatter(range(len(odd)), odd)
    base["orders"] = base["orders"].with_columns(ts)
    source = FolderSource(write_layout(layout, base, tmp_path / layout.id), layout.zone)
    as_of = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    report = PolarsEngine(source).quality(as_of)
    counts = {(c["table"], c["check"]): c["rows"] for c in report.checks}
    for table, column in (("orders", "ts"), ("contacts", "sent_at"), ("events", "ts")):
        col = pl.col(column)
        plain = (
            source.scan(table)
            .select(
                col.is_null().sum().alias("null"),
                ((col < EARLIEST) | (col > as_of + dt.timedelta(days=1))).sum().alias("out"),
            )
            .collect()
            .row(0, named=True)
        )
        assert counts[(table, f"{table}.{column} readable")] == plain["null"]
        assert counts[(table, f"{table}.{column} in range")] == plain["out"]
    assert counts[("orders", "orders.ts in range")] >= 2
    assert counts[("orders", "orders.ts readable")] >= 1


def test_csv_tables_beyond_the_memory_bound_are_parsed_at_each_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for one table, the first one read is kept and the others are parsed
    lazily (types inferred once): every table reads alike either way."""
    import liftlab.data.folder as folder

    data = write_layout(Layout(fmt="csv"), base_tables(tmp_path / "base"), tmp_path / "csv")
    kept = FolderSource(data)
    expected = {t: kept.scan(t).collect() for t in ("customers", "orders", "contacts")}
    monkeypatch.setattr(folder, "CSV_KEPT_BYTES", (data / "customers.csv").stat().st_size)
    bounded = FolderSource(data)
    for table, frame in expected.items():
        assert_frame_equal(bounded.scan(table).collect(), frame, check_exact=True)
    assert list(bounded._parsed) == ["customers"]
