"""The analysis of one experiment: from definition and data to a results object.

Data work happens once (``engines``) and ends in a table of sufficient statistics; every
comparison (channel x arm x metric x segment) is then read off that table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from liftlab.analyses.attribution import Landing
from liftlab.analyses.cells import CellTable
from liftlab.analyses.confirmation import ConfirmationReadout, confirmation_readout
from liftlab.analyses.design import DesignCheck, design_checks
from liftlab.analyses.serialize import iso_utc
from liftlab.analyses.warning import AnalysisWarning
from liftlab.core.errors import DataError, Problem, UserError
from liftlab.data.quality import TS_COLUMN, QualityReport
from liftlab.engines.base import Engine, EngineLimit, folder_only
from liftlab.engines.units import Units, window_bounds
from liftlab.spec.aggregation import (
    BUYERS,
    AggregationPlan,
    arm_col,
    build_aggregation,
    covariates_of,
    pre_name,
    prod_col,
    sum_col,
)
from liftlab.spec.columns import column_problems
from liftlab.spec.models import HOLDOUT, TREATMENT, Channel, Experiment, Metric
from liftlab.stats import bayes, frequentist, regression
from liftlab.stats.bayes import BayesEffect
from liftlab.stats.contribution import (
    Contribution,
    ProgrammeEffect,
    factorial_contribution,
    programme_effect,
)
from liftlab.stats.frequentist import Lift
from liftlab.stats.multiple import adjust_pvalues, interval_alphas
from liftlab.stats.noninferiority import NonInferiority, non_inferiority
from liftlab.stats.proportions import binary, normal_theory
from liftlab.stats.quantiles import Histogram, quantile_effect
from liftlab.stats.roi import ChannelRoi, channel_roi
from liftlab.stats.srm import SrmCheck, srm_check

if TYPE_CHECKING:
    from liftlab.analyses.monitor import MonitorResult
    from liftlab.stats.causal import IvEstimate
    from liftlab.stats.hierarchical import HierarchicalResult

Verdict = Literal["desired", "undesired", "inconclusive"]


@dataclass(frozen=True)
class Effect:
    """One comparison: a channel's treatment arm (or variant) vs its holdout, on one metric,
    in the whole population (``segment`` None) or one segment."""

    channel: str
    variant: str | None
    metric: Metric
    segment: dict[str, str] | None
    n_treatment: int
    n_holdout: int
    lift: Lift
    alpha: float
    incremental_total: float | None = None
    cost: float | None = None
    posterior: BayesEffect | None = None
    money: Money | None = None
    p_adjusted: float | None = None
    ci_alpha: float | None = None
    covariates: tuple[str, ...] | None = None  # the regression adjustment's, when it applies
    non_inferiority: NonInferiority | None = None  # a guardrail with a margin
    winsorize_cap: float | None = None  # the per-unit value a winsorised metric was capped at

    @property
    def verdict(self) -> Verdict:
        """Desired or undesired only when the (adjusted) p-value is below alpha and the
        interval shown excludes zero."""
        if not self.lift.significant(self.alpha, self.p_adjusted):
            return "inconclusive"
        up = self.lift.abs > 0
        return "desired" if up == (self.metric.desired_direction == "increase") else "undesired"

    @property
    def ci_level(self) -> float:
        """The level of the interval shown (lower than 1 - alpha after a multiple-testing
        adjustment)."""
        return 1 - (self.alpha if self.ci_alpha is None else self.ci_alpha)

    def to_dict(self) -> dict[str, Any]:
        """The results.json ``effects`` item (``serialize.effect_json``)."""
        from liftlab.analyses.serialize import effect_json

        return effect_json(self)


@dataclass(frozen=True)
class Money:
    """Cost, ROI and ROAS of a channel on its primary-metric effect (whole population)."""

    roi: ChannelRoi
    roi_basis: Literal["margin", "revenue"]
    cost_basis: str
    contacts: int


@dataclass(frozen=True)
class Adjustment:
    """The adjustment applied over the family the YAML names (stats/multiple.py)."""

    method: str
    family: str
    comparisons: int
    applied: bool
    description: str | None = None


@dataclass(frozen=True)
class LandingSection:
    """Where one channel arm's increment landed, with last-touch credit when computed."""

    channel: str
    variant: str | None
    landing: Landing
    last_touch: pl.DataFrame | None


@dataclass(frozen=True)
class IvSection:
    """The instrumented effect of an encouragement experiment."""

    estimate: IvEstimate
    outcome_metric: str
    adoption_metric: str


@dataclass(frozen=True)
class HierarchicalSection:
    """Partial pooling across channels and the first segment dimension."""

    fit: HierarchicalResult
    segment: str | None


