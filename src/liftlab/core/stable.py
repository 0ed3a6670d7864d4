"""Float aggregations whose result does not depend on the order of the rows.

Polars aggregates a group's rows on several threads and combines the partial results in the
order the threads finish, so the last bits of a float sum, and everything computed from it,
changed between two runs on the same data. Summing a group's values in sorted order, one
after the other, gives the same bits every time: reruns write byte-identical files.
"""

from __future__ import annotations

import polars as pl


def stable_sum(expr: pl.Expr) -> pl.Expr:
    """The sum of the sorted values, added one after the other (a plain ``sort().sum()`` is
    rewritten by polars' optimiser into an unordered sum); 0 for no values.

    Zeros are left out before the sort: in sorted order they sit between the negative and
    the positive values, where adding 0.0 leaves the running sum's bits unchanged, so the
    result is the same, and per-unit outcomes (mostly zero: most units do not buy in a
    window) sort several times faster (tests/test_perf_monitor.py compares)."""
    return expr.filter(expr != 0).sort().cum_sum().last().fill_null(0.0)


def stable_mean(expr: pl.Expr) -> pl.Expr:
    return stable_sum(expr) / expr.count()


def stable_std(expr: pl.Expr) -> pl.Expr:
    """The sample standard deviation (ddof 1), two-pass; null below two values."""
    n = expr.count()
    spread = stable_sum((expr - stable_mean(expr)) ** 2)
    return pl.when(n > 1).then((spread / (n - 1)).sqrt())
