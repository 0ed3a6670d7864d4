"""The ``liftlab monitor`` service: the sequential readout of one experiment, optionally
written out. A module of its own so that an hourly update imports only what the readout
uses, not the batch analysis behind ``app/run.py`` (0.25 s of imports at every update)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from liftlab.app.checks import check_columns
from liftlab.core.errors import DataError, UserError
from liftlab.core.fsio import atomic_write_json, write_beside
from liftlab.engines.base import Engine, EngineLimit, folder_only
from liftlab.engines.open import open_engine
from liftlab.spec.geo import GeoExperiment
from liftlab.spec.loader import load_experiment
from liftlab.spec.models import Experiment

if TYPE_CHECKING:
    from liftlab.analyses.monitor import MonitorResult


def monitor_file(
    experiment: Path,
    data: str | Path,
    as_of: dt.datetime | None,
    cache: Path | None,
    out_dir: Path | None,
    force: bool = False,
) -> tuple[MonitorResult, str | None]:
    """The sequential readout of one experiment (polars engine), optionally written out, and
    how its moment was chosen (None when ``as_of`` was given; by default the earlier of the
    experiment's end and the data's freshness)."""
    spec = load_experiment(experiment)
    engine = open_engine(data, spec.timezone)
    result, basis = monitor_on(spec, engine, as_of, cache, Path(experiment))
    if out_dir is not None:
        timeline = {**result.to_json(), "as_of_basis": basis}
        write_beside(
            out_dir,
            "monitor",
            force,
            lambda folder: atomic_write_json(folder / "monitor.json", timeline),
        )
    return result, basis


def monitor_on(
    spec: Experiment,
    engine: Engine,
    as_of: dt.datetime | None = None,
    cache: Path | None = None,
    yaml: Path | None = None,
) -> tuple[MonitorResult, str | None]:
    """The sequential readout of ``spec`` on an open engine (polars only), and how its
    moment was chosen (None when ``as_of`` was given)."""
    from liftlab.analyses.monitor import run_monitor

    if isinstance(spec, GeoExperiment):
        raise UserError(
            f"{yaml or spec.id}: a geo experiment has no hourly monitor; read it "
            "with liftlab analyze (or the daily report)"
        )
    problems = engine.check()
    if problems:
        raise DataError(problems)
    check_columns(spec, engine, yaml)
    basis = None
    if as_of is None:
        from liftlab.analyses.experiment import default_as_of

        chosen = default_as_of(spec, engine)
        as_of, basis = chosen.as_of, chosen.describe()
    try:
        # the units only when the exposures are not in the cache (an hourly update's are)
        hourly = engine.hourly(spec, lambda: engine.units(spec))
    except EngineLimit:
        raise UserError(folder_only(engine, "liftlab monitor")) from None
    return run_monitor(spec, hourly, as_of, cache), basis
