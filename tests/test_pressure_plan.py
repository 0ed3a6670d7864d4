"""Planning a dose-response experiment by simulation (stats/dose_plan.py): the probability a
plan states is the rate at which experiments of that size, simulated unit by unit from the
synthetic retailer's generative model, place the optimum within one send of the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liftlab.app.synth_pressure import ARMS, GRID, OPTIN_VALUE, SEGMENTS, WEEKS, optimum
from liftlab.stats.dose import DoseCell, fit_dose
from liftlab.stats.dose_plan import DoseTruth, estimate_optimum, plan_by_simulation
from pressure_sim import COST_PER_FREQUENCY, unit_values

CASUAL = SEGMENTS["casual"]
FREQ = np.array(list(ARMS.values()))
N_NOW = 2_000


@pytest.fixture(scope="module")
def truth() -> DoseTruth:
    """The casual segment's true curves; each arm mean's standard error from the per-unit
    standard deviation of 200,000 simulated customers."""
    rng = np.random.default_rng(0)
    sd = np.array([unit_values(rng, CASUAL, f, 200_000)[0].std() for f in FREQ])
    return DoseTruth(
        GRID,
        CASUAL.margin(GRID),
        CASUAL.unsubscribe(GRID),
        FREQ,
        sd / math.sqrt(N_NOW),
        np.full(len(FREQ), N_NOW, float),
        WEEKS,
        COST_PER_FREQUENCY,
        OPTIN_VALUE,
    )


def _experiments(n: int, reps: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``reps`` experiments of ``n`` customers per arm, simulated unit by unit: per arm the
    mean margin, its standard error and the unsubscribes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        units = [unit_values(rng, CASUAL, f, n) for f in FREQ]
        out.append(
            (
                np.array([m.mean() for m, _ in units]),
                np.array([m.std(ddof=1) / math.sqrt(n) for m, _ in units]),
                np.array([u.sum() for _, u in units]),
            )
        )
    return out


def test_plan_finds_the_size_for_the_stated_probability(truth: DoseTruth) -> None:
    assert truth.optimum(1.0) == pytest.approx(optimum({"casual": CASUAL})["casual"])
    plan = plan_by_simulation(truth, probability=0.8)
    assert plan.units_per_arm is not None and 100 < plan.units_per_arm < N_NOW
    assert plan.weeks is not None and 1 < plan.weeks < WEEKS  # today's size is more than enough
    assert plan.prob_now > 0.8 and plan.mc_error == pytest.approx(math.sqrt(0.16 / 2000))
    d = plan.to_dict()
    assert d["units_per_arm"] == plan.units_per_arm and d["reps"] == 2000


@pytest.mark.parametrize("target", [0.7, 0.8])
def test_stated_probability_matches_unit_level_simulation(truth: DoseTruth, target: float) -> None:
    """At the planned units per arm, experiments simulated customer by customer (gamma
    purchase rates, Poisson orders, gamma margins: not the plan's normal arm means) place
    the estimated optimum within one send of the truth at the stated rate (500 experiments:
    Monte Carlo error 0.02)."""
    plan = plan_by_simulation(truth, probability=target)
    assert plan.units_per_arm is not None
    n, reps = plan.units_per_arm, 500
    hits = [
        abs(
            estimate_optimum(FREQ, m, se, e, n, COST_PER_FREQUENCY, OPTIN_VALUE, GRID)[0]
            - truth.optimum(1.0)
        )
        <= 1.0
        for m, se, e in _experiments(n, reps, seed=int(target * 100))
    ]
    rate = float(np.mean(hits))
    assert abs(rate - target) <= 3 * math.sqrt(target * (1 - target) / reps), rate


@pytest.mark.slow
def test_stated_probability_matches_the_model() -> None:
    """The same at the planned size, but with the PyMC model's optimum (posterior mean
    value curve, one segment) in place of the least-squares fit: 100 experiments."""
    rng = np.random.default_rng(0)
    sd = np.array([unit_values(rng, CASUAL, f, 200_000)[0].std() for f in FREQ])
    truth = DoseTruth(
        GRID,
        CASUAL.margin(GRID),
        CASUAL.unsubscribe(GRID),
        FREQ,
        sd / math.sqrt(N_NOW),
        np.full(len(FREQ), N_NOW, float),
        WEEKS,
        COST_PER_FREQUENCY,
        OPTIN_VALUE,
    )
    plan = plan_by_simulation(truth, probability=0.8)
    assert plan.units_per_arm is not None
    n, reps, hits = plan.units_per_arm, 100, []
    for r, (m, se, e) in enumerate(_experiments(n, reps, seed=9)):
        cells = [
            DoseCell(
                "casual",
                f,
                n,
                float(mi * n),
                float(((si * math.sqrt(n)) ** 2) * (n - 1) + n * mi**2),
                int(ei),
            )
            for f, mi, si, ei in zip(FREQ, m, se, e, strict=True)
        ]
        fit = fit_dose(
            cells, COST_PER_FREQUENCY, OPTIN_VALUE, seed=r, draws=300, tune=300, chains=1
        )
        hits.append(abs(fit.segments["casual"].optimum - truth.optimum(1.0)) <= 1.0)
    rate = float(np.mean(hits))
    assert abs(rate - 0.8) <= 3 * math.sqrt(0.16 / reps), rate
