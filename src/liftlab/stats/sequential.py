"""Always-valid inference for tests that are read continuously (hour by hour).

**Mixture confidence sequence (the default).** The asymptotic normal-mixture confidence
sequence of Howard et al. (2021) / Waudby-Smith et al. (2023), parameterised as in
GrowthBook's stats engine. For an estimate with variance ``V`` after ``n`` units
(``s2 = V n``, the variance of one unit's contribution):

    half-width = sqrt(s2 * 2 (n r2 + 1) / (n^2 r2) * log(sqrt(n r2 + 1) / alpha))    two-sided
    half-width = sqrt(s2 * 2 (n r2 + 1) / (n^2 r2) * log(1 + sqrt(n r2 + 1) / (2 alpha)))  one
    r2 = (L + log(L + 1)) / n_star,  L = -2 log(alpha)  (alpha -> 2 alpha for one-sided)

``r2`` is the mixing variance (of the standardised effect); it makes the sequence tightest at
``n_star`` units. liftlab tunes ``n_star`` from the planned audience (:func:`tune_n_star`),
never a fixed constant. Inverting the half-width at zero gives the always-valid p-value in
closed form; it is reported as the running minimum over looks. It is the default because an
email test's horizon is not known in advance (a test may be stopped at any hour) and it needs
no schedule of looks. Where the horizon is known, :func:`group_sequential_bounds` gives the
Lan-DeMets O'Brien-Fleming-type alternative (more power at the planned horizon, but only valid
at the analyses it was computed for).

**Event-indexed test** (batch sends). Under no effect, each response (order, click) falls in
the treatment arm with probability ``share`` (its fraction of the units), whenever it arrives:
no maturity is needed. A Beta mixture of Bernoulli likelihood ratios (a mixture SPRT) gives
an always-valid p-value; inverting it gives a confidence sequence for the response-rate ratio.

**Multinomial mixture** (Lindon & Malek, 2022): a Dirichlet-multinomial Bayes factor against
fixed cell probabilities, for the sequential sample-ratio-mismatch check.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

# scipy is imported inside the functions that use it: it takes up to a second to import,
# which ``liftlab validate`` and ``import liftlab.stats`` should not pay
from liftlab.stats.distributions import norm_isf, norm_pdf, norm_sf
from liftlab.stats.regression import ArmFit
from liftlab.stats.suffstats import ArmStats

Side = Literal["two-sided", "greater", "less"]
Scale = Literal["absolute", "relative"]
ArrayOrFloat = float | np.ndarray


def _mixing_constant(alpha: float, side: Side) -> float:
    """``L + log(L + 1)`` with ``L = -2 log(alpha)`` (``2 alpha`` when one-sided): the value
    of ``n r2`` at which the sequence is tightest."""
    la = -2 * math.log(alpha if side == "two-sided" else 2 * alpha)
    return la + math.log(la + 1)


def rho_squared(n_star: float, alpha: float, side: Side = "two-sided") -> float:
    """Mixing variance that makes the sequence tightest at ``n_star`` units."""
    return _mixing_constant(alpha, side) / n_star


def tune_n_star(audience: float, alpha: float, *, unit_sd: float | None = None,
                effect: float | None = None, treatment_share: float = 0.5,
                side: Side = "two-sided") -> float:
    """Where to make the sequence tightest, from the planned audience.

    Without an expected effect: the audience itself (the send list, i.e. every unit once its
    window has matured). With an expected absolute ``effect`` per unit and the per-unit
    standard deviation of the metric ``unit_sd`` (the baseline response), the sample at which
    that effect just reaches the boundary when the sequence is tuned there. Since
    ``n r2 = c`` at ``n_star`` (``c`` from :func:`rho_squared`), the condition
    ``half-width(n_star) = effect`` has the closed form

        n_star = sigma_u^2 * 2 (c + 1) / c * log(sqrt(c + 1) / alpha) / effect^2,
        sigma_u^2 = unit_sd^2 * (1 / q + 1 / (1 - q)),  q = treatment share,

    (``log(1 + sqrt(c + 1) / (2 alpha))`` one-sided), capped at the audience: data stop there.
    """
    if effect is None or unit_sd is None or not effect or not unit_sd > 0:
        return float(max(audience, 2))
    c = _mixing_constant(alpha, side)
    s2 = unit_sd**2 * (1 / treatment_share + 1 / (1 - treatment_share))
    log_term = (math.log(math.sqrt(c + 1) / alpha) if side == "two-sided"
                else math.log(1 + math.sqrt(c + 1) / (2 * alpha)))
    n_detect = s2 * 2 * (c + 1) / c * log_term / effect**2
    return float(max(min(n_detect, audience), 2))


def halfwidth(variance: ArrayOrFloat, n: ArrayOrFloat, n_star: float, alpha: float,
              side: Side = "two-sided") -> ArrayOrFloat:
    """Half-width of the confidence sequence of an estimate with ``variance`` after ``n``."""
    r2 = rho_squared(n_star, alpha, side)
    n = np.asarray(n, dtype=float)
    nr1 = n * r2 + 1
    log_term = (np.log(np.sqrt(nr1) / alpha) if side == "two-sided"
                else np.log1p(np.sqrt(nr1) / (2 * alpha)))
    return np.sqrt(np.asarray(variance) * n * 2 * nr1 / (n**2 * r2) * log_term)


def always_valid_p(estimate: ArrayOrFloat, variance: ArrayOrFloat, n: ArrayOrFloat,
                   n_star: float, alpha: float, side: Side = "two-sided") -> ArrayOrFloat:
    """The smallest level at which the sequence (mixing variance fixed at ``alpha``)
    excludes zero at this look; take the running minimum over looks.

    Two-sided it is the reciprocal of the mixture e-value; one-sided (``greater``: is the
    effect above zero) it inverts the one-sided half-width, and is 1 on the wrong side."""
    r2 = rho_squared(n_star, alpha, side)
    nr1 = np.asarray(n, dtype=float) * r2 + 1
    est = np.asarray(estimate, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = np.square(est) * (nr1 - 1) / (2 * np.asarray(variance) * nr1)
        if side == "two-sided":
            p = np.sqrt(nr1) * np.exp(-x)
        else:
            right_side = est > 0 if side == "greater" else est < 0
            p = np.where(right_side, np.sqrt(nr1) / (2 * np.expm1(x)), 1.0)
    return np.minimum(1.0, np.nan_to_num(p, nan=1.0, posinf=1.0))


def difference(treatment: ArmStats, holdout: ArmStats,
               scale: Scale = "absolute") -> tuple[float, float]:
    """Estimate of the lift and its variance: difference of means, or the relative lift
    ``mean_t / mean_h - 1`` with its delta-method variance."""
    mt, mh = treatment.mean, holdout.mean
    vt, vh = treatment.variance / treatment.n, holdout.variance / holdout.n
    if scale == "absolute":
        return mt - mh, vt + vh
    if not mh:
        return math.nan, math.nan
    return mt / mh - 1, vt / mh**2 + mt**2 * vh / mh**4


@dataclass(frozen=True)
class SequentialLook:
    """One look: the estimate, its always-valid interval (one bound infinite when one-sided)
    and its always-valid p-value at this look (not yet the running minimum)."""

    estimate: float
    lower: float
    upper: float
    p_value: float
    n: int
    scale: Scale = "absolute"
    side: Side = "two-sided"

    @property
    def excludes_zero(self) -> bool:
        return self.lower > 0 or self.upper < 0


def mixture_look(treatment: ArmStats, holdout: ArmStats, n_star: float, alpha: float,
                 scale: Scale = "absolute", side: Side = "two-sided",
                 margin: float = 0.0) -> SequentialLook:
    """The confidence sequence of treatment minus holdout (difference of means) at this look.

    ``margin`` shifts the null (``lift = margin``): a harm test with a tolerance. A degenerate
    look (fewer than 2 units in an arm, zero variance, zero holdout mean when relative) comes
    back with infinite bounds and p = 1 instead of raising, so one empty hour never stops a run.
    """
    if min(treatment.n, holdout.n) < 2:
        return SequentialLook(math.nan, -math.inf, math.inf, 1.0,
                              treatment.n + holdout.n, scale, side)
    return fitted_look(_plain(treatment), _plain(holdout), treatment.n + holdout.n, n_star,
                       alpha, scale, side, margin)


def _plain(arm: ArmStats) -> ArmFit:
    """An arm's mean as an (unadjusted) fit: the mean and the variance of the mean."""
    return ArmFit(arm.mean, arm.variance / arm.n, arm.n - 1, arm.mean, arm.variance / arm.n)


