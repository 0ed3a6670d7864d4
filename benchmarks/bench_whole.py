"""Whole-command benchmark (issue 23): what a user waits for, on every data layout.

For each layout x size it times, each in a fresh process (interpreter start and imports
included, as a user sees them), taking turns so that a slow spell on a shared machine hits
every route alike, and compares medians:

- ``liftlab``: ``liftlab analyze`` of the spring factorial (3 channels, 4 metrics with CUPED,
  2 segment columns, last-touch credit, the sequential readout, the page);
- ``floor``: a bare polars pass computing the same sufficient statistics (per-customer window
  and pre-period sums joined to the arms, reduced per cell of arms x segment x region);
- ``tea``: what an analyst would write instead: polars for per-customer rows and
  tea-tasting for the statistics (each channel, each metric, CUPED where it applies);
- ``pandas``: the same in pandas with statsmodels OLS (HC1) per channel and metric, and per
  segment.

On the integer-id UTC layout it also times ``liftlab --help``, ``liftlab validate`` of one
file, the daily ``liftlab report`` of one experiment and of ten on the same data, and an
hourly ``liftlab monitor`` update after the previous hour is cached.

    python benchmarks/bench_whole.py                 # 2 M and 10 M customers (long)
    python benchmarks/bench_whole.py --quick         # 200 k customers, every layout
    python benchmarks/bench_whole.py --sizes 2000000 --layouts int-utc,csv --routes liftlab,floor

Peak memory is the child's ``ru_maxrss``; "data" is the size of the layout's files on disk.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

EXPERIMENT = "spring-factorial"
START, END, PRE_DAYS = "2026-02-02", "2026-02-23", 28
CHANNELS = ("email", "sms", "mail")
LAYOUT_NAMES = ("int-utc", "text-order", "text-customer", "naive", "csv", "parts")
ROUTES = ("liftlab", "floor", "tea", "pandas")
TARGETS = {2_000_000: 2.5, 10_000_000: 2.0}  # liftlab / floor, whole process
MONITOR_AS_OF = ("2026-02-18T10:00:00Z", "2026-02-18T11:00:00Z")  # cached, then one hour on


def layout(name: str):
    from layouts import Layout

    return {
        "int-utc": Layout(),
        "text-order": Layout(order_id="text"),
        "text-customer": Layout(customer_id="text"),
        "naive": Layout(ts="naive"),
        "csv": Layout(fmt="csv"),
        "parts": Layout(fmt="parts"),
    }[name]


# -- data --------------------------------------------------------------------------------------
def prepare(root: Path, n: int, names: list[str]) -> dict[str, Path]:
    """The synthetic retailer at ``n`` customers, written once per layout."""
    import polars as pl

    from layouts import experiments_for, write_layout
    from liftlab.app.synth import generate

    base_dir = root / f"n{n}" / "base"
    if not (base_dir / "orders.parquet").exists():
        t0 = time.perf_counter()
        generate(base_dir, n)
        print(f"generated {n:,} customers in {time.perf_counter() - t0:.0f} s", flush=True)
    base: dict[str, pl.DataFrame] | None = None
    out = {}
    for name in names:
        dest = root / f"n{n}" / name
        if not (dest / "experiments").exists():
            base = base or {p.stem: pl.read_parquet(p) for p in sorted(base_dir.glob("*.parquet"))}
            write_layout(layout(name), base, dest / "data")
            experiments_for(layout(name), REPO / "experiments", dest / "experiments")
        out[name] = dest
    return out


def data_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


# -- the three reference routes (run in a child process) --------------------------------------
def _scan(data: Path, table: str):
    import polars as pl

    if (data / f"{table}.parquet").exists():
        return pl.scan_parquet(data / f"{table}.parquet")
    if (data / table).is_dir():
        return pl.scan_parquet(data / table / "*.parquet")
    return pl.scan_csv(data / f"{table}.csv", try_parse_dates=True, infer_schema_length=10000)


def _utc(lf, column: str):
    """The column as UTC instants: naive values are UTC wall-clock times in these layouts."""
    import polars as pl

    dtype = lf.collect_schema()[column]
    e = pl.col(column)
    if dtype == pl.String:
        return e.str.to_datetime(time_zone="UTC")
    return e.dt.replace_time_zone("UTC") if dtype.time_zone is None else e


def per_customer(data: Path):
    """One row per customer of the population: arms, segment, region, window and
    pre-period outcomes (polars, lazy)."""
    import datetime as dt

    import polars as pl

    start = dt.datetime.fromisoformat(START).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(END).replace(tzinfo=dt.UTC)
    pre = start - dt.timedelta(days=PRE_DAYS)
    orders = _scan(data, "orders")
    orders = orders.select("customer_id", _utc(orders, "ts").alias("ts"), "revenue").filter(
        (pl.col("ts") >= pre) & (pl.col("ts") < end)
    )
    win = pl.col("ts") >= start
    per_orders = orders.group_by("customer_id").agg(
        pl.col("revenue").filter(win).sum().alias("revenue"),
        win.sum().alias("orders"),
        pl.col("revenue").filter(~win).sum().alias("revenue_pre"),
        (~win).sum().alias("orders_pre"),
    )
    events = _scan(data, "events")
    unsub = (
        events.select("customer_id", _utc(events, "ts").alias("ts"), "event")
        .filter((pl.col("event") == "unsubscribe") & (pl.col("ts") >= start) & (pl.col("ts") < end))
        .select("customer_id")
        .unique()
        .with_columns(pl.lit(1.0).alias("unsubscribe"))
    )
    arms = (
        _scan(data, "assignments")
        .filter(pl.col("experiment_id") == EXPERIMENT)
        .collect()
        .pivot("channel", index="customer_id", values="group")
        .lazy()
    )
    customers = (
        _scan(data, "customers")
        .filter(pl.col("optin_email"))
        .select("customer_id", "segment", "region")
    )
    zero = ["revenue", "orders", "revenue_pre", "orders_pre", "unsubscribe"]
    return (
        customers.join(arms, on="customer_id")
        .join(per_orders, on="customer_id", how="left")
        .join(unsub, on="customer_id", how="left")
        .with_columns(pl.col(zero).fill_null(0).cast(pl.Float64))
        .with_columns(
            (pl.col("orders") > 0).cast(pl.Float64).alias("conversion"),
            (pl.col("orders_pre") > 0).cast(pl.Float64).alias("conversion_pre"),
        )
    )


def run_floor(data: Path) -> None:
    """The sufficient statistics liftlab's statistics start from, by bare polars."""
    import polars as pl

    y = ["revenue", "orders", "conversion", "unsubscribe"]
    x = ["revenue_pre", "orders_pre", "conversion_pre"]
    cells = (
        per_customer(data)
        .group_by(*CHANNELS, "segment", "region")
        .agg(
            pl.len(),
            *[pl.col(c).sum().alias(f"s_{c}") for c in y + x],
            *[(pl.col(c) ** 2).sum().alias(f"q_{c}") for c in y + x],
            *[
                (pl.col(a) * pl.col(b)).sum().alias(f"x_{a}")
                for a, b in zip(y, [*x, x[2]], strict=True)
            ],
            (pl.col("revenue") * pl.col("orders")).sum().alias("ro"),
        )
        .collect()
    )
    assert cells.height