@dataclass(frozen=True)
class Sections:
    """The analysis beyond the effects. None: not computed for this experiment (the design,
    the data or the YAML's options exclude it; a warning says why when it was expected)."""

    multiple_testing: Adjustment
    contribution: Contribution | ProgrammeEffect | None = None
    landing: tuple[LandingSection, ...] = ()
    iv: IvSection | None = None
    bayes: HierarchicalSection | None = None
    sequential: MonitorResult | None = None
    quantiles: tuple[dict[str, Any], ...] | None = None  # quantile effects (whole population)
    confirmation: ConfirmationReadout | None = None
    pressure: dict[str, Any] | None = None  # dose-response designs (analyses/pressure.py)


@dataclass(frozen=True)
class AnalysisResult:
    """Everything ``liftlab analyze`` reports for one experiment (results.json)."""

    spec: Experiment
    as_of: dt.datetime
    window: tuple[dt.datetime, dt.datetime]
    n_units: int
    assigned_by: str
    srm: tuple[SrmCheck, ...]
    effects: tuple[Effect, ...]
    warnings: tuple[AnalysisWarning, ...]
    cells: CellTable
    data_source: str
    sections: Sections
    yaml_text: str | None = None
    data_checks: tuple[dict[str, object], ...] = ()
    design: tuple[DesignCheck, ...] = ()
    as_of_basis: AsOf | None = None

    @property
    def status(self) -> str:
        return "ended" if self.window[1] >= _end_utc(self.spec) else "running"

    @property
    def srm_ok(self) -> bool:
        return all(c.ok for c in self.srm)

    @property
    def srm_p_value(self) -> float:
        ps = [c.p_value for c in self.srm if not math.isnan(c.p_value)]
        return min(ps) if ps else math.nan

    def primary_effects(self) -> list[Effect]:
        return [e for e in self.effects
                if e.metric.name == self.spec.primary_metric and e.segment is None]

    @property
    def days_run(self) -> float:
        return max(0.0, (self.window[1] - self.window[0]).total_seconds() / 86400)

    def to_dict(self) -> dict[str, Any]:
        """The results.json document (``serialize.analysis_json``; docs/results.md)."""
        from liftlab.analyses.serialize import analysis_json

        return analysis_json(self)

    def to_polars(self) -> pl.DataFrame:
        """The effects as a tidy polars frame (one row per comparison)."""
        from liftlab.analyses.serialize import effects_frame

        return effects_frame(self.effects)

    def summary(self) -> str:
        lines = [f"{self.spec.title} ({self.spec.id}) as of {iso_utc(self.as_of)}"
                 + (f" ({self.as_of_basis.describe()})" if self.as_of_basis else "")
                 + f": {self.n_units:,} units, SRM {'ok' if self.srm_ok else 'FAILED'}"]
        for e in self.primary_effects():
            arm = e.variant or TREATMENT
            lines.append(f"  {e.channel}/{arm} {e.metric.name}: {e.lift.abs:+.4g} "
                         f"[{e.lift.abs_ci[0]:+.4g}, {e.lift.abs_ci[1]:+.4g}] "
                         f"({e.lift.rel:+.1%}), p={e.lift.p_value:.3g}, {e.verdict}")
        c = self.sections.confirmation
        if c is not None and c.realised_gain is not None and c.realised_gain_ci is not None:
            lines.append(f"  targeting policy vs business as usual: realised "
                         f"{c.realised_gain:+.4g} [{c.realised_gain_ci[0]:+.4g}, "
                         f"{c.realised_gain_ci[1]:+.4g}] per customer, predicted "
                         f"{c.predicted_gain:+.4g} (p = {c.p_value:.3g} for the gap)")
        lines += [f"  ! {w.message}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())


def analyze(spec: Experiment, engine: Engine, as_of: dt.datetime | None = None,
            yaml_text: str | None = None, quality: QualityReport | None = None,
            units: Units | None = None, yaml_file: str | None = None) -> AnalysisResult:
    """Full analysis of one experiment at ``as_of`` (default: its end).

    ``quality`` lets a daily run check the shared tables once for all its experiments, and
    ``units`` lets it build the experiment's units once for the analysis and the plan.
    Every column the definition names is checked first (at its line of ``yaml_file``).
    """
    missing = column_problems(spec, lambda t: engine.columns(t) if engine.has(t) else None,
                              yaml_file, yaml_text)
    if missing:
        raise DataError(missing)
    basis = None
    if as_of is None:
        basis = default_as_of(spec, engine)
        as_of = basis.as_of
    window = window_bounds(spec, as_of)
    as_of = as_of.astimezone(dt.UTC)
    if window[1] <= window[0]:
        stale = (f" (the data ends at {iso_utc(basis.freshness)}: is the experiment's start date "
                 "right?)" if basis is not None and basis.freshness is not None else "")
        raise UserError(f"experiment {spec.id!r} starts on {spec.start}: nothing to analyse "
                        f"as of {iso_utc(as_of)}{stale}")
    # Rows after the analysis date are normal (a backfill); only the future is suspicious.
    quality = quality or engine.quality(max(as_of, dt.datetime.now(dt.UTC)))
    if quality.errors:
        raise DataError(list(quality.errors))
    warnings = [AnalysisWarning("data_quality", w) for w in quality.warnings]
    warnings += [AnalysisWarning("data_quality", w, "info") for w in quality.notes]
    _check_data_reaches(spec, engine, window)
    if basis is not None and basis.source == "data freshness":
        warnings.append(AnalysisWarning("data_freshness", f"the data ends before the experiment: "
                                 f"analysed as of {iso_utc(basis.as_of)} ({basis.describe()})"))
    units = units or engine.units(spec)
    warnings += [AnalysisWarning("data", w) for w in units.warnings]
    plan = build_aggregation(
        spec, window, group_by=_group_columns(spec, units),
        extra_quantities=_money_quantities(engine), landing=True,
        contact_channels=tuple(spec.channels) if engine.has("contacts") else ())
    if spec.design == "dose_response":
        from liftlab.analyses.pressure import pressure_plan

        plan = pressure_plan(spec, plan, engine)
    frame = engine.aggregate(plan, units, spec.id)
    cells = CellTable(frame, tuple(spec.channels), units.segments)
    _require_arms(spec, cells, units)
    srm = tuple(srm_check(ch, cells.arm_counts(ch), cfg.arms, spec.monitoring.srm_alpha)
                for ch, cfg in spec.channels.items())
    warnings += _health_warnings(spec, window, srm, plan.pre_window is not None)
    design = design_checks(spec, cells)
    warnings += [AnalysisWarning(c.check, c.message, c.status) for c in design if c.status != "ok"]
    effects, family = _adjusted(spec, cells, tuple(_effects(spec, cells, units)))
    warnings += _margin_warnings(effects) + _small_arm_warnings(effects)
    quantiles = (tuple(_quantiles(spec, engine, plan, units, warnings))
                 if any(m.quantile_levels for m in spec.metrics) else None)
    iv = None
    if spec.encouragement is not None:
        iv = _iv(spec, cells)
        warnings += _iv_warnings(iv)
    pressure = None
    if spec.design == "dose_response":
        from liftlab.analyses.pressure import pressure_section

        pressure = pressure_section(spec, cells, window, warnings)
    sections = Sections(
        multiple_testing=family, contribution=_contribution(spec, cells, warnings),
        landing=_landing(spec, engine, cells, plan.window, warnings), iv=iv,
        bayes=(_hierarchical(spec, cells, effects, warnings)
               if spec.analysis.bayes == "hierarchical" else None),
        sequential=(_sequential(spec, engine, units, as_of, warnings)
                    if spec.monitoring.sequential else None),
        quantiles=quantiles,
        confirmation=(confirmation_readout(spec, cells)
                      if spec.confirmation is not None else None),
        pressure=pressure)
    return AnalysisResult(spec, as_of, window, units.n, units.assigned_by, srm, effects,
                          tuple(warnings), cells, engine.label, sections, yaml_text,
                          data_checks=quality.checks, design=design, as_of_basis=basis)


@dataclass(frozen=True)
class AsOf:
    """The default analysis moment: the earlier of the experiment's end and the data's
    freshness (the hour after its last order or event)."""

    as_of: dt.datetime
    source: Literal["experiment end", "data freshness"]
    freshness: dt.datetime | None  # the last order/event timestamp

    def describe(self) -> str:
        last = ("no order or event" if self.freshness is None
                else f"last order/event {iso_utc(self.freshness)}")
        return f"default: {self.source}; {last}"


def data_freshness(engine: Engine) -> dt.datetime | None:
    """The newest order or event timestamp (computed by the engine)."""
    found = [ts for t in ("orders", "events") if engine.has(t)
             for ts in [engine.latest(t)] if ts is not None]
    return max(found).astimezone(dt.UTC) if found else None


def default_as_of(spec: Experiment, engine: Engine) -> AsOf:
    """``--as-of`` when not given: the experiment's end, or the data's freshness (the start
    of the hour after the last order/event) when the data stops earlier."""
    end = _end_utc(spec)
    last = data_freshness(engine)
    if last is None:
        return AsOf(end, "experiment end", None)
    if last >= end:
        return AsOf(end, "experiment end", last)
    fresh = last.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return AsOf(fresh, "data freshness", last) if fresh < end else AsOf(
        end, "experiment end", last)


def _require_arms(spec: Experiment, cells: CellTable, units: Units) -> None:
    """Every arm of every channel has units: an empty arm has no lift to report (a channel
    missing from the assignments, a misspelt arm, a holdout never drawn)."""
    problems = []
    for ch, cfg in spec.channels.items():
        counts = cells.arm_counts(ch)
        empty = [arm for arm in cfg.arms if not counts.get(arm)]
        if empty:
            source = ("the assignments table" if units.assigned_by == "table"
                      else "the hash assignment")
            problems.append(Problem(
                f"channel {ch!r} has no units in arm(s) {', '.join(map(repr, empty))} of "
                f"{units.n:,} units ({source})", table="assignments" if
                units.assigned_by == "table" else None, column="channel" if
                units.assigned_by == "table" else None,
                hint="check the channel and arm names against the assignments"
                if units.assigned_by == "table" else "the population is too small"))
    if problems:
        raise DataError(problems)


def _contribution(spec: Experiment, cells: CellTable,
                  warnings: list[AnalysisWarning]) -> Contribution | ProgrammeEffect | None:
    """Per-channel contribution, Shapley split and interactions (factorial designs), or the
    whole programme's effect against the blind zone (a global holdout)."""
    if sum_col("revenue") not in cells.frame.columns or spec.design == "dose_response":
        return None
    channels = tuple(spec.channels)
    if spec.design == "global_holdout":
        on = cells.where({ch: a for ch in channels
                          for a in spec.channels[ch].treatment_arms[:1]})
        off = cells.where({ch: HOLDOUT for ch in channels})
        try:
            programme = programme_effect(cells.arm_stats("revenue", on),
                                         cells.arm_stats("revenue", off), channels, "revenue",
                                         spec.alpha)
        except ValueError as exc:
            warnings.append(AnalysisWarning("contribution", f"no programme effect: {exc}", "info"))
            return None
        return programme
    if any(cfg.variants for cfg in spec.channels.values()) or len(channels) > 4:
        return None
    fcells = cells.factorial_cells("revenue", channels, {ch: "treatment" for ch in channels})
    shares = [1 - spec.channels[ch].holdout for ch in channels]
    try:
        return factorial_contribution(fcells, channels, shares, "revenue", spec.alpha)
    except ValueError as exc:
        warnings.append(AnalysisWarning("contribution", f"no contribution split: {exc}", "info"))
        return None


def _hierarchical(spec: Experiment, cells: CellTable, effects: tuple[Effect, ...],
                  warnings: list[AnalysisWarning]) -> HierarchicalSection:
    """Partial pooling of the revenue lift across channels and the first segment dimension."""
    from liftlab.stats.hierarchical import RevenueCell, fit_hierarchical

    seg = cells.segments[0] if cells.segments else None
    values = cells.segment_values(seg) if seg else ["all"]
    hcells = []
    for ch, cfg in spec.channels.items():
        arm = cfg.treatment_arms[0]
        for v in values:
            for a in (arm, HOLDOUT):
                rows = cells.where({ch: a}, {seg: v} if seg else None)
                n = int(rows["n"].sum())
                if n:
                    hcells.append(RevenueCell(ch, v, a != HOLDOUT, n,
                                       round(cells.total(sum_col(BUYERS), rows)),
                                       cells.total(sum_col("revenue"), rows),
                                       cells.total(prod_col("revenue", "revenue"), rows)))
    total = cells.frame
    margin_share = (cells.total(sum_col("margin"), total) / cells.total(sum_col("revenue"), total)
                    if sum_col("margin") in total.columns else 1.0)
    costs = {e.channel: (e.cost or 0.0, e.n_treatment, margin_share) for e in effects
             if e.segment is None and e.cost is not None and e.variant is None}
    a = spec.analysis
    result = fit_hierarchical(hcells, a.seed, a.draws, a.tune, a.chains,
                              target_accept=a.target_accept, costs=costs, sampler=a.sampler)
    warnings += [AnalysisWarning("convergence", w) for w in result.warnings]
    return HierarchicalSection(result, seg)


def _iv(spec: Experiment, cells: CellTable) -> IvSection | None:
    """Effect of adopting the encouraged channel: Wald = ITT / first stage (no CUPED)."""
    from liftlab.stats.causal import PairStats, wald_iv

    enc = spec.encouragement
    assert enc is not None
    y, d = enc.outcome_metric or spec.primary_metric, enc.adoption_metric
    ch, cfg = next(iter(spec.channels.items()))

    def pair(rows: pl.DataFrame) -> PairStats:
        return PairStats(int(rows["n"].sum()), cells.total(sum_col(y), rows),
                         cells.total(sum_col(d), rows), cells.total(prod_col(y, y), rows),
                         cells.total(prod_col(d, d), rows), cells.total(prod_col(y, d), rows))

    treated = pair(cells.where({ch: cfg.treatment_arms[0]}))
    control = pair(cells.where({ch: HOLDOUT}))
    if min(treated.n, control.n) < 2:
        return None
    return IvSection(wald_iv(treated, control, spec.id, spec.alpha), y, d)


def _iv_warnings(iv: IvSection | None) -> list[AnalysisWarning]:
    """The instrumented estimate's trouble, in the results and on the page, not only as a
    number that is missing or a flag deep in the JSON."""
    if iv is None:
        return [AnalysisWarning("iv", "no instrumented estimate: an arm has fewer than 2 units")]
    est = iv.estimate
    if not math.isfinite(est.effect):
        return [AnalysisWarning("iv", "no instrumented estimate: the encouragement did not change "
                               f"adoption (first stage {est.first_stage:.3g})")]
    if est.weak_instrument:
        return [AnalysisWarning("iv", f"weak instrument: first-stage F = {est.first_stage_f:.3g} "
                               "(below 10); the instrumented effect and its interval are "
                               "unreliable")]
    return []


def _landing(spec: Experiment, engine: Engine, cells: CellTable,
             window: tuple[dt.datetime, dt.datetime],
             warnings: list[AnalysisWarning]) -> tuple[LandingSection, ...]:
    """Where each channel's increment was bought, next to last-touch credit (polars engine)."""
    from liftlab.analyses.attribution import landing_by_purchase_channel

    pcs = sorted(c.split("@", 1)[1] for c in cells.frame.columns
                 if c.startswith("sum:revenue@"))
    if not pcs:
        return ()
    credit = None
    try:
        credit = engine.last_touch(spec, window)
    except EngineLimit as exc:
        warnings.append(AnalysisWarning("landing", str(exc), "info"))
    out: list[LandingSection] = []
    for ch, cfg in spec.channels.items():
        for arm in cfg.treatment_arms:
            t_rows, h_rows = cells.where({ch: arm}), cells.where({ch: cfg.control})
            if min(int(t_rows["n"].sum()), int(h_rows["n"].sum())) < 2:
                warnings.append(AnalysisWarning("landing", f"no landing for {ch}/{arm}: an arm has "
                                         "fewer than 2 units", "info"))
                continue
            try:
                landing = landing_by_purchase_channel(
                    {pc: cells.arm_stats(f"revenue@{pc}", t_rows) for pc in pcs},
                    {pc: cells.arm_stats(f"revenue@{pc}", h_rows) for pc in pcs},
                    cells.arm_stats("revenue", t_rows), cells.arm_stats("revenue", h_rows),
                    spec.alpha)
            except ValueError as exc:
                warnings.append(AnalysisWarning("landing", f"no landing for {ch}/{arm}: {exc}",
                                                "info"))
                continue
            out.append(LandingSection(ch, _variant(cfg, arm), landing, credit))
    return tuple(out)


def _check_data_reaches(spec: Experiment, engine: Engine,
                        window: tuple[dt.datetime, dt.datetime]) -> None:
    """Refuse a window that starts after the last row of every table the metrics read: its
    estimates would all be empty (NaN), e.g. dates typed for the wrong year."""
    tables = sorted({m.table for m in spec.metrics if m.table and engine.has(m.table)})
    latest = [ts for ts in map(engine.latest, tables) if ts is not None]
    last = max((ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC) for ts in latest), default=None)
    if tables and (last is None or last < window[0]):
        ends = f"ends at {last:%Y-%m-%d %H:%M} UTC" if last else "is empty"
        raise DataError([Problem(
            f"no data in the analysis window: the window starts at {iso_utc(window[0])} but the "
            f"data ({', '.join(tables)}) {ends}", table=tables[0], column=TS_COLUMN[tables[0]],
            hint=f"check the experiment's dates ({spec.start} to {spec.end})")])


