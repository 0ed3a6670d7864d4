"""The polars engine: one pass per table from scan to sufficient statistics.

Per table, the rows in [pre-period start, window end) are reduced to one value per unit and
measure (pre-period and window in the same pass) by direct address: the slot of a unit is
``id - min(id)`` when unit ids are compact integers, else its row in the unit table (found by
an order-keeping join). The slots are summed per group with the cross-products the
statistics need. Only the final table of sums (a few hundred rows) is materialised. A hash
group-by serves the plans the direct-address pass does not (covariates from the customers
table, too many groups or slots) and the histograms.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from liftlab.core.errors import DataError, Problem
from liftlab.data.folder import FolderSource
from liftlab.data.quality import (
    EARLIEST,
    MAX_ROWS_SHOWN,
    TS_COLUMN,
    Check,
    QualityReport,
    build_report,
    declare_checks,
    polars_condition,
    polars_count,
)
from liftlab.data.schema import TABLES
from liftlab.engines.base import spread_caps
from liftlab.engines.polars_attribution import LOOKBACK_DAYS, last_touch_credit
from liftlab.engines.polars_measures import measure_expr
from liftlab.engines.polars_monitor import PolarsHourly, tables_from_source
from liftlab.engines.polars_multichannel import PolarsClients, clients
from liftlab.engines.polars_units import build_units
from liftlab.engines.shared import shared_result, sharing, unit_frame
from liftlab.engines.units import Units
from liftlab.spec.aggregation import (
    PURCHASE_CHANNELS_MAX,
    AggregationPlan,
    Measure,
    cap_col,
    prod_col,
    sum_col,
    winsorised,
)
from liftlab.spec.models import Experiment
from liftlab.stats.quantiles import LOG_GAMMA, OFFSET, ZERO

if TYPE_CHECKING:
    from liftlab.engines.dense import ChannelGuess
    from liftlab.engines.slots import Slots

# The compiled passes (dense.py, hashed_ids.py) are imported where they run: numba takes
# 0.2 s to import, which a command that runs none of them (the monitor's hourly update)
# need not pay.

# The per-unit array of the direct-address route may take this much memory; beyond it (ids
# spread over a huge range, or very many measures), or with too many combinations of group
# keys, the hash group-by is used.
DENSE_BYTES = 6 * 2**30
# The purchase channels are guessed from this many window rows (a channel rarer than about
# 1 in 100,000 orders may first show later, which costs a second pass, never a wrong sum).
GUESS_ROWS = 1 << 19


def aggregate(plan: AggregationPlan, units: pl.DataFrame, source: FolderSource,
              uid_type: pl.DataType, experiment_id: str | None = None,
              dense: bool = True) -> pl.DataFrame:
    """The table of sufficient statistics: one row per group, n, sums and cross-products.

    Integer ids that fill most of their range are summed by direct address (``dense.py``),
    slot ``id - min(id)``; other ids (text, sparse integers) by direct address too, each unit's
    slot its row in ``units``, found by a join that keeps the rows' order
    (``_by_position``). ``dense=False`` forces the hash route (tests compare the routes).
    The direct-address pass finds the purchase channels itself (``_first_channels``); the
    hash route looks them up first.
    """
    from liftlab.engines.dense import Unexpected
    from liftlab.engines.slots import Slots

    slots = Slots.fit(units[plan.unit]) if dense else None
    by_position = dense and slots is None and units.height > 0
    if by_position:  # text or sparse ids: each unit's slot is its row in ``units``
        slots = Slots(0, units.height)
    if slots is not None and plan.landing:
        guess = _first_channels(source, plan.window)
        planned = plan.with_landing(guess.channels)
        if len(guess.channels) > PURCHASE_CHANNELS_MAX:  # more can only mean no split either
            plan = planned
        elif "orders" in planned.tables:  # the pass over the orders checks the guess
            try:
                frame = _dense_cells(planned, units, source, uid_type, experiment_id, slots,
                                     by_position, guess)
            except Unexpected:  # a channel (or a row without one) the first rows did not show
                frame = None
            if frame is not None:
                return frame
    if plan.landing:
        plan = plan.with_landing(_distinct(source, "orders", "channel", plan.window))
    if slots is not None:
        frame = _dense_cells(plan, units, source, uid_type, experiment_id, slots,
                             by_position)
        if frame is not None:
            return frame
    per_unit = _unit_outcomes(plan, units, source, uid_type, experiment_id)
    aggs = [pl.len().alias("n")]
    aggs += [pl.col(m.name).sum().alias(sum_col(m.name)) for m in plan.measures]
    aggs += [(pl.col(a) * pl.col(b)).sum().alias(prod_col(a, b)) for a, b in plan.products]
    aggs += [pl.col(m.name).max().alias(cap_col(m.name)) for m in winsorised(plan)]
    keys = list(plan.group_by)
    if not keys:
        return per_unit.select(aggs).collect()
    enums = [k for k in keys if isinstance(units.schema[k], pl.Enum)]  # as the dense route
    return spread_caps(per_unit.group_by(keys).agg(aggs).with_columns(
        pl.col(enums).cast(pl.String)).collect().sort(keys, nulls_last=True), plan)


def _first_channels(source: FolderSource,
                    window: tuple[dt.datetime, dt.datetime]) -> ChannelGuess:
    """The purchase channels among the first rows of the window (and whether some had none):
    the usual data shows every channel within its first rows, so the direct-address pass
    plans its slots from them, checking every later row."""
    from liftlab.engines.dense import ChannelGuess

    values = _window_values(source, "orders", "channel", window, GUESS_ROWS)
    return ChannelGuess(tuple(sorted(v for v in values.to_list() if v is not None)),
                        bool(values.null_count()))


def _unit_outcomes(plan: AggregationPlan, units: pl.DataFrame, source: FolderSource,
                   uid_type: pl.DataType, experiment_id: str | None) -> pl.LazyFrame:
    """Per-unit measures (0 when the unit has no row) by hash group-by, one row per unit."""
    out = units.lazy()
    ids = units.lazy().select(plan.unit)
    for table in plan.tables:
        if table == "customers":
            per_unit = _customer_values(plan, source, uid_type).join(ids, on=plan.unit,
                                                                     how="semi")
        else:
            rows = _period_rows(plan, source, table, uid_type, experiment_id)
            split = _split_experiments(plan, source, table, experiment_id)
            exprs = [_measure_expr(m, plan, experiment_id if split else None)
                     for m in plan.measures_of(table)]
            # a daily run's experiments share this frame (shared.py): what it depends on
            key = (table, plan.unit, plan.measures_of(table), plan.window, plan.pre_window,
                   uid_type, _rows_of(source, table, experiment_id))
            per_unit = unit_frame(
                source, key, lambda rows=rows, exprs=exprs: rows.group_by(plan.unit).agg(exprs),
                lambda rows=rows, exprs=exprs: rows.join(ids, on=plan.unit, how="semi")
                .group_by(plan.unit).agg(exprs))
        out = out.join(per_unit, on=plan.unit, how="left")
    out = out.with_columns(pl.col(m.name).fill_null(0.0) for m in plan.measures)
    capped = [m for m in plan.measures if m.winsorize is not None]
    if capped:
        out = out.with_columns(
            pl.col(m.name).clip(upper_bound=pl.col(m.name).quantile(m.winsorize, "linear"))
            for m in capped)
    return out


def _dense_cells(plan: AggregationPlan, units: pl.DataFrame, source: FolderSource,
                 uid_type: pl.DataType, experiment_id: str | None, slots: Slots,
                 by_position: bool, guess: ChannelGuess | None = None) -> pl.DataFrame | None:
    """The same table by direct address: one pass per table into per-unit slots, then one
    pass over the units into the groups (no per-unit frame is built). None when the slots
    would take more than ``DENSE_BYTES``, the groups are too many or the plan reads the
    customers table (covariates: the hash route joins them); ``Unexpected`` when an order
    contradicts ``guess`` (its purchase channels). ``by_position``: the slots are the rows of
    ``units`` (``Slots(0, units.height)``), not the ids."""
    from liftlab.engines.dense import (
        Groups,
        GroupSumLayout,
        accumulate,
        cell_sums,
        table_layout,
        unit_measure,
    )

    if "customers" in plan.tables or _split_experiments(plan, source, "contacts",
                                                          experiment_id):
        return None
    layouts = [table_layout(plan.measures_of(t), TS_COLUMN[t], plan.window, plan.pre_window,
                            guess if t == "orders" else None)
               for t in plan.tables]
    offsets = np.cumsum([0, *(lay.width for lay in layouts)]).tolist()
    if slots.size * offsets[-1] * 8 > DENSE_BYTES:
        return None
    groups = Groups.of(units, plan.group_by)
    if groups is None:
        return None
    measures = [m for t in plan.tables for m in plan.measures_of(t)]
    slot_of = _by_position(units, plan.unit) if by_position else None
    unit_ids = _fingerprint(units[plan.unit]) if by_position else None

    def filled() -> np.ndarray:
        acc = np.zeros((slots.size, offsets[-1]))
        for table, layout, offset in zip(plan.tables, layouts, offsets[:-1], strict=True):
            rows = _period_rows(plan, source, table, uid_type, experiment_id)
            slot = plan.unit
            if slot_of is not None:
                rows, slot = slot_of(rows), SLOT
            accumulate(rows, slot, layout, slots, acc, offset)
        return acc

    # A daily run's experiments share the slots (shared.py), read-only from here on: what
    # they depend on, per table (on the positional route, the units' ids in their order).
    # The array itself is handed out: copying kept per-table blocks into each experiment's
    # array cost about as much as reading the tables.
    keys = tuple((table, plan.measures_of(table), plan.window, plan.pre_window, uid_type,
                  slots, unit_ids, guess if table == "orders" else None,
                  _rows_of(source, table, experiment_id)) for table in plan.tables)
    acc = shared_result(source, ("dense-slots", keys, tuple(offsets)), filled,
                        lambda built: int(built.nbytes))
    position = {m.name: k for k, m in enumerate(measures)}
    sum_layout = GroupSumLayout.of(layouts, offsets[:-1], [m.agg == "any" for m in measures],
                            [(position[a], position[b]) for a, b in plan.products])
    ids = np.arange(units.height, dtype=np.int64) if by_position \
        else units[plan.unit].cast(pl.Int64).to_numpy()
    caps = {k: pl.Series(unit_measure(acc, ids, slots.lo, sum_layout, k)).quantile(
        m.winsorize, "linear") for k, m in enumerate(measures) if m.winsorize is not None}
    sum_layout = sum_layout.with_caps(caps)
    n, sums, prods = cell_sums(acc, ids, slots.lo, groups, sum_layout)
    seen = np.flatnonzero(n)
    frame = pl.DataFrame([
        *groups.frame(seen).get_columns(), pl.Series("n", n[seen], dtype=pl.UInt32),
        *[pl.Series(sum_col(m.name), sums[seen, position[m.name]]) for m in plan.measures],
        *[pl.Series(prod_col(a, b), prods[seen, i]) for i, (a, b) in enumerate(plan.products)],
        *[pl.Series(cap_col(m.name), [caps[position[m.name]]] * seen.size, dtype=pl.Float64)
          for m in winsorised(plan)]])
    keys = list(plan.group_by)
    return frame.sort(keys, nulls_last=True) if keys else frame


SLOT = "__slot"


def _by_position(units: pl.DataFrame, unit: str
                 ) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
    """Rows -> the same rows, in the same order, with column ``SLOT``: their unit's row in
    ``units`` (-1 or null for the rows of ids that are not units, or no id; ``accumulate``
    skips those, and still sees their channel for the ``ChannelGuess`` check).

    Why: text ids (and sparse integers) took the hash route, a group-by per unit then per
    group whose sums come in thread order: slower (24 s CPU against 13.5 s at 2 M customers)
    and not the same to the last bit from one run to the next. With every row given its
    slot, the direct-address pass adds each unit's rows in file order, as it does for
    integer ids: the same sums, bit for bit, as integer ids in the same order.

    The slot is found in a compiled table of the ids' 64-bit hashes, each found id checked
    against the unit's (``hashed_ids.HashedIds``): polars' order-keeping join cost 5 times
    as much CPU (2.2 s against 0.4 s for 5.9 M orders of 2 M text ids). Units listed twice,
    null unit ids or two ids sharing a hash take that join instead; a unit listed twice then
    gets every row of its id in each of its slots, as the hash route's join gives it."""
    from liftlab.engines.hashed_ids import HashedIds, positions_by_join

    ids = units[unit]
    table = HashedIds.of(ids) if ids.len() and not ids.null_count() else None
    if table is None or table.keys.len() != ids.len():
        index = units.lazy().select(pl.col(unit),
                                    pl.int_range(pl.len(), dtype=pl.Int64).alias(SLOT))
        return lambda rows: rows.join(index, on=unit, how="left", maintain_order="left")
    keys = table.keys  # the units' ids, in their order (no id repeats)

    def slots(batch: pl.Series) -> pl.Series:
        found = table.find(batch)  # None: an id of a row shares a unit's hash
        return pl.Series(SLOT, positions_by_join(batch, keys) if found is None else found)

    return lambda rows: rows.with_columns(pl.col(unit).map_batches(
        slots, return_dtype=pl.Int64, is_elementwise=True).alias(SLOT))