def run_tea(data: Path) -> None:
    """polars builds the per-customer rows, tea-tasting computes each channel's effects."""
    import polars as pl
    import tea_tasting as tt

    df = per_customer(data).collect()
    experiment = tt.Experiment(
        revenue=tt.Mean("revenue", covariate="revenue_pre"),
        conversion=tt.Mean("conversion", covariate="conversion_pre"),
        aov=tt.RatioOfMeans("revenue", "orders", "revenue_pre", "orders_pre"),
        unsubscribe=tt.Mean("unsubscribe"),
    )
    for ch in CHANNELS:
        frame = df.with_columns((pl.col(ch) != "holdout").cast(pl.Int64).alias("variant"))
        result = experiment.analyze(frame, control=0)
        assert result.to_dicts()


def run_pandas(data: Path) -> None:
    """The analysis as an analyst would write it in pandas and statsmodels."""
    import pandas as pd
    import statsmodels.formula.api as smf

    def read(table: str) -> pd.DataFrame:
        if (data / f"{table}.parquet").exists() or (data / table).is_dir():
            path = data / f"{table}.parquet"
            return pd.read_parquet(path if path.exists() else data / table)
        return pd.read_csv(data / f"{table}.csv")

    def utc(s: pd.Series) -> pd.Series:
        s = pd.to_datetime(s, format="ISO8601")
        return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")

    start, end = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")
    pre = start - pd.Timedelta(days=PRE_DAYS)
    cust = read("customers")
    cust = cust[cust.optin_email.astype(bool)].set_index("customer_id")[["segment", "region"]]
    a = read("assignments")
    arms = a[a.experiment_id == EXPERIMENT].pivot(
        index="customer_id", columns="channel", values="group"
    )
    orders = read("orders")
    orders["ts"] = utc(orders.ts)
    win = orders[(orders.ts >= start) & (orders.ts < end)]
    before = orders[(orders.ts >= pre) & (orders.ts < start)]
    events = read("events")
    events["ts"] = utc(events.ts)
    unsub = events[(events.event == "unsubscribe") & (events.ts >= start) & (events.ts < end)]
    df = cust.join(arms, how="inner")
    df["revenue"] = win.groupby("customer_id").revenue.sum().reindex(df.index, fill_value=0)
    df["orders"] = win.groupby("customer_id").size().reindex(df.index, fill_value=0)
    df["revenue_pre"] = before.groupby("customer_id").revenue.sum().reindex(df.index, fill_value=0)
    df["orders_pre"] = before.groupby("customer_id").size().reindex(df.index, fill_value=0)
    df["conversion"] = (df.orders > 0).astype(float)
    df["conversion_pre"] = (df.orders_pre > 0).astype(float)
    df["unsubscribe"] = df.index.isin(unsub.customer_id).astype(float)
    for ch in CHANNELS:
        df["t"] = (df[ch] != "holdout").astype(float)
        for formula in (
            "revenue ~ t + revenue_pre",
            "conversion ~ t + conversion_pre",
            "unsubscribe ~ t",
        ):
            smf.ols(formula, df).fit(cov_type="HC1")
            for _, sub in df.groupby("segment"):
                smf.ols(formula, sub).fit(cov_type="HC1")


