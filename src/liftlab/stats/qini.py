"""Qini and uplift curves of a ranking, with bands, on randomised data.

The customers of one action's arm and of the holdout are ranked by predicted effect (best
first) and cut into equal bins of rank. Each bin keeps, per arm, the count, the sum and the
sum of squares of the outcome: the curves, their areas and their bands are computed from that
small table.

- Qini curve (Radcliffe 2007, per customer): Q(phi) = S_t(phi)/N_t - S_c(phi)/N_c, the sums of
  the outcome over the top ``phi`` share of each arm divided by the arm's size: the
  incremental outcome per customer of the population when the top ``phi`` are treated. Q(1) is
  the difference in means, the experiment's direct estimate of the average effect.
- Uplift at the top ``phi``: the difference in means among the top ``phi`` of each arm.
- AUUC: the area under Q over phi in [0, 1] (trapezoids from Q(0) = 0); random targeting gives
  Q(1)/2, and the Qini coefficient is AUUC - Q(1)/2 (0 for a ranking that knows nothing).

Bands and intervals come from the Poisson bootstrap, drawn per bin: a customer's bootstrap
weight is Poisson(1), so a bin's weighted (count, sum) has mean (n, S) and covariance
[[n, S], [S, Q]] (Q the sum of squares); with hundreds of customers per bin that pair is drawn
as a bivariate normal, independent across bins (percentile intervals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftlab.stats.frequentist import welch
from liftlab.stats.suffstats import ArmStats

BINS = 100
DRAWS = 2000
TOP_SHARES = (0.1, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class RankBins:
    """Per bin of rank (best first) and arm (0 = holdout, 1 = treated): n, sum, sum of squares;
    ``score`` is the mean prediction of the bin."""

    n: np.ndarray  # (bins, 2)
    s: np.ndarray
    q: np.ndarray
    score: np.ndarray  # (bins,)

    @classmethod
    def of(cls, score: np.ndarray, y: np.ndarray, treated: np.ndarray,
           bins: int = BINS) -> RankBins:
        order = np.argsort(-score, kind="stable")
        bins = max(1, min(bins, score.size))
        edges = np.linspace(0, score.size, bins + 1).round().astype(np.int64)
        label = np.empty(score.size, dtype=np.int64)
        label[order] = np.searchsorted(edges, np.arange(score.size), side="right") - 1
        arm = treated.astype(np.int64)
        n = np.zeros((bins, 2))
        s = np.zeros((bins, 2))
        q = np.zeros((bins, 2))
        np.add.at(n, (label, arm), 1.0)
        np.add.at(s, (label, arm), y)
        np.add.at(q, (label, arm), y * y)
        mean_score = np.bincount(label, weights=score, minlength=bins) / np.maximum(
            np.bincount(label, minlength=bins), 1)
        return cls(n, s, q, mean_score)

    def draws(self, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` Poisson-bootstrap replicates of (n, s), each (k, bins, 2)."""
        rng = np.random.default_rng(seed)
        z1 = rng.standard_normal((k, *self.n.shape))
        z2 = rng.standard_normal((k, *self.n.shape))
        sd_n = np.sqrt(self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(self.n > 0, self.s / np.sqrt(self.n * self.q), 0.0)
        rho = np.nan_to_num(np.clip(rho, -1.0, 1.0))
        sd_s = np.sqrt(self.q)
        n = self.n + sd_n * z1
        s = self.s + sd_s * (rho * z1 + np.sqrt(1.0 - rho**2) * z2)
        return n, s


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class QiniCurve:
    """A ranking's Qini and uplift curves at ``phi`` (share targeted), with percentile bands."""

    phi: tuple[float, ...]
    qini: tuple[float, ...]
    qini_low: tuple[float, ...]
    qini_high: tuple[float, ...]
    uplift: tuple[float, ...]
    uplift_low: tuple[float, ...]
    uplift_high: tuple[float, ...]
    auuc: Interval
    qini_coefficient: Interval
    ate: Interval
    ate_p_value: float
    top: tuple[tuple[float, Interval], ...]


def _curves(n: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Qini and top-share uplift from per-bin (n, s) of shape (..., bins, 2)."""
    cn = np.cumsum(n, axis=-2)
    cs = np.cumsum(s, axis=-2)
    total = cn[..., -1:, :]
    qini = cs[..., 1] / total[..., 1] - cs[..., 0] / total[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        uplift = cs[..., 1] / cn[..., 1] - cs[..., 0] / cn[..., 0]
    return qini, uplift


def _area(qini: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Trapezoids from (0, 0) through the curve's points."""
    q = np.concatenate([np.zeros((*qini.shape[:-1], 1)), qini], axis=-1)
    x = np.concatenate([[0.0], phi])
    return ((q[..., 1:] + q[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)


def qini_curve(score: np.ndarray, y: np.ndarray, treated: np.ndarray, alpha: float = 0.05,
               bins: int = BINS, draws: int = DRAWS, seed: int = 0) -> QiniCurve:
    """The curves of ranking ``score`` over the treated and holdout customers ``y``."""
    rb = RankBins.of(score, y, treated, bins)
    phi = np.cumsum(rb.n.sum(axis=1)) / rb.n.sum()
    qini, uplift = _curves(rb.n, rb.s)
    bn, bs = rb.draws(draws, seed)
    bq, bu = _curves(bn, bs)
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)

    def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.nanpercentile(values, lo, axis=0), np.nanpercentile(values, hi, axis=0)

    def interval(point: float, values: np.ndarray) -> Interval:
        a, b = np.nanpercentile(values, [lo, hi])
        return Interval(float(point), float(a), float(b))

    auuc, b_auuc = _area(qini, phi), _area(bq, phi)
    coef, b_coef = auuc - qini[-1] / 2, b_auuc - bq[:, -1] / 2
    direct = welch(ArmStats.from_values(y[treated]), ArmStats.from_values(y[~treated]), alpha)
    top = []
    for share in TOP_SHARES:
        k = int(np.searchsorted(phi, share - 1e-9))
        top.append((share, interval(uplift[k], bu[:, k])))
    q_lo, q_hi = band(bq)
    u_lo, u_hi = band(bu)
    return QiniCurve(
        tuple(phi.tolist()), tuple(qini.tolist()), tuple(q_lo.tolist()), tuple(q_hi.tolist()),
        tuple(uplift.tolist()), tuple(u_lo.tolist()), tuple(u_hi.tolist()),
        interval(auuc, b_auuc), interval(coef, b_coef),
        Interval(direct.abs, *direct.abs_ci), float(direct.p_value), tuple(top))


@dataclass(frozen=True)
class CalibrationBin:
    """Customers of one bin of predicted effect: mean prediction vs observed effect."""

    predicted: float
    observed: Interval
    n: int


def calibration(score: np.ndarray, y: np.ndarray, treated: np.ndarray, alpha: float = 0.05,
                bins: int = 10) -> tuple[CalibrationBin, ...]:
    """Observed difference in means (Welch interval) per bin of predicted effect, best first."""
    rb = RankBins.of(score, y, treated, bins)
    out = []
    for b in range(rb.n.shape[0]):
        t = ArmStats(int(rb.n[b, 1]), float(rb.s[b, 1]), float(rb.q[b, 1]))
        h = ArmStats(int(rb.n[b, 0]), float(rb.s[b, 0]), float(rb.q[b, 0]))
        lift = welch(t, h, alpha)
        out.append(CalibrationBin(float(rb.score[b]),
                                  Interval(lift.abs, *lift.abs_ci), t.n + h.n))
    return tuple(out)
