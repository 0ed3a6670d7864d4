"""Randomised matched pairs for trimmed match: the design and its power (``liftlab plan``).

Pairs are formed as trimmed_match's design does: the geos of the pool (every geo not
excluded) sorted by their pre-period KPI total, consecutive ones paired (the smallest geo is
left out when their number is odd). Within each pair a seeded coin chooses the treatment
geo, so the assignment is random and reproducible (``seed`` in the YAML).

Power is simulated on the history: for a test of ``D`` periods, windows of ``D`` periods
ending at evenly spaced points of the history play the test; in each, the pairs are
re-randomised (fresh draws per window; the same draws for every lift: common random
numbers), the lift is added to
the treatment geos, their extra spend is taken proportional to their KPI (the p-value of
iROAS 0 does not depend on its scale), and the power is the share of simulated tests where
trimmed match rejects iROAS 0 with the experiment's inference (``interval``: randomization,
the default, whose A/A rejection rate is at most alpha, here with ``PLAN_SIGN_PATTERNS``
Monte Carlo sign patterns per test; or the normal interval's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftlab.stats.geo import trimmed_match

PAIR_WINDOWS = 8  # windows of the history per duration
PAIR_DRAWS = 8  # re-randomisations of the pairs per window
# Monte Carlo sign patterns of each simulated randomization test (the analysis takes
# trimmed_match.RANDOMIZATION_DRAWS): valid at any number, and with 400 the rejection rate
# differs from 2,000's by well under the planner's own simulation error
PLAN_SIGN_PATTERNS = 400


@dataclass(frozen=True)
class PairDesign:
    """Pairs (indices into the panel's geos, the larger geo first) and one randomisation."""

    pairs: tuple[tuple[int, int], ...]
    treatment: tuple[int, ...]  # one per pair, in pair order
    control: tuple[int, ...]
    left_out: tuple[int, ...]  # a geo without a partner (odd pool)


def match_pairs(pool: list[int], totals: np.ndarray) -> tuple[list[tuple[int, int]], list[int]]:
    """The geos of ``pool`` sorted by ``totals`` (their pre-period KPI, largest first; ties
    by position) and paired consecutively; the smallest is left out of an odd pool."""
    ranked = sorted(pool, key=lambda i: (-float(totals[i]), i))
    left_out = ranked[len(ranked) - len(ranked) % 2 :]
    ranked = ranked[: len(ranked) - len(left_out)]
    return [(ranked[k], ranked[k + 1]) for k in range(0, len(ranked), 2)], left_out


def randomise(pairs: list[tuple[int, int]], left_out: list[int], seed: int) -> PairDesign:
    """A fair coin per pair (seeded) chooses which of its two geos is treated."""
    flips = np.random.default_rng(seed).random(len(pairs)) < 0.5
    treatment = tuple(a if f else b for (a, b), f in zip(pairs, flips, strict=True))
    control = tuple(b if f else a for (a, b), f in zip(pairs, flips, strict=True))
    return PairDesign(tuple(pairs), treatment, control, tuple(left_out))


def pair_power(
    kpi: np.ndarray,
    pairs: list[tuple[int, int]],
    periods: int,
    rho: float,
    alpha: float,
    seed: int,
    windows: int = PAIR_WINDOWS,
    draws: int = PAIR_DRAWS,
    inference: trimmed_match.Inference = "randomization",
) -> float:
    """Trimmed match's power against a relative lift ``rho`` over ``periods`` periods: the
    share of simulated tests (windows of the history x re-randomisations) that reject."""
    n = kpi.shape[0]
    if n < periods or len(pairs) < 3:
        raise ValueError("the history must hold the test and at least 3 pairs")
    ends = sorted({int(e) for e in np.linspace(periods, n, windows).round()})
    flips = np.random.default_rng(seed).random((len(ends), draws, len(pairs))) < 0.5
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    hits = 0
    for end, draws_ in zip(ends, flips, strict=True):
        rows = slice(end - periods, end)
        ya, yb = kpi[rows][:, first].sum(axis=0), kpi[rows][:, second].sum(axis=0)
        for flip in draws_:
            treated, control = np.where(flip, ya, yb), np.where(flip, yb, ya)
            dy = treated * (1 + rho) - control
            p = trimmed_match.p_value(
                dy, treated, inference=inference, seed=seed, draws=PLAN_SIGN_PATTERNS
            )
            hits += p < alpha
    return hits / (flips.shape[0] * flips.shape[1])