CHILDREN: dict[str, Callable[[Path], None]] = {
    "floor": run_floor,
    "tea": run_tea,
    "pandas": run_pandas,
}


# -- timing ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Timed:
    seconds: float
    peak_mb: float
    cpu: float  # user + system seconds of the child: less sensitive to a busy machine


# A forked child's peak memory (ru_maxrss) counts the pages it shared with its parent before
# exec, and this script holds the data it wrote: a small launcher process starts each route.
LAUNCHER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"seconds": time.perf_counter() - t0, "status": os.waitstatus_to_exitcode(status),
                  "peak_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime}))
"""


def timed(argv: list[str], cwd: Path) -> Timed:
    """Wall time of the whole child process, its CPU time and its peak resident memory."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout)
    if got["status"] != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {got['status']}:\n{out.stderr}")
    return Timed(got["seconds"], got["peak_mb"], got["cpu"])


def liftlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "liftlab.app.cli", *args]


def analyze_argv(route: str, folder: Path) -> list[str]:
    if route == "liftlab":
        return liftlab(
            "analyze",
            str(folder / "experiments" / f"{EXPERIMENT}.yaml"),
            "--data",
            str(folder / "data"),
            "--out",
            str(folder / "out" / "analyze"),
            "--force",
        )
    return [sys.executable, __file__, "--child", route, "--data", str(folder / "data")]


