"""Planning figures against statsmodels' power functions, closed forms and simulations with a
true effect equal to the computed MDE (the share of detections must match the stated power)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from liftlab.analyses.planning import (
    DURATIONS,
    make_plan,
    mde,
    mde_proportion,
    power_of,
    required_holdout,
    required_n,
)
from liftlab.core.errors import UserError
from liftlab.core.fsio import dumps_json
from liftlab.spec.models import Experiment
from liftlab.stats.suffstats import ArmStats, RatioStats

Z_05 = 1.959963984540054
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
  - {name: aov, kind: ratio, numerator: revenue, denominator: orders}
  - {name: unsubscribes, kind: binary, table: events, event: unsubscribe, guardrail: true}
primary_metric: revenue
covariates: {pre_period_days: 28}
"""


def _spec(**changes: object) -> Experiment:
    raw = yaml.safe_load(SPEC)
    raw.update(changes)
    return Experiment.model_validate(raw)


def _moments(n: int, mean: float, sd: float) -> ArmStats:
    """ArmStats with an exact mean and sample standard deviation (no covariate)."""
    return ArmStats(n, n * mean, (n - 1) * sd**2 + n * mean**2)


def _correlated(rho: float, n: int = 200_000, seed: int = 1) -> ArmStats:
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 20, n)
    y = 50 + rho * (x - 50) + math.sqrt(1 - rho**2) * rng.normal(0, 20, n)
    return ArmStats.from_values(y, x)


