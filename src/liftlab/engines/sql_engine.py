"""The SQL engine: the aggregation plan compiled to one SQL query that runs inside the database
(PostgreSQL or DuckDB). Only the table of sufficient statistics travels back.

The query is generated from the same ``AggregationPlan`` as the polars and Spark engines (no
hand-written SQL per metric); values are always bound parameters, identifiers always quoted.
When the database has no assignments for the experiment, the population's ids are fetched,
assigned by the stable hash locally, and uploaded to a temporary table (only ids travel).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from liftlab.core.errors import DataError, Keys, Problem, UserError
from liftlab.data.quality import (
    EARLIEST,
    MAX_AMOUNT,
    MAX_ROWS_SHOWN,
    ROW_KEY,
    TS_COLUMN,
    Check,
    QualityReport,
    build_report,
    declare_checks,
)
from liftlab.data.schema import MAX_FLOAT_ID, TABLES, structural_problems
from liftlab.engines.base import (
    PolarsOnlyRowWork,
    spread_caps,
    with_landing,
)
from liftlab.engines.dburl import DbUrl, parse_db_url, scrub
from liftlab.engines.units import (
    MISSING_SEGMENT,
    Units,
    arms_source,
    hash_arms,
    no_assignments,
    segment_warning,
)
from liftlab.spec import filters
from liftlab.spec.aggregation import (
    AggregationPlan,
    Measure,
    arm_col,
    cap_col,
    prod_col,
    sum_col,
    winsorised,
)
from liftlab.spec.models import Experiment
from liftlab.stats.quantiles import LOG_GAMMA, OFFSET, ZERO

Dialect = Literal["postgresql", "duckdb"]
UNITS_TABLE = "liftlab_units"  # the prefix: one temporary table per experiment (units_table)


def units_table(experiment_id: str) -> str:
    """The temporary table of one experiment's units: a second experiment on the same
    connection gets a table of its own (ids may hold '-', and PostgreSQL names stop at 63
    bytes: a digest keeps it short and plain)."""
    return f"{UNITS_TABLE}_{hashlib.sha256(experiment_id.encode()).hexdigest()[:16]}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class SqlEngine(PolarsOnlyRowWork):
    """Contract tables in a database, aggregated by the database itself."""

    label: str  # the URL without its password: what reports and messages show
    conn: Any = field(repr=False)
    dialect: Dialect
    schema: str | None = None
    timezone: str = "UTC"
    secrets: tuple[str, ...] = field(default=(), repr=False)
    _columns: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _id_kinds: dict[str, str] | None = field(default=None, repr=False)  # table -> int/float/text

    # -- connection helpers -------------------------------------------------------------
    def _p(self) -> str:
        return "%s" if self.dialect == "postgresql" else "?"

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.dialect == "duckdb" else sql

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(sql, params, fetch=True)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._run(sql, params, fetch=False)

    def _run(self, sql: str, params: Sequence[Any], fetch: bool) -> list[tuple[Any, ...]]:
        # DuckDB cursors are separate connections: temporary tables need the connection itself.
        cur = self.conn if self.dialect == "duckdb" else self.conn.cursor()
        try:
            cur.execute(self._sql(sql), list(params))
            return cur.fetchall() if fetch else []
        except Exception as exc:
            if self.dialect == "postgresql":
                self.conn.rollback()
            message = scrub(_first_line(exc), self.secrets)
            raise DataError([Problem(f"the database refused a query: {message}",
                                     hint=f"source {self.label}")]) from None
        finally:
            if cur is not self.conn:
                cur.close()

    def query_frame(self, sql: str, params: Sequence[Any], names: list[str]) -> pl.DataFrame:
        rows = self.query(sql, params)
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def table(self, name: str) -> str:
        return f"{_quote(self.schema)}.{_quote(name)}" if self.schema else _quote(name)

    # -- Engine protocol ----------------------------------------------------------------
    def columns(self, table: str) -> list[str]:
        if table not in self._columns:
            sql = ("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                   "AND table_schema = COALESCE(%s, current_schema()) ORDER BY ordinal_position")
            self._columns[table] = [r[0] for r in self.query(sql, [table, self.schema])]
        return self._columns[table]

    def has(self, table: str) -> bool:
        return bool(self.columns(table))

    def _uid(self, table: str, unit: str) -> str:
        """``table``'s unit id in the type every table shares (as ``FolderSource.id_type``):
        text when any table stores text (integers in decimal), else integers (integral
        floats cast; a float id with a fraction is a DataError)."""
        if self._id_kinds is None:
            sql = ("SELECT table_name, data_type FROM information_schema.columns WHERE "
                   "column_name = %s AND table_schema = COALESCE(%s, current_schema())")
            kinds = {t: _id_kind(d) for t, d in self.query(sql, [unit, self.schema])
                     if t in TABLES}
            for t, kind in kinds.items():
                if kind == "float":
                    self._check_whole(t, unit)
            self._id_kinds = kinds
        kinds = self._id_kinds
        col = _quote(unit)
        kind = kinds.get(table, "int")
        as_int = f"CAST({col} AS BIGINT)" if kind == "float" else col
        if "text" in kinds.values() and kind != "text":
            return f"CAST({as_int} AS VARCHAR)"
        return as_int

    def _check_whole(self, table: str, unit: str) -> None:
        col = _quote(unit)
        bad = self.query(f"SELECT COUNT(*) FROM {self.table(table)} WHERE {col} <> FLOOR({col})"
                         f" OR ABS({col}) > {MAX_FLOAT_ID!r}", [])[0][0]
        if bad:
            raise DataError([Problem(f"{bad} id(s) are not whole numbers within ±2^53", table=table,
                                     column=unit, row_count=int(bad),
                                     hint="ids must be integers or text")])

    def check(self) -> list[Problem]:
        return structural_problems(
            {t: self.columns(t) if self.has(t) else None for t in TABLES}, self.label)

    def quality(self, as_of: dt.datetime) -> QualityReport:
        checks = declare_checks({t: self.columns(t) for t in TABLES if self.has(t)})
        counts: dict[int, int] = {}
        for table in dict.fromkeys(c.table for c in checks):
            mine = [(i, c) for i, c in enumerate(checks) if c.table == table]
            parts, params = [], []
            for _, c in mine:
                sql, ps = self._bad_count(c, as_of)
                parts.append(sql)
                params += ps
            row = self.query(f"SELECT {', '.join(parts)} FROM {self.table(table)}", params)[0]
            counts.update({i: int(v or 0) for (i, _), v in zip(mine, row, strict=True)})

        return build_report(checks, [counts[i] for i in range(len(checks))], lambda c: (),
                            lambda c: self._first_keys(c, as_of))

    def _first_keys(self, c: Check, as_of: dt.datetime) -> Keys | None:
        """A table has no row order: the offending rows are named by their key (the repeated
        ids themselves for duplicates), the smallest first."""
        key = c.column if c.kind == "duplicated" else ROW_KEY.get(c.table)
        if key is None or (key == c.column and c.kind == "null") or key not in self.columns(
                c.table):
            return None
        col = _quote(key)
        if c.kind == "duplicated":
            sql, params = (f"SELECT {col} FROM {self.table(c.table)} WHERE {col} IS NOT NULL "
                           f"GROUP BY {col} HAVING COUNT(*) > 1"), []
        else:
            cond, params = self._bad_condition(c, as_of)
            sql = f"SELECT DISTINCT {col} FROM {self.table(c.table)} WHERE {cond}"
        rows = self.query(f"{sql} ORDER BY 1 LIMIT {MAX_ROWS_SHOWN}", params)
        return Keys(key, tuple(str(r[0]) for r in rows))

    def _bad_condition(self, c: Check, as_of: dt.datetime) -> tuple[str, list[Any]]:
        col = _quote(c.column)
        if c.kind == "not_finite":
            if self.dialect == "postgresql":
                return (f"({col} IS NULL OR {col} IN ('NaN'::float8, 'Infinity'::float8, "
                        f"'-Infinity'::float8) OR ABS({col}) > %s)", [MAX_AMOUNT])
            return f"({col} IS NULL OR NOT isfinite({col}) OR ABS({col}) > %s)", [MAX_AMOUNT]
        if c.kind == "negative":
            return f"({col} < 0)", []
        if c.kind == "out_of_range":
            return f"({col} < %s OR {col} > %s)", [self._ts(EARLIEST),
                                                   self._ts(as_of + dt.timedelta(days=1))]
        return f"({col} IS NULL)", []

    def _bad_count(self, c: Check, as_of: dt.datetime) -> tuple[str, list[Any]]:
        if c.kind == "duplicated":
            col = _quote(c.column)
            return f"(COUNT({col}) - COUNT(DISTINCT {col}))", []  # nulls: a check of their own
        cond, params = self._bad_condition(c, as_of)
        return f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)", params

    def _ts(self, ts: dt.datetime) -> dt.datetime:
        """Timestamps as parameters: aware UTC (timestamptz columns compare as instants)."""
        return ts.astimezone(dt.UTC)

    def units(self, spec: Experiment) -> Units:
        unit = _quote(spec.unit)
        cols = self.columns("customers")
        missing = [c for c in [spec.unit, *spec.segments] if c not in cols]
        if missing:
            raise DataError([Problem(f"column {c!r} used by the experiment is missing",
                                     table="customers", column=c) for c in missing])
        where, params = "TRUE", []
        if spec.population.where:
            where, params = filters.to_sql(filters.parse(spec.population.where),
                                           quote_ident=_quote)
        segs = ", ".join(f"COALESCE(CAST({_quote(s)} AS VARCHAR), '{MISSING_SEGMENT}') AS "
                         f"{_quote(s)}" for s in spec.segments)
        population = (f"SELECT {self._uid('customers', spec.unit)} AS {unit}"
                      f"{', ' + segs if segs else ''} FROM {self.table('customers')} "
                      f"WHERE {where}")
        arms = ", ".join(f"MAX(CASE WHEN channel = %s THEN \"group\" END) AS {_quote(arm_col(c))}"
                         for c in spec.channels)
        assigned_by = "hash"
        n_assigned = 0
        if arms_source(spec, self.has("assignments")) == "table":
            n_assigned = self.query(f"SELECT COUNT(*) FROM {self.table('assignments')} "
                                    "WHERE experiment_id = %s", [spec.id])[0][0]
            if not n_assigned:
                raise no_assignments(spec, [r[0] for r in self.query(
                    f"SELECT DISTINCT CAST(experiment_id AS VARCHAR) FROM "
                    f"{self.table('assignments')} ORDER BY 1 LIMIT 11")])
        table = units_table(spec.id)
        self._execute(f"DROP TABLE IF EXISTS {table}")
        if n_assigned:
            assigned_by = "table"
            dupes = self.query(
                f"SELECT {unit} FROM {self.table('assignments')} WHERE experiment_id = %s "
                f"GROUP BY {unit}, channel HAVING COUNT(DISTINCT \"group\") > 1 "
                f"ORDER BY 1 LIMIT 5", [spec.id])
            if dupes:
                raise DataError([Problem(
                    f"unit(s) are in two arms of the same channel (e.g. {spec.unit} "
                    f"{', '.join(str(r[0]) for r in dupes)})", table="assignments",
                    column="group", hint="a unit may be in one arm per channel")])
            self._execute(
                f"CREATE TEMPORARY TABLE {table} AS SELECT p.*, "
                f"{', '.join('a.' + _quote(arm_col(c)) for c in spec.channels)} FROM "
                f"({population}) p JOIN (SELECT {self._uid('assignments', spec.unit)} AS "
                f"{unit}, {arms} FROM {self.table('assignments')} WHERE experiment_id = %s "
                f"GROUP BY 1) a USING ({unit})", [*params, *spec.channels, spec.id])
        else:
            names = [spec.unit, *spec.segments]
            pop = self.query_frame(population, params, names)
            self._upload(table, pop.with_columns(hash_arms(spec, pop[spec.unit])))
        n = self.query(f"SELECT COUNT(*) FROM {table}")[0][0]
        if n == 0:
            raise DataError([Problem("the population is empty", table="customers")])
        keep, warnings = [], []
        for s in spec.segments:
            k, longest = self.query(f"SELECT COUNT(DISTINCT {_quote(s)}), "
                                    f"MAX(LENGTH({_quote(s)})) FROM {table}")[0]
            warning = segment_warning(s, int(k), int(longest or 0))
            if warning:
                warnings.append(warning)
            else:
                keep.append(s)
        return Units(table, int(n), assigned_by, tuple(keep), tuple(warnings))

    def aggregate(self, plan: AggregationPlan, units: Units,
                  experiment_id: str) -> pl.DataFrame:
        plan = with_landing(plan, self)
        sql, params = self.compile(plan, str(units.frame), experiment_id)
        names = [*plan.group_by, "n", *(sum_col(m.name) for m in plan.measures),
                 *(prod_col(a, b) for a, b in plan.products),
                 *(cap_col(m.name) for m in winsorised(plan))]
        rows = self.query(sql, params)
        schema = {c: pl.String for c in plan.group_by} | {"n": pl.UInt32} | {
            c: pl.Float64 for c in names[len(plan.group_by) + 1:]}
        frame = spread_caps(pl.DataFrame(rows, schema=schema, orient="row"), plan)
        keys = list(plan.group_by)
        return frame.sort(keys, nulls_last=True) if keys else frame

    def compile(self, plan: AggregationPlan, units_table: str,
                experiment_id: str) -> tuple[str, list[Any]]:
        """The plan as one SQL query: per-table unit aggregates, joined, then summed."""
        ctes, params, source = self._per_unit(plan, units_table, experiment_id)
        safe = {m.name: f"m{i}" for i, m in enumerate(plan.measures)}
        keys = [_quote(k) for k in plan.group_by]
        aggs = ["COUNT(*)"] + [f"SUM({safe[m.name]})" for m in plan.measures]
        aggs += [f"SUM({safe[a]} * {safe[b]})" for a, b in plan.products]
        aggs += [f"MAX({safe[m.name]})" for m in winsorised(plan)]  # the cap (spread_caps)
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        select_keys = [f"CAST({k} AS VARCHAR)" for k in keys]
        sql = (f"WITH {', '.join(ctes)} SELECT {', '.join(select_keys + aggs)} "
               f"FROM {source}{group}")
        return sql, params

    def histograms(self, plan: AggregationPlan, units: Units,
                   experiment_id: str) -> pl.DataFrame:
        ctes, params, source = self._per_unit(plan, str(units.frame), experiment_id)
        keys = [_quote(k) for k in plan.group_by]
        select_keys = [f"CAST({k} AS VARCHAR)" for k in keys]
        parts = []
        for i in range(len(plan.measures)):
            v = f"m{i}"
            bin_ = (f"CASE WHEN ABS({v}) < {ZERO!r} THEN 0 ELSE CAST(SIGN({v}) * "
                    f"(CEIL(LN(ABS({v})) / {LOG_GAMMA!r}) + {OFFSET}) AS BIGINT) END")
            cols = ", ".join([*select_keys, "%s AS measure", f"{bin_} AS bin", "COUNT(*) AS n"])
            parts.append(f"SELECT {cols} FROM {source} GROUP BY {', '.join([*keys, bin_])}")
        sql = f"WITH {', '.join(ctes)} {' UNION ALL '.join(parts)}"
        rows = self.query(sql, params + [m.name for m in plan.measures])
        schema = {k: pl.String for k in plan.group_by} | {
            "measure": pl.String, "bin": pl.Int64, "n": pl.Int64}
        frame = pl.DataFrame(rows, schema=schema, orient="row")
        return frame.sort([*plan.group_by, "measure", "bin"])

    def _per_unit(self, plan: AggregationPlan, units_table: str,
                  experiment_id: str) -> tuple[list[str], list[Any], str]:
        """The common table expressions up to one row per unit with its measures (named
        ``m<i>`` in the plan's order), their parameters and the last one's name."""
        unit = _quote(plan.unit)
        safe = {m.name: f"m{i}" for i, m in enumerate(plan.measures)}
        lo = plan.pre_window[0] if plan.pre_window else plan.window[0]
        hi = plan.window[1]
        ctes, params = [], []
        joins, selects = [], []
        for t, table in enumerate(plan.tables):
            if table == "customers":  # covariates: one row per unit, no window
                cte, ps = self._customer_values(plan, units_table)
                ctes.append(f"t{t} AS ({cte})")
                params += ps
                joins.append(f"LEFT JOIN t{t} USING ({unit})")
                selects += [f"COALESCE(t{t}.{safe[m.name]}, 0) AS {safe[m.name]}"
                            for m in plan.measures_of(table)]
                continue
            ts = _quote(TS_COLUMN[table])
            aggs = []
            own = table == "contacts" and "experiment_id" in self.columns("contacts")
            split = own and any(m.every_experiment for m in plan.measures_of(table))
            for m in plan.measures_of(table):  # split: each measure keeps its own rows
                expr, ps = self._measure(m, plan, experiment_id if split else None)
                aggs.append(f"{expr} AS {safe[m.name]}")
                params += ps
            extra = ""
            if own and not split:
                extra = " AND experiment_id = %s"
            uid = self._uid(table, plan.unit)
            ctes.append(f"t{t} AS (SELECT {uid} AS {unit}, {', '.join(aggs)} FROM "
                        f"{self.table(table)} WHERE {ts} >= %s AND {ts} < %s{extra} AND {uid} "
                        f"IN (SELECT {unit} FROM {units_table}) GROUP BY 1)")
            params += [self._ts(lo), self._ts(hi)] + ([experiment_id] if extra else [])
            joins.append(f"LEFT JOIN t{t} USING ({unit})")
            selects += [f"COALESCE(t{t}.{safe[m.name]}, 0) AS {safe[m.name]}"
                        for m in plan.measures_of(table)]
        keys = [_quote(k) for k in plan.group_by]
        per_unit = (f"SELECT {', '.join(['u.' + k for k in keys] + selects) or '1 AS one'} "
                    f"FROM {units_table} u {' '.join(joins)}")
        ctes.append(f"per_unit AS ({per_unit})")
        capped = [m for m in plan.measures if m.winsorize is not None]
        source = "per_unit"
        if capped:
            caps = ", ".join(f"percentile_cont({m.winsorize}) WITHIN GROUP (ORDER BY "
                             f"{safe[m.name]}) AS c{safe[m.name]}" for m in capped)
            ctes.append(f"caps AS (SELECT {caps} FROM per_unit)")
            cols = [k for k in keys] + [
                f"LEAST({v}, caps.c{v}) AS {v}" if any(safe[m.name] == v for m in capped)
                else v for v in safe.values()]
            ctes.append(f"capped AS (SELECT {', '.join(cols)} FROM per_unit CROSS JOIN caps)")
            source = "capped"
        return ctes, params, source

    def _customer_values(self, plan: AggregationPlan,
                         units_table: str) -> tuple[str, list[Any]]:
        """The customers columns used as covariates (see ``metrics.Aggregate``), with the
        names of the plan's measures as ``compile`` gives them."""
        safe = {m.name: f"m{i}" for i, m in enumerate(plan.measures)}
        cols, params = [], []
        types = dict(self.query(
            "SELECT column_name, LOWER(data_type) FROM information_schema.columns WHERE "
            "table_name = 'customers' AND table_schema = COALESCE(%s, current_schema())",
            [self.schema]))
        for m in plan.measures_of("customers"):
            assert m.value is not None
            col, kind = _quote(m.value), types.get(m.value, "")
            if m.agg == "after":
                assert plan.pre_window is not None
                cols.append(f"CASE WHEN CAST({col} AS DATE) > %s THEN 1.0 ELSE 0.0 END "
                            f"AS {safe[m.name]}")
                params.append(plan.pre_window[0].date())
            elif kind.startswith("bool"):
                cols.append(f"CASE WHEN {col} THEN 1.0 ELSE 0.0 END AS {safe[m.name]}")
            elif any(t in kind for t in ("char", "text", "string", "date", "time")):
                raise DataError([Problem(
                    f"covariate column {m.value!r} holds {kind}, not numbers or true/false",
                    table="customers", column=m.value,
                    hint="name numeric customers columns in covariates.attributes")])
            else:
                cols.append(f"CAST({col} AS DOUBLE PRECISION) AS {safe[m.name]}")
        uid, unit = self._uid("customers", plan.unit), _quote(plan.unit)
        return (f"SELECT {uid} AS {unit}, {', '.join(cols)} FROM {self.table('customers')} "
                f"WHERE {uid} IN (SELECT {unit} FROM {units_table})"), params

    def _measure(self, m: Measure, plan: AggregationPlan,
                 own: str | None = None) -> tuple[str, list[Any]]:
        """``own``: the experiment whose rows the measure keeps (unless every_experiment)."""
        ts = _quote(TS_COLUMN[m.table])
        lo, hi = plan.pre_window if m.period == "pre" else plan.window  # type: ignore[misc]
        cond, params = f"{ts} >= %s AND {ts} < %s", [self._ts(lo), self._ts(hi)]
        if own is not None and not m.every_experiment:
            cond += " AND experiment_id = %s"
            params.append(own)
        if m.event is not None:
            cond += " AND event = %s"
            params.append(m.event)
        if m.channel is not None:
            cond += " AND channel = %s"
            params.append(m.channel)
        if m.agg == "sum":
            expr = f"SUM(CASE WHEN {cond} THEN CAST({_quote(m.value or '')} AS DOUBLE PRECISION)"\
                   " ELSE 0 END)"
        elif m.agg == "count":
            expr = f"CAST(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END) AS DOUBLE PRECISION)"
        else:
            expr = f"CAST(MAX(CASE WHEN {cond} THEN 1 ELSE 0 END) AS DOUBLE PRECISION)"
        return expr, params


    def distinct(self, table: str, column: str, window: tuple[dt.datetime, dt.datetime]
                 ) -> list[str]:
        ts = _quote(TS_COLUMN[table])
        rows = self.query(f"SELECT DISTINCT CAST({_quote(column)} AS VARCHAR) FROM "
                          f"{self.table(table)} WHERE {ts} >= %s AND {ts} < %s",
                          [self._ts(window[0]), self._ts(window[1])])
        return sorted(r[0] for r in rows if r[0] is not None)

    def latest(self, table: str) -> dt.datetime | None:
        if not self.has(table):
            return None
        return self.query(f"SELECT MAX({_quote(TS_COLUMN[table])}) FROM {self.table(table)}")[0][0]

    # -- temporary units table ----------------------------------------------------------
    def _upload(self, table: str, frame: pl.DataFrame) -> None:
        """Create a temporary units table from a local frame (ids, segments, arms)."""
        if self.dialect == "duckdb":
            arrow = frame.to_arrow()  # noqa: F841 - referenced by name in the SQL below
            self.conn.execute(f"CREATE TEMPORARY TABLE {table} AS SELECT * FROM arrow")
            return
        types = {c: ("BIGINT" if frame.schema[c].is_integer() else "TEXT") for c in frame.columns}
        cols = ", ".join(f"{_quote(c)} {types[c]}" for c in frame.columns)
        self._execute(f"CREATE TEMPORARY TABLE {table} ({cols})")
        cur = self.conn.cursor()
        names = ", ".join(_quote(c) for c in frame.columns)
        with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)
        cur.close()


