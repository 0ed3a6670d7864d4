"""Planning: how big a holdout, for how long, and what learning costs.

From the history in the data (the eligible population's metric over a window of the planned
length before the start, and its pre-period value for CUPED), for each channel and metric:
the minimum detectable effect (MDE) at the planned split, the holdout needed for a target MDE,
the duration needed, and the revenue given up by the holdout at an assumed lift. Two-sided
tests at ``alpha`` with the normal approximation:

    MDE = (z_{1-alpha/2} + z_{power}) * sd * sqrt(1/n_t + 1/n_h),   sd^2 *= (1 - rho^2) with CUPED
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scipy import stats as sps

from liftlab.spec import Experiment
from liftlab.stats.suffstats import ArmStats, RatioStats

PLAUSIBLE_REL_LIFT = 0.20  # an MDE above this means the test cannot detect plausible effects
DURATIONS = (7, 14, 21, 28, 42, 56, 84)


def z_total(alpha: float, power: float) -> float:
    return float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))


def mde(sd: float, n_t: float, n_h: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable absolute effect of a two-sample comparison."""
    if n_t <= 0 or n_h <= 0:
        return math.inf
    return z_total(alpha, power) * sd * math.sqrt(1 / n_t + 1 / n_h)


def required_n(sd: float, effect: float, holdout: float, alpha: float = 0.05,
               power: float = 0.8) -> float:
    """Total units needed to detect ``effect`` with a ``holdout`` fraction."""
    return (z_total(alpha, power) * sd / effect) ** 2 * (1 / (1 - holdout) + 1 / holdout)


def required_holdout(sd: float, effect: float, n: float, alpha: float = 0.05,
                     power: float = 0.8) -> float | None:
    """Smallest holdout fraction detecting ``effect`` among ``n`` units (None: impossible)."""
    c = (z_total(alpha, power) * sd / effect) ** 2 / n
    if c > 0.25:
        return None
    return (1 - math.sqrt(1 - 4 * c)) / 2


@dataclass(frozen=True)
class Baseline:
    """A metric's per-unit level and spread over a window, and its CUPED correlation."""

    mean: float
    sd: float
    rho: float
    n: int

    @classmethod
    def from_stats(cls, stats: ArmStats | RatioStats) -> Baseline:
        if isinstance(stats, RatioStats):
            var_unit = stats.mean_variance * stats.n
            return cls(stats.mean, math.sqrt(max(var_unit, 0.0)), 0.0, stats.n)
        rho = 0.0
        if stats.pre_variance > 0 and stats.variance > 0:
            rho = stats.covariance / math.sqrt(stats.pre_variance * stats.variance)
        return cls(stats.mean, math.sqrt(stats.variance), rho, stats.n)

    @property
    def sd_cuped(self) -> float:
        return self.sd * math.sqrt(max(1 - self.rho**2, 0.0))


@dataclass(frozen=True)
class PlanRow:
    channel: str
    arm: str
    metric: str
    n_treatment: int
    n_holdout: int
    baseline: Baseline
    mde_abs: float
    mde_rel: float
    mde_abs_without_cuped: float
    n_needed: float
    n_needed_without_cuped: float
    holdout_for_target: float | None
    days_for_target: int | None
    holdout_cost: float
    hours_to_decision: float | None = None
    sequential_power: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "variant": None if self.arm == "treatment" else
                self.arm, "metric": self.metric, "n_treatment": self.n_treatment,
                "n_holdout": self.n_holdout, "baseline_mean": self.baseline.mean,
                "sd": self.baseline.sd, "cuped_rho": self.baseline.rho,
                "mde_abs": self.mde_abs, "mde_rel": self.mde_rel,
                "mde_abs_without_cuped": self.mde_abs_without_cuped,
                "n_needed_for_target": self.n_needed,
                "n_needed_without_cuped": self.n_needed_without_cuped,
                "holdout_for_target": self.holdout_for_target,
                "days_for_target": self.days_for_target, "holdout_cost": self.holdout_cost,
                "expected_hours_to_decision": self.hours_to_decision,
                "sequential_power": self.sequential_power}


@dataclass(frozen=True)
class PlanResult:
    experiment: str
    alpha: float
    power: float
    days: int
    target_mde_rel: float
    assumed_lift_rel: float
    rows: tuple[PlanRow, ...]
    interactions: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "alpha": self.alpha, "power": self.power,
                "days": self.days, "target_mde_rel": self.target_mde_rel,
                "assumed_lift_rel": self.assumed_lift_rel,
                "channels": [r.to_dict() for r in self.rows],
                "interactions": list(self.interactions), "warnings": list(self.warnings)}

    def summary(self) -> str:
        lines = [f"{self.experiment}: {self.days} days, alpha {self.alpha}, power {self.power}"]
        for r in self.rows:
            lines.append(f"  {r.channel}/{r.arm} {r.metric}: MDE {r.mde_rel:+.1%} "
                         f"({r.mde_abs:.4g} per unit; {r.mde_abs_without_cuped:.4g} without "
                         f"CUPED, rho {r.baseline.rho:.2f}); holdout cost {r.holdout_cost:,.0f}")
        lines += [f"  ! {w}" for w in self.warnings]
        return "\n".join(lines)


