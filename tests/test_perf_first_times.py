"""The monitor's first times (assignment, first send) without any row to place: the short
route (every time null) equals both scatters' answer, for integer and text ids."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_series_equal

from liftlab.engines import dense_monitor
from liftlab.engines import polars_monitor as pm
from liftlab.engines.earliest import first_times_direct

CHANNELS = ["email", "sms"]


@pytest.mark.parametrize("ids", ["int", "text"])
def test_no_rows_give_every_unit_a_null_time(ids: str) -> None:
    n = 500
    units = pl.DataFrame(
        {"customer_id": np.arange(n) * 2, "xch": np.where(np.arange(n) % 3 == 0, "sms", "email")}
    )
    if ids == "text":
        units = units.with_columns(pl.col("customer_id").cast(pl.String))
    rows = pl.DataFrame(
        schema={"customer_id": units.schema["customer_id"], "code": pl.Int64, "time": pl.Int64}
    )
    short = pm._first_times(units, "customer_id", CHANNELS, rows)
    compiled = dense_monitor.first_times(units, "customer_id", CHANNELS, rows)
    assert_series_equal(short, compiled, check_names=False, check_exact=True)
    assert short.null_count() == n
    direct = first_times_direct(units, "customer_id", CHANNELS, rows)
    if direct is not None:
        assert_series_equal(short, direct, check_names=False, check_exact=True)