def fitted_difference(treatment: ArmFit, holdout: ArmFit,
                      scale: Scale = "absolute") -> tuple[float, float]:
    """Estimate of the lift between two arm estimates (a mean, a regression-adjusted mean or
    a delta-method ratio, each with the variance of its estimate) and its variance: their
    difference, or the relative lift ``t / h - 1`` with its delta-method variance."""
    mt, mh, vt, vh = treatment.mean, holdout.mean, treatment.variance, holdout.variance
    if scale == "absolute":
        return mt - mh, vt + vh
    if not mh:
        return math.nan, math.nan
    return mt / mh - 1, vt / mh**2 + mt**2 * vh / mh**4


def fitted_look(treatment: ArmFit, holdout: ArmFit, n: int, n_star: float, alpha: float,
                scale: Scale = "absolute", side: Side = "two-sided",
                margin: float = 0.0) -> SequentialLook:
    """The confidence sequence of any asymptotically normal arm estimates at this look: the
    mixture runs on the estimate and its variance, whatever estimator produced them (a raw
    mean, Lin's regression-adjusted mean with its HC variance, a delta-method ratio, adjusted
    or not: :mod:`liftlab.stats.regression`); ``n`` is the units of both arms. The
    mixture's validity needs only an estimate that is asymptotically normal with a
    consistent variance at every look (Howard et al. 2021, Theorem 2; the same argument as
    for the mean), which Lin's sandwich and the delta method give. Degenerate looks as in
    :func:`mixture_look`."""
    est, var = fitted_difference(treatment, holdout, scale)
    if not (math.isfinite(est) and math.isfinite(var) and var > 0):
        return SequentialLook(est, -math.inf, math.inf, 1.0, n, scale, side)
    hw = float(halfwidth(var, n, n_star, alpha, side))
    p = float(always_valid_p(est - margin, var, n, n_star, alpha, side))
    lower = est - hw if side != "less" else -math.inf
    upper = est + hw if side != "greater" else math.inf
    return SequentialLook(est, lower, upper, p, n, scale, side)


