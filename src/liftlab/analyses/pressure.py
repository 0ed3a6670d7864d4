"""Contact pressure: the readout and the optimum frequency of a dose-response experiment.

``design: dose_response`` randomises one channel's units to arms that differ in contact
frequency (the arm with frequency 0 is the holdout). Everything here is read off the table of
sufficient statistics per (arm x segment) that every engine computes (``cells.py``): the arms
are simply more groups. Per arm and segment:

- each metric against the holdout arm, with the very comparison ``analyze`` reports for it
  (Welch / CUPED for means and counts, the score or exact route for binary metrics);
- the contacts received per unit (sends are skipped and bounce), their cost;
- the **value** per unit: primary metric (margin) minus contact cost minus ``optin_value``
  times the fatigue event (a lost reachable customer), with its interval, and the marginal
  value of the next send between neighbouring arms;
- all channels' touches per unit and frequency unit (cross-channel pressure).

The dose-response model (``stats/dose.py``) turns the arms into curves per segment and the
optimum frequency with its posterior interval, the expected gain over today's frequency and
the probability that the change pays. A Wald test of equal value across arms guards against
inventing an optimum: when the arms' values cannot be told apart, none is claimed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from itertools import combinations_with_replacement
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from liftlab.analyses.cells import CellTable
from liftlab.analyses.warning import AnalysisWarning
from liftlab.spec.aggregation import AggregationPlan, Measure, prod_col, sum_col
from liftlab.spec.models import Experiment, Metric
from liftlab.stats import frequentist
from liftlab.stats.dose import DoseCell, DoseCurve, DoseFit, equal_means, fit_dose
from liftlab.stats.dose_plan import DoseTruth, plan_by_simulation
from liftlab.stats.frequentist import Lift
from liftlab.stats.hierarchical import Diagnostics
from liftlab.stats.proportions import binary
from liftlab.stats.suffstats import ArmStats

if TYPE_CHECKING:
    from liftlab.engines.base import Engine

DAYS_PER_UNIT = {"per_day": 1.0, "per_week": 7.0, "per_month": 365.25 / 12}
TOUCHES = "touches"  # every contact of every channel (cross-channel pressure)
ALL = "all"
MIN_ARM_UNITS = 30  # per arm, for a segment's curve (the arm means' normal approximation)


def channel_of(spec: Experiment) -> str:
    return next(iter(spec.channels))


def pressure_plan(spec: Experiment, plan: AggregationPlan, engine: Engine) -> AggregationPlan:
    """The plan with what the value per unit needs (cross-products of the primary metric,
    the fatigue metric, contacts and cost) and the touches of every channel."""
    measures = list(plan.measures)
    if engine.has("contacts"):
        measures.append(Measure(TOUCHES, "contacts", "count", every_experiment=True))
    names = {m.name for m in measures}
    parts = [n for n in _value_parts(spec) if n in names]
    products = list(combinations_with_replacement(parts, 2))
    return dataclasses.replace(
        plan,
        measures=tuple(measures),
        products=tuple(dict.fromkeys(plan.products + tuple(products))),
    )


def _value_parts(spec: Experiment) -> list[str]:
    ch = channel_of(spec)
    fatigue = spec.fatigue_metric
    return [
        spec.primary_metric,
        *([fatigue.name] if fatigue else []),
        f"contacts@{ch}",
        f"cost@{ch}",
    ]


@dataclass(frozen=True)
class _Context:
    """What every readout of one experiment shares."""

    spec: Experiment
    cells: CellTable
    channel: str
    frequencies: dict[str, float]
    window_units: float  # frequency units in the analysis window (weeks for per_week)
    optin_value: float
    cost_column: bool  # the contacts table carries costs (else cost_per_contact x sends)
    has_contacts: bool
    cuped: bool

    @property
    def control(self) -> str:
        return self.spec.channels[self.channel].control

    @property
    def unit(self) -> str:
        return self.spec.channels[self.channel].frequency_unit or "per_week"

    def rows(self, arm: str | None, segment: dict[str, str] | None) -> pl.DataFrame:
        return self.cells.where({self.channel: arm} if arm else None, segment)

    def value_terms(self, arm: str) -> list[tuple[float, str | None]]:
        """The value per unit as a sum of coefficient x measure (None: the constant 1)."""
        spec, ch = self.spec, self.channel
        terms: list[tuple[float, str | None]] = [(1.0, spec.primary_metric)]
        per_contact = spec.channels[ch].cost_per_contact
        if self.cost_column:
            terms.append((-1.0, f"cost@{ch}"))
        elif self.has_contacts:
            terms.append((-per_contact, f"contacts@{ch}"))
        else:  # no contacts table: every unit received its arm's nominal sends
            terms.append((-per_contact * self.frequencies[arm] * self.window_units, None))
        fatigue = spec.fatigue_metric
        if fatigue is not None:
            terms.append((-self.optin_value, fatigue.name))
        return terms

    def value_stats(self, arm: str, rows: pl.DataFrame) -> ArmStats:
        """n, sum and sum of squares of the value per unit, from the cross-products."""
        n = int(rows["n"].sum())
        terms = self.value_terms(arm)
        s = sum(c * self.moment(rows, m) for c, m in terms)
        ss = sum(ci * cj * self.moment(rows, mi, mj) for ci, mi in terms for cj, mj in terms)
        return ArmStats(n, s, ss)

    def moment(self, rows: pl.DataFrame, a: str | None, b: str | None = None) -> float:
        """The sum over units of ``a`` (x ``b``); None stands for the constant 1."""
        if a is None or b is None:
            other = a if b is None else b
            return (
                float(rows["n"].sum()) if other is None else self.cells.total(sum_col(other), rows)
            )
        column = prod_col(a, b) if prod_col(a, b) in rows.columns else prod_col(b, a)
        if column not in rows.columns:
            raise KeyError(f"the aggregation plan lacks the cross-product of {a} and {b}")
        return self.cells.total(column, rows)

    def cost_per_unit(self, arm: str, rows: pl.DataFrame) -> float:
        """The contact cost per unit of an arm (the value's cost term)."""
        coef, measure = self.value_terms(arm)[1]
        n = int(rows["n"].sum())
        return -coef * self.moment(rows, measure) / n if n else math.nan


Group = str | tuple[str, str]  # ALL, or (segment dimension, value)


def arm_readout(
    spec: Experiment, cells: CellTable, window: tuple[dt.datetime, dt.datetime]
) -> tuple[_Context, dict[Group, dict[str, str] | None], dict[Group, list[dict[str, Any]]]]:
    """The frequentist readout per arm of every group (the whole population, then each value
    of every segment dimension), without the model."""
    ch = channel_of(spec)
    cfg = spec.channels[ch]
    unit = cfg.frequency_unit or "per_week"
    window_units = (window[1] - window[0]).total_seconds() / 86400 / DAYS_PER_UNIT[unit]
    has_contacts = sum_col(f"contacts@{ch}") in cells.frame.columns
    cost_column = has_contacts and cells.total(sum_col(f"cost@{ch}"), cells.frame) > 0
    ctx = _Context(
        spec,
        cells,
        ch,
        cfg.frequencies,
        window_units,
        0.0,
        cost_column,
        has_contacts,
        spec.covariates.pre_period_days > 0,
    )
    ctx = dataclasses.replace(ctx, optin_value=_optin_value(ctx)[0])
    groups: dict[Group, dict[str, str] | None] = {ALL: None}
    for dim in cells.segments:
        groups |= {(dim, v): {dim: v} for v in cells.segment_values(dim)}
    return ctx, groups, {g: _readout(ctx, s) for g, s in groups.items()}


def pressure_section(
    spec: Experiment,
    cells: CellTable,
    window: tuple[dt.datetime, dt.datetime],
    warnings: list[AnalysisWarning],
) -> dict[str, Any]:
    """results.json's ``pressure`` object (module docstring)."""

    ctx, groups, readouts = arm_readout(spec, cells, window)
    ch, cfg, dims = ctx.channel, spec.channels[ctx.channel], ctx.cells.segments
    unit, window_units, optin = ctx.unit, ctx.window_units, ctx.optin_value
    cost_column, has_contacts = ctx.cost_column, ctx.has_contacts
    optin_source = _optin_value(ctx)[1]
    # one model per segment dimension (its values pooled); the first one's overall curve
    fits = {
        d: _fit(ctx, {k[1]: s for k, s in groups.items() if k != ALL and k[0] == d}) for d in dims
    }
    fits = fits or {ALL: _fit(ctx, {})}
    diagnostics = _worst({d: f.diagnostics for d, f in fits.items()})
    if diagnostics.warnings:  # one warning (one flag on the daily index)
        warnings.append(AnalysisWarning("convergence", "; ".join(diagnostics.warnings)))
    overall = next(iter(fits.values())).overall
    current = spec.pressure.current_frequency if spec.pressure is not None else None
    out_groups: dict[Group, dict[str, Any]] = {}
    for g, rows in readouts.items():
        curve = overall if g == ALL else fits[g[0]].segments.get(g[1])
        if curve is None:
            note = (
                f"{_where(g)}: fewer than {MIN_ARM_UNITS} units in some arm; no curve "
                "is fitted for it (the overall curve leaves it out)"
            )
            warnings.append(AnalysisWarning("pressure", note, "info"))
            out_groups[g] = {
                "optimum": None,
                "optimum_ci": None,
                "flat": None,
                "flat_test": None,
                "arms": rows,
                "curve": None,
                "note": note,
            }
            continue
        out_groups[g] = _optimum(ctx, g, groups[g], rows, curve, current, warnings)
    cost_per_frequency = _cost_per_frequency(ctx)
    return {
        "channel": ch,
        "frequency_unit": unit,
        "frequencies": cfg.frequencies,
        "control_arm": cfg.control,
        "window_units": window_units,
        "current_frequency": current,
        "optin_value": optin,
        "optin_value_source": optin_source,
        "fatigue_metric": spec.fatigue_metric.name if spec.fatigue_metric else None,
        "cost_per_frequency": cost_per_frequency,
        "cost_basis": (
            "contacts.cost"
            if cost_column
            else "cost_per_contact x contacts received"
            if has_contacts
            else "cost_per_contact x nominal sends (no contacts table)"
        ),
        "dimensions": list(dims),
        "overall": out_groups.pop(ALL),
        "segments": {
            d: {k[1]: g for k, g in out_groups.items() if isinstance(k, tuple) and k[0] == d}
            for d in dims
        },
        "method": "; ".join(f.method if d == ALL else f"{d}: {f.method}" for d, f in fits.items()),
        "diagnostics": diagnostics.to_dict(),
        "value_definition": _value_definition(ctx),
    }


def _digits(x: float) -> float:
    return float(f"{x:.12g}")


def _where(group: Group) -> str:
    return "overall" if group == ALL else f"{group[0]} {group[1]!r}"


def _worst(diagnostics: dict[str, Diagnostics]) -> Diagnostics:
    """The sampler health of every fit (one per segment dimension) as one: the worst r_hat
    and ESS, the divergences and the seconds added up, each fit's warnings named."""
    ds = list(diagnostics.values())
    return dataclasses.replace(
        ds[0],
        r_hat_max=max(d.r_hat_max for d in ds),
        ess_bulk_min=min(d.ess_bulk_min for d in ds),
        ess_tail_min=min(d.ess_tail_min for d in ds),
        divergences=sum(d.divergences for d in ds),
        warnings=tuple(
            w if name == ALL else f"{name}: {w}"
            for name, d in diagnostics.items()
            for w in d.warnings
        ),
        compile_seconds=sum(d.compile_seconds for d in ds),
        sample_seconds=sum(d.sample_seconds for d in ds),
    )


def _value_definition(ctx: _Context) -> str:
    fatigue = ctx.spec.fatigue_metric
    loss = f" - {ctx.optin_value:g} x {fatigue.name}" if fatigue is not None else ""
    return f"{ctx.spec.primary_metric} - contact cost{loss}, per unit over the window"


def _optin_value(ctx: _Context) -> tuple[float, str]:
    """The YAML's value of a reachable customer, else one year of the margin that the
    lowest tested frequency adds over the holdout (the value of keeping that channel open)."""
    spec = ctx.spec
    if spec.pressure is not None and spec.pressure.optin_value is not None:
        return spec.pressure.optin_value, "yaml"
    if spec.fatigue_metric is None:
        return 0.0, "no fatigue metric: lost opt-ins are not valued"
    lowest = min((a for a in ctx.frequencies if a != ctx.control), key=ctx.frequencies.get)
    lift = frequentist.welch(
        ctx.cells.arm_stats(spec.primary_metric, ctx.rows(lowest, None)),
        ctx.cells.arm_stats(spec.primary_metric, ctx.rows(ctx.control, None)),
        spec.alpha,
    )
    days = ctx.window_units * DAYS_PER_UNIT[spec.channels[ctx.channel].frequency_unit or "per_week"]
    per_year = max(lift.abs, 0.0) / days * 365.25 if lift.ok and days > 0 else 0.0
    return per_year, (
        f"estimated: one year of the {spec.primary_metric} that arm {lowest!r} "
        f"adds over the holdout ({lift.abs:.4g} in {days:.0f} days)"
    )


def _cost_per_frequency(ctx: _Context) -> float:
    """Contact cost per unit for one contact per frequency unit over the window: the
    treated arms' cost over their nominal contacts (skipped and bounced sends cost
    nothing)."""
    cost, nominal = 0.0, 0.0
    for arm, f in ctx.frequencies.items():
        if f == 0:
            continue
        rows = ctx.rows(arm, None)
        n = int(rows["n"].sum())
        cost += ctx.cost_per_unit(arm, rows) * n
        nominal += n * f
    return cost / nominal if nominal else 0.0


def _lift(metric: Metric, ctx: _Context, t_rows: pl.DataFrame, h_rows: pl.DataFrame) -> Lift:
    """The comparison ``analyze`` makes for a mean, count or binary metric (its routes, with
    CUPED when the experiment has a pre-period; tests/test_pressure.py checks they agree)."""
    cells, alpha, cuped = ctx.cells, ctx.spec.alpha, ctx.cuped
    t, h = cells.arm_stats(metric.name, t_rows, cuped), cells.arm_stats(metric.name, h_rows, cuped)
    if metric.kind == "binary":
        return binary(t, h, alpha, cuped)
    return frequentist.welch(t, h, alpha, cuped, nonnegative=metric.kind == "count")


def _lift_dict(lift: Lift) -> dict[str, Any]:
    return {
        "mean": lift.mean_treatment,
        "lift_abs": lift.abs,
        "lift_abs_ci": list(lift.abs_ci),
        "lift_rel": lift.rel,
        "lift_rel_ci": list(lift.rel_ci),
        "p_value": lift.p_value,
        "method": lift.method,
        "error": lift.error,
    }


def _readout(ctx: _Context, segment: dict[str, str] | None) -> list[dict[str, Any]]:
    """Per arm (by frequency): units, contacts, cost, every metric and the value against the
    holdout arm, and the value of the next send against the previous arm."""
    spec, cells = ctx.spec, ctx.cells
    arms = sorted(ctx.frequencies, key=ctx.frequencies.get)
    h_rows = ctx.rows(ctx.control, segment)
    out: list[dict[str, Any]] = []
    previous: tuple[str, pl.DataFrame] | None = None
    for arm in arms:
        rows = ctx.rows(arm, segment)
        n = int(rows["n"].sum())
        f = ctx.frequencies[arm]
        row: dict[str, Any] = {"arm": arm, "frequency": f, "n": n}
        if n == 0:
            out.append(row)
            continue
        received = (
            cells.total(sum_col(f"contacts@{ctx.channel}"), rows) / n
            if ctx.has_contacts
            else f * ctx.window_units
        )
        row["contacts_per_unit"] = received
        row["received_per_frequency_unit"] = received / ctx.window_units
        row["delivered_share"] = received / (f * ctx.window_units) if f > 0 else None
        row["cost_per_unit"] = ctx.cost_per_unit(arm, rows)
        if sum_col(TOUCHES) in cells.frame.columns:
            row["touches_per_frequency_unit"] = (
                cells.total(sum_col(TOUCHES), rows) / n / ctx.window_units
            )
        value = ctx.value_stats(arm, rows)
        row["value"] = {"mean": value.sum / n}
        metrics = {}
        for metric in spec.metrics:
            if metric.kind == "ratio":
                continue
            stats = cells.arm_stats(metric.name, rows)
            metrics[metric.name] = (
                {"mean": stats.sum / n}
                if arm == ctx.control
                else _lift_dict(_lift(metric, ctx, rows, h_rows))
            )
        row["metrics"] = metrics
        if arm != ctx.control:
            row["value"] = _lift_dict(
                frequentist.welch(value, ctx.value_stats(ctx.control, h_rows), spec.alpha)
            )
        if previous is not None:
            step = f - ctx.frequencies[previous[0]]
            diff = frequentist.welch(value, ctx.value_stats(*previous), spec.alpha)
            row["next_send"] = {
                "from_arm": previous[0],
                "per_send": diff.abs / step,
                "ci": [diff.abs_ci[0] / step, diff.abs_ci[1] / step],
                "p_value": diff.p_value,
            }
        out.append(row)
        previous = (arm, rows)
    return out


def _fit(ctx: _Context, segments: dict[str, dict[str, str] | None]) -> DoseFit:
    """The dose-response model on the cells of each value of one segment dimension with at
    least ``MIN_ARM_UNITS`` units in every arm (all units when none has them)."""
    spec = ctx.spec
    fatigue = spec.fatigue_metric
    usable = {
        g: s
        for g, s in segments.items()
        if all(int(ctx.rows(arm, s)["n"].sum()) >= MIN_ARM_UNITS for arm in ctx.frequencies)
    }
    dose_cells = []
    for g, segment in (usable or {ALL: None}).items():
        for arm, f in ctx.frequencies.items():
            rows = ctx.rows(arm, segment)
            stats = ctx.cells.arm_stats(spec.primary_metric, rows)
            events = (
                round(ctx.cells.total(sum_col(fatigue.name), rows)) if fatigue is not None else None
            )
            # 12 significant digits: engines whose sums differ in the last bits fit the same
            # model (NUTS trajectories would otherwise drift apart from the first difference)
            dose_cells.append(
                DoseCell(g, f, stats.n, _digits(stats.sum), _digits(stats.sum_sq), events)
            )
    a = spec.analysis
    return fit_dose(
        dose_cells,
        _cost_per_frequency(ctx),
        ctx.optin_value,
        spec.alpha,
        a.seed,
        a.draws,
        a.tune,
        a.chains,
        a.target_accept,
        a.sampler,
    )


def _optimum(
    ctx: _Context,
    group: Group,
    segment: dict[str, str] | None,
    readout: list[dict[str, Any]],
    curve: DoseCurve,
    current: float | None,
    warnings: list[AnalysisWarning],
) -> dict[str, Any]:
    """The optimum of one group, unless the arms' values cannot be told apart."""

    alpha = ctx.spec.alpha
    valued = [r for r in readout if r["n"] > 1]
    stats = [ctx.value_stats(r["arm"], ctx.rows(r["arm"], segment)) for r in valued]
    chi2, df, p = equal_means(
        [s.sum / s.n for s in stats], [math.sqrt(_var(s) / s.n) for s in stats]
    )
    flat = not p < alpha
    fmax = max(ctx.frequencies.values())
    out: dict[str, Any] = {
        "optimum": None if flat else curve.optimum,
        "optimum_ci": None if flat else list(curve.optimum_ci),
        "flat": flat,
        "flat_test": {"method": "wald_chi2", "chi2": chi2, "df": df, "p_value": p},
        "arms": readout,
        "curve": curve.to_dict(),
    }
    where = _where(group)
    if flat:
        out["note"] = (
            f"{where}: the arms' values per unit do not differ (Wald chi-square "
            f"p = {p:.3g}, {df} df): no frequency can be recommended over another"
        )
        warnings.append(AnalysisWarning("pressure", out["note"], "info"))
        return out  # the curve is monotone by construction: on a flat truth its next send
        # and gain would still look positive, so only the gate speaks
    out["next_send"] = [
        {"frequency": r["frequency"], **curve.next_send(r["frequency"], alpha).to_dict()}
        for r in valued
        if r["frequency"] + 1 <= fmax
    ]
    if current is not None:
        gain = curve.gain(current, alpha)
        out["gain_over_current"] = {
            "from": current,
            **gain.to_dict(),
            "prob_pays": gain.prob_positive,
        }
    if curve.optimum >= fmax and curve.optimum_ci[1] >= fmax:
        out["note"] = (
            f"{where}: the value still rises at the highest tested frequency "
            f"({fmax:g}); the optimum may lie beyond it: test higher frequencies"
        )
        warnings.append(AnalysisWarning("pressure", out["note"], "info"))
    weeks = ctx.window_units * DAYS_PER_UNIT[ctx.unit] / 7
    out["planning"] = plan_by_simulation(
        _truth(ctx, curve, valued, segment, weeks), seed=ctx.spec.analysis.seed
    ).to_dict()
    touches = [r.get("touches_per_frequency_unit") for r in valued]
    if all(t is not None for t in touches):
        out["touch_cap"] = _touch_cap(ctx, valued, curve)
    return out


def _truth(
    ctx: _Context,
    curve: DoseCurve,
    valued: list[dict[str, Any]],
    segment: dict[str, str] | None,
    weeks: float,
) -> DoseTruth:
    """What the plan takes as true: the posterior mean curves, today's arms and the standard
    errors of their mean margins."""
    stats = [
        ctx.cells.arm_stats(ctx.spec.primary_metric, ctx.rows(r["arm"], segment)) for r in valued
    ]
    return DoseTruth(
        np.asarray(curve.frequency),
        np.asarray(curve.margin.mean),
        None if curve.fatigue is None else np.asarray(curve.fatigue.mean),
        np.array([r["frequency"] for r in valued], float),
        np.array([math.sqrt(_var(s) / s.n) for s in stats]),
        np.array([s.n for s in stats], float),
        weeks,
        _cost_per_frequency(ctx),
        ctx.optin_value,
    )


def _var(s: ArmStats) -> float:
    return max(s.sum_sq - s.sum**2 / s.n, 0.0) / max(s.n - 1, 1)


def _touch_cap(ctx: _Context, readout: list[dict[str, Any]], curve: DoseCurve) -> dict[str, Any]:
    """Total touches per unit and frequency unit (every channel) at the optimum: the other
    channels' touches (not randomised, so averaged over the arms) plus the tested channel's
    contacts received at the optimum frequency (its delivered share)."""
    own = [r["received_per_frequency_unit"] for r in readout]
    others = sum(
        (r["touches_per_frequency_unit"] - o) * r["n"] for r, o in zip(readout, own, strict=True)
    ) / sum(r["n"] for r in readout)
    treated = [r for r in readout if r["frequency"] > 0]
    delivered = sum(r["received_per_frequency_unit"] * r["n"] for r in treated) / sum(
        r["frequency"] * r["n"] for r in treated
    )

    def cap(f: float) -> float:
        return others + delivered * f

    return {
        "cap": cap(curve.optimum),
        "cap_ci": [cap(curve.optimum_ci[0]), cap(curve.optimum_ci[1])],
        "other_channels": others,
        "delivered_share": delivered,
    }
