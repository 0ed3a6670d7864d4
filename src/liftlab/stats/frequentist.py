"""Frequentist lift on sufficient statistics: Welch difference, CUPED, ratio metrics.

Absolute lift uses Welch's t with the Satterthwaite degrees of freedom (equal to scipy's
``ttest_ind(equal_var=False)`` on unit-level rows). CUPED regresses the outcome on its
pre-period value with a slope pooled within arms, which makes the point estimate identical to
OLS ``y ~ 1 + treatment + x`` (Frisch-Waugh-Lovell).

Relative lift ``(m_t - m_h) / |m_h|`` gets Fieller's interval: the set of ratios ``rho`` of
the two means that the same test does not reject, ``(m_t - rho m_h)^2 <= q^2 (v_t + rho^2 v_h)``
with the absolute test's own quantile ``q``. Unlike the delta method, which treats ``m_h`` as
known and under-covers when one big spender lands in the holdout (0.85 at lognormal sigma = 2),
Fieller keeps its level on skewed revenue. Its test of ``rho = 1`` is the test of equal means,
so the relative p-value is the absolute one and the relative interval excludes 0 exactly when
the absolute one does: a verdict never contradicts either interval. When the holdout mean is
not distinguishable from zero the Fieller set is unbounded and the interval is reported as
(-inf, inf).

Degenerate cells (too few units, a constant metric, a zero baseline) are returned as data
(``error`` set, numbers NaN) so that one bad segment never stops a daily run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liftlab.stats.distributions import norm_ppf, norm_sf, t_ppf, t_sf
from liftlab.stats.suffstats import ArmStats, RatioStats

NAN = math.nan


@dataclass(frozen=True)
class Lift:
    """Treatment-vs-holdout comparison of one metric."""

    mean_treatment: float
    mean_holdout: float
    abs: float
    abs_se: float
    abs_ci: tuple[float, float]
    rel: float
    rel_se: float
    rel_ci: tuple[float, float]
    p_value: float
    df: float
    cuped: bool = False
    theta: float = 0.0
    variance_reduction: float = 0.0
    error: str | None = None
    rel_p_value: float = NAN
    method: str = "welch"

    @property
    def ok(self) -> bool:
        return self.error is None

    def significant(self, alpha: float, p_value: float | None = None) -> bool:
        """A difference is claimed only when the p-value (``p_value``: an adjusted one) is
        below ``alpha`` and the absolute interval shown excludes zero, so a verdict never
        contradicts its interval (they agree by construction except on the exact route)."""
        p = self.p_value if p_value is None else p_value
        lo, hi = self.abs_ci
        return self.ok and p < alpha and (lo > 0 or hi < 0)


def failed(message: str, mean_t: float = NAN, mean_h: float = NAN) -> Lift:
    """A comparison that could not be estimated, carried as data."""
    return Lift(mean_t, mean_h, NAN, NAN, (NAN, NAN), NAN, NAN, (NAN, NAN), NAN, NAN,
                error=message, method="none")


def welch(treatment: ArmStats, holdout: ArmStats, alpha: float = 0.05,
          cuped: bool = False, nonnegative: bool = False) -> Lift:
    """Difference in means (optionally CUPED-adjusted) with Welch CI and p-value; the
    relative lift by Fieller. ``nonnegative``: the metric cannot be negative (a count), so
    the relative interval is cut at -100%."""
    t, h = treatment, holdout
    if t.n < 2 or h.n < 2:
        return failed(f"too few units (treatment {t.n}, holdout {h.n}); need at least 2 per arm",
                      t.mean, h.mean)
    theta = _cuped_theta(t, h) if cuped else 0.0
    use_cuped = cuped and theta != 0.0
    if use_cuped:
        pooled_x = (t.pre_sum + h.pre_sum) / (t.n + h.n)
        mt = t.mean - theta * (t.pre_mean - pooled_x)
        mh = h.mean - theta * (h.pre_mean - pooled_x)
        vt = _adjusted_variance(t, theta)
        vh = _adjusted_variance(h, theta)
    else:
        mt, mh, vt, vh = t.mean, h.mean, t.variance, h.variance
    if vt + vh <= 0.0:
        return failed("the metric is constant in both arms; nothing to compare", t.mean, h.mean)
    var_t, var_h = vt / t.n, vh / h.n
    se = math.sqrt(var_t + var_h)
    df = welch_df(var_t, var_h, t.n, h.n)
    diff = mt - mh
    q = t_ppf(1 - alpha / 2, df)
    p = 2 * t_sf(abs(diff) / se, df)
    rel, rel_se, rel_ci = relative(mt, mh, var_t, var_h, float(q), nonnegative)
    reduction = 0.0
    if use_cuped:
        raw = t.variance / t.n + h.variance / h.n
        reduction = 1 - (var_t + var_h) / raw if raw > 0 else 0.0
    return Lift(mt, mh, diff, se, (diff - q * se, diff + q * se), rel, rel_se, rel_ci, p, df,
                cuped=use_cuped, theta=theta, variance_reduction=reduction,
                rel_p_value=float(p) if math.isfinite(rel) else NAN,
                method="welch_cuped" if use_cuped else "welch")


def ratio(treatment: RatioStats, holdout: RatioStats, alpha: float = 0.05,
          nonnegative: bool = False) -> Lift:
    """Difference of ratio metrics (e.g. revenue per order) by the delta method; the
    relative lift by Fieller on the two delta-method variances."""
    t, h = treatment, holdout
    if t.n < 2 or h.n < 2:
        return failed(f"too few units (treatment {t.n}, holdout {h.n})", t.mean, h.mean)
    if t.den_sum == 0 or h.den_sum == 0:
        return failed("the denominator is zero in an arm; the ratio is undefined", t.mean, h.mean)
    var_t, var_h = t.mean_variance, h.mean_variance
    if var_t + var_h <= 0.0:
        return failed("the ratio has no variance in either arm", t.mean, h.mean)
    diff = t.mean - h.mean
    se = math.sqrt(var_t + var_h)
    z = norm_ppf(1 - alpha / 2)
    p = 2 * norm_sf(abs(diff) / se)
    rel, rel_se, rel_ci = relative(t.mean, h.mean, var_t, var_h, float(z), nonnegative)
    return Lift(t.mean, h.mean, diff, se, (diff - z * se, diff + z * se), rel, rel_se, rel_ci,
                p, math.inf, rel_p_value=float(p) if math.isfinite(rel) else NAN,
                method="delta_ratio")


def welch_df(var_t: float, var_h: float, n_t: int, n_h: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a difference of two independent means, from
    the variances of the means (``variance / n``) and the arms' sizes."""
    share_t, share_h = var_t / (var_t + var_h), var_h / (var_t + var_h)  # no underflow
    return 1 / (share_t**2 / (n_t - 1) + share_h**2 / (n_h - 1))


