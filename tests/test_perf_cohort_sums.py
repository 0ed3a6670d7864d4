"""The monitor's shared cohort sums (engines/cohort_sums.py) equal its polars group-by with
``stable_sum`` to the bit, for every experiment sharing the sorted columns: values of both
signs, ties, zeros of both signs, groups without a nonzero value, products."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from liftlab.core.stable import stable_sum
from liftlab.engines.cohort_sums import SortedColumns, cohort_sums, statistic_columns
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
            got = cohort_sums(frame, NAMES, PRODUCTS, source, "key")
            want = _plain(frame)
            assert got.schema == want.schema
            assert got.equals(want), seed
    assert (reads.passes, reads.copies) == (1, 3)  # sorted once, shared by three


def _moved_hour(frame: pl.DataFrame) -> pl.DataFrame:
    first = pl.int_range(pl.len()) == 0
    return frame.with_columns(
        pl.when(first)
        .then(pl.col("hour") + dt.timedelta(hours=9))
        .otherwise(pl.col("hour"))
        .alias("hour")
    )


def _other_channel(frame: pl.DataFrame) -> pl.DataFrame:
    first = pl.int_range(pl.len()) == 0
    return frame.with_columns(
        pl.when(first).then(pl.lit("zzz")).otherwise(pl.col("xch")).alias("xch")
    )


def _nan(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(float("nan"))
        .otherwise(pl.col("revenue|pre"))
        .alias("revenue|pre")
    )


def test_rows_the_kept_order_does_not_hold_are_sorted_again():
    first = _with_arms(_rows(1), 1, ["holdout", "treatment"])
    others = [
        _with_arms(_rows(2), 2, ["holdout", "treatment"]),
        _moved_hour(first),
        _other_channel(first),
        _nan(first),
        first.head(1000),
    ]
    kept = SortedColumns.of(first, first.select(**statistic_columns(NAMES, PRODUCTS)))
    assert kept.holds(first, NAMES)
    source = object()
    with shared_reads():
        assert cohort_sums(first, NAMES, PRODUCTS, source, "key").equals(_plain(first))
        for frame in others:  # found under the same key, not used
            assert not kept.holds(frame, NAMES)
            got, want = cohort_sums(frame, NAMES, PRODUCTS, source, "key"), _plain(frame)
            assert got.equals(want)


def test_outside_a_daily_run_each_call_sorts():
    frame = _with_arms(_rows(3, 2_000), 3, ["holdout", "treatment"])
    assert cohort_sums(frame, NAMES, PRODUCTS, object(), None).equals(_plain(frame))
