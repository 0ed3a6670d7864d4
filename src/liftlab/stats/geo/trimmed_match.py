"""Trimmed match (Chen and Au 2019, "Robust causal inference for incremental return on ad
spend with randomized paired geo experiments", Annals of Applied Statistics 16(1)).

Geos come in randomised pairs; pair ``i`` has a response difference ``dy_i`` and a spend
difference ``dx_i`` (treatment minus control over the test). For an iROAS ``theta`` the pair
residuals are ``e_i = dy_i - theta * dx_i``. With ``m`` pairs trimmed at each end (trim rate
``m / n``), the estimate solves: the sum of the middle ``n - 2m`` sorted residuals is zero.
Its standard error (the paper's Eq. 8.2) is the winsorized root sum of squares of the
residuals over ``n`` times the trimmed mean spend difference (of the pairs kept). The trim
rate is the smallest whose standard error is within ``1 + 0.25 / sqrt(n)`` of the smallest
among ``0, 1/n, ...`` up to ``max_trim_rate``.

The interval is the set of ``theta`` where the studentized trimmed mean is within the normal
quantile ``q`` (Eq. 5.6): ``S(theta)^2 <= q^2 (n - 2m) / (n - 2m - 1) * W(theta)``, ``S`` the
trimmed sum of residuals and ``W`` the sum of squares of the winsorized residuals about
their mean. Between two values of ``theta`` where residuals swap order, ``S`` is linear and
``W`` quadratic in ``theta``, so the set is found exactly segment by segment. That normal
interval (``inference="normal"``) is google/trimmed_match's; with few pairs and a trim rate
chosen from the data it covers less than its level.

The default inference (``inference="randomization"``) follows the design instead. Within
each pair a fair coin chose which geo is treated. Under the sharp null "iROAS = theta"
(every geo's KPI minus theta times its spend is what it would have been under either
assignment) each pair residual ``e_i(theta)`` is a fixed number whose sign the coin chose,
so the signs are independent fair coins given the magnitudes. The test of ``theta`` compares
the observed studentized trimmed mean ``|S| / sqrt(H' W)`` (``H' = (n - 2m) / (n - 2m - 1)``,
``m`` the trim chosen for the estimate) with its values over sign patterns of the residuals:
all ``2^n`` patterns for at most ``EXACT_PAIRS`` pairs, otherwise ``RANDOMIZATION_DRAWS``
random patterns from a seeded generator, the p-value then ``(1 + #{T* >= T}) / (1 + draws)``
(a valid Monte Carlo test at every number of draws). The trim of the statistic is chosen
from the residuals themselves (Chen and Au's standard-error rule with the spend denominator
held fixed), for the observed pattern and for every flipped one alike, so the statistic is
one fixed function of the signed residuals and the test is exact: taking Chen and Au's trim
(chosen from the data) as if fixed in advance calls 5.5% of A/A tests at 5% with 10 pairs.
The same patterns serve every ``theta``; the interval is the hull of the ``theta`` near the
estimate whose p-value exceeds ``alpha`` (``randomization_interval``), unbounded on a side
the test never rejects (with 3 to 5 pairs, ``2 / 2^n`` may exceed ``alpha``).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

# scipy is imported inside the functions that use it: it takes up to a second to import,
# which ``liftlab validate`` and ``import liftlab.stats`` should not pay

MAX_TRIM_RATE = 0.25
EXACT_PAIRS = 12  # up to this many pairs the sign patterns are enumerated (2^12 = 4,096)
RANDOMIZATION_DRAWS = 2_000  # seeded sign patterns beyond EXACT_PAIRS
GRID_SES, GRID_POINTS = 8, 41  # the randomization interval's first search around the estimate
Inference = Literal["normal", "randomization"]


@dataclass(frozen=True)
class TrimmedMatchFit:
    estimate: float  # iROAS
    se: float
    trim_rate: float
    ci: tuple[float, float]
    confidence: float
    p_value: float  # of iROAS 0 (normal: the interval excludes 0 exactly when p < 1 - confidence)
    inference: Inference = "randomization"
    sign_patterns: int = 0  # randomization: patterns in the reference (0 for normal)
    exact: bool = False  # randomization: every sign pattern enumerated


def _order(dy: np.ndarray, dx: np.ndarray, theta: float) -> np.ndarray:
    return np.argsort(dy - theta * dx, kind="stable")


def _breakpoints(dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """The values of theta where two pairs' residuals are equal (their order swaps)."""
    i, j = np.triu_indices(len(dy), 1)
    ddx = dx[i] - dx[j]
    ok = ddx != 0
    return np.unique((dy[i] - dy[j])[ok] / ddx[ok])


