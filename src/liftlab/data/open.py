"""Open a data source from what the user typed: a folder path (or, later, a URL)."""

from __future__ import annotations

from pathlib import Path

from liftlab.data.folder import FolderSource
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.errors import DataError, Problem


def open_engine(data: str | Path, timezone: str = "UTC") -> PolarsEngine:
    """The engine for a data argument: today a folder of tables read by polars."""
    path = Path(data)
    if not path.is_dir():
        raise DataError([Problem(f"data folder {str(data)!r} does not exist",
                                 hint="pass --data with a folder holding customers and orders")])
    return PolarsEngine(FolderSource(path, timezone))
