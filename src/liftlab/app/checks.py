"""The data checks the commands share before any analysis, in a module of their own so that
the monitor's hourly update loads them without the batch analysis behind ``app/run.py``."""

from __future__ import annotations

from pathlib import Path

from liftlab.core.errors import DataError
from liftlab.engines.base import Engine
from liftlab.spec.models import Experiment


def check_columns(spec: Experiment, engine: Engine, path: Path | None = None) -> None:
    """Every column the definition names exists in the data (else a DataError at the YAML's
    line when ``path`` is given)."""
    from liftlab.spec.columns import column_problems

    text = path.read_text(encoding="utf-8") if path is not None else None
    problems = column_problems(
        spec,
        lambda t: engine.columns(t) if engine.has(t) else None,
        None if path is None else str(path),
        text,
    )
    if problems:
        raise DataError(problems)
