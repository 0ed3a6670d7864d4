"""Factorial contribution against independent routes: statsmodels OLS on the full set of
factorial dummies (HC2 standard errors equal the per-cell variance formula in a saturated
model), hand-derived closed forms of the true effects, Shapley values by enumerating every
channel ordering, and CI coverage over 600 simulated experiments with known truth."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps

from liftlab.contribution import (
    Estimate,
    contrast,
    factorial_contribution,
    programme_effect,
    shapley_weights,
)
from liftlab.serialize import contribution_sections, programme_json
from liftlab.stats.suffstats import ArmStats

CHANNELS = ("email", "sms", "mail")
SHARES = (0.8, 0.7, 0.6)  # planned treated fractions (holdouts 20%, 30%, 40%)
BASE = 20.0
E, S, M = 1.5, 0.5, 3.0  # solo effects
# email x mail synergy, email x sms cannibalisation, a triple term, and an sms x mail term
# that cancels the triple term so that the averaged sms x mail interaction is exactly zero
G_EM, G_ES, D = 1.0, -0.6, 0.4
G_SM = -D * SHARES[0]
CELLS = list(itertools.product((False, True), repeat=3))  # index = 4 e + 2 s + m


def true_mean(cell: tuple[bool, ...]) -> float:
    e, s, m = (float(v) for v in cell)
    return (BASE + E * e + S * s + M * m + G_EM * e * m + G_ES * e * s + G_SM * s * m
            + D * e * s * m)


MU = np.array([true_mean(c) for c in CELLS])
PE, PS, PM = SHARES
# main effects averaged over the other channels' planned fractions, derived by hand
TRUE_MAIN = {"email": E + G_EM * PM + G_ES * PS + D * PS * PM,
             "sms": S + G_ES * PE + G_SM * PM + D * PE * PM,
             "mail": M + G_EM * PE + G_SM * PS + D * PE * PS}
TRUE_INTER = {("email", "sms"): G_ES + D * PM, ("email", "mail"): G_EM + D * PS,
              ("sms", "mail"): G_SM + D * PE, ("email", "sms", "mail"): D}
# Shapley of a game with pairwise and triple terms: each term is split equally among its players
TRUE_SHAPLEY = {"email": E + G_EM / 2 + G_ES / 2 + D / 3, "sms": S + G_ES / 2 + G_SM / 2 + D / 3,
                "mail": M + G_EM / 2 + G_SM / 2 + D / 3}
TRUE_TOTAL = E + S + M + G_EM + G_ES + G_SM + D


def simulate(rng: np.random.Generator, reps: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-level rows of ``reps`` experiments: cell index per unit and a skewed outcome whose
    spread differs by cell (so unequal cell variances matter)."""
    arms = rng.random((reps, n, 3)) < np.array(SHARES)
    idx = arms[..., 0] * 4 + arms[..., 1] * 2 + arms[..., 2]
    shape, scale = 2.0, 5.0 + idx  # gamma noise, mean removed
    y = MU[idx] + rng.gamma(shape, scale) - shape * scale
    return idx, y


def cell_stats(idx: np.ndarray, y: np.ndarray) -> list[dict[tuple[bool, ...], ArmStats]]:
    """Per experiment, ArmStats per factorial cell, by one vectorised bincount."""
    reps = idx.shape[0]
    key = (np.arange(reps)[:, None] * 8 + idx).ravel()
    n = np.bincount(key, minlength=reps * 8).reshape(reps, 8)
    s = np.bincount(key, y.ravel(), minlength=reps * 8).reshape(reps, 8)
    ss = np.bincount(key, y.ravel() ** 2, minlength=reps * 8).reshape(reps, 8)
    return [{c: ArmStats(int(n[r, i]), float(s[r, i]), float(ss[r, i]))
             for i, c in enumerate(CELLS)} for r in range(reps)]


def shapley_by_orderings(value: dict[tuple[bool, ...], float], k: int) -> list[float]:
    """Average marginal contribution over all k! orderings (the definition)."""
    phi = [0.0] * k
    orders = list(itertools.permutations(range(k)))
    for order in orders:
        on: set[int] = set()
        for j in order:
            before = tuple(i in on for i in range(k))
            on.add(j)
            phi[j] += value[tuple(i in on for i in range(k))] - value[before]
    return [p / len(orders) for p in phi]


