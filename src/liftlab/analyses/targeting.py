"""Targeting: which customer gets which channel (or nothing), learned from a randomised
experiment and evaluated on it honestly (docs/targeting.md).

From engine to typed result: the engine gives one row per customer (arms, segments, the
outcome in the window, the outcome in the pre-period and the customers table's attributes);
per channel, a meta-learner predicts each customer's effect of each arm out of fold
(``stats/uplift.py``); the Qini curves rank those predictions on the randomised customers
(``stats/qini.py``); the budgeted policy and its value come from ``stats/policy.py``.

The options a customer can receive are the treatment arms of each channel and, when
``max_channels_per_customer`` allows, combinations of arms of different channels, whose effects
are taken to add up (the factorial interaction is not modelled; a warning says so).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from liftlab.analyses.experiment import default_as_of
from liftlab.core.errors import DataError, Problem, UserError
from liftlab.core.extras import require
from liftlab.engines.base import Engine
from liftlab.engines.units import window_bounds
from liftlab.spec.aggregation import arm_col, build_aggregation, pre_name
from liftlab.spec.models import HOLDOUT, Covariates, Experiment
from liftlab.stats.policy import Estimate, PolicyValue, curve, evaluate, everyone, hull_path
from liftlab.stats.qini import CalibrationBin, Interval, QiniCurve, calibration, qini_curve
from liftlab.stats.uplift import UpliftData, aipw_scores, cross_fit

MAX_CATEGORIES = 250  # gradient boosting takes at most 255 categories per feature
MAX_OPTIONS = 64
TOP_FEATURES = 8


@dataclass(frozen=True)
class Action:
    """One treatment arm of one channel, with its uplift model's honest evaluation."""

    channel: str
    arm: str
    label: str
    cost: float
    n_treated: int
    n_holdout: int
    qini: QiniCurve
    calibration: tuple[CalibrationBin, ...]
    drivers: tuple[tuple[str, float], ...]  # features that drive the predicted effect


@dataclass(frozen=True)
class Option:
    """What a customer can receive: one arm per channel in ``arms`` (and its cost)."""

    label: str
    arms: tuple[tuple[str, str], ...]
    cost: float


@dataclass(frozen=True)
class TargetingResult:
    spec: Experiment
    window: tuple[dt.datetime, dt.datetime]
    metric: str
    value_per_unit: float
    features: tuple[str, ...]
    n: int
    actions: tuple[Action, ...]
    options: tuple[Option, ...]
    budget_unit: str  # "cost" (the channels' cost_per_contact) or "contacts"
    curve_budgets: tuple[float, ...]
    curve_values: tuple[Estimate, ...]
    policy: PolicyValue
    everyone: tuple[Estimate, ...]  # per option: sending it to every customer
    default: int  # the option business as usual sends to everyone
    over_default: Estimate  # the policy minus business as usual, paired
    assignment: pl.DataFrame
    appetence: pl.DataFrame
    warnings: tuple[str, ...]
    alpha: float

    def summary(self) -> str:
        p, unit = self.policy, self._unit()
        lines = [f"{self.spec.id}: targeting on {self.metric} x {self.value_per_unit:g} "
                 f"(value per unit), {self.n:,} customers, {len(self.features)} features"]
        for a in self.actions:
            q = a.qini
            lines.append(f"  {a.label}: average effect {q.ate.estimate:+.4g} "
                         f"[{q.ate.low:+.4g}, {q.ate.high:+.4g}], Qini coefficient "
                         f"{q.qini_coefficient.estimate:+.4g} [{q.qini_coefficient.low:+.4g}, "
                         f"{q.qini_coefficient.high:+.4g}]")
        sent = ", ".join(f"{o.label} {c:,}" for o, c in zip(self.options, p.counts,
                                                             strict=True) if c)
        full = self.curve_budgets[-1] if self.curve_budgets else 0.0
        unbound = " (every send predicted to pay)" if p.spend < p.budget and p.spend >= full \
            else ""
        lines.append(f"  policy at budget {p.budget:,.2f} {unit}: spends {p.spend:,.2f}{unbound}, "
                     f"sends {sent or 'nothing'}; incremental value {p.value.total:+,.2f} "
                     f"[{p.value.low:+,.2f}, {p.value.high:+,.2f}]")
        lines.append(f"  vs random targeting at the same budget: {p.over_random.total:+,.2f} "
                     f"[{p.over_random.low:+,.2f}, {p.over_random.high:+,.2f}]; vs "
                     f"{self.options[self.default].label} to everyone: "
                     f"{self.over_default.total:+,.2f} [{self.over_default.low:+,.2f}, "
                     f"{self.over_default.high:+,.2f}]")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _unit(self) -> str:
        return "in contact cost" if self.budget_unit == "cost" else "contacts"

    def to_dict(self) -> dict[str, Any]:
        p = self.policy
        return {
            "schema_version": 1, "experiment_id": self.spec.id, "metric": self.metric,
            "value_per_unit": self.value_per_unit, "alpha": self.alpha,
            "window": [_iso(self.window[0]), _iso(self.window[1])], "n_customers": self.n,
            "features": list(self.features), "budget_unit": self.budget_unit,
            "channels": [_action_dict(a) for a in self.actions],
            "options": [{"option": o.label, "arms": [list(x) for x in o.arms],
                         "cost": o.cost, "everyone": _estimate(e)}
                        for o, e in zip(self.options, self.everyone, strict=True)],
            "curve": [{"budget": b, **_estimate(e)}
                      for b, e in zip(self.curve_budgets, self.curve_values, strict=True)],
            "policy": {"budget": p.budget, "spend": p.spend,
                       "customers": {o.label: c for o, c in zip(self.options, p.counts,
                                                                strict=True)},
                       "value": _estimate(p.value), "random": _estimate(p.random),
                       "over_random": _estimate(p.over_random),
                       "default": self.options[self.default].label,
                       "over_default": _estimate(self.over_default)},
            "appetence": self.appetence.to_dicts(), "warnings": list(self.warnings),
        }


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _interval(i: Interval) -> dict[str, Any]:
    return {"estimate": i.estimate, "ci": [i.low, i.high]}


