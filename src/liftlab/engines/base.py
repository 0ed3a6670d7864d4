"""What an engine does. Every engine turns the same AggregationPlan into the same table of
sufficient statistics; everything after that is shared."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import polars as pl

from liftlab.data.quality import QualityReport
from liftlab.errors import Problem
from liftlab.metrics import AggregationPlan
from liftlab.spec import Experiment
from liftlab.units import Units


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


def with_landing(plan: AggregationPlan, engine: Engine) -> AggregationPlan:
    """The plan with its purchase channels looked up by a query of their own, for engines
    that do not find them during the aggregation pass."""
    if not plan.landing:
        return plan
    return plan.with_landing(engine.distinct("orders", "channel", plan.window))


def engine_kind(engine: Engine) -> str:
    """The engine's name as users choose it: polars, spark, postgresql or duckdb."""
    return str(getattr(engine, "dialect", None) or type(engine).__name__.removesuffix(
        "Engine").lower())


def folder_only(engine: Engine, what: str) -> str:
    """Why ``what`` (a command or a section) cannot run on a non-folder engine."""
    return (f"{what} runs on a data folder with the polars engine; the {engine_kind(engine)} "
            f"engine does not support it yet (pass --data with the folder of the tables)")
