"""The data checks count what a plain scan counts, whatever the files let them skip.

The polars engine answers most checks from the parquet statistics (row groups that cannot
hold a bad row are not read) and counts repeated ids on a bitmap; here every count is
compared with a direct polars computation on the whole table, for clean and dirty row
groups, a CSV copy (no statistics) and ids that a bitmap cannot hold.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from liftlab.data.folder import FolderSource
from liftlab.data.quality import EARLIEST, declare_checks
from liftlab.engines.polars_engine import PolarsEngine

AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _tables(root: Path, rng: np.random.Generator, n: int, dirty_groups: set[int],
            ids: str, csv: bool) -> None:
    """Orders in row groups of 50 rows; the groups in ``dirty_groups`` get every kind of bad
    row, the others none (so statistics can rule them out)."""
    groups = []
    for g in range(n // 50):
        k = 50
        ts = [START + dt.timedelta(hours=float(h)) for h in rng.uniform(0, 1000, k)]
        revenue = rng.lognormal(3, 1, k)
        customer = rng.integers(0, 40, k).astype(float)
        if g in dirty_groups:
            ts[0], ts[1], ts[2] = None, dt.datetime(1980, 1, 1, tzinfo=dt.UTC), \
                AS_OF + dt.timedelta(days=30)
            revenue[3], revenue[4], revenue[5] = np.nan, -12.5, np.inf
            customer[6] = np.nan
        groups.append(pl.DataFrame({
            "order_id": np.arange(g * 50, g * 50 + k), "customer_id": customer, "ts": ts,
            "channel": "web", "revenue": revenue}, schema_overrides={
            "ts": pl.Datetime("us", "UTC")}).with_columns(
            pl.col("customer_id").cast(pl.Int64, strict=False)))
    orders = pl.concat(groups)
    if ids == "repeated":  # the last order repeats two earlier ids
        orders = orders.with_columns(pl.when(pl.int_range(pl.len()) >= pl.len() - 2)
                                     .then(pl.col("order_id") - 7).otherwise("order_id")
                                     .alias("order_id"))
    elif ids == "sparse":  # too spread for a bitmap: hash count
        orders = orders.with_columns(pl.col("order_id") * 10**12)
    elif ids == "text":
        orders = orders.with_columns(pl.format("o-{}", pl.col("order_id") % 97))
    customers = pl.DataFrame({"customer_id": np.r_[np.arange(40), [3, 5]]})
    if csv:
        orders.write_csv(root / "orders.csv")
    else:
        orders.write_parquet(root / "orders.parquet", row_group_size=50, statistics=True)
    customers.write_parquet(root / "customers.parquet")


def _expected(root: Path) -> dict[tuple[str, str, str], int]:
    source = FolderSource(root)
    out = {}
    for check in declare_checks({t: source.schema(t).names() for t in ("orders", "customers")}):
        frame = source.scan(check.table).collect()
        col = frame[check.column]
        if check.kind == "duplicated":
            n = frame.height - source.raw(check.table).collect()[check.column].n_unique()
        elif check.kind == "not_finite":
            n = int((col.is_null() | ~col.is_finite()).sum())
        elif check.kind == "negative":
            n = int((col < 0).sum())
        elif check.kind == "out_of_range":
            n = int(((col < EARLIEST) | (col > AS_OF + dt.timedelta(days=1))).sum())
        else:
            n = col.null_count()
        out[(check.table, check.column, check.name)] = n
    return out


@pytest.mark.parametrize("dirty", [set(), {0}, {3}, {1, 5}])
@pytest.mark.parametrize(("ids", "csv"), [("unique", False), ("repeated", False),
                                          ("sparse", False), ("text", False),
                                          ("repeated", True)])
def test_check_counts_equal_a_full_scan(tmp_path: Path, dirty: set[int], ids: str,
                                        csv: bool) -> None:
    _tables(tmp_path, np.random.default_rng(len(dirty)), 300, dirty, ids, csv)
    report = PolarsEngine(FolderSource(tmp_path)).quality(AS_OF)
    got = {(c["table"], c["column"], c["check"]): c["rows"] for c in report.checks}
    want = _expected(tmp_path)
    assert got == want
    bad_rows = sum(n for (table, column, _), n in want.items()
                   if table == "orders" and column != "order_id")
    assert (bad_rows > 0) == bool(dirty)  # the dirty cases do have bad rows to count
