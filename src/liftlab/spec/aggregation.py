"""One metric definition for every engine.

An experiment's metrics become a small, engine-neutral :class:`AggregationPlan`: which
per-unit measures to compute (an aggregate of one table's rows in a time window), and which
sums and cross-products of them to accumulate per group. The polars engine executes it today;
Spark and SQL engines execute the very same plan, so every engine ends in the same table of
sufficient statistics (see ``cells.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from liftlab.spec.models import Experiment, Metric

# "value" and "after" read the customers table (one row per unit, no time window): the
# column's value as a number, and 1 when the column's date is after the pre-period's first
# day (a customer without a full pre-period history: the missing indicator).
Aggregate = Literal["sum", "count", "any", "value", "after"]
Period = Literal["window", "pre"]
PRE = "|pre"
BUYERS = "buyers|any"
PURCHASE_CHANNELS_MAX = 12  # beyond this many purchase channels no landing split is made


@dataclass(frozen=True)
class Measure:
    """A per-unit quantity: ``agg`` over the unit's rows of ``table`` in ``period``.

    ``event`` and ``channel`` keep only rows whose ``event`` / ``channel`` column equals them
    (for orders, ``channel`` is the purchase channel; for contacts, the contacting channel).
    A measure of the ``customers`` table (``value``, ``after``) has no period. A contacts
    table with an ``experiment_id`` column gives each measure the experiment's own rows, but
    an ``every_experiment`` measure all of them (every channel's pressure on a customer).
    """

    name: str
    table: str
    agg: Aggregate
    value: str | None = None
    event: str | None = None
    channel: str | None = None
    period: Period = "window"
    winsorize: float | None = None
    every_experiment: bool = False


@dataclass(frozen=True)
class AggregationPlan:
    """Everything an engine needs to compute the sufficient statistics of an experiment.

    ``landing`` asks the engine to add the revenue landed in each purchase channel of the
    window (``with_landing``): the channels are found in the data, by a query of their own or
    during the aggregation pass itself.
    """

    unit: str
    window: tuple[dt.datetime, dt.datetime]
    pre_window: tuple[dt.datetime, dt.datetime] | None
    measures: tuple[Measure, ...]
    products: tuple[tuple[str, str], ...]
    group_by: tuple[str, ...]
    landing: bool = False

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(sorted({m.table for m in self.measures}))

    def measures_of(self, table: str) -> tuple[Measure, ...]:
        return tuple(m for m in self.measures if m.table == table)

    def sketch_plan(self, names: Sequence[str]) -> AggregationPlan:
        """The plan an engine's ``histograms`` runs: the measures ``names`` per unit, binned
        (``sketch_bin``) and counted per arm (segments left out)."""
        return dataclasses.replace(
            self, measures=tuple(m for m in self.measures if m.name in names), products=(),
            group_by=tuple(k for k in self.group_by if k.startswith("arm:")), landing=False)

    def with_landing(self, channels: Sequence[str]) -> AggregationPlan:
        """The plan with ``revenue@<channel>`` for the purchase channels seen in the window,
        when there are between 2 and ``PURCHASE_CHANNELS_MAX`` of them (else none)."""
        chosen = sorted(channels) if 1 < len(channels) <= PURCHASE_CHANNELS_MAX else []
        names = [f"revenue@{ch}" for ch in chosen]
        return dataclasses.replace(
            self, landing=False,
            measures=self.measures + tuple(
                Measure(name, "orders", "sum", value="revenue", channel=ch)
                for name, ch in zip(names, chosen, strict=True)),
            products=self.products + tuple((name, name) for name in names))


def sum_col(measure: str) -> str:
    return f"sum:{measure}"


def prod_col(a: str, b: str) -> str:
    return f"prod:{a}:{b}"


def cap_col(measure: str) -> str:
    """The column holding the cap a winsorised measure was clipped at: its quantile over the
    pooled units (the same value on every row of the table of sufficient statistics)."""
    return f"cap:{measure}"


def winsorised(plan: AggregationPlan) -> tuple[Measure, ...]:
    """The plan's winsorised measures, in the order their ``cap_col`` columns come."""
    return tuple(m for m in plan.measures if m.winsorize is not None)


def pre_name(measure: str) -> str:
    return f"{measure}{PRE}"


def contacted(channel: str) -> str:
    """The measure: 1 when the unit got at least one contact of ``channel`` in the window."""
    return f"contacted@{channel}"


def arm_col(channel: str) -> str:
    return f"arm:{channel}"


def builtin_measure(name: str) -> Measure:
    """The quantities a ratio metric may use without declaring them: orders, revenue, margin."""
    if name == "orders":
        return Measure("orders", "orders", "count")
    return Measure(name, "orders", "sum", value=name)


JOINED = "joined|new"


def attribute(column: str) -> str:
    """The measure holding a customers column's value (a covariate)."""
    return f"{column}|attr"


def covariates_of(spec: Experiment, metric: Metric, has_pre: bool) -> tuple[str, ...]:
    """The covariates of ``metric`` under regression adjustment (measure names): its own
    pre-period value (a ratio's numerator and denominator), those of
    ``pre_period_metrics``, the missing indicator of ``joined`` and the ``attributes``."""
    cov = spec.covariates
    own: list[str] = []
    if has_pre:
        parts = [metric.numerator, metric.denominator] if metric.kind == "ratio" else [
            metric.name]
        own = [pre_name(p) for p in parts if p is not None]
        own += [pre_name(p) for p in cov.pre_period_metrics]
        own += [JOINED] if cov.joined else []
    own += [attribute(a) for a in cov.attributes]
    return tuple(dict.fromkeys(own))


def _regression_terms(spec: Experiment, has_pre: bool,
                      known: dict[str, Measure]) -> tuple[list[Measure], list[tuple[str, str]]]:
    """The covariate measures regression adjustment adds, and every product it needs: each
    covariate with every other and with each metric's outcome (a ratio's parts)."""
    cov = spec.covariates
    measures: list[Measure] = []
    if has_pre:
        for metric in spec.metrics:
            parts = [metric.numerator, metric.denominator] if metric.kind == "ratio" else []
            for part in parts:  # measured in the window already: the same in the pre-period
                assert part is not None
                measures.append(dataclasses.replace(known[part], name=pre_name(part),
                                                    period="pre"))
        if cov.joined:
            measures.append(Measure(JOINED, "customers", "after", value=cov.joined))
    measures += [Measure(attribute(a), "customers", "value", value=a) for a in cov.attributes]
    products: list[tuple[str, str]] = []
    every = list(dict.fromkeys(c for m in spec.metrics for c in covariates_of(spec, m, has_pre)))
    for i, a in enumerate(every):
        products += [(a, b) for b in every[i:]]
    for metric in spec.metrics:
        outcomes = [metric.numerator, metric.denominator] if metric.kind == "ratio" else [
            metric.name]
        products += [(y, c) for y in outcomes if y is not None
                     for c in covariates_of(spec, metric, has_pre)]
    return measures, products


def metric_measure(metric: Metric, period: Period = "window") -> Measure:
    assert metric.kind != "ratio" and metric.table is not None
    agg: Aggregate = {"mean": "sum", "count": "count", "binary": "any"}[metric.kind]  # type: ignore[assignment]
    name = metric.name if period == "window" else pre_name(metric.name)
    return Measure(name, metric.table, agg, value=metric.value, event=metric.event,
                   channel=metric.purchase_channel, period=period,
                   winsorize=metric.winsorize)


def build_aggregation(
    spec: Experiment,
    window: tuple[dt.datetime, dt.datetime],
    group_by: tuple[str, ...],
    extra_quantities: tuple[str, ...] = (),
    landing: bool = False,
    contact_channels: tuple[str, ...] = (),
) -> AggregationPlan:
    """Turn the experiment's metrics into measures and the products their statistics need.

    ``extra_quantities`` adds built-in quantities (revenue, margin, orders: for ROI and
    contribution) that the metrics do not define; ``landing`` asks for the revenue
    landed in each purchase channel (cross-channel credit, see ``with_landing``);
    ``contact_channels`` adds the number and cost of each channel's contacts and whether
    each unit was contacted.
    """
    measures: dict[str, Measure] = {}
    products: list[tuple[str, str]] = []
    pre_days = spec.covariates.pre_period_days
    pre_window = (window[0] - dt.timedelta(days=pre_days), window[0]) if pre_days else None

    def add(measure: Measure) -> None:
        measures.setdefault(measure.name, measure)

    for metric in spec.metrics:
        if metric.kind == "ratio":
            continue
        add(metric_measure(metric))
        products.append((metric.name, metric.name))
        if pre_window is not None:
            pre = metric_measure(metric, "pre")
            add(pre)
            products += [(pre.name, pre.name), (metric.name, pre.name)]
    for metric in spec.metrics:
        if metric.kind != "ratio":
            continue
        for part in (metric.numerator, metric.denominator):
            assert part is not None
            if part not in measures:
                add(builtin_measure(part))
                products.append((part, part))
        products.append((metric.numerator, metric.denominator))  # type: ignore[arg-type]
    if spec.analysis.bayes == "hierarchical":  # buyers per cell for the zero-inflated model
        add(Measure(BUYERS, "orders", "any"))
        products.append((BUYERS, BUYERS))
        if "revenue" not in measures:
            add(builtin_measure("revenue"))
            products.append(("revenue", "revenue"))
    if spec.covariates.regression:
        extra, needed = _regression_terms(spec, pre_window is not None, measures)
        for m in extra:
            add(m)
        products += needed
    enc = spec.encouragement
    if enc is not None:  # the IV needs the within-arm covariance of outcome and adoption
        outcome = enc.outcome_metric or spec.primary_metric
        products.append((outcome, enc.adoption_metric))
    for name in extra_quantities:
        if name not in measures:
            add(builtin_measure(name))
            products.append((name, name))
    for ch in contact_channels:  # cost, contacts sent and units contacted (design checks)
        add(Measure(f"cost@{ch}", "contacts", "sum", value="cost", channel=ch))
        add(Measure(f"contacts@{ch}", "contacts", "count", channel=ch))
        add(Measure(contacted(ch), "contacts", "any", channel=ch))
    unique_products = tuple(dict.fromkeys(products))
    return AggregationPlan(spec.unit, window, pre_window, tuple(measures.values()),
                           unique_products, group_by, landing)
