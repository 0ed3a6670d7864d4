"""Designing a geo experiment from its pre-period: power, minimum detectable effect and
budget per test duration and candidate treatment set (``liftlab plan`` on a geo YAML).

The history is the definition's pre-period. For a duration of ``D`` periods, the last ``D``
periods of the history play the test and the periods before them the pre-period:

* ``tbr``: the power is exact under TBR's model. The cumulative effect of a constant
  relative lift ``rho`` is ``rho`` times the counterfactual total; divided by TBR's standard
  error it is the non-centrality of a Student t with ``n - 2`` degrees of freedom, so
  ``power = P(|T| > t_crit)`` for that non-central t.
* ``bayesian_tbr``: TBR's power (the same model).
* ``trimmed_match``: randomised matched pairs (``analyses/geo_pairs.py``): the defined pairs
  and pairs matched on the pre-period KPI over the whole pool, randomised within each pair
  with the YAML's seed; power by simulation over windows of the history and
  re-randomisations. The plan gives the matched assignment to copy into the YAML.
* ``synthetic_control``: placebo simulation, as GeoLift does: the effect is injected into
  the treatment geos over ``D``-period windows that end at several points of the history,
  and the power is the share of windows where the conformal test rejects (with
  ``augment: ridge``, on the ridge-augmented fit).

The minimum detectable effect is the smallest relative lift with the target power; the
budget is the spend that buys that lift's incremental KPI at ``expected_iroas``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import optimize, stats

from liftlab.analyses.geo import Panel, _split, build_panel
from liftlab.analyses.geo_pairs import match_pairs, pair_power, randomise
from liftlab.core.errors import DataError, Problem
from liftlab.engines.base import Engine
from liftlab.engines.geo_table import geo_frame
from liftlab.spec.geo import GeoExperiment, Period
from liftlab.spec.models import FIRST_DATE
from liftlab.stats.geo import synthetic_control, tbr

WEEKS = (1, 2, 3, 4, 6, 8)  # candidate durations, in weeks
CANDIDATE_SETS = 5  # random treatment sets of the same size ranked beside the defined one
SC_WINDOWS = 8  # placebo windows per duration for synthetic control
SC_LIFTS = tuple(float(x) for x in np.round(np.arange(0.005, 0.3001, 0.005), 3))


@dataclass(frozen=True)
class GeoDesign:
    """One candidate: a treatment set and a duration, with its MDE at the target power."""

    treatment: tuple[str, ...]
    periods: int
    days: int
    mde_rel: float | None  # None: not reached within the lifts tried
    mde_incremental: float | None
    budget: float | None
    power_at: dict[str, float]  # power at a few relative lifts
    control: tuple[str, ...] = ()  # trimmed match: each treatment geo's partner

    def to_json(self) -> dict[str, Any]:
        return {
            "treatment": list(self.treatment),
            **({"control": list(self.control)} if self.control else {}),
            "periods": self.periods,
            "days": self.days,
            "mde_rel": self.mde_rel,
            "mde_incremental": self.mde_incremental,
            "budget": self.budget,
            "power_at": self.power_at,
        }


@dataclass(frozen=True)
class GeoPlan:
    experiment: str
    method: str
    power: float
    alpha: float
    designs: tuple[GeoDesign, ...]  # the defined treatment set first, then by MDE
    # trimmed match: the matched pairs' randomised assignment (geos, left_out, seed)
    assignment: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "design": "geo",
            "method": self.method,
            "power": self.power,
            "alpha": self.alpha,
            "designs": [d.to_json() for d in self.designs],
            **({"assignment": self.assignment} if self.assignment else {}),
        }

    def summary(self) -> str:
        lines = [
            f"{self.experiment}: geo design ({self.method}), power {self.power:.0%} at "
            f"alpha {self.alpha:g}, from the history before the test"
        ]
        for d in self.designs:
            mde = "not reached" if d.mde_rel is None else f"{d.mde_rel:+.2%}"
            budget = "" if d.budget is None else f", budget {d.budget:,.0f}"
            who = (
                "pairs "
                + ", ".join(f"{t}/{c}" for t, c in zip(d.treatment, d.control, strict=True))
                if d.control
                else "treatment " + ", ".join(d.treatment)
            )
            lines.append(f"  {d.days:>3} days  MDE {mde}{budget}  {who}")
        if self.assignment:
            a = self.assignment
            lines += [
                f"matched pairs on the pre-period {a['matched_on']}, randomised within each "
                f"pair (seed {a['seed']}); for the YAML:",
                "geos:",
                f"  treatment: [{', '.join(a['treatment'])}]",
                f"  control: [{', '.join(a['control'])}]",
            ]
            if a["left_out"]:
                lines.append(f"  exclude: [{', '.join(a['left_out'])}]   # no partner")
        return "\n".join(lines)


def tbr_power(
    treated: np.ndarray, controls: np.ndarray, n_pre: int, rho: float, alpha: float
) -> float:
    """TBR's power against a constant relative lift ``rho`` over the periods after
    ``n_pre`` (whose observed values stand for the counterfactual)."""
    fit = tbr.fit(treated, controls, n_pre, alpha)
    df = n_pre - 2
    assert fit.se is not None
    delta = rho * float(treated[n_pre:].sum()) / fit.se
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    power = float(stats.nct.sf(crit, df, delta) + stats.nct.cdf(-crit, df, delta))
    if math.isfinite(power):
        return power
    # far in the tail scipy's non-central t gives NaN; its normal limit is exact there
    return float(stats.norm.sf(crit - delta) + stats.norm.cdf(-crit - delta))


def tbr_mde(
    treated: np.ndarray, controls: np.ndarray, n_pre: int, power: float, alpha: float
) -> float:
    """The relative lift TBR detects with probability ``power`` (periods after ``n_pre``)."""
    return float(
        optimize.brentq(
            lambda r: tbr_power(treated, controls, n_pre, r, alpha) - power, 0.0, 10.0, xtol=1e-7
        )
    )


def sc_power(
    treated: np.ndarray,
    controls: np.ndarray,
    n_pre: int,
    periods: int,
    rho: float,
    alpha: float,
    demean: bool,
    windows: int = SC_WINDOWS,
    ridge: float | None = None,
) -> float:
    """Synthetic control's power against ``rho``: the share of placebo windows (``n_pre``
    periods then ``periods`` test periods, ending at evenly spaced points of the history)
    where the conformal test rejects once the lift is injected into the treatment geos."""
    n = treated.shape[0]
    ends = sorted({int(e) for e in np.linspace(n_pre + periods, n, windows).round()})
    hits = 0
    for end in ends:
        rows = slice(end - periods - n_pre, end)
        y = treated[rows].mean(axis=1)
        y[n_pre:] *= 1 + rho
        hits += synthetic_control.conformal_p(y, controls[rows], n_pre, 0.0, demean, ridge) < alpha
    return hits / len(ends)


def sc_mde(
    treated: np.ndarray,
    controls: np.ndarray,
    n_pre: int,
    periods: int,
    power: float,
    alpha: float,
    demean: bool,
    ridge: float | None = None,
) -> float | None:
    """The smallest lift of ``SC_LIFTS`` whose placebo power reaches ``power`` (bisection:
    the power grows with the lift); None when even the largest does not."""
    return _smallest_lift(
        lambda r: sc_power(treated, controls, n_pre, periods, r, alpha, demean, ridge=ridge), power
    )


def plan_geo(spec: GeoExperiment, engine: Engine, power: float = 0.8) -> GeoPlan:
    """Candidate designs from the pre-period in the data: the defined treatment set and
    ``CANDIDATE_SETS`` random sets of the same size, for each duration in ``WEEKS`` that the
    history can hold."""
    frame = geo_frame(engine, spec.columns, FIRST_DATE, spec.test_period.start)
    panel = _history(spec, frame)
    n_pre = sum(spec.pre_period.start <= d < spec.pre_period.end for d in panel.dates)
    kpi = panel.values[spec.kpi]
    if spec.method == "trimmed_match":
        return _plan_pairs(spec, panel, power)
    treated, controls = _split(spec, panel, None)
    rng = np.random.default_rng(spec.seed)
    sets = [treated]
    if len(controls) > 2 * len(treated):
        sets += [
            sorted(int(i) for i in rng.choice(controls, len(treated), replace=False))
            for _ in range(CANDIDATE_SETS)
        ]
    n = kpi.shape[0]
    designs = []
    for weeks in WEEKS:
        periods = max(1, round(7 * weeks / panel.step_days))
        if n < n_pre + periods:
            break
        for chosen in sets:
            rest = [i for i in treated + controls if i not in chosen]
            designs.append(
                _design(spec, panel, kpi[:, chosen], kpi[:, rest], chosen, n_pre, periods, power)
            )
    if not designs:
        raise DataError(
            [
                Problem(
                    f"the data before the test holds {n} periods: too few for the pre-period "
                    f"({n_pre}) and a one-week test",
                    table="geo_metrics",
                    column="date",
                    hint="plan from a longer history, or a shorter pre_period",
                )
            ]
        )
    first = [d for d in designs if list(d.treatment) == list(spec.geos.treatment)]
    rest_ = sorted(
        (d for d in designs if d not in first),
        key=lambda d: (d.days, math.inf if d.mde_rel is None else d.mde_rel),
    )
    return GeoPlan(spec.id, spec.method, power, spec.alpha, tuple(first + rest_))


def _plan_pairs(spec: GeoExperiment, panel: Panel, power: float) -> GeoPlan:
    """Trimmed match: the defined pairs and the pool's matched pairs (randomised with the
    YAML's seed), each for every duration the history holds."""
    kpi = panel.values[spec.kpi]
    treated, controls = _split(spec, panel, None)
    left = set(spec.geos.exclude)
    pool = [i for i, g in enumerate(panel.geos) if g not in left]
    period = spec.pre_period
    pre = [i for i, d in enumerate(panel.dates) if period.start <= d < period.end]
    pairs, left_out = match_pairs(pool, kpi[pre].sum(axis=0))
    if len(pairs) < 3:
        raise DataError(
            [
                Problem(
                    f"{len(pool)} geos outside geos.exclude make "
                    f"{len(pairs)} pairs; trimmed match needs at least 3",
                    table="geo_metrics",
                    column="geo",
                )
            ]
        )
    matched = randomise(pairs, left_out, spec.seed)
    candidates = [
        (list(zip(treated, controls, strict=True)), treated, controls),
        (list(matched.pairs), list(matched.treatment), list(matched.control)),
    ]
    designs = []
    for weeks in WEEKS:
        periods = max(1, round(7 * weeks / panel.step_days))
        if kpi.shape[0] < periods:
            break
        for chosen_pairs, t, c in candidates:
            at = _cached(
                lambda rho, pairs_=chosen_pairs, d=periods: pair_power(
                    kpi, pairs_, d, rho, spec.alpha, spec.seed, inference=spec.pair_inference
                )
            )
            mde = _smallest_lift(at, power)
            inc = None if mde is None else mde * float(kpi[-periods:, t].sum())
            budget = (
                None if inc is None or spec.expected_iroas is None else inc / spec.expected_iroas
            )
            designs.append(
                GeoDesign(
                    tuple(panel.geos[i] for i in t),
                    periods,
                    periods * panel.step_days,
                    mde,
                    inc,
                    budget,
                    {f"{r:.0%}": at(r) for r in (0.01, 0.02, 0.05, 0.10)},
                    tuple(panel.geos[i] for i in c),
                )
            )

    def names(ids: tuple[int, ...]) -> list[str]:
        return [panel.geos[i] for i in ids]

    assignment = {
        "treatment": names(matched.treatment),
        "control": names(matched.control),
        "left_out": names(matched.left_out),
        "seed": spec.seed,
        "matched_on": f"{spec.kpi} total from {period.start} to {period.end}",
    }
    return GeoPlan(spec.id, spec.method, power, spec.alpha, tuple(designs), assignment)


