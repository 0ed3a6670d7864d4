"""Scale benchmark (issue 8): N customers and ~5N orders, one factorial experiment.

Times in one run, side by side on the same files:
  (a) liftlab: the full analysis (quality checks, units, aggregation, every comparison);
  (b) the analysis as an analyst would write it: pandas to build per-customer outcomes and
      statsmodels OLS (HC1) per channel and metric;
  (c) the floor: one polars scan summing the columns the analysis needs.
Reports a/b, a/c and the peak memory (RSS) of each, measured in separate processes; each
route runs ``--repeat`` times, taking turns, and the medians are compared (timings on a shared
virtual machine vary by 20-30% from run to run).

    python benchmarks/bench_scale.py --customers 10000000      # the issue's target
    python benchmarks/bench_scale.py --customers 1000000       # a quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

START = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
SPEC = """\
schema_version: 1
id: bench
start: 2026-02-02
end: 2026-02-23
channels:
  email: {holdout: 0.2, cost_per_contact: 0.002}
  mail: {holdout: 0.3, cost_per_contact: 0.85}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: conversion, kind: binary, table: orders}
primary_metric: revenue
covariates: {pre_period_days: 28}
segments: [segment]
"""


def generate(root: Path, n: int, orders_per_customer: float = 5.0, seed: int = 1) -> None:
    """Customers, orders over 7 weeks (4 pre-period + 3 in window), assignments."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = np.arange(n, dtype=np.int64)
    pl.DataFrame({"customer_id": ids,
                  "segment": rng.choice(np.array(["gold", "silver", "bronze"]), n)}
                 ).write_parquet(root / "customers.parquet")
    arms = {ch: np.where(rng.random(n) < h, "holdout", "treatment")
            for ch, h in (("email", 0.2), ("mail", 0.3))}
    pl.concat([pl.DataFrame({"experiment_id": "bench", "customer_id": ids, "channel": ch,
                             "group": arm, "assigned_at": START}) for ch, arm in arms.items()]
              ).write_parquet(root / "assignments.parquet")
    m = int(n * orders_per_customer)
    parts = 10
    (root / "orders").mkdir(exist_ok=True)
    for p in range(parts):
        k = m // parts
        cid = rng.integers(0, n, k)
        seconds = rng.integers(-28 * 86400, 21 * 86400, k)
        pl.DataFrame({
            "order_id": np.arange(p * k, (p + 1) * k, dtype=np.int64), "customer_id": cid,
            "ts": pl.Series(seconds * 1_000_000 + int(START.timestamp() * 1e6)).cast(
                pl.Datetime("us", "UTC")),
            "channel": rng.choice(np.array(["web", "store", "phone"]), k),
            "revenue": rng.lognormal(3.5, 1.0, k),
        }).write_parquet(root / "orders" / f"part-{p}.parquet")


def run_liftlab(root: Path) -> None:
    import yaml

    from liftlab.analyses.experiment import analyze
    from liftlab.engines.open import open_engine
    from liftlab.spec.models import Experiment

    spec = Experiment.model_validate(yaml.safe_load(SPEC))
    result = analyze(spec, open_engine(root))
    assert result.effects


def run_pandas(root: Path) -> None:
    import pandas as pd
    import statsmodels.formula.api as smf

    cust = pd.read_parquet(root / "customers.parquet")
    orders = pd.read_parquet(root / "orders")
    arms = pd.read_parquet(root / "assignments.parquet").pivot(
        index="customer_id", columns="channel", values="group")
    start = pd.Timestamp("2026-02-02", tz="UTC")
    end, pre = start + pd.Timedelta(days=21), start - pd.Timedelta(days=28)
    win = orders[(orders.ts >= start) & (orders.ts < end)]
    before = orders[(orders.ts >= pre) & (orders.ts < start)]
    df = cust.set_index("customer_id").join(arms)
    df["revenue"] = win.groupby("customer_id").revenue.sum().reindex(df.index, fill_value=0)
    df["conversion"] = win.groupby("customer_id").size().reindex(df.index, fill_value=0) > 0
    df["revenue_pre"] = before.groupby("customer_id").revenue.sum().reindex(df.index,
                                                                              fill_value=0)
    df["conversion_pre"] = before.groupby("customer_id").size().reindex(
        df.index, fill_value=0) > 0
    df = df.astype({"conversion": float, "conversion_pre": float})
    for ch in ("email", "mail"):
        df["t"] = (df[ch] == "treatment").astype(float)
        for metric in ("revenue", "conversion"):
            smf.ols(f"{metric} ~ t + {metric}_pre", df).fit(cov_type="HC1")
            for _, sub in df.groupby("segment"):
                smf.ols(f"{metric} ~ t + {metric}_pre", sub).fit(cov_type="HC1")