def median_runs(jobs: dict[str, Callable[[], Timed]], repeat: int) -> dict[str, list[Timed]]:
    """Every job ``repeat`` times, taking turns."""
    runs: dict[str, list[Timed]] = {k: [] for k in jobs}
    for _ in range(repeat):
        for key, job in jobs.items():
            runs[key].append(job())
    return runs


def med(runs: list[Timed]) -> float:
    return statistics.median(r.seconds for r in runs)


def cpu(runs: list[Timed]) -> float:
    return statistics.median(r.cpu for r in runs)


def peak(runs: list[Timed]) -> float:
    return max(r.peak_mb for r in runs)


# -- the commands beyond analyze (integer ids, UTC) ---------------------------------------------
def daily_folders(folder: Path) -> tuple[Path, Path]:
    """One experiment, and ten on the same data: the spring factorial under ten ids, arms by
    the stable hash of the id (the assignments table holds only the original id)."""
    one, ten = folder / "daily-1", folder / "daily-10"
    text = (folder / "experiments" / f"{EXPERIMENT}.yaml").read_text()
    for dest, k in ((one, 1), (ten, 10)):
        dest.mkdir(exist_ok=True)
        for i in range(k):
            (dest / f"{EXPERIMENT}-{i}.yaml").write_text(
                text.replace(f"id: {EXPERIMENT}", f"id: {EXPERIMENT}-{i}\nassignment: hash", 1)
            )
    return one, ten


def monitor_job(folder: Path) -> Callable[[], Timed]:
    """An hourly update: the cache holds every hour up to the previous one (primed by this
    code in each run: a cache another version wrote may not match its fingerprint)."""
    spec = str(folder / "experiments" / "email-flash.yaml")
    primed = folder / "monitor-cache-primed"
    shutil.rmtree(primed, ignore_errors=True)
    timed(
        liftlab(
            "monitor",
            spec,
            "--data",
            str(folder / "data"),
            "--as-of",
            MONITOR_AS_OF[0],
            "--cache",
            str(primed),
        ),
        folder,
    )

    def job() -> Timed:
        cache = folder / "monitor-cache"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(primed, cache)
        return timed(
            liftlab(
                "monitor",
                spec,
                "--data",
                str(folder / "data"),
                "--as-of",
                MONITOR_AS_OF[1],
                "--cache",
                str(cache),
            ),
            folder,
        )

    return job


