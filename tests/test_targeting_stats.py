"""The statistics behind ``liftlab target``, each against an independent route: the Qini
curve against a direct computation on the rows, the budgeted allocation against brute force,
the doubly robust scores against the known effect, and the learners against known individual
effects."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from liftlab.stats.policy import NONE, evaluate, hull_path
from liftlab.stats.qini import calibration, qini_curve
from liftlab.stats.uplift import UpliftData, aipw_scores, cross_fit


def _ranked(n: int = 3000, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    treated = rng.random(n) < 0.4
    tau = np.where(x > 0, 2.0, -0.5)
    y = 10 + x + treated * tau + rng.normal(scale=2.0, size=n)
    return x, y, treated, tau


def test_qini_curve_matches_a_direct_computation():
    score, y, treated, _ = _ranked()
    q = qini_curve(score, y, treated, bins=50, draws=200)
    df = pd.DataFrame({"s": score, "y": y, "t": treated}).sort_values("s", ascending=False,
                                                                      kind="stable")
    n_t, n_c = df.t.sum(), (~df.t).sum()
    for phi, value, uplift in zip(q.phi, q.qini, q.uplift, strict=True):
        top = df.iloc[: round(phi * len(df))]
        assert value == pytest.approx(top.y[top.t].sum() / n_t - top.y[~top.t].sum() / n_c,
                                      abs=1e-9)
        assert uplift == pytest.approx(top.y[top.t].mean() - top.y[~top.t].mean(), abs=1e-9)
    direct = df.y[df.t].mean() - df.y[~df.t].mean()
    assert q.qini[-1] == pytest.approx(direct, abs=1e-9)
    assert q.ate.estimate == pytest.approx(direct, abs=1e-9)
    area = np.trapezoid([0.0, *q.qini], [0.0, *q.phi])
    assert q.auuc.estimate == pytest.approx(area, abs=1e-9)
    assert q.qini_coefficient.estimate == pytest.approx(area - direct / 2, abs=1e-9)


def test_an_informed_ranking_beats_random_and_a_random_one_does_not():
    score, y, treated, tau = _ranked(8000)
    informed = qini_curve(tau + 0.01 * score, y, treated, seed=3)
    assert informed.qini_coefficient.low > 0
    hits = 0
    for seed in range(40):  # a ranking that knows nothing: the interval covers 0
        noise = np.random.default_rng(100 + seed).normal(size=y.size)
        hits += qini_curve(noise, y, treated, draws=400, seed=seed).qini_coefficient.low > 0
    # false claims at the 2.5% one-sided level: <= 4 of 40 (binomial 97th percentile ~ 3)
    assert hits <= 4


def test_qini_band_covers_the_truth_by_simulation():
    """The pointwise 95% band of the Qini at 30% covers the curve's expectation: coverage over
    200 replications with a fixed ranking (Monte Carlo error of a 95% rate: 1.5 points)."""
    rng = np.random.default_rng(7)
    n = 4000
    x = rng.normal(size=n)
    tau = np.where(x > 0, 2.0, -0.5)
    order = np.argsort(-x)
    top = np.zeros(n, dtype=bool)
    top[order[: int(0.3 * n)]] = True
    truth = tau[top].sum() / n  # expected Qini at 30%: effect summed over the top, per customer
    covered = 0
    for r in range(200):
        treated = rng.random(n) < 0.5
        y = 10 + x + treated * tau + rng.normal(scale=3.0, size=n)
        q = qini_curve(x, y, treated, bins=10, draws=400, seed=r)
        k = 2  # phi = 0.3
        covered += q.qini_low[k] <= truth <= q.qini_high[k]
    assert covered / 200 >= 0.90


def test_calibration_bins_are_welch_differences():
    score, y, treated, _ = _ranked()
    bins = calibration(score, y, treated, bins=5)
    assert len(bins) == 5 and sum(b.n for b in bins) == y.size
    best = bins[0]
    assert best.observed.estimate > bins[-1].observed.estimate


def _brute(gain, cost, budget):
    n, k = gain.shape
    best = 0.0
    for alloc in itertools.product(range(-1, k), repeat=n):
        spend = sum(cost[a] for a in alloc if a >= 0)
        if spend <= budget + 1e-9:
            best = max(best, sum(gain[i, a] for i, a in enumerate(alloc) if a >= 0))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_the_allocation_path_is_optimal_at_its_breakpoints(seed):
    rng = np.random.default_rng(seed)
    n, k = 5, 3
    gain = rng.normal(1.0, 1.5, size=(n, k))
    cost = rng.uniform(0.5, 2.0, size=k)
    path = hull_path(gain, cost, gain)
    for steps in range(1, path.customer.size + 1):
        alloc = path.allocation(steps)
        spend = sum(cost[a] for a in alloc if a != NONE)
        assert spend == pytest.approx(path.spend[steps - 1])
        got = sum(gain[i, a] for i, a in enumerate(alloc) if a != NONE)
        assert got == pytest.approx(path.per_customer(steps).sum())
        assert got == pytest.approx(_brute(gain, cost, spend), abs=1e-9)


def test_free_options_come_first_and_losses_are_never_bought():
    gain = np.array([[1.0, 3.0], [-1.0, -2.0], [0.5, 5.0]])
    cost = np.array([0.0, 2.0])
    path = hull_path(gain, cost, gain)
    alloc = path.allocation(path.customer.size)
    assert alloc.tolist() == [1, NONE, 1]
    first = path.allocation(2)  # the two free upgrades
    assert first.tolist() == [0, NONE, 0]


def test_policy_value_and_random_baseline():
    rng = np.random.default_rng(5)
    n = 2000
    value = rng.normal(size=(n, 2)) + np.array([0.2, -0.1])
    path = hull_path(value, np.array([1.0, 1.0]), value)
    pv = evaluate(path, value, budget=500.0)
    assert sum(pv.counts) == 500
    assert pv.spend == pytest.approx(500.0)
    chosen = path.allocation(path.steps_within(500.0))
    assert pv.value.total == pytest.approx(sum(value[i, a] for i, a in enumerate(chosen)
                                               if a != NONE))
    share = np.bincount(chosen[chosen != NONE], minlength=2) / n
    assert pv.random.total == pytest.approx((value @ share).sum())
    assert pv.over_random.total == pytest.approx(pv.value.total - pv.random.total)


def test_aipw_scores_are_unbiased_whatever_the_outcome_model():
    rng = np.random.default_rng(3)
    means = []
    for _ in range(200):
        n = 2000
        arm = rng.choice(3, size=n, p=[0.2, 0.4, 0.4])
        y = 5 + np.array([0.0, 1.0, -0.5])[arm] + rng.normal(size=n)
        wrong = np.full((n, 3), 42.0)  # a useless outcome model
        means.append(aipw_scores(y, arm, wrong, (0.2, 0.4, 0.4)).mean(axis=0))
    m = np.mean(means, axis=0)
    se = np.std(means, axis=0) / np.sqrt(len(means))
    assert abs(m[0] - 1.0) < 4 * se[0] and abs(m[1] + 0.5) < 4 * se[1]


@pytest.mark.parametrize("learner", ["t", "x", "dr"])
def test_learners_recover_individual_effects(learner):
    rng = np.random.default_rng(11)
    n = 6000
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 3, size=n).astype(float)])
    arm = rng.choice(2, size=n)
    tau = 2.0 * (x[:, 0] > 0) + 1.0 * (x[:, 1] == 2)
    y = 3 + x[:, 0] + arm * tau + rng.normal(size=n)
    fit = cross_fit(UpliftData(x, (False, True), y, arm, (0.5, 0.5)), learner, folds=3,
                    seed=1)
    assert np.corrcoef(fit.tau[:, 0], tau)[0, 1] > 0.8
    assert fit.mu.shape == (n, 2)
