"""Compiled per-unit pass of the monitor (``polars_monitor._unit_pass``'s fast route).

Each unit's windows are relative to its own exposure per channel, so a hash group-by on the
unit has to carry every row's exposures and evaluate every period as a condition inside the
aggregation; at 2 M customers that was 7.7 s of the 11 s readout. Here the rows are read once
into arrays, each row's unit found (direct address for integer ids, a compiled table of
64-bit hashes for text ids, each id found compared with the unit's), the rows some
statistic keeps put in unit order by a counting sort, and a compiled loop reads each unit's
rows together against its channels' exposures: for every statistic the period test and the
row's condition, results written into the exposure rows' arrays. Each unit's first send and
assignment time per channel (``first_times``) are a scatter of each row's time into its
unit's slot.

Results are the same bits as the polars definition whatever the order of the rows:
counts, "any" and first responses do not depend on order, and each sum is the sum of its
sorted non-zero values added one after the other, which is what ``core.stable.stable_sum``
computes (the values of one unit, statistic and channel are sorted, then added).
tests/test_perf_monitor_dense.py compares both routes column by column and
tests/test_perf_unitpass.py compares ``table_stats`` with its definition in polars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import polars as pl

from liftlab.engines.hashed_ids import HashedIds, positions_by_join
from liftlab.engines.slots import Slots

PERIODS = ("in", "before", "pre")  # the response window, the window before, the pre-period
KINDS = ("sum", "count", "any", "first")
MISSING = np.iinfo(np.int64).min  # no exposure (a null time)
NO_FIRST = np.iinfo(np.int64).max  # no response


@dataclass(frozen=True)
class Task:
    """One per-unit statistic: ``kind`` over the unit's rows in ``period`` (relative to its
    exposure) where ``cond`` holds (None: every row); ``value`` is the summed column."""

    name: str
    period: str
    kind: str
    cond: pl.Expr | None = None
    value: str | None = None


@dataclass(frozen=True)
class Lookup:
    """Where a unit id sits among the units: direct address (``id - lo``) for integer ids
    in a dense range, else its position among the distinct ids (``keys``), by a join."""

    slots: Slots | None
    keys: pl.Series | None
    is_unit: np.ndarray
    hashed: HashedIds | None  # keys found by their hash, then checked (else by a join)

    @staticmethod
    def of(ids: pl.Series) -> tuple[Lookup, np.ndarray]:
        """The lookup of these ids (no nulls) and each one's position."""
        slots = (
            Slots.span(int(ids.min()), int(ids.max()), ids.len(), 4)  # type: ignore[arg-type]
            if ids.dtype.is_integer() and ids.len()
            else None
        )
        if slots is not None:
            pos = ids.cast(pl.Int64).to_numpy() - slots.lo
            is_unit = np.zeros(slots.size, dtype=np.bool_)
            is_unit[pos] = True
            return Lookup(slots, None, is_unit, None), pos
        table = HashedIds.of(ids)
        if table is not None:
            keys, pos = table.keys, table.pos
        else:  # two distinct ids share a 64-bit hash: the join
            keys = ids.unique(maintain_order=True)
            pos = positions_by_join(ids, keys)
        is_unit = np.ones(keys.len(), dtype=np.bool_)
        return Lookup(None, keys, is_unit, table), pos

    @property
    def size(self) -> int:
        return int(self.is_unit.shape[0])

    def positions(self, ids: pl.Series) -> np.ndarray:
        """Each id's unit position, -1 when it is no unit's (or null)."""
        if self.slots is None:
            assert self.keys is not None
            found = None if self.hashed is None else self.hashed.find(ids)
            return positions_by_join(ids, self.keys) if found is None else found
        raw = ids.cast(pl.Int64, strict=False).fill_null(self.slots.lo - 1).to_numpy()
        out = np.empty(raw.shape[0], dtype=np.int64)  # numpy's: see table_stats
        _direct(raw, self.slots.lo, self.is_unit, out)
        return out


