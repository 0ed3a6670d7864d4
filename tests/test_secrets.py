"""Database credentials never appear in any output, page, log or message, whatever they hold.

Against a real PostgreSQL server (tests/pgserver.py) with a role whose password needs
percent-encoding: every file a run writes and everything it prints are searched for the
password in its raw and percent-encoded forms."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from liftlab.core.errors import UserError
from liftlab.engines.dburl import mask_url, parse_db_url, scrub
from pgserver import find_bin, load_tables, postgres_server

from tinydata import SPEC_YAML

PASSWORD = "p@ss:w/rd%#?é€-Zq7"
ROLE = "liftlab_reader"
FORMS = (PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), "w/rd%#?", "rd%23%3F")
TABLES = ("customers", "orders", "contacts", "events")

needs_pg = pytest.mark.skipif(
    find_bin("initdb") is None,
    reason="PostgreSQL server not installed (scripts/system-deps.sh installs it)")


def _url(base: str, password: str, user: str = ROLE) -> str:
    host = base.split("@", 1)[1]
    return f"postgresql://{user}:{quote(password, safe='')}@{host}"


@pytest.fixture(scope="module")
def server(tiny_data: Path) -> Iterator[str]:
    """The server with the tiny tables and a role that must log in with PASSWORD."""
    import psycopg
    from psycopg import sql

    with postgres_server() as url:
        load_tables(url, tiny_data, list(TABLES))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}; "
                                 "GRANT CREATE, TEMPORARY ON DATABASE postgres TO {}").format(
                sql.Identifier(ROLE), sql.Identifier(ROLE)))
            hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
            hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        yield url


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD",
                                                           "LIFTLAB_DB_PASSWORD")}
    return subprocess.run([sys.executable, "-m", "liftlab.app.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _leaks(texts: dict[str, str]) -> list[str]:
    return [f"{where}: {form!r}" for where, text in texts.items() for form in FORMS
            if form in text]


def _written(root: Path) -> dict[str, str]:
    return {str(p): p.read_bytes().decode("utf-8", "replace")
            for p in root.rglob("*") if p.is_file()}


@needs_pg
def test_a_run_never_shows_the_password(server: str, tmp_path: Path):
    good = _url(server, PASSWORD)
    spec = tmp_path / "experiments" / "tiny-factorial.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC_YAML)
    outputs = tmp_path / "out"
    runs = {
        "validate": _cli("validate", str(spec), "--data", good, cwd=tmp_path),
        "analyze": _cli("analyze", str(spec), "--data", good, "--as-of", "2026-02-24",
                        "--out", str(outputs / "analysis"), cwd=tmp_path),
        "report": _cli("report", "--experiments", str(spec.parent), "--data", good,
                       "--date", "2026-02-24", "--out", str(outputs / "reports"),
                       cwd=tmp_path),
        "plan": _cli("plan", str(spec), "--data", good, "--json", cwd=tmp_path),
    }
    for name, run in runs.items():
        assert run.returncode == 0, (name, run.stderr)
    results = (outputs / "analysis" / "results.json").read_text()
    assert f"postgresql://{ROLE}:***@" in results  # the source is named, masked
    texts = {f"{n} {s}": getattr(r, s) for n, r in runs.items() for s in ("stdout", "stderr")}
    written = _written(outputs)
    assert len(written) > 5 and any(p.endswith("index.html") for p in written)
    assert _leaks(texts | written) == []


@needs_pg
def test_connection_errors_never_show_the_password(server: str, tmp_path: Path):
    spec = tmp_path / "tiny-factorial.yaml"
    spec.write_text(SPEC_YAML)
    port = server.rsplit(":", 1)[1].split("/")[0]
    urls = {
        "wrong password": _url(server, PASSWORD + "x"),
        "unreachable host": _url(server, PASSWORD).replace(f":{port}/", ":1/"),
        "unencoded": f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{port}/postgres",
        "raw in the query": f"postgresql://{ROLE}@127.0.0.1:{port}/postgres?password="
                            + quote(PASSWORD, safe=""),
    }
    runs = {name: _cli("analyze", str(spec), "--data", url, "--out", str(tmp_path / "o"),
                       cwd=tmp_path) for name, url in urls.items()}
    for name, run in runs.items():
        if name == "raw in the query":
            assert run.returncode == 0, run.stderr  # libpq's own password= parameter
            continue
        assert run.returncode == 1, (name, run.stdout, run.stderr)
        assert "internal error" not in run.stderr
    assert "password authentication failed" in runs["wrong password"].stderr
    assert "cannot connect" in runs["unreachable host"].stderr
    assert "percent-encoded" in runs["unencoded"].stderr
    texts = {f"{n} {s}": getattr(r, s) for n, r in runs.items() for s in ("stdout", "stderr")}
    assert _leaks(texts | _written(tmp_path / "o")) == []


@needs_pg
def test_a_raw_at_sign_in_the_password_logs_in(server: str, tmp_path: Path):
    """urllib splits the user part at the last @: ``user:p@ss@host`` works unencoded."""
    import psycopg
    from psycopg import sql

    from liftlab.engines.open import open_engine

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(ROLE), sql.Literal("a@b:c")))
        try:
            host = server.split("@", 1)[1]
            engine = open_engine(f"postgresql://{ROLE}:a@b:c@{host}")
            assert engine.has("orders")
            assert "a@b" not in engine.label and "b:c" not in repr(engine)
        finally:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)))


def test_mask_url_hides_whatever_the_password_holds():
    for password in ("s3cret", "p@ss", "a:b@c", PASSWORD, "x/y#z?w"):
        masked = mask_url(f"postgresql://bob:{password}@db.example:5432/crm?schema=s")
        assert masked == "postgresql://bob:***@db.example:5432/crm?schema=s"
    assert mask_url("postgresql://bob@h/db?sslmode=require&password=x%40y") == (
        "postgresql://bob@h/db?sslmode=require&password=***")
    assert scrub(f"failed for {quote(PASSWORD, safe='')} and {PASSWORD}", (PASSWORD,)) == (
        "failed for *** and ***")


def test_credentials_are_percent_decoded():
    db = parse_db_url(f"postgresql://b%C3%B6b:{quote(PASSWORD, safe='')}@h:6543/my%20db"
                      "?schema=crm&sslmode=require")
    assert (db.user, db.password, db.host, db.port, db.dbname, db.schema) == (
        "böb", PASSWORD, "h", 6543, "my db", "crm")
    assert dict(db.options) == {"sslmode": "require"}
    assert PASSWORD not in repr(db) and quote(PASSWORD, safe="") not in db.label


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://bob@h:5x32/db", "the port '5x32' is not a number"),
    ("postgresql://bob@h:70000/db", "the port '70000' is not a number"),
    ("duckdb://x.duckdb", "duckdb:///x.duckdb for a file relative"),
    ("duckdb:///", "no DuckDB file given"),
    ("postgresql://bob:a/b@h/db", "must be percent-encoded"),
    ("mysql://h/db", "unsupported"),
])
def test_bad_urls_are_user_errors(url: str, message: str):
    with pytest.raises(UserError, match=message) as err:
        parse_db_url(url)
    assert "a/b" not in str(err.value)


def test_bad_urls_exit_1(tmp_path: Path, tiny_spec_path: Path):
    for url, message in (("postgresql://bob@127.0.0.1:5x32/db", "5x32"),
                         ("duckdb://x.duckdb", "three slashes")):
        run = _cli("validate", str(tiny_spec_path), "--data", url, cwd=tmp_path)
        assert run.returncode == 1, run.stderr
        assert message in run.stderr and "in-memory" not in run.stderr


def test_duckdb_paths_follow_the_three_slash_rule(tiny_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch):
    import duckdb

    from liftlab.engines.open import open_engine

    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.execute(f"CREATE TABLE orders AS SELECT * FROM "
                    f"read_parquet('{tiny_data / 'orders.parquet'}')")
    monkeypatch.chdir(tmp_path)
    assert open_engine("duckdb:///crm.duckdb").has("orders")
    assert open_engine(f"duckdb:///{tmp_path / 'crm.duckdb'}").has("orders")
