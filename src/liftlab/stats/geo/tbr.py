"""Time-based regression (TBR; Kerman, Wang and Vaver 2017, "Estimating ad effectiveness
using geo experiments in a time-based regression framework").

The treatment geos' total ``y_t`` is regressed on the control geos' total ``x_t`` over the
pre-period, ``y_t = a + b x_t + e_t``; the counterfactual of a measurement period is
``a + b x_t``. The cumulative effect over the first ``k`` measurement periods,
``D_k = sum (y_t - a - b x_t)``, has the predictive variance

    s^2 * (k + k^2 / n + (sum x_t - k * mean(x_pre))^2 / Sxx)

(``n`` pre-periods, ``Sxx`` the pre-period sum of squares of ``x`` about its mean), and
``D_k / sqrt(var)`` is Student-t with ``n - 2`` degrees of freedom under the model.
"""

from __future__ import annotations

import numpy as np

# scipy is imported inside the functions that use it: it takes up to a second to import,
# which ``liftlab validate`` and ``import liftlab.stats`` should not pay
from liftlab.stats.geo.common import GeoFit, check_shapes


def fit(treated: np.ndarray, controls: np.ndarray, n_pre: int, alpha: float) -> GeoFit:
    check_shapes(treated, controls, n_pre)
    y, x = treated.sum(axis=1), controls.sum(axis=1)
    return fit_series(y, x, n_pre, alpha)


def fit_series(y: np.ndarray, x: np.ndarray, n_pre: int, alpha: float) -> GeoFit:
    """TBR on one treatment series ``y`` and one control series ``x``."""
    from scipy import stats

    yp, xp = y[:n_pre], x[:n_pre]
    xbar = float(xp.mean())
    sxx = float(np.sum((xp - xbar) ** 2))
    if sxx <= 0:
        raise ValueError("the control series is constant over the pre-period")
    b = float(np.sum((xp - xbar) * (yp - yp.mean())) / sxx)
    a = float(yp.mean() - b * xbar)
    cf = a + b * x
    resid = yp - cf[:n_pre]
    df = n_pre - 2
    s2 = float(np.sum(resid**2) / df)
    q = float(stats.t.ppf(1 - alpha / 2, df))
    k = np.arange(1, len(y) - n_pre + 1)
    cum = np.cumsum(y[n_pre:] - cf[n_pre:])
    var = s2 * (k + k**2 / n_pre + (np.cumsum(x[n_pre:]) - k * xbar) ** 2 / sxx)
    sd = np.sqrt(var)
    # the per-period band: one period's prediction interval of the counterfactual
    point_sd = np.sqrt(s2 * (1 + 1 / n_pre + (x - xbar) ** 2 / sxx))
    se = float(sd[-1])
    t = float(cum[-1] / se) if se > 0 else np.inf
    return GeoFit(
        method="tbr",
        observed=y.astype(float),
        counterfactual=cf,
        band=(cf - q * point_sd, cf + q * point_sd),
        cumulative=cum,
        cumulative_ci=(cum - q * sd, cum + q * sd),
        effect=float(cum[-1]),
        effect_ci=(float(cum[-1] - q * se), float(cum[-1] + q * se)),
        se=se,
        p_value=float(2 * stats.t.sf(abs(t), df)),
        n_pre=n_pre,
        inference=f"TBR predictive t interval ({df} degrees of freedom)",
        details={
            "intercept": a,
            "slope": b,
            "sigma": float(np.sqrt(s2)),
            "df": df,
            "extrapolation": _extrapolation(xp, x[n_pre:]),
        },
    )


def _extrapolation(x_pre: np.ndarray, x_test: np.ndarray) -> float:
    """The share of measurement periods whose control total lies outside the pre-period's
    range (the regression then extrapolates)."""
    lo, hi = float(x_pre.min()), float(x_pre.max())
    return float(np.mean((x_test < lo) | (x_test > hi)))
