"""Brent's root finder, step for step as ``scipy.optimize.brentq`` computes it.

Why not scipy.optimize itself: the statistics of every ``analyze`` (score intervals of binary
metrics, group-sequential bounds, Bayesian quantiles) solve a few one-dimensional equations,
and importing scipy.optimize costs about 0.1 s of CPU on top of scipy.special; this is the
same algorithm (Charles Harris' C code in scipy, ``scipy/optimize/Zeros/brentq.c``: the same
double operations in the same order, so the same iterates and the same root), its error
cases raised as scipy raises them. tests/test_roots.py checks the roots equal scipy's to the
bit over many functions and brackets.
"""

from __future__ import annotations

import math
from collections.abc import Callable

RTOL = 4 * 2.220446049250313e-16  # scipy's default and smallest relative tolerance (4 eps)


def brentq(
    f: Callable[[float], float],
    a: float,
    b: float,
    xtol: float = 2e-12,
    rtol: float = RTOL,
    maxiter: int = 100,
) -> float:
    """A root of ``f`` in [a, b], where f(a) and f(b) have opposite signs, to within
    ``xtol + rtol * |root|``."""
    if xtol <= 0:
        raise ValueError(f"xtol too small ({xtol:g} <= 0)")
    if rtol < RTOL:
        raise ValueError(f"rtol too small ({rtol:g} < {RTOL:g})")

    def value(x: float) -> float:
        fx = float(f(x))
        if math.isnan(fx):
            raise ValueError(f"The function value at x={x} is NaN; solver cannot continue.")
        return fx

    xpre, xcur = float(a), float(b)
    xblk = fblk = spre = scur = 0.0
    fpre, fcur = value(xpre), value(xcur)
    if fpre * fcur > 0:
        raise ValueError("f(a) and f(b) must have different signs")
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    for _ in range(maxiter):
        if fpre * fcur < 0:
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        stry = (
            _step(xpre, xcur, xblk, fpre, fcur, fblk)
            if abs(spre) > delta and abs(fcur) < abs(fpre)
            else math.inf
        )
        bound = 3 * abs(sbis) - delta
        if 2 * abs(stry) < (abs(spre) if abs(spre) < bound else bound):  # good short step
            spre, scur = scur, stry
        else:  # bisect
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = value(xcur)
    raise RuntimeError(f"Failed to converge after {maxiter} iterations.")


def _step(xpre: float, xcur: float, xblk: float, fpre: float, fcur: float, fblk: float) -> float:
    """The interpolation step (secant when the last two points bracket, inverse quadratic
    otherwise); infinite where C's division by zero gives an infinity or NaN (scipy then
    bisects, as the caller does for any step that is not short)."""
    try:
        if xpre == xblk:  # interpolate
            return -fcur * (xcur - xpre) / (fcur - fpre)
        dpre = (fpre - fcur) / (xpre - xcur)  # extrapolate
        dblk = (fblk - fcur) / (xblk - xcur)
        return -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
    except ZeroDivisionError:
        return math.inf
