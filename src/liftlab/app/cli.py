"""The ``liftlab`` command line: the only place that prints.

Exit codes: 0 done, 1 user error (a clear message, no traceback), 2 internal error.
Heavy libraries (PyMC, plotly) are imported inside the commands that need them, so
``liftlab validate`` answers quickly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import math
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from liftlab.core.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure what each marketing channel really earns, with holdouts.")
# Markup is off by default: messages hold user text (paths, YAML, data values) such as
# ``[/data/x]`` that rich would read as tags; styled prints escape their variable parts.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
F = TypeVar("F", bound=Callable[..., Any])

DataOpt = Annotated[str, typer.Option("--data", help="Data folder (or database URL).")]
AsOfOpt = Annotated[str | None, typer.Option(
    "--as-of", help="Analyse the data as known at this moment (ISO timestamp, UTC default). "
    "Default: the experiment's end, or the data's freshness (the hour after the last order or "
    "event) when the data stops earlier.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="polars (one machine) or spark (a cluster, or Spark local mode).")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Also write into a folder liftlab did not create (or that holds others' "
    "files): liftlab's files go beside theirs; nothing of theirs is deleted or overwritten.")]
ENVIRONMENT_FAULTS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES,
                      errno.EPERM}


def _guarded(fn: F) -> F:
    """User errors exit 1 with their message; anything else exits 2 with a short report."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _no_kill_on_file_size_limit()
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            for problem in exc.problems:
                err.print(f"[red]error[/red]: {escape(str(problem))}", markup=True,
                          highlight=False)
            raise typer.Exit(1) from None
        except OSError as exc:
            if exc.errno not in ENVIRONMENT_FAULTS:
                raise
            from liftlab.core.fsio import write_error

            where = Path(exc.filename) if exc.filename else Path("the output")
            err.print(f"[red]error[/red]: {escape(str(write_error(where, exc)))}", markup=True,
                      highlight=False)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            import traceback

            frame = traceback.extract_tb(exc.__traceback__)[-1]
            err.print(f"internal error: {type(exc).__name__}: {exc} "
                      f"(at {Path(frame.filename).name}:{frame.lineno}); please report it")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _no_kill_on_file_size_limit() -> None:
    """A file-size limit (ulimit -f) makes writes fail with EFBIG instead of killing us."""
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _engine(name: str) -> Any:
    if name not in ("polars", "spark"):
        raise UserError(f"--engine: expected polars or spark, got {name!r}")
    return name


def parse_as_of(value: str | None) -> dt.datetime | None:
    """An ISO date or timestamp; naive values are UTC."""
    if value is None:
        return None
    try:
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--as-of: expected an ISO timestamp such as 2026-02-03T07:00, "
                        f"got {value!r}") from None
    try:
        return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-14:00 is in the year 10000 in UTC
        raise UserError(f"--as-of: {value!r} is outside the years 1 to 9999 in UTC") from None


@app.command()
@_guarded
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Experiment YAML files or folders.")],
    data: Annotated[str | None, typer.Option("--data", help="Also check this data.")] = None,
) -> None:
    """Check experiment definitions (and the data, with --data); exit 0 when all is well."""
    from liftlab.spec.geo import GeoExperiment
    from liftlab.spec.loader import experiment_files, load_experiment, load_experiments

    specs = load_experiments(paths)
    for spec in specs:
        if isinstance(spec, GeoExperiment):
            out.print(f"ok  {spec.id}: {spec.title} (geo experiment, channel {spec.channel}, "
                      f"{len(spec.geos.treatment)} treatment geo(s), {spec.method})")
            continue
        out.print(f"ok  {spec.id}: {spec.title} ({len(spec.channels)} channel(s), "
                  f"{len(spec.metrics)} metric(s))")
    if data is not None:
        from liftlab.app.run import check_columns
        from liftlab.engines.open import open_engine  # here: the engines' imports take a second

        problems = []
        checked: set[str] = set()
        for spec in specs:
            engine = open_engine(data, spec.timezone)
            path = next(p for p in experiment_files(paths) if load_experiment(p).id == spec.id)
            if isinstance(spec, GeoExperiment):  # its table, columns and geos
                from liftlab.analyses.geo import check_data

                out.print(f"ok  {spec.id}: {check_data(spec, engine, path)}")
                continue
            problems += engine.check()
            if not problems and spec.timezone not in checked:  # data errors, once per zone
                checked.add(spec.timezone)
                problems += engine.quality(dt.datetime.now(dt.UTC)).errors
            if problems:
                break
            check_columns(spec, engine, path)
            units = engine.units(spec)
            out.print(f"ok  {spec.id}: {units.n:,} units in the population "
                      f"(arms from {units.assigned_by})")
            if isinstance(data, str) and "://" not in data and spec.design != "dose_response":
                from liftlab.app.run import plan_file

                for warning in plan_file(path, data).warnings:
                    out.print(f"[yellow]warning[/yellow]  {escape(spec.id)}: "
                              f"{escape(warning)}", markup=True)
        if problems:
            raise UserError(problems)


