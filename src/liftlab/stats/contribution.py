"""Channel contribution from a factorial design (2^k cells, k <= 4) or a global holdout.

Input: one ``ArmStats`` per factorial cell, keyed by a tuple of booleans over an ordered tuple
of channels (True = treated in that channel). Nothing else is needed, so the same code runs
on statistics aggregated by polars, Spark or SQL.

Every quantity here is a linear combination ``sum_c w_c * mean_c`` of the cell means, and the
cells are independent samples; so the variance ``sum_c w_c^2 * var_c / n_c`` is exact given the
cells' variances (the delta method is exact for a linear map). That covers:

- the average marginal (main) effect of a channel: treated vs holdout, averaged over the other
  channels' arms with the design's planned fractions (the population the campaign runs on);
- the solo effect (only this channel on vs all off) and leave-one-out (all on vs all but it);
- the total effect (all on vs all off) and its Shapley split, which is linear in cell means;
- interaction contrasts for every set of two or more channels: for a pair, the 2x2
  difference-in-differences of cell means, averaged over the other channels like a main effect.

Equivalent to reading the contrasts off an OLS fit of the outcome on the full set of factorial
dummies with HC2 standard errors (the tests check this).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from liftlab.stats.distributions import norm_ppf, norm_sf
from liftlab.stats.suffstats import ArmStats

ArmCombination = tuple[bool, ...]
InteractionKind = Literal["synergy", "cannibalisation", "none"]
MAX_CHANNELS = 4


@dataclass(frozen=True)
class Estimate:
    """A linear combination of independent means: value, standard error and normal CI."""

    value: float
    se: float
    alpha: float = 0.05

    @property
    def ci(self) -> tuple[float, float]:
        z = float(norm_ppf(1 - self.alpha / 2))
        return (self.value - z * self.se, self.value + z * self.se)

    @property
    def p_value(self) -> float:
        """Two-sided p-value of ``value == 0``; NaN when the standard error is zero."""
        return float(2 * norm_sf(abs(self.value) / self.se)) if self.se > 0 else math.nan

    def scaled(self, factor: float) -> Estimate:
        """The same estimate times a known constant (e.g. per customer -> total)."""
        return Estimate(self.value * factor, self.se * abs(factor), self.alpha)


def contrast(cells: Mapping[ArmCombination, ArmStats], weights: Mapping[ArmCombination, float],
             alpha: float = 0.05) -> Estimate:
    """``sum_c w_c * mean_c`` with its exact variance ``sum_c w_c^2 * var_c / n_c``."""
    used = [(cells[c], w) for c, w in weights.items() if w != 0.0]
    value = math.fsum(w * s.mean for s, w in used)
    var = math.fsum(w * w * s.variance / s.n for s, w in used)
    return Estimate(value, math.sqrt(var), alpha)


@dataclass(frozen=True)
class ChannelContribution:
    """One channel's effects in the factorial, per customer (``main`` also in total)."""

    channel: str
    metric: str
    n_treated: int
    main: Estimate
    solo: Estimate
    leave_one_out: Estimate
    shapley: Estimate

    @property
    def total(self) -> Estimate:
        """The main effect over every customer treated in this channel."""
        return self.main.scaled(self.n_treated)


@dataclass(frozen=True)
class Interaction:
    """Interaction contrast of a set of channels; read as synergy or cannibalisation only when
    its CI excludes zero."""

    channels: tuple[str, ...]
    metric: str
    estimate: Estimate

    @property
    def kind(self) -> InteractionKind:
        lo, hi = self.estimate.ci
        return "synergy" if lo > 0 else "cannibalisation" if hi < 0 else "none"


@dataclass(frozen=True)
class Contribution:
    """All contrasts of one factorial on one metric."""

    channels: tuple[str, ...]
    metric: str
    total: Estimate
    per_channel: tuple[ChannelContribution, ...]
    interactions: tuple[Interaction, ...]


@dataclass(frozen=True)
class ProgrammeEffect:
    """Global-holdout design: every channel on vs a blind zone with no marketing pressure."""

    channels: tuple[str, ...]
    metric: str
    n_treated: int
    n_blind: int
    estimate: Estimate

    @property
    def total(self) -> Estimate:
        return self.estimate.scaled(self.n_treated)


