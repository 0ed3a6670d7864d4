"""The Python API: what a notebook needs, from one import.

    import liftlab
    exp = liftlab.load_experiment("experiments/spring-factorial.yaml")
    data = liftlab.open_data("demo/data")       # a folder, a database URL or in-memory frames
    result = liftlab.analyze(exp, data)
    print(result.summary()); result.to_polars(); result.plot.forest()

Every workflow takes the same two inputs: an experiment (a YAML path or a loaded
``Experiment``) and a data source (``open_data``, or anything ``open_data`` accepts). A geo
experiment (``design: geo``) goes through the same ``analyze`` and ``plan``: its data source
needs only the ``geo_metrics`` table, and the result is a ``GeoResult`` (``summary()``,
``to_dict()``: results.json) or a ``GeoPlan``. Nothing
heavy is imported here: statsmodels, scipy, plotly and PyMC load when a function first needs
them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TYPE_CHECKING = False  # typing itself is not imported (import liftlab stays fast)

if TYPE_CHECKING:
    from typing import Any, Literal

    from liftlab.analyses.geo import GeoResult
    from liftlab.analyses.geo_planning import GeoPlan
    from liftlab.app.readouts import Analysis, MonitorReadout, MultichannelReadout, PlanReadout
    from liftlab.engines.base import Engine
    from liftlab.report.daily import DailyRun
    from liftlab.spec.geo import GeoExperiment
    from liftlab.spec.models import Experiment


def load_experiment(path: str | Path) -> Experiment | GeoExperiment:
    """An experiment definition from its YAML file (a ``GeoExperiment`` for ``design:
    geo``); a bad one raises ``SpecError`` listing every problem with its line
    (docs/yaml.md)."""
    from liftlab.spec.loader import load_experiment as load

    return load(Path(path))


@dataclass(frozen=True)
class DataSource:
    """Where the contract tables are (docs/data.md): a folder, a database URL, Spark
    DataFrames, or polars frames held in a temporary Parquet folder for the source's life."""

    location: str | None
    engine: Literal["polars", "spark"] = "polars"
    spark_tables: Mapping[str, Any] = field(default_factory=dict, repr=False)
    spark: Any = field(default=None, repr=False)
    _held: Any = field(default=None, repr=False, compare=False)

    def engine_for(self, timezone: str = "UTC") -> Engine:
        """The engine over this source, naive timestamps read in ``timezone``, its tables
        checked (a ``DataError`` names the table, column and rows at fault). In-memory polars
        frames are read from this source's temporary folder: keep the source while the
        engine is used."""
        from liftlab.core.errors import DataError

        engine = self._engine(timezone)
        problems = engine.check()
        if problems:
            raise DataError(problems)
        return engine

    def _engine(self, timezone: str) -> Engine:
        from liftlab.engines.open import open_engine

        if self.spark_tables or (self.engine == "spark" and self.spark is not None):
            from liftlab.engines.spark_engine import SparkEngine

            root = None if self.location is None else Path(self.location)
            return SparkEngine(
                self.spark, root=root, tables=dict(self.spark_tables), timezone=timezone
            )
        assert self.location is not None
        return open_engine(self.location, timezone, self.engine)


def open_data(
    source: str | Path | Mapping[str, Any] | DataSource,
    engine: Literal["polars", "spark"] = "polars",
    spark: Any = None,
) -> DataSource:
    """A data source from what you have:

    - a folder of tables (``customers.parquet``, ``orders.csv``, ``orders/*.parquet``, ...),
      read by polars, or by Spark with ``engine="spark"`` (``spark``: your SparkSession,
      default a local one);
    - a database URL: ``postgresql://user@host/db`` or ``duckdb:///path.duckdb``;
    - a mapping of table name to polars DataFrame/LazyFrame (written once to a temporary
      Parquet folder, removed with the source) or to Spark DataFrames (read by Spark).
    """
    from liftlab.core.errors import UserError

    if isinstance(source, DataSource | Mapping) and (engine != "polars" or spark is not None):
        raise UserError(
            "engine= and spark= apply to a folder; frames are read by the engine "
            "of their kind, and an opened source keeps its engine"
        )
    if engine == "spark" and "://" in str(source):
        raise UserError("engine='spark' reads folders or Spark tables, not a database URL")
    if spark is not None and engine != "spark":
        raise UserError("spark= is the session of engine='spark'; pass both")
    if isinstance(source, DataSource):
        return source
    if isinstance(source, Mapping):
        return _from_frames(source)
    return DataSource(str(source), engine, spark=spark)