def _sequential(spec: Experiment, engine: Engine, units: Units, as_of: dt.datetime,
                warnings: list[AnalysisWarning]) -> MonitorResult | None:
    """The always-valid readout (monitor.py) at the analysis date, for the results."""
    from liftlab.analyses.monitor import run_monitor

    try:
        hourly = engine.hourly(spec, units)
    except EngineLimit:
        warnings.append(AnalysisWarning("sequential", folder_only(
            engine, "the sequential readout"), "info"))
        return None
    try:
        result = run_monitor(spec, hourly, as_of)
    except DataError as exc:  # the analysis stands without the hourly readout
        warnings.append(AnalysisWarning("sequential", f"no sequential readout: {exc}", "warning"))
        return None
    if result.decision in ("harm", "srm"):
        warnings.append(AnalysisWarning(result.decision, f"sequential monitor: {result.decision} "
                                 f"since {result.decided_at:%Y-%m-%d %H:%M} UTC", "error"))
    return result


def _group_columns(spec: Experiment, units: Units) -> tuple[str, ...]:
    return tuple(arm_col(ch) for ch in spec.channels) + units.segments


def _money_quantities(engine: Engine) -> tuple[str, ...]:
    cols = engine.columns("orders")
    return tuple(q for q in ("revenue", "margin", "orders") if q == "orders" or q in cols)


