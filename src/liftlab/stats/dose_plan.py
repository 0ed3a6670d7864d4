"""Planning a dose-response experiment by simulation: how many units per arm, and how many
weeks, place the optimum frequency within ``within`` contacts of the truth with a stated
probability.

The truth is the group's posterior mean curves (margin per unit and fatigue probability over
the window, on a grid of frequencies); each arm's margin standard error is today's. With
``n`` units per arm over ``weeks`` instead of ``n_now`` over ``weeks_now`` (ratio
``r = weeks / weeks_now``), the expected margin and the contact cost scale with ``r``, the
fatigue hazard ``-log(1 - p)`` scales with ``r``, and an arm mean's variance with
``r * n_now / n`` (orders and sends as Poisson processes in time; customers' own purchase
rates make longer windows worth somewhat less than this). Each replication draws the arm
means (normal) and the fatigue events (binomial, by inverse CDF of fixed uniforms, so that
the replications are the same random numbers at every ``n``), fits the model's curve families
by weighted least squares (the margin curve ``a + b (1 - exp(-f / k))`` profiled over a grid
of ``k``; the fatigue hazard ``l0 + l1 f`` on each arm's empirical hazard) and reads off the
maximiser of the fitted value curve. The probability is the share of replications whose
maximiser lies within ``within`` of the true one (Monte Carlo error ``sqrt(p (1 - p) /
reps)``); units and weeks are found by bisection on that probability.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# scipy is imported inside the functions that use it: it takes up to a second to import,
# which ``liftlab validate`` and ``import liftlab.stats`` should not pay

K_POINTS = 60
MAX_UNITS = 1000.0  # the search stops at 1000 x today's units per arm
MAX_WEEKS = 10.0  # and at 10 x today's weeks (over long windows fatigue saturates)
MIN_UNITS = 30.0  # per arm (the arm means' normal approximation); weeks: at least a day


@dataclass(frozen=True)
class DoseTruth:
    """The curves the plan takes as true, and today's experiment."""

    grid: np.ndarray  # frequencies
    margin: np.ndarray  # expected margin per unit over today's window, on the grid
    fatigue: np.ndarray | None  # probability of the fatigue event in today's window
    arms: np.ndarray  # the arms' frequencies
    se: np.ndarray  # each arm mean's standard error today
    n_now: np.ndarray  # each arm's units today
    weeks_now: float
    cost_per_frequency: float  # per unit over today's window, for one contact per unit
    optin_value: float

    def at(self, x: np.ndarray | float, curve: np.ndarray) -> np.ndarray:
        return np.interp(x, self.grid, curve)

    def value(self, r: float) -> np.ndarray:
        """The true value per unit over a window ``r`` times today's, on the grid."""
        out = r * (self.margin - self.cost_per_frequency * self.grid)
        if self.fatigue is not None:
            hazard = -np.log1p(-np.clip(self.fatigue, 0.0, 1 - 1e-12))
            out = out - self.optin_value * -np.expm1(-r * hazard)
        return out

    def optimum(self, r: float) -> float:
        return float(self.grid[self.value(r).argmax()])


@dataclass(frozen=True)
class Planning:
    """Units per arm (at today's weeks) and weeks (at today's units per arm) that place the
    optimum within ``within`` with probability ``probability``; None: not within 1000 x
    today's units or 10 x today's weeks. ``prob_now``: the simulated probability with
    today's units and weeks."""

    probability: float
    within: float
    prob_now: float
    units_now: float
    weeks_now: float
    units_per_arm: int | None
    weeks: float | None
    reps: int

    @property
    def mc_error(self) -> float:
        """Monte Carlo standard error of a simulated probability near the target."""
        return math.sqrt(self.probability * (1 - self.probability) / self.reps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "within": self.within,
            "prob_now": self.prob_now,
            "units_per_arm_now": self.units_now,
            "weeks_now": self.weeks_now,
            "units_per_arm": self.units_per_arm,
            "weeks": self.weeks,
            "reps": self.reps,
            "mc_error": self.mc_error,
            "method": "simulation from the posterior mean curves: arm means normal with "
            "today's standard errors scaled by weeks / units, fatigue events binomial, "
            "curves refitted by weighted least squares in each replication",
        }


def hit_rate(
    truth: DoseTruth, n: float, weeks: float, within: float, reps: int, seed: int
) -> float:
    """Share of simulated experiments with ``n`` units per arm over ``weeks`` whose estimated
    optimum lies within ``within`` of the true one."""
    from scipy import stats as sps

    r = weeks / truth.weeks_now
    z, u = _noise(reps, len(truth.arms), seed)
    means = r * truth.at(truth.arms, truth.margin) + z * truth.se * np.sqrt(r * truth.n_now / n)
    events = None
    if truth.fatigue is not None:
        hazard = -np.log1p(-np.clip(truth.at(truth.arms, truth.fatigue), 0.0, 1 - 1e-12))
        events = sps.binom.ppf(u, round(n), -np.expm1(-r * hazard))
    est = estimate_optimum(
        truth.arms,
        means,
        truth.se * np.sqrt(r * truth.n_now / n),
        events,
        round(n),
        r * truth.cost_per_frequency,
        truth.optin_value,
        truth.grid,
    )
    return float((np.abs(est - truth.optimum(r)) <= within + 1e-9).mean())


