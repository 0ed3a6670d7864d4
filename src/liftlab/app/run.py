"""Application services behind the commands: load, analyse, write. No printing here."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from liftlab.analyses.calibration import pymc_marketing, records_from_results
from liftlab.analyses.experiment import analyze, default_as_of
from liftlab.app.checks import check_columns
from liftlab.app.monitoring import monitor_file as monitor_file  # the monitor has its module
from liftlab.app.monitoring import monitor_on as monitor_on
from liftlab.core.errors import DataError, LiftlabError, Problem, SpecError, UserError
from liftlab.core.fsio import (
    atomic_write_json,
    atomic_write_text,
    claim_root,
    replace_dir,
)
from liftlab.data.quality import QualityReport
from liftlab.engines.base import Engine, EngineLimit, folder_only
from liftlab.engines.open import EngineName, open_engine
from liftlab.engines.shared import shared_reads
from liftlab.engines.units import Units
from liftlab.spec.aggregation import arm_col
from liftlab.spec.geo import GeoExperiment
from liftlab.spec.loader import experiment_files, load_experiment
from liftlab.spec.models import FIRST_DATE, LAST_DATE, Experiment

if TYPE_CHECKING:
    from collections.abc import Callable

    from liftlab.analyses.planning import PlanResult
    from liftlab.report.daily import DailyRun

DEMO_DATE = dt.date(2026, 2, 24)
# experiments/dose-response: the email-frequency example, reported by the demo on its own
# synthetic retailer (app/synth_pressure.py) the day its eight weeks end
PRESSURE_FOLDER = "dose-response"
PRESSURE_DATE = dt.date(2026, 4, 27)
MAX_OUTCOME_DAYS = 365
LOOKBACK_DAYS = 28  # usage window of the multichannel analysis


def analyze_file(experiment: Path, data: str | Path, as_of: dt.datetime | None = None,
                 engine_name: EngineName = "polars") -> Any:
    spec = load_experiment(experiment)
    if isinstance(spec, GeoExperiment):  # reads geo_metrics only
        from liftlab.analyses.geo import GeoResult, analyze_geo

        return GeoResult(analyze_geo(spec, open_engine(data, spec.timezone, engine_name),
                                     as_of, str(experiment)))
    engine = open_engine(data, spec.timezone, engine_name)
    problems = engine.check()
    if problems:
        raise DataError(problems)
    return analyze(spec, engine, as_of, yaml_text=Path(experiment).read_text(),
                   yaml_file=str(experiment))


def analyze_to_folder(experiment: Path, data: str | Path, as_of: dt.datetime | None,
                      out_dir: Path, engine_name: EngineName = "polars",
                      force: bool = False) -> Any:
    """Analyse and write results.json and dashboard.html into ``out_dir`` atomically (see
    ``fsio.replace_dir`` for a folder liftlab did not write, and ``force``)."""
    result = analyze_file(experiment, data, as_of, engine_name)
    results = result.to_dict()
    replace_dir(out_dir, "analyze", force, lambda folder: write_analysis(results, folder))
    return result


def write_analysis(results: dict[str, Any], folder: Path) -> None:
    """The files of ``liftlab analyze`` into ``folder``."""
    from liftlab.report.pages import copy_plotly, render_experiment

    atomic_write_json(folder / "results.json", results)
    if "geo" in results:
        from liftlab.report.geo_page import render_geo

        copy_plotly(folder / "assets")
        atomic_write_text(folder / "dashboard.html",
                          render_geo(results, folder, home="dashboard.html"))
        return
    atomic_write_text(folder / "mmm_lift_tests.csv",
                      pymc_marketing(records_from_results(results)).table.write_csv())
    copy_plotly(folder / "assets")
    atomic_write_text(folder / "dashboard.html",
                      render_experiment(results, folder, home="dashboard.html"))


def multichannel(data: str | Path, experiment: Path | None = None,
                 lookback: tuple[dt.date, dt.date] | None = None,
                 outcome_days: int | None = None,
                 iv: dict[str, Any] | None = None) -> dict[str, Any]:
    """The multichannel value analysis (JSON-ready).

    With an encouragement experiment, the outcome is read in the experiment's window, as
    ``analyze`` does (usage in the 28 days before its start is the look-back), and its IV
    estimate is attached (``iv``: the estimate when the experiment was already analysed).
    Without one, the look-back is the 28 days that end ``outcome_days`` (default 28) before
    the data's last order. The outcome period must lie within the data.
    """
    spec = None if experiment is None else load_experiment(experiment)
    engine = open_engine(data, "UTC" if spec is None else spec.timezone)
    return multichannel_on(engine, spec, experiment, lookback, outcome_days, iv)


def multichannel_on(engine: Engine, spec: Experiment | None = None, yaml: Path | None = None,
                    lookback: tuple[dt.date, dt.date] | None = None,
                    outcome_days: int | None = None,
                    iv: dict[str, Any] | None = None) -> dict[str, Any]:
    """``multichannel`` on an open engine (polars only); ``yaml`` is the experiment's file,
    for its line numbers."""
    from liftlab.analyses.multichannel import analyze_multichannel

    if outcome_days is not None and not 1 <= outcome_days <= MAX_OUTCOME_DAYS:
        raise UserError(f"--outcome-days: expected 1 to {MAX_OUTCOME_DAYS}, got {outcome_days}")
    problems = engine.check()
    if problems:
        raise DataError(problems)
    latest = engine.latest("orders")
    if latest is None:
        raise DataError([Problem("the orders table has no order with a timestamp",
                                 table="orders", column="ts")])
    if spec is not None:
        if isinstance(spec, GeoExperiment) or spec.encouragement is None:
            raise UserError(f"{yaml or spec.id}: not an encouragement experiment; add "
                            "encouragement: {adoption_metric: ...}")
        if lookback is None:
            lookback = (spec.start - dt.timedelta(days=LOOKBACK_DAYS), spec.start)
            outcome_days = outcome_days or (spec.end - spec.start).days
        if iv is None:
            from liftlab.analyses.serialize import iv_json

            found = analyze(spec, engine, yaml_text=None if yaml is None else yaml.read_text(),
                            yaml_file=None if yaml is None else str(yaml)).sections.iv
            iv = None if found is None else iv_json(found)
    outcome_days = outcome_days or 28
    if lookback is None:
        end = latest.date() - dt.timedelta(days=outcome_days)
        lookback = (end - dt.timedelta(days=LOOKBACK_DAYS), end)
    _check_lookback(lookback)
    out_end = lookback[1] + dt.timedelta(days=outcome_days)
    if latest < dt.datetime.combine(out_end, dt.time(), tzinfo=dt.UTC) - dt.timedelta(days=1):
        raise DataError([Problem(
            f"the outcome period {lookback[1]}..{out_end} ({outcome_days} days after the "
            f"look-back {lookback[0]}..{lookback[1]}) is not in the data: its last order is "
            f"{latest:%Y-%m-%d %H:%M} UTC", table="orders", column="ts",
            hint="choose an earlier --lookback-end or fewer --outcome-days")])
    try:
        result = analyze_multichannel(engine, lookback, outcome_days).to_json()
    except EngineLimit:
        raise UserError(folder_only(engine, "liftlab multichannel")) from None
    if iv is not None:
        result["iv"] = iv
    return result


def _check_lookback(lookback: tuple[dt.date, dt.date]) -> None:
    """The look-back within the dates an experiment may have."""
    start, end = lookback
    if not FIRST_DATE <= start < end <= LAST_DATE:
        raise UserError(f"look-back {start} to {end}: the start must come before the end, "
                        f"both between {FIRST_DATE} and {LAST_DATE}")


def plan_file(experiment: Path, data: str | Path, power: float = 0.8,
              target_mde_rel: float | None = None,
              assumed_lift_rel: float | None = None) -> PlanResult:
    """The plan of an experiment from the history in the data (see planning.py); the target
    and assumed lifts (default 5%) apply to customer-level experiments only."""
    spec = load_experiment(experiment)
    if isinstance(spec, GeoExperiment):  # power by duration and treatment set
        from liftlab.analyses.geo_planning import plan_geo

        if target_mde_rel is not None or assumed_lift_rel is not None:
            raise UserError(f"{experiment}: --target-mde and --assumed-lift apply to "
                            "customer-level experiments; a geo plan ranks durations and "
                            "treatment sets by power (set expected_iroas in the YAML)")
        return plan_geo(spec, open_engine(data, spec.timezone), power)
    target_mde_rel = 0.05 if target_mde_rel is None else target_mde_rel
    assumed_lift_rel = 0.05 if assumed_lift_rel is None else assumed_lift_rel
    engine = open_engine(data, spec.timezone)
    problems = engine.check()
    if problems:
        raise DataError(problems)
    check_columns(spec, engine, Path(experiment))
    return plan_for(spec, engine, power, target_mde_rel, assumed_lift_rel)


def plan_for(spec: Experiment, engine: Engine, power: float = 0.8,
             target_mde_rel: float = 0.05, assumed_lift_rel: float = 0.05,
             units: Units | None = None) -> PlanResult:
    """The plan of ``spec`` on an open engine: the metrics over windows before the start."""
    from functools import cache

    if spec.design == "dose_response":
        raise UserError(f"experiment {spec.id!r} is a dose-response experiment: liftlab plan "
                        "sizes holdouts; `liftlab analyze` on a pilot (or a past test) gives "
                        "the customers per arm and weeks that place the optimum within one "
                        "send (results.json: pressure.overall.planning)")

    from liftlab.analyses.cells import CellTable
    from liftlab.analyses.planning import Adjusted, history_window, make_plan
    from liftlab.engines.units import window_bounds
    from liftlab.spec.aggregation import build_aggregation, covariates_of

    units = units or engine.units(spec)
    cuped = spec.covariates.pre_period_days > 0

    @cache
    def baseline(days: int) -> dict[str, Any]:
        hist = history_window(spec, days)
        plan = build_aggregation(hist, window_bounds(hist, None), group_by=())
        frame = engine.aggregate(plan, units, spec.id)
        cells = CellTable(frame, tuple(spec.channels), ())
        out: dict[str, Any] = {}
        for m in spec.metrics:
            if m.kind == "ratio":
                assert m.numerator and m.denominator
                out[m.name] = cells.ratio_stats(m.numerator, m.denominator, frame)
                parts = [m.numerator, m.denominator]
            else:
                out[m.name] = cells.arm_stats(m.name, frame, covariate=cuped)
                parts = [m.name]
            if spec.covariates.regression:  # the analysis's Lin adjustment, sized on history
                covs = covariates_of(hist, m, cuped)
                out[m.name] = Adjusted(out[m.name], cells.moments([*parts, *covs], frame),
                                       covs)
        return out

    return make_plan(spec, units.n, baseline, power, target_mde_rel, assumed_lift_rel)


def assignments_table(spec: Experiment, engine: Engine) -> pl.DataFrame:
    """The population's arms per channel by the stable hash (whatever assignments the data
    already holds), in the contract's assignments layout."""
    if isinstance(spec, GeoExperiment):
        raise UserError(f"{spec.id}: a geo experiment assigns regions, not customers: its "
                        "treatment regions are in geos.treatment")
    units = engine.units(spec.model_copy(update={"assignment": "hash"}))
    if not isinstance(units.frame, pl.DataFrame):
        raise UserError("liftlab assign writes the assignments of a data folder; pass --data "
                        "with a folder (a database assigns in place: export the population "
                        "first)")
    assigned_at = dt.datetime.combine(spec.start, dt.time(), tzinfo=dt.UTC)
    frames = [units.frame.select(
        pl.lit(spec.id).alias("experiment_id"), pl.col(spec.unit), pl.lit(ch).alias("channel"),
        pl.col(arm_col(ch)).cast(pl.String).alias("group"),
        pl.lit(assigned_at).alias("assigned_at"))
        for ch in spec.channels]
    return pl.concat(frames)


