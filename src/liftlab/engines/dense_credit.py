"""Last-touch credit by direct address: each customer an index into an array.

Polars' as-of join ``by`` customer hashes every order and contact into per-customer groups
and sorts each side by time: at 2 M customers that was most of the cost of the landing
section (1.1 s). With compact integer ids the customer is already an index: a counting pass
gathers each customer's contacts into one run (no sort of the millions of contacts: sorting
them cost more than the join), and each order looks through its customer's run, a handful of
contacts, for the last one at or before it. A customer with many contacts has their run
sorted, and is searched by bisection, so the work stays near linear whatever the data.
Ids that are text or sparse get a compact index first (their position among the distinct
ids of the orders, ``compact_ids``); tests/test_perf_lt.py compares this route with the
as-of join.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from liftlab.engines.hashed_ids import HashedIds
from liftlab.engines.slots import Slots

NO_TOUCH = -1


LONG_RUN = 32  # a customer's contacts beyond this many are sorted, then bisected


def credited_codes(
    slots: Slots,
    order_ids: pl.Series,
    order_ts: pl.Series,
    touch_ids: pl.Series,
    touch_ts: pl.Series,
    touch_codes: pl.Series,
    lookback_us: int,
) -> np.ndarray:
    """Per order, the code of the channel credited by last touch (``NO_TOUCH``: none).

    ``slots`` hold every touch id; timestamps are integers (microseconds); touches have no
    null id or time. The credited touch is the order's customer's last touch at or before the
    order and at most ``lookback_us`` earlier; of several at that instant, the smallest
    code."""
    starts, ts, codes = _runs(
        touch_ids.cast(pl.Int64).to_numpy(),
        touch_ts.to_numpy(),
        touch_codes.cast(pl.Int64).to_numpy(),
        slots.lo,
        slots.size,
    )
    _sort_long_runs(starts, ts, codes)
    ids = order_ids.cast(pl.Int64, strict=False).fill_null(slots.lo - 1).to_numpy()
    out = np.empty(order_ids.len(), dtype=np.int64)
    _credit(starts, ts, codes, slots.lo, ids, order_ts.to_numpy(), lookback_us, out)
    return out


def compact_ids(
    order_ids: pl.Series, touch_ids: pl.Series
) -> tuple[Slots, pl.Series, np.ndarray] | None:
    """The slots of the distinct ids of the orders, each order's customer as their position
    among them (-1: no id) and each touch's (-1: a customer without an order, whose touches
    credit nothing), found in the compiled table of the ids' hashes (``hashed_ids``), each
    found id checked. None when two ids share a hash (the caller joins instead).

    Why: two hash joins of text ids to the distinct ones (the orders', the contacts') were
    most of last-touch credit's CPU at 2 M text customer ids (3.0 s of it; 1.9 s this way)."""
    nulls = order_ids.null_count()
    table = HashedIds.of(order_ids.drop_nulls() if nulls else order_ids)
    if table is None:
        return None
    orders = table.pos if not nulls else table.find(order_ids)
    touches = table.find(touch_ids)
    if orders is None or touches is None:
        return None
    return Slots(0, max(table.keys.len(), 1)), pl.Series(orders), touches


def _sort_long_runs(starts: np.ndarray, ts: np.ndarray, codes: np.ndarray) -> None:
    """Sort the runs longer than ``LONG_RUN`` by (time, code), in place: all of them in one
    numpy sort (by slot, time, code; the runs lie in slot order). Not in the compiled loop:
    a sort there took 6 s to compile on first use."""
    lengths = np.diff(starts)
    at = np.flatnonzero(np.repeat(lengths > LONG_RUN, lengths))
    if at.size:
        slot = np.searchsorted(starts, at, side="right") - 1
        order = np.lexsort((codes[at], ts[at], slot))
        ts[at] = ts[at][order]
        codes[at] = codes[at][order]


@numba.njit(nogil=True, cache=True)
def _runs(ids, ts, codes, lo, size):  # type: ignore[no-untyped-def] # pragma: no cover
    """The touches gathered by slot (a counting sort, in the order they come):
    ``starts[s]:starts[s + 1]`` is the run of slot ``s``."""
    starts = np.zeros(size + 1, dtype=np.int64)
    for i in range(ids.shape[0]):
        starts[ids[i] - lo + 1] += 1
    for s in range(size):
        starts[s + 1] += starts[s]
    fill = starts[:-1].copy()
    run_ts = np.empty_like(ts)
    run_codes = np.empty_like(codes)
    for i in range(ids.shape[0]):
        j = ids[i] - lo
        run_ts[fill[j]] = ts[i]
        run_codes[fill[j]] = codes[i]
        fill[j] += 1
    return starts, run_ts, run_codes


@numba.njit(nogil=True, cache=True)
def _credit(starts, ts, codes, lo, ids, order_ts, lookback, out):  # type: ignore[no-untyped-def] # pragma: no cover
    size = starts.shape[0] - 1
    for i in range(ids.shape[0]):
        out[i] = NO_TOUCH
        j = ids[i] - lo
        if j < 0 or j >= size:
            continue
        t = order_ts[i]
        first, a, b = starts[j], starts[j], starts[j + 1]
        if b - a <= LONG_RUN:  # unsorted: the latest eligible touch, the smallest code
            best = t
            for k in range(a, b):
                if ts[k] < t - lookback or ts[k] > t:
                    continue
                if out[i] == NO_TOUCH or ts[k] > best or (ts[k] == best and codes[k] < out[i]):
                    best, out[i] = ts[k], codes[k]
            continue
        while a < b:  # sorted: the first touch after the order
            mid = (a + b) // 2
            if ts[mid] <= t:
                a = mid + 1
            else:
                b = mid
        q = a - 1
        if q < first or ts[q] < t - lookback:
            continue
        while q > first and ts[q - 1] == ts[q]:  # the first code of that instant
            q -= 1
        out[i] = codes[q]
