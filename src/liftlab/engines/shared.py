"""Reads shared by the analyses of one run (the daily report).

Why: a daily report analyses many experiments on the same tables, and most of what the
direct-address pass (``dense.py``) reads does not depend on the experiment. One table's
per-unit slots (row counts and value sums per unit and class) depend on the table, the
measures of that table, the windows, the slots' id range and the id type; not on the arms,
the segments or the experiment's id (except the contacts, filtered by ``experiment_id``: their
key holds it). The first experiment's pass leaves its slots here; the next experiment with the
same key copies them instead of reading the table again.

Sharing never changes a number: a block is the array the pass would have filled (the same rows
added in the same order from zero), copied bit for bit into the experiment's array. A pass
that stops (``dense.Unexpected``) leaves nothing behind. Outside ``shared_reads()`` every pass
reads its table, as a single ``analyze`` does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

# The blocks kept for the run may take this much memory; the least recently used go first (an
# analysis's windows and its plan's history windows are read in turn, experiment after
# experiment). A block larger than this is used once and not kept.
SHARED_BYTES = 2 * 2**30


@dataclass
class SharedReads:
    """The per-table slot blocks of one run, by key (see the module's docstring)."""

    budget: int = SHARED_BYTES
    passes: int = 0  # table passes actually run (the rest were copied)
    copies: int = 0
    _blocks: OrderedDict[Hashable, np.ndarray] = field(default_factory=OrderedDict)
    # each keyed source is kept alive for the run, so that its id() is never reused by another
    _sources: dict[int, object] = field(default_factory=dict)

    def fill(
        self,
        source: object,
        key: Hashable,
        acc: np.ndarray,
        offset: int,
        width: int,
        run_pass: Callable[[np.ndarray, int], None],
    ) -> None:
        """``acc[:, offset:offset + width]`` as ``run_pass(acc, offset)`` fills it from zeros,
        copied from an earlier identical pass over the same ``source`` when one is kept."""
        self._sources[id(source)] = source
        full = (id(source), key, acc.shape[0], width)
        block = self._blocks.get(full)
        if block is None:
            block = np.zeros((acc.shape[0], width))
            run_pass(block, 0)  # a pass that raises keeps nothing
            self.passes += 1
            block.flags.writeable = False  # read by every later experiment: never changed
            self._keep(full, block)
        else:
            self._blocks.move_to_end(full)
            self.copies += 1
        acc[:, offset : offset + width] = block

    def _keep(self, key: Hashable, block: np.ndarray) -> None:
        if block.nbytes > self.budget:
            return
        self._blocks[key] = block
        while sum(b.nbytes for b in self._blocks.values()) > self.budget:
            self._blocks.popitem(last=False)


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


def fill_slots(
    source: object,
    key: Hashable,
    acc: np.ndarray,
    offset: int,
    width: int,
    run_pass: Callable[[np.ndarray, int], None],
) -> None:
    """One table's pass into ``acc[:, offset:offset + width]``: shared inside
    ``shared_reads()``, run here otherwise."""
    reads = _ACTIVE.get()
    if reads is None:
        run_pass(acc, offset)
    else:
        reads.fill(source, key, acc, offset, width, run_pass)