def _inside(lo: float, hi: float) -> float:
    """A point strictly inside the interval (lo, hi), whose ends may be infinite."""
    if math.isfinite(lo) and math.isfinite(hi):
        return (lo + hi) / 2
    if math.isfinite(hi):
        return hi - 1.0
    return lo + 1.0 if math.isfinite(lo) else 0.0


def _segments(dy: np.ndarray, dx: np.ndarray) -> list[tuple[float, float, np.ndarray]]:
    """(low, high, order of the residuals inside) for every segment between breakpoints."""
    b = _breakpoints(dy, dx)
    edges = [-math.inf, *b.tolist(), math.inf]
    out = []
    for lo, hi in itertools.pairwise(edges):
        out.append((lo, hi, _order(dy, dx, _inside(lo, hi))))
    return out


def zeros(dy: np.ndarray, dx: np.ndarray, m: int) -> list[float]:
    """Every theta where the trimmed sum of residuals (``m`` trimmed at each end) is zero:
    on each segment between breakpoints the kept pairs are fixed and the sum is linear."""
    roots: list[float] = []
    for lo, hi, order in _segments(dy, dx):
        keep = order[m : len(dy) - m]
        a, b = float(dy[keep].sum()), float(dx[keep].sum())
        if b != 0 and lo - 1e-12 <= a / b <= hi + 1e-12:
            roots.append(a / b)
    return sorted(set(roots))


def estimate(dy: np.ndarray, dx: np.ndarray, m: int) -> float:
    """The iROAS with ``m`` pairs trimmed at each end; among several roots, the one with the
    smallest sum of squared kept residuals."""
    if m == 0:
        return float(dy.sum() / dx.sum())
    if np.all(dx > 0):
        return _monotone_root(dy, dx, m)
    roots = zeros(dy, dx, m)
    if not roots:
        raise ValueError("the trimmed mean equation has no root (kept spend differences sum to 0)")

    def kept_ss(theta: float) -> float:
        e = np.sort(dy - theta * dx)[m : len(dy) - m]
        return float(np.sum(e**2))

    return min(roots, key=kept_ss)


def _monotone_root(dy: np.ndarray, dx: np.ndarray, m: int) -> float:
    """With every spend difference positive each residual falls as theta rises, so the
    trimmed sum does too and has one root: bracketed by the pairs' own ratios, located by
    bisection, then solved exactly on its segment (the kept pairs there)."""
    from scipy import optimize

    n = len(dy)

    def trimmed_sum(theta: float) -> float:
        return float(np.sort(dy - theta * dx)[m : n - m].sum())

    ratios = dy / dx
    lo, hi = float(ratios.min()), float(ratios.max())
    if lo == hi:
        return lo
    theta = float(optimize.brentq(trimmed_sum, lo, hi, xtol=1e-14 * max(1.0, abs(hi)), rtol=1e-15))
    keep = _order(dy, dx, theta)[m : n - m]
    exact = float(dy[keep].sum() / dx[keep].sum())
    return exact if abs(trimmed_sum(exact)) <= abs(trimmed_sum(theta)) else theta


