"""Unit ids found by a compiled table of their 64-bit hashes, in the order the rows come.

Shared by the monitor's per-unit pass (``dense_monitor``) and the aggregate's positional
route for text or sparse ids (``polars_engine._by_position``): a hash join of millions of rows
to millions of units keeps no row order unless asked, and asked it cost 5 times this lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import polars as pl


@dataclass(frozen=True)
class HashedIds:
    """Text (or sparse integer) ids found through an open-addressing table of their 64-bit
    hashes, compiled: a join of millions of rows to millions of units (the hash join's
    build, probe and gather) was most of the pass for text ids. Equal hashes of different
    ids are caught, not trusted: every id found is compared with the unit's id, and any
    mismatch sends the whole column to the join."""

    keys: pl.Series  # the distinct ids, in order of first appearance
    pos: np.ndarray  # each input id's position among them
    hashes: np.ndarray  # the open-addressing table: a key's hash ...
    where: np.ndarray  # ... and its position (-1: an empty cell)

    @staticmethod
    def of(ids: pl.Series) -> HashedIds | None:
        """The table of these ids; the last one built when they are the same ids.

        Why the memo: one command builds the table of the same column several times (the
        monitor's assignment times, first sends and per-unit pass each look up the same
        (unit, channel) rows: 3 builds of 5 M text ids, 0.3-0.4 s of CPU each at 2 M
        customers). The ids are compared in full (and their hashes), so a different column
        never gets the table; the table is read-only (its positions shared)."""
        h = _hash(ids)
        for seen, seen_h, table in _LAST:
            if seen.dtype == ids.dtype and np.array_equal(seen_h, h) and seen.equals(ids):
                return table
        table = HashedIds._build(ids, h)
        _LAST[:] = [(ids.clone(), h, table)]  # a clone: a later scatter into ``ids`` is not it
        return table

    @staticmethod
    def _build(ids: pl.Series, h: np.ndarray) -> HashedIds | None:
        size = 1 << max(4, int(2 * ids.len()).bit_length())
        hashes = np.zeros(size, dtype=np.uint64)
        where = np.full(size, -1, dtype=np.int64)
        first = np.empty(ids.len(), dtype=np.int64)
        pos = np.empty(ids.len(), dtype=np.int64)
        n = _insert(h, hashes, where, first, pos)
        keys = ids.gather(first[:n])
        if not _same(ids, keys, pos):
            return None
        pos.flags.writeable = False
        return HashedIds(keys, pos, hashes, where)

    def find(self, ids: pl.Series) -> np.ndarray | None:
        """Each id's position, -1 when absent or null; None when a found id is not the
        unit's id (a hash shared by two ids)."""
        ids = ids.cast(self.keys.dtype, strict=False) if ids.dtype != self.keys.dtype else ids
        pos = _probe(_hash(ids), self.hashes, self.where)
        pos[ids.is_null().to_numpy()] = -1
        found = pos >= 0
        return pos if _same(ids.filter(pl.Series(found)), self.keys, pos[found]) else None


# The last table built: (its ids, their hashes, the table or None for a shared hash). One
# entry: a command's repeated builds come one after the other, and a table of millions of
# ids is hundreds of MB.
_LAST: list[tuple[pl.Series, np.ndarray, HashedIds | None]] = []


def _hash(ids: pl.Series) -> np.ndarray:
    return ids.hash(seed=0x6D6F6E).to_numpy()


def _same(ids: pl.Series, keys: pl.Series, pos: np.ndarray) -> bool:
    """Whether each id is the key at its position."""
    return bool((ids == keys.gather(pos)).all())


@numba.njit(nogil=True, cache=True)
def _insert(h, hashes, where, first, pos):  # type: ignore[no-untyped-def]
    """Number the distinct hashes in order of first appearance (linear probing)."""
    mask = np.uint64(hashes.shape[0] - 1)
    one = np.uint64(1)
    n = 0
    for i in range(h.shape[0]):
        j = h[i] & mask
        while where[j] >= 0 and hashes[j] != h[i]:
            j = (j + one) & mask
        if where[j] < 0:
            hashes[j] = h[i]
            where[j] = n
            first[n] = i
            n += 1
        pos[i] = where[j]
    return n


@numba.njit(nogil=True, cache=True)
def _probe(h, hashes, where):  # type: ignore[no-untyped-def]
    mask = np.uint64(hashes.shape[0] - 1)
    one = np.uint64(1)
    out = np.empty(h.shape[0], dtype=np.int64)
    for i in range(h.shape[0]):
        j = h[i] & mask
        while where[j] >= 0 and hashes[j] != h[i]:
            j = (j + one) & mask
        out[i] = where[j]
    return out


def positions_by_join(ids: pl.Series, keys: pl.Series) -> np.ndarray:
    """Each id's position among ``keys`` (distinct), -1 when absent or null: a join that
    keeps the ids' order."""
    found = pl.DataFrame({"k": ids}).join(
        pl.DataFrame({"k": keys, "i": pl.int_range(keys.len(), dtype=pl.Int64, eager=True)}),
        on="k",
        how="left",
        maintain_order="left",
    )
    return found["i"].fill_null(-1).to_numpy()
