"""Every engine reads geo_metrics alike: the same small geo x date table, and the same error
(table, column, count and row numbers) for rows whose date cannot be read or whose geo id is
missing, where an engine used to drop them (Spark without ANSI) or fail on the cast."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import polars as pl
import pytest

from liftlab.core.errors import DataError
from liftlab.engines.geo_table import geo_frame
from liftlab.engines.open import open_engine

duckdb = pytest.importorskip("duckdb")

WINDOW = (dt.date(2025, 1, 1), dt.date(2027, 1, 1))


def _folder(tmp: Path, frame: pl.DataFrame) -> tuple[Path, str]:
    """The frame as a CSV folder and as a DuckDB table (text columns, as loaded from CSV)."""
    data = tmp / "data"
    data.mkdir()
    frame.write_csv(data / "geo_metrics.csv")
    db = tmp / "geo.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE geo_metrics AS SELECT geo, date, CAST(sales AS DOUBLE) AS sales "
        f"FROM read_csv('{data / 'geo_metrics.csv'}', all_varchar = true)"
    )
    con.close()
    return data, f"duckdb:///{db}"


def _engines(data: Path, url: str) -> dict[str, object]:
    engines = {"polars": open_engine(data), "duckdb": open_engine(url)}
    if importlib.util.find_spec("pyspark") is not None:  # the spark extra
        engines["spark"] = open_engine(data, engine="spark")
    return engines


GOOD = pl.DataFrame(
    {
        "geo": ["a", "a", "b", "b", "b"],
        "date": ["2026-01-01", "2026-01-02", "2026-01-01", "2026-01-02", "2026-01-02"],
        "sales": [1.0, 2.0, 3.0, None, 5.0],
    }
)


@pytest.mark.parametrize(
    ("dates", "geos", "column", "count", "rows"),
    [
        (["2026-01-01", "soon", "2026-01-01", "2026-01-02", "2026-13-01"], None, "date", 2, (2, 5)),
        (None, ["a", "a", None, "b", "b"], "geo", 1, (3,)),
    ],
    ids=["unreadable dates", "missing geo"],
)
def test_every_engine_names_the_rows_it_cannot_read(tmp_path, dates, geos, column, count, rows):
    frame = GOOD.with_columns(
        *([pl.Series("date", dates)] if dates else []),
        *([pl.Series("geo", geos)] if geos else []),
    )
    found = {}
    for name, engine in _engines(*_folder(tmp_path, frame)).items():
        with pytest.raises(DataError) as info:
            geo_frame(engine, ("sales",), *WINDOW)
        [problem] = info.value.problems
        found[name] = (
            problem.message,
            problem.table,
            problem.column,
            problem.rows,
            problem.row_count,
        )
    expected = (found["polars"][0], "geo_metrics", column, rows, count)
    assert f"{count:,} row(s)" in expected[0]
    assert all(v == expected for v in found.values()), found


def test_every_engine_returns_the_same_table(tmp_path):
    frames = {
        name: geo_frame(engine, ("sales",), *WINDOW)
        for name, engine in _engines(*_folder(tmp_path, GOOD)).items()
    }
    first = frames.pop("polars")
    assert first.height == 4 and first["rows"].sum() == 5
    for frame in frames.values():
        assert frame.equals(first)