def _fingerprint(ids: pl.Series) -> tuple[str, int, str]:
    """The units' ids in their order, as a digest: the slots of the positional route are
    those positions, so a pass is shared only between experiments with the same list."""
    digest = hashlib.sha256(ids.hash(seed=1).to_numpy().tobytes()).hexdigest()
    return str(ids.dtype), ids.len(), digest


def _customer_values(plan: AggregationPlan, source: FolderSource,
                     uid_type: pl.DataType) -> pl.LazyFrame:
    """The customers columns the plan uses as covariates, one row per customer: a number
    (null read as 0) or the missing indicator of a join date after the pre-period's first
    day."""
    from liftlab.engines.polars_multichannel import _as_date

    schema = source.schema("customers")
    exprs = []
    for m in plan.measures_of("customers"):
        assert m.value is not None
        if m.agg == "after":
            assert plan.pre_window is not None
            expr = (_as_date(source, m.value) > plan.pre_window[0].date()).fill_null(False)
        else:
            if not (schema[m.value].is_numeric() or schema[m.value] == pl.Boolean):
                raise DataError([Problem(
                    f"covariate column {m.value!r} holds {schema[m.value]}, not numbers or "
                    "true/false", table="customers", column=m.value,
                    hint="name numeric customers columns in covariates.attributes")])
            expr = pl.col(m.value).fill_null(0)
        exprs.append(expr.cast(pl.Float64).alias(m.name))
    return source.scan("customers", uid_type).select(plan.unit, *exprs)