def _health_warnings(spec: Experiment, window: tuple[dt.datetime, dt.datetime],
                     srm: tuple[SrmCheck, ...], has_pre: bool) -> list[AnalysisWarning]:
    out = []
    for check in srm:
        if not check.ok:
            out.append(AnalysisWarning("srm", check.describe(), "error"))
    end = _end_utc(spec)
    if window[1] < end:
        done = (window[1] - window[0]).total_seconds() / 86400
        total = (end - window[0]).total_seconds() / 86400
        out.append(AnalysisWarning("immature_window", f"the experiment is running: {done:.1f} of "
                            f"{total:.0f} days observed; late conversions are still to come",
                            "info"))
    if spec.covariates.pre_period_days and not has_pre:
        out.append(AnalysisWarning("cuped", "no pre-period data: CUPED was not applied"))
    return out


def _effects(spec: Experiment, cells: CellTable, units: Units) -> list[Effect]:
    segments: list[dict[str, str] | None] = [None]
    for s in units.segments:
        segments += [{s: v} for v in cells.segment_values(s)]
    cuped = spec.covariates.pre_period_days > 0
    out = []
    for ch, cfg in spec.channels.items():
        for arm in cfg.treatment_arms:
            variant = _variant(cfg, arm)
            for seg in segments:
                t_rows = cells.where({ch: arm}, seg)
                h_rows = cells.where({ch: cfg.control}, seg)
                n_t, n_h = int(t_rows["n"].sum()), int(h_rows["n"].sum())
                money = _money(spec, ch, cells, t_rows, h_rows) if seg is None else None
                for metric in spec.metrics:
                    lift = _lift(metric, cells, t_rows, h_rows, spec.alpha, cuped,
                                 _covariates(spec, metric, cuped))
                    total = None
                    if metric.kind != "ratio" and lift.ok:
                        total = lift.abs * n_t
                    mine = money if metric.name == spec.primary_metric else None
                    regression = lift.method in ("lin_regression", "delta_ratio_regression")
                    covariates = (tuple(_covariates(spec, metric, cuped) or ())
                                  if regression else None)
                    ni = (None if metric.margin is None else
                          _non_inferiority(metric, cells, t_rows, h_rows, spec.alpha))
                    out.append(Effect(ch, variant, metric, seg, n_t, n_h, lift, spec.alpha,
                                      total, None if mine is None else mine.roi.cost,
                                      _bayes(spec, metric, cells, t_rows, h_rows, lift), mine,
                                      covariates=covariates, non_inferiority=ni,
                                      winsorize_cap=cells.cap(metric.name)))
    return out