def _cached(power_of: Callable[[float], float]) -> Callable[[float], float]:
    """``power_of`` evaluated once per lift (the MDE search and the table share lifts)."""
    seen: dict[float, float] = {}

    def at(rho: float) -> float:
        if rho not in seen:
            seen[rho] = power_of(rho)
        return seen[rho]

    return at


def _smallest_lift(power_of: Callable[[float], float], power: float) -> float | None:
    """The smallest lift of ``SC_LIFTS`` whose power reaches ``power`` (bisection: the power
    grows with the lift); None when even the largest does not."""
    lo, hi = -1, len(SC_LIFTS) - 1
    if power_of(SC_LIFTS[hi]) < power:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_of(SC_LIFTS[mid]) >= power:
            hi = mid
        else:
            lo = mid
    return float(SC_LIFTS[hi])


def _history(spec: GeoExperiment, frame: pl.DataFrame) -> Panel:
    """Every date before the test as one panel (checked like an analysis' table): its last
    date stands in for the test period so that ``build_panel`` keeps every date."""
    dates = sorted(set(frame["date"].to_list()))
    if len(dates) < 2:
        raise DataError(
            [
                Problem(
                    f"{len(dates)} date(s) in the pre-period: nothing to plan from",
                    table="geo_metrics",
                    column="date",
                )
            ]
        )
    whole = spec.model_copy(
        update={
            "pre_period": Period(start=dates[0], end=dates[-1]),
            "test_period": Period(start=dates[-1], end=spec.test_period.start),
        }
    )
    return build_panel(whole, frame, spec.test_period.start, None)


