"""The page of a geo experiment: its result with intervals, observed vs counterfactual with
the band, the cumulative lift with its band, and the checks (fit, placebos)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from liftlab import __version__
from liftlab.report.charts import BLUE, GREY, LAYOUT, Chart, figure, hline, vline
from liftlab.report.format import interval, money, num, pct, pvalue, ratio
from liftlab.report.pages import ENV, _save

METHOD = {
    "tbr": "time-based regression (TBR)",
    "synthetic_control": "synthetic control",
    "trimmed_match": "trimmed match (matched pairs)",
    "bayesian_tbr": "Bayesian TBR (PyMC)",
}


def render_geo(
    r: dict[str, Any],
    folder: Path,
    assets: str = "assets",
    home: str = "index.html",
    results_json: str = "results.json",
) -> str:
    g, exp = r["geo"], r["experiment"]
    tables = f"tables/{exp}"
    effect = r["effects"][0]
    level = f"{g['ci_level']:.0%}"
    rows = [
        {
            "name": f"incremental {g['kpi']}",
            "value": money(g["incremental"], True),
            "ci": interval(g["incremental_ci"], "money"),
            "note": "what the campaign added in the treatment geos over the measured period",
        },
        {
            "name": "relative lift",
            "value": pct(g["lift_rel"]),
            "ci": interval(g["lift_rel_ci"]),
            "note": "against the treatment geos' "
            + ("counterfactual" if g["test_type"] == "heavy_up" else "observed total"),
        },
        {
            "name": "p-value",
            "value": pvalue(g["p_value"]),
            "ci": "",
            "note": "no effect (two-sided)",
        },
        {
            "name": "spend change",
            "value": money(g.get("spend_change")),
            "ci": "",
            "note": "taken as known",
        },
        {
            "name": "iROAS",
            "value": ratio(g.get("iroas")),
            "ci": interval(g.get("iroas_ci"), "ratio"),
            "note": f"incremental {g['kpi']} per € ",
        },
        {
            "name": "ROI",
            "value": ratio(effect.get("roi")),
            "ci": interval(effect.get("roi_ci"), "ratio"),
            "note": "(incremental margin - spend) / spend",
        },
    ]
    d = g["diagnostics"]
    pt, ps = g.get("placebo_in_time"), g.get("placebo_in_space") or {}
    checks = (
        []
        if g["method"] == "trimmed_match"
        else [
            {
                "name": "pre-period MAPE",
                "value": pct(d.get("pre_mape"), signed=False),
                "note": "average miss of the counterfactual before the test",
            },
            {
                "name": "pre-period R²",
                "value": num(d.get("pre_r2")),
                "note": "share of the pre-period variation the counterfactual follows",
            },
            {
                "name": "placebo in time",
                "value": "–" if pt is None else f"{pct(pt['lift_rel'])}, p {pvalue(pt['p_value'])}",
                "note": "none (pre-period too short)"
                if pt is None
                else f"the method on {pt['periods']} pre-period dates from {pt['start']}: "
                "should show nothing",
            },
            {
                "name": "placebo in space",
                "value": f"p {pvalue(ps.get('p_value'))}",
                "note": f"{ps.get('placebos', 0)} sets of control geos analysed as if treated: the "
                "share with an effect as large",
            },
        ]
    )
    if "trim_rate" in d:
        checks += [
            {
                "name": "pairs",
                "value": str(d["pairs"]),
                "note": "randomised matched pairs (treatment geo, its control geo)",
            },
            {
                "name": "trim rate",
                "value": pct(d["trim_rate"], signed=False),
                "note": "share of pairs trimmed at each end (the most extreme residuals)",
            },
        ]
    if "scaled_l2_imbalance" in d:
        checks.append(
            {
                "name": "scaled imbalance",
                "value": num(d["scaled_l2_imbalance"]),
                "note": "0 perfect pre-period match, 1 no better than equal weights",
            }
        )
    if d.get("augment") == "ridge":
        checks.append(
            {
                "name": "ridge augmentation",
                "value": f"lambda {d['ridge_lambda']:.3g}",
                "note": f"{d['ridge_lambda_rule']}; the weights may be negative",
            }
        )
    if "extrapolation" in d:
        checks.append(
            {
                "name": "extrapolation",
                "value": pct(d["extrapolation"], signed=False),
                "note": "test periods where the controls' total leaves its pre-period range",
            }
        )
    weights = ""
    if "weights" in d:
        pairs = sorted(zip(d["weights"], g["control_geos"], strict=True), reverse=True)[:6]
        weights = ", ".join(f"{geo} {w:.2f}" for w, geo in pairs if w >= 0.005)
    return ENV.get_template("geo.html.j2").render(
        title=r.get("name", exp),
        name=r.get("name", exp),
        assets=assets,
        home=home,
        version=__version__,
        status=r["status"],
        level=level,
        rows=rows,
        checks=checks,
        warnings=r["health"]["warnings"],
        inference=g["inference"],
        roi_note=effect.get("roi_note"),
        weights=weights,
        results_json=results_json,
        g={
            **g,
            "channel": effect["channel"],
            "method_label": METHOD[g["method"]],
            "n_treated": len(g["treatment_geos"]),
            "n_control": len(g["control_geos"]),
        },
        series=_save(series_chart(g, f"{exp}-geo-series"), folder, tables),
        cumulative=_save(cumulative_chart(g, f"{exp}-geo-cumulative"), folder, tables),
    )


def series_chart(g: dict[str, Any], key: str) -> Chart:
    s = g["series"]
    dates, n_pre = s["dates"], s["n_pre"]
    fig = figure()
    fig.add_trace(
        go.Scatter(
            x=dates + dates[::-1],
            y=s["band"][1] + s["band"][0][::-1],
            fill="toself",
            fillcolor="rgba(102,112,133,0.18)",
            line=dict(width=0),
            name=f"{g['ci_level']:.0%} band",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=dates,
            y=s["counterfactual"],
            name="counterfactual",
            line=dict(color=GREY, dash="dash"),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=dates, y=s["observed"], name="observed (treatment geos)", line=dict(color=BLUE)
        )
    )
    vline(fig, dates[n_pre], dict(color="#101828", dash="dot", width=1))
    fig.update_layout(
        **LAYOUT,
        height=380,
        title=f"{g['kpi']} of the treatment geos",
        legend=dict(orientation="h", y=-0.15),
    )
    table = pl.DataFrame(
        {
            "date": dates,
            "observed": s["observed"],
            "counterfactual": s["counterfactual"],
            "band_low": s["band"][0],
            "band_high": s["band"][1],
            "period": ["pre"] * n_pre + ["test"] * (len(dates) - n_pre),
        }
    )
    return Chart(key, "Observed vs counterfactual", fig, table)


def cumulative_chart(g: dict[str, Any], key: str) -> Chart:
    s = g["series"]
    dates = s["dates"][s["n_pre"] :]
    lo, hi = s["cumulative_ci"]
    keep = [i for i, v in enumerate(lo) if v is not None and hi[i] is not None]
    fig = figure()
    fig.add_trace(
        go.Scatter(
            x=[dates[i] for i in keep],
            y=[(lo[i] + hi[i]) / 2 for i in keep],
            mode="markers",
            marker=dict(size=1, color=GREY),
            name=f"{g['ci_level']:.0%} CI",
            showlegend=True,
            error_y=dict(
                type="data",
                symmetric=True,
                array=[(hi[i] - lo[i]) / 2 for i in keep],
                color=GREY,
                width=4,
            ),
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(x=dates, y=s["cumulative"], name="cumulative incremental", line=dict(color=BLUE))
    )
    hline(fig, 0, dict(color="#101828", width=1))
    fig.update_layout(
        **LAYOUT,
        height=340,
        title=f"Cumulative incremental {g['kpi']}",
        legend=dict(orientation="h", y=-0.15),
    )
    table = pl.DataFrame(
        {"date": dates, "cumulative": s["cumulative"], "ci_low": lo, "ci_high": hi},
        schema={
            "date": pl.String,
            "cumulative": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
        },
    )
    return Chart(key, "Cumulative lift", fig, table)
