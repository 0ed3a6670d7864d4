"""liftlab.stats.roots.brentq finds the very root scipy.optimize.brentq finds (issue 23: the
statistics of ``analyze`` no longer import scipy.optimize, and results.json must not move):
smooth, flat, steep, kinked and step functions, random brackets, the tolerances the statistics
use, and the score-interval equations of binary metrics; the same errors where scipy raises."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from liftlab.stats.proportions import score_statistic
from liftlab.stats.roots import brentq

RNG = np.random.default_rng(2026)
TOLERANCES = [
    (2e-12, 4 * np.finfo(float).eps),
    (1e-12, 1e-10),
    (1e-12, 1e-12),
    (1e-6, 1e-15),
    (1e-3, 1e-8),
]


def _functions():
    for _ in range(60):
        r = float(RNG.normal(0, 3))
        k = float(10 ** RNG.uniform(-3, 3))
        yield f"cubic {r:.3g}", lambda x, r=r, k=k: k * (x - r) ** 3 + (x - r) / k, r
        yield f"exp {r:.3g}", lambda x, r=r, k=k: math.expm1(max(min(k * (x - r), 700), -700)), r
        yield f"kink {r:.3g}", lambda x, r=r: abs(x - r) ** 0.3 * (1 if x > r else -1), r
        yield f"step {r:.3g}", lambda x, r=r: 1.0 if x >= r else -1.0, r
        yield f"atan {r:.3g}", lambda x, r=r, k=k: math.atan(k * (x - r)) - 0.1 / k, r
        yield f"clip {r:.3g}", lambda x, r=r, k=k: max(min(k * (x - r) ** 5, 1e300), -1e300), r


@pytest.mark.parametrize(("xtol", "rtol"), TOLERANCES)
def test_brentq_equals_scipy(xtol: float, rtol: float):
    checked = 0
    for name, f, r in _functions():
        for _ in range(4):
            a = r - float(10 ** RNG.uniform(-2, 2))
            b = r + float(10 ** RNG.uniform(-2, 2))
            for lo, hi in ((a, b), (b, a)):
                if f(lo) * f(hi) > 0:
                    continue
                assert _solve(brentq, f, lo, hi, xtol, rtol) == _solve(
                    optimize.brentq, f, lo, hi, xtol, rtol
                ), (name, lo, hi)
                checked += 1
    assert checked > 1500


def _solve(call, f, a, b, xtol, rtol) -> float | str:
    """The root, or the error raised (scipy gives up on some step functions after 100
    iterations: so must the port)."""
    try:
        return call(f, a, b, xtol=xtol, rtol=rtol)
    except (ValueError, RuntimeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_brentq_equals_scipy_on_the_score_interval_equations():
    """The ends of the score intervals of binary metrics (both compares), as _bound solves
    them."""
    q = 1.959963984540054
    for _ in range(300):
        n_t, n_h = (int(v) for v in 10.0 ** RNG.uniform(1, 6, 2))
        k_t, k_h = int(RNG.binomial(n_t, 0.03)) + 1, int(RNG.binomial(n_h, 0.03)) + 1
        diff = k_t / n_t - k_h / n_h
        rho = (k_t / n_t) / (k_h / n_h)

        def stat(v, compare, target, k_t=k_t, n_t=n_t, k_h=k_h, n_h=n_h):
            with np.errstate(all="ignore"):
                s = float(score_statistic(k_t, n_t, k_h, n_h, v, compare))
            return (math.inf if target > 0 else -math.inf) if math.isnan(s) else s - target

        for compare, lo, hi in (("diff", -1 + 1e-12, 1 - 1e-12), ("ratio", 1e-12, 1e12)):
            centre = diff if compare == "diff" else rho
            for target, a, b in ((q, lo, centre), (-q, centre, hi)):

                def f(v, c=compare, t=target):
                    return max(min(stat(v, c, t), 1e300), -1e300)

                if not f(a) * f(b) < 0:
                    continue
                want = optimize.brentq(f, a, b, xtol=1e-12, rtol=1e-10)
                assert brentq(f, a, b, xtol=1e-12, rtol=1e-10) == want


def test_brentq_raises_where_scipy_raises():
    def f(x):
        return x * x + 1

    for call in (optimize.brentq, brentq):
        with pytest.raises(ValueError, match="different signs"):
            call(f, -1.0, 1.0)
        with pytest.raises(ValueError, match="NaN"):
            call(lambda x: math.nan if x > 0 else -1.0, -1.0, 1.0)
        with pytest.raises(RuntimeError, match="converge"):
            call(lambda x: x - 1 / 3, 0.0, 1e6, maxiter=1)
        with pytest.raises(ValueError, match="too small"):
            call(math.sin, -1.0, 1.0, rtol=1e-17)
    assert brentq(math.sin, 0.0, 1.0) == optimize.brentq(math.sin, 0.0, 1.0) == 0.0
