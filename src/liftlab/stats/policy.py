"""Who gets which option (a channel's arm, or several channels at once) under a budget, and
what that policy is worth, estimated on randomised data.

Allocation (the cost-aware multi-armed Qini path of Sverdrup, Wu, Athey and Wager 2023,
"Qini curves for multi-armed treatment rules"): every customer has a predicted net gain per
option; its options form an upper-left convex hull in the (cost, gain) plane starting at
(0, 0) (nothing sent). Walking every customer's hull in one global order of decreasing
gain-per-cost gives, at each budget, the allocation that maximises the predicted gain
(the linear-programming solution, to the last customer, which is not split). Options that
cost nothing and gain something are taken first.

Evaluation: the value of an allocation is the mean over customers of the chosen option's
doubly robust score (``uplift.aipw_scores``, in value units) minus its money cost (``value``
below), so it is unbiased
for the policy fixed by the cross-fitted predictions; its standard error is that of a mean.
Random targeting at the same budget sends each option to as many customers as the policy,
chosen at random; the policy's advantage over it is a paired mean with its own standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# scipy is imported inside the functions that use it: it takes up to a second to import,
# which ``liftlab validate`` and ``import liftlab.stats`` should not pay

NONE = -1


@dataclass(frozen=True)
class Path:
    """The global sequence of upgrades: customer, option before and after (NONE = nothing),
    the upgrade's cost and its evaluated change of net value (score minus cost)."""

    customer: np.ndarray
    before: np.ndarray
    after: np.ndarray
    cost: np.ndarray
    value: np.ndarray
    n: int

    @property
    def spend(self) -> np.ndarray:
        """Cumulative cost after each upgrade."""
        return np.cumsum(self.cost)

    def steps_within(self, budget: float) -> int:
        """How many upgrades the budget pays for (the path stops at the first that does not
        fit)."""
        return int(np.searchsorted(self.spend, budget * (1 + 1e-12), side="right"))

    def allocation(self, steps: int) -> np.ndarray:
        """Each customer's option after the first ``steps`` upgrades (NONE when none)."""
        change = (self.after[:steps] - self.before[:steps]).astype(float)
        return NONE + np.rint(np.bincount(self.customer[:steps], weights=change,
                                          minlength=self.n)).astype(np.int64)

    def per_customer(self, steps: int) -> np.ndarray:
        """Each customer's evaluated net value after the first ``steps`` upgrades."""
        return np.bincount(self.customer[:steps], weights=self.value[:steps], minlength=self.n)


def hull_path(gain: np.ndarray, cost: np.ndarray, value: np.ndarray) -> Path:
    """The allocation path from the predicted net ``gain`` (n, options), each option's
    ``cost`` against the budget (options,) and the evaluated net ``value`` (n, options)."""
    n, k = gain.shape
    net = value
    rows: list[tuple[np.ndarray, ...]] = []
    cur = np.full(n, NONE)
    cur_cost = np.zeros(n)
    cur_gain = np.zeros(n)
    free = cost <= 0
    if free.any():  # free options first: the best free option with a positive gain
        g = np.where(free[None, :], gain, -np.inf)
        best = g.argmax(axis=1)
        take = g[np.arange(n), best] > 0
        idx = np.flatnonzero(take)
        rows.append((idx, cur[idx], best[idx], np.zeros(idx.size), np.full(idx.size, np.inf),
                     net[idx, best[idx]]))
        cur = np.where(take, best, cur)
        cur_gain = np.where(take, g[np.arange(n), best], 0.0)
    for _ in range(k):
        dc = cost[None, :] - cur_cost[:, None]
        dg = gain - cur_gain[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where((dc > 0) & (dg > 0), dg / dc, -np.inf)
        best = slope.argmax(axis=1)
        best_slope = slope[np.arange(n), best]
        idx = np.flatnonzero(np.isfinite(best_slope))
        if idx.size == 0:
            break
        prev = cur[idx]
        prev_net = np.where(prev == NONE, 0.0, net[idx, np.maximum(prev, 0)])
        rows.append((idx, prev, best[idx], dc[idx, best[idx]], best_slope[idx],
                     net[idx, best[idx]] - prev_net))
        cur[idx] = best[idx]
        cur_cost[idx] = cost[best[idx]]
        cur_gain[idx] = gain[idx, best[idx]]
    if not rows:
        empty = np.zeros(0)
        return Path(empty.astype(np.int64), empty.astype(np.int64), empty.astype(np.int64),
                    empty, empty, n)
    customer, before, after, dcost, slope, dvalue = (np.concatenate(c) for c in zip(*rows,
                                                                                   strict=True))
    step = np.concatenate([np.full(r[0].size, j) for j, r in enumerate(rows)])
    order = np.lexsort((step, -slope))  # decreasing slope; a customer's hull in its order
    return Path(customer[order], before[order], after[order], dcost[order], dvalue[order], n)


@dataclass(frozen=True)
class Estimate:
    """A total over the population with its normal interval."""

    total: float
    low: float
    high: float
    se: float

    @classmethod
    def of_mean(cls, values: np.ndarray, n: int, alpha: float) -> Estimate:
        from scipy import stats as sps

        mean = float(values.mean()) if values.size else 0.0
        se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0
        z = float(sps.norm.ppf(1 - alpha / 2))
        return cls(n * mean, n * (mean - z * se), n * (mean + z * se), n * se)


@dataclass(frozen=True)
class PolicyValue:
    """A policy at one budget: what it spends, sends and earns, and the comparisons."""

    budget: float
    spend: float
    counts: tuple[int, ...]  # customers per option
    value: Estimate  # incremental net value over sending nothing
    random: Estimate  # random targeting with the same counts per option
    over_random: Estimate  # the policy minus random targeting (paired)


def evaluate(path: Path, value: np.ndarray, budget: float, alpha: float = 0.05) -> PolicyValue:
    """The policy at ``budget`` (the path's first upgrades that fit) and its comparisons."""
    steps = path.steps_within(budget)
    alloc = path.allocation(steps)
    mine = path.per_customer(steps)
    counts = np.bincount(alloc[alloc != NONE], minlength=value.shape[1])
    share = counts / path.n
    random = value @ share  # expected net value of a customer under random targeting
    return PolicyValue(budget, float(path.spend[steps - 1]) if steps else 0.0,
                       tuple(int(c) for c in counts), Estimate.of_mean(mine, path.n, alpha),
                       Estimate.of_mean(random, path.n, alpha),
                       Estimate.of_mean(mine - random, path.n, alpha))


def curve(path: Path, points: int = 60, alpha: float = 0.05
          ) -> tuple[np.ndarray, tuple[Estimate, ...]]:
    """The value of the policy along the budget (evenly spaced up to the full path)."""
    total = float(path.spend[-1]) if path.spend.size else 0.0
    budgets = np.linspace(0.0, total, points)
    return budgets, tuple(Estimate.of_mean(path.per_customer(path.steps_within(b)), path.n,
                                           alpha) for b in budgets)


def everyone(value: np.ndarray, alpha: float = 0.05) -> tuple[Estimate, ...]:
    """The value of sending each option to every customer."""
    n = value.shape[0]
    return tuple(Estimate.of_mean(value[:, o], n, alpha) for o in range(value.shape[1]))
