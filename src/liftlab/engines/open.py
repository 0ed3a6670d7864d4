"""Open the engine for what the user typed: a folder (polars, or Spark with ``--engine
spark``) or a database URL (``postgresql://...``, ``duckdb:///...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from liftlab.core.errors import DataError, Problem, UserError
from liftlab.core.extras import require
from liftlab.data.folder import FolderSource
from liftlab.engines.base import Engine
from liftlab.engines.polars_engine import PolarsEngine

EngineName = Literal["polars", "spark"]


def open_engine(data: str | Path, timezone: str = "UTC", engine: EngineName = "polars") -> Engine:
    text = str(data)
    if "://" in text:
        if engine == "spark":
            raise UserError("--engine spark reads folders or Spark tables, not a database URL")
        scheme = text.split("://", 1)[0].lower()
        if scheme in ("postgresql", "postgres", "duckdb"):
            require("duckdb" if scheme == "duckdb" else "psycopg")
        from liftlab.engines.sql_engine import connect

        return connect(text, timezone)
    path = Path(data)
    if not path.is_dir():
        raise DataError([Problem(f"data folder {text!r} does not exist",
                                 hint="pass --data with a folder holding customers and orders, "
                                      "or a postgresql:// or duckdb:/// URL")])
    if engine == "spark":
        from liftlab.engines.spark_engine import SparkEngine, spark_session

        return SparkEngine(spark_session(), root=path, timezone=timezone)
    return PolarsEngine(FolderSource(path, timezone))
