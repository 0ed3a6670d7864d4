"""Where integer unit ids land by direct address (``id - lo``), shared by the compiled passes
(engines/dense.py, dense_monitor.py) and the numpy one (earliest.py). Kept apart from
dense.py so that a caller without a compiled pass does not import numba."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

MAX_SPREAD = 4  # ids may spread over up to this many slots per unit (gaps in the sequence)
MIN_SLOTS = 1 << 16  # small tables are always dense enough


@dataclass(frozen=True)
class Slots:
    """Where a unit id lands: slot ``id - lo`` of an array of ``size`` slots."""

    lo: int
    size: int

    @staticmethod
    def fit(ids: pl.Series, spread: int = MAX_SPREAD) -> Slots | None:
        """Slots for these ids, or None when they are not integers or too sparse."""
        if not ids.dtype.is_integer() or ids.len() == 0 or ids.null_count():
            return None
        return Slots.span(int(ids.min()), int(ids.max()), ids.len(), spread)  # type: ignore[arg-type]

    @staticmethod
    def span(lo: int, hi: int, count: int, spread: int) -> Slots | None:
        """Slots for ``count`` ids between ``lo`` and ``hi``, or None when that range is more
        than ``spread`` slots per id (or beyond 64-bit arithmetic)."""
        size = hi - lo + 1
        fits = abs(lo) < 2**62 and abs(hi) < 2**62
        return Slots(lo, size) if fits and size <= max(spread * count, MIN_SLOTS) else None
