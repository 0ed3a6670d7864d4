"""One calibration ledger, three formats: measured lifts as the calibration input of the
marketing-mix models teams use (pymc-marketing, Robyn, Meridian). docs/calibration.md gives
each format's source and units.

A ledger holds ``CalibrationRecord`` rows: what one test measured for one channel (the total
incremental KPI over the test with its standard error, the spend that bought it, the dates,
and the model dimensions it covers). Any analysis can produce records through
``records_from_results`` (results.json): the holdout analyses one per channel arm, a geo test
one for all its treatment geos together (a national lift test). Each
writer turns the ledger into one tool's table; a record a tool cannot take is refused with
the reason, never dropped silently.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml

from liftlab.core.errors import Problem, UserError

Format = Literal["pymc-marketing", "robyn", "meridian"]
FORMATS: tuple[Format, ...] = ("pymc-marketing", "robyn", "meridian")
Z95 = 1.959963984540054  # two-sided 95% normal quantile: Meridian's significance rule
MONEY_COLUMNS = ("revenue", "margin")  # money columns of the orders table (docs/data.md)
WEEK_DAYS = 7


@dataclass(frozen=True)
class CalibrationRecord:
    """What one test measured for one channel, in totals over the whole test.

    ``incremental`` is the KPI the treatment added over the test (money when ``kpi_is_money``,
    else KPI units such as orders), ``se`` its standard error and ``p_value`` its two-sided
    p-value; ``spend`` is what the treatment cost (money); ``start`` is the first day and
    ``end`` the day after the last; ``dims`` the marketing-mix model's dimensions the test
    covers (a geo test: ``(("geo", "DE"),)``); ``estimate`` names the estimator."""

    source: str
    channel: str
    kpi: str
    kpi_is_money: bool
    start: dt.date
    end: dt.date
    spend: float
    incremental: float
    se: float
    p_value: float
    estimate: str
    dims: tuple[tuple[str, str], ...] = ()

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)


@dataclass(frozen=True)
class Refusal:
    """A measured lift a format cannot take, and why."""

    source: str
    channel: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source} / {self.channel}: {self.reason}"


@dataclass(frozen=True)
class Ledger:
    """Records ready for any format, and the lifts refused before any format."""

    records: tuple[CalibrationRecord, ...] = ()
    refused: tuple[Refusal, ...] = ()

    def __add__(self, other: Ledger) -> Ledger:
        return Ledger(self.records + other.records, self.refused + other.refused)


@dataclass(frozen=True)
class Export:
    """One format's table and the records it refused."""

    table: pl.DataFrame
    refused: tuple[Refusal, ...]


def records_from_results(results: Mapping[str, Any], per_geo: bool = False) -> Ledger:
    """The ledger of one ``liftlab analyze`` results.json: one record per channel (and
    variant) on the primary metric over the whole population. Totals are over the treated
    units: the increment is ``lift_abs x n_treatment`` and its standard error ``se x
    n_treatment``; the spend is the channel's cost (``cost_per_contact`` x treated units).
    ``per_geo``: a geo test gives one record per treatment geo (``dims`` geo=NAME) instead
    of its national record; customer-level results are unchanged."""
    if results.get("geo") is not None:
        return _geo_records(results) if per_geo else _geo_record(results)
    source, primary = str(results["experiment"]), str(results["primary_metric"])
    money = _kpi_is_money(results, primary)
    records, refused = [], []
    for e in results["effects"]:
        if e["metric"] != primary or e.get("segment") is not None:
            continue
        channel = e["channel"] + (f"_{e['variant']}" if e.get("variant") else "")
        reason = _unfit(results, e)
        if reason:
            refused.append(Refusal(source, channel, reason))
            continue
        n = int(e["n_treatment"])
        records.append(
            CalibrationRecord(
                source=source,
                channel=channel,
                kpi=primary,
                kpi_is_money=money,
                start=dt.date.fromisoformat(results["start"]),
                end=dt.date.fromisoformat(results["end"]),
                spend=float(e["cost"]),
                incremental=float(e["incremental_total"]),
                se=float(e["se"]) * n,
                p_value=float(e["p_value"]),
                estimate=str(e["method"]),
            )
        )
    return Ledger(tuple(records), tuple(refused))


