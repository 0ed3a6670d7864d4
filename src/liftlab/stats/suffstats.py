"""Sufficient statistics of one metric in one arm.

Heavy data work ends here: everything statistical runs on these small frozen records.
They add together (``a + b``), so statistics computed on parts of the data, by another
engine, or hour by hour can be combined without rescanning anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass(frozen=True)
class ArmStats:
    """n, sum and sum of squares of a per-unit outcome ``y``, plus the same for its
    pre-period covariate ``x`` and the cross-product (zero when there is no covariate)."""

    n: int
    sum: float
    sum_sq: float
    pre_sum: float = 0.0
    pre_sum_sq: float = 0.0
    cross: float = 0.0

    def __add__(self, other: ArmStats) -> ArmStats:
        return ArmStats(
            self.n + other.n,
            self.sum + other.sum,
            self.sum_sq + other.sum_sq,
            self.pre_sum + other.pre_sum,
            self.pre_sum_sq + other.pre_sum_sq,
            self.cross + other.cross,
        )

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance of y (ddof=1)."""
        return _var(self.n, self.sum, self.sum_sq)

    @property
    def pre_mean(self) -> float:
        return self.pre_sum / self.n if self.n else math.nan

    @property
    def pre_variance(self) -> float:
        return _var(self.n, self.pre_sum, self.pre_sum_sq)

    @property
    def covariance(self) -> float:
        """Sample covariance of y and its pre-period value x (ddof=1)."""
        if self.n < 2:
            return math.nan
        return (self.cross - self.sum * self.pre_sum / self.n) / (self.n - 1)

    @classmethod
    def from_values(cls, y: ArrayLike, x: ArrayLike | None = None) -> ArmStats:
        """Build from unit-level arrays (tests and small data)."""
        import numpy as np

        y = np.asarray(y, dtype=float)
        if x is None:
            return cls(len(y), float(y.sum()), float((y * y).sum()))
        x = np.asarray(x, dtype=float)
        return cls(
            len(y), float(y.sum()), float((y * y).sum()),
            float(x.sum()), float((x * x).sum()), float((x * y).sum()),
        )


@dataclass(frozen=True)
class RatioStats:
    """Sufficient statistics of a ratio metric sum(num)/sum(den) over units (delta method)."""

    n: int
    num_sum: float
    num_sum_sq: float
    den_sum: float
    den_sum_sq: float
    cross: float

    def __add__(self, other: RatioStats) -> RatioStats:
        return RatioStats(
            self.n + other.n,
            self.num_sum + other.num_sum,
            self.num_sum_sq + other.num_sum_sq,
            self.den_sum + other.den_sum,
            self.den_sum_sq + other.den_sum_sq,
            self.cross + other.cross,
        )

    @property
    def mean(self) -> float:
        """The ratio itself: sum(num) / sum(den)."""
        return self.num_sum / self.den_sum if self.den_sum else math.nan

    @property
    def mean_variance(self) -> float:
        """Delta-method variance of the ratio estimate."""
        n = self.n
        if n < 2 or self.den_sum == 0:
            return math.nan
        mn, md = self.num_sum / n, self.den_sum / n
        vn = _var(n, self.num_sum, self.num_sum_sq)
        vd = _var(n, self.den_sum, self.den_sum_sq)
        cov = (self.cross - self.num_sum * self.den_sum / n) / (n - 1)
        r = mn / md
        return (vn - 2 * r * cov + r * r * vd) / (md * md * n)


def _var(n: int, s: float, ss: float) -> float:
    if n < 2:
        return math.nan
    return max((ss - s * s / n) / (n - 1), 0.0)