def _design(
    spec: GeoExperiment,
    panel: Panel,
    treated: np.ndarray,
    controls: np.ndarray,
    chosen: list[int],
    n_pre: int,
    periods: int,
    power: float,
) -> GeoDesign:
    """One candidate; TBR's closed form on the latest window of the history (its last
    ``n_pre + periods`` periods), synthetic control's placebo windows over the history."""
    lifts = (0.01, 0.02, 0.05, 0.10)
    if spec.method in ("tbr", "bayesian_tbr"):  # the Bayesian variant: TBR's power
        t, c = treated[-(n_pre + periods) :], controls[-(n_pre + periods) :]
        mde: float | None = tbr_mde(t, c, n_pre, power, spec.alpha)
        at = {f"{r:.0%}": tbr_power(t, c, n_pre, r, spec.alpha) for r in lifts}
    else:
        demean = bool(spec.demean)
        ridge = _ridge_lambda(spec, treated, controls, n_pre, periods)
        at = {
            f"{r:.0%}": sc_power(
                treated, controls, n_pre, periods, r, spec.alpha, demean, ridge=ridge
            )
            for r in lifts
        }
        mde = sc_mde(treated, controls, n_pre, periods, power, spec.alpha, demean, ridge)
    total = float(treated[-periods:].sum())
    inc = None if mde is None else mde * total
    budget = None if inc is None or spec.expected_iroas is None else inc / spec.expected_iroas
    return GeoDesign(
        tuple(panel.geos[i] for i in chosen),
        periods,
        periods * panel.step_days,
        mde,
        inc,
        budget,
        at,
    )


def _ridge_lambda(
    spec: GeoExperiment, treated: np.ndarray, controls: np.ndarray, n_pre: int, periods: int
) -> float | None:
    """``augment: ridge``: the given lambda, or augsynth's cross-validated one on the
    pre-period of the latest window, kept for every placebo window (as the analysis keeps
    its lambda in the conformal refits)."""
    if spec.augment != "ridge":
        return None
    if spec.ridge_lambda is not None:
        return spec.ridge_lambda
    rows = slice(-(n_pre + periods), -periods)
    y, c = treated[rows].mean(axis=1), controls[rows]
    if spec.demean:
        y, c = y - y.mean(), c - c.mean(axis=0)
    return synthetic_control.choose_lambda(c, y).lam