def test_matches_ols_on_factorial_dummies_with_hc2():
    rng = np.random.default_rng(0)
    idx, y = simulate(rng, 1, 30_000)
    res = factorial_contribution(cell_stats(idx, y)[0], CHANNELS, SHARES)
    e, s, m = ((idx[0] >> b) & 1 for b in (2, 1, 0))
    X = sm.add_constant(np.column_stack([e, s, m, e * s, e * m, s * m, e * s * m]).astype(float))
    fit = sm.OLS(y[0], X).fit(cov_type="HC2")
    # params: const, e, s, m, es, em, sm, esm
    combos = {
        "main:email": [0, 1, 0, 0, PS, PM, 0, PS * PM],
        "main:sms": [0, 0, 1, 0, PE, 0, PM, PE * PM],
        "main:mail": [0, 0, 0, 1, 0, PE, PS, PE * PS],
        "solo:mail": [0, 0, 0, 1, 0, 0, 0, 0],
        "loo:email": [0, 1, 0, 0, 1, 1, 0, 1],
        "shapley:email": [0, 1, 0, 0, 1 / 2, 1 / 2, 0, 1 / 3],
        "shapley:sms": [0, 0, 1, 0, 1 / 2, 0, 1 / 2, 1 / 3],
        "inter:email+mail": [0, 0, 0, 0, 0, 1, 0, PS],
        "inter:email+sms": [0, 0, 0, 0, 1, 0, 0, PM],
        "inter:email+sms+mail": [0, 0, 0, 0, 0, 0, 0, 1],
        "total": [0, 1, 1, 1, 1, 1, 1, 1],
    }
    by = {c.channel: c for c in res.per_channel}
    inter = {"+".join(i.channels): i.estimate for i in res.interactions}
    ours: dict[str, Estimate] = {
        "main:email": by["email"].main, "main:sms": by["sms"].main,
        "main:mail": by["mail"].main, "solo:mail": by["mail"].solo,
        "loo:email": by["email"].leave_one_out, "shapley:email": by["email"].shapley,
        "shapley:sms": by["sms"].shapley, "inter:email+mail": inter["email+mail"],
        "inter:email+sms": inter["email+sms"], "inter:email+sms+mail": inter["email+sms+mail"],
        "total": res.total}
    for name, weights in combos.items():
        test = fit.t_test(np.array(weights, dtype=float))
        assert ours[name].value == pytest.approx(float(test.effect[0]), rel=1e-9, abs=1e-9), name
        assert ours[name].se == pytest.approx(float(test.sd[0, 0]), rel=1e-9), name


def test_recovers_truth_in_one_large_experiment():
    rng = np.random.default_rng(1)
    idx, y = simulate(rng, 1, 400_000)
    res = factorial_contribution(cell_stats(idx, y)[0], CHANNELS, SHARES)
    for c in res.per_channel:
        assert c.main.ci[0] <= TRUE_MAIN[c.channel] <= c.main.ci[1], c.channel
        assert c.shapley.ci[0] <= TRUE_SHAPLEY[c.channel] <= c.shapley.ci[1], c.channel
    for i in res.interactions:
        assert i.estimate.ci[0] <= TRUE_INTER[i.channels] <= i.estimate.ci[1], i.channels
    kinds = {i.channels: i.kind for i in res.interactions}
    assert kinds[("email", "mail")] == "synergy"
    assert kinds[("email", "sms")] == "cannibalisation"
    assert kinds[("sms", "mail")] == "none"


def test_coverage_over_repeated_experiments():
    """600 experiments: every 95% CI covers its known truth 95% of the time, within 3 Monte
    Carlo standard errors (0.027)."""
    reps = 600
    rng = np.random.default_rng(2)
    idx, y = simulate(rng, reps, 4000)
    hits: dict[str, int] = {}

    def hit(name: str, est: Estimate, truth: float) -> None:
        lo, hi = est.ci
        hits[name] = hits.get(name, 0) + int(lo <= truth <= hi)

    for cells in cell_stats(idx, y):
        res = factorial_contribution(cells, CHANNELS, SHARES)
        hit("total", res.total, TRUE_TOTAL)
        for c in res.per_channel:
            hit(f"main:{c.channel}", c.main, TRUE_MAIN[c.channel])
            hit(f"shapley:{c.channel}", c.shapley, TRUE_SHAPLEY[c.channel])
        for i in res.interactions:
            hit("x".join(i.channels), i.estimate, TRUE_INTER[i.channels])
    assert len(hits) == 11
    tol = 3 * math.sqrt(0.95 * 0.05 / reps)
    coverage = {k: v / reps for k, v in hits.items()}
    assert all(abs(c - 0.95) < tol for c in coverage.values()), coverage