def _geo_record(results: Mapping[str, Any]) -> Ledger:
    """A geo test's results.json as one record: the incremental KPI over all its treatment
    geos in the measured period (a national lift test; ``dims`` empty), the spend change that
    bought it, the method's p-value and a standard error (the t interval's for TBR; for an
    interval without one, its half-width over the normal quantile: an approximation when the
    interval is asymmetric). The KPI counts as money, as the geo ROI does."""
    from liftlab.analyses.geo import calibration_row

    g, source = results["geo"], str(results["experiment"])
    row = calibration_row(dict(results))
    channel = str(row["channel"])
    reason = None
    if results.get("status") != "ended":
        reason = (f"the geo test is still running (measured until {g.get('measured_until')}); "
                  "export it once it has ended")
    elif row["se"] is None or not math.isfinite(float(row["se"])) or not row["se"] > 0:
        reason = "the geo test has no interval to give a standard error"
    elif row["spend"] is None or not float(row["spend"]) > 0:
        reason = ("the geo test has no known spend change (name its spend column in the YAML, "
                  "spend:); a model cannot place it on the channel's response curve")
    if reason:
        return Ledger((), (Refusal(source, channel, reason),))
    record = CalibrationRecord(
        source=source, channel=channel, kpi=str(g["kpi"]), kpi_is_money=True,
        start=dt.date.fromisoformat(str(row["start"])),
        end=dt.date.fromisoformat(str(row["end"])),
        spend=float(row["spend"]), incremental=float(row["incremental"]),
        se=float(row["se"]), p_value=float(g["p_value"]), estimate=f"geo {g['method']}")
    return Ledger((record,), ())


def _geo_records(results: Mapping[str, Any]) -> Ledger:
    """A geo test's results.json as one record per treatment geo: each geo analysed alone
    against the controls (``geo.per_geo``), its own increment, standard error and spend
    change, ``dims`` geo=NAME. Refused as the national record is (running, no interval, no
    spend), and for trimmed match (its pairs give one pooled iROAS, no per-geo estimate)."""
    from liftlab.analyses.geo import standard_error

    national = _geo_record(results)
    if not national.records:
        return national
    g, base = results["geo"], national.records[0]
    if g.get("per_geo") is None:
        why = ("trimmed match estimates one iROAS for all pairs, not one per geo"
               if g.get("method") == "trimmed_match" else
               "this results.json has no per-geo estimates (analyse it again)")
        return Ledger((), (Refusal(base.source, base.channel, f"per geo: {why}"),))
    records, refused = [], []
    for item in g["per_geo"]:
        se = standard_error(item["se"], item["incremental_ci"], g["ci_level"])
        spend = item["spend_change"]
        if se is None or not se > 0 or spend is None or not spend > 0:
            refused.append(Refusal(base.source, base.channel, (
                f"geo {item['geo']}: no interval to give a standard error" if se is None
                or not se > 0 else f"geo {item['geo']}: no positive spend change")))
            continue
        records.append(replace(base, spend=float(spend), incremental=float(item["incremental"]),
                               se=float(se), p_value=float(item["p_value"]),
                               dims=(("geo", str(item["geo"])),)))
    return Ledger(tuple(records), tuple(refused))


def _unfit(results: Mapping[str, Any], e: Mapping[str, Any]) -> str | None:
    """Why an effect cannot calibrate a marketing-mix model (None when it can)."""
    if results.get("status") != "ended":
        return (
            f"the experiment is still running (analysed as of {results.get('as_of')}, it "
            f"ends {results['end']}): its increment covers part of the test only; export "
            "it once it has ended"
        )
    if e.get("metric_kind") == "ratio":
        return "a ratio metric has no additive total increment; make a mean or count metric primary"
    if e.get("error"):
        return f"no estimate: {e['error']}"
    values = (e.get("incremental_total"), e.get("se"), e.get("p_value"))
    if any(v is None or not math.isfinite(v) for v in values) or not e["se"] > 0:
        return "no total increment with a positive standard error"
    if not e.get("cost"):
        return (
            "no known spend for the treated units (cost_per_contact in the YAML, or the "
            "contacts table's cost): a marketing-mix model is calibrated on what spend bought"
        )
    return None