@app.command()
@_guarded
def analyze(
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML.")],
    data: DataOpt,
    as_of: AsOfOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    engine: EngineOpt = "polars",
    force: ForceOpt = False,
) -> None:
    """Full analysis: writes results.json and dashboard.html."""
    from liftlab.app.run import analyze_to_folder

    target = out_dir or Path("reports") / experiment.stem
    result = analyze_to_folder(experiment, data, parse_as_of(as_of), target,
                               _engine(engine), force)
    out.print(result.summary())
    out.print(f"wrote {target / 'results.json'} and {target / 'dashboard.html'}")


@app.command()
@_guarded
def monitor(
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML.")],
    data: DataOpt,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
    cache: Annotated[Path | None, typer.Option(
        help="Folder for hourly aggregates reused by later calls.")] = Path(".liftlab-cache"),
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Also write the timeline (monitor.json) here for the dashboard.")] = None,
    force: ForceOpt = False,
) -> None:
    """Always-valid readout now: the decision so far, guardrails and the hourly timeline."""
    from liftlab.app.monitoring import monitor_file

    result, basis = monitor_file(experiment, data, parse_as_of(as_of), cache, out_dir, force)
    if as_json:
        import json

        from liftlab.core.fsio import dumps_json

        out.print(dumps_json(json.loads(json.dumps({**result.to_json(), "as_of_basis": basis}))),
                  markup=False)
        return
    from liftlab.app.monitor_readout import MonitorReadout

    out.print(MonitorReadout(result, basis).summary(), markup=False)


