"""The polars builder of the experiment's units (``engines.units.Units``) from a data folder:
the population filter, the arms (assignments table or hash) checked on the way, the
segments (columns of customers, or derived from the data: ``DERIVED_SEGMENTS``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from liftlab.core.errors import DataError, Problem
from liftlab.data.folder import FolderSource
from liftlab.engines.polars_multichannel import channel_profile
from liftlab.engines.units import (
    MAX_SEGMENT_VALUES,
    MISSING_SEGMENT,
    Units,
    arms_source,
    hash_arms,
    no_assignments,
    segment_warning,
)
from liftlab.spec import filters
from liftlab.spec.aggregation import arm_col
from liftlab.spec.models import DERIVED_SEGMENTS, Experiment


def _channel_profile(source: FolderSource, spec: Experiment) -> pl.LazyFrame:
    return channel_profile(source, spec.start).rename({"customer_id": spec.unit})


# How each of ``spec.models.DERIVED_SEGMENTS`` is computed.
DERIVED: dict[str, Callable[[FolderSource, Experiment], pl.LazyFrame]] = {
    "channel_profile": _channel_profile}


def build_units(spec: Experiment, source: FolderSource, uid_type: pl.DataType) -> Units:
    """Population filter, arms (from the assignments table or the hash), segments."""
    unit = spec.unit
    schema = source.schema("customers")
    problems = _check_columns(spec, schema)
    if problems:
        raise DataError(problems)
    customers = source.scan("customers", uid_type)
    if spec.population.where:
        customers = customers.filter(
            filters.to_polars(filters.parse(spec.population.where), schema))
    # A Parquet column's few values are found first (one column is cheap to read) and the
    # segment is read as an Enum of them; text files, derived segments and columns with too
    # many values among the customers (the units may still have few) are read as text and
    # given their units' values afterwards.
    first = [s for s in spec.segments if s in schema] if _columnar(source, "customers") else []
    categories = {s: values for s, values in _segment_values(
        customers, first, MAX_SEGMENT_VALUES + 1).items() if len(values) <= MAX_SEGMENT_VALUES}
    for name in spec.segments:
        if name not in schema and name in DERIVED_SEGMENTS:
            derived = DERIVED[name](source, spec).with_columns(
                pl.col(unit).cast(pl.String).cast(uid_type))
            customers = customers.join(derived, on=unit, how="left")
    population = customers.select(unit, *[
        _segment(s).cast(pl.Enum(categories[s])) if s in categories else _segment(s)
        for s in spec.segments])
    warnings: list[str] = []
    long = (_assignment_rows(spec, source, uid_type)
            if arms_source(spec, source.has("assignments")) == "table" else None)
    read = _read_assignments(spec, population, long) if long is not None else None
    if read is not None and not read.rows:
        raise no_assignments(spec, source.scan("assignments").select(
            pl.col("experiment_id").cast(pl.String).unique().sort().head(11))
            .collect()["experiment_id"].to_list())
    if read is not None:
        frame, more = _from_table(spec, read)
        warnings += more
        assigned_by = "table"
    else:
        pop = population.collect()
        frame = pop.with_columns(hash_arms(spec, pop[unit]))
        assigned_by = "hash"
    if frame.height == 0:
        where = spec.population.where or "(no filter)"
        raise DataError([Problem(
            f"the population is empty: no customer matches where: {where!r}"
            + (" and has an assignment" if assigned_by == "table" else ""),
            table="customers", hint="check the filter and the customers table")])
    derived = _segment_values(frame.lazy(), [s for s in spec.segments if s not in categories])
    frame = frame.with_columns(  # Enums: 4 bytes a unit, and their codes are group codes
        pl.col(name).cast(pl.Enum(values)) for name, values in derived.items())
    segments, more = _usable_segments(spec, frame)
    unused = [s for s in spec.segments if s not in segments]
    frame = frame.drop(unused) if unused else frame
    return Units(frame, frame.height, assigned_by, segments, tuple(warnings + more))


def _check_columns(spec: Experiment, schema: pl.Schema) -> list[Problem]:
    import difflib

    problems = []
    if spec.unit not in schema:
        problems.append(Problem(f"unit column {spec.unit!r} is missing", table="customers",
                                column=spec.unit))
    wanted = [s for s in spec.segments if s not in DERIVED_SEGMENTS]
    if spec.population.where:
        wanted += sorted(filters.columns(filters.parse(spec.population.where)))
    for col in wanted:
        if col not in schema:
            close = difflib.get_close_matches(col, list(schema.names()), n=1)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"columns present: {', '.join(schema.names())}")
            problems.append(Problem(f"column {col!r} used by the experiment is missing",
                                    table="customers", column=col, hint=hint))
    if spec.population.where:
        problems += _truthy_problems(filters.parse(spec.population.where), schema)
    return problems


def _truthy_problems(where: filters.Expr, schema: pl.Schema) -> list[Problem]:
    """A column the population filter reads as true/false must hold booleans or numbers."""
    problems = []
    for col in sorted(filters.truthy_columns(where)):
        dtype = schema.get(col)
        if dtype is not None and not (dtype in (pl.Boolean, pl.Null) or dtype.is_numeric()):
            problems.append(Problem(
                f"the population filter reads {col!r} as true/false, but it holds {dtype}",
                table="customers", column=col,
                hint=f"store true/false values, or compare the text: {col} == \"yes\""))
    return problems


def _assignment_rows(spec: Experiment, source: FolderSource,
                     uid_type: pl.DataType) -> pl.LazyFrame | None:
    """This experiment's rows of the assignments table, lazily (None when there is no such
    table)."""
    if not source.has("assignments"):
        return None
    return (source.scan("assignments", uid_type)
            .filter(pl.col("experiment_id") == spec.id)
            .select(spec.unit, "channel", pl.col("group").cast(pl.String)))


@dataclass(frozen=True)
class _Assignments:
    """The population and each channel's arms, read side by side."""

    long: pl.LazyFrame  # the experiment's rows, lazily
    rows: int  # how many, of every channel
    population: pl.DataFrame
    arms: tuple[pl.DataFrame, ...]  # per channel of the experiment: unit, arm (an Enum)


