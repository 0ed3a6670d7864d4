"""Planning: how big a holdout, for how long, and what learning costs.

From the history in the data (the eligible population's metric over a window of the planned
length before the start, and its pre-period value for CUPED), for each channel, arm and metric:
the minimum detectable effect (MDE) at the planned split, the holdout and the duration needed
for a target MDE, and the revenue given up by the holdout at an assumed lift. Two-sided tests
at ``alpha`` with the normal approximation, on a scale where a unit's outcome has spread 1:

    MDE in standard units = (z_{1-alpha/2} + z_{power}) * sqrt(1/n_t + 1/n_h) * sqrt(1 - rho^2)

- mean and count metrics: the measured per-unit standard deviation converts it to money/units;
- binary metrics: Cohen's h (arcsine) scale, ``h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0))``, as in
  statsmodels' ``proportion_effectsize``;
- ratio metrics: the delta-method per-unit standard deviation (``RatioStats.mean_variance * n``).

The variance reduction is the one the analysis will use, measured on the history: CUPED
(``pre_period_days`` alone) multiplies a per-unit metric's variance by ``1 - rho^2`` with the
measured pre-period correlation rho (a ratio is not adjusted); regression adjustment (Lin
2013, the YAML's covariates) by ``1 - R^2`` of the same regression on the history (the
engines' cross-product table pooled over the population; for a ratio, of its delta-method
linearisation), degrees of freedom counted as the analysis does. ``variance_reduction`` in
the plan is that assumed reduction.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

from liftlab.core.errors import UserError
from liftlab.spec.models import TREATMENT, Experiment, Metric
from liftlab.stats import regression
from liftlab.stats.regression import Moments
from liftlab.stats.suffstats import ArmStats, RatioStats

PLAUSIBLE_REL_LIFT = 0.20
"""Default plausibility threshold: marketing channels rarely move a metric by more than 20%,
so a relative MDE above it means the experiment cannot detect any plausible effect."""

DURATIONS = (7, 14, 21, 28, 42, 56, 84)
"""Durations (days) scanned for the one that reaches the target MDE."""

TimeToDecisionFn = Callable[[Experiment, float, float, float, float], tuple[float, float]]
"""Hook ``(spec, effect_abs, unit_sd, n_pair, treatment_share) -> (median hours, power)``: the
expected time to a decision of the sequential monitor at a true absolute effect."""


# -- plain numbers ----------------------------------------------------------------------------
def z_total(alpha: float, power: float) -> float:
    """z_{1-alpha/2} + z_{power}: the MDE in standard errors of a two-sided test."""
    _check_probability("alpha", alpha, "e.g. 0.05")
    _check_probability("power", power, "e.g. 0.8")
    return float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))


def mde(sd: float, n_t: float, n_h: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable absolute effect of a treatment/holdout comparison of means
    (inf when an arm is empty)."""
    z = z_total(alpha, power)
    if n_t <= 0 or n_h <= 0:
        return math.inf
    return z * sd * math.sqrt(1 / n_t + 1 / n_h)


def mde_proportion(p0: float, n_t: float, n_h: float, alpha: float = 0.05,
                   power: float = 0.8) -> float:
    """Minimum detectable absolute increase of a conversion rate ``p0`` (arcsine / Cohen's h
    scale; inf when no rate up to 1 is detectable)."""
    _check_probability("p0 (the holdout's conversion rate)", p0, "e.g. 0.03")
    return _abs_from_h(p0, mde(1.0, n_t, n_h, alpha, power))


def power_of(effect: float, sd: float, n_t: float, n_h: float, alpha: float = 0.05) -> float:
    """Power of the two-sided z test to detect a true absolute ``effect`` (both tails count,
    as in statsmodels' NormalIndPower)."""
    _check_probability("alpha", alpha, "e.g. 0.05")
    if n_t <= 0 or n_h <= 0:
        return alpha
    return _power_se(effect, sd * math.sqrt(1 / n_t + 1 / n_h), alpha)


def required_n(sd: float, effect: float, holdout: float, alpha: float = 0.05,
               power: float = 0.8) -> float:
    """Total units (treatment + holdout) needed to detect an absolute ``effect`` when a
    ``holdout`` fraction of them is held out."""
    _check_probability("holdout", holdout, "e.g. 0.1 for a 10% holdout")
    _check_effect(effect)
    return (z_total(alpha, power) * sd / effect) ** 2 * (1 / (1 - holdout) + 1 / holdout)