def _estimate(e: Estimate) -> dict[str, Any]:
    return {"total": e.total, "ci": [e.low, e.high], "se": e.se}


def _action_dict(a: Action) -> dict[str, Any]:
    q = a.qini
    return {
        "channel": a.channel, "arm": a.arm, "label": a.label, "cost_per_contact": a.cost,
        "n_treated": a.n_treated, "n_holdout": a.n_holdout,
        "ate": {**_interval(q.ate), "p_value": q.ate_p_value},
        "auuc": _interval(q.auuc), "qini_coefficient": _interval(q.qini_coefficient),
        "uplift_at_top": [{"share": s, **_interval(i)} for s, i in q.top],
        "qini_curve": [{"share": f, "qini": v, "low": lo, "high": hi, "uplift": u,
                        "uplift_low": ul, "uplift_high": uh}
                       for f, v, lo, hi, u, ul, uh in zip(
                           q.phi, q.qini, q.qini_low, q.qini_high, q.uplift, q.uplift_low,
                           q.uplift_high, strict=True)],
        "calibration": [{"predicted": c.predicted, "n": c.n, **_interval(c.observed)}
                        for c in a.calibration],
        "drivers": [{"feature": f, "importance": v} for f, v in a.drivers],
    }


def target(spec: Experiment, engine: Engine, budget: float | None = None,
           default: str | None = None, as_of: dt.datetime | None = None,
           seed: int = 0) -> TargetingResult:
    """Learn, evaluate and budget the targeting policy of ``spec`` on ``engine``'s data."""
    require("sklearn")
    cfg = spec.targeting
    metric = spec.metric(cfg.metric or spec.primary_metric)
    if metric.kind == "ratio":
        raise UserError(f"targeting needs a per-customer outcome and {metric.name!r} is a "
                        "ratio metric: set targeting.metric to a mean, count or binary metric")
    moment = as_of or default_as_of(spec, engine).as_of
    window = window_bounds(spec, moment)
    if window[1] <= window[0]:
        raise UserError(f"experiment {spec.id!r} starts on {spec.start}: nothing to learn from")
    units = engine.units(spec)
    attributes = _attributes(spec, engine, tuple(units.segments))
    with_pre = spec.model_copy(update={"covariates": Covariates(
        pre_period_days=cfg.pre_period_days)})
    plan = build_aggregation(with_pre, window, group_by=())
    rows = engine.unit_rows(plan, units, spec.id, attributes)
    arms = [arm_col(ch) for ch in spec.channels]
    # in the units' id order: the folds, and so the predictions, do not depend on the order
    # in which the engine returned the rows (reruns give the same policy)
    complete = rows.filter(pl.all_horizontal(pl.col(a).is_not_null() for a in arms)).sort(
        spec.unit)
    warnings = list(units.warnings)
    if complete.height < rows.height:
        warnings.append(f"{rows.height - complete.height:,} customers without an arm in every "
                        "channel are left out")
    if complete.height < 400:
        raise UserError(f"targeting needs at least 400 customers in every channel's arms; "
                        f"{spec.id!r} has {complete.height:,}")
    pre_features = tuple(pre_name(m.name) for m in spec.metrics
                         if m.kind != "ratio" and cfg.pre_period_days > 0)
    names = (*pre_features, *attributes, *units.segments)
    x, categorical = _encode(complete, names, window[0])
    y = complete[metric.name].cast(pl.Float64).to_numpy()
    actions, taus, scores = [], [], []
    for k, (ch, channel) in enumerate(spec.channels.items()):
        labels = complete[arm_col(ch)].cast(pl.String).to_numpy()
        order = [HOLDOUT, *channel.treatment_arms]
        arm = np.select([labels == a for a in order], list(range(len(order))), default=-1)
        data = UpliftData(x, categorical, y, arm, tuple(channel.arms[a] for a in order))
        fit = cross_fit(data, cfg.learner, cfg.folds, seed + 7919 * k)
        taus.append(fit.tau * cfg.value_per_unit)
        scores.append(aipw_scores(y, arm, fit.mu, data.shares) * cfg.value_per_unit)
        for j, a in enumerate(channel.treatment_arms):
            pick = (arm == 0) | (arm == j + 1)
            treated = arm[pick] == j + 1
            label = ch if channel.variants is None else f"{ch}/{a}"
            actions.append(Action(
                ch, a, label, channel.cost_per_contact, int(treated.sum()),
                int((~treated).sum()),
                qini_curve(fit.tau[pick, j], y[pick], treated, spec.alpha, seed=seed + j),
                calibration(fit.tau[pick, j], y[pick], treated, spec.alpha),
                _drivers(x, fit.tau[:, j], names, seed)))
    options = _options(spec, actions, cfg.max_channels_per_customer)
    if cfg.max_channels_per_customer > 1 and len(spec.channels) > 1:
        warnings.append("options that combine channels take their effects as adding up: the "
                        "interaction between channels is not modelled")
    gain_single = np.concatenate(taus, axis=1)
    score_single = np.concatenate(scores, axis=1)
    index = {(a.channel, a.arm): i for i, a in enumerate(actions)}
    combine = np.zeros((len(actions), len(options)))
    for o, opt in enumerate(options):
        for pair in opt.arms:
            combine[index[pair], o] = 1.0
    money = np.array([o.cost for o in options])
    spends, budget_unit = money, "cost"
    if not (money > 0).any():  # no channel has a cost: the budget counts contacts
        spends, budget_unit = combine.sum(axis=0), "contacts"
        warnings.append("no channel has a cost_per_contact: the budget counts contacts")
    gain = gain_single @ combine - money[None, :]
    value = score_single @ combine - money[None, :]
    path = hull_path(gain, spends, value)
    full = float(path.spend[-1]) if path.spend.size else 0.0
    policy = evaluate(path, value, full if budget is None else budget, spec.alpha)
    budgets, values = curve(path, alpha=spec.alpha)
    all_of = everyone(value, spec.alpha)
    chosen = _default(options, all_of, default)
    steps = path.steps_within(policy.budget)
    over_default = Estimate.of_mean(path.per_customer(steps) - value[:, chosen], path.n,
                                    spec.alpha)
    assignment = _assignment(complete, spec.unit, options, path.allocation(steps), gain,
                             spends)
    appetence = _appetence(complete, units.segments, actions, gain_single, y,
                           cfg.value_per_unit, spec.alpha)
    return TargetingResult(spec, window, metric.name, cfg.value_per_unit, names,
                           complete.height, tuple(actions), tuple(options), budget_unit,
                           tuple(float(b) for b in budgets), values, policy, all_of, chosen,
                           over_default, assignment, appetence, tuple(warnings), spec.alpha)