def _variant(cfg: Channel, arm: str) -> str | None:
    """The arm's name in an effect: None for a channel's single treatment arm."""
    return None if cfg.variants is None and cfg.dose_arms is None else arm


def _adjusted(spec: Experiment, cells: CellTable,
              effects: tuple[Effect, ...]) -> tuple[tuple[Effect, ...], Adjustment]:
    """Multiple-testing adjustment over the family the YAML names: adjusted p-values and each
    member's interval redrawn at the level that matches them (stats/multiple.py)."""
    mt = spec.analysis.multiple_testing
    members = [i for i, e in enumerate(effects) if _in_family(spec, e, mt.family)
               and not math.isnan(e.lift.p_value)]
    if mt.method == "none" or len(members) < 2:
        return effects, Adjustment(mt.method, mt.family, len(members), applied=False)
    pvalues = [effects[i].lift.p_value for i in members]
    adjusted = adjust_pvalues(pvalues, mt.method)
    levels = interval_alphas(pvalues, mt.method, spec.alpha)
    out = list(effects)
    cuped = spec.covariates.pre_period_days > 0
    for i, p_adj, level in zip(members, adjusted, levels, strict=True):
        e = effects[i]
        arm = e.variant or spec.channels[e.channel].treatment_arms[0]
        lift = _lift(e.metric, cells, cells.where({e.channel: arm}, e.segment),
                     cells.where({e.channel: spec.channels[e.channel].control}, e.segment),
                     level, cuped, _covariates(spec, e.metric, cuped))
        out[i] = dataclasses.replace(e, lift=lift, p_adjusted=p_adj, ci_alpha=level)
    return tuple(out), Adjustment(
        mt.method, mt.family, len(members), applied=True,
        description=f"{_METHOD_NAME[mt.method]} over {len(members)} comparisons; verdicts "
        "use the adjusted p-values and each interval is drawn at the level matching them")


