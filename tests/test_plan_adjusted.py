"""The planner sizes with the variance reduction the analysis will use: under regression
adjustment, Lin's regression on the YAML's covariates measured on the history's
cross-products (not pooled CUPED on the metric's own pre-period value).

Proof by simulation with known truth: the planned standard error (MDE over
``z_{1-alpha/2} + z_power``) matches the standard error the analysis realises on simulated
experiments of the planned size, and a true effect equal to the planned MDE is detected at
the stated power (Monte Carlo SE stated per test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from liftlab.analyses.planning import Adjusted, Baseline, make_plan, z_total
from liftlab.spec.aggregation import attribute, covariates_of, pre_name
from liftlab.spec.models import Experiment
from liftlab.stats import regression
from liftlab.stats.regression import Moments
from liftlab.stats.suffstats import ArmStats, RatioStats

SPEC = """\
schema_version: 1
id: plan-adjusted
start: 2026-03-01
end: 2026-03-22
channels:
  email: {holdout: 0.25}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: aov, kind: ratio, numerator: revenue, denominator: orders}
primary_metric: revenue
covariates: {pre_period_days: 28, attributes: [tenure]}
"""
N = 4000  # eligible units: 3,000 treated, 1,000 held out


def spec() -> Experiment:
    return Experiment.model_validate(yaml.safe_load(SPEC))


def units(rng: np.random.Generator, n: int, lift: float = 0.0) -> dict[str, np.ndarray]:
    """Skewed customers: taste drives orders in both periods (the pre-period value
    predicts) and tenure predicts spend beyond it (an attribute CUPED does not use)."""
    taste = rng.gamma(2.0, 0.5, n)
    tenure = rng.gamma(2.0, 1.0, n)
    basket = rng.lognormal(3.0, 0.4, n) * (1 + 0.3 * tenure)
    orders_pre = rng.poisson(4 * taste).astype(float)
    orders = rng.poisson(2 * taste).astype(float)
    revenue_pre = orders_pre * basket * rng.lognormal(0, 0.3, n)
    revenue = orders * basket * rng.lognormal(0, 0.3, n) + 25 * tenure + lift
    return {
        "revenue": revenue,
        "orders": orders,
        pre_name("revenue"): revenue_pre,
        pre_name("orders"): orders_pre,
        attribute("tenure"): tenure,
    }


def history(spec: Experiment, cols: dict[str, np.ndarray]) -> dict[str, Adjusted]:
    """What ``app.run.plan_for`` hands the planner: each metric's pooled statistics and the
    cross-products of its outcome parts and covariates."""
    out = {}
    for m in spec.metrics:
        parts = ["revenue", "orders"] if m.kind == "ratio" else [m.name]
        covs = covariates_of(spec, m, True)
        if m.kind == "ratio":
            num, den = cols["revenue"], cols["orders"]
            stats: ArmStats | RatioStats = RatioStats(
                len(num), num.sum(), (num**2).sum(), den.sum(), (den**2).sum(), (num * den).sum()
            )
        else:
            stats = ArmStats.from_values(cols[m.name], cols[pre_name(m.name)])
        out[m.name] = Adjusted(
            stats, Moments.from_columns({c: cols[c] for c in [*parts, *covs]}), covs
        )
    return out


def analysis(
    spec: Experiment, metric: str, t: dict[str, np.ndarray], h: dict[str, np.ndarray]
) -> regression.Lift:
    """The fixed-horizon analysis's estimate on one simulated experiment."""
    m = spec.metric(metric)
    covs = covariates_of(spec, m, True)
    parts = ["revenue", "orders"] if m.kind == "ratio" else [m.name]
    mt, mh = (Moments.from_columns({c: a[c] for c in [*parts, *covs]}) for a in (t, h))
    if m.kind == "ratio":
        return regression.lin_ratio(mt, mh, "revenue", "orders", covs)
    return regression.lin(mt, mh, metric, covs)


@pytest.fixture(scope="module")
def plan():
    s = spec()
    hist = history(s, units(np.random.default_rng(0), 100_000))
    return make_plan(s, N, lambda days: hist, time_to_decision=None)


