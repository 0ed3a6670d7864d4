"""The Python API: what a notebook needs, from one import.

    import liftlab
    exp = liftlab.load_experiment("experiments/spring-factorial.yaml")
    data = liftlab.open_data("demo/data")       # a folder, a database URL or in-memory frames
    result = liftlab.analyze(exp, data)
    print(result.summary()); result.to_polars(); result.plot.forest()

Every workflow takes the same two inputs: an experiment (a YAML path or a loaded
``Experiment``) and a data source (``open_data``, or anything ``open_data`` accepts). Nothing
heavy is imported here: statsmodels, scipy, plotly and PyMC load when a function first needs
them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TYPE_CHECKING = False  # typing itself is not imported (import liftlab stays fast)

if TYPE_CHECKING:
    from typing import Any, Literal

    import polars as pl

    from liftlab.analysis import AnalysisResult
    from liftlab.engines.base import Engine
    from liftlab.monitor import MonitorResult
    from liftlab.plan import PlanResult
    from liftlab.report.daily import DailyRun
    from liftlab.report.plots import MonitorPlots, MultichannelPlots
    from liftlab.spec import Experiment


def load_experiment(path: str | Path) -> Experiment:
    """An experiment definition from its YAML file; a bad one raises ``SpecError`` listing
    every problem with its line (docs/yaml.md)."""
    from liftlab.spec_loader import load_experiment as load

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
        from liftlab.errors import DataError

        engine = self._engine(timezone)
        problems = engine.check()
        if problems:
            raise DataError(problems)
        return engine

    def _engine(self, timezone: str) -> Engine:
        from liftlab.data.open import open_engine

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
    from liftlab.errors import UserError

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

    from liftlab.data.schema import TABLES
    from liftlab.errors import DataError, Problem

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


def _experiment(experiment: Experiment | str | Path) -> tuple[Experiment, Path | None]:
    if isinstance(experiment, str | Path):
        return load_experiment(experiment), Path(experiment)
    return experiment, None


def analyze(
    experiment: Experiment | str | Path, data: Any, as_of: dt.datetime | None = None
) -> AnalysisResult:
    """The full analysis at ``as_of`` (default: the experiment's end, or the data's
    freshness when it stops earlier): effects per channel, metric and segment, health
    checks, contribution, ROI, the sequential readout when the YAML asks for it."""
    from liftlab.analysis import analyze as run

    spec, yaml = _experiment(experiment)
    source = open_data(data)  # held until the work is done (frames live in its folder)
    engine = source.engine_for(spec.timezone)
    return run(
        spec,
        engine,
        as_of,
        yaml_text=None if yaml is None else yaml.read_text(),
        yaml_file=None if yaml is None else str(yaml),
    )


@dataclass(frozen=True)
class MonitorReadout:
    """The always-valid readout at a moment (``liftlab.monitor``)."""

    result: MonitorResult
    as_of_basis: str | None

    def to_json(self) -> dict[str, Any]:
        """The ``liftlab monitor --json`` document."""
        return {**self.result.to_json(), "as_of_basis": self.as_of_basis}

    def summary(self) -> str:
        r = self.result
        lines = [
            f"{r.experiment} as of {r.as_of:%Y-%m-%d %H:%M} UTC"
            + (f" ({self.as_of_basis})" if self.as_of_basis else "")
            + f": {r.decision}"
            + (f" since {r.decided_at:%Y-%m-%d %H:%M}" if r.decided_at else "")
            + f" (always-valid p = {r.always_valid_p_value:.3g})"
        ]
        lines += _comparison_lines(r.comparisons, r.timeline)
        lines += [f"  guardrail {g['metric']}: {g['decision']}" for g in r.guardrails]
        if r.note:
            lines.append(f"  note: {r.note}")
        return "\n".join(lines)

    def to_polars(self) -> pl.DataFrame:
        """The hourly timeline, one row per hour and comparison (intervals as _lo/_hi)."""
        import polars as pl

        rows = [
            {
                **{k: v for k, v in row.items() if k != "ci"},
                "ci_lo": row["ci"][0],
                "ci_hi": row["ci"][1],
            }
            for row in self.result.timeline
        ]
        return pl.DataFrame(rows, infer_schema_length=None)

    @property
    def plot(self) -> MonitorPlots:
        from liftlab.report.plots import MonitorPlots

        return MonitorPlots(self.to_json())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())


def monitor(
    experiment: Experiment | str | Path,
    data: Any,
    as_of: dt.datetime | None = None,
    cache: str | Path | None = None,
) -> MonitorReadout:
    """The sequential readout now (or at ``as_of``): decision, guardrails, hourly timeline.
    ``cache``: a folder of hourly aggregates reused by later calls. Folders only."""
    from liftlab.run import monitor_on

    spec, yaml = _experiment(experiment)
    source = open_data(data)  # held until the work is done (frames live in its folder)
    engine = source.engine_for(spec.timezone)
    result, basis = monitor_on(spec, engine, as_of, None if cache is None else Path(cache), yaml)
    return MonitorReadout(result, basis)


@dataclass(frozen=True)
class PlanReadout:
    """The plan of an experiment from the history before its start (``liftlab.plan``)."""

    result: PlanResult

    def to_json(self) -> dict[str, Any]:
        """The ``liftlab plan --json`` document."""
        return self.result.to_json()

    def summary(self) -> str:
        return self.result.summary()

    def to_polars(self) -> pl.DataFrame:
        """One row per channel, arm and metric: sizes, MDE, holdout cost (scalar fields)."""
        import polars as pl

        rows = [
            {k: v for k, v in r.to_dict().items() if not isinstance(v, dict | list)}
            for r in self.result.rows
        ]
        return pl.DataFrame(rows, infer_schema_length=None)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())


def plan(
    experiment: Experiment | str | Path,
    data: Any,
    power: float = 0.8,
    target_mde_rel: float = 0.05,
    assumed_lift_rel: float = 0.05,
) -> PlanReadout:
    """Minimum detectable effects, holdout sizes and costs from the metrics' history."""
    from liftlab.run import check_columns, plan_for

    spec, yaml = _experiment(experiment)
    source = open_data(data)  # held until the work is done (frames live in its folder)
    engine = source.engine_for(spec.timezone)
    check_columns(spec, engine, yaml)
    return PlanReadout(plan_for(spec, engine, power, target_mde_rel, assumed_lift_rel))


