"""Frequentist lift on sufficient statistics: Welch difference, CUPED, ratio metrics.

Absolute lift uses Welch's t with the Satterthwaite degrees of freedom (equal to scipy's
``ttest_ind(equal_var=False)`` on unit-level rows). Relative lift uses the delta method on
the ratio of means (a ratio of CI bounds would be wrong). CUPED regresses the outcome on its
pre-period value with a slope pooled within arms, which makes the point estimate identical to
OLS ``y ~ 1 + treatment + x`` (Frisch-Waugh-Lovell).

Degenerate cells (too few units, a constant metric, a zero baseline) are returned as data
(``error`` set, numbers NaN) so that one bad segment never stops a daily run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sps

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

    @property
    def ok(self) -> bool:
        return self.error is None


def failed(message: str, mean_t: float = NAN, mean_h: float = NAN) -> Lift:
    """A comparison that could not be estimated, carried as data."""
    return Lift(mean_t, mean_h, NAN, NAN, (NAN, NAN), NAN, NAN, (NAN, NAN), NAN, NAN,
                error=message)


def welch(treatment: ArmStats, holdout: ArmStats, alpha: float = 0.05,
          cuped: bool = False) -> Lift:
    """Difference in means (optionally CUPED-adjusted) with Welch CI and p-value."""
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
    share_t, share_h = var_t / (var_t + var_h), var_h / (var_t + var_h)  # no underflow
    df = 1 / (share_t**2 / (t.n - 1) + share_h**2 / (h.n - 1))
    diff = mt - mh
    q = sps.t.ppf(1 - alpha / 2, df)
    p = 2 * sps.t.sf(abs(diff) / se, df)
    rel, rel_se, rel_ci = _relative(mt, mh, var_t, var_h, alpha)
    reduction = 0.0
    if use_cuped:
        raw = t.variance / t.n + h.variance / h.n
        reduction = 1 - (var_t + var_h) / raw if raw > 0 else 0.0
    return Lift(mt, mh, diff, se, (diff - q * se, diff + q * se), rel, rel_se, rel_ci, p, df,
                cuped=use_cuped, theta=theta, variance_reduction=reduction)


def ratio(treatment: RatioStats, holdout: RatioStats, alpha: float = 0.05) -> Lift:
    """Difference of ratio metrics (e.g. revenue per order) by the delta method."""
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
    z = sps.norm.ppf(1 - alpha / 2)
    p = 2 * sps.norm.sf(abs(diff) / se)
    rel, rel_se, rel_ci = _relative(t.mean, h.mean, var_t, var_h, alpha)
    return Lift(t.mean, h.mean, diff, se, (diff - z * se, diff + z * se), rel, rel_se, rel_ci,
                p, math.inf)


def _relative(mt: float, mh: float, var_t: float, var_h: float,
              alpha: float) -> tuple[float, float, tuple[float, float]]:
    """Delta method for mt/mh - 1 with independent arms."""
    try:
        ratio = mt / mh
        se = math.sqrt(var_t + ratio * ratio * var_h) / abs(mh)
    except (ZeroDivisionError, OverflowError):  # a zero (or vanishing) baseline
        return NAN, NAN, (NAN, NAN)
    if not (math.isfinite(ratio) and math.isfinite(se)):
        return NAN, NAN, (NAN, NAN)
    rel = ratio - 1
    z = sps.norm.ppf(1 - alpha / 2)
    return rel, se, (rel - z * se, rel + z * se)


def _cuped_theta(t: ArmStats, h: ArmStats) -> float:
    """Slope of y on x pooled within arms (the OLS coefficient of x given treatment)."""
    sxx = (t.n - 1) * t.pre_variance + (h.n - 1) * h.pre_variance
    sxy = (t.n - 1) * t.covariance + (h.n - 1) * h.covariance
    if not (sxx > 0) or not math.isfinite(sxy):
        return 0.0
    return sxy / sxx


def _adjusted_variance(a: ArmStats, theta: float) -> float:
    return max(a.variance - 2 * theta * a.covariance + theta**2 * a.pre_variance, 0.0)