def _read_assignments(spec: Experiment, population: pl.LazyFrame,
                      long: pl.LazyFrame) -> _Assignments:
    """One streamed read per channel, so the long table is never held in memory; a group the
    experiment does not define reads as a null arm (``_from_table`` names it)."""
    rows, pop, *arms = pl.collect_all([
        long.select(pl.len()), population,
        *[long.filter(pl.col("channel") == ch).select(  # arms as an Enum: 4 bytes a unit
            spec.unit, pl.col("group").cast(pl.Enum(sorted(cfg.arms)), strict=False)
            .alias(arm_col(ch))) for ch, cfg in spec.channels.items()]])
    return _Assignments(long, int(rows.item()), pop, tuple(arms))


def _from_table(spec: Experiment, read: _Assignments) -> tuple[pl.DataFrame, list[str]]:
    """Pivot the assignments to one row per unit, checking them on the way.

    Rows of other channels and groups the experiment does not define are looked up only
    when the counts show some (a row count beyond the channels' rows, a null arm).
    """
    unit = spec.unit
    problems: list[Problem] = []
    warnings: list[str] = []
    if read.rows > sum(a.height for a in read.arms):
        others = (read.long.filter(~pl.col("channel").is_in(list(spec.channels))
                                   | pl.col("channel").is_null())
                  .select(pl.col("channel").unique()).collect()["channel"])
        names = ", ".join(sorted("(empty)" if c is None else c for c in others.to_list()))
        if not any(a.height for a in read.arms):
            raise DataError([Problem(
                f"experiment {spec.id!r} has {read.rows} assignment row(s) but none for its "
                f"channels ({', '.join(spec.channels)}); found: {names}",
                table="assignments", column="channel",
                hint="the channel names must match the experiment's YAML")])
        warnings.append(f"assignments for channels not in the experiment were ignored: {names}")
    for (ch, cfg), arms in zip(spec.channels.items(), read.arms, strict=True):
        if not arms[arm_col(ch)].null_count():
            continue
        groups = (read.long.filter(pl.col("channel") == ch)
                  .select(pl.col("group").unique()).collect()["group"])
        bad = sorted(g for g in groups.to_list() if g is not None and g not in cfg.arms)
        if bad:
            problems.append(Problem(
                f"channel {ch!r} has groups {', '.join(map(repr, bad))} that the experiment "
                f"does not define", table="assignments", column="group",
                hint=f"expected one of {', '.join(sorted(cfg.arms))}"))
    if problems:
        raise DataError(problems)
    per_channel = [_channel_arms(a, unit, ch) for a, ch in zip(read.arms, spec.channels,
                                                                strict=True)]
    frame, assigned = _attach(read.population, per_channel, unit)
    orphans = assigned - frame.height
    if orphans:
        warnings.append(f"{orphans} assigned unit(s) are not in the population (unknown "
                        "customers or excluded by the filter) and were left out")
    return frame, warnings


