"""Analysis of a geo experiment: from the geo x date table to results.json.

The engine returns the small table (``engines/geo_table.py``); this module checks it, builds
the treatment and control matrices, runs the method (``stats/geo``), the placebo checks and
the money figures, and returns a JSON-ready dict shaped like the other designs' (``effects``
with the KPI's row for the daily report's portfolio, ROI table and index; ``health`` with the
warnings) plus the ``geo`` object.

Money follows the project's one ROI definition (``roi.py``): ROI = (incremental margin -
spend change) / spend change, iROAS (ROAS) = incremental KPI / spend change. The spend change
is the treatment geos' spend in the test period minus its counterfactual (a regression of
their spend on the controls' spend over the pre-period; their pre-period mean when the
controls' spend does not vary), taken as known; margin is the KPI times the margin share of
the treatment geos in the test period (the KPI itself without a ``margin`` column).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from liftlab.core.errors import DataError, Problem
from liftlab.engines.base import Engine
from liftlab.engines.geo_table import DATE, GEO, TABLE, geo_frame
from liftlab.spec.geo import GeoExperiment
from liftlab.stats.geo import synthetic_control, tbr, trimmed_match
from liftlab.stats.geo.common import GeoFit

MAX_EXTRAPOLATION = 0.25  # share of test periods outside the pre-period's control range
MAX_IMBALANCE = 0.5  # scaled L2 imbalance of synthetic-control weights


@dataclass(frozen=True)
class Panel:
    """The KPI (and spend, margin) of every geo per period: rows are periods."""

    dates: tuple[dt.date, ...]
    geos: tuple[str, ...]
    values: dict[str, np.ndarray]  # column -> periods x geos
    n_pre: int
    step_days: int
    filled: int = 0  # geo and date pairs without a row, taken as zero (missing_rows: zero)

    def columns_of(self, geos: list[str]) -> list[int]:
        index = {g: i for i, g in enumerate(self.geos)}
        return [index[g] for g in geos]


def analyze_geo(
    spec: GeoExperiment,
    engine: Engine,
    as_of: dt.datetime | None = None,
    yaml_file: str | None = None,
) -> dict[str, Any]:
    """The results of a geo experiment as of ``as_of`` (default: the data's last date)."""
    end = spec.end if as_of is None else min(spec.end, as_of.date())
    frame = geo_frame(engine, spec.columns, spec.pre_period.start, spec.end)
    panel = build_panel(spec, frame, end, yaml_file)
    treated, controls = _split(spec, panel, yaml_file)
    if spec.method == "trimmed_match":
        fit = matched_pairs(spec, panel, treated, controls)
    else:
        fit = run_method(
            spec,
            panel.values[spec.kpi][:, treated],
            panel.values[spec.kpi][:, controls],
            panel.n_pre,
            spec.alpha,
        )
    return _results(spec, panel, fit, treated, controls, engine.label)


def matched_pairs(
    spec: GeoExperiment, panel: Panel, treated: list[int], controls: list[int]
) -> GeoFit:
    """Trimmed match on the pairs (treatment geo, its control geo): each pair's KPI and
    spend differences over the measured test period. The counterfactual of the treatment
    geos is their KPI minus the estimated iROAS times their extra spend over their controls;
    the cumulative effect is the iROAS (and its interval) times the cumulative extra spend."""
    assert spec.spend is not None
    kpi, spend, n = panel.values[spec.kpi], panel.values[spec.spend], panel.n_pre
    dy = (kpi[n:, treated] - kpi[n:, controls]).sum(axis=0)
    dx = (spend[n:, treated] - spend[n:, controls]).sum(axis=0)
    if not np.any(dx):
        raise DataError(
            [
                Problem(
                    "no spend difference between the paired treatment and control geos in the "
                    f"test period: {spec.spend} is the same",
                    table=TABLE,
                    column=spec.spend,
                    hint="trimmed match estimates the return on the spend the treatment geos got",
                )
            ]
        )
    tm = trimmed_match.fit(dy, dx, 1 - spec.alpha, inference=spec.pair_inference, seed=spec.seed)
    y = kpi[:, treated].sum(axis=1)
    extra = (spend[:, treated] - spend[:, controls]).sum(axis=1)
    lo, hi = tm.ci
    ends = np.sort(np.vstack([lo * extra, hi * extra]), axis=0)
    cum_extra = np.cumsum(extra[n:])
    cum_ends = np.sort(np.vstack([lo * cum_extra, hi * cum_extra]), axis=0)
    total = float(dx.sum())
    return GeoFit(
        method="trimmed_match",
        observed=y,
        counterfactual=y - tm.estimate * extra,
        band=(y - ends[1], y - ends[0]),
        cumulative=tm.estimate * cum_extra,
        cumulative_ci=(cum_ends[0], cum_ends[1]),
        effect=tm.estimate * total,
        effect_ci=tuple(sorted((lo * total, hi * total))),
        se=tm.se * abs(total),
        p_value=tm.p_value,
        n_pre=n,
        inference=_pair_inference_text(tm),
        details={
            "iroas": tm.estimate,
            "iroas_ci": list(tm.ci),
            "iroas_se": tm.se,
            "trim_rate": tm.trim_rate,
            "pairs": len(treated),
            "interval": tm.inference,
            "sign_patterns": tm.sign_patterns if tm.inference == "randomization" else None,
            "sign_patterns_exact": tm.exact if tm.inference == "randomization" else None,
            "spend_change": total,
        },
    )


def _pair_inference_text(tm: trimmed_match.TrimmedMatchFit) -> str:
    if tm.inference == "normal":
        return (
            "trimmed match (Chen and Au 2019): studentized trimmed mean of the pair residuals "
            "against the normal quantile, on the iROAS, times the extra spend"
        )
    reference = (
        f"all {tm.sign_patterns:,} sign patterns"
        if tm.exact
        else f"{tm.sign_patterns:,} seeded random sign patterns (Monte Carlo)"
    )
    return (
        "trimmed match (Chen and Au 2019) with randomization inference: the studentized "
        "trimmed mean of the pair residuals against its values when the coin of each pair "
        f"is flipped ({reference}), inverted over the iROAS, times the extra spend"
    )


def build_panel(
    spec: GeoExperiment, frame: pl.DataFrame, end: dt.date, yaml_file: str | None
) -> Panel:
    """Check the table (one row per geo and date, numbers present, every geo on every
    date) and keep the pre-period and the measured part of the test period."""
    _check_rows(spec, frame)
    dates = sorted(set(frame[DATE].to_list()))
    if not dates:
        raise DataError(
            [
                Problem(
                    f"no rows between {spec.pre_period.start} and {spec.end}",
                    table=TABLE,
                    column=DATE,
                    hint="check the periods of the experiment and the table",
                )
            ]
        )
    step = min(((b - a).days for a, b in itertools.pairwise(dates)), default=1)
    last = dates[-1] + dt.timedelta(days=step)
    measured_end = min(end, last)
    pre = [d for d in dates if spec.pre_period.start <= d < spec.pre_period.end]
    test = [d for d in dates if spec.test_period.start <= d < measured_end]
    if not test:
        raise DataError(
            [
                Problem(
                    f"the data ends on {dates[-1]}, before the test period starts "
                    f"({spec.test_period.start}): nothing to measure yet",
                    table=TABLE,
                    column=DATE,
                    hint="analyse once the test has run, or check test_period",
                )
            ]
        )
    if len(pre) < 3:
        raise DataError(
            [
                Problem(
                    f"{len(pre)} dates in the pre-period "
                    f"{spec.pre_period.start}..{spec.pre_period.end}; a "
                    "counterfactual needs more",
                    table=TABLE,
                    column=DATE,
                )
            ]
        )
    keep = frame.filter(pl.col(DATE).is_in([*pre, *test]))
    geos = sorted(set(keep[GEO].to_list()))
    counts = keep.group_by(GEO).len()
    short = counts.filter(pl.col("len") < len(pre) + len(test)).sort(GEO)
    filled = int(len(geos) * (len(pre) + len(test)) - keep.height)
    if short.height and spec.missing_rows == "error":
        names = ", ".join(short[GEO].head(5).to_list())
        raise DataError(
            [
                Problem(
                    f"{short.height} geo(s) lack some dates of the pre-period or test period (e.g. "
                    f"{names}); every geo needs a row on each of the {len(pre) + len(test)} dates",
                    table=TABLE,
                    column=DATE,
                    hint="fill the missing rows, exclude those geos, or write missing_rows: "
                    "zero when a missing row means nothing was sold",
                )
            ]
        )
    values = {}
    for c in spec.columns:
        wide = keep.pivot(on=GEO, index=DATE, values=c).sort(DATE)
        values[c] = np.nan_to_num(wide.select(geos).to_numpy().astype(float), nan=0.0)
    return Panel(tuple(pre + test), tuple(geos), values, len(pre), step, filled)


def _check_rows(spec: GeoExperiment, frame: pl.DataFrame) -> None:
    dupes = frame.filter(pl.col("rows") > 1)
    if dupes.height:
        first = dupes.row(0, named=True)
        raise DataError(
            [
                Problem(
                    f"{dupes.height:,} geo and date pair(s) appear on more than one row (e.g. geo "
                    f"{first[GEO]!r} on {first[DATE]})",
                    table=TABLE,
                    column=GEO,
                    hint="one row per geo and date: sum the rows first",
                )
            ]
        )
    for c in spec.columns:
        gaps = frame.filter(pl.col(f"{c}__n") < pl.col("rows"))
        if gaps.height:
            first = gaps.row(0, named=True)
            raise DataError(
                [
                    Problem(
                        f"{gaps.height:,} geo and date pair(s) without a finite number (e.g. geo "
                        f"{first[GEO]!r} on {first[DATE]})",
                        table=TABLE,
                        column=c,
                        hint="fill the value (0 when there was none)",
                    )
                ]
            )


def _split(spec: GeoExperiment, panel: Panel, yaml_file: str | None) -> tuple[list[int], list[int]]:
    known = set(panel.geos)
    problems = [
        Problem(
            f"geos.{kind}: {g!r} is not a geo of {TABLE}",
            file=yaml_file,
            line=_line(yaml_file, ("geos", kind, i)),
            hint=f"the table's geos include {', '.join(panel.geos[:5])}",
        )
        for kind, ids in (
            ("treatment", spec.geos.treatment),
            ("control", spec.geos.control or []),
            ("exclude", spec.geos.exclude),
        )
        for i, g in enumerate(ids)
        if g not in known
    ]
    if problems:
        raise DataError(problems)
    left_out = set(spec.geos.treatment) | set(spec.geos.exclude)
    control = (
        list(spec.geos.control)
        if spec.geos.control is not None
        else [g for g in panel.geos if g not in left_out]
    )
    if len(control) < 2:
        raise DataError(
            [
                Problem(
                    f"{len(control)} control geo(s) remain; a counterfactual needs at least 2",
                    file=yaml_file,
                    line=_line(yaml_file, ("geos",)),
                    hint="exclude fewer geos",
                )
            ]
        )
    return panel.columns_of(list(spec.geos.treatment)), panel.columns_of(control)


def _line(yaml_file: str | None, loc: tuple[Any, ...]) -> int | None:
    """The YAML line of ``loc`` (for a message at the definition's line)."""
    if yaml_file is None:
        return None
    from liftlab.spec.loader import _find, _Loader

    loader = _Loader(Path(yaml_file).read_text(encoding="utf-8"))
    try:
        node = _find(loader.get_single_node(), loc)
    finally:
        loader.dispose()
    return None if node is None else node.start_mark.line + 1


def run_method(
    spec: GeoExperiment,
    treated: np.ndarray,
    controls: np.ndarray,
    n_pre: int,
    alpha: float,
    band: bool = True,
) -> GeoFit:
    if spec.method == "tbr":
        return tbr.fit(treated, controls, n_pre, alpha)
    if spec.method == "bayesian_tbr":
        from liftlab.stats.geo import bayes_geo

        return bayes_geo.fit(treated, controls, n_pre, alpha, seed=spec.seed)
    return synthetic_control.fit(
        treated,
        controls,
        n_pre,
        alpha,
        demean=bool(spec.demean),
        cumulative_band=band,
        augment=spec.augment == "ridge",
        ridge_lambda=spec.ridge_lambda,
    )


def spend_change(
    spec: GeoExperiment, panel: Panel, treated: list[int], controls: list[int]
) -> float | None:
    """The treatment geos' spend in the measured test period minus its counterfactual (see
    the module docstring), signed so that it is the spend the campaign added (heavy-up) or
    the spend saved by holding it back (holdback)."""
    if spec.spend is None:
        return None
    s = panel.values[spec.spend]
    y, x, n = s[:, treated].sum(axis=1), s[:, controls].sum(axis=1), panel.n_pre
    test = _test_rows(spec, panel)
    xp = x[:n]
    sxx = float(np.sum((xp - xp.mean()) ** 2))
    slope = float(np.sum((xp - xp.mean()) * (y[:n] - y[:n].mean())) / sxx) if sxx > 0 else 0.0
    cf = y[:n].mean() + slope * (x - xp.mean())
    change = float(np.sum(y[test] - cf[test]))
    return change if spec.heavy_up else -change


def _test_rows(spec: GeoExperiment, panel: Panel) -> np.ndarray:
    """Measurement rows within the test period itself (the cool-down carries no spend)."""
    rows = np.arange(panel.n_pre, len(panel.dates))
    return rows[[panel.dates[i] < spec.test_period.end for i in rows]]


def placebo_in_time(
    spec: GeoExperiment, kpi: np.ndarray, treated: list[int], controls: list[int], panel: Panel
) -> dict[str, Any] | None:
    """The method on a fake test period: the last pre-period dates, as many as the
    measurement (at most a third of the pre-period), fitted on the dates before them. The
    Bayesian TBR is checked with TBR (the same model, in closed form: no second sampling)."""
    n_pre = panel.n_pre
    fake = min(len(panel.dates) - n_pre, n_pre // 3)
    if n_pre - fake < 7 or fake < 1:
        return None
    rows = slice(0, n_pre)
    checked = spec.model_copy(update={"method": "tbr"}) if spec.method == "bayesian_tbr" else spec
    fit = run_method(
        checked, kpi[rows][:, treated], kpi[rows][:, controls], n_pre - fake, spec.alpha, band=False
    )
    return {
        "start": panel.dates[n_pre - fake].isoformat(),
        "periods": fake,
        "effect": fit.effect,
        "effect_ci": list(fit.effect_ci),
        "p_value": fit.p_value,
        "lift_rel": fit.effect / fit.counterfactual_total if fit.counterfactual_total else None,
    }


def placebo_in_space(
    spec: GeoExperiment,
    kpi: np.ndarray,
    treated: list[int],
    controls: list[int],
    n_pre: int,
    observed_rel: float,
    ridge: float | None = None,
) -> dict[str, Any]:
    """Sets of control geos as many as the treatment geos, each analysed as if treated
    against the remaining controls: the share whose relative effect is at least as large
    as the observed one (in absolute value) is a permutation p-value. A ridge-augmented
    synthetic control keeps the real fit's ``ridge`` lambda for the placebos."""
    rng = np.random.default_rng(spec.seed)
    k = len(treated)
    rels = []
    for _ in range(spec.placebos if len(controls) - k >= 2 else 0):
        chosen = rng.choice(len(controls), size=k, replace=False)
        fake = [controls[i] for i in chosen]
        rest = [c for i, c in enumerate(controls) if i not in set(chosen.tolist())]
        fit = _point_fit(spec, kpi[:, fake], kpi[:, rest], n_pre, ridge)
        if fit is not None:
            rels.append(fit)
    arr = np.abs(np.array(rels))
    p = float((1 + np.sum(arr >= abs(observed_rel))) / (1 + len(arr))) if len(arr) else None
    return {
        "placebos": len(arr),
        "p_value": p,
        "rel_quantiles": None
        if not len(arr)
        else [float(q) for q in np.quantile(np.array(rels), [0.025, 0.5, 0.975])],
    }


def per_geo(
    spec: GeoExperiment, panel: Panel, treated: list[int], controls: list[int]
) -> list[dict[str, Any]]:
    """Each treatment geo analysed alone against the same controls (its own counterfactual,
    interval and spend change), for calibrating a geo-level marketing-mix model; the
    Bayesian TBR's per geo is TBR's (the same model in closed form). The geos' estimates
    need not add up to the joint one (each has its own fit)."""
    kpi = panel.values[spec.kpi]
    checked = spec.model_copy(update={"method": "tbr"}) if spec.method == "bayesian_tbr" else spec
    sign = 1.0 if spec.heavy_up else -1.0
    out = []
    for j in treated:
        fit = run_method(
            checked, kpi[:, [j]], kpi[:, controls], panel.n_pre, spec.alpha, band=False
        )
        lo, hi = sorted((sign * fit.effect_ci[0], sign * fit.effect_ci[1]))
        out.append(
            {
                "geo": panel.geos[j],
                "incremental": sign * fit.effect,
                "incremental_ci": [_num(lo), _num(hi)],
                "se": fit.se,
                "p_value": fit.p_value,
                "spend_change": spend_change(spec, panel, [j], controls),
            }
        )
    return out


def _point_fit(
    spec: GeoExperiment,
    treated: np.ndarray,
    controls: np.ndarray,
    n_pre: int,
    ridge: float | None = None,
) -> float | None:
    """The relative effect of the method's point estimate (no interval; the Bayesian TBR's
    is TBR's least-squares line)."""
    if spec.method in ("tbr", "bayesian_tbr"):
        y, x = treated.sum(axis=1), controls.sum(axis=1)
        xp, yp = x[:n_pre], y[:n_pre]
        sxx = float(np.sum((xp - xp.mean()) ** 2))
        if sxx <= 0:
            return None
        b = float(np.sum((xp - xp.mean()) * (yp - yp.mean())) / sxx)
        cf = yp.mean() + b * (x[n_pre:] - xp.mean())
    else:
        y = treated.mean(axis=1)
        demean = bool(spec.demean)
        rows = slice(0, n_pre)
        _, synth = synthetic_control._fitted(y, controls, rows, demean, ridge)
        cf, y = synth[n_pre:] * treated.shape[1], treated.sum(axis=1)
    total = float(cf.sum())
    return float(y[n_pre:].sum() - total) / total if total else None


def _lift(spec: GeoExperiment, fit: GeoFit, value: float) -> float | None:
    """Relative lift of the channel for an effect ``value`` on the treatment geos: against
    their counterfactual (heavy-up), against their observed total without the campaign
    (holdback). The observed total is known, so the map is exact for interval ends too."""
    observed = fit.observed_total
    if spec.heavy_up:
        base = observed - value
        return value / base if base > 0 else None
    return -value / observed if observed > 0 else None


def _results(
    spec: GeoExperiment,
    panel: Panel,
    fit: GeoFit,
    treated: list[int],
    controls: list[int],
    source: str,
) -> dict[str, Any]:
    kpi = panel.values[spec.kpi]
    sign = 1.0 if spec.heavy_up else -1.0
    incremental = sign * fit.effect
    ci = sorted((sign * fit.effect_ci[0], sign * fit.effect_ci[1]))
    lift = _lift(spec, fit, fit.effect)
    lift_ends = [_lift(spec, fit, e) for e in fit.effect_ci]
    lift_ci = sorted(lift_ends) if None not in lift_ends else None  # type: ignore[type-var]
    spend = (
        fit.details["spend_change"] * (1 if spec.heavy_up else -1)
        if spec.method == "trimmed_match"
        else spend_change(spec, panel, treated, controls)
    )
    money = _money(spec, panel, treated, incremental, ci, spend)
    paired = spec.method == "trimmed_match"  # no placebo: the pairs have no spend before
    p_time = None if paired else placebo_in_time(spec, kpi, treated, controls, panel)
    p_space = (
        None
        if paired
        else placebo_in_space(
            spec,
            kpi,
            treated,
            controls,
            panel.n_pre,
            fit.effect / fit.counterfactual_total if fit.counterfactual_total else 0.0,
            fit.details.get("ridge_lambda"),
        )
    )
    diagnostics = _diagnostics(fit)
    warnings = _warnings(spec, fit, diagnostics, p_time)
    if panel.filled:
        warnings.append(
            {
                "code": "geo_missing_rows",
                "severity": "info",
                "message": (
                    f"{panel.filled:,} geo and date pair(s) without a row in {TABLE} were taken as "
                    "zero (missing_rows: zero)"
                ),
            }
        )
    measured = panel.dates[panel.n_pre :]
    last = measured[-1] + dt.timedelta(days=panel.step_days)
    significant = fit.p_value < spec.alpha and not (ci[0] <= 0 <= ci[1])
    verdict = "inconclusive" if not significant else "desired" if incremental > 0 else "undesired"
    ended = last >= spec.end
    geo = {
        # the final readout of a fixed-horizon test is its decision; none before the end
        "decision": {"desired": "treatment_wins", "undesired": "harm"}.get(verdict, "continue")
        if ended
        else "continue",
        "method": spec.method,
        "test_type": spec.test_type,
        "kpi": spec.kpi,
        "spend": spec.spend,
        "frequency": "daily" if panel.step_days == 1 else f"every {panel.step_days} days",
        "treatment_geos": list(spec.geos.treatment),
        "control_geos": [panel.geos[i] for i in controls],
        "excluded_geos": list(spec.geos.exclude),
        "pre_period": [spec.pre_period.start.isoformat(), spec.pre_period.end.isoformat()],
        "test_period": [spec.test_period.start.isoformat(), spec.test_period.end.isoformat()],
        "measured_until": last.isoformat(),
        "cooldown_days": spec.cooldown_days,
        "ci_level": 1 - spec.alpha,
        "inference": fit.inference,
        "incremental": incremental,
        "incremental_ci": ci,
        "se": fit.se,
        "lift_rel": lift,
        "lift_rel_ci": lift_ci,
        "p_value": fit.p_value,
        "observed_total": fit.observed_total,
        "counterfactual_total": fit.counterfactual_total,
        **money,
        "att_per_period": [float(v) * sign for v in fit.per_period],
        "series": {
            "dates": [d.isoformat() for d in panel.dates],
            "observed": fit.observed.tolist(),
            "counterfactual": fit.counterfactual.tolist(),
            "band": [fit.band[0].tolist(), fit.band[1].tolist()],
            "cumulative": (sign * fit.cumulative).tolist(),
            "cumulative_ci": _signed_band(fit, sign),
            "n_pre": panel.n_pre,
        },
        "diagnostics": diagnostics,
        "placebo_in_time": p_time,
        "placebo_in_space": p_space,
        "per_geo": None if paired else per_geo(spec, panel, treated, controls),
    }
    effect = {
        "channel": spec.channel,
        "variant": None,
        "metric": spec.kpi,
        "metric_kind": "geo",
        "guardrail": False,
        "direction": "increase",
        "segment": None,
        "n_treatment": len(treated),
        "n_holdout": len(controls),
        # per-unit means, the relative test, multiplicity, CUPED and a posterior belong to
        # customer-level rows; a geo test's estimate is the total below
        "mean_treatment": None,
        "mean_holdout": None,
        "rel_p_value": None,
        "p_adjusted": None,
        "cuped": False,
        "variance_reduction": None,
        "prob_positive": None,
        "bayes": None,
        "lift_abs": incremental,
        "lift_abs_ci": ci,
        "se": fit.se,
        "lift_rel": lift,
        "lift_rel_ci": lift_ci,
        "p_value": fit.p_value,
        "ci_level": 1 - spec.alpha,
        "method": f"geo {spec.method}",
        "verdict": verdict,
        "error": None,
        "incremental_total": incremental,
        "incremental_total_ci": ci,
        "cost": money["spend_change"],
        "roi": money["roi"],
        "roi_ci": money["roi_ci"],
        "roas": money["iroas"],
        "roas_ci": money["iroas_ci"],
        "roi_note": money["roi_note"],
        "estimate": f"incremental {spec.kpi} in the treatment geos over the measured test "
        f"period ({spec.method})",
    }
    return {
        "experiment": spec.id,
        "name": spec.title,
        "design": "geo",
        "channels": [spec.channel],
        "start": spec.start.isoformat(),
        "end": spec.end.isoformat(),
        "as_of": f"{last.isoformat()}T00:00:00Z",  # the end of the last measured day
        "status": "ended" if last >= spec.end else "running",
        "days_run": float((last - spec.start).days),
        "days_planned": (spec.end - spec.start).days,
        "primary_metric": spec.kpi,
        "alpha": spec.alpha,
        "data_source": source,
        "effects": [effect],
        # no sample-ratio check: geos are assigned by name, not drawn per unit
        "health": {
            "srm_p_value": None,
            "srm_ok": True,
            "srm": [],
            "warnings": warnings,
            "data_checks": [],
            "design_checks": [],
        },
        "geo": geo,
    }


def _signed_band(fit: GeoFit, sign: float) -> list[list[float | None]]:
    lo, hi = sign * fit.cumulative_ci[0], sign * fit.cumulative_ci[1]
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return [[_num(v) for v in lo], [_num(v) for v in hi]]


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _money(
    spec: GeoExperiment,
    panel: Panel,
    treated: list[int],
    incremental: float,
    ci: list[float],
    spend: float | None,
) -> dict[str, Any]:
    none = {
        "spend_change": spend,
        "iroas": None,
        "iroas_ci": None,
        "roi": None,
        "roi_ci": None,
        "margin_share": None,
    }
    if spend is None:
        return {**none, "roi_note": "no spend column: iROAS and ROI are undefined"}
    if not spend > 0:
        return {
            **none,
            "roi_note": f"the spend change is {spend:,.2f}, not positive: iROAS "
            "and ROI are undefined",
        }
    share = 1.0
    if spec.margin is not None:
        rows = _test_rows(spec, panel)
        k = float(panel.values[spec.kpi][rows][:, treated].sum())
        share = float(panel.values[spec.margin][rows][:, treated].sum()) / k if k else 1.0
    return {
        "spend_change": spend,
        "iroas": incremental / spend,
        "iroas_ci": [ci[0] / spend, ci[1] / spend],
        "roi": (share * incremental - spend) / spend,
        "roi_ci": [(share * ci[0] - spend) / spend, (share * ci[1] - spend) / spend],
        "margin_share": share,
        "roi_note": None
        if spec.margin
        else "margin taken as the KPI itself (no margin "
        "column): ROI = (incremental KPI - spend) / "
        "spend",
    }


def _diagnostics(fit: GeoFit) -> dict[str, Any]:
    # trimmed match fits no pre-period: its pairs are compared in the test period only
    d: dict[str, Any] = (
        {}
        if fit.method == "trimmed_match"
        else {"pre_mape": fit.pre_mape(), "pre_r2": fit.pre_r2()}
    )
    for key, value in fit.details.items():
        d[key] = value.tolist() if isinstance(value, np.ndarray) else value
    return d


def _warnings(
    spec: GeoExperiment, fit: GeoFit, d: dict[str, Any], p_time: dict[str, Any] | None
) -> list[dict[str, str]]:
    out = []
    if d.get("pre_mape", 0.0) > spec.max_pre_mape:
        out.append(
            _warn(
                "geo_fit",
                (
                    f"the counterfactual misses the treatment geos by {d['pre_mape']:.1%} on "
                    f"average over the pre-period (above {spec.max_pre_mape:.0%}): the estimate "
                    "rests on a poor fit"
                ),
            )
        )
    if d.get("extrapolation", 0.0) > MAX_EXTRAPOLATION:
        out.append(
            _warn(
                "geo_extrapolation",
                (
                    f"in {d['extrapolation']:.0%} of the test periods the controls' total is "
                    "outside its pre-period range: the regression extrapolates"
                ),
            )
        )
    imbalance, outside = d.get("scaled_l2_imbalance", 0.0), d.get("outside_hull", 0.0)
    if imbalance > MAX_IMBALANCE or outside > 0.5:
        out.append(
            _warn(
                "geo_hull",
                (
                    "the treatment geos lie outside what a weighted average of the controls can "
                    f"follow (scaled imbalance {imbalance:.2f}, outside the controls' range in "
                    f"{outside:.0%} of pre-periods): consider demean: true or augment: ridge"
                ),
            )
        )
    if p_time is not None and p_time["p_value"] < spec.alpha:
        out.append(
            _warn(
                "geo_placebo_time",
                (
                    f"a placebo test period from {p_time['start']} (before the campaign) shows an "
                    f"effect (p = {p_time['p_value']:.3g}): the treatment and control geos drifted "
                    "apart before the test"
                ),
            )
        )
    out += [
        _warn("geo_convergence", f"the sampler: {note}; the posterior may be unreliable")
        for note in d.get("convergence_warnings", [])
    ]
    iroas, iroas_ci = d.get("iroas"), d.get("iroas_ci")
    if iroas is not None and iroas_ci is not None and not iroas_ci[0] <= iroas <= iroas_ci[1]:
        # trimmed match's randomization test chooses its own trim: with few pairs, or spend
        # differences near zero or negative, it can reject the published estimate itself
        out.append(
            _warn(
                "geo_estimate_outside_interval",
                (
                    f"the iROAS estimate {iroas:.3g} lies outside its {1 - spec.alpha:.0%} "
                    f"interval [{iroas_ci[0]:.3g}, {iroas_ci[1]:.3g}]: the test rejects the "
                    "point estimate itself (few pairs, or spend differences near zero or "
                    "negative); read the interval, not the estimate"
                ),
            )
        )
    if not (math.isfinite(fit.effect_ci[0]) and math.isfinite(fit.effect_ci[1])):
        out.append(
            _warn(
                "geo_interval",
                (
                    "the interval is unbounded or empty: too few periods for the permutation test "
                    "at this alpha, or no constant effect fits the test period"
                ),
            )
        )
    return out


def _warn(code: str, message: str) -> dict[str, str]:
    return {"code": code, "severity": "warning", "message": message}


@dataclass(frozen=True)
class GeoResult:
    """A geo experiment's results (results.json) for ``liftlab analyze``."""

    results: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.results

    def summary(self) -> str:
        r, g = self.results, self.results["geo"]
        level = f"{g['ci_level']:.0%}"
        lines = [
            f"{r['experiment']}: geo experiment ({g['method']}), {r['status']}, measured "
            f"{g['test_period'][0]} to {g['measured_until']}",
            f"  incremental {g['kpi']} {g['incremental']:+,.0f} ({level} CI "
            f"{g['incremental_ci'][0]:+,.0f} to {g['incremental_ci'][1]:+,.0f}), "
            f"p = {g['p_value']:.3g}",
        ]
        if g["lift_rel"] is not None and g["lift_rel_ci"] is not None:
            lines.append(
                f"  relative lift {g['lift_rel']:+.2%} ({level} CI "
                f"{g['lift_rel_ci'][0]:+.2%} to {g['lift_rel_ci'][1]:+.2%})"
            )
        if g["iroas"] is not None:
            lines.append(
                f"  iROAS {g['iroas']:.2f} ({level} CI {g['iroas_ci'][0]:.2f} to "
                f"{g['iroas_ci'][1]:.2f}) on a spend change of "
                f"{g['spend_change']:,.0f}"
            )
        lines += [f"  ! {w['message']}" for w in r["health"]["warnings"]]
        return "\n".join(lines)


def calibration_row(results: dict[str, Any]) -> dict[str, Any]:
    """A geo result as one lift test for media-mix calibration (pymc-marketing, Robyn,
    Meridian): the channel, the measured period, the incremental KPI with its standard
    error (the t interval's for TBR; for an interval without one, its half-width over the
    normal quantile of its level) and the spend change."""
    g, effect = results["geo"], results["effects"][0]
    return {
        "channel": effect["channel"],
        "start": g["test_period"][0],
        "end": g["measured_until"],
        "incremental": g["incremental"],
        "se": standard_error(g["se"], g["incremental_ci"], g["ci_level"]),
        "spend": g["spend_change"],
    }


def standard_error(se: float | None, ci: list[float | None], level: float) -> float | None:
    """``se`` when the interval is a t interval, else the interval's half-width over the
    normal quantile of its level (None when an end is unbounded)."""
    from scipy import stats

    lo, hi = ci
    if se is not None or lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return se
    return (hi - lo) / 2 / float(stats.norm.ppf(1 - (1 - level) / 2))


def check_data(spec: GeoExperiment, engine: Engine, yaml_file: Path) -> str:
    """``validate --data`` for a geo experiment: the table, its columns, one row per geo and
    date with numbers, every geo on every date and the named geos present; what was found."""
    frame = geo_frame(engine, spec.columns, spec.pre_period.start, spec.end)
    panel = build_panel(spec, frame, spec.end, str(yaml_file))
    treated, controls = _split(spec, panel, str(yaml_file))
    return (
        f"{len(panel.geos)} geos in {TABLE} ({len(treated)} treatment, {len(controls)} "
        f"control), {panel.n_pre} pre-period and {len(panel.dates) - panel.n_pre} test "
        "dates"
    )