def load_all(folder: Path) -> list[tuple[Path, Experiment | LiftlabError]]:
    """Every definition in a folder; a broken one is kept with its error (reported, not fatal)."""
    files = experiment_files([folder])
    if not files:
        raise SpecError(f"no experiment files (*.yaml) in {folder}")
    out: list[tuple[Path, Experiment | LiftlabError]] = []
    seen: dict[str, Path] = {}
    for f in files:
        try:
            spec = load_experiment(f)
        except SpecError as exc:
            out.append((f, exc))
            continue
        if spec.id in seen:
            out.append((f, SpecError(f"{f}: experiment id {spec.id!r} is already used by "
                                     f"{seen[spec.id]}")))
            continue
        seen[spec.id] = f
        out.append((f, spec))
    return out


def run_report(experiments: Path, data: str | Path, date: dt.date, out_dir: Path,
               engine_name: EngineName = "polars", progress: bool = False,
               force: bool = False) -> DailyRun:
    """The daily run over a folder of experiments; returns the DailyRun."""
    from liftlab.report.daily import run_daily

    specs = load_all(experiments)
    engines: dict[str, Engine] = {}
    qualities: dict[str, QualityReport] = {}
    as_of_now = max(dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC),
                    dt.datetime.now(dt.UTC))

    def engine_for(spec: Experiment) -> Engine:
        if spec.timezone not in engines:
            engine = open_engine(data, spec.timezone, engine_name)
            problems = engine.check()
            if problems:
                raise DataError(problems)
            engines[spec.timezone] = engine
            qualities[spec.timezone] = engine.quality(as_of_now)
        return engines[spec.timezone]

    def analyze_one(spec: Experiment, as_of: dt.datetime | None) -> dict[str, Any]:
        path = next(p for p, s in specs if s is spec)
        if isinstance(spec, GeoExperiment):  # reads geo_metrics only
            from liftlab.analyses.geo import analyze_geo

            return analyze_geo(spec, open_engine(data, spec.timezone, engine_name), as_of,
                               str(path))
        engine = engine_for(spec)
        check_columns(spec, engine, path)
        units = engine.units(spec)  # built once for the analysis and the plan
        if default_as_of(spec, engine).as_of < as_of:  # data older than the report date
            as_of = None
        result = analyze(spec, engine, as_of, yaml_text=path.read_text(),
                         quality=qualities[spec.timezone], units=units,
                         yaml_file=str(path)).to_dict()
        if spec.design != "dose_response":  # its planning is in result["pressure"]
            result["plan"] = plan_for(spec, engine, units=units).to_json()
        return result

    enc = [(p, s) for p, s in specs if isinstance(s, Experiment) and s.encouragement is not None
           and s.end <= date]

    def multichannel_page(results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """With an ended encouragement experiment, the multichannel page with its IV."""
        if not enc or engine_name != "polars":
            return None
        path, spec = enc[-1]
        try:
            return multichannel(data, path, iv=results.get(spec.id, {}).get("iv"))
        except LiftlabError as exc:
            return {"error": str(exc)}

    # naive timestamps are wall-clock times of the experiments' zone (the first one's)
    zone = next((s.timezone for _, s in specs if isinstance(s, Experiment)), "UTC")
    first = open_engine(data, zone, engine_name)
    freshness = {}
    for table in ("orders", "events", "contacts"):
        latest = first.latest(table) if first.has(table) else None
        if latest is not None:
            freshness[table] = latest.strftime("%Y-%m-%d %H:%M UTC")
    # the experiments read the same tables: passes that do not depend on the experiment are
    # run once for the whole report (engines/shared.py; results are the same bit for bit);
    # with one experiment there is nothing to share, and keeping its results held memory
    several = sum(isinstance(s, Experiment) for _, s in specs) > 1
    with shared_reads() if several else contextlib.nullcontext():
        return run_daily(specs, date, out_dir, analyze_one, freshness, progress,
                         multichannel_page, force)


def run_demo(out_dir: Path, experiments: Path, customers: int, seed: int,
             progress: bool = False, force: bool = False) -> str:
    """Generate the demo retailer into ``out_dir/data`` (replaced whole) and run the daily
    report of ``experiments`` into ``out_dir/reports``; when ``experiments`` holds the
    dose-response example (``PRESSURE_FOLDER``), generate its own retailer, whose optimum is
    known, into ``out_dir/pressure/data`` and report it into ``out_dir/pressure/reports`` on
    its end date. Returns a summary."""
    from liftlab.app import synth, synth_pressure

    claim_root(out_dir, "demo", force)
    lines = _demo_run(out_dir, experiments, DEMO_DATE, customers, progress, force,
                      lambda folder: synth.generate(folder, customers, seed))
    pressure = experiments / PRESSURE_FOLDER
    if pressure.is_dir():
        root = out_dir / "pressure"
        claim_root(root, "demo", force)
        truth: dict[str, float] = {}
        lines += _demo_run(root, pressure, PRESSURE_DATE, customers, progress, force,
                           lambda folder: truth.update(
                               synth_pressure.generate(folder, customers, seed)))
        lines.append("  true optimum (contacts a week): "
                     + ", ".join(f"{k} {v:g}" for k, v in truth.items()))
    return "\n".join(lines)


def _demo_run(root: Path, experiments: Path, date: dt.date, customers: int, progress: bool,
              force: bool, generate: Callable[[Path], object]) -> list[str]:
    """One synthetic retailer into ``root/data`` and the daily report of ``experiments`` on
    it into ``root/reports``; the summary's lines."""
    data = root / "data"
    replace_dir(data, "demo-data", force, generate)
    run = run_report(experiments, data, date, root / "reports", progress=progress,
                     force=force)
    lines = [f"demo data: {data} ({customers:,} customers)",
             f"report: {run.folder / 'index.html'}"]
    for o in run.outcomes:
        lines.append(f"  {o.id}: {o.status}" + (f" ({o.error})" if o.error else ""))
    return lines


def target_to_folder(experiment: Path, data: str | Path, budget: float | None,
                     default: str | None, out_dir: Path, confirm: tuple[dt.date, dt.date],
                     holdout: float = 0.1, force: bool = False) -> Any:
    """Learn the targeting policy and write targeting.json, policy.parquet (who gets which
    option), confirmation.yaml and targeting.html into ``out_dir`` (``fsio.replace_dir``)."""
    import io

    from liftlab.analyses.targeting import confirmation_yaml, target
    from liftlab.report.targeting_page import render_targeting

    spec = load_experiment(experiment)
    engine = open_engine(data, spec.timezone)
    problems = engine.check()
    if problems:
        raise DataError(problems)
    check_columns(spec, engine, Path(experiment))
    result = target(spec, engine, budget, default)
    summary = result.to_dict()
    confirmation = confirmation_yaml(result, *confirm, holdout)

    def write(folder: Path) -> None:
        from liftlab.core.fsio import atomic_write_bytes
        from liftlab.report.pages import copy_plotly

        buf = io.BytesIO()
        result.assignment.write_parquet(buf)
        atomic_write_bytes(folder / "policy.parquet", buf.getvalue())
        atomic_write_json(folder / "targeting.json", summary)
        atomic_write_text(folder / "confirmation.yaml", confirmation)
        copy_plotly(folder / "assets")
        atomic_write_text(folder / "targeting.html", render_targeting(summary, folder))

    replace_dir(out_dir, "target", force, write)
    return result