def _channel_arms(arms: pl.DataFrame, unit: str, channel: str) -> pl.DataFrame:
    """One channel's arm per unit (``unit``, ``arm:<channel>``), sorted by unit; a unit in
    two arms is a DataError."""
    from liftlab.engines.dense import repeated  # numba: imported where it runs

    extra = repeated(arms.lazy().select(unit))  # integer ids on a bitmap, not a hash set
    if extra is None:
        extra = arms.height - arms[unit].n_unique()
    if extra:  # exact repeats are harmless
        arms = arms.unique()
        dupes = arms.filter(pl.col(unit).is_duplicated())
        if dupes.height:
            ids = ", ".join(str(v) for v in dupes[unit].unique().sort().head(5).to_list())
            raise DataError([Problem(
                f"{dupes[unit].n_unique()} unit(s) are in two arms of channel {channel!r} "
                f"(e.g. {unit} {ids})", table="assignments", column="group",
                hint="a unit may be in one arm per channel; fix the assignment export")])
    return arms if arms[unit].is_sorted() else arms.sort(unit)


def _attach(pop: pl.DataFrame, per_channel: list[pl.DataFrame],
            unit: str) -> tuple[pl.DataFrame, int]:
    """The population with every channel's arm; (frame, number of assigned units).

    When every channel assigns exactly the population (the usual export), the sorted columns
    are placed side by side instead of hash-joined, which is several times faster."""
    pop = pop if pop[unit].is_sorted() else pop.sort(unit)
    ids = pop[unit]
    if all(a.height == len(ids) and a[unit].equals(ids) for a in per_channel):
        return pl.concat([pop, *[a.drop(unit) for a in per_channel]], how="horizontal"), len(ids)
    wide = per_channel[0]
    for arms in per_channel[1:]:
        wide = wide.join(arms, on=unit, how="full", coalesce=True)
    return pop.join(wide, on=unit, how="inner"), wide.height


def _segment(name: str) -> pl.Expr:
    """A segment's values as text, a missing one as ``MISSING_SEGMENT``."""
    return pl.col(name).cast(pl.String).fill_null(MISSING_SEGMENT).alias(name)


def _segment_values(rows: pl.LazyFrame, names: list[str],
                    at_most: int | None = None) -> dict[str, list[str]]:
    """The values of each of these segments among ``rows``, sorted (only ``at_most`` of them
    when there are more)."""
    if not names:
        return {}
    found = rows.select(_segment(s).unique().head(at_most).sort().implode() if at_most
                        else _segment(s).unique().sort().implode() for s in names).collect()
    return {s: found[s][0].to_list() for s in names}


def _columnar(source: FolderSource, table: str) -> bool:
    path = source.path(table)
    return path is not None and path.suffix != ".csv"


def _usable_segments(spec: Experiment, frame: pl.DataFrame) -> tuple[tuple[str, ...], list[str]]:
    """The segment columns (Enums) with a readable number of values among the units; the
    others are reported (the caller drops them)."""
    keep, warnings = [], []
    for s in spec.segments:
        values = frame[s].unique().cast(pl.String)
        warning = segment_warning(s, len(values), int(values.str.len_chars().max() or 0))
        if warning:
            warnings.append(warning)
        else:
            keep.append(s)
    return tuple(keep), warnings
