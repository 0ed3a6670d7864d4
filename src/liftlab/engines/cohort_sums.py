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

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from liftlab.engines.shared import shared_result


@dataclass(frozen=True)
class SortedColumns:
    """What a daily run's experiments share: per statistic column, the positions of its
    nonzero values in increasing order of value and those values; each row's (channel,
    hour) group (``base``: its index into ``base_keys``). Not the frame they came from
    (keeping 5 M rows evicted the run's other shared results): each use checks them
    against its own rows (``holds``)."""

    positions: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    base: np.ndarray
    base_keys: pl.DataFrame

    @staticmethod
    def of(frame: pl.DataFrame, columns: pl.DataFrame) -> SortedColumns:
        positions, values = {}, {}
        for col in columns.get_columns():
            v = col.to_numpy()
            nonzero = np.flatnonzero(v != 0)
            order = nonzero[np.argsort(v[nonzero])]
            positions[col.name], values[col.name] = order.astype(np.int32), v[order]
        groups = (
            frame.select("xch", "hour")
            .with_row_index("_row")
            .group_by("xch", "hour")
            .agg(pl.col("_row"))
            .sort("xch", "hour")
        )
        base = np.empty(frame.height, dtype=np.int32)
        base[groups["_row"].explode().to_numpy()] = np.repeat(
            np.arange(groups.height, dtype=np.int32), groups["_row"].list.len().to_numpy()
        )
        return SortedColumns(positions, values, base, groups.drop("_row"))

    def nbytes(self) -> int:
        arrays = (*self.positions.values(), *self.values.values(), self.base)
        return sum(a.nbytes for a in arrays) + int(self.base_keys.estimated_size())

    def holds(self, frame: pl.DataFrame, names: Sequence[str]) -> bool:
        """Whether ``frame``'s rows are the ones these came from: each row's channel and
        hour are its ``base`` group's, and each value column (``s:`` name) has nonzero
        values exactly at the kept positions, equal to the kept values. Then its squares
        and products are the kept ones too, up to the sign of zeros (which no sum adds)."""
        if len(self.base) != frame.height:
            return False
        hours = self.base_keys["hour"].dt.epoch("us").to_numpy()
        if not np.array_equal(hours[self.base], frame["hour"].dt.epoch("us").to_numpy()):
            return False
        channels = self.base_keys["xch"].unique().sort()
        of_base = self.base_keys["xch"].rank("dense").cast(pl.Int64).to_numpy() - 1
        xch = np.full(frame.height, -1, dtype=np.int64)
        for i, name in enumerate(channels.to_list()):
            xch[(frame["xch"] == name).to_numpy()] = i
        if not np.array_equal(of_base[self.base], xch):
            return False
        for name in names:
            v, at = frame[name].to_numpy(), self.positions[f"s:{name}"]
            if np.count_nonzero(v) != len(at) or not np.array_equal(
                v[at], self.values[f"s:{name}"]
            ):
                return False
        return True


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
    frame: pl.DataFrame,
    names: Sequence[str],
    products: Sequence[tuple[str, str]],
    source: object,
    key: Hashable,
) -> pl.DataFrame:
    """Per group of ``xch``, ``arm`` and ``hour``: ``n``, and per name ``s:`` (sum), ``q:``
    (sum of squares), ``nz:`` (nonzero count), then ``x:a:b`` (sum of products): the columns
    and bits of the polars group-by with ``stable_sum``; groups in sorted key order.

    What does not depend on the arms (``SortedColumns``) is kept for the run (``source``:
    the data folder; ``key``: what places it, e.g. the exposures' digest) and checked
    against this frame's rows before use (``SortedColumns.holds``): rows it does not hold
    are sorted here. No key or value is null (the caller fills them)."""
    exprs = statistic_columns(names, products)

    def build() -> SortedColumns:
        return SortedColumns.of(frame, frame.select(**exprs))

    kept = shared_result(
        source, ("monitor-cohort-sums", tuple(exprs), key), build, SortedColumns.nbytes
    )
    if not kept.holds(frame, names):  # not the rows the kept order came from
        kept = build()
    arm = frame["arm"]
    arms = arm.unique().sort()
    code = kept.base.astype(np.int64) * arms.len()
    for i, name in enumerate(arms.to_list()[1:], start=1):
        code += (arm == name).to_numpy() * i
    width = kept.base_keys.height * arms.len()
    n = np.bincount(code, minlength=width)
    present = np.flatnonzero(n)
    out: dict[str, np.ndarray] = {"n": n[present].astype(np.int64)}

    def total(name: str, at: np.ndarray | None = None) -> np.ndarray:
        """The sorted nonzero values added in order, per group."""
        at = code[kept.positions[name]] if at is None else at
        return np.bincount(at, weights=kept.values[name], minlength=width)[present].astype(
            np.float64
        )

    for name in names:
        at = code[kept.positions[f"s:{name}"]]  # the rows of its nonzero values
        out[f"s:{name}"] = total(f"s:{name}", at)
        out[f"q:{name}"] = total(f"q:{name}")
        out[f"nz:{name}"] = np.bincount(at, minlength=width)[present].astype(np.int64)
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