def required_holdout(sd: float, effect: float, n: float, alpha: float = 0.05,
                     power: float = 0.8) -> float | None:
    """Smallest holdout fraction of ``n`` units that detects an absolute ``effect`` (None when
    even a 50/50 split cannot)."""
    _check_effect(effect)
    if not n > 0:
        raise UserError(f"n must be a positive number of units, got {n}")
    c = (z_total(alpha, power) * sd / effect) ** 2 / n
    if c > 0.25:
        return None
    return (1 - math.sqrt(1 - 4 * c)) / 2


def _check_probability(name: str, value: float, example: str) -> None:
    if not 0 < value < 1:
        message = f"{name} must be strictly between 0 and 1 ({example}), got {value}"
        raise UserError(message)


def _check_effect(effect: float) -> None:
    if not effect or not math.isfinite(effect):
        message = f"effect must be a non-zero finite difference per unit, got {effect}"
        raise UserError(message)


def _power_se(effect: float, se: float, alpha: float) -> float:
    """Two-sided power of a z test of an estimate with standard error ``se``."""
    zc = sps.norm.ppf(1 - alpha / 2)
    shift = abs(effect) / se
    return float(sps.norm.sf(zc - shift) + sps.norm.cdf(-zc - shift))


def _abs_from_h(p0: float, h: float) -> float:
    """The increase of a rate ``p0`` whose Cohen's h is ``h`` (inf beyond a rate of 1)."""
    phi = math.asin(math.sqrt(p0)) + h / 2
    return math.inf if phi >= math.pi / 2 else math.sin(phi) ** 2 - p0


def _h_from_abs(p0: float, effect: float) -> float:
    """Cohen's h of a rate going from ``p0`` to ``p0 + effect`` (capped at a rate of 1)."""
    return 2 * math.asin(math.sqrt(min(p0 + effect, 1.0))) - 2 * math.asin(math.sqrt(p0))


MIN_SHRINK = 1e-3


# -- the history of one metric ----------------------------------------------------------------
@dataclass(frozen=True)
class Adjusted:
    """A metric's history under regression adjustment: its pooled statistics and the
    sums and cross-products of its outcome (a ratio's numerator and denominator, in that
    order) and ``covariates``, pooled over the population."""

    stats: ArmStats | RatioStats
    moments: Moments
    covariates: tuple[str, ...]

    @property
    def reduction(self) -> float:
        """1 - the adjusted variance over the raw one, as :mod:`liftlab.stats.regression`
        fits it (residual degrees of freedom counted; 0 when it cannot be fitted)."""
        m, outcome = self.moments, self.moments.names[0]
        if m.n < 3:
            return 0.0
        if isinstance(self.stats, RatioStats):
            if not m.sums[1]:
                return 0.0
            fit = regression.ratio_arm_fits(m, m, outcome, m.names[1], self.covariates)[0]
        else:
            fit = regression.fit_arm(m, outcome, self.covariates,
                                     m.sums[[m.index(c) for c in self.covariates]] / m.n)
        ok = math.isfinite(fit.variance) and fit.raw_variance > 0
        return min(max(1 - fit.variance / fit.raw_variance, 0.0), 1.0) if ok else 0.0