def running_min(values: Sequence[float]) -> list[float]:
    """Running minimum: what makes a sequence of per-look p-values always valid to read."""
    return [float(v) for v in np.minimum.accumulate(np.asarray(values, dtype=float))]


# -- multinomial / Bernoulli mixtures ---------------------------------------------------------
def mixture_concentration(planned_count: float, alpha: float) -> float:
    """Dirichlet (Beta) concentration tuned like ``r2``: a concentration ``c`` corresponds to
    a normal mixture with ``r2 = 1 / c`` per observation, so ``c = planned_count / (L +
    log(L + 1))`` makes the test sharpest at ``planned_count`` events (or assignments)."""
    return max(planned_count, 1.0) / _mixing_constant(alpha, "two-sided")


def multinomial_mixture_p(counts: Sequence[float], probs: Sequence[float],
                          concentration: float) -> float:
    """Always-valid p-value that ``counts`` follow ``probs``: 1 / Bayes factor of a
    Dirichlet-multinomial mixture centred on ``probs`` (Lindon & Malek 2022), capped at 1.
    Take the running minimum over looks."""
    from scipy.special import gammaln

    x = np.asarray(counts, dtype=float)
    p0 = np.asarray(probs, dtype=float) / np.sum(probs)
    a = concentration * p0
    log_bf = (gammaln(a.sum()) - gammaln(a.sum() + x.sum())
              + np.sum(gammaln(a + x) - gammaln(a)) - np.sum(x * np.log(p0)))
    return float(min(1.0, math.exp(-log_bf)))


def _log_bf_two(k_t: ArrayOrFloat, k_h: ArrayOrFloat, share: float,
                concentration: float) -> ArrayOrFloat:
    from scipy.special import betaln

    a, b = concentration * share, concentration * (1 - share)
    return (betaln(a + k_t, b + k_h) - betaln(a, b)
            - k_t * math.log(share) - k_h * math.log1p(-share))