def _id_kind(data_type: str) -> str:
    """int, float or text, from information_schema's data_type."""
    t = data_type.upper()
    if "INT" in t:
        return "int"
    if t.startswith(("DOUBLE", "FLOAT", "REAL", "NUMERIC", "DECIMAL")):
        return "float"
    return "text"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def connect(url: str, timezone: str = "UTC") -> SqlEngine:
    """Open ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=S]`` or
    ``duckdb:///PATH.duckdb`` (see dburl.py for the URL rules).

    The PostgreSQL password comes from the URL (percent-encoded), ``PGPASSWORD`` or
    ``LIFTLAB_DB_PASSWORD`` (the environment only: no file is read); it is never shown, and
    driver messages are scrubbed of it.
    """
    db = parse_db_url(url)
    if db.scheme == "duckdb":
        return _connect_duckdb(db, timezone)
    import psycopg

    options = dict(db.options)
    password = db.password or options.pop("password", None) or os.environ.get(
        "PGPASSWORD") or os.environ.get("LIFTLAB_DB_PASSWORD")
    kwargs: dict[str, Any] = {"connect_timeout": 10, **options,
                              "host": db.host or "localhost", "port": db.port or 5432,
                              "dbname": db.dbname, "user": db.user, "password": password}
    secrets = (*db.secrets, *((password,) if password else ()))
    try:
        conn = psycopg.connect(**{k: v for k, v in kwargs.items() if v is not None})
    except psycopg.Error as exc:
        raise UserError(f"cannot connect to {db.label}: "
                        f"{scrub(_first_line(exc), secrets)}") from None
    return SqlEngine(db.label, conn, "postgresql", db.schema, timezone, secrets)


def _connect_duckdb(db: DbUrl, timezone: str) -> SqlEngine:
    import duckdb

    assert db.path is not None
    if not Path(db.path).is_file():
        raise UserError(f"DuckDB file {db.path!r} does not exist (from {db.label}; "
                        "duckdb:///NAME is relative to the working folder, "
                        "duckdb:////NAME absolute)")
    try:
        conn = duckdb.connect(db.path, read_only=True)
    except duckdb.Error as exc:
        raise UserError(f"cannot open {db.label}: {_first_line(exc)}") from None
    return SqlEngine(db.label, conn, "duckdb", db.schema, timezone)