def test_plan_reports_the_regression_reduction_larger_than_cupeds(plan):
    row = next(r for r in plan.rows if r.metric == "revenue")
    assert row.baseline.adjustment == "lin_regression"
    assert row.baseline.reduction > row.baseline.rho**2 + 0.05  # tenure adds to CUPED's
    out = row.to_dict()
    assert out["adjustment"] == "lin_regression"
    assert out["variance_reduction"] == row.baseline.reduction
    assert "regression adjustment assumed to remove" in plan.summary()
    ratio = next(r for r in plan.rows if r.metric == "aov")
    assert ratio.baseline.reduction > 0.1  # a ratio is adjusted too (its linearisation)


@pytest.mark.parametrize("metric", ["revenue", "aov"])
def test_planned_se_matches_the_realised_se(plan, metric):
    """200 simulated experiments of the planned size: the mean realised standard error of
    Lin's estimate is within 4% of the planned one (MC error of the mean SE under 1%)."""
    s = spec()
    row = next(r for r in plan.rows if r.metric == metric)
    planned_se = row.mde_abs / z_total(plan.alpha, plan.power)
    rng = np.random.default_rng(1)
    ses = [
        analysis(s, metric, units(rng, row.n_treatment), units(rng, row.n_holdout)).abs_se
        for _ in range(200)
    ]
    assert np.mean(ses) == pytest.approx(planned_se, rel=0.04)
    unadjusted = row.mde_abs_without_cuped / z_total(plan.alpha, plan.power)
    assert np.mean(ses) < 0.9 * unadjusted


def test_effect_at_the_planned_mde_is_detected_at_the_stated_power(plan):
    """400 experiments with a true lift equal to the planned MDE of revenue: the share the
    analysis calls significant is the stated 0.8 within 3.5 Monte Carlo SE (0.02)."""
    s = spec()
    row = next(r for r in plan.rows if r.metric == "revenue")
    rng = np.random.default_rng(2)
    reps = 400
    hits = sum(
        analysis(
            s, "revenue", units(rng, row.n_treatment, row.mde_abs), units(rng, row.n_holdout)
        ).p_value
        < plan.alpha
        for _ in range(reps)
    )
    assert abs(hits / reps - plan.power) < 3.5 * math.sqrt(0.8 * 0.2 / reps)


def test_cuped_plan_keeps_rho_squared():
    """pre_period_days alone: CUPED's rho^2 is the assumed reduction, as before."""
    stats = ArmStats.from_values([1.0, 2.0, 3.0, 5.0], [1.0, 2.5, 2.5, 4.0])
    b = Baseline.from_stats(stats)
    assert b.adjustment == "cuped" and b.reduction == pytest.approx(b.rho**2)
    assert b.shrink == pytest.approx(math.sqrt(1 - b.rho**2))


@pytest.fixture(scope="module")
def tiny_plans(tiny_data):
    """``liftlab plan``'s route (engine, history windows, cross-products) on the tiny data,
    with pooled CUPED and with Lin's regression on the same single covariate."""
    from liftlab.app.run import plan_for
    from liftlab.data.folder import FolderSource
    from liftlab.engines.polars_engine import PolarsEngine

    from tinydata import SPEC_YAML

    out = {}
    for method in ("cuped", "regression"):
        text = SPEC_YAML.replace(
            "covariates: {pre_period_days: 28}",
            f"covariates: {{pre_period_days: 28, method: {method}}}",
        )
        s = Experiment.model_validate(yaml.safe_load(text))
        out[method] = plan_for(s, PolarsEngine(FolderSource(tiny_data)))
    return out


def test_one_covariate_regression_reduction_is_cupeds_rho_squared(tiny_plans):
    """One covariate: Lin's R^2 is CUPED's rho^2, up to the residual degrees of freedom
    (1 - reduction = (1 - rho^2) (n - 1) / (n - 2)), for every per-unit metric; a ratio is
    adjusted (on its linearisation) only under regression."""
    cuped = {(r.channel, r.arm, r.metric): r.baseline for r in tiny_plans["cuped"].rows}
    regression_rows = tiny_plans["regression"].rows
    assert regression_rows
    for r in regression_rows:
        b, c = r.baseline, cuped[(r.channel, r.arm, r.metric)]
        assert b.adjustment == "lin_regression"
        if b.kind == "ratio":
            assert c.adjustment == "none" and 0.0 <= b.reduction < 1.0
            continue
        assert c.adjustment == "cuped"
        expected = 1 - (1 - c.rho**2) * (c.n - 1) / (c.n - 2)
        assert b.reduction == pytest.approx(max(expected, 0.0), abs=1e-9)