@dataclass(frozen=True)
class UnitIndex:
    """The units of the exposure rows and their accumulators: unit ``u`` in channel ``c``
    owns slot ``u * channels + c`` (a unit's channels side by side, so that a row touches
    one stretch of memory); each slot's exposure (µs, the earliest of its rows, MISSING
    when the unit is not in the channel), each exposure row's slot, each slot's first
    exposure row (-1: none) and the rows that are not their slot's first (usually none)."""

    unit: str
    channels: int
    lookup: Lookup
    exposure: np.ndarray
    row_slot: np.ndarray
    slot_row: np.ndarray
    repeats: np.ndarray

    @staticmethod
    def of(frame: pl.DataFrame, unit: str, channels: list[str]) -> UnitIndex:
        """From rows of (unit, channel ``xch``, ``exposed_at``); ids without nulls."""
        lookup, pos = Lookup.of(frame[unit])
        row_slot = slots_of(pos, channel_codes(frame["xch"], channels), len(channels))
        exposed = frame["exposed_at"].cast(pl.Datetime("us", "UTC")).to_physical()
        exposure = np.full(lookup.size * len(channels), MISSING, dtype=np.int64)
        _earliest(
            row_slot, exposed.fill_null(MISSING).to_numpy().astype(np.int64, copy=False), exposure
        )
        slot_row = np.full(exposure.shape[0], -1, dtype=np.int64)
        repeats = _first_rows(row_slot, slot_row)
        return UnitIndex(unit, len(channels), lookup, exposure, row_slot, slot_row, repeats)

    def positions(self, ids: pl.Series) -> np.ndarray:
        return self.lookup.positions(ids)


def channel_codes(column: pl.Series, channels: list[str]) -> np.ndarray:
    """Each value's position in ``channels`` (every value is one of them). The frames of
    (unit, channel) rows come a channel after the other: one cast per run of equal values,
    then repeated, takes a third of the time of a cast of millions of strings."""
    runs = column.rle().struct.unnest()
    codes = runs["value"].cast(pl.Enum(channels)).to_physical().to_numpy().astype(np.int64)
    return np.repeat(codes, runs["len"].to_numpy())


def slots_of(pos: np.ndarray, codes: np.ndarray, channels: int) -> np.ndarray:
    """Each row's slot (``pos * channels + code``), -1 where ``pos`` is (no unit's)."""
    out = np.empty(pos.shape[0], dtype=np.int64)
    _slots(pos, codes, channels, out)
    return out


def channel_code(channels: list[str]) -> pl.Expr:
    """A rows query's ``channel`` (one of ``channels``) as its position there, computed in
    the query (a cast of a column of millions of strings after it is several times
    slower)."""
    return pl.col("channel").cast(pl.Enum(channels)).to_physical().cast(pl.Int64).alias("code")