_METHOD_NAME = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def _in_family(spec: Experiment, e: Effect, family: str) -> bool:
    if family == "all":
        return True
    if e.segment is not None:
        return False
    return family == "metrics" or e.metric.name == spec.primary_metric


def _bayes(spec: Experiment, metric: Metric, cells: CellTable, t_rows: pl.DataFrame,
           h_rows: pl.DataFrame, lift: Lift) -> BayesEffect | None:
    """Closed-form posterior with the YAML's prior (flat by default): Beta-Binomial for binary
    metrics, else normal on the same (CUPED or delta-method) estimate as the frequentist one."""
    prior = spec.analysis.prior if spec.analysis.prior.sd else None
    if lift.ok and metric.kind == "binary":
        return bayes.closed_form(cells.arm_stats(metric.name, t_rows),
                                 cells.arm_stats(metric.name, h_rows), "binary", prior,
                                 spec.alpha)
    if lift.ok:
        return bayes.from_lift(lift, prior, spec.alpha)
    return None


def _money(spec: Experiment, channel: str, cells: CellTable, t_rows: pl.DataFrame,
           h_rows: pl.DataFrame) -> Money:
    """Cost, incremental margin, ROI = (incremental margin - cost) / cost, and ROAS.

    Cost is that of the contacts actually sent to the channel's treated units: their summed
    ``cost``, else cost_per_contact x contacts sent. A channel absent from the contacts table
    has no known cost (ROI None, with the reason); without a contacts table every treated unit
    is taken as contacted once. Margin falls back to revenue when orders has no margin.
    A quantity that is also a metric with a pre-period (CUPED) gets the metric's own
    CUPED-adjusted estimate, so the money table and the scorecard agree.
    """
    n_t = int(t_rows["n"].sum())
    value = "margin" if sum_col("margin") in cells.frame.columns else "revenue"
    margin = _money_lift(spec, cells, value, t_rows, h_rows)
    revenue = _money_lift(spec, cells, "revenue", t_rows, h_rows)
    per_contact = spec.channels[channel].cost_per_contact
    note = None
    if sum_col(f"contacts@{channel}") in cells.frame.columns:
        contacts = round(cells.total(sum_col(f"contacts@{channel}"), t_rows))
        summed = cells.total(sum_col(f"cost@{channel}"), t_rows)
        cost, basis = ((summed, "contacts.cost") if summed > 0 else
                       (per_contact * contacts, "cost_per_contact x contacts sent"))
        if not contacts:
            note = (f"channel {channel!r} has no contacts to its treated units in the "
                    "contacts table: its cost is unknown, ROI is undefined")
    else:
        contacts = n_t
        cost, basis = per_contact * n_t, "cost_per_contact x treated units (no contacts table)"
    roi = channel_roi(margin, revenue, n_t, cost)
    if note is not None:
        roi = dataclasses.replace(roi, note=note)
    return Money(roi, value, basis, contacts)


