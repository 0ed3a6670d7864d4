"""The experiment's units, engine-neutral: the ``Units`` record (one row per unit: who is in
the population, which arm of each channel they are in, the segment each belongs to; the
dimension table every aggregation joins to), the hash assignment and the rules every engine
shares. The polars builder is ``engines.polars_units``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from liftlab.core.errors import DataError, Problem
from liftlab.spec.aggregation import arm_col
from liftlab.spec.assign import UnitBytes, assign_arms, unit_uniforms
from liftlab.spec.models import HOLDOUT, Experiment

MISSING_SEGMENT = "(missing)"


MAX_SEGMENT_VALUES = 60


MAX_SEGMENT_VALUE_CHARS = 100


@dataclass(frozen=True)
class Units:
    """One row per unit: the unit id, ``arm:<channel>`` per channel, and segment columns.

    ``frame`` is the engine's own handle (a polars DataFrame, a Spark DataFrame, ...).
    """

    frame: Any
    n: int
    assigned_by: str  # "table" or "hash"
    segments: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def arms_source(spec: Experiment, has_table: bool) -> str:
    """Where the arms come from: "table" or "hash" (``Experiment.assignment``)."""
    if spec.assignment == "hash":
        return "hash"
    if has_table:
        return "table"
    if spec.assignment == "table":
        raise DataError([Problem(
            f"experiment {spec.id!r} says assignment: table, but the data has no assignments "
            "table", table="assignments",
            hint="export the assignments, or remove `assignment: table` to assign by hash")])
    return "hash"


def no_assignments(spec: Experiment, held: list[str | None]) -> DataError:
    """The assignments table exists but has no row for this experiment (a renamed
    experiment?): assigning by hash instead would report a placebo result."""
    names = ", ".join("(empty)" if i is None else repr(i) for i in held[:10])
    more = " and more" if len(held) > 10 else ""
    found = f"it holds {names}{more}" if held else "it is empty"
    return DataError([Problem(
        f"the assignments table has no rows for experiment {spec.id!r}; {found}",
        table="assignments", column="experiment_id",
        hint="make the YAML id and the table's experiment_id agree, or write "
             "`assignment: hash` in the YAML to assign by the stable hash")])


def hash_arms(spec: Experiment, ids: pl.Series) -> list[pl.Series]:
    """Each unit's arm per channel by the stable hash (a global holdout: one blind zone)."""
    units = UnitBytes.of(ids)  # the ids' bytes once for every channel's salt
    if spec.design == "global_holdout":
        blind = unit_uniforms(units, f"{spec.id}:global") < next(
            iter(spec.channels.values())).holdout
        out = []
        holdout = pl.repeat(HOLDOUT, len(ids), dtype=pl.String, eager=True)
        for ch, cfg in spec.channels.items():
            treat = {a: f for a, f in cfg.arms.items() if a != HOLDOUT}
            total = sum(treat.values())
            picks = assign_arms(units, spec.id, ch, {a: f / total for a, f in treat.items()})
            out.append(picks.zip_with(pl.Series(~blind), holdout).alias(arm_col(ch)))
        return out
    return [assign_arms(units, spec.id, ch, cfg.arms).alias(arm_col(ch))
            for ch, cfg in spec.channels.items()]


def segment_warning(name: str, count: int, longest: int) -> str | None:
    """Why a segment is not broken down (too many values, or values too long to show), or
    None when it is: every engine applies the same limits."""
    if count > MAX_SEGMENT_VALUES:
        return (f"segment {name!r} has {count} values (limit {MAX_SEGMENT_VALUES}); it is not "
                "broken down: group its values into fewer categories")
    if longest > MAX_SEGMENT_VALUE_CHARS:
        return (f"segment {name!r} has a value of {longest:,} characters (limit "
                f"{MAX_SEGMENT_VALUE_CHARS}; table customers, column {name}); it is not broken "
                "down: shorten its values")
    return None


def window_bounds(spec: Experiment, as_of: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    """The analysis window in UTC: [start, min(end, as_of))."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(spec.timezone)
    start = dt.datetime.combine(spec.start, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(spec.end, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    if as_of is not None:
        end = min(end, as_of.astimezone(dt.UTC))
    return start, end
