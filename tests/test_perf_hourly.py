"""The monitor's hourly update (issue 23): its fast routes give the plain routes' results.

Assignment times and first sends by numpy for integer ids (engines/earliest.py) are the
compiled scatter's (dense_monitor.first_times); an update reuses the looks the cache holds
and reads out the same document as a readout that solves them."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_series_equal

from layouts import CANONICAL, Layout, base_tables, write_layout
from liftlab.analyses import monitor
from liftlab.app.monitoring import monitor_file
from liftlab.data.folder import FolderSource
from liftlab.engines import dense_monitor
from liftlab.engines import polars_monitor as pm
from liftlab.engines.earliest import first_times_direct
from liftlab.engines.open import open_engine
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.spec.loader import load_experiment

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


# -- what the cache keeps of unchanged files ---------------------------------------------------
EXPERIMENT = Path(__file__).parent.parent / "experiments" / "spring-factorial.yaml"
AS_OF = dt.datetime(2026, 2, 20, 12, tzinfo=dt.UTC)
LAYOUTS = (
    CANONICAL,
    Layout(customer_id="text", fmt="parts", ts="naive"),
    Layout(customer_id="uuid", order_id="text", fmt="csv"),
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hourly")
    base = base_tables(root / "base")
    return {layout.id: write_layout(layout, base, root / layout.id) for layout in LAYOUTS}


def _update(data: Path, cache: Path) -> dict[str, object]:
    """A readout a day before ``AS_OF`` into ``cache``, then the update at ``AS_OF``."""
    monitor_file(EXPERIMENT, data, AS_OF - dt.timedelta(days=1), cache, None)
    return monitor_file(EXPERIMENT, data, AS_OF, cache, None)[0].to_json()


def _forbid(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{name} ran although the cache kept its result")

    monkeypatch.setattr(target, name, refused)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.id)
def test_an_update_of_unchanged_files_takes_back_what_the_cache_kept(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout
) -> None:
    """Exposures, their assignment counts and the digests of the cached hours' rows come
    back from the cache: the update builds no units, reads no assignments or contacts, and
    hashes only the rows of its new hours; the document is the one of the same update
    that keeps nothing (``restore`` off), cache counts included."""
    data = folders[layout.id]
    with monkeypatch.context() as plain:
        plain.setattr(pm.PolarsHourly, "restore", lambda self, state, exposures: None)
        expected = _update(data, tmp_path / "plain")
    monitor_file(EXPERIMENT, data, AS_OF - dt.timedelta(days=1), tmp_path / "kept", None)
    hashed: list[int] = []
    digest = pm._digest
    monkeypatch.setattr(
        pm, "_digest", lambda frame: hashed.append(digest(frame)[0]) or digest(frame)
    )
    _forbid(monkeypatch, PolarsEngine, "units")
    _forbid(monkeypatch, pm, "_exposures")
    _forbid(monkeypatch, monitor, "_per_time")
    update = monitor_file(EXPERIMENT, data, AS_OF, tmp_path / "kept", None)[0].to_json()
    assert update == expected
    assert update["cache"]["hours_from_cache"] > 0  # type: ignore[index]
    orders = FolderSource(data).raw("orders").select(pl.len()).collect().item()
    assert 0 < sum(hashed) < orders / 4


def _row_before(ts: pl.Series, at: dt.datetime) -> int:
    """The position of the latest time before ``at`` (a row of a cached hour)."""
    naive = ts.dt.replace_time_zone(None)
    latest = naive.filter(naive < at.replace(tzinfo=None)).max()
    return int((naive == latest).arg_true()[0])


@pytest.mark.parametrize("change", ["contact", "order", "part"])
def test_a_changed_file_is_read_again(
    folders: dict[str, Path], tmp_path: Path, change: str
) -> None:
    """A past contact sent earlier (the exposures change), a past order's revenue, a new
    part file of orders in the cached hours: the update recomputes what they change and
    reads out what a readout without a cache does."""
    layout = LAYOUTS[1] if change == "part" else CANONICAL
    data = tmp_path / "data"
    shutil.copytree(folders[layout.id], data)
    cache = tmp_path / "cache"
    monitor_file(EXPERIMENT, data, AS_OF - dt.timedelta(days=1), cache, None)
    if change == "contact":
        contacts = pl.read_parquet(data / "contacts.parquet")
        contacts.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.col("sent_at") - dt.timedelta(hours=5))
            .otherwise(pl.col("sent_at"))
            .alias("sent_at")
        ).write_parquet(data / "contacts.parquet")
    elif change == "order":
        orders = pl.read_parquet(data / "orders.parquet")
        orders.with_columns(
            pl.when(
                pl.int_range(pl.len()) == _row_before(orders["ts"], AS_OF - dt.timedelta(days=2))
            )
            .then(pl.col("revenue") + 7)
            .otherwise(pl.col("revenue"))
            .alias("revenue")
        ).write_parquet(data / "orders.parquet")
    else:
        parts = sorted((data / "orders").glob("*.parquet"))
        orders = pl.read_parquet(parts[-1])
        row = _row_before(orders["ts"], AS_OF - dt.timedelta(days=2))
        orders.slice(row, 1).write_parquet(data / "orders" / "part-999.parquet")
    update = monitor_file(EXPERIMENT, data, AS_OF, cache, None)[0].to_json()
    fresh = monitor_file(EXPERIMENT, data, AS_OF, None, None)[0].to_json()
    if change != "contact":  # a changed row of the cached hours: nothing cached is used
        assert update["cache"] == fresh["cache"]  # type: ignore[index]
    update.pop("cache"), fresh.pop("cache")
    assert update == fresh


UPDATE = """
import sys
sys.argv = ["liftlab", *sys.argv[1:]]
from liftlab.app.cli import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print("LOADED", ",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("numba", "scipy")
                                or m == "liftlab.analyses.experiment")), file=sys.stderr)