def make_plan(spec: Experiment, n_units: int,
              baseline: Callable[[int], dict[str, ArmStats | RatioStats]],
              power: float = 0.8, target_mde_rel: float = 0.05,
              assumed_lift_rel: float = 0.05, plausible: float = PLAUSIBLE_REL_LIFT
              ) -> PlanResult:
    """The plan of ``spec`` for ``n_units`` eligible units; ``baseline(days)`` gives each
    metric's pooled statistics over a window of ``days`` before the start."""
    alpha = spec.alpha
    days = (spec.end - spec.start).days
    base = {k: Baseline.from_stats(v) for k, v in baseline(days).items()}
    by_days = {d: {k: Baseline.from_stats(v) for k, v in baseline(d).items()}
               for d in DURATIONS}
    rows, warnings = [], []
    for ch, cfg in spec.channels.items():
        n_h = n_units * cfg.holdout
        for arm in cfg.treatment_arms:
            n_t = n_units * cfg.arms[arm]
            for metric in spec.metrics:
                b = base.get(metric.name)
                if b is None or b.mean == 0 or not b.sd > 0:
                    continue
                m_abs = mde(b.sd_cuped, n_t, n_h, alpha, power)
                target = target_mde_rel * abs(b.mean)
                share = cfg.holdout / (cfg.holdout + cfg.arms[arm])
                pair_n = n_units * (cfg.holdout + cfg.arms[arm])
                need_days = next((d for d in DURATIONS if metric.name in by_days[d]
                                  and by_days[d][metric.name].sd > 0
                                  and mde(by_days[d][metric.name].sd_cuped, n_t, n_h, alpha,
                                          power) <= target_mde_rel * abs(
                                      by_days[d][metric.name].mean)), None)
                hours = power_seq = None
                if spec.monitoring.sequential and metric.name == spec.primary_metric:
                    from liftlab.stats.sequential import expected_time_to_decision

                    # recipients mature over the response window: all are in by its end
                    window = max(spec.monitoring.response_window_hours, 24)
                    hours, power_seq = expected_time_to_decision(
                        m_abs, b.sd_cuped, pair_n / window, 1 - share, pair_n,
                        alpha, horizon_hours=window, reps=400)
                row = PlanRow(
                    ch, arm, metric.name, round(n_t), round(n_h), b, m_abs,
                    m_abs / abs(b.mean), mde(b.sd, n_t, n_h, alpha, power),
                    required_n(b.sd_cuped, target, share, alpha, power),
                    required_n(b.sd, target, share, alpha, power),
                    required_holdout(b.sd_cuped, target, pair_n, alpha, power), need_days,
                    n_h * b.mean * assumed_lift_rel if metric.kind == "mean" else 0.0,
                    hours, power_seq)
                rows.append(row)
                if row.mde_rel > plausible and not metric.guardrail:
                    warnings.append(
                        f"{ch}/{arm} {metric.name}: the smallest detectable lift is "
                        f"{row.mde_rel:+.0%}, above any plausible effect ({plausible:.0%}): "
                        "enlarge the holdout, the population or the duration")
    return PlanResult(spec.id, alpha, power, days, target_mde_rel, assumed_lift_rel,
                      tuple(rows), tuple(_interactions(spec, n_units, base, alpha, power)),
                      tuple(warnings))


def _interactions(spec: Experiment, n_units: int, base: dict[str, Baseline], alpha: float,
                  power: float) -> list[dict[str, Any]]:
    """MDE of each two-way interaction contrast (averaged over the other channels), from the
    cell sizes of the factorial: Var = sd^2 * sum over cells of coef^2 / n_cell."""
    if spec.design != "factorial" or len(spec.channels) < 2 or any(
            c.variants for c in spec.channels.values()):
        return []
    b = base.get(spec.primary_metric)
    if b is None or not b.sd > 0:
        return []
    chans = list(spec.channels)
    treat = {c: 1 - spec.channels[c].holdout for c in chans}
    out = []
    for a, c in itertools.combinations(chans, 2):
        others = [x for x in chans if x not in (a, c)]
        var = 0.0
        for rest in itertools.product((False, True), repeat=len(others)):
            w = math.prod(treat[o] if on else 1 - treat[o]
                          for o, on in zip(others, rest, strict=True))
            for va, vc in itertools.product((False, True), repeat=2):
                n_cell = n_units * w * (treat[a] if va else 1 - treat[a]) * (
                    treat[c] if vc else 1 - treat[c])
                var += w * w / n_cell
        m = z_total(alpha, power) * b.sd_cuped * math.sqrt(var)
        main = mde(b.sd_cuped, n_units * treat[a], n_units * (1 - treat[a]), alpha, power)
        out.append({"channels": [a, c], "metric": spec.primary_metric, "mde_abs": m,
                    "mde_rel": m / abs(b.mean) if b.mean else None,
                    "ratio_to_main_effect_mde": m / main})
    return out


def history_window(spec: Experiment, days: int) -> Experiment:
    """The same experiment moved back so that its window is the ``days`` before its start."""
    start = spec.start - dt.timedelta(days=days)
    return spec.model_copy(update={"start": start, "end": spec.start})