def _attributes(spec: Experiment, engine: Engine, segments: tuple[str, ...]) -> tuple[str, ...]:
    """The customers table's columns used as features (the YAML's list, or every column but
    the unit id); the segments come with the units."""
    if not engine.has("customers"):
        if spec.targeting.features:
            raise DataError([Problem("targeting.features needs the customers table, which the "
                                     "data does not have", table="customers")])
        return ()
    columns = engine.columns("customers")
    wanted = spec.targeting.features
    if wanted is None:
        return tuple(c for c in columns if c != spec.unit and c not in segments)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError([Problem(f"targeting.features names {', '.join(map(repr, missing))}, "
                                 "not columns of the customers table", table="customers",
                                 hint=f"its columns are {', '.join(columns)}")])
    return tuple(c for c in wanted if c != spec.unit and c not in segments)


def _encode(frame: pl.DataFrame, names: tuple[str, ...],
            start: dt.datetime) -> tuple[np.ndarray, tuple[bool, ...]]:
    """Numbers as numbers (nulls as NaN), dates as days before the start, text as category
    codes (the most frequent ``MAX_CATEGORIES`` values; the rest share one code)."""
    columns, categorical = [], []
    for name in names:
        s = frame[name]
        if s.dtype.is_temporal():
            ts = s.cast(pl.Datetime("us")).dt.replace_time_zone(None) if isinstance(
                s.dtype, pl.Datetime) else s.cast(pl.Datetime("us"))
            naive_start = start.astimezone(dt.UTC).replace(tzinfo=None)
            days = (pl.lit(naive_start) - ts).dt.total_seconds() / 86400
            columns.append(frame.select(days.cast(pl.Float64)).to_series().to_numpy())
            categorical.append(False)
        elif s.dtype.is_numeric() or s.dtype == pl.Boolean:
            columns.append(s.cast(pl.Float64).fill_nan(None).to_numpy())
            categorical.append(False)
        else:
            text = s.cast(pl.String)
            top = text.drop_nulls().value_counts(sort=True).head(MAX_CATEGORIES)[name]
            codes = {v: float(i) for i, v in enumerate(top.to_list())}
            other = float(len(codes))
            columns.append(np.array([math.nan if v is None else codes.get(v, other)
                                     for v in text.to_list()]))
            categorical.append(True)
    return np.column_stack(columns) if columns else np.zeros((frame.height, 0)), tuple(
        categorical)


