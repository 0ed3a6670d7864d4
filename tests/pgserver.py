"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, loopback only,
run as the ``postgres`` user when the tests run as root. Stopped and removed afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl

PG_TYPES = {pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.Float64: "DOUBLE PRECISION",
            pl.String: "TEXT", pl.Boolean: "BOOLEAN", pl.Date: "DATE"}


def find_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a URL ``postgresql://postgres@127.0.0.1:PORT/postgres`` of a fresh server."""
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries not found (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="liftlab-pg-", dir="/tmp"))
    data = root / "data"
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
    port = _free_port()
    try:
        subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l",
                        str(root / "log"), "-w", "start"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def load_tables(url: str, folder: Path, tables: list[str]) -> None:
    """Copy Parquet tables into the server with matching column types."""
    import psycopg

    with psycopg.connect(url.replace("postgresql://", "postgresql://", 1)) as conn:
        for name in tables:
            path = folder / f"{name}.parquet"
            if not path.exists():
                continue
            frame = pl.read_parquet(path)
            cols = []
            for col, dtype in frame.schema.items():
                if isinstance(dtype, pl.Datetime):
                    sql_type = "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
                else:
                    sql_type = PG_TYPES.get(dtype.base_type(), "TEXT")
                cols.append(f'"{col}" {sql_type}')
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            conn.execute(f'CREATE TABLE "{name}" ({", ".join(cols)})')
            with conn.cursor().copy(f'COPY "{name}" FROM STDIN') as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)
        conn.commit()
