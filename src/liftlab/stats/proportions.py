"""Binary metrics (a share of units with at least one event): tests that hold their level
when events are rare and the holdout is small.

Welch's unpooled test is anti-conservative on rare events with unequal arms: on A/A data with
a 90/10 split it calls a difference in 36% of runs at 1 expected holdout event and in 8% at
5. The route here:

- **score** (the usual case): the pooled score test of equal proportions (the chi-squared
  test without continuity correction), and intervals for the difference and the ratio that
  invert the same score statistic (Mee's interval for the difference, Koopman/Miettinen-
  Nurminen's for the ratio, without the N/(N-1) factor). At the null value both intervals use
  the pooled rate, so either interval excludes "no effect" exactly when p < alpha.
- **fisher_exact** (few events): when an arm expects fewer than ``EXACT_BELOW`` events (or
  non-events) under the pooled rate, the p-value is Fisher's exact test (conditional, never
  above its level) with the score intervals beside it; the verdict then needs both the exact
  p and the interval (see ``Lift.significant``).
- **welch_cuped**: when the metric's pre-period value reduces the variance and every arm
  expects at least ``CUPED_ABOVE`` events and non-events, CUPED on Welch's test (normal
  theory holds at those counts).

Every route is reported in ``Lift.method``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

# scipy is imported inside the functions that use it (scipy.stats only for Fisher's test): it
# takes up to a second to import, which ``liftlab validate`` and ``import liftlab.stats`` should
# not pay
from liftlab.stats.distributions import norm_ppf, norm_sf
from liftlab.stats.frequentist import NAN, Lift, failed, welch
from liftlab.stats.suffstats import ArmStats

EXACT_BELOW = 5.0
CUPED_ABOVE = 100.0


def binary(treatment: ArmStats, holdout: ArmStats, alpha: float = 0.05,
           cuped: bool = False) -> Lift:
    """Compare the shares of units with an event; the route is chosen from the counts."""
    t, h = treatment, holdout
    if t.n < 2 or h.n < 2:
        return failed(f"too few units (treatment {t.n}, holdout {h.n}); need at least 2 per arm",
                      t.mean, h.mean)
    k_t, k_h = round(t.sum), round(h.sum)
    if not (0 <= k_t <= t.n and 0 <= k_h <= h.n):
        return failed("a binary metric must count units with an event (0 or 1 per unit)",
                      t.mean, h.mean)
    pooled = (k_t + k_h) / (t.n + h.n)
    if pooled in (0.0, 1.0):
        return failed("the metric is constant in both arms; nothing to compare", t.mean, h.mean)
    expected = min(t.n, h.n) * min(pooled, 1 - pooled)
    if cuped and expected >= CUPED_ABOVE:
        adjusted = welch(t, h, alpha, cuped=True, nonnegative=True)
        if adjusted.cuped:
            return adjusted
    return _score_route(k_t, t.n, k_h, h.n, alpha, exact=expected < EXACT_BELOW)


def normal_theory(treatment: ArmStats, holdout: ArmStats) -> bool:
    """Every arm expects at least ``CUPED_ABOVE`` events and non-events under the pooled
    rate: a regression-adjusted (normal theory) comparison holds its level."""
    n = treatment.n + holdout.n
    pooled = (treatment.sum + holdout.sum) / n if n else 0.0
    return min(treatment.n, holdout.n) * min(pooled, 1 - pooled) >= CUPED_ABOVE


def _score_route(k_t: int, n_t: int, k_h: int, n_h: int, alpha: float, exact: bool) -> Lift:
    p_t, p_h = k_t / n_t, k_h / n_h
    q = float(norm_ppf(1 - alpha / 2))

    def z(value: float, compare: Literal["diff", "ratio"]) -> float:
        with np.errstate(all="ignore"):
            return float(score_statistic(k_t, n_t, k_h, n_h, value, compare))

    diff = p_t - p_h
    z0 = z(0.0, "diff")
    p_value = float(2 * norm_sf(abs(z0)))
    if exact:
        from scipy import stats as sps  # only here: Fisher's test needs scipy.stats

        p_value = float(sps.fisher_exact([[k_t, n_t - k_t], [k_h, n_h - k_h]]).pvalue)
    abs_ci = (_bound(lambda d: z(d, "diff"), q, -1.0, diff, lower=True),
              _bound(lambda d: z(d, "diff"), q, diff, 1.0, lower=False))
    if k_h > 0:
        rho = p_t / p_h
        lo = _bound(lambda r: z(r, "ratio"), q, 0.0, rho, lower=True) if k_t > 0 else 0.0
        hi = _bound(lambda r: z(r, "ratio"), q, rho, math.inf, lower=False)
        rel, rel_ci, rel_p = rho - 1, (lo - 1, hi - 1), p_value
    else:  # no holdout event: the relative lift is undefined
        rel, rel_ci, rel_p = NAN, (NAN, NAN), NAN
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_h * (1 - p_h) / n_h)
    rel_se = math.sqrt(p_t * (1 - p_t) / n_t + rho * rho * p_h * (1 - p_h) / n_h) / p_h \
        if k_h > 0 else NAN
    return Lift(p_t, p_h, diff, se, abs_ci, rel, rel_se, rel_ci, p_value, math.inf,
                rel_p_value=rel_p, method="fisher_exact" if exact else "score")


def score_statistic(count1: int, nobs1: int, count2: int, nobs2: int, value: float,
                    compare: Literal["diff", "ratio"]) -> np.float64:
    """The score statistic of ``p1 - p2 = value`` (``compare="diff"``) or ``p1 / p2 = value``
    (``"ratio"``) without the N/(N-1) factor: statsmodels' ``score_test_proportions_2indep(...,
    correction=False).statistic`` (statsmodels 0.15, Miettinen & Nurminen 1985 with Farrington
    & Manning's closed-form constrained estimates), the same operations in the same order.

    Why not statsmodels itself: importing it (with scipy.stats) costs over a second of CPU,
    more than the rest of a small ``analyze``. tests/test_distributions.py checks the two are
    equal over many counts and null values. NaN where the statistic is undefined (an edge of
    the parameter space); call it under ``np.errstate(all="ignore")`` to silence that."""
    nobs = nobs1 + nobs2
    count = count1 + count2
    p1 = count1 / nobs1
    if compare == "diff":
        if value == 0:  # the pooled estimate under equality
            prop0 = prop1 = count / nobs
        else:
            tmp3 = nobs
            tmp2 = (nobs1 + 2 * nobs2) * value - nobs - count
            tmp1 = (count2 * value - nobs - 2 * count2) * value + count
            tmp0 = count2 * value * (1 - value)
            q = (tmp2 / (3 * tmp3)) ** 3 - tmp1 * tmp2 / (6 * tmp3**2) + tmp0 / (2 * tmp3)
            p = np.sign(q) * np.sqrt((tmp2 / (3 * tmp3)) ** 2 - tmp1 / (3 * tmp3))
            a = (np.pi + np.arccos(q / p**3)) / 3
            prop0 = 2 * p * np.cos(a) - tmp2 / (3 * tmp3)
            prop1 = prop0 + value
        var = prop1 * (1 - prop1) / nobs1 + prop0 * (1 - prop0) / nobs2
        diff_stat = p1 - count2 / nobs2 - value
    else:
        if value == 1:  # the pooled estimate under equality
            prop0 = prop1 = count / nobs
        else:
            a = nobs * value
            b = -(nobs1 * value + count1 + nobs2 + count2 * value)
            prop0 = (-b - np.sqrt(b**2 - 4 * a * count)) / (2 * a)
            prop1 = prop0 * value
        var = prop1 * (1 - prop1) / nobs1 + value**2 * prop0 * (1 - prop0) / nobs2
        diff_stat = p1 - value * (count2 / nobs2)
    return diff_stat / np.sqrt(var)


def _bound(stat: Callable[[float], float], q: float, lo: float, hi: float,
           lower: bool) -> float:
    """One end of the set {value: |stat(value)| <= q} of a statistic that decreases in the
    value: the root of stat = q (lower end) or stat = -q (upper end) between ``lo`` and ``hi``.
    The statistic is undefined (NaN) at the edges of the parameter space, where it is read as
    beyond any bound; an end the data cannot rule out is the edge itself."""
    from scipy import optimize

    target = q if lower else -q
    inside = hi if lower else lo  # the estimate: stat there is 0

    def f(v: float) -> float:
        if v == inside:
            return -target
        s = stat(v)
        if math.isnan(s):
            return math.inf if lower else -math.inf
        return s - target

    edge = _edge(lo if lower else hi, inside)
    if lower and not f(edge) > 0:
        return lo
    if not lower and not f(edge) < 0:
        return hi
    a, b = (edge, inside) if lower else (inside, edge)
    return float(optimize.brentq(_finite(f), a, b, xtol=1e-12, rtol=1e-10))


def _edge(end: float, inside: float) -> float:
    """A point just inside an open edge of the parameter space."""
    if math.isinf(end):
        return max(inside, 1.0) * 1e12
    return end + (1e-12 if end < inside else -1e-12)


def _finite(f: Callable[[float], float]) -> Callable[[float], float]:
    return lambda v: max(min(f(v), 1e300), -1e300)