def standard_error(dy: np.ndarray, dx: np.ndarray, m: int, theta: float) -> float:
    n = len(dy)
    order = _order(dy, dx, theta)
    e = (dy - theta * dx)[order]
    keep = slice(m, n - m)
    wss = m * (e[m] ** 2 + e[n - m - 1] ** 2) + float(np.sum(e[keep] ** 2))
    mean_dx = float(dx[order][keep].sum()) / n
    return math.sqrt(wss / (mean_dx**2 * n) / n)


def interval(dy: np.ndarray, dx: np.ndarray, m: int, q: float) -> tuple[float, float]:
    """{theta: S(theta)^2 <= H W(theta)} (see the module docstring), as its hull."""
    n = len(dy)
    h = q * q * (n - 2 * m) / (n - 2 * m - 1)
    accepted: list[tuple[float, float]] = []
    for lo, hi, order in _segments(dy, dx):
        keep = order[m : n - m]
        sy, sx = float(dy[keep].sum()), float(dx[keep].sum())
        wy, wx = dy[order].copy(), dx[order].copy()
        wy[:m], wx[:m] = wy[m], wx[m]
        wy[n - m :], wx[n - m :] = wy[n - m - 1], wx[n - m - 1]
        # g(theta) = h * W(theta) - S(theta)^2 = c2 theta^2 + c1 theta + c0
        c2 = h * (float(wx @ wx) - wx.sum() ** 2 / n) - sx * sx
        c1 = -2 * h * (float(wy @ wx) - wy.sum() * wx.sum() / n) + 2 * sy * sx
        c0 = h * (float(wy @ wy) - wy.sum() ** 2 / n) - sy * sy
        accepted += _nonnegative(c2, c1, c0, lo, hi)
    if not accepted:
        return math.nan, math.nan
    return min(a for a, _ in accepted), max(b for _, b in accepted)


def _nonnegative(
    c2: float, c1: float, c0: float, lo: float, hi: float
) -> list[tuple[float, float]]:
    """Where c2 t^2 + c1 t + c0 >= 0 within [lo, hi]."""

    def g(t: float) -> float:
        return c2 * t * t + c1 * t + c0

    cuts = [lo, hi]
    if c2 != 0:
        disc = c1 * c1 - 4 * c2 * c0
        if disc >= 0:
            r = math.sqrt(disc)
            cuts += [(-c1 - r) / (2 * c2), (-c1 + r) / (2 * c2)]
    elif c1 != 0:
        cuts.append(-c0 / c1)
    points = sorted({c for c in cuts if lo <= c <= hi})
    out = []
    for a, b in itertools.pairwise(points):
        if g(_inside(a, b)) >= 0:
            out.append((a, b))
    return out


def fit(
    delta_response: np.ndarray,
    delta_spend: np.ndarray,
    confidence: float = 0.9,
    max_trim_rate: float = MAX_TRIM_RATE,
    inference: Inference = "randomization",
    seed: int = 0,
) -> TrimmedMatchFit:
    """Trimmed match on paired differences, with the trim rate chosen as described above and
    the interval and p-value of ``inference`` (the module docstring)."""
    from scipy import stats

    dy, dx = np.asarray(delta_response, float), np.asarray(delta_spend, float)
    m, theta, se = choose_trim(dy, dx, max_trim_rate)
    if inference == "normal":
        q = float(stats.norm.ppf(0.5 + confidence / 2))
        return TrimmedMatchFit(
            theta, se, m / len(dy), interval(dy, dx, m, q), confidence, _p_at_zero(dy, m), "normal"
        )
    signs = sign_patterns(len(dy), seed)
    ci = randomization_interval(dy, dx, 1 - confidence, signs, theta, se, max_trim_rate)
    return TrimmedMatchFit(
        theta,
        se,
        m / len(dy),
        ci,
        confidence,
        randomization_p(dy, signs, max_trim_rate),
        "randomization",
        len(signs),
        len(dy) <= EXACT_PAIRS,
    )