def _kpi_is_money(results: Mapping[str, Any], primary: str) -> bool:
    """True when the primary metric sums a money column of the orders table (read from the
    definition results.json carries); counts, conversions and other sums are KPI units."""
    text = (results.get("definition") or {}).get("yaml")
    spec = yaml.safe_load(text) if text else None
    metrics = spec.get("metrics", []) if isinstance(spec, dict) else []
    for m in metrics:
        if isinstance(m, dict) and m.get("name") == primary:
            return (
                m.get("kind") == "mean"
                and m.get("table") == "orders"
                and m.get("value") in MONEY_COLUMNS
            )
    return False


def pymc_marketing(
    ledger: Ledger,
    period_days: int | None = None,
    dims: Mapping[str, str] | None = None,
    baseline_spend: Mapping[str, float] | None = None,
) -> Export:
    """Rows for ``MMM.add_lift_test_measurements``: ``channel``, one column per model
    dimension, ``date``, ``x``, ``delta_x``, ``delta_y``, ``sigma``, one row per model period
    the test spans (``period_days`` days each; None: the whole test is one period).

    A test of P periods gives P rows, each with the per-period spend ``delta_x = spend / P``,
    increment ``delta_y = incremental / P`` and ``sigma = se / sqrt(P)``: P independent
    per-period measurements whose sum is the test's total, so that together they carry the
    test's precision exactly (P Normal likelihoods of sd se/sqrt(P) at the same mean weigh as
    one of sd se/P on the per-period mean). ``x`` is the channel's spend per period without the
    treatment (``baseline_spend``, default 0: the holdout gets none of it). ``dims`` adds model
    dimensions every record shares (a national test in a per-country model: country=DE)."""
    if period_days is not None and period_days < 1:
        raise UserError(
            [Problem(f"--period-days must be a positive number of days, got {period_days}")]
        )
    shared = dict(dims or {})
    names = sorted(set(shared) | {k for r in ledger.records for k, _ in r.dims})
    base = baseline_spend or {}
    unknown = sorted(set(base) - {r.channel for r in ledger.records})
    if unknown:
        raise UserError(
            [
                Problem(
                    f"--baseline-spend names {', '.join(unknown)}, which no exported test measured"
                )
            ]
        )
    rows, refused = [], []
    for r in ledger.records:
        own = dict(r.dims)
        reason = _pymc_refusal(r, own, shared, names, period_days)
        if reason:
            refused.append(Refusal(r.source, r.channel, reason))
            continue
        p = r.days // period_days if period_days else 1
        step = dt.timedelta(days=period_days or r.days)
        rows += [
            {
                "channel": r.channel,
                **{n: own.get(n, shared.get(n)) for n in names},
                "date": (r.start + k * step).isoformat(),
                "x": float(base.get(r.channel, 0.0)),
                "delta_x": r.spend / p,
                "delta_y": r.incremental / p,
                "sigma": r.se / math.sqrt(p),
                "source": r.source,
            }
            for k in range(p)
        ]
    schema = {
        "channel": pl.String,
        **dict.fromkeys(names, pl.String),
        "date": pl.String,
        "x": pl.Float64,
        "delta_x": pl.Float64,
        "delta_y": pl.Float64,
        "sigma": pl.Float64,
        "source": pl.String,
    }
    return Export(pl.DataFrame(rows, schema=schema), ledger.refused + tuple(refused))


def _pymc_refusal(
    r: CalibrationRecord,
    own: Mapping[str, str],
    shared: Mapping[str, str],
    names: Sequence[str],
    period_days: int | None,
) -> str | None:
    """Why a record gives no pymc-marketing rows (None when it gives them)."""
    clash = {k for k in own if k in shared and own[k] != shared[k]}
    if clash:
        return (
            f"the test covers {_dims_text(own, clash)}, not {_dims_text(shared, clash)} "
            "given by --dim"
        )
    missing = [k for k in names if k not in own and k not in shared]
    if missing:
        return (
            f"the model has dimensions {', '.join(missing)} and the test does not say "
            "which; add --dim NAME=VALUE"
        )
    if period_days and r.days % period_days:
        return f"the test's {r.days} days are not a whole number of {period_days}-day model periods"
    return None