def event_p_values(k_treatment: ArrayOrFloat, k_holdout: ArrayOrFloat, share: float,
                   concentration: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Always-valid p-values (two-sided, treatment share above ``share``, below it) of the
    arrival split of responses; vectorised. Take running minima over looks.

    Two-sided: Beta(c share, c (1 - share)) mixture of Bernoulli likelihood ratios. One-sided:
    the same prior truncated to the alternative side, so the mixture is a supermartingale
    under the whole one-sided null (rate ratio <= 1, resp. >= 1)."""
    from scipy.special import betainc, betaincc

    k_t = np.asarray(k_treatment, dtype=float)
    k_h = np.asarray(k_holdout, dtype=float)
    a, b = concentration * share, concentration * (1 - share)
    log_bf = _log_bf_two(k_t, k_h, share, concentration)
    with np.errstate(divide="ignore"):
        log_gt = log_bf + np.log(betaincc(a + k_t, b + k_h, share)) - math.log(
            betaincc(a, b, share))
        log_lt = log_bf + np.log(betainc(a + k_t, b + k_h, share)) - math.log(
            betainc(a, b, share))
    return tuple(np.minimum(1.0, np.exp(-x)) for x in (log_bf, log_gt, log_lt))  # type: ignore[return-value]


@dataclass(frozen=True)
class EventLook:
    """Event-indexed look: responses so far per arm, the response-rate ratio (treatment per
    unit over holdout per unit), its always-valid interval and p-values."""

    events_treatment: int
    events_holdout: int
    share: float
    rate_ratio: float
    lower: float
    upper: float
    p_value: float
    p_greater: float
    p_less: float


def _ratio(pi: float, share: float) -> float:
    if pi >= 1:
        return math.inf
    return pi * (1 - share) / ((1 - pi) * share)


# The monitor looks every hour at every comparison and guardrail, and the counts stop
# changing once the responses stop: each distinct look is solved once (two root searches).
@functools.lru_cache(maxsize=1 << 14)
def event_look(k_treatment: int, k_holdout: int, share: float, concentration: float,
               alpha: float) -> EventLook:
    """Mixture SPRT of the arrival split of responses against ``share`` (the treatment's
    fraction of units), with the confidence sequence of the rate ratio at ``alpha``.

    The interval is the set of rate ratios whose own mixture test (Beta prior centred on the
    corresponding split) is not rejected at ``alpha``."""
    from scipy import optimize

    k_t, k_h = float(k_treatment), float(k_holdout)
    total = k_t + k_h
    p, p_gt, p_lt = (float(x) for x in event_p_values(k_t, k_h, share, concentration))
    if total == 0:
        return EventLook(0, 0, share, math.nan, 0.0, math.inf, 1.0, 1.0, 1.0)
    threshold = math.log(1 / alpha)
    mle = min(max(k_t / total, 1e-12), 1 - 1e-12)

    def excess(logit: float) -> float:
        pi = 1 / (1 + math.exp(-logit))
        return float(_log_bf_two(k_t, k_h, pi, concentration)) - threshold

    centre = math.log(mle / (1 - mle))
    lo_logit, hi_logit = -30.0, 30.0
    # the mixture never beats the best point, so the MLE is always inside the sequence
    lo = (0.0 if excess(lo_logit) < 0
          else 1 / (1 + math.exp(-optimize.brentq(excess, lo_logit, centre, xtol=1e-12))))
    hi = (1.0 if excess(hi_logit) < 0
          else 1 / (1 + math.exp(-optimize.brentq(excess, centre, hi_logit, xtol=1e-12))))
    return EventLook(int(k_t), int(k_h), share, _ratio(k_t / total, share),
                     _ratio(lo, share), _ratio(hi, share), p, p_gt, p_lt)


# -- group-sequential alternative ------------------------------------------------------------
Spending = Literal["obrien_fleming", "pocock"]


def obf_spending(t: ArrayOrFloat, alpha: float) -> ArrayOrFloat:
    """Lan-DeMets O'Brien-Fleming-type spending of a one-sided ``alpha`` at information
    fraction ``t``: ``2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))`` (gsDesign's ``sfLDOF``)."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        return 2 * norm_sf(norm_isf(alpha / 2) / np.sqrt(t))


def pocock_spending(t: ArrayOrFloat, alpha: float) -> ArrayOrFloat:
    """Lan-DeMets Pocock-type spending of a one-sided ``alpha`` at information fraction
    ``t``: ``alpha log(1 + (e - 1) t)`` (gsDesign's ``sfLDPocock``)."""
    return alpha * np.log1p((math.e - 1) * np.asarray(t, dtype=float))


SPENDING = {"obrien_fleming": obf_spending, "pocock": pocock_spending}


@dataclass(frozen=True)
class GroupSequentialBounds:
    """Critical z-values per analysis (reject when ``|z| >= z`` two-sided, ``z >= z``
    one-sided) and the alpha spent up to each analysis (one side)."""

    fractions: tuple[float, ...]
    z: tuple[float, ...]
    spent: tuple[float, ...]
    sides: int


def group_sequential_bounds(fractions: Sequence[float], alpha: float,
                            sides: Literal[1, 2] = 2, spending: Spending = "obrien_fleming",
                            final: bool = False) -> GroupSequentialBounds:
    """Lan-DeMets bounds (O'Brien-Fleming-type or Pocock-type spending) at the given
    information fractions.

    ``alpha`` is the total type-I error (split evenly between the sides when two-sided). A
    fraction may pass 1 (more information than planned): the spending function stops at
    ``alpha`` there. ``final``: the last analysis spends whatever is left (the horizon was
    reached with less information than planned). Computed by the recursive numerical
    integration of Armitage, McPherson & Rowe (1969) on the Brownian-motion scale: the density
    of the score on the continuation region is carried from analysis to analysis by Gaussian
    convolution (Simpson's rule on a grid finer than the increment's standard deviation); each
    bound solves ``P(first crossing here) = spend``. Valid at these analyses, not at any hour.
    """
    from scipy import optimize

    t = np.asarray(fractions, dtype=float)
    if len(t) == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or not np.all(np.isfinite(t)):
        msg = (f"information fractions must be positive and increase strictly; got "
               f"{[round(float(v), 4) for v in t]}")
        raise ValueError(msg)
    per_side = alpha / sides
    cum = np.asarray(SPENDING[spending](np.minimum(t, 1.0), per_side), dtype=float)
    if final or t[-1] >= 1:
        cum[-1] = per_side
    spend = np.diff(cum, prepend=0.0)
    sds = np.sqrt(np.diff(t))
    z = [float(norm_isf(spend[0]))]
    grid = _grid(t[0], z[0], sides, sds[0] / 8 if len(sds) else 1.0)
    dens = norm_pdf(grid / math.sqrt(t[0])) / math.sqrt(t[0])
    for k in range(1, len(t)):
        sd = float(sds[k - 1])
        weights = _simpson(grid) * dens

        def crossing(c: float, w: np.ndarray = weights, g: np.ndarray = grid,
                     s: float = sd) -> float:
            return float(np.sum(w * norm_sf((c - g) / s)) * sides)

        target = spend[k] * sides
        hi = 40 * math.sqrt(t[k])
        c_k = hi if crossing(hi) > target or target <= 0 else optimize.brentq(
            lambda c, tgt=target: crossing(c) - tgt, 0.0, hi, xtol=1e-12)
        z.append(c_k / math.sqrt(t[k]))
        if k < len(t) - 1:
            new_grid = _grid(t[k], z[-1], sides, float(sds[k]) / 8)
            kernel = norm_pdf((new_grid[:, None] - grid[None, :]) / sd) / sd
            dens, grid = kernel @ weights, new_grid
    return GroupSequentialBounds(tuple(float(v) for v in t), tuple(z),
                                 tuple(float(v) for v in cum), sides)


def repeated_p_value(fractions: Sequence[float], z: Sequence[float],
                     spending: Spending = "obrien_fleming", final: bool = False) -> float:
    """Two-sided repeated p-value of a group-sequential test after these analyses: the
    smallest total ``alpha`` at which ``|z|`` crossed the bounds (same spending, same
    fractions) at one of them; 1 when it crosses at no level below 1."""
    from scipy import optimize

    excess = np.abs(np.asarray(z, dtype=float))

    def crossed(log_alpha: float) -> float:
        b = group_sequential_bounds(fractions, math.exp(log_alpha), 2, spending, final)
        return float(np.max(excess - np.asarray(b.z)))

    lo, hi = math.log(1e-12), math.log(1 - 1e-9)
    if crossed(hi) < 0:
        return 1.0
    if crossed(lo) >= 0:
        return 1e-12
    return math.exp(optimize.brentq(crossed, lo, hi, xtol=1e-6))


@dataclass(frozen=True)
class GroupSequentialLook:
    """One analysis of a two-sided group-sequential test: the information fraction (the
    estimate's information ``1 / variance`` over the planned information at the horizon),
    the z-statistic, the critical value, the repeated p-value so far and the verdict."""

    fraction: float
    z: float
    bound: float
    p_value: float
    reject: bool
    final: bool

    def to_json(self) -> dict[str, float | bool]:
        return {"fraction": self.fraction, "z": self.z, "bound": self.bound,
                "p_value": self.p_value, "reject": self.reject, "final": self.final}


def information_fraction(treatment: ArmStats, holdout: ArmStats, planned_treatment: int,
                         planned_holdout: int) -> float:
    """Information now over the information planned at the horizon: the variance of the
    difference of means with the planned arm sizes over its variance now, both from the
    current per-unit variances (nan when undefined)."""
    if min(treatment.n, holdout.n) < 2:
        return math.nan
    return fitted_information_fraction(_plain(treatment), _plain(holdout), treatment.n,
                                       holdout.n, planned_treatment, planned_holdout)


def fitted_information_fraction(treatment: ArmFit, holdout: ArmFit, n_treatment: int,
                                n_holdout: int, planned_treatment: int,
                                planned_holdout: int) -> float:
    """:func:`information_fraction` of any arm estimates (adjusted or ratio): each arm's
    per-unit variance is its estimate's variance times its units now, scaled to the planned
    units."""
    if min(n_treatment, n_holdout) < 2 or min(planned_treatment, planned_holdout) < 1:
        return math.nan
    now = treatment.variance + holdout.variance
    planned = (treatment.variance * n_treatment / planned_treatment
               + holdout.variance * n_holdout / planned_holdout)
    return planned / now if now > 0 and math.isfinite(now) else math.nan


def group_sequential_look(previous: Sequence[GroupSequentialLook], fraction: float, z: float,
                          alpha: float, spending: Spending, last: bool
                          ) -> GroupSequentialLook | None:
    """The next analysis after ``previous`` (two-sided, total ``alpha``), or None when it
    adds no information (its fraction does not exceed the last one) or the test has ended.

    It is final (spends all that is left) when it is the ``last`` planned look or its
    fraction reaches 1. The bounds of earlier analyses do not change: spending depends only
    on the fractions so far."""
    if ((previous and (previous[-1].final or fraction <= previous[-1].fraction))
            or not (math.isfinite(fraction) and fraction > 0 and math.isfinite(z))):
        return None
    fractions = [p.fraction for p in previous] + [fraction]
    zs = [p.z for p in previous] + [z]
    final = last or fraction >= 1
    bound = group_sequential_bounds(fractions, alpha, 2, spending, final).z[-1]
    p = repeated_p_value(fractions, zs, spending, final)
    return GroupSequentialLook(fraction, z, bound, p, abs(z) >= bound, final)


def _grid(t: float, z: float, sides: int, step: float) -> np.ndarray:
    """Odd-sized grid, finer than ``step``, over the continuation region at fraction ``t``."""
    upper = z * math.sqrt(t)
    lower = -upper if sides == 2 else -10 * math.sqrt(t)
    size = max(801, math.ceil((upper - lower) / step))
    return np.linspace(lower, upper, size + 1 - size % 2)


def _simpson(grid: np.ndarray) -> np.ndarray:
    h = grid[1] - grid[0]
    w = np.ones(len(grid))
    w[1:-1:2], w[2:-1:2] = 4, 2
    return w * h / 3


# -- planning ---------------------------------------------------------------------------------
class TimeToDecision(NamedTuple):
    """Median hours to a decision (inf when fewer than half decide) and the probability of
    deciding within the horizon (power). A named tuple: it unpacks as ``hours, power``."""

    median_hours: float
    power: float


def expected_time_to_decision(effect: float, sd: float, units_per_hour: float,
                              treatment_share: float, n_star: float, alpha: float = 0.05,
                              horizon_hours: int = 21 * 24, reps: int = 2000,
                              seed: int = 0) -> TimeToDecision:
    """Time to a decision of the two-sided mixture sequence at a true absolute ``effect``.

    Simulation of the exact Gaussian process: with units arriving at ``units_per_hour``
    (split by ``treatment_share``) and per-unit standard deviation ``sd``, each arm's
    cumulative sum gains independent normal increments every hour; the test decides at the
    first hour its confidence sequence excludes zero. Vectorised over ``reps``.
    """
    rng = np.random.default_rng(seed)
    hours = np.arange(1, horizon_hours + 1)
    n_t = units_per_hour * treatment_share * hours
    n_h = units_per_hour * (1 - treatment_share) * hours
    inc_t = rng.normal(effect * units_per_hour * treatment_share,
                       sd * math.sqrt(units_per_hour * treatment_share), (reps, len(hours)))
    inc_h = rng.normal(0.0, sd * math.sqrt(units_per_hour * (1 - treatment_share)),
                       (reps, len(hours)))
    est = inc_t.cumsum(1) / n_t - inc_h.cumsum(1) / n_h
    hw = halfwidth(sd**2 * (1 / n_t + 1 / n_h), n_t + n_h, n_star, alpha)
    decided = np.abs(est) > hw
    first = np.where(decided.any(1), decided.argmax(1) + 1, np.inf)
    return TimeToDecision(float(np.median(first)), float(np.isfinite(first).mean()))
