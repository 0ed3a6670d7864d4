"""Reads shared by the analyses of one run (the daily report).

Why: a daily report analyses many experiments on the same tables, and much of what an
analysis reads does not depend on the experiment. The first experiment's result is kept
here; the next experiment with the same key (and, where given, the same content) gets it
instead of reading the tables again (``shared_result``):

- the direct-address pass's per-unit slots (``dense.py``: row counts and value sums per unit
  and class), per table a function of the table, its measures, the windows, the slots' id
  range and the id type; not of the arms, the segments or the experiment's id (except the
  contacts, filtered by ``experiment_id``: their key holds it, unless none of the contacts
  names the experiment). The array of all the tables of an analysis is shared whole, when
  every table's key is the same, and read only (copying per-table blocks into each
  experiment's array cost about as much as reading the tables, and keeping both the blocks
  and the arrays overran the memory budget: experiments with contacts of their own share no
  slots);
- the monitor's per-unit pass over one table and its baseline (functions of the units, their
  channels and exposure times, given by value as ``content``, the statistics, the windows and
  the rows; not of the arms, so experiments with the same units and exposures group the
  same columns by their own arms);
- last-touch credit (the orders, the window and the contacts: all of them, the experiment's
  own, or none when the contacts name experiments and none this one) and a table's latest
  time.

The hash route (ids that are not compact integers) shares its per-unit frames likewise
(``unit_frame``): per table, the measures of every id with rows in the windows (the
experiment's units are picked by the join that follows).

Sharing never changes a number: a kept result is the one the experiment would compute (the
same rows added in the same order), except on the hash route, whose sums are in thread order
with or without sharing (its results agree to the last few bits, as two plain runs do). A
build that stops (``dense.Unexpected``) keeps nothing. Outside ``shared_reads()`` every
result is built, as in a single ``analyze``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

import polars as pl

# The results kept for the run may take this much memory; the least recently used go first
# (an analysis's windows and its plan's history windows are read in turn, experiment after
# experiment). A result larger than this is used once and not kept.
SHARED_BYTES = 2 * 2**30

V = TypeVar("V")


@dataclass(frozen=True, eq=False)
class Content:
    """A frame a shared result depends on, compared by value (rebuilt by each experiment);
    its digest (row count, sum of row hashes) is computed once, to place it among the
    kept results, and ``equals`` with its schema confirms it."""

    frame: pl.DataFrame
    digest: tuple[int, int]

    @staticmethod
    def of(frame: pl.DataFrame) -> Content:
        return Content(frame, (frame.height, int(frame.hash_rows(seed=11).sum() or 0)))

    def same(self, other: Content) -> bool:
        return (
            self.digest == other.digest
            and self.frame.schema == other.frame.schema
            and self.frame.equals(other.frame)
        )


@dataclass
class SharedReads:
    """The kept results of one run, by key (see the module's docstring)."""

    budget: int = SHARED_BYTES
    passes: int = 0  # results built (the rest were shared)
    copies: int = 0
    _kept: OrderedDict[Hashable, tuple[object, int]] = field(default_factory=OrderedDict)
    # each keyed source is kept alive for the run, so that its id() is never reused by another
    _sources: dict[int, object] = field(default_factory=dict)

    def frame(
        self, source: object, key: Hashable, build: Callable[[], pl.LazyFrame]
    ) -> pl.DataFrame:
        """``build()`` collected, or the frame an earlier identical build left."""
        self._sources[id(source)] = source
        full = (id(source), key)
        found = self._kept.get(full)
        if found is not None:
            self._kept.move_to_end(full)
            self.copies += 1
            assert isinstance(found[0], pl.DataFrame)
            return found[0]
        frame = build().collect()
        self.passes += 1
        self._keep(full, frame, int(frame.estimated_size()))
        return frame

    def result(
        self,
        source: object,
        key: Hashable,
        content: Content | None,
        build: Callable[[], V],
        size: Callable[[V], int],
    ) -> V:
        """``build()``, or what an earlier build with the same key and ``content`` (compared
        by value) returned."""
        self._sources[id(source)] = source
        full = (id(source), key, None if content is None else content.digest)
        found = self._kept.get(full)
        if found is not None:
            kept_content, value = found[0]  # type: ignore[misc]
            if content is None or content.same(kept_content):
                self._kept.move_to_end(full)
                self.copies += 1
                return value  # type: ignore[no-any-return]
        value = build()
        self.passes += 1
        extra = 0 if content is None else int(content.frame.estimated_size())
        self._keep(full, (content, value), size(value) + extra)
        return value

    def _keep(self, key: Hashable, value: object, size: int) -> None:
        if size > self.budget:
            return
        self._kept[key] = (value, size)
        while sum(size for _, size in self._kept.values()) > self.budget:
            self._kept.popitem(last=False)


_ACTIVE: ContextVar[SharedReads | None] = ContextVar("liftlab_shared_reads", default=None)


@contextmanager
def shared_reads(budget: int = SHARED_BYTES) -> Iterator[SharedReads]:
    """Share table passes between the analyses run inside the block (one daily run)."""
    reads = SharedReads(budget)
    token = _ACTIVE.set(reads)
    try:
        yield reads
    finally:
        _ACTIVE.reset(token)


def unit_frame(
    source: object,
    key: Hashable,
    shared: Callable[[], pl.LazyFrame],
    alone: Callable[[], pl.LazyFrame],
) -> pl.LazyFrame:
    """One table's per-unit measures on the hash route: ``alone()`` (this experiment's units
    only, lazily) outside ``shared_reads()``; inside it, ``shared()`` (every id with rows, so
    that it serves any experiment's units) collected once for the run."""
    reads = _ACTIVE.get()
    if reads is None:
        return alone()
    return reads.frame(source, key, shared).lazy()


def sharing() -> bool:
    """Inside ``shared_reads()``: worth computing a key that finds more to share."""
    return _ACTIVE.get() is not None


def shared_result(
    source: object | None,
    key: Hashable,
    build: Callable[[], V],
    size: Callable[[V], int],
    content: Content | None = None,
) -> V:
    """``build()`` (a result of ``source``'s rows that does not depend on the experiment
    beyond ``key`` and ``content``): once for the run inside ``shared_reads()``, the same
    object for every later experiment with an equal key and content; built each time
    outside it, or without a source. The result is never changed by its users."""
    reads = _ACTIVE.get()
    if reads is None or source is None:
        return build()
    return reads.result(source, key, content, build, size)
