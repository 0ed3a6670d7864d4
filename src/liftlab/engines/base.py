"""What an engine does. Every engine turns the same AggregationPlan into the same table of
sufficient statistics; everything after that is shared."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
import polars as pl

from liftlab.core.errors import Problem, UserError
from liftlab.data.quality import QualityReport
from liftlab.engines.units import Units
from liftlab.spec.aggregation import AggregationPlan, cap_col, winsorised
from liftlab.spec.models import Experiment, Metric


class EngineLimit(UserError):
    """What this engine cannot do yet (the analysis may go on without it)."""


class HourlyStatsLike(Protocol):
    cohort: pl.DataFrame
    events: pl.DataFrame
    rows: int


class HourlySource(Protocol):
    """The monitor's row work for one experiment (``analyses.monitor``): exposures, hourly
    cohort statistics and first responses compiled from the aggregation plan's measures, the
    pre-exposure baseline, and a digest of the rows for its cache."""

    def reading(self) -> AbstractContextManager[None]: ...

    def check(self, metrics: list[Metric], tested: list[Metric]) -> None: ...

    def exposures(self, window: dt.timedelta) -> pl.DataFrame: ...

    def hourly(self, exposure: pl.DataFrame, metrics: list[Metric], tested: list[Metric],
               window: dt.timedelta, after: dt.datetime | None, last: dt.datetime
               ) -> HourlyStatsLike: ...

    def baseline(self, exposure: pl.DataFrame, window: dt.timedelta,
                 tested: list[Metric]) -> dict[str, dict[str, float]]: ...

    def fingerprint(self, exposure: pl.DataFrame, metrics: list[Metric],
                    until: dt.datetime) -> list[str]: ...

    def state(self, exposure: pl.DataFrame, window: dt.timedelta) -> dict[str, Any]: ...

    def restore(self, state: Mapping[str, Any],
                exposures: Callable[[], pl.DataFrame | None]) -> None: ...


class ClientSource(Protocol):
    """The multichannel analysis's clients (``analyses.multichannel``): the small tables
    its estimators read and the rows its models fit."""

    def group_sums(self) -> GroupSumsLike: ...

    def model_rows(self, n_clients: int, seed: int) -> ModelRowsLike: ...


class GroupSumsLike(Protocol):
    sums: pl.DataFrame
    combinations: pl.DataFrame
    appetence: pl.DataFrame
    attributes: tuple[str, ...]


class ModelRowsLike(Protocol):
    covariates: np.ndarray
    names: list[str]
    multi: np.ndarray
    value: np.ndarray
    subsampled: bool


class Engine(Protocol):
    """A data source together with the machinery that aggregates it."""

    @property
    def label(self) -> str:
        """Where the data comes from, for reports (never with a password)."""
        ...

    def has(self, table: str) -> bool: ...

    def columns(self, table: str) -> list[str]: ...

    def check(self) -> list[Problem]:
        """Structural problems: missing tables or columns, wrong types."""
        ...

    def quality(self, as_of: dt.datetime) -> QualityReport: ...

    def units(self, spec: Experiment) -> Units:
        """The population with its arm per channel and its segments."""
        ...

    def aggregate(self, plan: AggregationPlan, units: Units,
                  experiment_id: str) -> pl.DataFrame:
        """The table of sufficient statistics (see ``cells.py``). A plan with ``landing``
        gets the purchase channels of its window first (``with_landing`` below, or found
        during the pass itself)."""
        ...

    def histograms(self, plan: AggregationPlan, units: Units,
                   experiment_id: str) -> pl.DataFrame:
        """Units per sketch bin of each measure of a ``sketch_plan``: columns ``measure``,
        ``bin`` (``stats.quantiles.bin_of``), ``n`` and the plan's arm columns."""
    def unit_rows(self, plan: AggregationPlan, units: Units, experiment_id: str,
                  attributes: tuple[str, ...]) -> pl.DataFrame:
        """One row per unit: its arms, segments, the plan's measures and the customers
        table's ``attributes`` (for models that learn from individual customers, such as
        uplift models; every other analysis works on ``aggregate``)."""
        ...

    def distinct(self, table: str, column: str, window: tuple[dt.datetime, dt.datetime]
                 ) -> list[str]:
        """Distinct non-null values of a column among the table's rows in the window."""
        ...

    def latest(self, table: str) -> dt.datetime | None:
        """The newest timestamp of a table (data freshness), None when absent or empty."""
        ...

    def hourly(self, spec: Experiment, units: Units | Callable[[], Units]) -> HourlySource:
        """The monitor's hourly aggregation of this experiment (``EngineLimit`` when the
        engine has none yet); ``units`` or a function giving them when first needed."""
        ...

    def last_touch(self, spec: Experiment, window: tuple[dt.datetime, dt.datetime]
                   ) -> pl.DataFrame | None:
        """Revenue credited to the last contact's channel per purchase channel in the window
        (None without a contacts table; ``EngineLimit`` when the engine cannot)."""
        ...

    def multichannel_clients(self, lookback: tuple[dt.date, dt.date], outcome_days: int,
                             pre_days: int, usage_events: Sequence[str],
                             attributes: Sequence[str]) -> ClientSource:
        """The clients active in the look-back with their outcome and pre-period covariates
        (``EngineLimit`` when the engine cannot)."""
        ...


