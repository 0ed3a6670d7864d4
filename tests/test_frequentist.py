"""Frequentist lift against independent routes: scipy's Welch test, statsmodels OLS with
HC1 errors on unit-level rows, OLS with the covariate for CUPED, and simulation coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps

from liftlab.stats.frequentist import ratio, welch
from liftlab.stats.suffstats import ArmStats, RatioStats


def _arms(seed: int = 0, n_t: int = 4000, n_h: int = 1000, lift: float = 2.0):
    rng = np.random.default_rng(seed)
    x_t = rng.lognormal(3, 1, n_t)
    x_h = rng.lognormal(3, 1, n_h)
    y_t = 0.6 * x_t + rng.lognormal(2.5, 1.2, n_t) + lift
    y_h = 0.6 * x_h + rng.lognormal(2.5, 1.2, n_h)
    return y_t, y_h, x_t, x_h


def test_welch_matches_scipy_exactly():
    y_t, y_h, _, _ = _arms()
    got = welch(ArmStats.from_values(y_t), ArmStats.from_values(y_h))
    ref = sps.ttest_ind(y_t, y_h, equal_var=False)
    assert got.abs == pytest.approx(y_t.mean() - y_h.mean(), rel=1e-12)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    lo, hi = ref.confidence_interval(0.95)
    assert got.abs_ci == pytest.approx((lo, hi), rel=1e-9)


def test_absolute_lift_matches_ols_hc1():
    y_t, y_h, _, _ = _arms(1)
    y = np.concatenate([y_t, y_h])
    d = np.concatenate([np.ones_like(y_t), np.zeros_like(y_h)])
    fit = sm.OLS(y, sm.add_constant(d)).fit(cov_type="HC1")
    got = welch(ArmStats.from_values(y_t), ArmStats.from_values(y_h))
    assert got.abs == pytest.approx(fit.params[1], rel=1e-10)
    # HC1 = Welch variance up to a factor (n_i - 1)/n_i * n/(n - 2): equal to 1e-3 here.
    assert got.abs_se == pytest.approx(fit.bse[1], rel=1e-3)


def test_cuped_point_estimate_equals_ols_with_covariate():
    y_t, y_h, x_t, x_h = _arms(2)
    y = np.concatenate([y_t, y_h])
    x = np.concatenate([x_t, x_h])
    d = np.concatenate([np.ones_like(y_t), np.zeros_like(y_h)])
    fit = sm.OLS(y, sm.add_constant(np.column_stack([d, x]))).fit(cov_type="HC1")
    got = welch(ArmStats.from_values(y_t, x_t), ArmStats.from_values(y_h, x_h), cuped=True)
    assert got.cuped
    assert got.abs == pytest.approx(fit.params[1], rel=1e-10)
    assert got.theta == pytest.approx(fit.params[2], rel=1e-10)
    assert got.abs_se == pytest.approx(fit.bse[1], rel=2e-2)
    raw = welch(ArmStats.from_values(y_t), ArmStats.from_values(y_h))
    assert got.abs_se < raw.abs_se
    assert got.variance_reduction == pytest.approx(1 - got.abs_se**2 / raw.abs_se**2, rel=1e-6)


def test_relative_lift_delta_method_matches_simulation():
    """Delta-method SE of mt/mh - 1 against the spread of the ratio over many replications."""
    rng = np.random.default_rng(3)
    reps, n_t, n_h = 4000, 2000, 500
    y_t = rng.exponential(10.5, (reps, n_t))
    y_h = rng.exponential(10.0, (reps, n_h))
    rel = y_t.mean(1) / y_h.mean(1) - 1
    one = welch(ArmStats.from_values(y_t[0]), ArmStats.from_values(y_h[0]))
    assert one.rel_se == pytest.approx(rel.std(), rel=0.08)


@pytest.mark.parametrize("cuped", [False, True])
def test_ci_coverage_over_replications(cuped: bool):
    """95% CIs of a known lift cover it 95% of the time (+- Monte-Carlo error)."""
    rng = np.random.default_rng(4)
    reps, n_t, n_h, true = 1500, 900, 300, 1.5
    covered = 0
    for _ in range(reps):
        x_t, x_h = rng.gamma(2, 5, n_t), rng.gamma(2, 5, n_h)
        y_t = 0.5 * x_t + rng.gamma(2, 5, n_t) + true
        y_h = 0.5 * x_h + rng.gamma(2, 5, n_h)
        lift = welch(ArmStats.from_values(y_t, x_t), ArmStats.from_values(y_h, x_h), cuped=cuped)
        covered += lift.abs_ci[0] <= true <= lift.abs_ci[1]
    mc = 3 * math.sqrt(0.05 * 0.95 / reps)
    assert abs(covered / reps - 0.95) < mc


def test_ratio_metric_delta_method_matches_simulation():
    rng = np.random.default_rng(5)
    reps, n = 3000, 800
    orders = rng.poisson(1.2, (reps, n)).astype(float)
    revenue = orders * rng.gamma(3, 20, (reps, n))
    aov = revenue.sum(1) / orders.sum(1)
    t = RatioStats(n, revenue[0].sum(), (revenue[0] ** 2).sum(), orders[0].sum(),
                   (orders[0] ** 2).sum(), (orders[0] * revenue[0]).sum())
    assert math.sqrt(t.mean_variance) == pytest.approx(aov.std(), rel=0.08)
    same = ratio(t, t)
    assert same.abs == 0 and same.p_value == pytest.approx(1.0)


def test_degenerate_cells_are_data_not_exceptions():
    const = ArmStats.from_values(np.ones(10))
    assert welch(const, const).error is not None
    tiny = ArmStats.from_values([1.0])
    lift = welch(tiny, const)
    assert "too few" in (lift.error or "") and math.isnan(lift.p_value)
    zero = ArmStats.from_values(np.zeros(10))
    some = ArmStats.from_values(np.r_[np.zeros(9), 1.0])
    lift = welch(some, zero)
    assert lift.ok and math.isnan(lift.rel)


def test_stats_add_like_concatenated_data():
    y_t, _, x_t, _ = _arms(6)
    whole = ArmStats.from_values(y_t, x_t)
    parts = (ArmStats.from_values(y_t[:100], x_t[:100])
             + ArmStats.from_values(y_t[100:], x_t[100:]))
    assert parts.n == whole.n
    assert parts.variance == pytest.approx(whole.variance, rel=1e-10)
    assert parts.covariance == pytest.approx(whole.covariance, rel=1e-10)
