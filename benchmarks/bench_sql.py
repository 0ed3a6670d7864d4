"""SQL pushdown benchmark (issue 11): the analysis pushed down into PostgreSQL vs exporting
the rows and analysing them locally, with the bytes that crossed the (loopback) network.

Starts a throwaway PostgreSQL server (as in the tests), loads N customers and ~5N orders,
then runs, side by side:
  (a) pushdown: liftlab with --data postgresql://... (only sufficient statistics travel);
  (b) export: SELECT * of each table into local Parquet, then liftlab on the folder.

    python benchmarks/bench_sql.py --customers 2000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import SPEC, generate

from liftlab.analyses.experiment import analyze
from liftlab.engines.open import open_engine
from liftlab.spec.models import Experiment
from pgserver import postgres_server

TABLES = ("customers", "orders", "assignments")


def loopback_bytes() -> int:
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            fields = rest.split()
            return int(fields[0]) + int(fields[8])
    return 0


def load(url: str, root: Path) -> None:
    """Bulk-load Parquet tables with COPY ... FROM STDIN (CSV), as a DBA would."""
    import psycopg

    types = {pl.Int64: "BIGINT", pl.Float64: "DOUBLE PRECISION", pl.String: "TEXT"}
    with psycopg.connect(url) as conn:
        for name in TABLES:
            frame = pl.read_parquet(root / name if (root / name).is_dir() else
                                    root / f"{name}.parquet")
            cols = ", ".join(
                f'"{c}" ' + ("TIMESTAMPTZ" if isinstance(t, pl.Datetime) else
                             types.get(t.base_type(), "TEXT")) for c, t in frame.schema.items())
            conn.execute(f'CREATE TABLE "{name}" ({cols})')
            with conn.cursor().copy(f'COPY "{name}" FROM STDIN WITH (FORMAT csv)') as copy:
                for chunk in frame.iter_slices(500_000):
                    copy.write(chunk.write_csv(include_header=False))
        conn.commit()


def export(url: str, dest: Path) -> None:
    import psycopg

    dest.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(url) as conn:
        for name in TABLES:
            cur = conn.execute(f'SELECT * FROM "{name}"')
            names = [d.name for d in cur.description]
            pl.DataFrame(cur.fetchall(), schema=names, orient="row").write_parquet(
                dest / f"{name}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    args = ap.parse_args()
    spec = Experiment.model_validate(yaml.safe_load(SPEC))
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as url:
        root = Path(tmp) / "data"
        generate(root, args.customers)
        t0 = time.perf_counter()
        load(url, root)
        print(f"loaded {args.customers:,} customers into PostgreSQL in "
              f"{time.perf_counter() - t0:.1f}s")
        b0, t0 = loopback_bytes(), time.perf_counter()
        pushed = analyze(spec, open_engine(url))
        push_s, push_b = time.perf_counter() - t0, loopback_bytes() - b0
        b0, t0 = loopback_bytes(), time.perf_counter()
        export(url, Path(tmp) / "export")
        local = analyze(spec, open_engine(Path(tmp) / "export"))
        exp_s, exp_b = time.perf_counter() - t0, loopback_bytes() - b0
        same = all(abs(a.lift.abs - b.lift.abs) <= 1e-9 * max(1.0, abs(a.lift.abs))
                   for a, b in zip(pushed.effects, local.effects, strict=True))
        print(f"pushdown: {push_s:7.1f} s, {push_b / 1e6:9.2f} MB over loopback")
        print(f"export  : {exp_s:7.1f} s, {exp_b / 1e6:9.2f} MB over loopback")
        print(f"speed-up {exp_s / push_s:.1f}x, {exp_b / max(push_b, 1):.0f}x fewer bytes; "
              f"identical effects: {same}")


if __name__ == "__main__":
    main()
