"""The geo x date table of a geo experiment, read by every engine.

``geo_metrics`` holds one row per geo and date (daily or weekly): a ``geo`` id (integer or
text), a ``date`` (a date, a timestamp naive or zoned, or ISO text) and numeric KPI and spend
columns. Each engine returns the same small table, one row per geo and date within the
window: ``geo`` (text), ``date`` (Date), ``rows`` (how many source rows), and per requested
column its sum and ``<column>__n``, the number of its non-null values. The checks and the
statistics run on that table (``liftlab.analyses.geo``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from liftlab.core.errors import DataError, Problem
from liftlab.engines.base import Engine

TABLE = "geo_metrics"
GEO, DATE = "geo", "date"


def geo_frame(
    engine: Engine, columns: tuple[str, ...], start: dt.date, end: dt.date
) -> pl.DataFrame:
    """Sums per (geo, date) of ``columns`` for dates in [start, end), sorted."""
    missing = _missing(engine, columns)
    if missing:
        raise DataError(missing)
    from liftlab.engines.polars_engine import PolarsEngine

    if isinstance(engine, PolarsEngine):
        frame = _polars(engine, columns, start, end)
    elif type(engine).__name__ == "SqlEngine":
        frame = _sql(engine, columns, start, end)
    elif type(engine).__name__ == "SparkEngine":
        frame = _spark(engine, columns, start, end)
    else:
        raise TypeError(f"no geo_metrics reader for {type(engine).__name__}")
    schema = {
        GEO: pl.String,
        DATE: pl.Date,
        "rows": pl.Int64,
        **{c: pl.Float64 for c in columns},
        **{f"{c}__n": pl.Int64 for c in columns},
    }
    return frame.select(pl.col(k).cast(v) for k, v in schema.items()).sort(GEO, DATE)


def _missing(engine: Engine, columns: tuple[str, ...]) -> list[Problem]:
    if not engine.has(TABLE):
        return [
            Problem(
                f"table {TABLE!r} not found in {engine.label}",
                table=TABLE,
                hint="a geo experiment reads geo_metrics: one row per geo and date "
                "with the KPI and spend columns",
            )
        ]
    have = engine.columns(TABLE)
    return [
        Problem(f"column {c!r} not found; the table has: {', '.join(have)}", table=TABLE, column=c)
        for c in (GEO, DATE, *columns)
        if c not in have
    ]


def _polars(engine: Any, columns: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
    source = engine.source
    schema = source.schema(TABLE)
    lf = source.raw(TABLE).select(
        _geo_text(schema[GEO]).alias(GEO),
        _as_date(schema[DATE], source.timezone).alias(DATE),
        *[pl.col(c).cast(pl.Float64, strict=False) for c in columns],
    )
    _bad_dates(lf, source)
    with source.reading():
        return (
            lf.filter(pl.col(DATE).is_between(start, end, closed="left"))
            .group_by(GEO, DATE)
            .agg(
                pl.len().alias("rows"),
                *[pl.col(c).filter(pl.col(c).is_finite()).sum() for c in columns],
                *[pl.col(c).is_finite().sum().alias(f"{c}__n") for c in columns],
            )
            .collect()
        )


def _bad_dates(lf: pl.LazyFrame, source: Any) -> None:
    """Dates that cannot be read, and missing geo ids, are errors naming their rows."""
    with source.reading():
        bad = (
            lf.with_row_index("__row", offset=1)
            .filter(pl.col(DATE).is_null() | pl.col(GEO).is_null())
            .select("__row", pl.col(GEO).is_null().alias("no_geo"))
            .collect()
        )
    if bad.height:
        rows = tuple(int(r) for r in bad["__row"].head(10))
        raise _unreadable(bad.height, rows, bool(bad["no_geo"].all()))


def _unreadable(count: int, rows: tuple[int, ...], only_geo: bool) -> DataError:
    """The same error from every engine: ``count`` rows without a geo id or a readable
    date, the first ``rows`` (1-based, in the table's order) when the engine knows it."""
    what = "a missing geo id" if only_geo else "a missing or unreadable date"
    return DataError(
        [
            Problem(
                f"{count:,} row(s) with {what}",
                table=TABLE,
                column=GEO if only_geo else DATE,
                rows=rows,
                row_count=count,
                hint="dates as YYYY-MM-DD (or timestamps); every row a geo",
            )
        ]
    )


def _geo_text(dtype: pl.DataType) -> pl.Expr:
    """Geo ids as text; integral floats (42.0) as integers first."""
    col = pl.col(GEO)
    if dtype.is_float():
        col = (
            pl.when(col == col.round())
            .then(col.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(col.cast(pl.String))
        )
        return col
    return col.cast(pl.String)


def _as_date(dtype: pl.DataType, timezone: str) -> pl.Expr:
    """The calendar day: a zoned timestamp's in the experiment's zone, a naive one's as
    written, text's first ten characters (YYYY-MM-DD)."""
    col = pl.col(DATE)
    if dtype == pl.Date:
        return col
    if isinstance(dtype, pl.Datetime):
        return (col.dt.convert_time_zone(timezone) if dtype.time_zone else col).dt.date()
    return col.cast(pl.String).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


def _sql_bad_dates(engine: Any) -> None:
    """Rows without a geo id or a readable date: DuckDB's TRY_CAST (rows by ``rowid``, the
    table's insertion order); PostgreSQL's text that does not start with YYYY-MM-DD (its
    row count only: a table has no row order there)."""
    q = '"{}"'.format
    table = engine.table(TABLE)
    if engine.dialect == "duckdb":
        unreadable = f"TRY_CAST({q(DATE)} AS DATE) IS NULL"
        rowid = "rowid + 1"
    else:
        unreadable = f"NOT (CAST({q(DATE)} AS TEXT) ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"
        rowid = "NULL"
    where = f"{q(GEO)} IS NULL OR {q(DATE)} IS NULL OR {unreadable}"
    [(count, no_geo)] = engine.query(
        f"SELECT COUNT(*), COUNT(*) FILTER (WHERE {q(GEO)} IS NULL) FROM {table} WHERE {where}",
        [],
    )
    if count:
        found = engine.query(f"SELECT {rowid} FROM {table} WHERE {where} LIMIT 10", [])
        rows = tuple(sorted(int(r) for (r,) in found if r is not None))
        raise _unreadable(int(count), rows, no_geo == count)


def _sql(engine: Any, columns: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
    _sql_bad_dates(engine)
    q = '"{}"'.format
    day = f"CAST({q(DATE)} AS DATE)"
    sums = ", ".join(f"SUM({q(c)}), COUNT({q(c)})" for c in columns)
    p = "%s"
    sql = (
        f"SELECT CAST({q(GEO)} AS VARCHAR), {day}, COUNT(*), {sums} "
        f"FROM {engine.table(TABLE)} WHERE {day} >= {p} AND {day} < {p} "
        f"GROUP BY 1, 2"
    )
    names = [GEO, DATE, "rows", *[n for c in columns for n in (c, f"{c}__n")]]
    frame = engine.query_frame(sql, [start, end], names)
    return frame if frame.height else pl.DataFrame(schema=dict.fromkeys(names, pl.String))


def _spark(engine: Any, columns: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
    from pyspark.sql import functions as F

    df = engine._raw(TABLE)
    df = df.withColumn(DATE, _spark_day(df)).withColumn(GEO, F.col(GEO).cast("string"))
    _spark_bad_dates(df)
    rows = (
        df.where((F.col(DATE) >= F.lit(start)) & (F.col(DATE) < F.lit(end)))
        .groupBy(GEO, DATE)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            *[
                f
                for c in columns
                for f in (
                    F.sum(F.col(c).cast("double")).alias(c),
                    F.count(F.col(c)).alias(f"{c}__n"),
                )
            ],
        )
        .collect()
    )
    names = [GEO, DATE, "rows", *[n for c in columns for n in (c, f"{c}__n")]]
    return pl.DataFrame(
        [tuple(r) for r in rows], schema=names, orient="row", infer_schema_length=None
    )


def _spark_day(df: Any) -> Any:
    """The calendar day as polars reads it: a date as is, a timestamp's date, text's first
    ten characters as YYYY-MM-DD (null, not an error, when they are not a date)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kind = df.schema[DATE].dataType
    col = F.col(DATE)
    if isinstance(kind, T.DateType):
        return col
    if isinstance(kind, T.TimestampType | T.TimestampNTZType):
        return F.to_date(col)
    return F.try_to_date(F.substring(col.cast("string"), 1, 10), "yyyy-MM-dd")


def _spark_bad_dates(df: Any) -> None:
    """Rows without a geo id or a readable date, numbered in the files' order (1-based, as
    the polars engine numbers them)."""
    from pyspark.sql import functions as F

    bad = F.col(GEO).isNull() | F.col(DATE).isNull()
    [counts] = df.agg(
        F.sum(bad.cast("int")).alias("bad"), F.sum(F.col(GEO).isNull().cast("int")).alias("geo")
    ).collect()
    count = int(counts["bad"] or 0)
    if count:
        rows = (
            df.select(bad.alias("bad"))
            .rdd.zipWithIndex()
            .filter(lambda pair: pair[0]["bad"])
            .map(lambda pair: pair[1] + 1)
            .take(10)
        )
        raise _unreadable(count, tuple(int(r) for r in rows), int(counts["geo"] or 0) == count)
