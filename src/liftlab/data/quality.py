"""Data-quality checks on the contract tables: one lazy pass per table counts every problem,
and rows are located only for the checks that failed.

Problems that make an honest analysis impossible (duplicate ids, NaN or infinite money) are
errors naming the table, column and rows; the rest (returns, timestamps outside any plausible
range, rows without a customer) are warnings that the report shows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import polars as pl

from liftlab.data.folder import FolderSource
from liftlab.errors import Problem

EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
MAX_ROWS_SHOWN = 10
TS_COLUMN = {"orders": "ts", "events": "ts", "contacts": "sent_at"}


@dataclass(frozen=True)
class Check:
    """A condition that flags bad rows, and what to say when some are found."""

    table: str
    column: str
    name: str
    bad: pl.Expr
    level: Literal["error", "warning"]
    message: str
    hint: str = ""
    raw: bool = False  # evaluate on the table as stored (ids before any cast)


@dataclass(frozen=True)
class QualityReport:
    errors: tuple[Problem, ...]
    warnings: tuple[str, ...]
    checks: tuple[dict[str, object], ...]


def _checks(source: FolderSource, as_of: dt.datetime) -> list[Check]:
    out = [
        Check("customers", "customer_id", "unique customer ids",
              pl.col("customer_id").is_duplicated(), "error",
              "{n} rows share a customer id with another row",
              "each customer must have exactly one row", raw=True),
        Check("orders", "order_id", "unique order ids", pl.col("order_id").is_duplicated(),
              "error", "{n} rows share an order id with another row (loaded twice?)",
              "remove the duplicated rows", raw=True),
    ]
    orders = source.schema("orders") if source.has("orders") else {}
    for col in ("revenue", "margin"):
        if col in orders:
            out.append(Check("orders", col, f"finite {col}",
                             pl.col(col).is_null() | ~pl.col(col).is_finite(), "error",
                             f"{col} is NaN, infinite or empty in {{n}} row(s)",
                             "fix the export, or drop these orders"))
    if "revenue" in orders:
        out.append(Check("orders", "revenue", "returns (negative revenue)",
                         pl.col("revenue") < 0, "warning",
                         "{n} row(s) with negative revenue are counted as returns"))
    late = as_of + dt.timedelta(days=1)
    for table, ts in TS_COLUMN.items():
        if not source.has(table):
            continue
        schema = source.schema(table)
        if ts in schema:
            out.append(Check(table, ts, f"{table}.{ts} in range",
                             (pl.col(ts) < EARLIEST) | (pl.col(ts) > late), "warning",
                             f"{{n}} row(s) have {ts} before {EARLIEST:%Y} or after the analysis "
                             "date: check the export's time zone"))
            out.append(Check(table, ts, f"{table}.{ts} readable", pl.col(ts).is_null(),
                             "warning", f"{{n}} row(s) have an empty or unreadable {ts} and are "
                             "ignored"))
        if "customer_id" in schema:
            out.append(Check(table, "customer_id", f"{table} rows have a customer",
                             pl.col("customer_id").is_null(), "warning",
                             "{n} row(s) have no customer_id and are ignored"))
    return [c for c in out if source.has(c.table) and c.column in source.schema(c.table)]


def check_quality(source: FolderSource, as_of: dt.datetime) -> QualityReport:
    """Run every check on the tables present; ``as_of`` bounds plausible timestamps."""
    checks = _checks(source, as_of)
    counts: dict[int, int] = {}
    for table in dict.fromkeys(c.table for c in checks):
        for raw in (True, False):
            mine = [(i, c) for i, c in enumerate(checks) if c.table == table and c.raw == raw]
            if not mine:
                continue
            lf = source.raw(table) if raw else source.scan(table)
            row = lf.select(c.bad.sum().alias(str(i)) for i, c in mine).collect().row(0)
            counts.update({i: int(v or 0) for (i, _), v in zip(mine, row, strict=True)})
    errors: list[Problem] = []
    warnings: list[str] = []
    summary: list[dict[str, object]] = []
    for i, c in enumerate(checks):
        n = counts[i]
        summary.append({"check": c.name, "table": c.table, "column": c.column,
                        "ok": n == 0 or c.name.startswith("returns"), "rows": n})
        if n == 0:
            continue
        if c.level == "error":
            errors.append(Problem(c.message.format(n=n), table=c.table, column=c.column,
                                  rows=_first_rows(source, c), row_count=n, hint=c.hint or None))
        else:
            warnings.append(f"{c.table}.{c.column}: " + c.message.format(n=f"{n:,}"))
    return QualityReport(tuple(errors), tuple(warnings), tuple(summary))


def _first_rows(source: FolderSource, check: Check) -> tuple[int, ...]:
    lf = source.raw(check.table) if check.raw else source.scan(check.table)
    found = (lf.with_row_index("__row", offset=1).filter(check.bad).select("__row")
             .head(MAX_ROWS_SHOWN).collect())
    return tuple(int(r) for r in found["__row"])