def _from_frames(frames: Mapping[str, Any]) -> DataSource:
    import tempfile

    import polars as pl

    from liftlab.core.errors import DataError, Problem
    from liftlab.data.schema import TABLES

    unknown = sorted(set(frames) - set(TABLES))
    if unknown:
        raise DataError(
            [
                Problem(
                    f"unknown table name(s) {', '.join(map(repr, unknown))}",
                    hint=f"the contract's tables: {', '.join(TABLES)}",
                )
            ]
        )
    kinds = {type(f).__module__.split(".")[0] for f in frames.values()}
    if "pyspark" in kinds and len(kinds) > 1:
        raise DataError(
            [
                Problem(
                    "the tables mix Spark and other frames; pass all of them "
                    "as Spark DataFrames or all as polars frames"
                )
            ]
        )
    if kinds == {"pyspark"}:
        first = next(iter(frames.values()))
        return DataSource(None, "spark", spark_tables=dict(frames), spark=first.sparkSession)
    bad = sorted(t for t, f in frames.items() if not isinstance(f, pl.DataFrame | pl.LazyFrame))
    if bad:
        raise DataError(
            [
                Problem(
                    f"table {t!r} is a {type(frames[t]).__name__}, not a polars or Spark DataFrame",
                    table=t,
                )
                for t in bad
            ]
        )
    held = tempfile.TemporaryDirectory(prefix="liftlab-frames-")
    for table, frame in frames.items():
        lazy = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
        lazy.sink_parquet(Path(held.name) / f"{table}.parquet")
    return DataSource(held.name, "polars", _held=held)


def _any_experiment(
    experiment: Experiment | GeoExperiment | str | Path,
) -> tuple[Experiment | GeoExperiment, Path | None]:
    if isinstance(experiment, str | Path):
        return load_experiment(experiment), Path(experiment)
    return experiment, None


def _experiment(
    experiment: Experiment | GeoExperiment | str | Path, workflow: str = "monitor"
) -> tuple[Experiment, Path | None]:
    """A customer-level experiment; a geo experiment is refused naming what applies."""
    spec, yaml = _any_experiment(experiment)
    from liftlab.spec.geo import GeoExperiment

    if isinstance(spec, GeoExperiment):
        from liftlab.core.errors import UserError

        raise UserError(
            f"{yaml or spec.id}: a geo experiment has no {workflow} (it applies to "
            "customer-level experiments); use liftlab.analyze(experiment, data) "
            "and liftlab.plan(experiment, data)"
        )
    return spec, yaml


def _geo_engine(spec: GeoExperiment, data: Any) -> tuple[Any, Engine]:
    """The source (held while it is used) and its engine: a geo experiment reads
    geo_metrics only, checked by its analysis (not the customer-level tables)."""
    source = open_data(data)
    return source, source._engine(spec.timezone)


def analyze(
    experiment: Experiment | GeoExperiment | str | Path,
    data: Any,
    as_of: dt.datetime | None = None,
) -> Analysis | GeoResult:
    """The full analysis at ``as_of`` (default: the experiment's end, or the data's
    freshness when it stops earlier): effects per channel, metric and segment, health
    checks, contribution, ROI, the sequential readout when the YAML asks for it. A geo
    experiment gives a ``GeoResult``: the method's estimate, money, series, diagnostics and
    placebo checks (``to_dict()`` is its results.json, ``summary()`` its text)."""
    from liftlab.spec.geo import GeoExperiment

    spec, yaml = _any_experiment(experiment)
    if isinstance(spec, GeoExperiment):
        from liftlab.analyses.geo import GeoResult, analyze_geo

        source, geo_engine = _geo_engine(spec, data)  # the source held while it is read
        return GeoResult(analyze_geo(spec, geo_engine, as_of, None if yaml is None else str(yaml)))
    from liftlab.analyses.experiment import analyze as run
    from liftlab.app.readouts import Analysis

    source = open_data(data)  # held until the work is done (frames live in its folder)
    engine = source.engine_for(spec.timezone)
    return Analysis.of(run(
        spec,
        engine,
        as_of,
        yaml_text=None if yaml is None else yaml.read_text(),
        yaml_file=None if yaml is None else str(yaml),
    ))


