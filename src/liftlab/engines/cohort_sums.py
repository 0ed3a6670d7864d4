"""The monitor's cohort sums, shared between the experiments of a daily run.

The monitor sums each per-unit value (its square, the products of a metric with its
covariate) per cohort: a channel, an arm and a maturity hour. A sum is ``stable_sum``
(core/stable.py): the group's nonzero values added in sorted order, the same bits every run.
Sorting every group's values is most of that group-by's time (1 s at 2 M customers).

A daily run's experiments on the same data have the same per-unit values row for row (the
per-unit pass is shared, engines/shared.py) and differ only in their arms. A column's
nonzero values sorted once (positions and values) serve every experiment: the rows of one
group, taken in the column's sorted order, are that group's values sorted (a stable
partition of a sorted sequence is sorted), so adding them one after the other per group
(``np.bincount``: one pass in index order) gives the bits of sorting within the group.
Equal values have equal bits, so the order among ties does not matter.

tests/test_perf_cohort_sums.py checks the sums against the polars group-by, to the bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from liftlab.engines.shared import Content, shared_result


@dataclass(frozen=True)
class SortedColumns:
    """What a daily run's experiments share: per statistic column, the positions of its
    nonzero values in increasing order of value, and those values; each row's group of the
    keys but the arm (``base``: its index into ``base_keys``)."""

    positions: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    base: np.ndarray
    base_keys: pl.DataFrame

    @staticmethod
    def of(frame: pl.DataFrame, keys: Sequence[str], columns: dict[str, pl.Expr]) -> SortedColumns:
        positions, values = {}, {}
        for col in frame.select(**columns).get_columns():
            v = col.to_numpy()
            nonzero = np.flatnonzero(v != 0)
            order = nonzero[np.argsort(v[nonzero])]
            positions[col.name], values[col.name] = order, v[order]
        base_keys, base = _codes(frame, keys)
        return SortedColumns(positions, values, base, base_keys)

    def nbytes(self) -> int:
        arrays = (*self.positions.values(), *self.values.values(), self.base)
        return sum(a.nbytes for a in arrays) + int(self.base_keys.estimated_size())


def _codes(frame: pl.DataFrame, keys: Sequence[str]) -> tuple[pl.DataFrame, np.ndarray]:
    """The distinct ``keys`` (sorted) and each row's index into them."""
    groups = frame.select(keys).with_row_index("_row").group_by(keys).agg(pl.col("_row")).sort(keys)
    code = np.empty(frame.height, dtype=np.int64)
    code[groups["_row"].explode().to_numpy()] = np.repeat(
        np.arange(groups.height), groups["_row"].list.len().to_numpy()
    )
    return groups.drop("_row"), code


def statistic_columns(
    names: Sequence[str], products: Sequence[tuple[str, str]]
) -> dict[str, pl.Expr]:
    """The summed columns by output name: each value, its square, each product."""
    out: dict[str, pl.Expr] = {}
    for n in names:
        out[f"s:{n}"] = pl.col(n)
        out[f"q:{n}"] = pl.col(n) ** 2
    for a, b in products:
        out[f"x:{a}:{b}"] = pl.col(a) * pl.col(b)
    return out


def cohort_sums(
    frame: pl.DataFrame, names: Sequence[str], products: Sequence[tuple[str, str]], source: object
) -> pl.DataFrame:
    """Per group of ``xch``, ``arm`` and ``hour``: ``n``, and per name ``s:`` (sum), ``q:``
    (sum of squares), ``nz:`` (nonzero count), then ``x:a:b`` (sum of products): the columns
    and bits of the polars group-by with ``stable_sum``; groups in sorted key order.

    What does not depend on the arms (``SortedColumns``) is kept for the run (``source``:
    the data folder) and found again by comparing the channels, hours and values by value:
    an experiment whose rows differ in any of them builds its own. No key or value is null
    (the caller fills them)."""
    columns = statistic_columns(names, products)
    shared = frame.select("xch", "hour", *names)
    # placed among the kept results by row count, confirmed by comparing every row
    content = Content(shared, (shared.height, 0))
    kept = shared_result(
        source,
        ("monitor-cohort-sums", tuple(columns)),
        lambda: SortedColumns.of(shared, ["xch", "hour"], columns),
        SortedColumns.nbytes,
        content,
    )
    arm = frame["arm"]
    arms = arm.unique().sort()
    code = kept.base * arms.len()
    for i, name in enumerate(arms.to_list()[1:], start=1):
        code += (arm == name).to_numpy() * i
    width = kept.base_keys.height * arms.len()
    n = np.bincount(code, minlength=width)
    present = np.flatnonzero(n)
    out: dict[str, np.ndarray] = {"n": n[present].astype(np.int64)}

    def total(name: str) -> np.ndarray:  # the sorted nonzero values added in order
        return np.bincount(code[kept.positions[name]], weights=kept.values[name], minlength=width)[
            present
        ].astype(np.float64)

    for name in names:
        out[f"s:{name}"] = total(f"s:{name}")
        out[f"q:{name}"] = total(f"q:{name}")
        nonzero = frame[name].to_numpy() != 0
        out[f"nz:{name}"] = np.bincount(code[nonzero], minlength=width)[present].astype(np.int64)
    for a, b in products:
        out[f"x:{a}:{b}"] = total(f"x:{a}:{b}")
    base = kept.base_keys[present // arms.len()]
    return pl.DataFrame(
        [
            base["xch"],
            arms.gather(present % arms.len()).alias("arm"),
            base["hour"],
            *(pl.Series(k, v) for k, v in out.items()),
        ]
    ).sort("xch", "arm", "hour")