def _window_values(source: FolderSource, table: str, column: str,
                   window: tuple[dt.datetime, dt.datetime], first: int | None = None
                   ) -> pl.Series:
    """The distinct values (as text, null included) of a column in the window's rows, or in
    its ``first`` rows."""
    ts = pl.col(TS_COLUMN[table])
    rows = source.scan(table).filter((ts >= window[0]) & (ts < window[1]))
    rows = rows.head(first) if first is not None else rows
    return rows.select(pl.col(column).cast(pl.String).unique()).collect()[column]


def _distinct(source: FolderSource, table: str, column: str,
              window: tuple[dt.datetime, dt.datetime]) -> list[str]:
    return sorted(v for v in _window_values(source, table, column, window).to_list()
                  if v is not None)


def _period_rows(plan: AggregationPlan, source: FolderSource, table: str,
                 uid_type: pl.DataType, experiment_id: str | None) -> pl.LazyFrame:
    """The table's rows in [pre-period start, window end) (this experiment's contacts)."""
    ts = TS_COLUMN[table]
    lo = plan.pre_window[0] if plan.pre_window else plan.window[0]
    rows = source.scan(table, uid_type).filter(
        (pl.col(ts) >= lo) & (pl.col(ts) < plan.window[1]))
    if table == "contacts" and experiment_id is not None and \
            "experiment_id" in source.schema("contacts") and \
            not _split_experiments(plan, source, table, experiment_id):
        rows = rows.filter(pl.col("experiment_id") == experiment_id)
    return rows