def p_value(
    delta_response: np.ndarray,
    delta_spend: np.ndarray,
    max_trim_rate: float = MAX_TRIM_RATE,
    inference: Inference = "randomization",
    seed: int = 0,
    draws: int = RANDOMIZATION_DRAWS,
) -> float:
    """``fit(...).p_value`` without the interval (the planner's simulations need only it;
    they may take fewer Monte Carlo ``draws``: the test stays valid at any number)."""
    dy, dx = np.asarray(delta_response, float), np.asarray(delta_spend, float)
    if inference == "normal":
        return _p_at_zero(dy, choose_trim(dy, dx, max_trim_rate)[0])
    return randomization_p(dy, sign_patterns(len(dy), seed, draws), max_trim_rate)


@functools.lru_cache(maxsize=64)
def sign_patterns(n: int, seed: int, draws: int = RANDOMIZATION_DRAWS) -> np.ndarray:
    """The reference sign patterns (rows of +-1, read-only): all ``2^n`` for at most
    ``EXACT_PAIRS`` pairs, else ``draws`` fair coins per pair from ``seed``."""
    if n <= EXACT_PAIRS:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
        out = 1.0 - 2.0 * bits
    else:
        rng = np.random.default_rng(seed)
        out = np.where(rng.random((draws, n)) < 0.5, -1.0, 1.0)
    out.setflags(write=False)
    return out