def _drivers(x: np.ndarray, tau: np.ndarray, names: tuple[str, ...],
             seed: int) -> tuple[tuple[str, float], ...]:
    """The features that explain the predicted effects: impurity importances of a shallow
    surrogate tree fitted to the out-of-fold predictions (shares that add up to 1)."""
    from sklearn.tree import DecisionTreeRegressor

    if x.shape[1] == 0 or not np.isfinite(tau).all() or np.ptp(tau) == 0:
        return ()
    tree = DecisionTreeRegressor(max_depth=4, min_samples_leaf=200, random_state=seed)
    tree.fit(x, tau)
    ranked = sorted(zip(names, tree.feature_importances_, strict=True), key=lambda p: -p[1])
    return tuple((n, float(v)) for n, v in ranked[:TOP_FEATURES] if v > 0)


def _options(spec: Experiment, actions: list[Action], cap: int) -> list[Option]:
    """Every arm alone, and combinations of arms of up to ``cap`` different channels."""
    by_channel: dict[str, list[Action]] = {}
    for a in actions:
        by_channel.setdefault(a.channel, []).append(a)
    out: list[Option] = []
    for size in range(1, min(cap, len(by_channel)) + 1):
        for channels in itertools.combinations(by_channel, size):
            for combo in itertools.product(*(by_channel[c] for c in channels)):
                out.append(Option(" + ".join(a.label for a in combo),
                                  tuple((a.channel, a.arm) for a in combo),
                                  sum(a.cost for a in combo)))
    if len(out) > MAX_OPTIONS:
        raise UserError(f"targeting.max_channels_per_customer = {cap} gives {len(out)} "
                        f"combinations of arms (at most {MAX_OPTIONS}); lower it")
    return out


def _default(options: list[Option], all_of: tuple[Estimate, ...], name: str | None) -> int:
    """Business as usual: the named option, else the one worth most sent to everyone."""
    if name is None:
        return int(np.argmax([e.total for e in all_of]))
    labels = [o.label for o in options]
    if name not in labels:
        raise UserError(f"--default: {name!r} is not an option; choose one of: "
                        f"{', '.join(labels)}")
    return labels.index(name)


