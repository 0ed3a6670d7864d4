"""The monitor's fast row route (engines/polars_monitor.py: one read, one join and one
group-by on the unit per table, the baseline read along with the hourly statistics) gives
what the plain definitions give, computed here unit by unit in Python."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import numpy as np
import polars as pl
import pytest

from liftlab.engines import polars_monitor as pm
from liftlab.spec.loader import parse_experiment

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
TS = pl.Datetime("us", "UTC")
H = dt.timedelta(hours=1)
SPEC = parse_experiment("""\
schema_version: 1
id: three
start: 2026-03-02
end: 2026-03-09
channels:
  email: {holdout: 0.2}
  sms: {holdout: 0.3}
  mail: {holdout: 0.5}
design: factorial
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: web_orders, kind: count, table: orders, purchase_channel: web}
  - {name: capped, kind: mean, table: orders, value: revenue, winsorize: 0.9}
  - {name: unsubscribe, kind: binary, table: events, event: unsubscribe, guardrail: true}
primary_metric: revenue
monitoring: {sequential: true, response_window_hours: 12}
""")
WINDOW = dt.timedelta(hours=12)
METRICS = [m for m in SPEC.metrics if m.kind != "ratio"]
TESTED = [m for m in METRICS if m.name == "revenue" or m.guardrail]


def _us(t: dt.datetime) -> int:
    return int(t.timestamp() * 1e6)


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    """400 units, each in one to three channels; e-mail is a batch send (its holdout is
    exposed at the batch time), SMS enrols continuously, mail has no contacts (exposed when
    assigned); orders and events spread from two days before to four days after."""
    rng = np.random.default_rng(5)
    n = 400
    rows = []
    for ch, share in (("email", 0.2), ("sms", 0.3), ("mail", 0.5)):
        ids = np.flatnonzero(rng.random(n) < 0.8)
        late = rng.integers(0, 48, len(ids)) if ch == "sms" else np.zeros(len(ids), int)
        for i, h in zip(ids, late, strict=True):
            rows.append(
                (
                    int(i),
                    ch,
                    "holdout" if rng.random() < share else "treatment",
                    _us(T0 + int(h) * H + dt.timedelta(minutes=int(rng.integers(60)))),
                )
            )
    assignments = pl.DataFrame(
        rows, schema=["customer_id", "channel", "group", "assigned_at"], orient="row"
    ).with_columns(pl.col("assigned_at").cast(TS))
    treated = assignments.filter(pl.col("group") == "treatment", pl.col("channel") != "mail")
    contacts = treated.select(
        "customer_id",
        "channel",
        pl.when(pl.col("channel") == "email")
        .then(pl.lit(T0 + 9 * H))
        .otherwise(pl.col("assigned_at") + H)
        .cast(TS)
        .alias("sent_at"),
        pl.lit("three").alias("experiment_id"),
    )
    contacts = pl.concat(
        [
            contacts,
            contacts.head(30).with_columns(  # a second send, later
                pl.col("sent_at") + 5 * H
            ),
        ]
    )
    k = 3000
    start = _us(T0 - 2 * 24 * H)
    orders = pl.DataFrame(
        {
            "customer_id": rng.integers(0, n, k),
            "channel": rng.choice(["web", "store"], k),
            "ts": rng.integers(start, _us(T0 + 4 * 24 * H), k),
            "revenue": np.round(rng.lognormal(3, 1, k), 2),
        }
    ).with_columns(pl.col("ts").cast(TS))
    events = pl.DataFrame(
        {
            "customer_id": rng.integers(0, n, 600),
            "event": rng.choice(["unsubscribe", "open"], 600),
            "ts": rng.integers(start, _us(T0 + 4 * 24 * H), 600),
        }
    ).with_columns(pl.col("ts").cast(TS))
    return {"assignments": assignments, "contacts": contacts, "orders": orders, "events": events}


def _lazy(tables: dict[str, pl.DataFrame]) -> dict[str, pl.LazyFrame]:
    return {k: v.lazy() for k, v in tables.items()}


def test_exposures_equal_the_per_pair_group_by(tables):
    fast = pm._exposures(SPEC, _lazy(tables), WINDOW)
    sends = (
        tables["contacts"]
        .group_by("customer_id", pl.col("channel").alias("xch"))
        .agg(pl.col("sent_at").min().alias("sent"))
    )
    plain = {}
    batch = {ch: sends.filter(pl.col("xch") == ch)["sent"].min() for ch in SPEC.channels}
    first = {(r["customer_id"], r["xch"]): r["sent"] for r in sends.iter_rows(named=True)}
    for r in tables["assignments"].iter_rows(named=True):
        ch, at = r["channel"], r["assigned_at"]
        sent = first.get((r["customer_id"], ch))
        plain[(r["customer_id"], ch)] = sent or (at if batch[ch] is None else max(batch[ch], at))
    got = {(r["customer_id"], r["xch"]): r["exposed_at"] for r in fast.iter_rows(named=True)}
    assert got == plain
    assert fast.select((pl.col("mature") - pl.col("exposed_at") >= WINDOW).all()).item()
    assert all(c.n_chunks() == 1 for c in fast.get_columns())  # rechunked once, where built


def _plain_units(tables, exposure: pl.DataFrame, last: dt.datetime):
    """Per (unit, channel): each metric over its window rows before ``last``, the first
    response of each tested metric, and the pre-period revenue and responses (all before
    exposure, whatever ``last``)."""
    rows = {t: tables[t].to_dicts() for t in ("orders", "events")}
    by_unit = {t: defaultdict(list) for t in rows}
    for t, rs in rows.items():
        for r in rs:
            by_unit[t][r["customer_id"]].append(r)
    out = {}
    for u, ch, arm, e, mature in exposure.select(
        "customer_id", "xch", "arm", "exposed_at", "mature"
    ).iter_rows():
        o_in = [r for r in by_unit["orders"][u] if e <= r["ts"] < min(e + WINDOW, last)]
        o_pre = [r for r in by_unit["orders"][u] if e - WINDOW <= r["ts"] < e]
        v_in = [
            r
            for r in by_unit["events"][u]
            if e <= r["ts"] < min(e + WINDOW, last) and r["event"] == "unsubscribe"
        ]
        v_pre = [
            r
            for r in by_unit["events"][u]
            if e - WINDOW <= r["ts"] < e and r["event"] == "unsubscribe"
        ]
        out[(u, ch)] = {
            "arm": arm,
            "mature": mature,
            "revenue": math.fsum(r["revenue"] for r in o_in),
            "web_orders": float(sum(r["channel"] == "web" for r in o_in)),
            "unsubscribe": float(bool(v_in)),
            "first:revenue": min((r["ts"] for r in o_in), default=None),
            "first:unsubscribe": min((r["ts"] for r in v_in), default=None),
            "pre": math.fsum(r["revenue"] for r in o_pre),
            "r:revenue": float(bool(o_pre)),
            "r:unsubscribe": float(bool(v_pre)),
        }
    return out


@pytest.mark.parametrize("hours", [20, 40, 200])
def test_hourly_and_baseline_equal_the_plain_definitions(tables, hours):
    lazy = _lazy(tables)
    exposure = pm._exposures(SPEC, lazy, WINDOW)
    last = T0 + hours * H
    cohort, events, rows, read_along = pm._hourly(
        SPEC, lazy, exposure, METRICS, TESTED, WINDOW, None, last
    )
    units = _plain_units(tables, exposure, last)
    assert rows > 0
    # cohort statistics per (channel, arm, maturity hour) of the unwinsorised metrics
    want: dict = defaultdict(lambda: defaultdict(float))
    for (_, ch), v in units.items():
        if v["mature"] <= last:
            cell = want[(ch, v["arm"], v["mature"])]
            cell["n"] += 1
            for m in ("revenue", "web_orders", "unsubscribe"):
                cell[f"s:{m}"] += v[m]
                cell[f"q:{m}"] += v[m] ** 2
                cell[f"nz:{m}"] += v[m] != 0
    got = {(r["xch"], r["arm"], r["hour"]): r for r in cohort.iter_rows(named=True)}
    assert set(got) == set(want)
    for key, cell in want.items():
        for col, value in cell.items():
            assert got[key][col] == pytest.approx(value, rel=1e-12), (key, col)
    # first responses per (metric, channel, arm, hour)
    k: dict = defaultdict(int)
    for (_, ch), v in units.items():
        for m in ("revenue", "unsubscribe"):
            if v[f"first:{m}"] is not None:
                hour = v[f"first:{m}"].replace(minute=0, second=0, microsecond=0) + H
                k[(m, ch, v["arm"], hour)] += 1
    assert {
        (r["metric"], r["xch"], r["arm"], r["hour"]): r["k"] for r in events.iter_rows(named=True)
    } == dict(k)
    # the baseline: from the same read when every unit was exposed by ``last``
    standalone = pm._baseline(SPEC, lazy, exposure, WINDOW, TESTED)
    everyone = exposure["exposed_at"].max() <= last
    assert (read_along is not None) == everyone
    if everyone:
        assert read_along == standalone
    for ch in SPEC.channels:
        pre = [v for (_, c), v in units.items() if c == ch]
        assert standalone[ch]["mean"] == pytest.approx(np.mean([v["pre"] for v in pre]))
        assert standalone[ch]["sd"] == pytest.approx(np.std([v["pre"] for v in pre], ddof=1))
        for m in ("revenue", "unsubscribe"):
            assert standalone[ch][f"r:{m}"] == pytest.approx(np.mean([v[f"r:{m}"] for v in pre]))


def test_winsorised_metric_is_capped_within_each_maturity_cohort(tables):
    lazy = _lazy(tables)
    exposure = pm._exposures(SPEC, lazy, WINDOW)
    last = T0 + 200 * H
    cohort, *_ = pm._hourly(SPEC, lazy, exposure, METRICS, TESTED, WINDOW, None, last)
    units = _plain_units(tables, exposure, last)
    groups: dict = defaultdict(list)
    for (_, ch), v in units.items():
        groups[(ch, v["mature"])].append((v["arm"], v["revenue"]))
    want: dict = defaultdict(float)
    for (ch, mature), vs in groups.items():
        cap = np.quantile([x for _, x in vs], 0.9)
        for arm, x in vs:
            want[(ch, arm, mature)] += min(x, cap)
    got = {(r["xch"], r["arm"], r["hour"]): r["s:capped"] for r in cohort.iter_rows(named=True)}
    assert got == pytest.approx(dict(want), rel=1e-12)


def test_an_update_reads_only_units_with_an_open_window(tables):
    lazy = _lazy(tables)
    exposure = pm._exposures(SPEC, lazy, WINDOW)
    after, last = T0 + 40 * H, T0 + 60 * H
    whole, events, *_ = pm._hourly(SPEC, lazy, exposure, METRICS, TESTED, WINDOW, None, last)
    upto, events_upto, *_ = pm._hourly(SPEC, lazy, exposure, METRICS, TESTED, WINDOW, None, after)
    new, events_new, rows, read_along = pm._hourly(
        SPEC, lazy, exposure, METRICS, TESTED, WINDOW, after, last
    )
    assert read_along is None and rows > 0
    key = ["xch", "arm", "hour"]
    both = pl.concat([upto, new]).sort(key)
    assert both.equals(whole.sort(key).select(both.columns))
    ev = pl.concat([events_upto, events_new]).sort("metric", *key)
    assert ev.equals(events.sort("metric", *key))


def test_stable_sum_without_zeros_is_the_sorted_sum_bit_for_bit():
    from liftlab.core.stable import stable_sum

    rng = np.random.default_rng(2)
    n = 20_000
    x = np.where(rng.random(n) < 0.2, rng.normal(0, 1e3, n) * rng.lognormal(0, 4, n), 0.0)
    frame = pl.DataFrame({"g": rng.integers(0, 7, n), "x": x})
    got = frame.group_by("g").agg(stable_sum(pl.col("x")).alias("s")).sort("g")
    for g, s in got.iter_rows():
        values = np.sort(x[frame["g"].to_numpy() == g])
        assert s == np.cumsum(values)[-1]  # sequential sum of all sorted values, zeros too
    empty = pl.DataFrame({"x": [0.0, 0.0]}).select(stable_sum(pl.col("x"))).item()
    assert empty == 0.0


def test_assignment_times_from_a_folder_equal_the_per_pair_join(tables, tmp_path):
    from liftlab.engines.open import open_engine

    assignments = tables["assignments"].with_columns(pl.lit("three").alias("experiment_id"))
    assignments.write_parquet(tmp_path / "assignments.parquet")
    ids = assignments["customer_id"].unique().sort()
    pl.DataFrame({"customer_id": ids}).write_parquet(tmp_path / "customers.parquet")
    for name in ("contacts", "orders", "events"):
        tables[name].write_parquet(tmp_path / f"{name}.parquet")
    engine = open_engine(tmp_path, SPEC.timezone, "polars")
    got = engine.hourly(SPEC, engine.units(SPEC)).tables["assignments"].collect()
    want = assignments.select("customer_id", "channel", "group", "assigned_at")
    key = ["customer_id", "channel"]
    assert got.sort(key).equals(want.sort(key).select(got.columns))


def test_cache_fingerprint_reads_only_rows_the_cached_hours_depend_on(tables, tmp_path):
    """A row changed before the first exposure's pre-period keeps the cache; one changed
    inside it (the baseline reads it) invalidates the cache."""
    from liftlab.analyses.monitor import run_monitor

    def readout(data: dict[str, pl.DataFrame], hours: int):
        return run_monitor(SPEC, _lazy(data), T0 + hours * H, tmp_path)

    first = pm._exposures(SPEC, _lazy(tables), WINDOW)["exposed_at"].min()
    readout(tables, 60)
    orders = tables["orders"]
    old = orders.with_columns(
        pl.when(pl.col("ts") < first - WINDOW)
        .then(pl.col("revenue") + 1.0)
        .otherwise(pl.col("revenue"))
        .alias("revenue")
    )
    assert readout({**tables, "orders": old}, 70).hours_from_cache == 60
    pre = old.with_columns(
        pl.when((pl.col("ts") >= first - WINDOW) & (pl.col("ts") < first))
        .then(pl.col("revenue") + 1.0)
        .otherwise(pl.col("revenue"))
        .alias("revenue")
    )
    assert readout({**tables, "orders": pre}, 80).hours_from_cache == 0
