"""Factorial contribution against independent routes: statsmodels OLS with the full set of
factorial dummies on unit-level rows, coverage over repeated simulations with known truth,
and the Shapley efficiency identity. ROI against hand-computed cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import statsmodels.api as sm

from liftlab.contribution import factorial_contribution
from liftlab.stats.suffstats import ArmStats

CHANNELS = ("email", "sms", "mail")
SHARES = (0.8, 0.8, 0.7)
BASE, EFFECT = 20.0, {"email": 1.5, "sms": 0.5, "mail": 3.0}
SYNERGY = 1.0  # email x mail


def cell_mean(cell: tuple[bool, ...]) -> float:
    on = dict(zip(CHANNELS, cell, strict=True))
    return BASE + sum(EFFECT[c] for c in CHANNELS if on[c]) + SYNERGY * on["email"] * on["mail"]


def simulate(rng: np.random.Generator, n: int):
    arms = np.column_stack([rng.random(n) < s for s in SHARES])
    mu = np.array([cell_mean(tuple(row)) for row in itertools.product((False, True),
                                                                        repeat=3)])
    idx = arms[:, 0] * 4 + arms[:, 1] * 2 + arms[:, 2]
    y = mu[idx] + rng.gamma(1.5, 10.0, n) - 15.0
    return arms, y


def cells_of(arms: np.ndarray, y: np.ndarray) -> dict[tuple[bool, ...], ArmStats]:
    out = {}
    for cell in itertools.product((False, True), repeat=3):
        mask = np.all(arms == np.array(cell), axis=1)
        out[cell] = ArmStats.from_values(y[mask])
    return out


def truth():
    """Main effects averaged over the other channels' planned shares, Shapley by hand."""
    main = {"email": EFFECT["email"] + SYNERGY * SHARES[2], "sms": EFFECT["sms"],
            "mail": EFFECT["mail"] + SYNERGY * SHARES[0]}
    shapley = {"email": EFFECT["email"] + SYNERGY / 2, "sms": EFFECT["sms"],
               "mail": EFFECT["mail"] + SYNERGY / 2}
    return main, shapley


def test_matches_ols_with_factorial_dummies():
    rng = np.random.default_rng(0)
    arms, y = simulate(rng, 40_000)
    res = factorial_contribution(cells_of(arms, y), CHANNELS, SHARES)
    e, s, m = (arms[:, i].astype(float) for i in range(3))
    X = sm.add_constant(np.column_stack([e, s, m, e * s, e * m, s * m, e * s * m]))
    fit = sm.OLS(y, X).fit()
    # the email x mail contrast averaged over sms: beta_em + P(sms) * beta_esm
    em = fit.params[5] + SHARES[1] * fit.params[7]
    inter = {tuple(i.channels): i.estimate.value for i in res.interactions}
    assert inter[("email", "mail")] == pytest.approx(em, rel=1e-9)
    # solo effect of mail = beta_m; total = sum of all coefficients but the constant
    solo = {c.channel: c.solo.value for c in res.per_channel}
    assert solo["mail"] == pytest.approx(fit.params[3], rel=1e-9)
    assert res.total.value == pytest.approx(fit.params[1:].sum(), rel=1e-9)


def test_shapley_adds_up_to_the_total_effect():
    rng = np.random.default_rng(1)
    arms, y = simulate(rng, 20_000)
    res = factorial_contribution(cells_of(arms, y), CHANNELS, SHARES)
    assert sum(c.shapley.value for c in res.per_channel) == pytest.approx(res.total.value,
                                                                          rel=1e-12)


def test_coverage_over_repeated_simulations():
    """500 replications: each 95% CI covers its known truth 95% of the time (+- MC error)."""
    rng = np.random.default_rng(2)
    main_t, shap_t = truth()
    reps = 500
    hits = {f"{kind}:{c}": 0 for kind in ("main", "shapley") for c in CHANNELS}
    hits["interaction"] = 0
    for _ in range(reps):
        arms, y = simulate(rng, 6000)
        res = factorial_contribution(cells_of(arms, y), CHANNELS, SHARES)
        for c in res.per_channel:
            lo, hi = c.main.ci
            hits[f"main:{c.channel}"] += lo <= main_t[c.channel] <= hi
            lo, hi = c.shapley.ci
            hits[f"shapley:{c.channel}"] += lo <= shap_t[c.channel] <= hi
        [em] = [i for i in res.interactions if i.channels == ("email", "mail")]
        hits["interaction"] += em.estimate.ci[0] <= SYNERGY <= em.estimate.ci[1]
    mc = 3 * math.sqrt(0.05 * 0.95 / reps)
    for key, h in hits.items():
        assert abs(h / reps - 0.95) < mc, (key, h / reps)


def test_interaction_kind_and_errors():
    rng = np.random.default_rng(3)
    arms, y = simulate(rng, 200_000)
    res = factorial_contribution(cells_of(arms, y), CHANNELS, SHARES)
    kinds = {i.channels: i.kind for i in res.interactions}
    assert kinds[("email", "mail")] == "synergy"
    with pytest.raises(ValueError, match="fewer than 2 units"):
        cells = cells_of(arms, y)
        cells[(True, True, True)] = ArmStats(1, 1.0, 1.0)
        factorial_contribution(cells, CHANNELS, SHARES)