def studentized(e: np.ndarray, max_trim_rate: float = MAX_TRIM_RATE) -> np.ndarray:
    """The studentized trimmed mean ``|S_m| / sqrt(H'_m W_m)`` of each row of residuals
    ``e`` (the module docstring), its trim ``m`` chosen row by row from the residuals alone:
    the smallest whose trimmed-mean standard error ``sqrt(wss_m) / (n - 2m)`` is within
    ``1 + 0.25 / sqrt(n)`` of the smallest (Chen and Au's rule with the spend denominator
    held fixed). Infinite when the winsorized residuals do not vary and ``S`` is not zero,
    zero when both are."""
    n = e.shape[1]
    # scale-free: each row over its largest residual, then sorted, with running sums
    big = np.abs(e).max(axis=1, keepdims=True)
    s = np.sort(e / np.where(big > 0, big, 1.0), axis=1)
    c1, c2 = np.zeros((len(s), n + 1)), np.zeros((len(s), n + 1))
    np.cumsum(s, axis=1, out=c1[:, 1:])
    np.cumsum(s * s, axis=1, out=c2[:, 1:])
    stats_, ses = [], []
    for m in range(0, math.ceil(max_trim_rate * n) + 1):
        if m / n > max_trim_rate or n - 2 * m < 2:
            break
        kept1, kept2 = c1[:, n - m] - c1[:, m], c2[:, n - m] - c2[:, m]
        ends1, ends2 = s[:, m] + s[:, n - m - 1], s[:, m] ** 2 + s[:, n - m - 1] ** 2
        total = np.abs(kept1)
        total = np.where(total <= 1e-12 * n, 0.0, total)
        win1, wss = kept1 + m * ends1, kept2 + m * ends2
        scale = (n - 2 * m) / (n - 2 * m - 1) * np.maximum(wss - win1 * win1 / n, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = total / np.sqrt(scale)
        stats_.append(np.where(total == 0.0, 0.0, np.where(scale > 1e-24, t, math.inf)))
        ses.append(np.sqrt(wss) / (n - 2 * m))
    se = np.array(ses)
    chosen = np.argmax(se <= (1 + 0.25 / math.sqrt(n)) * se.min(axis=0), axis=0)
    return np.array(stats_)[chosen, np.arange(e.shape[0])]


def randomization_p(
    e: np.ndarray, signs: np.ndarray, max_trim_rate: float = MAX_TRIM_RATE
) -> float:
    """The sign-flip p-value of the residuals ``e`` (the observed pattern against ``signs``:
    the share of all patterns at least as extreme, or the Monte Carlo ``(1 + k) / (1 + B)``)."""
    e = np.asarray(e, float)[None, :]
    observed = float(studentized(e, max_trim_rate)[0])
    reference = studentized(signs * e, max_trim_rate)
    extreme = int(np.sum(reference >= observed * (1 - 1e-9)))
    if e.shape[1] <= EXACT_PAIRS:
        return extreme / len(signs)
    return (1 + extreme) / (1 + len(signs))


def randomization_interval(
    dy: np.ndarray,
    dx: np.ndarray,
    alpha: float,
    signs: np.ndarray,
    theta: float,
    se: float,
    max_trim_rate: float = MAX_TRIM_RATE,
) -> tuple[float, float]:
    """The hull of the iROAS values the sign-flip test does not reject at ``alpha``, near
    the estimate ``theta``: the test on ``GRID_POINTS`` values spread over ``theta +-
    GRID_SES`` standard errors (the test's trim is chosen from the residuals, so it may
    reject Chen and Au's estimate itself); from the outermost accepted value on each side
    steps double (from ``se``) until the test rejects, unbounded if it never does within
    ``2^40`` steps, then bisection to a relative ``1e-7``. NaNs when no value is accepted."""

    def accepted(t: float) -> bool:
        return randomization_p(dy - t * dx, signs, max_trim_rate) > alpha

    step0 = se if math.isfinite(se) and se > 0 else max(abs(theta), 1.0) * 1e-3
    grid = theta + step0 * np.linspace(-GRID_SES, GRID_SES, GRID_POINTS)
    inside_grid = [float(t) for t in grid if accepted(float(t))]
    if not inside_grid:
        return math.nan, math.nan
    ends = []
    for direction, start in ((-1.0, inside_grid[0]), (1.0, inside_grid[-1])):
        inside, step = start, step0
        while accepted(start + direction * step):
            inside = start + direction * step
            step *= 2
            if step > step0 * 2**40:
                ends.append(direction * math.inf)
                break
        else:
            outside = start + direction * step
            while abs(outside - inside) > 1e-7 * max(abs(inside), abs(step0), 1e-12):
                mid = (inside + outside) / 2
                inside, outside = (mid, outside) if accepted(mid) else (inside, mid)
            ends.append(inside)
    return ends[0], ends[1]


def choose_trim(dy: np.ndarray, dx: np.ndarray, max_trim_rate: float) -> tuple[int, float, float]:
    """The number of pairs trimmed at each end, with its estimate and standard error."""
    n = len(dy)
    if n < 3 or len(dx) != n:
        raise ValueError("trimmed match needs at least 3 pairs, with a spend difference each")
    candidates = []
    for m in range(0, math.ceil(max_trim_rate * n) + 1):
        if m / n > max_trim_rate or n - 2 * m < 2:
            break
        theta = estimate(dy, dx, m)
        candidates.append((m, theta, standard_error(dy, dx, m, theta)))
    best = min(se for _, _, se in candidates)
    return next(c for c in candidates if c[2] <= (1 + 0.25 / math.sqrt(n)) * best)


def _p_at_zero(dy: np.ndarray, m: int) -> float:
    """The two-sided normal p-value of the studentized trimmed mean at iROAS 0."""
    from scipy import stats

    n = len(dy)
    e = np.sort(dy)
    w = e.copy()
    w[:m], w[n - m :] = e[m], e[n - m - 1]
    scale = (n - 2 * m) / (n - 2 * m - 1) * float(np.sum((w - w.mean()) ** 2))
    total = float(e[m : n - m].sum())
    if scale <= 0:
        return 0.0 if total != 0 else 1.0
    return float(2 * stats.norm.sf(abs(total) / np.sqrt(scale)))
