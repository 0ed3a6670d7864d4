"""Application services behind the commands: load, analyse, write. No printing here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from liftlab.analysis import AnalysisResult, analyze
from liftlab.data.open import open_engine
from liftlab.engines.base import Engine
from liftlab.errors import DataError
from liftlab.fsio import atomic_dir, atomic_write_json
from liftlab.metrics import arm_col
from liftlab.spec import Experiment
from liftlab.spec_loader import load_experiment


def analyze_file(experiment: Path, data: str | Path,
                 as_of: dt.datetime | None = None) -> AnalysisResult:
    spec = load_experiment(experiment)
    engine = open_engine(data, spec.timezone)
    problems = engine.check()
    if problems:
        raise DataError(problems)
    return analyze(spec, engine, as_of, yaml_text=Path(experiment).read_text())


def analyze_to_folder(experiment: Path, data: str | Path, as_of: dt.datetime | None,
                      out_dir: Path) -> AnalysisResult:
    """Analyse and write results.json and dashboard.html into ``out_dir`` atomically."""
    result = analyze_file(experiment, data, as_of)
    with atomic_dir(out_dir) as tmp:
        atomic_write_json(tmp / "results.json", result.to_dict())
    return result


def assignments_table(spec: Experiment, engine: Engine) -> pl.DataFrame:
    """The population's arms per channel, in the contract's assignments layout."""
    units = engine.units(spec)
    assigned_at = dt.datetime.combine(spec.start, dt.time(), tzinfo=dt.UTC)
    frames = [units.frame.select(
        pl.lit(spec.id).alias("experiment_id"), pl.col(spec.unit), pl.lit(ch).alias("channel"),
        pl.col(arm_col(ch)).alias("group"), pl.lit(assigned_at).alias("assigned_at"))
        for ch in spec.channels]
    return pl.concat(frames)
