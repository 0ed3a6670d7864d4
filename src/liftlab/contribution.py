"""Channel contribution from a factorial design: main effects, solo and leave-one-out effects,
interactions (synergy or cannibalisation), and the Shapley split of the all-channels effect.

Every quantity is a linear combination of the 2^k cell means, which are independent across
cells; so each estimate and its variance are exact given the cells' sufficient statistics:
``sum(c * mean_c)`` and ``sum(c^2 * var_c / n_c)``. Main effects and interactions average over
the other channels with the design's planned fractions (the population the campaign runs on).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

from liftlab.stats.suffstats import ArmStats

Cell = tuple[bool, ...]


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float
    alpha: float = 0.05

    @property
    def ci(self) -> tuple[float, float]:
        z = sps.norm.ppf(1 - self.alpha / 2)
        return (self.value - z * self.se, self.value + z * self.se)

    @property
    def p_value(self) -> float:
        return float(2 * sps.norm.sf(abs(self.value) / self.se)) if self.se > 0 else math.nan


def _combine(cells: dict[Cell, ArmStats], coefs: dict[Cell, float], alpha: float) -> Estimate:
    value = sum(c * cells[k].mean for k, c in coefs.items() if c)
    var = sum(c * c * cells[k].variance / cells[k].n for k, c in coefs.items() if c)
    return Estimate(value, math.sqrt(var), alpha)


def _cell(k: int, on: Sequence[int]) -> Cell:
    return tuple(i in on for i in range(k))


@dataclass(frozen=True)
class ChannelContribution:
    channel: str
    main: Estimate
    solo: Estimate
    leave_one_out: Estimate
    shapley: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel,
                "incremental_revenue_per_customer": self.main.value, "ci": list(self.main.ci),
                "se": self.main.se, "shapley": self.shapley.value,
                "shapley_ci": list(self.shapley.ci), "solo": self.solo.value,
                "solo_ci": list(self.solo.ci), "leave_one_out": self.leave_one_out.value,
                "leave_one_out_ci": list(self.leave_one_out.ci)}


@dataclass(frozen=True)
class Interaction:
    channels: tuple[str, ...]
    metric: str
    estimate: Estimate

    @property
    def kind(self) -> str:
        lo, hi = self.estimate.ci
        return "synergy" if lo > 0 else "cannibalisation" if hi < 0 else "none"

    def to_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "metric": self.metric,
                "estimate": self.estimate.value, "ci": list(self.estimate.ci),
                "se": self.estimate.se, "p_value": self.estimate.p_value, "kind": self.kind}


@dataclass(frozen=True)
class Contribution:
    channels: tuple[str, ...]
    metric: str
    total: Estimate
    per_channel: tuple[ChannelContribution, ...]
    interactions: tuple[Interaction, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "total": self.total.value, "total_ci": list(self.total.ci),
                "channels": [c.to_dict() for c in self.per_channel],
                "interactions": [i.to_dict() for i in self.interactions]}


def factorial_contribution(cells: dict[Cell, ArmStats], channels: Sequence[str],
                           treated_share: Sequence[float], metric: str = "revenue",
                           alpha: float = 0.05) -> Contribution:
    """All contrasts of a 2^k factorial (k <= 4) from its cells' sufficient statistics."""
    k = len(channels)
    if not 1 <= k <= 4:
        raise ValueError("a factorial contribution needs 1 to 4 channels")
    missing = [c for c in itertools.product((False, True), repeat=k)
               if c not in cells or cells[c].n < 2]
    if missing:
        raise ValueError(f"{len(missing)} factorial cell(s) have fewer than 2 units")
    full, empty = _cell(k, range(k)), _cell(k, [])
    total = _combine(cells, {full: 1.0, empty: -1.0}, alpha)
    out = []
    for j, ch in enumerate(channels):
        main: dict[Cell, float] = {}
        for rest in itertools.product((False, True), repeat=k - 1):
            w = math.prod(treated_share[i] if on else 1 - treated_share[i]
                          for i, on in zip([i for i in range(k) if i != j], rest, strict=True))
            on_cell = (*rest[:j], True, *rest[j:])
            off_cell = (*rest[:j], False, *rest[j:])
            main[on_cell] = main.get(on_cell, 0.0) + w
            main[off_cell] = main.get(off_cell, 0.0) - w
        solo = {_cell(k, [j]): 1.0, empty: -1.0}
        loo = {full: 1.0, _cell(k, [i for i in range(k) if i != j]): -1.0}
        out.append(ChannelContribution(ch, _combine(cells, main, alpha),
                                       _combine(cells, solo, alpha), _combine(cells, loo, alpha),
                                       _combine(cells, _shapley_coefs(k, j), alpha)))
    inter = []
    for a, b in itertools.combinations(range(k), 2):
        coefs: dict[Cell, float] = {}
        others = [i for i in range(k) if i not in (a, b)]
        for rest in itertools.product((False, True), repeat=k - 2):
            w = math.prod(treated_share[i] if on else 1 - treated_share[i]
                          for i, on in zip(others, rest, strict=True))
            for va, vb, sign in ((1, 1, 1), (1, 0, -1), (0, 1, -1), (0, 0, 1)):
                cell = [False] * k
                for i, on in zip(others, rest, strict=True):
                    cell[i] = on
                cell[a], cell[b] = bool(va), bool(vb)
                coefs[tuple(cell)] = coefs.get(tuple(cell), 0.0) + sign * w
        inter.append(Interaction((channels[a], channels[b]), metric,
                                 _combine(cells, coefs, alpha)))
    return Contribution(tuple(channels), metric, total, tuple(out), tuple(inter))


def _shapley_coefs(k: int, j: int) -> dict[Cell, float]:
    """Shapley value of player j in the game v(S) = mean(S on) - mean(all off), as cell weights."""
    coefs: dict[Cell, float] = {}
    others = [i for i in range(k) if i != j]
    for size in range(k):
        weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
        for subset in itertools.combinations(others, size):
            with_j = _cell(k, [*subset, j])
            without = _cell(k, subset)
            coefs[with_j] = coefs.get(with_j, 0.0) + weight
            coefs[without] = coefs.get(without, 0.0) - weight
    return coefs
