"""Simulation with known truth for the dose-response model (tests/test_pressure.py).

Sufficient statistics per arm and segment are drawn from the synthetic email-frequency
retailer's own generative model (``liftlab.app.synth_pressure``): gamma purchase rates, Poisson
orders, gamma margins per order, binomial unsubscribes. Each replication fits the model and
checks whether the optimum's interval covers the true optimum and whether the true margin and
fatigue curves lie inside their bands at the tested frequencies.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from liftlab.app.synth_pressure import (
    ARMS,
    COST_PER_CONTACT,
    DELIVERY,
    FLAT,
    MARGIN_PER_ORDER,
    MARGIN_SHAPE,
    OPTIN_VALUE,
    SEGMENTS,
    WEEKS,
    SegmentTruth,
    optimum,
)
from liftlab.stats.dose import DoseCell, equal_means, fit_dose

COST_PER_FREQUENCY = COST_PER_CONTACT * DELIVERY * WEEKS


def unit_values(
    rng: np.random.Generator, truth: SegmentTruth, f: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit margin and unsubscribe indicator of ``n`` units at frequency ``f``."""
    count = rng.poisson(rng.gamma(2.0, 0.5, n) * truth.margin(np.array(f)) / MARGIN_PER_ORDER)
    margin = np.zeros(n)
    buyers = count > 0
    margin[buyers] = rng.gamma(MARGIN_SHAPE * count[buyers], MARGIN_PER_ORDER / MARGIN_SHAPE)
    return margin, rng.random(n) < truth.unsubscribe(np.array(f))


def cells(
    rng: np.random.Generator, segments: dict[str, SegmentTruth], n_arm: int
) -> list[DoseCell]:
    """Sufficient statistics per (segment, arm): ``n_arm`` units per arm, split across the
    segments by their shares (so the overall curve weighs them as the truth does)."""
    out = []
    for s, truth in segments.items():
        n = round(n_arm * truth.share)
        for f in ARMS.values():
            margin, unsub = unit_values(rng, truth, f, n)
            out.append(
                DoseCell(s, f, n, float(margin.sum()), float((margin**2).sum()), int(unsub.sum()))
            )
    return out


@dataclass(frozen=True)
class Replication:
    covered: dict[str, bool]  # the optimum's interval covers the truth, per segment/overall
    in_band: float  # share of (segment, arm) points whose true margin and fatigue are in band
    divergences: int


def replicate(seed: int, n_arm: int, draws: int, tune: int, chains: int = 2) -> Replication:
    rng = np.random.default_rng(seed)
    fit = fit_dose(
        cells(rng, SEGMENTS, n_arm),
        COST_PER_FREQUENCY,
        OPTIN_VALUE,
        seed=seed,
        draws=draws,
        tune=tune,
        chains=chains,
    )
    truth = optimum(SEGMENTS)
    curves = {**fit.segments, "overall": fit.overall}
    covered = {s: c.optimum_ci[0] <= truth[s] <= c.optimum_ci[1] for s, c in curves.items()}
    hits = []
    grid = np.asarray(fit.overall.frequency)
    for s, c in fit.segments.items():
        for f in ARMS.values():
            j = int(np.abs(grid - f).argmin())
            m, p = SEGMENTS[s].margin(np.array(f)), SEGMENTS[s].unsubscribe(np.array(f))
            assert c.fatigue is not None
            hits.append(c.margin.lo[j] <= m <= c.margin.hi[j])
            hits.append(c.fatigue.lo[j] <= p <= c.fatigue.hi[j])
    return Replication(covered, float(np.mean(hits)), fit.diagnostics.divergences)


def flat_replicate(seed: int, n_arm: int, draws: int, tune: int) -> dict[str, tuple[bool, float]]:
    """Flat truth (no margin or fatigue response, free contacts), fitted by the model: per
    segment, whether the equal-value gate claims an optimum, and the width of the model's
    interval of the optimum."""
    rng = np.random.default_rng(seed)
    data = cells(rng, FLAT, n_arm)
    fit = fit_dose(data, 0.0, OPTIN_VALUE, seed=seed, draws=draws, tune=tune, chains=2)
    out = {}
    for s, curve in fit.segments.items():
        arms = [c for c in data if c.segment == s]
        p = [(c.events or 0) / c.n for c in arms]
        _, _, p_value = equal_means(
            [c.mean - OPTIN_VALUE * q for c, q in zip(arms, p, strict=True)],
            [
                np.sqrt(c.se**2 + OPTIN_VALUE**2 * q * (1 - q) / c.n)  # independent in the sim
                for c, q in zip(arms, p, strict=True)
            ],
        )
        out[s] = (bool(p_value < 0.05), curve.optimum_ci[1] - curve.optimum_ci[0])
    return out


def flat_rejections(reps: int, n_cell: int, alpha: float = 0.05, seed: int = 1) -> float:
    """Share of flat-truth replications (no revenue response, no fatigue response, free
    contacts) in which the equal-value test claims the arms differ (the model would then
    invent an optimum)."""
    rng = np.random.default_rng(seed)
    flat = {s: SegmentTruth(t.share, t.base, 0.0, 1.0, t.u0, 0.0) for s, t in SEGMENTS.items()}
    rejected = 0
    for _ in range(reps):
        means, ses = [], []
        for f in ARMS.values():
            margin, unsub = unit_values(rng, flat["casual"], f, n_cell)
            value = margin - OPTIN_VALUE * unsub
            means.append(value.mean())
            ses.append(value.std(ddof=1) / np.sqrt(n_cell))
        rejected += equal_means(means, ses)[2] < alpha
    return rejected / reps


if __name__ == "__main__":  # python tests/pressure_sim.py REPS N_ARM DRAWS CHAINS
    reps, n_arm, draws, chains = (int(a) for a in sys.argv[1:5])
    results = []
    for r in range(reps):
        rep = replicate(1000 + r, n_arm, draws, draws, chains)
        results.append(rep)
        print(r, rep, flush=True)
    for key in [*SEGMENTS, "overall"]:
        cov = np.mean([x.covered[key] for x in results])
        print(f"coverage {key}: {cov:.3f} +- {np.sqrt(cov * (1 - cov) / reps):.3f}")
    print("in band:", np.mean([x.in_band for x in results]))