@dataclass(frozen=True)
class Baseline:
    """A metric's per-unit level, spread and assumed variance reduction over a window of
    history (``rho``: CUPED's pre-period correlation; ``reduction``: ``rho^2`` under CUPED,
    the regression's ``R^2`` under regression adjustment), and the conversions between
    absolute effects and standard units (see the module docstring)."""

    kind: str
    mean: float
    sd: float
    rho: float
    n: int
    reduction: float = 0.0
    adjustment: str = "none"  # none, cuped or lin_regression

    @classmethod
    def from_stats(cls, stats: ArmStats | RatioStats | Adjusted,
                   kind: str = "mean") -> Baseline:
        """From pooled sufficient statistics: CUPED's correlation when a per-unit metric's
        pre-period value is there; a regression's reduction from :class:`Adjusted`."""
        if isinstance(stats, Adjusted):
            base = cls.from_stats(stats.stats, kind)
            return cls(base.kind, base.mean, base.sd, base.rho, base.n, stats.reduction,
                       "lin_regression")
        if isinstance(stats, RatioStats):
            var_unit = stats.mean_variance * stats.n
            sd = math.sqrt(var_unit) if var_unit > 0 else 0.0
            return cls("ratio", stats.mean, sd, 0.0, stats.n)
        rho = 0.0
        if stats.pre_variance > 0 and stats.variance > 0:
            rho = stats.covariance / math.sqrt(stats.pre_variance * stats.variance)
        sd = math.sqrt(stats.variance) if stats.variance > 0 else 0.0
        return cls("binary" if kind == "binary" else "mean", stats.mean, sd, rho, stats.n,
                   rho**2, "cuped" if stats.pre_sum_sq > 0 else "none")

    @property
    def usable(self) -> bool:
        """A level and a spread to plan with (not an empty or constant history)."""
        return math.isfinite(self.mean) and self.mean != 0 and self.sd > 0

    @property
    def shrink(self) -> float:
        """The adjustment's factor on the standard deviation: sqrt(1 - reduction), floored at
        0.001 so a degenerate history (an outcome equal to its pre-period value, |rho| = 1)
        still gives a finite plan instead of dividing by zero."""
        return math.sqrt(max(1 - self.reduction, MIN_SHRINK**2))

    @property
    def sd_cuped(self) -> float:
        return self.sd * self.shrink

    def abs_effect(self, z_se: float, cuped: bool = True) -> float:
        """The absolute effect ``z_se`` standard units (of one unit's outcome) away."""
        f = self.shrink if cuped else 1.0
        if self.kind == "binary":
            return _abs_from_h(self.mean, z_se * f)
        return z_se * f * self.sd

    def standard_effect(self, effect: float, cuped: bool = True) -> float:
        """An absolute effect in standard units (inverse of :meth:`abs_effect`)."""
        f = self.shrink if cuped else 1.0
        if self.kind == "binary":
            return _h_from_abs(self.mean, effect) / f
        return effect / (f * self.sd)


# -- results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanRow:
    """One arm of one channel against its holdout, on one metric.

    ``n_needed*`` are the treatment + holdout units needed for the target relative MDE at the
    planned treatment/holdout ratio; ``holdout_for_target`` is the smallest holdout share of
    this comparison's units reaching it (None: not even 50/50); ``days_for_target`` the first
    scanned duration reaching it at the planned split (None: none up to the longest scanned).
    ``holdout_cost`` is per channel (shared by its arms and metrics): do not add rows up.
    """

    channel: str
    arm: str
    metric: str
    n_treatment: int
    n_holdout: int
    baseline: Baseline
    mde_abs: float
    mde_rel: float
    mde_abs_without_cuped: float
    power_at_target: float
    n_needed: float
    n_needed_without_cuped: float
    holdout_for_target: float | None
    days_for_target: int | None
    mde_rel_by_days: tuple[tuple[int, float], ...]
    holdout_cost: float | None
    holdout_cost_assumption: str | None
    hours_to_decision: float | None
    sequential_power: float | None

    def to_dict(self) -> dict[str, Any]:
        b = self.baseline
        return {"channel": self.channel, "variant": None if self.arm == TREATMENT else self.arm,
                "metric": self.metric, "kind": b.kind, "n_treatment": self.n_treatment,
                "n_holdout": self.n_holdout, "baseline_mean": b.mean, "sd": b.sd,
                "cuped_rho": b.rho, "variance_reduction": b.reduction,
                "adjustment": b.adjustment, "mde_abs": self.mde_abs, "mde_rel": self.mde_rel,
                "mde_abs_without_cuped": self.mde_abs_without_cuped,
                "mde_rel_without_cuped": self.mde_abs_without_cuped / abs(b.mean),
                "power_at_target": self.power_at_target,
                "n_needed_for_target": self.n_needed,
                "n_needed_without_cuped": self.n_needed_without_cuped,
                "holdout_for_target": self.holdout_for_target,
                "days_for_target": self.days_for_target,
                "mde_rel_by_days": [{"days": d, "mde_rel": m} for d, m in self.mde_rel_by_days],
                "holdout_cost": self.holdout_cost,
                "holdout_cost_assumption": self.holdout_cost_assumption,
                "expected_hours_to_decision": self.hours_to_decision,
                "sequential_power": self.sequential_power}


