"""Planning figures against statsmodels' power functions and against simulation; CUPED
shrinks the required sample by (1 - rho^2); interactions need larger samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from statsmodels.stats.power import NormalIndPower

from liftlab.plan import make_plan, mde, required_holdout, required_n
from liftlab.spec import Experiment
from liftlab.stats.suffstats import ArmStats

SPEC = """\
schema_version: 1
id: plan-test
start: 2026-03-01
end: 2026-03-22
channels:
  email: {holdout: 0.2}
  mail: {holdout: 0.3}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: conversion, kind: binary, table: orders}
primary_metric: revenue
covariates: {pre_period_days: 28}
"""


@pytest.mark.parametrize("n_t,n_h,sd", [(8000, 2000, 50.0), (45000, 5000, 12.0)])
def test_mde_matches_statsmodels_normal_power(n_t, n_h, sd):
    m = mde(sd, n_t, n_h, alpha=0.05, power=0.8)
    power = NormalIndPower().power(effect_size=m / sd, nobs1=n_t, ratio=n_h / n_t,
                                   alpha=0.05)
    assert power == pytest.approx(0.8, abs=1e-3)
    es = NormalIndPower().solve_power(nobs1=n_t, ratio=n_h / n_t, alpha=0.05, power=0.8)
    assert m / sd == pytest.approx(es, rel=1e-3)


def test_required_n_and_holdout_are_inverses_of_mde():
    n = required_n(10.0, 0.5, 0.2)
    assert mde(10.0, n * 0.8, n * 0.2) == pytest.approx(0.5, rel=1e-9)
    h = required_holdout(10.0, 0.5, 50_000)
    assert mde(10.0, 50_000 * (1 - h), 50_000 * h) == pytest.approx(0.5, rel=1e-9)
    assert required_holdout(10.0, 0.01, 1000) is None


def test_simulated_power_matches_the_stated_power():
    """Tests with a true effect equal to the MDE detect it about 80% of the time."""
    rng = np.random.default_rng(0)
    n_t, n_h, reps = 4000, 1000, 2000
    sd = 30.0
    effect = mde(sd, n_t, n_h)
    y_t = rng.gamma(1.0, sd, (reps, n_t)) + effect
    y_h = rng.gamma(1.0, sd, (reps, n_h))
    z = (y_t.mean(1) - y_h.mean(1)) / np.sqrt(y_t.var(1, ddof=1) / n_t +
                                              y_h.var(1, ddof=1) / n_h)
    detected = (np.abs(z) > 1.959964).mean()
    assert detected == pytest.approx(0.8, abs=3 * math.sqrt(0.16 / reps))


def _stats(rho: float, n: int = 200_000, seed: int = 1) -> ArmStats:
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 20, n)
    y = 50 + rho * (x - 50) + math.sqrt(1 - rho**2) * rng.normal(0, 20, n)
    return ArmStats.from_values(y, x)


def test_cuped_shrinks_the_required_sample_by_one_minus_rho_squared():
    spec = Experiment.model_validate(yaml.safe_load(SPEC))
    stats = _stats(0.6)
    plan = make_plan(spec, 100_000, lambda days: {"revenue": stats,
                                                   "conversion": ArmStats(100_000, 5e3, 5e3)})
    row = next(r for r in plan.rows if r.channel == "email" and r.metric == "revenue")
    assert row.baseline.rho == pytest.approx(0.6, abs=0.01)
    assert row.n_needed / row.n_needed_without_cuped == pytest.approx(1 - 0.36, abs=0.01)
    assert row.mde_abs / row.mde_abs_without_cuped == pytest.approx(0.8, abs=0.01)


def test_interaction_needs_a_larger_sample_and_matches_simulation():
    spec = Experiment.model_validate(yaml.safe_load(SPEC))
    stats = _stats(0.0)
    n_units = 40_000
    plan = make_plan(spec, n_units, lambda days: {"revenue": stats,
                                                  "conversion": ArmStats(n_units, 2e3, 2e3)})
    [inter] = plan.interactions
    assert inter["ratio_to_main_effect_mde"] > 2
    # simulate the 2x2 interaction contrast with a true interaction = its MDE
    rng = np.random.default_rng(2)
    reps, sd = 1500, stats.variance**0.5
    p_e, p_m = 0.8, 0.7
    hits = 0
    for _ in range(reps):
        e = rng.random(n_units) < p_e
        m = rng.random(n_units) < p_m
        y = rng.normal(0, sd, n_units) + inter["mde_abs"] * (e & m)
        mu = {(a, b): y[(e == a) & (m == b)].mean() for a in (0, 1) for b in (0, 1)}
        var = sum(y[(e == a) & (m == b)].var(ddof=1) / ((e == a) & (m == b)).sum()
                  for a in (0, 1) for b in (0, 1))
        est = mu[1, 1] - mu[1, 0] - mu[0, 1] + mu[0, 0]
        hits += abs(est) / math.sqrt(var) > 1.959964
    assert hits / reps == pytest.approx(0.8, abs=3 * math.sqrt(0.16 / reps))


def test_warning_when_nothing_plausible_is_detectable():
    spec = Experiment.model_validate(yaml.safe_load(SPEC))
    plan = make_plan(spec, 500, lambda days: {"revenue": _stats(0.0, 5000),
                                              "conversion": ArmStats(500, 10.0, 10.0)})
    assert any("smallest detectable lift" in w for w in plan.warnings)
    out = plan.to_json()
    assert {"experiment", "alpha", "power", "days", "channels"} <= out.keys()
    assert {"channel", "metric", "n_treatment", "n_holdout", "sd", "cuped_rho", "mde_abs",
            "mde_rel", "holdout_cost"} <= out["channels"][0].keys()