def _rows_of(source: FolderSource, table: str, experiment_id: str | None) -> str | None:
    """The experiment whose own rows of ``table`` are read (contacts with an
    ``experiment_id`` column), else None: the key of a pass shared between experiments."""
    if table == "contacts" and "experiment_id" in source.schema(table):
        # an experiment none of the contacts name reads none of their rows, as every other
        # such experiment does (new ids with arms by hash): the same pass, shared
        if experiment_id is not None and sharing() and not _names(source, experiment_id):
            return ""
        return experiment_id
    return None


def _names(source: FolderSource, experiment_id: str) -> bool:
    """Whether a row of the contacts names the experiment (asked once per run)."""

    def count() -> bool:
        with source.reading():
            return bool(source.scan("contacts").filter(pl.col("experiment_id") == experiment_id)
                        .select(pl.len()).collect().item())

    return shared_result(source, ("names", experiment_id), count, lambda _: 0)


def _split_experiments(plan: AggregationPlan, source: FolderSource, table: str,
                       experiment_id: str | None) -> bool:
    """Contacts with an ``experiment_id`` column and an ``every_experiment`` measure: every
    row is read, and each other measure keeps the experiment's own rows."""
    return (table == "contacts" and experiment_id is not None
            and any(m.every_experiment for m in plan.measures_of("contacts"))
            and "experiment_id" in source.schema("contacts"))