def _money_lift(spec: Experiment, cells: CellTable, quantity: str, t_rows: pl.DataFrame,
                h_rows: pl.DataFrame) -> Lift:
    """A money quantity's lift: CUPED-adjusted when its pre-period was measured."""
    cuped = (spec.covariates.pre_period_days > 0
             and sum_col(pre_name(quantity)) in cells.frame.columns)
    return frequentist.welch(cells.arm_stats(quantity, t_rows, cuped),
                             cells.arm_stats(quantity, h_rows, cuped), spec.alpha, cuped)


def _lift(metric: Metric, cells: CellTable, t_rows: pl.DataFrame, h_rows: pl.DataFrame,
          alpha: float, cuped: bool, covariates: tuple[str, ...] | None = None) -> Lift:
    """``covariates``: regression adjustment on these measures (stats/regression.py); a
    binary metric takes it only where normal theory holds, else its small-count route."""
    if covariates is not None:
        adjusted = _regression_lift(metric, cells, t_rows, h_rows, alpha, covariates)
        if adjusted is not None:
            return adjusted
        cuped = False
    if metric.kind == "ratio":
        assert metric.numerator and metric.denominator
        return frequentist.ratio(cells.ratio_stats(metric.numerator, metric.denominator, t_rows),
                                 cells.ratio_stats(metric.numerator, metric.denominator, h_rows),
                                 alpha)
    if metric.kind == "binary":
        return binary(cells.arm_stats(metric.name, t_rows, cuped),
                      cells.arm_stats(metric.name, h_rows, cuped), alpha, cuped)
    return frequentist.welch(cells.arm_stats(metric.name, t_rows, cuped),
                             cells.arm_stats(metric.name, h_rows, cuped), alpha, cuped,
                             nonnegative=metric.kind == "count")


def _quantiles(spec: Experiment, engine: Engine, plan: AggregationPlan, units: Units,
               warnings: list[AnalysisWarning]) -> list[dict[str, Any]]:
    """Quantile treatment effects (stats/quantiles.py) from the engine's histograms per arm
    (whole population)."""
    metrics = [m for m in spec.metrics if m.quantile_levels]
    table = engine.histograms(plan.sketch_plan([m.name for m in metrics]), units, spec.id)
    out: list[dict[str, Any]] = []
    for ch, cfg in spec.channels.items():
        for arm in cfg.treatment_arms:
            for metric in metrics:
                rows = table.filter(pl.col("measure") == metric.name)
                hists = [_histogram(rows.filter(pl.col(arm_col(ch)) == a))
                         for a in (arm, HOLDOUT)]
                for q in metric.quantile_levels:
                    try:
                        effect = quantile_effect(*hists, q, spec.alpha)
                    except ValueError as exc:
                        warnings.append(AnalysisWarning("quantiles", f"no {q:g}-quantile effect of "
                                                 f"{metric.name} on {ch}/{arm}: {exc}", "info"))
                        continue
                    out.append({"channel": ch, "variant": None if cfg.variants is None else arm,
                                "metric": metric.name, **effect.to_dict()})
    return out


