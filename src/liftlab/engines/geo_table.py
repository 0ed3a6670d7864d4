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
        what = "a missing geo id" if bad["no_geo"].all() else "a missing or unreadable date"
        raise DataError(
            [
                Problem(
                    f"{bad.height:,} row(s) with {what}",
                    table=TABLE,
                    column=GEO if bad["no_geo"].all() else DATE,
                    rows=rows,
                    row_count=bad.height,
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


def _sql(engine: Any, columns: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
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
    day = F.to_date(F.col(DATE))
    rows = (
        df.withColumn(DATE, day)
        .withColumn(GEO, F.col(GEO).cast("string"))
        .where((F.col(DATE) >= F.lit(start)) & (F.col(DATE) < F.lit(end)))
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
