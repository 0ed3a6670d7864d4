"""The fast route of stable sums (one sort, sequential adds) equals the plain route
(a sort per group) bit for bit, and neither depends on the order of the rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from liftlab.stable import stable_sum, stable_sums


def _frame(seed: int, n: int = 20_000, groups: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    value = rng.lognormal(3, 2, n) * rng.choice([-1.0, 1.0], n, p=[0.1, 0.9])
    return pl.DataFrame(
        {
            "unit": rng.integers(0, groups, n),
            "ch": pl.Series(rng.choice(["email", "sms", ""], n)).replace("", None),
            "value": value,
            "missing": rng.random(n) < 0.05,
            "keep": rng.random(n) < 0.7,
        }
    ).with_columns(pl.when(~pl.col("missing")).then(pl.col("value")).alias("value"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_route_equals_plain_route_bit_for_bit(seed: int) -> None:
    frame = _frame(seed)
    fast = stable_sums(
        frame,
        ["unit", "ch"],
        {"s": pl.when(pl.col("keep")).then(pl.col("value")), "q": pl.col("value") ** 2},
        [pl.len().alias("n"), pl.col("keep").any().alias("any")],
    )
    plain = frame.group_by("unit", "ch").agg(
        pl.len().alias("n"),
        pl.col("keep").any().alias("any"),
        stable_sum(pl.col("value").filter(pl.col("keep"))).alias("s"),
        stable_sum(pl.col("value") ** 2).alias("q"),
    )
    order = ["unit", "ch"]
    fast, plain = fast.sort(order, nulls_last=True), plain.sort(order, nulls_last=True)
    assert fast.height == plain.height == frame.select("unit", "ch").unique().height
    assert fast.select(plain.columns).equals(plain)
    # a group whose values are all null or filtered out sums to 0.0, as stable_sum says
    assert (fast["s"] == 0.0).sum() > 0


def test_fast_route_ignores_row_order() -> None:
    frame = _frame(4)
    sums = {"s": pl.col("value")}
    one = stable_sums(frame, ["unit"], sums).sort("unit")
    other = stable_sums(frame.sample(fraction=1.0, shuffle=True, seed=9), ["unit"], sums)
    assert one.equals(other.sort("unit"))
    assert one["s"].to_numpy() == pytest.approx(
        frame.group_by("unit").agg(pl.col("value").sum()).sort("unit")["value"].to_numpy(),
        rel=1e-12,
        abs=1e-9,
    )