def test_shapley_is_exact_and_adds_up_for_four_channels():
    rng = np.random.default_rng(3)
    k = 4
    cells = {c: ArmStats.from_values(rng.normal(rng.uniform(10, 20), 3.0, 50))
             for c in itertools.product((False, True), repeat=k)}
    res = factorial_contribution(cells, ("a", "b", "c", "d"), (0.5, 0.6, 0.7, 0.8))
    empty = cells[(False,) * k].mean
    game = {c: s.mean - empty for c, s in cells.items()}
    assert [c.shapley.value for c in res.per_channel] == pytest.approx(
        shapley_by_orderings(game, k), rel=1e-12)
    assert math.fsum(c.shapley.value for c in res.per_channel) == pytest.approx(
        res.total.value, rel=1e-12)
    # 6 pairs, 4 triples, 1 four-way interaction
    assert [len(i.channels) for i in res.interactions] == [2] * 6 + [3] * 4 + [4]
    # the exact variance of the efficiency identity: sum of Shapley weights = total's weights
    summed: dict[tuple[bool, ...], float] = {}
    for j in range(k):
        for cell, w in shapley_weights(k, j).items():
            summed[cell] = summed.get(cell, 0.0) + w
    assert contrast(cells, summed).se == pytest.approx(res.total.se, rel=1e-12)


def test_two_channels_closed_forms_and_one_channel():
    rng = np.random.default_rng(4)
    cells = {c: ArmStats.from_values(rng.normal(5 + 2 * sum(c), 1.0, 40))
             for c in itertools.product((False, True), repeat=2)}
    res = factorial_contribution(cells, ("a", "b"), (0.5, 0.5))
    for c in res.per_channel:
        assert c.shapley.value == pytest.approx((c.solo.value + c.leave_one_out.value) / 2)
    [inter] = res.interactions
    did = (cells[(True, True)].mean - cells[(True, False)].mean
           - cells[(False, True)].mean + cells[(False, False)].mean)
    assert inter.estimate.value == pytest.approx(did)
    assert inter.estimate.se == pytest.approx(math.sqrt(sum(s.variance / s.n
                                                            for s in cells.values())))
    single = factorial_contribution({(True,): cells[(True, True)], (False,): cells[(False, False)]},
                                    ("a",), (0.9,))
    [only] = single.per_channel
    assert only.main == only.solo == only.leave_one_out == only.shapley == single.total
    assert single.interactions == ()


def test_to_dict_follows_the_contract():
    rng = np.random.default_rng(5)
    idx, y = simulate(rng, 1, 20_000)
    out = contribution_sections(factorial_contribution(cell_stats(idx, y)[0], CHANNELS, SHARES))
    item = out["contribution"][0]
    for key in ("channel", "incremental_revenue_per_customer", "ci", "shapley", "shapley_ci",
                "solo", "leave_one_out"):
        assert key in item
    assert item["incremental_total"] == pytest.approx(
        item["incremental_revenue_per_customer"] * item["n_treated"])
    pair = out["interactions"][0]
    assert pair["channels"] == ["email", "sms"] and pair["metric"] == "revenue"
    assert pair["kind"] in ("synergy", "cannibalisation", "none")
    assert set(pair) >= {"estimate", "ci", "p_value"}


def test_programme_effect_matches_welch():
    rng = np.random.default_rng(6)
    treated, blind = rng.gamma(2.0, 10.0, 5000) + 1.0, rng.gamma(2.0, 10.0, 800)
    eff = programme_effect(ArmStats.from_values(treated), ArmStats.from_values(blind),
                           ("email", "sms"))
    welch = sps.ttest_ind(treated, blind, equal_var=False)
    se = math.sqrt(treated.var(ddof=1) / treated.size + blind.var(ddof=1) / blind.size)
    assert eff.estimate.value == pytest.approx(treated.mean() - blind.mean())
    assert eff.estimate.se == pytest.approx(se)
    assert eff.estimate.value / eff.estimate.se == pytest.approx(welch.statistic)
    d = programme_json(eff)
    assert d["channel"] == "email+sms" and d["programme"] is True
    assert d["incremental_total"] == pytest.approx(eff.estimate.value * 5000)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c.pop((True, True, True)), r"\(email=on, sms=on, mail=on\): 0 unit"),
    (lambda c: c.__setitem__((False, True, False), ArmStats(1, 3.0, 9.0)), "fewer than 2"),
])
def test_refuses_thin_cells(mutate, message):
    rng = np.random.default_rng(7)
    idx, y = simulate(rng, 1, 5000)
    cells = cell_stats(idx, y)[0]
    mutate(cells)
    with pytest.raises(ValueError, match=message):
        factorial_contribution(cells, CHANNELS, SHARES)


def test_refuses_bad_shares_and_too_many_channels():
    cells = {c: ArmStats(10, 10.0, 20.0) for c in itertools.product((False, True), repeat=5)}
    with pytest.raises(ValueError, match="1 to 4 channels, got 5"):
        factorial_contribution(cells, tuple("abcde"), (0.5,) * 5)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        factorial_contribution({c[:2]: s for c, s in cells.items()}, ("a", "b"), (1.0, 0.5))
    with pytest.raises(ValueError, match="at least 2 units per arm"):
        programme_effect(ArmStats(1, 1.0, 1.0), ArmStats(10, 10.0, 20.0), ("a",))