def _dims_text(dims: Mapping[str, str], keys: Iterable[str]) -> str:
    return ", ".join(f"{k}={dims[k]}" for k in sorted(keys))


def robyn(ledger: Ledger) -> Export:
    """Robyn's ``calibration_input``: ``channel``, ``liftStartDate``, ``liftEndDate`` (first
    and last day of the test), ``liftAbs`` (the total increment in KPI units), ``spend``
    (the spend that bought it), ``confidence`` (1 - p-value), ``metric`` (the KPI, which must
    be the model's dep_var) and ``calibration_scope`` ("immediate": a holdout measures the
    response within the test). Robyn models one market: a test of a single geo is refused."""
    rows, refused = [], []
    for r in ledger.records:
        if r.dims:
            refused.append(
                Refusal(
                    r.source,
                    r.channel,
                    f"Robyn models one market; this test "
                    f"covers {_dims_text(dict(r.dims), dict(r.dims))} only; calibrate a model of "
                    "that market with it, or use pymc-marketing's dims",
                )
            )
            continue
        rows.append(
            {
                "channel": r.channel,
                "liftStartDate": r.start.isoformat(),
                "liftEndDate": r.last_day.isoformat(),
                "liftAbs": r.incremental,
                "spend": r.spend,
                "confidence": 1.0 - r.p_value,
                "metric": r.kpi,
                "calibration_scope": "immediate",
            }
        )
    schema = {
        "channel": pl.String,
        "liftStartDate": pl.String,
        "liftEndDate": pl.String,
        "liftAbs": pl.Float64,
        "spend": pl.Float64,
        "confidence": pl.Float64,
        "metric": pl.String,
        "calibration_scope": pl.String,
    }
    return Export(pl.DataFrame(rows, schema=schema), ledger.refused + tuple(refused))


def meridian(ledger: Ledger) -> Export:
    """Meridian's experiment calibration (``ExperimentResult`` and ``ExperimentInfo``): the
    ROI point estimate ``incremental / spend`` with its standard error ``se / spend`` (spend
    is fixed by the design, so the ratio's error is the increment's), ``total_spend``, and the
    first and last day the test was active. ``metric`` is ``roi`` when the KPI is money and
    ``ikpc`` (incremental KPI per unit of cost, Meridian's ROI of a non-revenue KPI)
    otherwise. A significantly negative result (the 95% interval's upper bound below 0) is
    refused as Meridian's ExperimentResult refuses it."""
    rows, refused = [], []
    for r in ledger.records:
        if r.dims:
            refused.append(Refusal(r.source, r.channel, (
                f"covers {_dims_text(dict(r.dims), dict(r.dims))}: Meridian's ExperimentResult "
                "and ExperimentInfo carry no geo; export the national test")))
            continue
        roi, se = r.incremental / r.spend, r.se / r.spend
        upper = roi + Z95 * se
        if upper < 0:
            refused.append(
                Refusal(
                    r.source,
                    r.channel,
                    f"significantly negative: ROI {roi:.4g}"
                    f", 95% interval up to {upper:.4g} < 0; Meridian's "
                    "ExperimentResult rejects it (its ROI priors are positive)"
                    ": check the experiment before calibrating on it",
                )
            )
            continue
        rows.append(
            {
                "channel": r.channel,
                "metric": "roi" if r.kpi_is_money else "ikpc",
                "point_estimate": roi,
                "standard_error": se,
                "total_spend": r.spend,
                "experiment_start_date": r.start.isoformat(),
                "experiment_end_date": r.last_day.isoformat(),
                "kpi": r.kpi,
                "source": r.source,
            }
        )
    schema = {
        "channel": pl.String,
        "metric": pl.String,
        "point_estimate": pl.Float64,
        "standard_error": pl.Float64,
        "total_spend": pl.Float64,
        "experiment_start_date": pl.String,
        "experiment_end_date": pl.String,
        "kpi": pl.String,
        "source": pl.String,
    }
    return Export(pl.DataFrame(rows, schema=schema), ledger.refused + tuple(refused))