def other_commands(folder: Path, repeat: int) -> list[tuple[str, str, str]]:
    one, ten = daily_folders(folder)
    data = str(folder / "data")
    spec = str(folder / "experiments" / f"{EXPERIMENT}.yaml")
    jobs = {
        "help": lambda: timed(liftlab("--help"), folder),
        "validate": lambda: timed(liftlab("validate", spec), folder),
        "report-1": lambda: timed(
            liftlab(
                "report",
                "--experiments",
                str(one),
                "--data",
                data,
                "--date",
                "2026-02-24",
                "--out",
                str(folder / "out" / "daily-1"),
                "--force",
            ),
            folder,
        ),
        "report-10": lambda: timed(
            liftlab(
                "report",
                "--experiments",
                str(ten),
                "--data",
                data,
                "--date",
                "2026-02-24",
                "--out",
                str(folder / "out" / "daily-10"),
                "--force",
            ),
            folder,
        ),
        "monitor-hour": monitor_job(folder),
    }
    runs = median_runs(jobs, repeat)
    r1, r10 = med(runs["report-1"]), med(runs["report-10"])
    rows = [
        (k, f"{med(runs[k]):.2f} s", f"{cpu(runs[k]):.2f} s", f"{peak(runs[k]):.0f} MB")
        for k in jobs
    ]
    verdicts = [
        ("help < 0.5 s", med(runs["help"]) < 0.5),
        ("validate < 0.5 s", med(runs["validate"]) < 0.5),
        (f"report of 10 <= 2x report of 1 ({r10 / r1:.2f}x)", r10 <= 2 * r1),
        ("monitor hourly update < 1 s", med(runs["monitor-hour"]) < 1.0),
    ]
    return rows + [(text, "met" if ok else "NOT met", "", "") for text, ok in verdicts]


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", default="2000000,10000000", help="comma-separated numbers of customers"
    )
    ap.add_argument("--quick", action="store_true", help="200,000 customers only")
    ap.add_argument("--layouts", default=",".join(LAYOUT_NAMES))
    ap.add_argument("--routes", default=",".join(ROUTES))
    ap.add_argument("--no-commands", action="store_true", help="skip help/validate/report/monitor")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each route, taking turns")
    ap.add_argument("--root", type=Path, default=REPO / "benchmarks" / "out" / "whole")
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--data", type=Path)
    args = ap.parse_args()
    if args.child:
        CHILDREN[args.child](args.data)
        return
    sizes = [200_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    names = [name for name in args.layouts.split(",") if name]
    routes = args.routes.split(",")
    unknown = (set(names) - set(LAYOUT_NAMES)) | (set(routes) - set(ROUTES))
    if unknown or "liftlab" not in routes or "floor" not in routes:
        ap.error(f"unknown layouts/routes {sorted(unknown)} (liftlab and floor are needed)")
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} (2 cores); "
        f"medians of {args.repeat} alternating runs, whole process",
        flush=True,
    )
    table = [
        "| layout | customers | liftlab analyze | floor | liftlab/floor | target |"
        " polars + tea-tasting | pandas + statsmodels | peak MB liftlab / floor / tea /"
        " pandas | data MB | CPU liftlab / floor |",
        "|" + "---|" * 11,
    ]
    commands: list[tuple[str, str, str]] = []
    for n in sizes:
        folders = prepare(args.root, n, names)
        for name, folder in folders.items():
            jobs = {r: (lambda r=r, f=folder: timed(analyze_argv(r, f), f)) for r in routes}
            runs = median_runs(jobs, args.repeat)
            floor = med(runs["floor"])
            ratio = med(runs["liftlab"]) / floor
            target = TARGETS.get(n)
            met = target is not None and ratio <= target
            verdict = "" if target is None else f"{target}x {'met' if met else 'NOT met'}"

            def cell(route: str, floor: float = floor, runs: dict = runs) -> str:
                return (
                    f"{med(runs[route]):.2f} s ({med(runs[route]) / floor:.1f}x)"
                    if route in runs
                    else "-"
                )

            table.append(
                f"| {name} | {n:,} | {med(runs['liftlab']):.2f} s | {floor:.2f} s | "
                f"{ratio:.2f} | {verdict} | {cell('tea')} | {cell('pandas')} | "
                + " / ".join(f"{peak(runs[r]):.0f}" if r in runs else "-" for r in ROUTES)
                + f" | {data_mb(folder / 'data'):.0f} | "
                + f"{cpu(runs['liftlab']):.1f} / {cpu(runs['floor']):.1f} s |"
            )
            print(table[-1], flush=True)
        if not args.no_commands:
            folder = folders.get("int-utc") or prepare(args.root, n, ["int-utc"])["int-utc"]
            commands += [(f"{n:,}", *row) for row in other_commands(folder, args.repeat)]
    print("\n" + "\n".join(table))
    if commands:
        print(
            "\n| customers | command (int ids, UTC) | median | CPU | peak |\n|---|---|---|---|---|"
        )
        print("\n".join(f"| {' | '.join(row)} |" for row in commands))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
