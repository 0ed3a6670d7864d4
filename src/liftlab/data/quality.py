"""Data-quality checks on the contract tables.

Each check is declared once (table, column, kind) and every engine compiles its kind to its
own expression, counts all checks of a table in one pass, and locates rows only for the
checks that failed. Problems that make an honest analysis impossible (duplicate ids, NaN,
infinite or absurdly large money) are errors naming the table, column and rows; the rest
(returns, timestamps outside any plausible range, rows without a customer) are warnings that
the report shows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from liftlab.errors import Problem

EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
# Money beyond this (a quadrillion in any currency) is a broken export, and its sums and
# squares overflow to infinity: refused like NaN.
MAX_AMOUNT = 1e15
MAX_ROWS_SHOWN = 10
TS_COLUMN = {"orders": "ts", "events": "ts", "contacts": "sent_at"}
CheckKind = Literal["duplicated", "not_finite", "negative", "out_of_range", "null"]


@dataclass(frozen=True)
class Check:
    """A kind of bad row in one column, and what to say when some are found."""

    table: str
    column: str
    name: str
    kind: CheckKind
    level: Literal["error", "warning", "info"]
    message: str
    hint: str = ""


@dataclass(frozen=True)
class QualityReport:
    """Errors stop the analysis; warnings and notes (``info`` checks such as returns, which
    are counted as they should be) are shown on the report."""

    errors: tuple[Problem, ...]
    warnings: tuple[str, ...]
    checks: tuple[dict[str, object], ...]
    notes: tuple[str, ...] = ()


def declare_checks(columns: Mapping[str, Sequence[str]]) -> list[Check]:
    """The checks that apply to the tables present (``columns``: table -> column names)."""
    out = [
        Check("customers", "customer_id", "customers have an id", "null", "error",
              "{n} row(s) have no customer_id", "every customer needs an id"),
        Check("customers", "customer_id", "unique customer ids", "duplicated", "error",
              "{n} extra row(s) repeat a customer id",
              "each customer must have exactly one row"),
        Check("orders", "order_id", "unique order ids", "duplicated", "error",
              "{n} extra row(s) repeat an order id (loaded twice?)",
              "remove the duplicated rows"),
    ]
    for col in ("revenue", "margin"):
        out.append(Check("orders", col, f"finite {col}", "not_finite", "error",
                         f"{col} is NaN, infinite or empty (or beyond ±{MAX_AMOUNT:,.0f}) "
                         "in {n} row(s)",
                         "fix the export, or drop these orders"))
    out.append(Check("orders", "revenue", "returns (negative revenue)", "negative", "info",
                     "{n} row(s) with negative revenue are counted as returns"))
    for table, ts in TS_COLUMN.items():
        out.append(Check(table, ts, f"{table}.{ts} in range", "out_of_range", "warning",
                         f"{{n}} row(s) have {ts} before {EARLIEST:%Y} or in the future "
                         "(after today): check the export's time zone"))
        out.append(Check(table, ts, f"{table}.{ts} readable", "null", "warning",
                         f"{{n}} row(s) have an empty or unreadable {ts} and are ignored"))
        out.append(Check(table, "customer_id", f"{table} rows have a customer", "null",
                         "warning", "{n} row(s) have no customer_id and are ignored"))
    return [c for c in out if c.column in columns.get(c.table, ())]


def polars_count(check: Check, as_of: dt.datetime) -> pl.Expr:
    """How many rows fail the check (for duplicates: rows beyond the first of each id)."""
    if check.kind == "duplicated":  # null ids are a check of their own
        return pl.col(check.column).count() - pl.col(check.column).drop_nulls().n_unique()
    return polars_condition(check, as_of).sum()


def polars_condition(check: Check, as_of: dt.datetime) -> pl.Expr:
    """The rows involved in a failed check (for duplicates: every row sharing an id)."""
    col = pl.col(check.column)
    if check.kind == "duplicated":
        return col.is_duplicated() & col.is_not_null()
    if check.kind == "not_finite":
        return col.is_null() | ~col.is_finite() | (col.abs() > MAX_AMOUNT)
    if check.kind == "negative":
        return col < 0
    if check.kind == "out_of_range":
        return (col < EARLIEST) | (col > as_of + dt.timedelta(days=1))
    return col.is_null()


def build_report(checks: Sequence[Check], counts: Sequence[int],
                 first_rows: Callable[[Check], tuple[int, ...]]) -> QualityReport:
    """Turn per-check counts into errors, warnings and the data-checks table of the report."""
    errors: list[Problem] = []
    warnings: list[str] = []
    notes: list[str] = []
    summary: list[dict[str, object]] = []
    for c, n in zip(checks, counts, strict=True):
        summary.append({"check": c.name, "table": c.table, "column": c.column,
                        "ok": n == 0 or c.level == "info", "rows": n})
        if n == 0:
            continue
        if c.level == "error":
            errors.append(Problem(c.message.format(n=n), table=c.table, column=c.column,
                                  rows=first_rows(c), row_count=n, hint=c.hint or None))
        else:
            (notes if c.level == "info" else warnings).append(
                f"{c.table}.{c.column}: " + c.message.format(n=f"{n:,}"))
    return QualityReport(tuple(errors), tuple(warnings), tuple(summary), tuple(notes))
