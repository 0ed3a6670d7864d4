"""Normal, Student-t and chi-squared probabilities, computed as scipy.stats computes them.

Why not ``scipy.stats`` itself: importing it costs about 0.7 s of CPU, more than the whole
statistics of an ``analyze`` on a small table, and the frequentist readout needs only these few
functions. scipy.stats defines them on scipy.special (``scipy/stats/_continuous_distns.py``:
``norm._cdf = ndtr``, ``norm._sf(x) = ndtr(-x)``, ``norm._ppf = ndtri``, ``norm._isf(q) =
-ndtri(q)``, ``t._cdf(x, df) = stdtr(df, x)``, ``t._sf(x, df) = stdtr(df, -x)``, ``t._ppf(q, df)
= stdtrit(df, q)``, ``chi2._sf(x, df) = chdtrc(df, x)``; the densities by their formulas), which
loads in about 0.25 s; with location 0 and scale 1 its wrappers add nothing to the number
(they answer the ends of the support themselves: ``t_ppf`` does too).
tests/test_distributions.py checks every function here equals its scipy.stats counterpart to
the bit, over many inputs and the edges (0, 1, infinities, NaN).

scipy.special is imported inside each function, like scipy elsewhere in ``liftlab.stats``:
``liftlab validate`` and ``import liftlab.stats`` load no scipy at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def norm_cdf(x: float) -> np.float64:
    """P(Z <= x) for a standard normal Z (``scipy.stats.norm.cdf``)."""
    from scipy.special import ndtr

    return ndtr(x)


def norm_sf(x: float) -> np.float64:
    """P(Z > x) for a standard normal Z (``scipy.stats.norm.sf``)."""
    from scipy.special import ndtr

    return ndtr(-x)


def norm_ppf(q: float) -> np.float64:
    """The standard normal quantile of ``q`` (``scipy.stats.norm.ppf``)."""
    from scipy.special import ndtri

    return ndtri(q)


def norm_isf(q: float) -> np.float64:
    """The standard normal quantile of ``1 - q`` (``scipy.stats.norm.isf``)."""
    from scipy.special import ndtri

    return -ndtri(q)


def t_cdf(x: float, df: float) -> np.float64:
    """P(T <= x) for Student's t with ``df`` degrees of freedom (``scipy.stats.t.cdf``)."""
    from scipy.special import stdtr

    return stdtr(df, x)


def t_sf(x: float, df: float) -> np.float64:
    """P(T > x) for Student's t with ``df`` degrees of freedom (``scipy.stats.t.sf``)."""
    from scipy.special import stdtr

    return stdtr(df, -x)


def t_ppf(q: float, df: float) -> np.float64:
    """Student's t quantile of ``q`` with ``df`` degrees of freedom (``scipy.stats.t.ppf``)."""
    from scipy.special import stdtrit

    # scipy.stats answers the ends of the support itself (stdtrit(df, 0) is +inf for df < 1)
    return np.where(q == 0, -np.inf, np.where(q == 1, np.inf, stdtrit(df, q)))[()]


def norm_pdf(x: float | np.ndarray) -> np.float64 | np.ndarray:
    """The standard normal density at ``x`` (``scipy.stats.norm.pdf``, its formula)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.exp(-(x**2) / 2.0) / _SQRT_2PI)[()]


def t_pdf(x: float, df: float) -> np.float64:
    """Student's t density at ``x`` for a finite ``df`` (``scipy.stats.t.pdf``, its formula for
    finite degrees of freedom; use ``norm_pdf`` for infinite ones)."""
    from scipy.special import poch

    return np.exp(
        np.log(poch(0.5 * df, 0.5))
        - 0.5 * (np.log(df) + np.log(np.pi))
        - (df + 1) / 2 * np.log1p(x * x / df)
    )


def chi2_sf(x: float, df: float) -> np.float64:
    """P(X > x) for a chi-squared X with ``df`` degrees of freedom (``scipy.stats.chi2.sf``)."""
    from scipy.special import chdtrc

    return chdtrc(df, x)


def chisquare_p(observed: Sequence[float], expected: Sequence[float]) -> np.float64:
    """The p-value of Pearson's chi-squared test of ``observed`` counts against ``expected``
    counts of the same total (``scipy.stats.chisquare(observed, expected).pvalue``: the same
    statistic, summed by numpy in the same order, and chi2's survival function)."""
    f_obs = np.asarray(observed, dtype=np.float64)
    f_exp = np.asarray(expected, dtype=np.float64)
    return chi2_sf(np.sum((f_obs - f_exp) ** 2 / f_exp), f_obs.size - 1)


_SQRT_2PI = np.sqrt(2 * np.pi)  # scipy.stats' _norm_pdf_C