def _ratio_units(rng: np.random.Generator, shape: tuple[int, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Orders per unit and revenue per unit (skewed prices): AOV = sum(num) / sum(den)."""
    den = rng.poisson(1.5, shape).astype(float)
    num = den * rng.gamma(2.0, 25.0, shape) + rng.normal(0, 5, shape) * den
    return num, den


def _ratio_stats(num: np.ndarray, den: np.ndarray) -> RatioStats:
    return RatioStats(len(num), float(num.sum()), float((num**2).sum()), float(den.sum()),
                      float((den**2).sum()), float((num * den).sum()))


def _history(n: int, rho: float = 0.0) -> dict[str, ArmStats | RatioStats]:
    num, den = _ratio_units(np.random.default_rng(5), (50_000,))
    return {"revenue": _correlated(rho), "conversion": _moments(n, 0.05, math.sqrt(0.05 * 0.95)),
            "aov": _ratio_stats(num, den), "unsubscribes": _moments(n, 0.002, 0.0447)}


def _within_mc(share: float, target: float, reps: int) -> bool:
    """Within 3.5 Monte-Carlo standard errors of the target probability."""
    return abs(share - target) < 3.5 * math.sqrt(target * (1 - target) / reps)


# -- plain numbers against statsmodels ---------------------------------------------------------
@pytest.mark.parametrize("n_t,n_h,sd,alpha,power", [(8000, 2000, 50.0, 0.05, 0.8),
                                                    (45000, 5000, 12.0, 0.1, 0.9),
                                                    (900, 100, 3.0, 0.01, 0.8)])
def test_mde_matches_statsmodels_normal_power(n_t, n_h, sd, alpha, power):
    m = mde(sd, n_t, n_h, alpha=alpha, power=power)
    sm = NormalIndPower()
    # statsmodels also counts the far tail (a significant result of the wrong sign): < 1e-5
    assert sm.power(effect_size=m / sd, nobs1=n_t, ratio=n_h / n_t, alpha=alpha) == \
        pytest.approx(power, abs=1e-5)
    es = sm.solve_power(nobs1=n_t, ratio=n_h / n_t, alpha=alpha, power=power)
    assert m / sd == pytest.approx(es, rel=1e-4)  # the far tail and the root finder
    assert power_of(m, sd, n_t, n_h, alpha) == pytest.approx(
        sm.power(effect_size=m / sd, nobs1=n_t, ratio=n_h / n_t, alpha=alpha), abs=1e-12)


def test_mde_matches_statsmodels_t_test_power_at_planning_sizes():
    """The t test's power differs from the normal's by O(1/df): tiny at planning sizes."""
    es = TTestIndPower().solve_power(nobs1=4000, ratio=0.25, alpha=0.05, power=0.8)
    assert mde(1.0, 4000, 1000) == pytest.approx(es, rel=5e-4)


@pytest.mark.parametrize("p0,n_t,n_h", [(0.05, 8000, 2000), (0.3, 2000, 2000), (0.01, 9e4, 1e4)])
def test_binary_mde_matches_statsmodels_proportion_power(p0, n_t, n_h):
    d = mde_proportion(p0, n_t, n_h)
    h = proportion_effectsize(p0 + d, p0)
    assert NormalIndPower().power(effect_size=h, nobs1=n_t, ratio=n_h / n_t, alpha=0.05) == \
        pytest.approx(0.8, abs=1e-6)


def test_binary_mde_is_infinite_when_no_rate_is_detectable():
    assert mde_proportion(0.9, 5, 5) == math.inf


def test_required_n_and_holdout_are_inverses_of_mde():
    n = required_n(10.0, 0.5, 0.2)
    assert mde(10.0, n * 0.8, n * 0.2) == pytest.approx(0.5, rel=1e-9)
    h = required_holdout(10.0, 0.5, 50_000)
    assert h is not None and h < 0.5
    assert mde(10.0, 50_000 * (1 - h), 50_000 * h) == pytest.approx(0.5, rel=1e-9)
    # a 50/50 split of n units detects z * sd * 2 / sqrt(n): below that, no holdout can
    assert required_holdout(10.0, 0.99 * mde(10.0, 500, 500), 1000) is None
    assert required_holdout(10.0, 1.01 * mde(10.0, 500, 500), 1000) == pytest.approx(0.4, abs=0.1)


@pytest.mark.parametrize("call,words", [
    (lambda: required_n(10.0, 0.5, 1.2), "holdout must be strictly between 0 and 1"),
    (lambda: required_n(10.0, 0.0, 0.2), "effect must be a non-zero"),
    (lambda: mde(1.0, 10, 10, alpha=5), "alpha must be strictly between 0 and 1"),
    (lambda: required_holdout(1.0, 0.1, 0), "n must be a positive number of units"),
])
def test_bad_numbers_are_user_errors_that_say_what_to_write(call, words):
    with pytest.raises(UserError, match=words):
        call()


# -- simulations with the effect set to the computed MDE ---------------------------------------
def test_simulated_power_of_a_skewed_mean_metric_matches_the_stated_power():
    rng = np.random.default_rng(0)
    n_t, n_h, reps, sd = 4000, 1000, 2000, 30.0
    effect = mde(sd, n_t, n_h)
    y_t = rng.gamma(1.0, sd, (reps, n_t)) + effect
    y_h = rng.gamma(1.0, sd, (reps, n_h))
    z = (y_t.mean(1) - y_h.mean(1)) / np.sqrt(y_t.var(1, ddof=1) / n_t +
                                              y_h.var(1, ddof=1) / n_h)
    assert _within_mc(float((np.abs(z) > Z_05).mean()), 0.8, reps)


def test_simulated_power_of_a_binary_metric_matches_the_stated_power():
    """The Wald test the analysis runs; with ~100 conversions in the holdout it has ~1.5
    points more power than the arcsine plan (conservative), converging as counts grow."""
    rng = np.random.default_rng(1)
    p0, n_t, n_h, reps = 0.04, 60_000, 20_000, 6000
    d = mde_proportion(p0, n_t, n_h)
    pt = rng.binomial(n_t, p0 + d, reps) / n_t
    ph = rng.binomial(n_h, p0, reps) / n_h
    z = (pt - ph) / np.sqrt(pt * (1 - pt) / n_t + ph * (1 - ph) / n_h)  # Wald, unpooled
    assert _within_mc(float((np.abs(z) > Z_05).mean()), 0.8, reps)


def test_simulated_power_of_a_ratio_metric_matches_the_delta_method_plan():
    """The plan's AOV MDE (delta-method sd from RatioStats) detected ~80% of the time by the
    delta-method z test on unit-level orders and revenue."""
    n_units = 5000
    plan = make_plan(_spec(), n_units, lambda days: _history(n_units), time_to_decision=None)
    row = next(r for r in plan.rows if r.channel == "email" and r.metric == "aov")
    assert row.baseline.kind == "ratio" and row.baseline.rho == 0.0
    rng = np.random.default_rng(3)
    reps, n_t, n_h = 1500, row.n_treatment, row.n_holdout
    num_t, den_t = _ratio_units(rng, (reps, n_t))
    num_t = num_t + row.mde_abs * den_t  # shifts the ratio by exactly the MDE
    num_h, den_h = _ratio_units(rng, (reps, n_h))

    def ratio_and_var(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = num.sum(1) / den.sum(1)
        resid = num - r[:, None] * den
        return r, resid.var(1, ddof=1) / (den.mean(1) ** 2 * num.shape[1])

    r_t, v_t = ratio_and_var(num_t, den_t)
    r_h, v_h = ratio_and_var(num_h, den_h)
    z = (r_t - r_h) / np.sqrt(v_t + v_h)
    assert _within_mc(float((np.abs(z) > Z_05).mean()), 0.8, reps)


# -- CUPED ------------------------------------------------------------------------------------
def test_cuped_shrinks_the_required_sample_by_one_minus_rho_squared():
    plan = make_plan(_spec(), 100_000, lambda days: _history(100_000, rho=0.6),
                     time_to_decision=None)
    row = next(r for r in plan.rows if r.channel == "email" and r.metric == "revenue")
    assert row.baseline.rho == pytest.approx(0.6, abs=0.01)
    shrink = 1 - row.baseline.rho**2
    assert row.n_needed / row.n_needed_without_cuped == pytest.approx(shrink, rel=1e-9)
    assert row.n_needed / row.n_needed_without_cuped == pytest.approx(0.64, abs=0.015)
    assert row.mde_abs / row.mde_abs_without_cuped == pytest.approx(math.sqrt(shrink), rel=1e-9)
    no_history = make_plan(_spec(), 100_000, lambda days: _history(100_000, rho=0.0),
                           time_to_decision=None)
    plain = next(r for r in no_history.rows if r.channel == "email" and r.metric == "revenue")
    assert plain.n_needed == pytest.approx(plain.n_needed_without_cuped, rel=0.01)


def test_simulated_cuped_test_at_the_cuped_mde_has_the_stated_power():
    rng = np.random.default_rng(4)
    rho, sd, n_t, n_h, reps = 0.7, 20.0, 3000, 1000, 1500
    effect = mde(sd * math.sqrt(1 - rho**2), n_t, n_h)
    n = n_t + n_h
    x = rng.normal(0, sd, (reps, n))
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(0, sd, (reps, n))
    y[:, :n_t] += effect
    xc = x - x.mean(1, keepdims=True)
    theta = (xc * (y - y.mean(1, keepdims=True))).sum(1) / (xc**2).sum(1)
    adj = y - theta[:, None] * xc
    t, h = adj[:, :n_t], adj[:, n_t:]
    z = (t.mean(1) - h.mean(1)) / np.sqrt(t.var(1, ddof=1) / n_t + h.var(1, ddof=1) / n_h)
    assert _within_mc(float((np.abs(z) > Z_05).mean()), 0.8, reps)


# -- factorial interactions -------------------------------------------------------------------
def test_balanced_two_by_two_interaction_mde_is_twice_the_main_effects():
    spec = _spec(channels={"email": {"holdout": 0.5}, "mail": {"holdout": 0.5}})
    plan = make_plan(spec, 40_000, lambda days: _history(40_000), time_to_decision=None)
    inter = next(i for i in plan.interactions if i.metric == "revenue")
    sd = next(r.baseline.sd_cuped for r in plan.rows if r.metric == "revenue")
    assert inter.mde_abs == pytest.approx(mde(sd, 1, 1) * math.sqrt(16 / 40_000 / 2), rel=1e-9)
    assert inter.ratio_to_main == pytest.approx(2.0, rel=1e-9)
    assert inter.n_needed == pytest.approx(4 * inter.n_needed_main, rel=1e-9)


def test_interaction_power_matches_a_simulation_of_the_contrast():
    n_units = 8000
    plan = make_plan(_spec(), n_units, lambda days: _history(n_units), time_to_decision=None)
    inter = next(i for i in plan.interactions if i.metric == "revenue")
    assert inter.channels == ("email", "mail")
    assert inter.ratio_to_main > 2 and inter.n_needed > 4 * inter.n_needed_main
    rng = np.random.default_rng(2)
    reps, sd = 1200, _correlated(0.0).variance ** 0.5
    e = rng.random((reps, n_units)) < 0.8
    m = rng.random((reps, n_units)) < 0.7
    y = rng.normal(0, sd, (reps, n_units)) + inter.mde_abs * (e & m)
    est, var = np.zeros(reps), np.zeros(reps)
    for a in (0, 1):
        for b in (0, 1):
            cell = (e == a) & (m == b)
            k = cell.sum(1)
            mu = (y * cell).sum(1) / k
            ss = ((y - mu[:, None]) ** 2 * cell).sum(1) / (k - 1)
            est += (1 if a == b else -1) * mu
            var += ss / k
    assert _within_mc(float((np.abs(est) / np.sqrt(var) > Z_05).mean()), 0.8, reps)
    # an interaction as large as the main effects' MDE is detected far less often
    assert inter.power_at_main_mde < 0.5


def test_no_interactions_without_a_factorial():
    plan = make_plan(_spec(design="holdout_per_channel"), 8000, lambda days: _history(8000),
                     time_to_decision=None)
    assert plan.interactions == ()


# -- the plan of an experiment ------------------------------------------------------------------
def test_each_variant_is_compared_with_the_holdout():
    spec = _spec(channels={"email": {"holdout": 0.1, "variants": {"a": 0.6, "b": 0.3}}})
    n_units = 60_000
    plan = make_plan(spec, n_units, lambda days: _history(n_units), time_to_decision=None)
    rows = {(r.arm, r.metric): r for r in plan.rows}
    sd = rows["a", "revenue"].baseline.sd_cuped
    for arm, frac in (("a", 0.6), ("b", 0.3)):
        r = rows[arm, "revenue"]
        assert (r.n_treatment, r.n_holdout) == (round(n_units * frac), round(n_units * 0.1))
        assert r.mde_abs == pytest.approx(mde(sd, n_units * frac, n_units * 0.1), rel=1e-9)
        assert rows[arm, "conversion"].mde_abs == pytest.approx(
            mde_proportion(0.05, n_units * frac, n_units * 0.1), rel=1e-9)
    assert rows["a", "revenue"].mde_abs < rows["b", "revenue"].mde_abs
    assert plan.to_json()["channels"][0]["variant"] == "a"


def test_duration_scan_finds_the_first_duration_reaching_the_target():
    """Revenue per unit grows with the window and its sd with its square root, so the
    relative MDE falls as 1/sqrt(days): the closed form gives the needed duration."""
    n_units, mu1, sd1, target = 20_000, 1.0, 6.0, 0.05
    asked: list[int] = []

    def baseline(days: int) -> dict[str, ArmStats | RatioStats]:
        asked.append(days)
        return {**_history(n_units), "revenue": _moments(n_units, mu1 * days,
                                                         sd1 * math.sqrt(days))}

    plan = make_plan(_spec(), n_units, baseline, target_mde_rel=target, time_to_decision=None)
    assert sorted(asked) == sorted({21, *DURATIONS})
    row = next(r for r in plan.rows if r.channel == "email" and r.metric == "revenue")
    k = mde(sd1, n_units * 0.8, n_units * 0.2) / mu1  # mde_rel(d) = k / sqrt(d)
    needed = (k / target) ** 2
    assert row.days_for_target == min(d for d in DURATIONS if d >= needed)
    for d, m in row.mde_rel_by_days:
        assert m == pytest.approx(k / math.sqrt(d), rel=1e-9)


def test_holdout_cost_is_holdout_units_times_the_assumed_incremental_revenue():
    n_units = 50_000
    plan = make_plan(_spec(), n_units, lambda days: _history(n_units), assumed_lift_rel=0.03,
                     time_to_decision=None)
    mean = _correlated(0.0).mean
    for ch, h in (("email", 0.2), ("mail", 0.3)):
        costs = [r.holdout_cost for r in plan.rows if r.channel == ch]
        assert costs == [pytest.approx(n_units * h * mean * 0.03, rel=1e-9)] * len(costs)
        why = next(r.holdout_cost_assumption for r in plan.rows if r.channel == ch)
        assert "3% lift" in why and "revenue" in why and "21 days" in why
    assert plan.total_holdout_cost == pytest.approx(n_units * 0.5 * mean * 0.03, rel=1e-9)


def test_warning_when_nothing_plausible_is_detectable_with_a_threshold_parameter():
    small = make_plan(_spec(), 100, lambda days: _history(100), time_to_decision=None)
    assert any("email revenue: this experiment cannot detect any plausible effect" in w
               for w in small.warnings)
    assert not any("unsubscribes" in w for w in small.warnings)  # guardrails never warn
    lenient = make_plan(_spec(), 100, lambda days: _history(100), plausible_rel_lift=0.99,
                        time_to_decision=None)
    assert not any("revenue: this experiment" in w for w in lenient.warnings)
    big = make_plan(_spec(), 2_000_000, lambda days: _history(2_000_000), time_to_decision=None)
    assert not any("plausible" in w for w in big.warnings)


def test_a_metric_without_history_is_named_in_a_warning():
    plan = make_plan(_spec(), 5000, lambda days: {"revenue": _correlated(0.3)},
                     time_to_decision=None)
    assert {r.metric for r in plan.rows} == {"revenue"}
    assert any("metric 'aov': no history" in w for w in plan.warnings)


def test_sequential_hook_receives_the_primary_metric_mde():
    calls: list[tuple[float, ...]] = []

    def hook(spec: Experiment, effect: float, sd: float, n_pair: float,
             share: float) -> tuple[float, float]:
        calls.append((effect, sd, n_pair, share))
        return 30.0, 0.9

    spec = _spec(monitoring={"sequential": True})
    plan = make_plan(spec, 10_000, lambda days: _history(10_000), time_to_decision=hook)
    rows = [r for r in plan.rows if r.hours_to_decision is not None]
    assert {(r.channel, r.metric) for r in rows} == {("email", "revenue"), ("mail", "revenue")}
    email = next(r for r in rows if r.channel == "email")
    assert (email.mde_abs, email.baseline.sd_cuped, 10_000, 0.8) in calls
    assert (email.hours_to_decision, email.sequential_power) == (30.0, 0.9)
    default = make_plan(spec, 10_000, lambda days: _history(10_000))
    seq = next(r for r in default.rows if r.channel == "email" and r.metric == "revenue")
    assert seq.sequential_power is not None and 0 < seq.sequential_power <= 1


def test_to_json_has_the_contract_shape_and_summary_reads():
    plan = make_plan(_spec(), 500, lambda days: _history(500), time_to_decision=None)
    out = json.loads(dumps_json(plan.to_json()))
    assert {"experiment", "alpha", "power", "days", "channels", "interactions",
            "warnings"} <= out.keys()
    assert (out["experiment"], out["alpha"], out["power"], out["days"]) == (
        "plan-test", 0.05, 0.8, 21)
    for row in out["channels"]:
        assert {"channel", "metric", "n_treatment", "n_holdout", "sd", "cuped_rho", "mde_abs",
                "mde_rel", "holdout_cost"} <= row.keys()
    assert out["interactions"][0]["channels"] == ["email", "mail"]
    text = plan.summary()
    assert "email revenue: MDE" in text and "a 5% MDE needs" in text and "! " in text
    assert "email holdout cost" in text and "interaction email x mail revenue" in text


def test_bad_plan_arguments_are_user_errors():
    with pytest.raises(UserError, match="eligible population has 1 unit"):
        make_plan(_spec(), 1, lambda days: _history(1), time_to_decision=None)
    with pytest.raises(UserError, match="target_mde_rel must be strictly between 0 and 1"):
        make_plan(_spec(), 100, lambda days: _history(100), target_mde_rel=5,
                  time_to_decision=None)


def test_a_degenerate_history_gives_a_finite_plan():
    """Found by the wide exit-code search: an outcome equal to its pre-period value (rho = 1)
    made CUPED's factor 0 and `validate --data` divided by zero (exit 2)."""
    from liftlab.analyses.planning import MIN_SHRINK, Baseline
    from liftlab.stats.suffstats import ArmStats

    y = [0.0, 1.0, 2.0, 5.0, 9.0]
    b = Baseline.from_stats(ArmStats.from_values(y, y))
    assert b.rho == pytest.approx(1.0)
    assert b.shrink == pytest.approx(MIN_SHRINK)
    assert math.isfinite(b.standard_effect(0.5)) and b.standard_effect(0.5) > 0
