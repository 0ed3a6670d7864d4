"""The monitor's shared cohort sums (engines/cohort_sums.py) equal its polars group-by with
``stable_sum`` to the bit, for every experiment sharing the sorted columns: values of both
signs, ties, zeros of both signs, groups without a nonzero value, products."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from liftlab.core.stable import stable_sum
from liftlab.engines.cohort_sums import cohort_sums
from liftlab.engines.shared import shared_reads

NAMES = ["revenue", "conversion", "revenue|pre"]
PRODUCTS = [("revenue", "revenue|pre")]


def _rows(seed: int, n: int = 20_000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    hours = [dt.datetime(2026, 2, 2, h, tzinfo=dt.UTC) for h in range(5)]
    revenue = np.where(rng.random(n) < 0.2, np.round(rng.lognormal(3, 1, n), 2), 0.0)
    revenue[rng.random(n) < 0.01] *= -1  # returns
    revenue[:50] = -0.0
    pre = np.where(rng.random(n) < 0.5, rng.normal(20, 30, n), 0.0)
    pre[100:200] = 7.25  # ties
    return pl.DataFrame(
        {
            "xch": rng.choice(["email", "sms", "push"], n),
            "hour": pl.Series(
                [hours[i] for i in rng.integers(0, len(hours), n)], dtype=pl.Datetime("us", "UTC")
            ),
            "revenue": revenue,
            "conversion": (revenue != 0).astype(np.float64),
            "revenue|pre": pre,
        }
    )


def _plain(frame: pl.DataFrame) -> pl.DataFrame:
    """The definition: _hourly's polars group-by."""
    aggs = [pl.len().cast(pl.Int64).alias("n")]
    for n in NAMES:
        aggs += [
            stable_sum(pl.col(n)).alias(f"s:{n}"),
            stable_sum(pl.col(n) ** 2).alias(f"q:{n}"),
            (pl.col(n) != 0).sum().cast(pl.Int64).alias(f"nz:{n}"),
        ]
    aggs += [stable_sum(pl.col(a) * pl.col(b)).alias(f"x:{a}:{b}") for a, b in PRODUCTS]
    return frame.group_by("xch", "arm", "hour").agg(aggs).sort("xch", "arm", "hour")


def _with_arms(frame: pl.DataFrame, seed: int, arms: list[str]) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.with_columns(pl.Series("arm", rng.choice(arms, frame.height))).select(
        "xch", "arm", pl.exclude("xch", "arm")
    )


def test_shared_sums_equal_the_group_by_for_each_experiment():
    rows = _rows(1)
    source = object()
    with shared_reads() as reads:
        for seed, arms in enumerate(
            [
                ["holdout", "treatment"],
                ["holdout", "treatment"],
                ["holdout", "mens", "womens"],
                ["only"],
            ]
        ):
            frame = _with_arms(rows, seed, arms)
            got = cohort_sums(frame, NAMES, PRODUCTS, source)
            want = _plain(frame)
            assert got.schema == want.schema
            assert got.equals(want), seed
    assert (reads.passes, reads.copies) == (1, 3)  # sorted once, shared by three


def test_other_values_sort_their_own():
    source = object()
    with shared_reads() as reads:
        for seed in (1, 2):
            frame = _with_arms(_rows(seed), seed, ["holdout", "treatment"])
            assert cohort_sums(frame, NAMES, PRODUCTS, source).equals(_plain(frame))
        # same values, one row's hour moved: its group changes, so nothing is shared
        moved = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.col("hour") + dt.timedelta(hours=9))
            .otherwise(pl.col("hour"))
            .alias("hour")
        )
        assert cohort_sums(moved, NAMES, PRODUCTS, source).equals(_plain(moved))
    assert (reads.passes, reads.copies) == (3, 0)


def test_outside_a_daily_run_each_call_sorts():
    frame = _with_arms(_rows(3, 2_000), 3, ["holdout", "treatment"])
    assert cohort_sums(frame, NAMES, PRODUCTS, object()).equals(_plain(frame))
