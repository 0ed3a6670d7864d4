"""Each unit's earliest time per channel by numpy alone, for integer unit ids in a dense
range: the monitor's assignment times and first sends (``polars_monitor``).

``dense_monitor.first_times`` does the same scatter in compiled code; a process that runs
nothing else compiled (the monitor's hourly update) paid 0.6 s for it at 2 M customers:
importing numba and its first dispatch (numba's target set-up imports scipy.linalg). Here
the unit's slot is ``(id - min id) * channels + channel``, found by arithmetic, and
``numpy.minimum.at`` keeps each slot's earliest time: the same minimum, so the same values
(tests/test_perf_hourly.py compares the routes). Text or sparse ids return None (the
caller takes the compiled route, whose hashed lookup they need).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from liftlab.engines.slots import Slots

NONE = np.iinfo(np.int64).max  # a slot without a time


def first_times_direct(
    units: pl.DataFrame, unit: str, channels: list[str], rows: pl.DataFrame
) -> pl.Series | None:
    """For each row of ``units`` (a unit and a channel ``xch``), the earliest ``time`` (µs)
    of ``rows`` (``unit``, ``code``: the channel's position in ``channels``, ``time``) of that
    unit and channel, null for none; None when the unit ids are not integers in a range of
    at most ``slots.MAX_SPREAD`` slots per unit."""
    ids = units[unit]
    slots = Slots.fit(ids)
    if slots is None:
        return None
    lo, size = slots.lo, slots.size
    hi = lo + size - 1
    width = len(channels)
    code = units["xch"].cast(pl.Enum(channels)).to_physical().to_numpy().astype(np.int64)
    row_slot = (ids.cast(pl.Int64).to_numpy() - lo) * width + code
    uid = pl.col(unit).cast(pl.Int64, strict=False)
    found = (
        rows.lazy()
        .filter(uid.is_between(lo, hi) & pl.col("time").is_not_null())
        .select(((uid - lo) * width + pl.col("code")).alias("slot"), pl.col("time").cast(pl.Int64))
        .collect()
    )
    earliest = np.full(size * width, NONE, dtype=np.int64)
    np.minimum.at(earliest, found["slot"].to_numpy(), found["time"].to_numpy())
    out = earliest[row_slot]
    return pl.Series(out).set(pl.Series(out == NONE), None)  # type: ignore[arg-type]