def with_landing(plan: AggregationPlan, engine: Engine) -> AggregationPlan:
    """The plan with its purchase channels looked up by a query of their own, for engines
    that do not find them during the aggregation pass."""
    if not plan.landing:
        return plan
    return plan.with_landing(engine.distinct("orders", "channel", plan.window))


def spread_caps(frame: pl.DataFrame, plan: AggregationPlan) -> pl.DataFrame:
    """The table with each winsorised measure's ``cap_col`` (its largest capped value per
    group) set to the largest over the groups: the cap itself, since a unit's value is
    clipped at the measure's quantile and that quantile never exceeds the largest value."""
    return frame.with_columns(pl.col(cap_col(m.name)).max() for m in winsorised(plan))


def engine_kind(engine: Engine) -> str:
    """The engine's name as users choose it: polars, spark, postgresql or duckdb."""
    return str(getattr(engine, "dialect", None) or type(engine).__name__.removesuffix(
        "Engine").lower())


def folder_only(engine: Engine, what: str) -> str:
    """Why ``what`` (a command or a section) cannot run on a non-folder engine."""
    return (f"{what} runs on a data folder with the polars engine; the {engine_kind(engine)} "
            f"engine does not support it yet (pass --data with the folder of the tables)")


class PolarsOnlyRowWork:
    """The row work only the polars engine does yet: the monitor's hourly cohorts, last-touch
    credit, the multichannel clients and one row per customer for uplift models. The SQL and
    Spark engines inherit these refusals (``EngineLimit``, saying to pass the data folder)."""

    def hourly(self: Engine, spec: Experiment, units: Units | Callable[[], Units]
               ) -> HourlySource:
        raise EngineLimit(folder_only(self, "the hourly monitor"))

    def last_touch(self: Engine, spec: Experiment, window: tuple[dt.datetime, dt.datetime]
                   ) -> pl.DataFrame | None:
        if not self.has("contacts"):
            return None
        raise EngineLimit(folder_only(self, "last-touch credit"))

    def multichannel_clients(self: Engine, lookback: tuple[dt.date, dt.date],
                             outcome_days: int, pre_days: int, usage_events: Sequence[str],
                             attributes: Sequence[str]) -> ClientSource:
        raise EngineLimit(folder_only(self, "the multichannel analysis"))

    def unit_rows(self: Engine, plan: AggregationPlan, units: Units, experiment_id: str,
                  attributes: tuple[str, ...]) -> pl.DataFrame:
        raise EngineLimit(folder_only(self, "liftlab target (uplift models on customer rows)"))
