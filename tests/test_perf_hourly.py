"""The monitor's hourly update (issue 23): its fast routes give the plain routes' results.

Assignment times and first sends by numpy for integer ids (engines/earliest.py) are the
compiled scatter's (dense_monitor.first_times); an update reuses the looks the cache holds
and reads out the same document as a readout that solves them."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_series_equal

from liftlab.engines import dense_monitor
from liftlab.engines.earliest import first_times_direct

CHANNELS = ["email", "sms", "push"]


def _case(seed: int, n_units: int, n_rows: int, gap: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Units (some in several channels) with integer ids ``gap`` apart, and rows of times
    per unit and channel: ids of no unit inside and outside the range, null ids and times,
    equal times, negative ids."""
    rng = np.random.default_rng(seed)
    ids = -50 + gap * np.arange(n_units)
    units = pl.DataFrame(
        {
            "customer_id": np.repeat(ids, 2),
            "xch": [CHANNELS[(i + k) % 3] for i in range(n_units) for k in (0, 1)],
        }
    )
    row_ids = rng.choice(np.concatenate([ids, ids + 1, [-10_000, 10**9]]), n_rows)
    rows = pl.DataFrame(
        {
            "customer_id": row_ids,
            "code": rng.integers(0, 3, n_rows),
            "time": rng.integers(1_700_000_000_000_000, 1_700_000_000_000_000 + 10**9 // 7, n_rows),
        }
    ).with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 0)
        .then(None)
        .otherwise(pl.col("customer_id"))
        .alias("customer_id"),
        pl.when(pl.int_range(pl.len()) % 89 == 0)
        .then(None)
        .otherwise(pl.col("time"))
        .alias("time"),
    )
    return units, rows


@pytest.mark.parametrize(
    ("seed", "n_units", "n_rows", "gap"),
    [(1, 1_000, 5_000, 1), (2, 20_000, 50_000, 3), (3, 7, 40, 2), (4, 500, 0, 1)],
)
def test_first_times_by_numpy_are_the_compiled_scatter(
    seed: int, n_units: int, n_rows: int, gap: int
) -> None:
    units, rows = _case(seed, n_units, n_rows, gap)
    direct = first_times_direct(units, "customer_id", CHANNELS, rows)
    compiled = dense_monitor.first_times(units, "customer_id", CHANNELS, rows)
    assert direct is not None
    assert_series_equal(direct, compiled, check_names=False, check_exact=True)
    if n_rows:
        assert 0 < direct.null_count() < direct.len()


def test_text_and_sparse_ids_take_the_compiled_route() -> None:
    units, rows = _case(5, 100, 300, 1)
    text = units.with_columns(pl.col("customer_id").cast(pl.String))
    assert first_times_direct(text, "customer_id", CHANNELS, rows) is None
    sparse = units.with_columns(pl.col("customer_id") * 10**6)
    assert first_times_direct(sparse, "customer_id", CHANNELS, rows) is None


def _doc(result: object) -> dict[str, object]:
    doc = result.to_json()  # type: ignore[attr-defined]
    doc.pop("cache")
    return doc  # type: ignore[no-any-return]


def test_an_update_solves_no_look_an_earlier_readout_solved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache keeps the event looks and SRM tests it solved (``_Memo.saved``): an update
    whose counts have stopped changing solves none (the solvers fail here if called) and
    reads out what a readout that solves them all does, bit for bit."""
    from liftlab.analyses.monitor import run_monitor
    from liftlab.spec.loader import parse_experiment
    from liftlab.stats import sequential as seq
    from test_monitor import SEND, SPEC, make_send

    tables = {k: v.lazy() for k, v in make_send(lift=0.5, n=20_000, seed=7).items()}
    spec = parse_experiment(SPEC)
    at = SEND + dt.timedelta(hours=40)
    run_monitor(spec, tables, SEND + dt.timedelta(hours=30), tmp_path)  # windows closed
    solved = _doc(run_monitor(spec, tables, at, tmp_path / "other"))

    def unsolvable(*args: object) -> None:
        raise AssertionError("a look the cache holds was solved again")

    monkeypatch.setattr(seq, "event_look", unsolvable)
    monkeypatch.setattr(seq, "multinomial_mixture_p", unsolvable)
    update = run_monitor(spec, tables, at, tmp_path)
    assert update.hours_from_cache == 30 and update.hours_computed == 10
    assert _doc(update) == solved
    assert any(r["rate_ratio_ci"][0] is not None for r in solved["timeline"])  # type: ignore[index, union-attr]


def test_looks_read_back_are_the_looks_solved() -> None:
    """JSON keeps every float of a look, infinities included."""
    from liftlab.analyses.monitor import _Memo

    memo = _Memo({})
    for k_t, k_h in ((0, 0), (150, 90), (5, 0), (0, 7)):
        memo.event(k_t, k_h, 0.9, 123.456, 0.0125)
    memo.srm([900, 100], [0.9, 0.1], 55.5)
    back = _Memo.loaded(json.loads(json.dumps(memo.saved())))
    assert back.keys() == memo.store.keys()
    assert repr(back) == repr(memo.store)
    assert any(math.isinf(v.upper) for k, v in back.items() if k[0] == "event")