@dataclass(frozen=True)
class InteractionRow:
    """MDE of a two-way interaction contrast (mu11 - mu10 - mu01 + mu00) next to the main
    effects' MDEs: its variance is sd^2 * sum over the four cells of 1 / n_cell."""

    channels: tuple[str, str]
    metric: str
    mde_abs: float
    mde_rel: float
    main_mde_abs: tuple[float, float]
    n_needed: float
    n_needed_main: float
    power_at_main_mde: float

    @property
    def ratio_to_main(self) -> float:
        """Interaction MDE over the larger of the two main-effect MDEs (>= 2 in a 2x2)."""
        return self.mde_abs / max(self.main_mde_abs)

    def to_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "metric": self.metric, "mde_abs": self.mde_abs,
                "mde_rel": self.mde_rel, "main_mde_abs": dict(zip(self.channels,
                                                                  self.main_mde_abs,
                                                                  strict=True)),
                "ratio_to_main_effect_mde": self.ratio_to_main,
                "n_needed_for_target": self.n_needed,
                "n_needed_main_for_target": self.n_needed_main,
                "power_at_main_mde": self.power_at_main_mde}


@dataclass(frozen=True)
class PlanResult:
    """The whole plan: one row per channel x arm x metric, interactions, warnings."""

    experiment: str
    alpha: float
    power: float
    days: int
    n_units: int
    target_mde_rel: float
    assumed_lift_rel: float
    plausible_rel_lift: float
    rows: tuple[PlanRow, ...]
    interactions: tuple[InteractionRow, ...]
    warnings: tuple[str, ...]

    @property
    def total_holdout_cost(self) -> float | None:
        """Revenue given up by all channels' holdouts at the assumed lift."""
        costs = {r.channel: r.holdout_cost for r in self.rows if r.holdout_cost is not None}
        return sum(costs.values()) if costs else None

    def to_json(self) -> dict[str, Any]:
        """The ``plan --json`` document (docs/cli.md)."""
        return {"experiment": self.experiment, "alpha": self.alpha, "power": self.power,
                "days": self.days, "n_units": self.n_units,
                "target_mde_rel": self.target_mde_rel, "assumed_lift_rel": self.assumed_lift_rel,
                "plausible_rel_lift": self.plausible_rel_lift,
                "total_holdout_cost": self.total_holdout_cost,
                "channels": [r.to_dict() for r in self.rows],
                "interactions": [i.to_dict() for i in self.interactions],
                "warnings": list(self.warnings)}

    def summary(self) -> str:
        """A few readable lines for the terminal."""
        lines = [f"{self.experiment}: {self.days} days, {self.n_units:,} eligible units, "
                 f"alpha {self.alpha}, power {self.power}"]
        longest = max(DURATIONS)
        for r in self.rows:
            arm = "" if r.arm == TREATMENT else f"/{r.arm}"
            need = ("more units than even a 50/50 split has" if r.holdout_for_target is None
                    else f"a {r.holdout_for_target:.1%} holdout")
            days = (f"{r.days_for_target} days at the planned split" if r.days_for_target
                    else f"more than {longest} days")
            seq = ("" if r.sequential_power is None else
                   f"; sequential: decision in ~{r.hours_to_decision:.0f} h, power "
                   f"{r.sequential_power:.0%}")
            lines.append(
                f"  {r.channel}{arm} {r.metric}: MDE {r.mde_rel:+.1%} ({r.mde_abs:.4g} per unit;"
                f" {r.mde_abs_without_cuped:.4g} unadjusted, {_adjustment(r.baseline)}); "
                f"a {self.target_mde_rel:.0%} MDE needs {need}, or {days}{seq}")
        costs = {r.channel: (r.holdout_cost, r.holdout_cost_assumption) for r in self.rows
                 if r.holdout_cost is not None}
        for ch, (cost, why) in costs.items():
            lines.append(f"  {ch} holdout cost {cost:,.0f} ({why})")
        for i in self.interactions:
            lines.append(f"  interaction {' x '.join(i.channels)} {i.metric}: MDE "
                         f"{i.mde_rel:+.1%}, {i.ratio_to_main:.1f}x the main effects'")
        lines += [f"  ! {w}" for w in self.warnings]
        return "\n".join(lines)


def _adjustment(b: Baseline) -> str:
    if b.adjustment == "lin_regression":
        return f"regression adjustment assumed to remove {b.reduction:.0%} of the variance"
    if b.adjustment == "cuped":
        return f"CUPED, rho {b.rho:.2f}: {b.reduction:.0%} of the variance removed"
    return "no adjustment"