@dataclass(frozen=True)
class MultichannelReadout:
    """The value of multichannel clients (``liftlab.multichannel``; the ``--json``
    document in ``results``)."""

    results: dict[str, Any]

    def summary(self) -> str:
        r = self.results
        d = r["decomposition"]
        lines = [
            f"{r['n_clients']:,} active clients, {r['share_multichannel']:.1%} multichannel",
            f"naive premium {r['naive_ratio']:.2f}x = retention {d['retention']:.2f} x "
            f"frequency {d['frequency']:.2f} x basket {d['basket']:.2f}",
        ]
        lines += [
            f"adjusted ({name}) {a['ratio']:.2f}x [{a['ci'][0]:.2f}, {a['ci'][1]:.2f}]"
            for name, a in r["adjusted"].items()
        ]
        iv = r.get("iv")
        if iv:
            lines.append(
                f"instrumented ({iv['experiment']}): {iv['effect']:+.2f} per adopter "
                f"[{iv['effect_ci'][0]:+.2f}, {iv['effect_ci'][1]:+.2f}], first "
                f"stage {iv['first_stage']:.1%}"
            )
        lines += [f"! {w}" for w in r["warnings"]]
        return "\n".join(lines)

    def to_polars(self) -> pl.DataFrame:
        """One row per estimate of the value ratio (multichannel / single-channel client):
        naive, each adjustment, with its interval."""
        import polars as pl

        r = self.results
        rows = [
            {
                "estimate": "naive",
                "ratio": r["naive_ratio"],
                "ci_lo": r["naive_ratio_ci"][0],
                "ci_hi": r["naive_ratio_ci"][1],
            }
        ]
        rows += [
            {"estimate": name, "ratio": a["ratio"], "ci_lo": a["ci"][0], "ci_hi": a["ci"][1]}
            for name, a in r["adjusted"].items()
        ]
        return pl.DataFrame(
            rows,
            schema={
                "estimate": pl.String,
                "ratio": pl.Float64,
                "ci_lo": pl.Float64,
                "ci_hi": pl.Float64,
            },
        )

    @property
    def plot(self) -> MultichannelPlots:
        from liftlab.report.plots import MultichannelPlots

        return MultichannelPlots(self.results)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())


def multichannel(
    data: Any,
    experiment: Experiment | str | Path | None = None,
    lookback: tuple[dt.date, dt.date] | None = None,
    outcome_days: int | None = None,
) -> MultichannelReadout:
    """Naive, adjusted and (with an encouragement experiment) instrumented value of
    multichannel clients. Folders only."""
    from liftlab.run import multichannel_on

    spec, yaml = (None, None) if experiment is None else _experiment(experiment)
    source = open_data(data)
    engine = source.engine_for("UTC" if spec is None else spec.timezone)
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
    from liftlab.errors import UserError
    from liftlab.run import run_report

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


def _comparison_lines(comparisons: Sequence[dict[str, Any]],
                      timeline: Sequence[dict[str, Any]]) -> list[str]:
    """Per comparison (channel, variant): its decision and the test that made it, its last
    lift with the always-valid CI, and the responses so far."""
    from liftlab.report.format import decided_by

    lines = []
    for c in comparisons:
        name = c["channel"] + (f" / {c['variant']}" if c.get("variant") else "")
        rows = [r for r in timeline if r["channel"] == c["channel"]
                and r.get("variant") == c.get("variant")]
        by = f" by {decided_by(c.get('decided_by'))}" if c.get("decided_at") else ""
        lines.append(f"  {name}: {c['decision']}{by}")
        if rows and rows[-1]["estimate"] is not None:
            last = rows[-1]
            lines.append(f"    lift {last['estimate']:+.4g} per unit, always-valid CI "
                         f"[{last['ci'][0]:+.4g}, {last['ci'][1]:+.4g}], "
                         f"{last['n_treatment']:,} vs {last['n_holdout']:,} matured units")
        if rows:
            lines.append(f"    responses so far: {rows[-1]['events_treatment']:,} treatment "
                         f"vs {rows[-1]['events_holdout']:,} holdout")
    return lines