def estimate_optimum(
    arms: np.ndarray,
    means: np.ndarray,
    se: np.ndarray,
    events: np.ndarray | None,
    n: int | np.ndarray,
    cost_per_frequency: float,
    optin_value: float,
    grid: np.ndarray,
) -> np.ndarray:
    """The maximiser of the fitted value curve of each replication (rows of ``means`` and
    ``events``): the margin curve by weighted least squares profiled over ``k``, the fatigue
    hazard by weighted least squares on the arms' empirical hazards."""
    value = _fit_margin(arms, np.atleast_2d(means), se, grid) - cost_per_frequency * grid
    if events is not None:
        value = value - optin_value * _fit_fatigue(arms, np.atleast_2d(events), n, grid)
    return grid[value.argmax(axis=1)]


def _fit_margin(f: np.ndarray, y: np.ndarray, se: np.ndarray, grid: np.ndarray) -> np.ndarray:
    fmax = float(f.max())
    k = fmax / 3 * np.exp(np.linspace(-2.5, 2.5, K_POINTS))
    x = -np.expm1(-f[None, :] / k[:, None])  # K x J
    w = 1 / se**2
    sw, sx, sxx = w.sum(), x @ w, (x**2) @ w  # scalars and K
    sy, sxy = y @ w, y @ (w[:, None] * x.T)  # R and R x K
    b = np.maximum((sw * sxy - sx * sy[:, None]) / (sw * sxx - sx**2), 0.0)  # b >= 0
    a = (sy[:, None] - b * sx) / sw
    resid = y[:, None, :] - a[:, :, None] - b[:, :, None] * x[None, :, :]
    best = (w * resid**2).sum(axis=2).argmin(axis=1)  # R
    rows = np.arange(len(y))
    return a[rows, best, None] + b[rows, best, None] * -np.expm1(-grid[None, :] / k[best, None])


def _fit_fatigue(
    f: np.ndarray, events: np.ndarray, n: int | np.ndarray, grid: np.ndarray
) -> np.ndarray:
    n = np.broadcast_to(np.asarray(n, float), f.shape)
    p = np.clip(events / n, 0.5 / n, 1 - 0.5 / n)
    h = -np.log1p(-p)
    w = n * (1 - p) / p  # 1 / var(h), the delta method
    sw, sf, sff = w.sum(axis=1), (w * f).sum(axis=1), (w * f**2).sum(axis=1)
    sh, sfh = (w * h).sum(axis=1), (w * f * h).sum(axis=1)
    l1 = np.maximum((sw * sfh - sf * sh) / (sw * sff - sf**2), 0.0)
    l0 = np.maximum((sh - l1 * sf) / sw, 0.0)
    return -np.expm1(-(l0[:, None] + l1[:, None] * grid[None, :]))


def _noise(reps: int, arms: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((reps, arms)), rng.random((reps, arms))


def plan_by_simulation(
    truth: DoseTruth,
    probability: float = 0.9,
    within: float = 1.0,
    reps: int = 2000,
    seed: int = 1,
) -> Planning:
    """The plan of the module docstring."""
    units_now = float(np.mean(truth.n_now))

    def rate(n: float, weeks: float) -> float:
        return hit_rate(truth, n, weeks, within, reps, seed)

    n = _bisect(lambda x: rate(x, truth.weeks_now), units_now, probability, MIN_UNITS, MAX_UNITS)
    weeks = _bisect(lambda x: rate(units_now, x), truth.weeks_now, probability, 1 / 7, MAX_WEEKS)
    return Planning(
        probability,
        within,
        rate(units_now, truth.weeks_now),
        units_now,
        truth.weeks_now,
        None if n is None else math.ceil(n),
        weeks,
        reps,
    )


def _bisect(
    rate: Callable[[float], float],
    now: float,
    target: float,
    floor: float,
    factor: float,
    steps: int = 16,
) -> float | None:
    """The smallest x in [max(now / 1000, floor), factor x now] with rate(x) >= target (on a
    log scale, taking the rate as increasing), None if even the largest falls short."""
    lo, hi = math.log(max(now / 1000, floor)), math.log(now * factor)
    if rate(math.exp(hi)) < target:
        return None
    if rate(math.exp(lo)) >= target:
        return math.exp(lo)
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if rate(math.exp(mid)) >= target else (mid, hi)
    return math.exp(hi)