@app.command()
@_guarded
def multichannel(
    data: DataOpt,
    experiment: Annotated[Path | None, typer.Option(
        help="An encouragement experiment: the outcome is read in its window (usage in the "
             "28 days before its start), and its IV estimate is added.")] = None,
    lookback_start: Annotated[str | None, typer.Option(help="Look-back start YYYY-MM-DD.")] = (
        None),
    lookback_end: Annotated[str | None, typer.Option(help="Look-back end YYYY-MM-DD.")] = None,
    outcome_days: Annotated[int | None, typer.Option(
        help="Days of value after the look-back (default 28; with --experiment, its window).",
        min=1)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Value of multichannel clients: naive, adjusted for self-selection, instrumented."""
    from liftlab.app.run import multichannel as run_multichannel
    from liftlab.core.fsio import dumps_json

    lookback = None
    if lookback_start or lookback_end:
        if not (lookback_start and lookback_end):
            raise UserError("give both --lookback-start and --lookback-end")
        lookback = (_parse_date(lookback_start), _parse_date(lookback_end))
    result = run_multichannel(data, experiment, lookback, outcome_days)
    if as_json:
        out.print(dumps_json(result), markup=False)
        return
    from liftlab.app.readouts import MultichannelReadout

    out.print(MultichannelReadout(result).summary(), markup=False)


@app.command()
@_guarded
def plan(
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML.")],
    data: DataOpt,
    power: Annotated[float, typer.Option(help="Target power.")] = 0.8,
    target_mde: Annotated[float | None, typer.Option(
        help="Relative lift the test should detect (for the needed holdout/duration; default "
        "0.05). Customer-level experiments only.")] = None,
    assumed_lift: Annotated[float | None, typer.Option(
        help="Relative lift assumed when pricing the holdout (revenue given up; default 0.05). "
        "Customer-level experiments only.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Minimum detectable effects, holdout size and duration, and the cost of the holdout."""
    from liftlab.app.run import plan_file
    from liftlab.core.fsio import dumps_json

    result = plan_file(experiment, data, power, target_mde, assumed_lift)
    if as_json:
        out.print(dumps_json(result.to_json()), markup=False)
    else:
        out.print(result.summary(), markup=False)


@app.command()
@_guarded
def report(
    experiments: Annotated[Path, typer.Option(help="Folder of experiment YAML files.")] = Path(
        "experiments"),
    data: DataOpt = "data",
    date: Annotated[str | None, typer.Option(
        help="Report date YYYY-MM-DD (default today, UTC); past dates backfill.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Reports folder.")] = Path("reports"),
    engine: EngineOpt = "polars",
    force: ForceOpt = False,
) -> None:
    """The daily run: every active experiment, reports/DATE/index.html and one page each."""
    from liftlab.app.run import run_report

    day = _parse_date(date)
    run = run_report(experiments, data, day, out_dir, _engine(engine),
                     progress=sys.stderr.isatty(), force=force)
    for o in run.outcomes:
        out.print(f"{o.status:>8}  {o.id}" + (f": {o.error}" if o.error else ""))
    out.print(f"wrote {run.folder / 'index.html'}")
    if run.outcomes and all(o.error for o in run.outcomes):
        raise typer.Exit(1)


def _parse_date(value: str | None) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--date: expected YYYY-MM-DD, got {value!r}") from None


@app.command()
@_guarded
def target(
    experiment: Annotated[Path, typer.Argument(help="The randomised experiment to learn from.")],
    data: DataOpt,
    budget: Annotated[float | None, typer.Option(
        help="What the policy may spend: in contact cost (the channels' cost_per_contact), or "
        "in contacts when no channel has a cost. Default: every contact predicted to pay.")
    ] = None,
    default: Annotated[str | None, typer.Option(
        help="Business as usual, the option sent to everyone today (e.g. email or "
        "email/mens). Default: the option worth most when sent to everyone.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("targeting"),
    confirm_start: Annotated[str | None, typer.Option(
        help="Start of the confirmation experiment, YYYY-MM-DD (default: 7 days from today).")
    ] = None,
    confirm_days: Annotated[int, typer.Option(
        min=1, max=365, help="Length of the confirmation experiment in days.")] = 14,
    confirm_holdout: Annotated[float, typer.Option(
        min=0.01, max=0.5, help="Holdout share of the confirmation experiment.")] = 0.1,
    force: ForceOpt = False,
) -> None:
    """Who gets which channel: uplift models, Qini curves, a budgeted policy and the YAML of
    the experiment that confirms it."""
    from liftlab.app.run import target_to_folder

    if budget is not None and not budget >= 0:
        raise UserError(f"--budget: expected a number >= 0, got {budget}")
    try:
        start = (dt.date.fromisoformat(confirm_start) if confirm_start
                 else dt.date.today() + dt.timedelta(days=7))
    except ValueError:
        raise UserError(f"--confirm-start: expected YYYY-MM-DD, got {confirm_start!r}") from None
    result = target_to_folder(experiment, data, budget, default, out_dir,
                              (start, start + dt.timedelta(days=confirm_days)),
                              confirm_holdout, force)
    out.print(result.summary())
    out.print(f"wrote {out_dir / 'targeting.json'}, {out_dir / 'policy.parquet'}, "
              f"{out_dir / 'confirmation.yaml'} and {out_dir / 'targeting.html'}")


@app.command()
@_guarded
def assign(
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML.")],
    data: DataOpt,
    output: Annotated[Path, typer.Option("--out", help="Parquet or CSV file to write.")] = Path(
        "assignments.parquet"),
) -> None:
    """Assign the population to arms (stable salted hash) and write an assignments table."""
    from liftlab.app.run import assignments_table
    from liftlab.engines.open import open_engine
    from liftlab.spec.loader import load_experiment

    spec = load_experiment(experiment)
    table = assignments_table(spec, open_engine(data, spec.timezone))
    import io

    from liftlab.core.fsio import atomic_write_bytes

    buf = io.BytesIO()
    if output.suffix == ".csv":
        table.write_csv(buf)
    else:
        table.write_parquet(buf)
    _refuse_overwriting(output, table.columns)
    atomic_write_bytes(output, buf.getvalue())
    counts = table.group_by("channel", "group").len().sort("channel", "group")
    for ch, group, n in counts.iter_rows():
        out.print(f"{ch:>12} {group:>12} {n:>10,}")
    out.print(f"wrote {table.height:,} rows to {output}")


@app.command("export-calibration")
@_guarded
def export_calibration(
    results: Annotated[list[Path], typer.Argument(
        help="results.json files, or folders holding them (analyze --out, a report).")],
    fmt: Annotated[str, typer.Option(
        "--format", help="pymc-marketing, robyn or meridian (docs/calibration.md).")],
    output: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    period_days: Annotated[int | None, typer.Option(
        "--period-days", help="pymc-marketing: days per model period (default 7).")] = None,
    dim: Annotated[list[str] | None, typer.Option(
        "--dim", help="pymc-marketing: NAME=VALUE of a model dimension the tests cover.")] = None,
    baseline_spend: Annotated[list[str] | None, typer.Option(
        "--baseline-spend", help="pymc-marketing: CHANNEL=SPEND per period without the "
        "treatment (default 0).")] = None,
    per_geo: Annotated[bool, typer.Option(
        "--per-geo", help="pymc-marketing: a geo test as one row per treatment geo "
        "(dimension geo) instead of one national row.")] = False,
) -> None:
    """Measured lifts as a marketing-mix model's calibration input (one row per test)."""
    from liftlab.analyses.calibration import export_to_file

    done = export_to_file(results, fmt, output, period_days, _pairs("--dim", dim),
                          {k: _number("--baseline-spend", k, v)
                           for k, v in _pairs("--baseline-spend", baseline_spend).items()},
                          per_geo)
    for refusal in done.refused:
        err.print(f"refused: {refusal}")
    out.print(f"wrote {done.table.height} {fmt} rows to {output}")


def _pairs(option: str, items: list[str] | None) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UserError(f"{option} {item!r}: write NAME=VALUE")
        pairs[name] = value
    return pairs


def _number(option: str, name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise UserError(f"{option} {name}={value}: the value must be a non-negative number")
    return number


@app.command()
@_guarded
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write data and reports.")] = (
        Path("demo")),
    experiments: Annotated[Path, typer.Option(help="Folder of experiment YAML files.")] = (
        Path("experiments")),
    customers: Annotated[int, typer.Option(help="Number of synthetic customers.")] = 60_000,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic retailer.")] = 7,
    force: ForceOpt = False,
) -> None:
    """Make a realistic demo retailer and run the daily report on it."""
    from liftlab.app.run import run_demo

    summary = run_demo(out_dir, experiments, customers, seed, progress=sys.stderr.isatty(),
                       force=force)
    out.print(summary)


def _refuse_overwriting(output: Path, columns: list[str]) -> None:
    """An existing file is replaced only when it is an assignments table (the same columns):
    liftlab never overwrites a file it did not write."""
    import polars as pl

    if not output.exists() or output.is_symlink():
        return  # a link is refused by the write itself
    try:
        if output.suffix == ".csv":
            found = pl.read_csv(output, n_rows=0).columns
        else:
            found = list(pl.read_parquet_schema(output))
    except (OSError, ValueError, pl.exceptions.PolarsError):  # a folder, another format
        found = []
    if found != columns:
        raise UserError(f"{output} already exists and is not an assignments table; liftlab "
                        "never overwrites a file it did not write: remove it or choose "
                        "another --out")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
