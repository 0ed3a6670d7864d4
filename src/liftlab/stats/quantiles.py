"""Quantile treatment effects from a mergeable histogram per arm.

Each engine sorts every unit's value into a bin of a logarithmic sketch (DDSketch, Masson,
Rim and Lee 2019): values below ``ZERO`` in size share bin 0, others go to
``sign(v) (ceil(ln|v| / ln γ) + OFFSET)`` with ``γ = (1 + a) / (1 - a)``, ``a = RELATIVE``.
A bin's representative value ``2 γ^k / (γ + 1)`` is within ``a`` (relative) of every value
in it, so a quantile read off the histogram is within 0.5% of the sample quantile; the
histograms of parts add (bin by bin), and a few hundred bins per arm make a small table.

The quantile is the lower sample quantile (the ``ceil(q n)``-th smallest value, as
``numpy.quantile(method="inverted_cdf")``), the effect the difference of the arms'
quantiles. Its interval is the percentile bootstrap of the histograms computed exactly
rather than by resampling: the bootstrap distribution of an order statistic is binomial,
``P(q* <= v_j) = P(Binomial(n, F_j) >= ceil(q n))`` with ``F_j`` the histogram's share up to
bin ``j``, and the difference's is the convolution of the two arms' (no seed, no Monte Carlo
error). The bootstrap of a sample quantile is consistent where the distribution has a
positive density (Bickel and Freedman 1981); ``tests/test_quantiles.py`` checks the coverage
on zero-inflated lognormal spend. Where a quantile sits on an atom (zero spend for most
customers: the median of a 3%-buyer population) both arms' quantile is the atom and the
effect is 0 with a degenerate interval: the data cannot show a change there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

RELATIVE = 0.005
GAMMA = (1 + RELATIVE) / (1 - RELATIVE)
LOG_GAMMA = math.log(GAMMA)
ZERO = 1e-6
# ceil(ln(ZERO) / ln(GAMMA)) is -1382: bins of values from ZERO upward are positive
OFFSET = 1400
TAIL = 1e-12  # bootstrap probabilities below this are left out of the convolution
DEFAULT_QUANTILES = (0.5, 0.9)


def bin_of(values: np.ndarray) -> np.ndarray:
    """Each value's bin (the engines compute the same expression)."""
    v = np.asarray(values, dtype=float)
    size = np.abs(v)
    with np.errstate(divide="ignore"):
        k = np.ceil(np.log(np.where(size < ZERO, 1.0, size)) / LOG_GAMMA) + OFFSET
    return np.where(size < ZERO, 0, np.sign(v) * k).astype(np.int64)


def value_of(bins: np.ndarray) -> np.ndarray:
    """A bin's representative value (0 for bin 0)."""
    b = np.asarray(bins, dtype=np.int64)
    k = np.abs(b) - OFFSET
    return np.where(b == 0, 0.0, np.sign(b) * 2 * GAMMA ** k.astype(float) / (GAMMA + 1))


@dataclass(frozen=True)
class Histogram:
    """Counts of units per bin, bins sorted by value."""

    bins: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, bins: Any, counts: Any) -> Histogram:
        """From (bin, count) pairs in any order, bins repeated (parts of the data) merged."""
        b = np.asarray(bins, dtype=np.int64)
        c = np.asarray(counts, dtype=np.int64)
        merged, inverse = np.unique(b, return_inverse=True)
        total = np.zeros(len(merged), dtype=np.int64)
        np.add.at(total, inverse, c)
        order = np.argsort(value_of(merged), kind="stable")
        return cls(merged[order], total[order])

    @classmethod
    def from_values(cls, values: Any) -> Histogram:
        b = bin_of(np.asarray(values, dtype=float))
        return cls.of(b, np.ones(len(b), dtype=np.int64))

    def __add__(self, other: Histogram) -> Histogram:
        return Histogram.of(np.r_[self.bins, other.bins], np.r_[self.counts, other.counts])

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        return float(_quantiles(self.counts[None, :], value_of(self.bins), q)[0])


def _quantiles(counts: np.ndarray, values: np.ndarray, q: float) -> np.ndarray:
    """The lower q-quantile of each row of ``counts`` (histograms over ``values``)."""
    cum = np.cumsum(counts, axis=1)
    rank = np.maximum(np.ceil(q * cum[:, -1]), 1)
    idx = (cum < rank[:, None]).sum(axis=1)
    return values[np.minimum(idx, len(values) - 1)]


@dataclass(frozen=True)
class QuantileEffect:
    q: float
    treatment: float
    holdout: float
    diff: float
    ci: tuple[float, float]
    n_treatment: int
    n_holdout: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantile": self.q,
            "treatment": self.treatment,
            "holdout": self.holdout,
            "diff": self.diff,
            "diff_ci": list(self.ci),
            "n_treatment": self.n_treatment,
            "n_holdout": self.n_holdout,
            "method": f"difference of sample quantiles on a {RELATIVE:.1%}-relative "
            "histogram per arm; exact percentile bootstrap",
        }


def quantile_effect(
    treatment: Histogram, holdout: Histogram, q: float, alpha: float = 0.05
) -> QuantileEffect:
    """The difference of the arms' q-quantiles with its bootstrap interval."""
    if treatment.n < 2 or holdout.n < 2:
        raise ValueError(f"too few units (treatment {treatment.n}, holdout {holdout.n})")
    (vt, pt), (vh, ph) = bootstrap_law(treatment, q), bootstrap_law(holdout, q)
    diffs = np.subtract.outer(vt, vh).ravel()
    weights = np.multiply.outer(pt, ph).ravel()
    order = np.argsort(diffs, kind="stable")
    cum = np.cumsum(weights[order]) / weights.sum()
    lo = diffs[order][min(np.searchsorted(cum, alpha / 2), len(cum) - 1)]
    hi = diffs[order][min(np.searchsorted(cum, 1 - alpha / 2), len(cum) - 1)]
    qt, qh = treatment.quantile(q), holdout.quantile(q)
    return QuantileEffect(q, qt, qh, qt - qh, (float(lo), float(hi)), treatment.n, holdout.n)


def bootstrap_law(h: Histogram, q: float) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap distribution of the histogram's lower q-quantile: its values and their
    probabilities (those above ``TAIL``)."""
    from scipy import stats as sps

    n = h.n
    rank = max(math.ceil(q * n), 1)
    share = np.cumsum(h.counts) / n
    below = sps.binom.sf(rank - 1, n, share)  # P(q* <= v_j)
    below[-1] = 1.0
    prob = np.diff(np.r_[0.0, below])
    keep = prob > TAIL
    return value_of(h.bins)[keep], prob[keep]