def factorial_contribution(cells: Mapping[ArmCombination, ArmStats], channels: Sequence[str],
                           treated_share: Sequence[float], metric: str = "revenue",
                           alpha: float = 0.05) -> Contribution:
    """Main, solo, leave-one-out and Shapley effects per channel, the total effect and every
    interaction, from the 2^k cells. ``treated_share[i]`` is the planned treated fraction of
    channel i (1 - holdout), the weights for averaging over the other channels' arms."""
    k = len(channels)
    _check(cells, channels, treated_share)
    full, empty = _cell(k, range(k)), _cell(k, ())
    total = contrast(cells, {full: 1.0, empty: -1.0}, alpha)
    per_channel = []
    for j, channel in enumerate(channels):
        others = [i for i in range(k) if i != j]
        per_channel.append(ChannelContribution(
            channel, metric, sum(s.n for c, s in cells.items() if c[j]),
            contrast(cells, _interaction_weights(k, (j,), treated_share), alpha),
            contrast(cells, {_cell(k, (j,)): 1.0, empty: -1.0}, alpha),
            contrast(cells, {full: 1.0, _cell(k, others): -1.0}, alpha),
            contrast(cells, shapley_weights(k, j), alpha)))
    interactions = tuple(
        Interaction(tuple(channels[i] for i in subset), metric,
                    contrast(cells, _interaction_weights(k, subset, treated_share), alpha))
        for order in range(2, k + 1) for subset in itertools.combinations(range(k), order))
    return Contribution(tuple(channels), metric, total, tuple(per_channel), interactions)


def programme_effect(treated: ArmStats, blind_zone: ArmStats, channels: Sequence[str],
                     metric: str = "revenue", alpha: float = 0.05) -> ProgrammeEffect:
    """The whole programme's effect per customer: all-treated units vs the blind zone."""
    small = {name: s.n for name, s in (("treated", treated), ("blind zone", blind_zone))
             if s.n < 2}
    if small:
        message = (f"the global holdout needs at least 2 units per arm, got {small}; "
                   "widen the window or the blind zone")
        raise ValueError(message)
    cells = {(True,): treated, (False,): blind_zone}
    return ProgrammeEffect(tuple(channels), metric, treated.n, blind_zone.n,
                           contrast(cells, {(True,): 1.0, (False,): -1.0}, alpha))


def shapley_weights(k: int, j: int) -> dict[ArmCombination, float]:
    """Weights of channel j's Shapley value in the game v(S) = mean(S on) - mean(all off):
    phi_j = sum over S not containing j of |S|! (k-|S|-1)! / k! * (v(S + j) - v(S))."""
    weights: dict[ArmCombination, float] = {}
    others = [i for i in range(k) if i != j]
    for size in range(k):
        w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
        for subset in itertools.combinations(others, size):
            with_j, without = _cell(k, (*subset, j)), _cell(k, subset)
            weights[with_j] = weights.get(with_j, 0.0) + w
            weights[without] = weights.get(without, 0.0) - w
    return weights


def _interaction_weights(k: int, subset: Sequence[int],
                         treated_share: Sequence[float]) -> dict[ArmCombination, float]:
    """Weights of the interaction contrast of ``subset`` (a main effect when it has one
    channel): the alternating sum over the subset's on/off patterns, sign (-1)^(#off),
    averaged over the other channels' arms with their planned fractions."""
    others = [i for i in range(k) if i not in subset]
    weights: dict[ArmCombination, float] = {}
    for rest in itertools.product((False, True), repeat=len(others)):
        w = math.prod(treated_share[i] if on else 1 - treated_share[i]
                      for i, on in zip(others, rest, strict=True))
        for pattern in itertools.product((False, True), repeat=len(subset)):
            cell = [False] * k
            for i, on in (*zip(others, rest, strict=True), *zip(subset, pattern, strict=True)):
                cell[i] = on
            sign = -1.0 if pattern.count(False) % 2 else 1.0
            weights[tuple(cell)] = weights.get(tuple(cell), 0.0) + sign * w
    return weights


def _cell(k: int, on: Sequence[int]) -> ArmCombination:
    return tuple(i in on for i in range(k))


def _check(cells: Mapping[ArmCombination, ArmStats], channels: Sequence[str],
           treated_share: Sequence[float]) -> None:
    """Refuse inputs that would give wrong numbers, saying what is wrong and what to do."""
    k = len(channels)
    if not 1 <= k <= MAX_CHANNELS:
        message = (f"a factorial contribution needs 1 to {MAX_CHANNELS} channels, got {k}; "
                   "analyse larger designs channel by channel")
        raise ValueError(message)
    if len(treated_share) != k or not all(0 < s < 1 for s in treated_share):
        message = (f"treated_share must give one fraction strictly between 0 and 1 per channel "
                   f"({k}), got {list(treated_share)}")
        raise ValueError(message)
    thin = []
    for cell in itertools.product((False, True), repeat=k):
        n = cells[cell].n if cell in cells else 0
        if n < 2:
            label = ", ".join(f"{ch}={'on' if on else 'off'}"
                              for ch, on in zip(channels, cell, strict=True))
            thin.append(f"({label}): {n} unit(s)")
    if thin:
        message = (f"{len(thin)} factorial cell(s) have fewer than 2 units: {'; '.join(thin)}; "
                   "every cell needs at least 2 units (check the holdout fractions and window)")
        raise ValueError(message)