"""


def test_an_update_imports_no_compiler_solver_or_batch_analysis(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    """An hourly update whose files are unchanged runs in a fresh interpreter, as a user
    runs it, without numba, scipy or the batch analysis (each a tenth of a second or more
    to import); it prints what the update that reads everything again prints."""
    data, cache = folders[CANONICAL.id], tmp_path / "cache"
    monitor_file(EXPERIMENT, data, AS_OF - dt.timedelta(days=1), cache, None)
    args = ["monitor", str(EXPERIMENT), "--data", str(data), "--as-of", AS_OF.isoformat()]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")}
    done = subprocess.run(
        [sys.executable, "-c", UPDATE, *args, "--cache", str(cache)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    loaded = [line for line in done.stderr.splitlines() if line.startswith("LOADED")]
    assert loaded == ["LOADED "], done.stderr
    plain = subprocess.run(
        [sys.executable, "-m", "liftlab.app.cli", *args, "--cache", str(tmp_path / "fresh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert plain.returncode == 0, plain.stderr
    assert done.stdout == plain.stdout
    assert "email" in done.stdout or "spring-factorial" in done.stdout


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.id)
def test_rows_digests_read_on_stored_timestamps_are_the_tables(
    folders: dict[str, Path], layout: Layout
) -> None:
    """The fingerprint of a folder's rows, filtered on the stored timestamps first
    (``scan_between``), is the one of the same tables filtered after conversion."""
    spec = load_experiment(EXPERIMENT)
    engine = open_engine(folders[layout.id], spec.timezone)
    source = engine.hourly(spec, engine.units(spec))  # type: ignore[arg-type]
    exposure = source.exposures(dt.timedelta(hours=72))
    metrics = list(spec.metrics)  # type: ignore[attr-defined]
    plain = pm.PolarsHourly(spec, source.tables)  # type: ignore[arg-type]
    for until in (AS_OF - dt.timedelta(days=1), AS_OF):
        assert source.fingerprint(exposure, metrics, until) == plain.fingerprint(
            exposure, metrics, until
        )
