"""Always-valid inference for tests that are read continuously (hour by hour).

**Mixture confidence sequence (the default).** The asymptotic normal-mixture confidence
sequence of Howard et al. (2021) / Waudby-Smith et al. (2023), as used by GrowthBook: for an
estimate with variance ``V`` after ``n`` units,

    half-width = sqrt(V n) * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * log(sqrt(n rho^2 + 1) / alpha))
    rho^2      = (-2 log(alpha) + log(-2 log(alpha) + 1)) / n_star

``n_star`` is where the sequence is tightest: liftlab tunes it from the planned audience (the
send list, i.e. the number of units expected once every window has matured) instead of a fixed
constant. Inverting the half-width at zero gives the always-valid p-value in closed form
(``sqrt(n rho^2 + 1) * exp(-est^2 n rho^2 / (2 V (n rho^2 + 1)))``), reported as its running
minimum. It is the default because an email test's horizon is not known in advance (a test
may be stopped any hour) and it needs no schedule of looks, unlike group-sequential designs.

**Multinomial mixture tests** (Lindon & Malek, 2022): a Dirichlet-multinomial Bayes factor
against fixed cell probabilities, for a sequential sample-ratio-mismatch check and for the
event-indexed test of batch sends (under no effect, events fall in each arm in proportion to
its size, whenever they arrive).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

DEFAULT_CONCENTRATION = 100.0


def rho_squared(n_star: float, alpha: float) -> float:
    """Mixing parameter that makes the sequence tightest at ``n_star`` units."""
    la = -2 * math.log(alpha)
    return (la + math.log(la + 1)) / n_star


def halfwidth(variance: float | np.ndarray, n: float | np.ndarray, n_star: float,
              alpha: float) -> float | np.ndarray:
    """Half-width of the confidence sequence of an estimate with ``variance`` after ``n``."""
    r2 = rho_squared(n_star, alpha)
    s2 = np.asarray(variance) * n
    return np.sqrt(s2) * np.sqrt(2 * (n * r2 + 1) / (np.square(n) * r2)
                                 * np.log(np.sqrt(n * r2 + 1) / alpha))


def always_valid_p(estimate: float | np.ndarray, variance: float | np.ndarray,
                   n: float | np.ndarray, n_star: float, alpha: float) -> float | np.ndarray:
    """The smallest level at which the sequence (tuned at ``alpha``) excludes zero, at this
    look (take the running minimum over looks)."""
    r2 = rho_squared(n_star, alpha)
    nr = np.asarray(n) * r2
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = 0.5 * np.log(nr + 1) - np.square(estimate) * nr / (
            2 * np.asarray(variance) * (nr + 1))
    return np.minimum(1.0, np.exp(log_p))


@dataclass(frozen=True)
class SequentialLook:
    """One look: the estimate, its always-valid interval, and its p-value at this look."""

    estimate: float
    lower: float
    upper: float
    p_value: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.lower > 0 or self.upper < 0


def look(estimate: float, variance: float, n: int, n_star: float,
         alpha: float) -> SequentialLook:
    if not (variance > 0) or n < 2:
        return SequentialLook(estimate, -math.inf, math.inf, 1.0, n)
    hw = float(halfwidth(variance, n, n_star, alpha))
    p = float(always_valid_p(estimate, variance, n, n_star, alpha))
    return SequentialLook(estimate, estimate - hw, estimate + hw, p, n)


def multinomial_mixture_p(counts: Sequence[float], probs: Sequence[float],
                          concentration: float = DEFAULT_CONCENTRATION) -> float:
    """Always-valid p-value that ``counts`` follow ``probs`` (Dirichlet-multinomial mixture
    centred on ``probs``); 1 / Bayes factor, capped at 1. Take the running minimum."""
    x = np.asarray(counts, dtype=float)
    p0 = np.asarray(probs, dtype=float) / np.sum(probs)
    a = concentration * p0
    log_bf = (gammaln(a.sum()) - gammaln(a.sum() + x.sum())
              + np.sum(gammaln(a + x) - gammaln(a)) - np.sum(x * np.log(p0)))
    return float(min(1.0, math.exp(-log_bf)))


def running_min(values: Sequence[float]) -> list[float]:
    return list(np.minimum.accumulate(np.asarray(values, dtype=float))) if len(values) else []


def expected_time_to_decision(effect: float, sd: float, units_per_hour: float,
                              treatment_share: float, n_star: float, alpha: float = 0.05,
                              horizon_hours: int = 21 * 24, reps: int = 2000,
                              seed: int = 0) -> tuple[float, float]:
    """Median hours to a decision and the probability of deciding within the horizon, by
    simulating the cumulative difference of means hour by hour (normal increments)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(1, horizon_hours + 1)
    n = units_per_hour * hours
    n_t, n_h = n * treatment_share, n * (1 - treatment_share)
    var = sd**2 * (1 / n_t + 1 / n_h)
    # Cumulative means of each arm as sums of independent hourly increments.
    inc_t = rng.normal(effect * units_per_hour * treatment_share,
                       sd * math.sqrt(units_per_hour * treatment_share), (reps, len(hours)))
    inc_h = rng.normal(0.0, sd * math.sqrt(units_per_hour * (1 - treatment_share)),
                       (reps, len(hours)))
    est = inc_t.cumsum(1) / n_t - inc_h.cumsum(1) / n_h
    hw = halfwidth(var, n, n_star, alpha)
    decided = np.abs(est) > hw
    first = np.where(decided.any(1), decided.argmax(1) + 1, np.inf)
    power = float(np.isfinite(first).mean())
    return float(np.median(first)), power