def run_floor(root: Path) -> None:
    """Every column the analysis reads, scanned once and reduced to one number each."""
    def touch(lf: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
        schema = lf.collect_schema()
        return lf.select(
            pl.col(c).str.len_bytes().sum() if schema[c] == pl.String
            else pl.col(c).max() if schema[c].is_temporal() else pl.col(c).sum()
            for c in columns)

    pl.collect_all([
        touch(pl.scan_parquet(root / "orders" / "*.parquet"),
              ["order_id", "customer_id", "ts", "channel", "revenue"]),
        touch(pl.scan_parquet(root / "customers.parquet"), ["customer_id", "segment"]),
        touch(pl.scan_parquet(root / "assignments.parquet"),
              ["experiment_id", "customer_id", "channel", "group"]),
    ], engine="streaming")


def _child(which: str, root: Path) -> None:
    # imports are not part of the analysis: load each route's libraries before timing it
    if which == "liftlab":
        import liftlab.analyses.experiment
        import liftlab.engines.open  # noqa: F401
    elif which == "pandas":
        import pandas  # noqa: F401
        import statsmodels.formula.api  # noqa: F401
    t0 = time.perf_counter()
    {"liftlab": run_liftlab, "pandas": run_pandas, "floor": run_floor}[which](root)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"which": which, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders-per-customer", type=float, default=5.0)
    ap.add_argument("--root", type=Path, default=Path("benchmarks/out/scale"))
    ap.add_argument("--skip-pandas", action="store_true", help="(b) needs a lot of memory")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each route, taking turns; the medians are compared")
    ap.add_argument("--child", choices=["liftlab", "pandas", "floor"])
    args = ap.parse_args()
    root = args.root / f"n{args.customers}"
    if args.child:
        _child(args.child, root)
        return
    if not (root / "customers.parquet").exists():
        t0 = time.perf_counter()
        generate(root, args.customers, args.orders_per_customer)
        print(f"generated {args.customers:,} customers in {time.perf_counter() - t0:.1f}s")
    routes = ("floor", "liftlab", *(() if args.skip_pandas else ("pandas",)))
    runs: dict[str, list[dict[str, float]]] = {which: [] for which in routes}
    for _ in range(args.repeat):  # the routes take turns, so a slow spell hits them all
        for which in routes:
            out = subprocess.run([sys.executable, __file__, "--child", which, "--customers",
                                  str(args.customers), "--root", str(args.root)],
                                 capture_output=True, text=True, check=True)
            runs[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
    results = {which: {"seconds": statistics.median(r["seconds"] for r in rs),
                       "peak_mb": max(r["peak_mb"] for r in rs)} for which, rs in runs.items()}
    for which in routes:
        times = ", ".join(f"{r['seconds']:.1f}" for r in runs[which])
        print(f"{which:>8}: {results[which]['seconds']:7.1f} s (median of {times}), "
              f"peak {results[which]['peak_mb']:7.0f} MB")
    a, c = results["liftlab"]["seconds"], results["floor"]["seconds"]
    print(f"a/c (liftlab / floor scan) = {a / c:.2f}")
    if "pandas" in results:
        print(f"b/a (pandas+statsmodels / liftlab) = {results['pandas']['seconds'] / a:.1f}x")

if __name__ == "__main__":
    main()