def read_ledger(paths: Sequence[Path], per_geo: bool = False) -> Ledger:
    """The ledger of every results.json named, or found under the folders named (an
    ``analyze --out`` folder, a report date, a reports root); ``per_geo`` as in
    ``records_from_results``."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.rglob("results.json"))
            if not found:
                raise UserError(
                    [
                        Problem(
                            f"{p}: no results.json in this folder or below it",
                            hint="name an `analyze --out` folder or a report",
                        )
                    ]
                )
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UserError([Problem(f"{p}: no such file or folder")])
    ledger = Ledger()
    for f in files:
        ledger = ledger + records_from_results(_read_results(f), per_geo)
    return ledger


def _read_results(path: Path) -> Mapping[str, Any]:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError([Problem(f"{path}: not a results.json ({exc})")]) from None
    needed = ("experiment", "primary_metric", "start", "end", "effects")
    if not isinstance(results, dict) or any(k not in results for k in needed):
        raise UserError(
            [
                Problem(
                    f"{path}: not a results.json of `liftlab analyze` (it needs "
                    f"{', '.join(needed)})"
                )
            ]
        )
    return results


def export(
    ledger: Ledger,
    fmt: Format,
    period_days: int | None = None,
    dims: Mapping[str, str] | None = None,
    baseline_spend: Mapping[str, float] | None = None,
) -> Export:
    """The ledger in one format (``period_days``, ``dims`` and ``baseline_spend`` are
    pymc-marketing's; another format given them is refused rather than ignoring them)."""
    if fmt == "pymc-marketing":
        return pymc_marketing(
            ledger, WEEK_DAYS if period_days is None else period_days, dims, baseline_spend
        )
    given = [
        name
        for name, v in (
            ("--period-days", period_days is not None),
            ("--dim", bool(dims)),
            ("--baseline-spend", bool(baseline_spend)),
        )
        if v
    ]
    if given:
        raise UserError(
            [Problem(f"{', '.join(given)} apply to --format pymc-marketing only, not {fmt}")]
        )
    return robyn(ledger) if fmt == "robyn" else meridian(ledger)


def export_to_file(
    paths: Sequence[Path],
    fmt: str,
    output: Path,
    period_days: int | None = None,
    dims: Mapping[str, str] | None = None,
    baseline_spend: Mapping[str, float] | None = None,
    per_geo: bool = False,
) -> Export:
    """``liftlab export-calibration``: read the ledger, write one format's CSV atomically. An
    existing file is replaced only when it is a table of the same format (the same header);
    nothing is written, and the reasons are given, when no record fits the format.
    ``per_geo``: geo tests as one row per treatment geo (pymc-marketing only)."""
    from liftlab.core.fsio import atomic_write_text

    if fmt not in FORMATS:
        raise UserError([Problem(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")])
    if per_geo and fmt != "pymc-marketing":
        raise UserError([Problem(
            f"--per-geo applies to --format pymc-marketing only, not {fmt}: "
            + ("Robyn models one market" if fmt == "robyn" else
               "Meridian's ExperimentResult and ExperimentInfo carry no geo"))])
    done = export(read_ledger(paths, per_geo), fmt, period_days, dims, baseline_spend)
    if done.table.is_empty():
        reasons = [Problem(str(r)) for r in done.refused] or [Problem("no lift to export")]
        raise UserError([Problem(f"no {fmt} calibration row: every lift was refused"), *reasons])
    if output.exists() and not output.is_symlink() and _header(output) != done.table.columns:
        raise UserError(
            [
                Problem(
                    f"{output} already exists and is not a {fmt} calibration "
                    "table; liftlab never overwrites a file it did not write: "
                    "remove it or choose another --out"
                )
            ]
        )
    atomic_write_text(output, done.table.write_csv())
    return done


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8") as f:
            return f.readline().rstrip("\r\n").split(",")
    except (OSError, UnicodeDecodeError):
        return []