def _measure_expr(m: Measure, plan: AggregationPlan, own: str | None = None) -> pl.Expr:
    """``own``: the experiment whose rows the measure keeps (unless ``every_experiment``)."""
    ts = pl.col(TS_COLUMN[m.table])
    if m.period == "pre":
        assert plan.pre_window is not None
        lo, hi = plan.pre_window
    else:
        lo, hi = plan.window
    window = (ts >= lo) & (ts < hi)
    if own is not None and not m.every_experiment:
        window = window & (pl.col("experiment_id") == own).fill_null(False)
    return measure_expr(m, window)


def _sketch_bin(value: pl.Expr) -> pl.Expr:
    """``stats.quantiles.bin_of`` as a polars expression."""
    size = value.abs()
    k = (size.log() / LOG_GAMMA).ceil() + OFFSET
    return pl.when(size < ZERO).then(0.0).otherwise(value.sign() * k).cast(pl.Int64)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PolarsEngine:
    """The contract tables in a folder, aggregated by polars on this machine."""

    source: FolderSource

    @property
    def label(self) -> str:
        return self.source.label

    def has(self, table: str) -> bool:
        return self.source.has(table)

    def columns(self, table: str) -> list[str]:
        return list(self.source.schema(table).names())

    def check(self) -> list[Problem]:
        with self.source.reading():
            return self.source.check()

    def quality(self, as_of: dt.datetime) -> QualityReport:
        """Every check counted with as little reading as the files allow.

        The checks on one column are one filtered count: row groups whose statistics rule
        them all out (no nulls, timestamps and amounts in range: the usual case) are skipped
        unread. Repeated integer ids are counted on a bitmap in one pass (ids as stored).
        """
        with self.source.reading():
            return self._quality(as_of)

    def _quality(self, as_of: dt.datetime) -> QualityReport:
        src = self.source
        checks = declare_checks({t: self.columns(t) for t in TABLES if src.has(t)})

        def frame(c: Check) -> pl.LazyFrame:
            return src.raw(c.table) if c.kind == "duplicated" else src.scan(c.table)

        by_column: dict[tuple[str, str], list[int]] = {}
        for i, c in enumerate(checks):
            if c.kind != "duplicated":
                by_column.setdefault((c.table, c.column), []).append(i)
        conds = {i: polars_condition(checks[i], as_of) for ids in by_column.values()
                 for i in ids}
        def rows(table: str, column: str, ids: list[int]) -> pl.LazyFrame:
            # timestamps null or out of range: looked for on the stored column's statistics
            if column == TS_COLUMN.get(table) and \
                    {checks[i].kind for i in ids} <= {"out_of_range", "null"}:
                return src.scan_outside(table, column, EARLIEST, as_of + dt.timedelta(days=1))
            return src.scan(table)

        tallies = pl.collect_all([
            rows(table, column, ids).filter(pl.any_horizontal(conds[i] for i in ids))
            .select(conds[i].sum().alias(str(i)) for i in ids)
            for (table, column), ids in by_column.items()])
        counts = {int(k): int(v or 0) for row in tallies
                  for k, v in row.row(0, named=True).items()}
        for i, c in enumerate(checks):
            if c.kind == "duplicated":  # a bitmap over integer ids, else a hash count
                from liftlab.engines.dense import repeated

                column = src.raw(c.table).select(c.column)
                n = repeated(column)
                counts[i] = n if n is not None else int(
                    column.select(polars_count(c, as_of)).collect().item())

        def first_rows(c: Check) -> tuple[int, ...]:
            found = (frame(c).with_row_index("__row", offset=1)
                     .filter(polars_condition(c, as_of)).select("__row")
                     .head(MAX_ROWS_SHOWN).collect())
            return tuple(int(r) for r in found["__row"])

        return build_report(checks, [counts[i] for i in range(len(checks))], first_rows)

    def units(self, spec: Experiment) -> Units:
        with self.source.reading():
            return build_units(spec, self.source, self.source.id_type(spec.unit))

    def aggregate(self, plan: AggregationPlan, units: Units,
                  experiment_id: str) -> pl.DataFrame:
        assert isinstance(units.frame, pl.DataFrame)
        uid = units.frame.schema[plan.unit]
        with self.source.reading():
            return aggregate(plan, units.frame, self.source, uid, experiment_id)

    def histograms(self, plan: AggregationPlan, units: Units,
                   experiment_id: str) -> pl.DataFrame:
        assert isinstance(units.frame, pl.DataFrame)
        uid = units.frame.schema[plan.unit]
        with self.source.reading():
            per_unit = _unit_outcomes(plan, units.frame, self.source, uid, experiment_id)
            keys = list(plan.group_by)
            parts = [per_unit.group_by([*keys, _sketch_bin(pl.col(m.name)).alias("bin")])
                     .agg(pl.len().cast(pl.Int64).alias("n"))
                     .with_columns(pl.lit(m.name).alias("measure")) for m in plan.measures]
            frames = pl.collect_all(parts)
        return pl.concat(frames).with_columns(pl.col(k).cast(pl.String) for k in keys).select(
            *keys, "measure", "bin", "n").sort([*keys, "measure", "bin"])
    def unit_rows(self, plan: AggregationPlan, units: Units, experiment_id: str,
                  attributes: tuple[str, ...]) -> pl.DataFrame:
        assert isinstance(units.frame, pl.DataFrame)
        uid = units.frame.schema[plan.unit]
        with self.source.reading():
            rows = _unit_outcomes(plan, units.frame, self.source, uid, experiment_id)
            if attributes:
                customers = self.source.scan("customers", uid).select(plan.unit, *attributes)
                rows = rows.join(customers.unique(plan.unit, keep="first"), on=plan.unit,
                                 how="left")
            return rows.collect()

    def distinct(self, table: str, column: str, window: tuple[dt.datetime, dt.datetime]
                 ) -> list[str]:
        with self.source.reading():
            return _distinct(self.source, table, column, window)

    def hourly(self, spec: Experiment, units: Units | Callable[[], Units]) -> PolarsHourly:
        return PolarsHourly(spec, tables_from_source(spec, self.source, units), self.source)

    def last_touch(self, spec: Experiment, window: tuple[dt.datetime, dt.datetime]
                   ) -> pl.DataFrame | None:
        if not self.source.has("contacts"):
            return None
        lo, hi = window  # rows read on the stored timestamps first (``scan_between``)
        contacts = self.source.scan_between("contacts", "sent_at",
                                            lo - dt.timedelta(days=LOOKBACK_DAYS), hi)
        if "experiment_id" in self.source.schema("contacts"):
            contacts = contacts.filter(pl.col("experiment_id") == spec.id)

        def credit() -> pl.DataFrame:
            with self.source.reading():
                return last_touch_credit(self.source.scan_between("orders", "ts", lo, hi),
                                         contacts, lo, hi)

        # the same for every experiment of a daily run with this window and these contacts,
        # computed once (shared.py): all of them (the contacts name no experiment), the
        # experiment's own, or none (ids none of the contacts name credit alike)
        key = ("last-touch", lo, hi, _rows_of(self.source, "contacts", spec.id))
        return shared_result(self.source, key, credit, lambda f: int(f.estimated_size()))

    def multichannel_clients(self, lookback: tuple[dt.date, dt.date], outcome_days: int,
                             pre_days: int, usage_events: Sequence[str],
                             attributes: Sequence[str]) -> PolarsClients:
        frame = clients(self.source, lookback, outcome_days, pre_days, usage_events, attributes)
        names = frame.collect_schema().names()
        return PolarsClients(self.source, frame, tuple(a for a in attributes if a in names))

    def latest(self, table: str) -> dt.datetime | None:
        if not self.source.has(table):
            return None

        def newest() -> int | None:
            with self.source.reading():
                return self.source.scan(table).select(  # type: ignore[no-any-return]
                    pl.col(TS_COLUMN[table]).max().dt.epoch("us")).collect().item()

        # asked by every experiment of a daily run (freshness, the default as-of): read once
        micros = shared_result(self.source, ("latest", table), newest, lambda _: 0)
        if micros is None:
            return None
        # read as a number: an absurd timestamp (a damaged file, a typo) is beyond Python's
        # datetime; it is clamped here and reported by the data checks
        try:
            return EPOCH + dt.timedelta(microseconds=micros)
        except OverflowError:
            return dt.datetime.max.replace(tzinfo=dt.UTC) if micros > 0 else \
                dt.datetime.min.replace(tzinfo=dt.UTC)
