"""Float aggregations whose result does not depend on the order of the rows.

Polars aggregates a group's rows on several threads and combines the partial results in the
order the threads finish, so the last bits of a float sum, and everything computed from it,
changed between two runs on the same data. Summing a group's values in sorted order, one
after the other, gives the same bits every time: reruns write byte-identical files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl


def stable_sum(expr: pl.Expr) -> pl.Expr:
    """The sum of the sorted values, added one after the other (a plain ``sort().sum()`` is
    rewritten by polars' optimiser into an unordered sum); 0 for no values."""
    return expr.sort().cum_sum().last().fill_null(0.0)


def stable_mean(expr: pl.Expr) -> pl.Expr:
    return stable_sum(expr) / expr.count()


def stable_std(expr: pl.Expr) -> pl.Expr:
    """The sample standard deviation (ddof 1), two-pass; null below two values."""
    n = expr.count()
    spread = stable_sum((expr - stable_mean(expr)) ** 2)
    return pl.when(n > 1).then((spread / (n - 1)).sqrt())


def stable_sums(frame: pl.DataFrame, by: Sequence[str], sums: Mapping[str, pl.Expr],
                aggs: Sequence[pl.Expr] = ()) -> pl.DataFrame:
    """``frame.group_by(by).agg(*aggs, *(stable_sum(e).alias(n) for n, e in sums.items()))``
    for many small groups (one per customer), with the same bits. Each expression of ``sums``
    is evaluated row by row; a null row does not count (``pl.when(cond).then(value)`` sums
    ``value`` over the rows where ``cond`` holds), and a group without any sums to 0.0.

    Why: ``stable_sum`` in a group-by sorts every group on its own, which costs about ten
    times the plain sum over a million groups of a few rows. Here the rows are sorted once by
    the group keys and the value, and ``np.bincount`` adds them one after the other in that
    order: the same additions in the same order as ``sort().cum_sum().last()``, so the same
    result, bit for bit (``tests/test_stable.py`` checks both routes against each other)."""
    keys = list(by)
    # Every frame below is in the order of the group keys (nulls first), so they line up.
    ordered = frame.sort(keys)
    out = (ordered.group_by(keys, maintain_order=True).agg(aggs) if aggs
           else ordered.select(keys).unique(maintain_order=True))
    for name, expr in sums.items():
        # a group's null values sort after its others and add 0.0 (a sum never ends at
        # -0.0: np.bincount starts from +0.0), so they change nothing
        values = (frame.select(*keys, expr.cast(pl.Float64).alias("_v"))
                  .sort([*keys, "_v"], nulls_last=[False] * len(keys) + [True])
                  .select(pl.struct(keys).rle_id().alias("_g"), pl.col("_v").fill_null(0.0)))
        total = np.bincount(values["_g"].to_numpy(), weights=values["_v"].to_numpy())
        out = out.with_columns(pl.Series(name, total, dtype=pl.Float64))
    return out
