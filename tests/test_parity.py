"""The engine parity matrix: every example experiment (on the small synthetic retailer), the
tiny factorial, and a sample of generated layouts give the same effects on polars, DuckDB,
PostgreSQL (a real server started here) and Spark local mode (1e-9 relative); the same bad
input gives the same problems; the folder-only features refuse the same way on every database.

Spark runs the tiny factorial in CI and everything else with LIFTLAB_SLOW=1.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from layouts import CANONICAL, Layout, base_tables, experiments_for, tables_for
from liftlab.analyses.experiment import analyze
from liftlab.analyses.geo import analyze_geo
from liftlab.app.run import monitor_file, multichannel
from liftlab.core.errors import UserError
from liftlab.engines.base import Engine
from liftlab.engines.geo_table import TABLE as GEO_TABLE
from liftlab.engines.open import open_engine
from liftlab.spec.geo import GeoExperiment
from liftlab.spec.loader import load_experiment
from liftlab.spec.models import Experiment
from metamorphic import close
from pgserver import find_bin, load_tables, postgres_server

from tinydata import SPEC_YAML, make_tiny

EXPERIMENTS = Path(__file__).parent.parent / "experiments"
EXAMPLES = tuple(sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")))
TABLES = ("customers", "orders", "contacts", "events", "assignments")
ENGINES = ("duckdb", "postgresql", "spark")
# Layouts a database can hold as typed columns: id kinds, timestamp types, categorical text.
LAYOUTS = (Layout(customer_id="text", order_id="text", ts="naive"),
           Layout(customer_id="uuid", order_id="uuid", ts="zone", categorical=True),
           Layout(ts="date", unicode=True, drop=frozenset({"contacts"})))
HAVE_PG = find_bin("initdb") is not None
HAVE_SPARK = shutil.which("java") is not None


@dataclass(frozen=True)
class Case:
    dataset: str        # "tiny", or a layout id
    experiment: str

    @property
    def id(self) -> str:
        return f"{self.dataset}-{self.experiment}"


CASES = (Case("tiny", "tiny-factorial"),
         *(Case(layout.id, name) for layout in (CANONICAL, *LAYOUTS) for name in EXAMPLES))


class Backends:
    """Each data set written once, as a folder, a DuckDB file and a PostgreSQL database."""

    def __init__(self, root: Path, pg_url: str | None) -> None:
        self.root = root
        self.pg_url = pg_url
        self.base = base_tables(root / "base")
        self.folders: dict[str, Path] = {}
        self.results: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.databases: set[str] = set()

    def folder(self, dataset: str) -> Path:
        if dataset not in self.folders:
            folder = self.root / dataset / "data"
            if dataset == "tiny":
                make_tiny(folder)
                (self.root / dataset / "experiments").mkdir()
                (self.root / dataset / "experiments" / "tiny-factorial.yaml").write_text(
                    SPEC_YAML)
            else:
                layout = next(x for x in (CANONICAL, *LAYOUTS) if x.id == dataset)
                folder.mkdir(parents=True)
                for name, frame in tables_for(layout, self.base).items():
                    frame.write_parquet(folder / f"{name}.parquet")
                experiments_for(layout, EXPERIMENTS, self.root / dataset / "experiments")
            self.folders[dataset] = folder
        return self.folders[dataset]

    def spec(self, case: Case) -> Experiment:
        self.folder(case.dataset)
        return load_experiment(self.root / case.dataset / "experiments" /
                               f"{case.experiment}.yaml")

    def source(self, dataset: str, engine: str) -> str | Path:
        folder = self.folder(dataset)
        if engine == "duckdb":
            db = folder.parent / "data.duckdb"
            if not db.exists():
                con = duckdb.connect(str(db))
                for t in (*TABLES, GEO_TABLE):
                    if (folder / f"{t}.parquet").exists():
                        con.execute(f"CREATE TABLE {t} AS SELECT * FROM "
                                    f"read_parquet('{folder / t}.parquet')")
                con.close()
            return f"duckdb:///{db}"
        if engine == "postgresql":
            assert self.pg_url is not None
            name = "d" + dataset.replace("-", "_")[:60]
            url = self.pg_url.rsplit("/", 1)[0] + f"/{name}"
            if name not in self.databases:
                _create_database(self.pg_url, name)
                load_tables(url, folder, [*TABLES, GEO_TABLE])
                self.databases.add(name)
            return url
        return folder

    def engine(self, dataset: str, engine: str, timezone: str = "UTC") -> Engine:
        if engine == "spark":
            return open_engine(self.folder(dataset), timezone, engine="spark")
        return open_engine(self.source(dataset, engine), timezone)

    def result(self, case: Case, engine: str) -> dict[str, Any]:
        key = (case.dataset, case.experiment, engine)
        if key not in self.results:
            spec = self.spec(case)
            opened = self.engine(case.dataset, engine, spec.timezone)
            if isinstance(spec, GeoExperiment):  # the geo x date table, then shared statistics
                self.results[key] = json.loads(json.dumps(analyze_geo(spec, opened)))
                return self.results[key]
            result = analyze(spec, opened)
            self.results[key] = json.loads(json.dumps(result.to_dict(), default=str))
        return self.results[key]


def _create_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str | None]:
    if not HAVE_PG:
        yield None
        return
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory, pg_url: str | None) -> Backends:
    return Backends(tmp_path_factory.mktemp("parity"), pg_url)


def _skip_unavailable(engine: str) -> None:
    if engine == "postgresql" and not HAVE_PG:
        pytest.skip("PostgreSQL server not installed (scripts/system-deps.sh installs it)")
    if engine == "spark":
        if not HAVE_SPARK:
            pytest.skip("Spark needs Java")
        pytest.importorskip("pyspark", reason="install the spark extra")


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """The sections every engine computes: effects, contribution, interactions, the total
    effect, the landing of increments (without last-touch credit: polars only), SRM."""
    if "geo" in result:  # a geo experiment: its effect row and everything it measured
        return {"effects": result["effects"], "geo": result["geo"]}
    landing = [{k: v for k, v in row.items() if k not in ("last_touch_revenue", "claim_ratio")}
               for row in result.get("landing", [])]
    health = {k: result["health"][k] for k in ("srm_p_value", "srm_ok", "srm")}
    keep = ("n_units", "assigned_by", "status", "effects", "contribution", "interactions",
            "total_effect")
    return {**{k: result.get(k) for k in keep}, "landing": landing, "health": health}


def _check(backends: Backends, case: Case, engine: str) -> None:
    want = _outcome(lambda: comparable(backends.result(case, "polars")))
    got = _outcome(lambda: comparable(backends.result(case, engine)))
    assert got[0] == want[0], f"{engine}: {got[1]} vs polars: {want[1]}"
    close(got[1], want[1], f"{case.id} on {engine}")


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except UserError as exc:
        return "error", str(exc)


# Spark in CI: the tiny factorial and the example experiments on the canonical data
SPARK_IN_CI = ("tiny", CANONICAL.id)
CI_MATRIX = [(case, engine) for case in CASES for engine in ENGINES
             if engine != "spark" or case.dataset in SPARK_IN_CI]
SLOW_MATRIX = [(case, "spark") for case in CASES if case.dataset not in SPARK_IN_CI]


@pytest.mark.parametrize(("case", "engine"), CI_MATRIX,
                         ids=[f"{c.id}-{e}" for c, e in CI_MATRIX])
def test_engines_agree(backends: Backends, case: Case, engine: str):
    _skip_unavailable(engine)
    _check(backends, case, engine)


@pytest.mark.slow
@pytest.mark.parametrize(("case", "engine"), SLOW_MATRIX,
                         ids=[f"{c.id}-{e}" for c, e in SLOW_MATRIX])
def test_engines_agree_everywhere(backends: Backends, case: Case, engine: str):
    _skip_unavailable(engine)
    _check(backends, case, engine)


BAD_INPUTS = {
    "misspelt-column": ("orders", lambda f: f.rename({"revenue": "revenu"})),
    "no-customer-id": ("customers", lambda f: f.drop("customer_id")),
    "no-orders": ("orders", None),
}


def _broken(backends: Backends, bad: str, engine: str) -> Engine:
    """The tiny data set with one defect (``BAD_INPUTS``), opened on ``engine``."""
    dataset = f"broken-{bad}"
    if dataset not in backends.folders:
        folder = backends.root / dataset / "data"
        shutil.copytree(backends.folder("tiny"), folder)
        table, change = BAD_INPUTS[bad]
        path = folder / f"{table}.parquet"
        if change is None:
            path.unlink()
        else:
            change(pl.read_parquet(path)).write_parquet(path)
        backends.folders[dataset] = folder
    return backends.engine(dataset, engine)


@pytest.mark.parametrize("bad", sorted(BAD_INPUTS))
@pytest.mark.parametrize("engine", ENGINES)
def test_same_problems_for_the_same_bad_input(backends: Backends, engine: str, bad: str):
    _skip_unavailable(engine)
    want, got = (_problems(_broken(backends, bad, name)) for name in ("polars", engine))
    assert want and {t for t, _, _ in want} == {BAD_INPUTS[bad][0]}
    assert got == want


def _problems(engine: Engine) -> set[tuple[str | None, str | None, str]]:
    """Each problem's table, column and message (the data's location as a placeholder)."""
    return {(p.table, p.column, p.message.replace(engine.label, "<source>"))
            for p in engine.check()}


def test_engine_names_in_refusals(tmp_path: Path):
    from liftlab.engines.base import folder_only
    from liftlab.engines.spark_engine import SparkEngine

    assert "the spark engine does not support it yet" in folder_only(
        SparkEngine(spark=None, root=tmp_path), "liftlab monitor")  # type: ignore[arg-type]
    assert "the polars engine does not" in folder_only(open_engine(tmp_path), "x")


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_folder_only_commands_refuse_on_databases(backends: Backends, engine: str):
    _skip_unavailable(engine)
    url = str(backends.source(CANONICAL.id, engine))
    as_of = dt.datetime(2026, 2, 18, tzinfo=dt.UTC)
    for command, run in (
            ("monitor", lambda: monitor_file(EXPERIMENTS / "email-flash.yaml", url, as_of,
                                             None, None)),
            ("multichannel", lambda: multichannel(url))):
        with pytest.raises(UserError) as err:
            run()
        assert str(err.value) == (
            f"liftlab {command} runs on a data folder with the polars engine; the {engine} "
            "engine does not support it yet (pass --data with the folder of the tables)")
    result = backends.result(Case(CANONICAL.id, "spring-factorial"), engine)
    warnings = {w["code"]: w["message"] for w in result["health"]["warnings"]}
    assert warnings["sequential"].startswith("the sequential readout runs on a data folder")
    assert warnings["landing"].startswith("last-touch credit runs on a data folder")
    assert f"the {engine} engine does not support it yet" in warnings["landing"]