# -- the plan of an experiment ----------------------------------------------------------------
def sequential_time_to_decision(spec: Experiment, effect: float, sd: float, n_pair: float,
                                treatment_share: float) -> tuple[float, float]:
    """Default :data:`TimeToDecisionFn`: liftlab.stats.sequential's simulation, units arriving
    evenly over the response window and the sequence tuned at the whole audience."""
    from liftlab.stats.sequential import expected_time_to_decision

    window = max(spec.monitoring.response_window_hours, 24)
    hours, power = expected_time_to_decision(effect, sd, n_pair / window, treatment_share,
                                             n_pair, spec.monitoring_alpha,
                                             horizon_hours=window, reps=400)
    return hours, power


def make_plan(spec: Experiment, n_units: int,
              baseline: Callable[[int], dict[str, ArmStats | RatioStats | Adjusted]],
              power: float = 0.8, target_mde_rel: float = 0.05,
              assumed_lift_rel: float = 0.05, plausible_rel_lift: float = PLAUSIBLE_REL_LIFT,
              *, time_to_decision: TimeToDecisionFn | None = sequential_time_to_decision
              ) -> PlanResult:
    """The plan of ``spec`` for ``n_units`` eligible units.

    ``baseline(days)`` gives each metric's pooled statistics over a window of ``days`` days
    ending at the start (with the pre-period covariate for CUPED, or the cross-products of
    :class:`Adjusted` under regression adjustment); it is called for the planned
    duration and each of :data:`DURATIONS`. ``target_mde_rel`` is the relative lift the test
    should detect, ``assumed_lift_rel`` the lift assumed when pricing the holdout, and
    ``plausible_rel_lift`` the relative MDE above which a warning says nothing plausible is
    detectable. ``time_to_decision`` (None: skip) adds the sequential monitor's expected time
    to a decision at the MDE for the primary metric when monitoring is sequential.
    """
    _check_probability("target_mde_rel", target_mde_rel, "e.g. 0.05 for a 5% lift")
    _check_probability("plausible_rel_lift", plausible_rel_lift, "e.g. 0.2")
    if n_units < 2:
        raise UserError(f"the eligible population has {n_units} unit(s): the plan needs at "
                        "least 2; check the population filter and the data")
    alpha, days = spec.alpha, (spec.end - spec.start).days
    z = z_total(alpha, power)
    scan = sorted({days, *DURATIONS})
    history = {d: _baselines(spec, baseline(d)) for d in scan}
    base = history[days]
    rows: list[PlanRow] = []
    warnings = [f"metric {m.name!r}: no history with variation in the {days} days before the "
                "start, so its MDE cannot be computed; check its table and the start date"
                for m in spec.metrics if not base[m.name].usable]
    cost_metric = _revenue_metric(spec)
    for ch, cfg in spec.channels.items():
        n_h = n_units * cfg.holdout
        cost, why = None, None
        if cost_metric is not None and base[cost_metric.name].usable:
            per_unit = base[cost_metric.name].mean * assumed_lift_rel
            cost = n_h * per_unit
            why = (f"{round(n_h):,} holdout units x {per_unit:.4g} {cost_metric.name} per unit "
                   f"over {days} days: a {assumed_lift_rel:.0%} lift on "
                   f"{base[cost_metric.name].mean:.4g}")
        for arm in cfg.treatment_arms:
            n_t = n_units * cfg.arms[arm]
            share = cfg.holdout / (cfg.holdout + cfg.arms[arm])
            pair_n = n_t + n_h
            se_units = z * math.sqrt(1 / n_t + 1 / n_h)
            for metric in spec.metrics:
                b = base[metric.name]
                if not b.usable:
                    continue
                m_abs = b.abs_effect(se_units)
                es = b.standard_effect(target_mde_rel * abs(b.mean))
                es_raw = b.standard_effect(target_mde_rel * abs(b.mean), cuped=False)
                by_days = tuple((d, history[d][metric.name].abs_effect(se_units)
                                 / abs(history[d][metric.name].mean))
                                for d in scan if history[d][metric.name].usable)
                hours = seq_power = None
                if (time_to_decision is not None and spec.monitoring.sequential
                        and metric.name == spec.primary_metric):
                    hours, seq_power = time_to_decision(spec, m_abs, b.sd_cuped, pair_n,
                                                        1 - share)
                row = PlanRow(
                    ch, arm, metric.name, round(n_t), round(n_h), b, m_abs, m_abs / abs(b.mean),
                    b.abs_effect(se_units, cuped=False), power_of(es, 1.0, n_t, n_h, alpha),
                    required_n(1.0, es, share, alpha, power),
                    required_n(1.0, es_raw, share, alpha, power),
                    required_holdout(1.0, es, pair_n, alpha, power),
                    next((d for d, m in by_days if m <= target_mde_rel), None), by_days,
                    cost, why, hours, seq_power)
                rows.append(row)
                if row.mde_rel > plausible_rel_lift and not metric.guardrail:
                    smallest = (f"the smallest detectable lift is {row.mde_rel:+.0%}"
                                if math.isfinite(row.mde_rel) else "no lift is detectable")
                    warnings.append(
                        f"{ch}{'' if arm == TREATMENT else '/' + arm} {metric.name}: this "
                        f"experiment cannot detect any plausible effect: {smallest} (plausible:"
                        f" up to {plausible_rel_lift:.0%}) with {round(n_h):,} holdout units "
                        f"over {days} days; enlarge the holdout, the population or the duration")
    inter = _interactions(spec, n_units, base, z, alpha, power, target_mde_rel)
    return PlanResult(spec.id, alpha, power, days, n_units, target_mde_rel, assumed_lift_rel,
                      plausible_rel_lift, tuple(rows), tuple(inter), tuple(warnings))