def monitor(
    experiment: Experiment | str | Path,
    data: Any,
    as_of: dt.datetime | None = None,
    cache: str | Path | None = None,
) -> MonitorReadout:
    """The sequential readout now (or at ``as_of``): decision, guardrails, hourly timeline.
    ``cache``: a folder of hourly aggregates reused by later calls. Folders only."""
    from liftlab.app.monitoring import monitor_on

    spec, yaml = _experiment(experiment, "hourly monitor")
    source = open_data(data)  # held until the work is done (frames live in its folder)
    engine = source.engine_for(spec.timezone)
    from liftlab.app.readouts import MonitorReadout

    result, basis = monitor_on(spec, engine, as_of, None if cache is None else Path(cache), yaml)
    return MonitorReadout(result, basis)


def plan(
    experiment: Experiment | GeoExperiment | str | Path,
    data: Any,
    power: float = 0.8,
    target_mde_rel: float | None = None,
    assumed_lift_rel: float | None = None,
) -> PlanReadout | GeoPlan:
    """Minimum detectable effects, holdout sizes and costs from the metrics' history (the
    target and assumed lifts default to 5%). A geo experiment gives a ``GeoPlan``:
    durations and treatment sets (or, for trimmed match, randomised matched pairs) ranked by
    power, with budgets; the two lifts are customer-level options and are refused there."""
    from liftlab.app.run import check_columns, plan_for
    from liftlab.spec.geo import GeoExperiment

    spec, yaml = _any_experiment(experiment)
    if isinstance(spec, GeoExperiment):
        from liftlab.analyses.geo_planning import plan_geo

        if target_mde_rel is not None or assumed_lift_rel is not None:
            from liftlab.core.errors import UserError

            raise UserError(
                f"{yaml or spec.id}: target_mde_rel and assumed_lift_rel apply to "
                "customer-level experiments; a geo plan ranks durations and "
                "treatment sets by power (expected_iroas in the YAML for budgets)"
            )
        source, geo_engine = _geo_engine(spec, data)  # the source held while it is read
        return plan_geo(spec, geo_engine, power)
    source = open_data(data)  # held until the work is done (frames live in its folder)
    engine = source.engine_for(spec.timezone)
    check_columns(spec, engine, yaml)
    from liftlab.app.readouts import PlanReadout

    return PlanReadout(
        plan_for(
            spec,
            engine,
            power,
            0.05 if target_mde_rel is None else target_mde_rel,
            0.05 if assumed_lift_rel is None else assumed_lift_rel,
        )
    )


def multichannel(
    data: Any,
    experiment: Experiment | str | Path | None = None,
    lookback: tuple[dt.date, dt.date] | None = None,
    outcome_days: int | None = None,
) -> MultichannelReadout:
    """Naive, adjusted and (with an encouragement experiment) instrumented value of
    multichannel clients. Folders only."""
    from liftlab.app.run import multichannel_on

    spec, yaml = (
        (None, None) if experiment is None else _experiment(experiment, "multichannel readout")
    )
    source = open_data(data)
    engine = source.engine_for("UTC" if spec is None else spec.timezone)
    from liftlab.app.readouts import MultichannelReadout

    return MultichannelReadout(multichannel_on(engine, spec, yaml, lookback, outcome_days))


def report(
    experiments: str | Path,
    data: Any,
    date: dt.date | None = None,
    out: str | Path = "reports",
    force: bool = False,
) -> DailyRun:
    """The daily run: every experiment in the folder analysed, ``out/DATE/index.html`` and
    a page each (a folder or database URL; ``date`` defaults to today, UTC)."""
    from liftlab.app.run import run_report
    from liftlab.core.errors import UserError

    source = open_data(data)
    if source.location is None:
        raise UserError(
            "report reads a folder or a database URL; Spark DataFrames: write "
            "them to a folder and pass it with engine='spark'"
        )
    return run_report(
        Path(experiments),
        source.location,
        date or dt.datetime.now(dt.UTC).date(),
        Path(out),
        source.engine,
        force=force,
    )