def first_times(
    units: pl.DataFrame, unit: str, channels: list[str], rows: pl.DataFrame
) -> pl.Series:
    """For each row of ``units`` (a unit and a channel ``xch``), the earliest ``time`` (µs)
    of ``rows`` (``unit``, ``code``: the channel's ``channel_code``, ``time``) of that unit
    and channel, null for none: the first send per unit and channel without a hash group-by
    over every contact and a join back (a scatter of each row's time into its unit's slot,
    then a gather)."""
    lookup, pos = Lookup.of(units[unit])
    row_slot = slots_of(pos, channel_codes(units["xch"], channels), len(channels))
    slot = slots_of(lookup.positions(rows[unit]), rows["code"].to_numpy(), len(channels))
    earliest = np.full(lookup.size * len(channels), MISSING, dtype=np.int64)
    times = rows["time"].fill_null(MISSING).to_numpy().astype(np.int64, copy=False)
    _earliest(slot, times, earliest)
    found = earliest[row_slot]
    return pl.Series(found).set(pl.Series(found == MISSING), None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TableStats:
    """One table's statistics per exposure row: ``values`` per task (Float64; first
    responses as µs, null for none), whether the row's unit had any row of the table
    (``has``), and the number of rows of units read."""

    values: dict[str, np.ndarray]
    firsts: dict[str, np.ndarray]
    has: np.ndarray
    rows: int


def table_stats(
    rows: pl.LazyFrame, index: UnitIndex, tasks: list[Task], window_us: int, pre_us: int
) -> TableStats:
    """``tasks`` over ``rows`` (a table with its time as ``_ts``, already cut to the read
    range) for every exposure row of ``index``.

    The rows come in time order and their units at random: adding each row into its unit's
    accumulators where it stands cost several cache misses per row (the unit's exposures,
    each statistic's array, the sums' values gathered in a second pass), 1.2 s of the 2 M
    readout. Instead the rows some statistic keeps are put in unit order first (a counting
    sort: two passes over the rows, one over the units), then each unit's rows are read
    together, each sum from the unit's values sorted in a small buffer, and the results
    written straight into the exposure rows' arrays (per-slot arrays gathered to the rows
    after were as many again of memory, hundreds of MB, mostly page faults)."""
    conds = list({_key(t.cond): t.cond for t in tasks if t.cond is not None}.values())
    values = list(dict.fromkeys(t.value for t in tasks if t.kind == "sum" and t.value))
    frame = rows.select(
        pl.col(index.unit),
        pl.col("_ts").dt.epoch("us").alias("_ts"),
        *[c.fill_null(False).alias(f"c{i}") for i, c in enumerate(conds)],
        *[pl.col(v).cast(pl.Float64).fill_null(0.0).alias(f"v{i}") for i, v in enumerate(values)],
    ).collect()
    pos = index.positions(frame[index.unit])
    ts = frame["_ts"].to_numpy().astype(np.int64, copy=False)
    cond_arr = _matrix(frame, [f"c{i}" for i in range(len(conds))], np.bool_)
    val_arr = _matrix(frame, [f"v{i}" for i in range(len(values))], np.float64)
    del frame
    spec = _TaskArrays.of(tasks, conds, values)
    # Every large array is numpy's, filled by the compiled loops: numpy asks the kernel for
    # huge pages (a 40 MB array: about 570 page faults, 9,800 when numba allocates it), and
    # page faults were seconds of system time per analyze.
    has = np.zeros(index.lookup.size, dtype=np.bool_)
    starts = np.zeros(index.lookup.size + 1, dtype=np.int64)
    read = _count(pos, cond_arr, spec.cond, has, starts)
    np.cumsum(starts, out=starts)  # counts into where each unit's rows start
    order = np.empty(starts[-1], dtype=np.int64)
    _unit_order(pos, cond_arr, spec.cond, starts[:-1].copy(), order)
    # the kept rows' columns in unit order, so that the pass reads them in order (a gather
    # is a few hundredths of a second; reading through ``order`` cost 0.14 s of cache misses)
    ts, cond_arr, val_arr = (np.take(a, order, axis=0) for a in (ts, cond_arr, val_arr))
    n = index.row_slot.shape[0]
    floats = np.zeros((spec.n_float, n))  # one contiguous array per statistic
    first = np.full((spec.n_first, n), NO_FIRST, dtype=np.int64)
    _unit_pass(
        starts,
        ts,
        cond_arr,
        val_arr,
        index.channels,
        index.exposure,
        window_us,
        pre_us,
        spec.period,
        spec.cond,
        spec.kind,
        spec.value,
        spec.column,
        index.slot_row,
        floats,
        first,
    )
    if index.repeats.size:  # a slot's other rows: its first row's results
        same = index.slot_row[index.row_slot[index.repeats]]
        floats[:, index.repeats] = floats[:, same]
        first[:, index.repeats] = first[:, same]
    out, firsts = {}, {}
    for t, kind, col in zip(tasks, spec.kind, spec.column, strict=True):
        if kind == 3:
            firsts[t.name] = first[col]
        else:
            out[t.name] = floats[col]
    return TableStats(out, firsts, has[index.row_slot // index.channels], int(read))


def _matrix(frame: pl.DataFrame, names: list[str], dtype: type) -> np.ndarray:
    """The columns side by side, a row per row (one column: no copy of a numeric one)."""
    if len(names) == 1:
        return frame[names[0]].to_numpy().astype(dtype, copy=False).reshape(-1, 1)
    if not names:
        return np.zeros((frame.height, 0), dtype=dtype)
    return np.column_stack([frame[n].to_numpy() for n in names]).astype(dtype, copy=False)


def _key(cond: pl.Expr) -> str:
    return cond.meta.serialize(format="json")


@dataclass(frozen=True)
class _TaskArrays:
    period: np.ndarray
    cond: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    column: np.ndarray  # the task's column in the float array (sums, counts, any) or firsts
    n_float: int
    n_first: int

    @staticmethod
    def of(tasks: list[Task], conds: list[pl.Expr], values: list[str | None]) -> _TaskArrays:
        kinds = [KINDS.index(t.kind) for t in tasks]
        shown = [_key(c) for c in conds]  # a condition several statistics share is one column
        cond = [-1 if t.cond is None else shown.index(_key(t.cond)) for t in tasks]
        counters = [0, 0]  # float results (sums, counts, "any"), first responses
        column = []
        for kind in kinds:
            column.append(counters[kind == 3])
            counters[kind == 3] += 1
        return _TaskArrays(
            np.array([PERIODS.index(t.period) for t in tasks], dtype=np.int64),
            np.array(cond, dtype=np.int64),
            np.array(kinds, dtype=np.int64),
            np.array(
                [values.index(t.value) if t.kind == "sum" else -1 for t in tasks], dtype=np.int64
            ),
            np.array(column, dtype=np.int64),
            counters[0],
            counters[1],
        )


@numba.njit(nogil=True, cache=True)
def _direct(raw: np.ndarray, lo: int, is_unit: np.ndarray, out: np.ndarray) -> None:
    for i in range(raw.shape[0]):
        u = raw[i] - lo
        out[i] = u if 0 <= u < is_unit.shape[0] and is_unit[u] else -1


@numba.njit(nogil=True, cache=True)
def _earliest(row_slot: np.ndarray, times: np.ndarray, exposure: np.ndarray) -> None:
    """Each slot's earliest time (rows of slot -1 skipped)."""
    for i in range(row_slot.shape[0]):
        t, s = times[i], row_slot[i]
        if s >= 0 and t != MISSING and (exposure[s] == MISSING or t < exposure[s]):
            exposure[s] = t


@numba.njit(nogil=True, cache=True)
def _slots(pos: np.ndarray, codes: np.ndarray, channels: int, out: np.ndarray) -> None:
    for i in range(pos.shape[0]):
        out[i] = pos[i] * channels + codes[i] if pos[i] >= 0 else -1


@numba.njit(nogil=True, cache=True)
def _first_rows(row_slot: np.ndarray, slot_row: np.ndarray) -> np.ndarray:
    """Each slot's first row (slots without one left as they are); the other rows."""
    repeats = 0
    for r in range(row_slot.shape[0]):
        if slot_row[row_slot[r]] < 0:
            slot_row[row_slot[r]] = r
        else:
            repeats += 1
    out = np.empty(repeats, dtype=np.int64)
    repeats = 0
    for r in range(row_slot.shape[0]):
        if slot_row[row_slot[r]] != r:
            out[repeats] = r
            repeats += 1
    return out


@numba.njit(nogil=True, cache=True, inline="always")
def _counts(i: int, conds: np.ndarray, cond: np.ndarray) -> bool:
    """Whether row ``i`` meets the condition of some statistic (one without a condition
    takes every row): most events rows are of kinds no metric reads."""
    for k in range(cond.shape[0]):  # noqa: SIM110 (a loop: numba compiles no generator)
        if cond[k] < 0 or conds[i, cond[k]]:
            return True
    return False


@numba.njit(nogil=True, cache=True)
def _count(pos, conds, cond, has, counts):  # type: ignore[no-untyped-def]
    """Which units have rows (``has``); per unit ``u`` the number of its rows some
    statistic keeps, in ``counts[u + 1]``; the number of rows of units."""
    read = 0
    for i in range(pos.shape[0]):
        u = pos[i]
        if u < 0:
            continue
        read += 1
        has[u] = True
        if _counts(i, conds, cond):
            counts[u + 1] += 1
    return read


@numba.njit(nogil=True, cache=True)
def _unit_order(pos, conds, cond, cursor, order):  # type: ignore[no-untyped-def]
    """The rows ``_count`` counted, by unit: from ``cursor[u]`` (where unit ``u``'s rows
    start; moved to where they end)."""
    for i in range(pos.shape[0]):
        u = pos[i]
        if u >= 0 and _counts(i, conds, cond):
            order[cursor[u]] = i
            cursor[u] += 1


@numba.njit(nogil=True, cache=True)
def _unit_pass(
    starts,
    ts,
    conds,
    vals,
    channels,
    exposure,
    window,
    pre,
    period,
    cond,
    kind,
    value,
    column,
    slot_row,
    floats,
    first,
):  # type: ignore[no-untyped-def]
    """Each statistic of each slot of each unit with rows, from the unit's rows (rows
    ``starts[u]`` to ``starts[u + 1]`` of ``ts``, ``conds`` and ``vals``), into the
    slot's first exposure row: sums, counts and "any" into ``floats``, first responses
    into ``first`` (only those that differ from the arrays' zeros and NO_FIRST: pages of
    units without responses are left untouched). A row outside all of the slot's periods
    (most rows: a unit's periods are a few days of the weeks read) is passed over with one
    test; a row inside tests each period once, not once per statistic."""
    tasks = kind.shape[0]
    most = 0
    for u in range(starts.shape[0] - 1):
        most = max(most, starts[u + 1] - starts[u])
    buffer = np.empty(tasks * most)  # each sum's values, task k's from k * most
    n = np.zeros(tasks, dtype=np.int64)  # per statistic: values or rows so far
    low = np.full(tasks, NO_FIRST, dtype=np.int64)  # and the first time (reset when used)
    reach = max(window, pre)
    for u in range(starts.shape[0] - 1):
        a, b = starts[u], starts[u + 1]
        if a == b:
            continue
        for s in range(u * channels, (u + 1) * channels):
            e = exposure[s]
            if e == MISSING:
                continue
            hit = False
            for r in range(a, b):
                t = ts[r]
                if t < e - reach or t >= e + window:
                    continue
                hit = True
                inside = (t >= e, e - window <= t < e, e - pre <= t < e)  # PERIODS' order
                for k in range(tasks):
                    if not inside[period[k]]:
                        continue
                    if cond[k] >= 0 and not conds[r, cond[k]]:
                        continue
                    kk = kind[k]
                    if kk == 0:
                        v = vals[r, value[k]]
                        if v != 0:
                            buffer[k * most + n[k]] = v
                            n[k] += 1
                    elif kk == 3:
                        low[k] = min(low[k], t)
                    else:
                        n[k] += 1
            if not hit:
                continue
            row = slot_row[s]  # a slot with an exposure has rows
            for k in range(tasks):
                kk = kind[k]
                if kk == 3:
                    if low[k] != NO_FIRST:
                        first[column[k], row] = low[k]
                        low[k] = NO_FIRST
                elif n[k] == 0:
                    continue
                elif kk == 0:
                    floats[column[k], row] = _sorted_total(buffer, k * most, n[k])
                else:
                    floats[column[k], row] = float(n[k]) if kk == 1 else 1.0
                n[k] = 0


@numba.njit(nogil=True, cache=True)
def _sorted_total(values, a, n):  # type: ignore[no-untyped-def]
    """``values[a:a + n]`` sorted, then added one after the other (``stable_sum``; 0.0
    for none)."""
    b = a + n
    if n > 16:
        values[a:b] = np.sort(values[a:b])
    else:  # insertion sort in place (NaN last, as np.sort and polars put it)
        for x in range(a + 1, b):
            v = values[x]
            y = x - 1
            while y >= a and (values[y] > v or (np.isnan(values[y]) and not np.isnan(v))):
                values[y + 1] = values[y]
                y -= 1
            values[y + 1] = v
    total = 0.0
    for x in range(a, b):
        total = values[x] if x == a else total + values[x]
    return total