def _baselines(spec: Experiment,
               stats: dict[str, ArmStats | RatioStats | Adjusted]) -> dict[str, Baseline]:
    """Every metric's baseline (an unusable empty one when the history lacks it)."""
    empty = Baseline("mean", math.nan, 0.0, 0.0, 0)
    return {m.name: Baseline.from_stats(stats[m.name], m.kind) if m.name in stats else empty
            for m in spec.metrics}


def _revenue_metric(spec: Experiment) -> Metric | None:
    """The metric that prices the holdout: a non-guardrail mean metric summing revenue (or
    named revenue), else the primary metric when it is a mean; None when there is none."""
    means = [m for m in spec.metrics if m.kind == "mean" and not m.guardrail]
    named = [m for m in means if "revenue" in (m.value, m.name)]
    if named:
        return named[0]
    primary = spec.metric(spec.primary_metric)
    return primary if primary.kind == "mean" else None


def _interactions(spec: Experiment, n_units: int, base: dict[str, Baseline], z: float,
                  alpha: float, power: float, target_mde_rel: float) -> list[InteractionRow]:
    """Each two-way interaction of a factorial, per non-guardrail metric, on the linear scale
    (rates too). Assignment is independent, so the contrast pooled over the other channels
    uses the 2x2 cells of fractions t_a t_c, t_a (1 - t_c), (1 - t_a) t_c, (1 - t_a)(1 - t_c),
    where t is a channel's treated share (any of its variants)."""
    if spec.design != "factorial" or len(spec.channels) < 2:
        return []
    on = {c: 1 - cfg.holdout for c, cfg in spec.channels.items()}
    out = []
    for a, c in itertools.combinations(spec.channels, 2):
        cell_sum = sum(1 / (n_units * fa * fc) for fa, fc in itertools.product(
            (on[a], 1 - on[a]), (on[c], 1 - on[c])))
        mains = tuple(z * math.sqrt(1 / (n_units * on[x]) + 1 / (n_units * (1 - on[x])))
                      for x in (a, c))
        for metric in spec.metrics:
            b = base[metric.name]
            if metric.guardrail or not b.usable:
                continue
            m_abs = z * b.sd_cuped * math.sqrt(cell_sum)
            target = target_mde_rel * abs(b.mean)
            main_abs = (mains[0] * b.sd_cuped, mains[1] * b.sd_cuped)
            n_needed_main = max(required_n(b.sd_cuped, target, 1 - on[x], alpha, power)
                                for x in (a, c))
            out.append(InteractionRow(
                (a, c), metric.name, m_abs, m_abs / abs(b.mean), main_abs,
                (z * b.sd_cuped / target) ** 2 * cell_sum * n_units, n_needed_main,
                _power_se(max(main_abs), b.sd_cuped * math.sqrt(cell_sum), alpha)))
    return out


def history_window(spec: Experiment, days: int) -> Experiment:
    """The same experiment moved back so that its window is the ``days`` before its start."""
    start = spec.start - dt.timedelta(days=days)
    return spec.model_copy(update={"start": start, "end": spec.start})