def relative_se(mt: float, mh: float, var_t: float, var_h: float) -> float:
    """Delta-method standard error of ``mt / mh`` (independent arms; the variances are of the
    means): NaN when the baseline is zero or the result is not finite."""
    try:
        rho = mt / mh
        se = math.sqrt(var_t + rho * rho * var_h) / abs(mh)
    except (ZeroDivisionError, OverflowError):  # a zero (or vanishing) baseline
        return NAN
    return se if math.isfinite(rho) and math.isfinite(se) else NAN


def relative(mt: float, mh: float, var_t: float, var_h: float, q: float,
             nonnegative: bool = False) -> tuple[float, float, tuple[float, float]]:
    """Relative lift ``(mt - mh) / |mh|`` of independent arms: the estimate, its delta-method
    standard error (a scale for priors) and Fieller's interval at critical value ``q``."""
    se = relative_se(mt, mh, var_t, var_h)
    if math.isnan(se):
        return NAN, NAN, (NAN, NAN)
    rho = mt / mh
    lo, hi = fieller(mt, mh, var_t, var_h, q)
    if mh > 0:
        rel, ci = rho - 1, (lo - 1, hi - 1)
    else:  # (mt - mh) / |mh| = 1 - rho: a rise from a negative baseline is a positive lift
        rel, ci = 1 - rho, (1 - hi, 1 - lo)
    if nonnegative:
        ci = (max(ci[0], -1.0), ci[1])
    return rel, se, ci


def fieller(num: float, den: float, var_num: float, var_den: float,
            q: float) -> tuple[float, float]:
    """Fieller's interval for ``num / den`` (independent estimates): the ratios ``rho`` with
    ``(num - rho den)^2 <= q^2 (var_num + rho^2 var_den)``; (-inf, inf) when ``den`` is not
    distinguishable from zero at that level (the set is then unbounded)."""
    a = den * den - q * q * var_den
    if not a > 0:
        return -math.inf, math.inf
    half = q * math.sqrt(var_num * den * den + var_den * num * num - q * q * var_num * var_den)
    return (num * den - half) / a, (num * den + half) / a


def _cuped_theta(t: ArmStats, h: ArmStats) -> float:
    """Slope of y on x pooled within arms (the OLS coefficient of x given treatment)."""
    sxx = (t.n - 1) * t.pre_variance + (h.n - 1) * h.pre_variance
    sxy = (t.n - 1) * t.covariance + (h.n - 1) * h.covariance
    if not (sxx > 0) or not math.isfinite(sxy):
        return 0.0
    return sxy / sxx


def _adjusted_variance(a: ArmStats, theta: float) -> float:
    return max(a.variance - 2 * theta * a.covariance + theta**2 * a.pre_variance, 0.0)