def _assignment(frame: pl.DataFrame, unit: str, options: list[Option], alloc: np.ndarray,
                gain: np.ndarray, costs: np.ndarray) -> pl.DataFrame:
    """Who gets what: the option (null: nothing), its predicted net gain and what it takes
    of the budget."""
    chosen = alloc >= 0
    pick = np.maximum(alloc, 0)
    labels = np.array([o.label for o in options], dtype=object)[pick]
    rows = np.arange(alloc.size)
    return pl.DataFrame({
        unit: frame[unit],
        "option": pl.Series([lab if c else None for lab, c in zip(labels, chosen,
                                                                  strict=True)],
                            dtype=pl.String),
        "predicted_gain": np.where(chosen, gain[rows, pick], 0.0),
        "budget_used": np.where(chosen, costs[pick], 0.0)})


def _appetence(frame: pl.DataFrame, segments: tuple[str, ...], actions: list[Action],
               gain: np.ndarray, y: np.ndarray, per_unit: float, alpha: float) -> pl.DataFrame:
    """Per segment value and arm: the mean predicted effect and the observed difference in
    means (Welch interval) among the segment's customers, both in value units (before the
    contact cost)."""
    from liftlab.stats.frequentist import welch
    from liftlab.stats.suffstats import ArmStats

    records = []
    arms = {ch: frame[arm_col(ch)].cast(pl.String).to_numpy() for ch in {a.channel
                                                                       for a in actions}}
    for seg in segments:
        values = frame[seg].cast(pl.String).fill_null("(missing)").to_numpy()
        for value in sorted(set(values.tolist())):
            inside = values == value
            for j, a in enumerate(actions):
                arm = arms[a.channel]
                t, h = inside & (arm == a.arm), inside & (arm == HOLDOUT)
                lift = welch(ArmStats.from_values(y[t]), ArmStats.from_values(y[h]), alpha)
                records.append({"segment": seg, "value": value, "option": a.label,
                                "n": int(inside.sum()),
                                "predicted_effect": float(gain[inside, j].mean()),
                                "observed_effect": per_unit * lift.abs,
                                "observed_low": per_unit * lift.abs_ci[0],
                                "observed_high": per_unit * lift.abs_ci[1]})
    schema = {"segment": pl.String, "value": pl.String, "option": pl.String, "n": pl.Int64,
              "predicted_effect": pl.Float64, "observed_effect": pl.Float64,
              "observed_low": pl.Float64, "observed_high": pl.Float64}
    return pl.DataFrame(records, schema=schema)



def confirmation_yaml(result: TargetingResult, start: dt.date, end: dt.date,
                      holdout: float = 0.1) -> str:
    """The definition of the experiment that confirms the policy: customers randomised to the
    policy, to business as usual (the default option to everyone) and to a holdout, with the
    prediction that ``analyze`` will hold the realised gain against."""
    import yaml

    spec, n = result.spec, result.n
    gain = result.over_default
    default = result.options[result.default]
    share = round((1.0 - holdout) / 2, 6)
    metric = spec.metric(result.metric).model_dump(mode="json", exclude_defaults=True)
    definition = {
        "schema_version": 1, "id": f"{spec.id}-targeting-confirmation"[:80],
        "name": f"Confirmation of the targeting policy learned on {spec.id}",
        "start": start.isoformat(), "end": end.isoformat(), "timezone": spec.timezone,
        "unit": spec.unit,
        "channels": {"targeting": {"holdout": holdout,
                                   "variants": {"policy": share, "bau": share}}},
        "metrics": [metric], "primary_metric": result.metric,
        "confirmation": {
            "source": spec.id, "channel": "targeting", "bau": default.label,
            "metric": result.metric,
            "value_per_unit": result.value_per_unit,
            "predicted_gain": gain.total / n,
            "predicted_gain_ci": [gain.low / n, gain.high / n],
            "cost_per_customer": {
                "policy": _money_spent(result) / n,
                "bau": default.cost}},
        "alpha": spec.alpha,
    }
    header = (f"# Written by liftlab target from {spec.id}: the policy (policy.parquet) against "
              f"business as usual ({default.label} to everyone), with a holdout.\n"
              "# Assign the customers with `liftlab assign`, run the campaign, then "
              "`liftlab analyze` this file.\n")
    return header + yaml.safe_dump(definition, sort_keys=False, allow_unicode=True)


def _money_spent(result: TargetingResult) -> float:
    """The policy's contact cost in money (its budget counts contacts when nothing costs)."""
    return sum(o.cost * c for o, c in zip(result.options, result.policy.counts, strict=True))