def _histogram(rows: pl.DataFrame) -> Histogram:
    counts = rows.group_by("bin").agg(pl.col("n").sum())
    return Histogram.of(counts["bin"].to_numpy(), counts["n"].to_numpy())


SMALL_ADJUSTED_ARM = 500  # units: below, robust intervals under-cover on skewed covariates


def _small_arm_warnings(effects: tuple[Effect, ...]) -> list[AnalysisWarning]:
    """Regression adjustment's robust interval (like statsmodels' HC1) covered 0.92 at 100
    units per arm with skewed covariates and noise growing with them, 0.94 at 500
    (tests/test_regression_adjustment.py): small arms are flagged."""
    small = [e for e in effects if e.lift.method in ("lin_regression", "delta_ratio_regression")
             and min(e.n_treatment, e.n_holdout) < SMALL_ADJUSTED_ARM]
    if not small:
        return []
    return [AnalysisWarning("regression_adjustment", f"{len(small)} regression-adjusted "
                     f"comparison(s) have an arm of fewer than {SMALL_ADJUSTED_ARM} units (e.g. "
                     f"{small[0].metric.name} on {small[0].channel}"
                     f"{'' if small[0].segment is None else ', ' + _segment_text(small[0])}): "
                     "their intervals may be too narrow on skewed covariates", "info")]


def _segment_text(e: Effect) -> str:
    return ", ".join(f"{k}={v}" for k, v in (e.segment or {}).items())


def _margin_warnings(effects: tuple[Effect, ...]) -> list[AnalysisWarning]:
    """A guardrail whose harm is not shown to stay within its margin (whole population)."""
    out = []
    for e in effects:
        ni = e.non_inferiority
        if ni is None or e.segment is not None or ni.passed:
            continue
        arm = f"{e.channel}/{e.variant}" if e.variant else e.channel
        why = ni.note or f"p = {ni.p_value:.3g}"
        out.append(AnalysisWarning("non_inferiority", f"guardrail {e.metric.name} on {arm}: harm "
                            f"is not shown to stay within its {ni.margin:.0%} margin ({why})"))
    return out


def _non_inferiority(metric: Metric, cells: CellTable, t_rows: pl.DataFrame,
                     h_rows: pl.DataFrame, alpha: float) -> NonInferiority:
    """A guardrail's harm tested against its margin (stats/noninferiority.py)."""
    assert metric.margin is not None
    events = None
    if metric.kind == "ratio":
        assert metric.numerator and metric.denominator
        rt = cells.ratio_stats(metric.numerator, metric.denominator, t_rows)
        rh = cells.ratio_stats(metric.numerator, metric.denominator, h_rows)
        arms = [(rt.mean, rt.mean_variance), (rh.mean, rh.mean_variance)]
    else:
        at, ah = cells.arm_stats(metric.name, t_rows), cells.arm_stats(metric.name, h_rows)
        if metric.kind == "binary":
            arms = [(a.mean, a.mean * (1 - a.mean) / a.n if a.n else math.nan)
                    for a in (at, ah)]
            pooled = (at.sum + ah.sum) / max(at.n + ah.n, 1)
            events = min(at.n, ah.n) * min(pooled, 1 - pooled)
        else:
            arms = [(a.mean, a.variance / a.n if a.n else math.nan) for a in (at, ah)]
    (mt, vt), (mh, vh) = arms
    return non_inferiority(mt, vt, mh, vh, metric.margin, metric.desired_direction, alpha,
                           events)


def _regression_lift(metric: Metric, cells: CellTable, t_rows: pl.DataFrame,
                     h_rows: pl.DataFrame, alpha: float,
                     covariates: tuple[str, ...]) -> Lift | None:
    if metric.kind == "ratio":
        assert metric.numerator and metric.denominator
        names = [metric.numerator, metric.denominator, *covariates]
        return regression.lin_ratio(cells.moments(names, t_rows), cells.moments(names, h_rows),
                                    metric.numerator, metric.denominator, covariates, alpha)
    if metric.kind == "binary" and not normal_theory(cells.arm_stats(metric.name, t_rows),
                                                     cells.arm_stats(metric.name, h_rows)):
        return None
    names = [metric.name, *covariates]
    return regression.lin(cells.moments(names, t_rows), cells.moments(names, h_rows),
                          metric.name, covariates, alpha, nonnegative=metric.kind != "mean")


def _covariates(spec: Experiment, metric: Metric, has_pre: bool) -> tuple[str, ...] | None:
    """The metric's covariates under regression adjustment, None without it."""
    return covariates_of(spec, metric, has_pre) if spec.covariates.regression else None


def _end_utc(spec: Experiment) -> dt.datetime:
    return window_bounds(spec, None)[1]
