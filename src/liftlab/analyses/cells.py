"""The table of sufficient statistics, and how to slice it.

Every engine ends in this table: one row per (arm of each channel x segment values), with
``n``, ``sum:<measure>`` and ``prod:<a>:<b>`` columns (and ``cap:<measure>``, the cap of a
winsorised measure, the same on every row). Any marginal (a channel's arm, a
segment, a factorial cell) is the sum of some of its rows, because sufficient statistics add.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product

import polars as pl

from liftlab.spec.aggregation import arm_col, cap_col, pre_name, prod_col, sum_col
from liftlab.spec.models import Experiment
from liftlab.stats.regression import Moments
from liftlab.stats.suffstats import ArmStats, RatioStats


@dataclass(frozen=True)
class CellTable:
    frame: pl.DataFrame
    channels: tuple[str, ...]
    segments: tuple[str, ...]

    def where(self, arms: Mapping[str, str] | None = None,
              segment: Mapping[str, str] | None = None) -> pl.DataFrame:
        """Rows in the given arm of each named channel and the given segment values."""
        cond = pl.lit(True)
        for ch, arm in (arms or {}).items():
            cond = cond & (pl.col(arm_col(ch)) == arm)
        for col, value in (segment or {}).items():
            cond = cond & (pl.col(col) == value)
        return self.frame.filter(cond)

    def cap(self, measure: str) -> float | None:
        """The value a winsorised measure was capped at (None when it was not capped)."""
        column = cap_col(measure)
        if column not in self.frame.columns or self.frame.is_empty():
            return None
        return float(self.frame[column][0])

    def total(self, column: str, rows: pl.DataFrame) -> float:
        return float(rows[column].sum()) if column in rows.columns else 0.0

    def arm_stats(self, measure: str, rows: pl.DataFrame, covariate: bool = False) -> ArmStats:
        n = int(rows["n"].sum())
        s = self.total(sum_col(measure), rows)
        ss = self.total(prod_col(measure, measure), rows)
        if not covariate:
            return ArmStats(n, s, ss)
        pre = pre_name(measure)
        return ArmStats(n, s, ss, self.total(sum_col(pre), rows),
                        self.total(prod_col(pre, pre), rows),
                        self.total(prod_col(measure, pre), rows))

    def ratio_stats(self, num: str, den: str, rows: pl.DataFrame) -> RatioStats:
        return RatioStats(int(rows["n"].sum()), self.total(sum_col(num), rows),
                          self.total(prod_col(num, num), rows), self.total(sum_col(den), rows),
                          self.total(prod_col(den, den), rows),
                          self.total(prod_col(num, den), rows))

    def moments(self, names: Sequence[str], rows: pl.DataFrame) -> Moments:
        """The sums and cross-products of the measures ``names`` (regression adjustment)."""
        import numpy as np

        k = len(names)
        cross = np.zeros((k, k))
        for i, a in enumerate(names):
            for j in range(i, k):
                b = names[j]
                col = prod_col(a, b) if prod_col(a, b) in rows.columns else prod_col(b, a)
                cross[i, j] = cross[j, i] = float(rows[col].sum())
        sums = np.array([float(rows[sum_col(a)].sum()) for a in names])
        return Moments(tuple(names), int(rows["n"].sum()), sums, cross)

    def arm_counts(self, channel: str) -> dict[str, int]:
        col = arm_col(channel)
        counts = (self.frame.filter(pl.col(col).is_not_null()).group_by(col)
                  .agg(pl.col("n").sum()).sort(col))
        return {str(a): int(n) for a, n in counts.iter_rows()}

    def segment_values(self, segment: str) -> list[str]:
        return sorted(str(v) for v in self.frame[segment].unique().to_list())

    def factorial_cells(self, measure: str, channels: tuple[str, ...],
                        treated_arm: dict[str, str]) -> dict[tuple[bool, ...], ArmStats]:
        """ArmStats per factorial cell (True = in ``treated_arm`` of that channel)."""
        cells: dict[tuple[bool, ...], ArmStats] = {}
        for key in product((False, True), repeat=len(channels)):
            arms = {ch: (treated_arm[ch] if on else "holdout")
                    for ch, on in zip(channels, key, strict=True)}
            cells[key] = self.arm_stats(measure, self.where(arms))
        return cells


def cell_table(frame: pl.DataFrame, spec: Experiment, segments: tuple[str, ...]) -> CellTable:
    return CellTable(frame, tuple(spec.channels), segments)
