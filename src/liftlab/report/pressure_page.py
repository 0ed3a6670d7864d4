"""The contact-pressure section of an experiment page (``design: dose_response``): per
segment, the margin and value curves with their bands and the optimum marked, the fatigue
curve next to them, and a table of recommended frequencies."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from liftlab.report.charts import (
    BLUE,
    GREEN,
    LAYOUT,
    RED,
    Chart,
    cell_vline,
    cell_vrect,
    figure,
)
from liftlab.report.format import money, pct

ALL = "overall"


def _all_groups(p: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The whole population, then each value of each segment dimension ("dimension: value")."""
    return [
        (ALL, p["overall"]),
        *(
            (f"{dim}: {v}", g)
            for dim, values in p["segments"].items()
            for v, g in sorted(values.items())
        ),
    ]


def _groups(p: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The whole population, then each segment value with a fitted curve."""
    return [(name, g) for name, g in _all_groups(p) if g["curve"]]


def curves(p: dict[str, Any], key: str) -> Chart:
    """One row per group: margin and value per unit against frequency (bands: the
    posterior's 95% interval; points: each arm's mean with its interval), the optimum and its
    interval shaded; fatigue probability on the right."""
    groups = _groups(p)
    unit = p["frequency_unit"].replace("_", " ")
    titles = [
        t
        for g, _ in groups
        for t in (f"{g}: margin and value per unit", f"{g}: {p.get('fatigue_metric') or 'fatigue'}")
    ]
    height = 300 * len(groups) + 90
    fig = make_subplots(
        figure=figure(),
        rows=len(groups),
        cols=2,
        subplot_titles=titles,
        column_widths=[0.62, 0.38],
        vertical_spacing=min(0.3, 70 / height),
    )
    rows: list[dict[str, Any]] = []
    for i, (name, g) in enumerate(groups, start=1):
        c = g["curve"]
        f = c["frequency"]
        first = i == 1
        _band(fig, f, c["margin"], BLUE, p["value_definition"].split(" ")[0], i, 1, first)
        _band(fig, f, c["value"], GREEN, "value (margin − cost − lost opt-ins)", i, 1, first)
        arms = [a for a in g["arms"] if "metrics" in a]
        primary = next(iter(arms[0]["metrics"])) if arms else None
        if primary is not None:
            _observed(
                fig, arms, primary, BLUE, "arm mean (observed)", "obs", "%{y:,.3f}", (i, 1), first
            )
        if c["fatigue"] is not None:
            _band(fig, f, c["fatigue"], RED, "fatigue probability", i, 2, first)
            fatigue = p.get("fatigue_metric")
            if fatigue:
                _observed(
                    fig,
                    arms,
                    fatigue,
                    RED,
                    "arm rate (observed)",
                    "obs-f",
                    "%{y:.3%}",
                    (i, 2),
                    first,
                )
        if g["optimum"] is not None:
            lo, hi = g["optimum_ci"]
            # the cells holding data: the curves (left), the fatigue band when fitted (right)
            for col in (1, 2) if c["fatigue"] is not None else (1,):
                n = 2 * (i - 1) + col
                cell_vrect(fig, lo, hi, n, fillcolor=GREEN, opacity=0.08, line_width=0)
                cell_vline(fig, g["optimum"], dict(color=GREEN, dash="dash"), n)
        if i == len(groups):
            fig.update_xaxes(title_text=f"contacts {unit}", row=i, col=1)
            fig.update_xaxes(title_text=f"contacts {unit}", row=i, col=2)
        fig.update_yaxes(tickformat=".1%", row=i, col=2)
        for j, x in enumerate(f):
            rows.append(
                {
                    "group": name,
                    "frequency": x,
                    **{
                        f"{k}_{s}": (c[k][s][j] if c[k] is not None else None)
                        for k in ("margin", "value", "fatigue")
                        for s in ("mean", "lo", "hi")
                    },
                }
            )
    layout = {**LAYOUT, "margin": dict(l=10, r=20, t=90, b=40)}
    fig.update_layout(
        **layout,
        height=height,
        legend=dict(orientation="h", y=1 + 45 / height, yanchor="bottom", x=0, xanchor="left"),
    )
    return Chart(key, "Dose-response curves", fig, pl.DataFrame(rows))


def _observed(
    fig: go.Figure,
    arms: list[dict[str, Any]],
    metric: str,
    colour: str,
    name: str,
    group: str,
    y_format: str,
    cell: tuple[int, int],
    legend: bool,
) -> None:
    """Each arm's observed mean of ``metric`` at its frequency, as markers in one panel."""
    fig.add_trace(
        go.Scatter(
            x=[a["frequency"] for a in arms],
            y=[a["metrics"][metric]["mean"] for a in arms],
            mode="markers",
            marker=dict(color=colour, size=8),
            name=name,
            legendgroup=group,
            showlegend=legend,
            hovertemplate=f"%{{x}} sends: {y_format}<extra></extra>",
        ),
        row=cell[0],
        col=cell[1],
    )


def _band(
    fig: go.Figure,
    x: list[float],
    band: dict[str, list[float]],
    colour: str,
    name: str,
    row: int,
    col: int,
    legend: bool,
) -> None:
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=band["hi"] + band["lo"][::-1],
            fill="toself",
            fillcolor=colour,
            opacity=0.18,
            line=dict(width=0),
            hoverinfo="skip",
            name=f"{name}: 95% band",
            showlegend=False,
            legendgroup=name,
        ),
        row=row,
        col=col,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=band["mean"],
            mode="lines",
            line=dict(color=colour),
            name=name,
            legendgroup=name,
            showlegend=legend,
            hovertemplate="%{x:.2f}: %{y:,.4g}<extra></extra>",
        ),
        row=row,
        col=col,
    )


def recommendations(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The table of recommended frequencies, one row per group."""
    out = []
    for name, g in _all_groups(p):
        gain = g.get("gain_over_current")
        plan = g.get("planning")
        cap = g.get("touch_cap")
        out.append(
            {
                "group": name,
                "optimum": "no optimum" if g["optimum"] is None else f"{g['optimum']:.2f}",
                "ci": ""
                if g["optimum_ci"] is None
                else f"[{g['optimum_ci'][0]:.2f}, {g['optimum_ci'][1]:.2f}]",
                "gain": "–"
                if not gain
                else f"{money(gain['mean'], True)} "
                f"[{money(gain['ci'][0], True)}, {money(gain['ci'][1], True)}]",
                "pays": "–" if not gain else pct(gain["prob_pays"], signed=False),
                "cap": "–"
                if not cap
                else f"{cap['cap']:.2f} [{cap['cap_ci'][0]:.2f}, {cap['cap_ci'][1]:.2f}]",
                "plan": "–" if not plan else _plan(plan),
                "plan_now": "" if not plan else f"now {pct(plan['prob_now'], signed=False)}",
                "note": g.get("note") or "",
            }
        )
    return out


def _plan(plan: dict[str, Any]) -> str:
    """Units per arm at today's weeks, or weeks at today's units per arm."""
    units = (
        f"{plan['units_per_arm']:,}/arm × {plan['weeks_now']:.0f} wk"
        if plan["units_per_arm"] is not None
        else "over 1000× today's units"
    )
    weeks = (
        f"{plan['weeks']:.1f} wk × {plan['units_per_arm_now']:,.0f}/arm"
        if plan["weeks"] is not None
        else "over 10× today's weeks"
    )
    return f"{units}, or {weeks}"


def arm_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole population's readout per arm: contacts, touches over every channel, the
    primary metric, the fatigue rate, the value against the holdout arm and the next send."""
    fatigue = p.get("fatigue_metric")
    out = []
    for a in p["overall"]["arms"]:
        if "metrics" not in a:
            continue
        primary = next(iter(a["metrics"]))
        value, step = a["value"], a.get("next_send")
        out.append(
            {
                "arm": a["arm"],
                "frequency": f"{a['frequency']:g}",
                "n": f"{a['n']:,}",
                "received": f"{a['received_per_frequency_unit']:.2f}",
                "touches": "–"
                if a.get("touches_per_frequency_unit") is None
                else f"{a['touches_per_frequency_unit']:.2f}",
                "primary": money(a["metrics"][primary]["mean"]),
                "fatigue": "–" if not fatigue else pct(a["metrics"][fatigue]["mean"], signed=False),
                "value": money(value["mean"]),
                "value_lift": ""
                if "lift_abs" not in value
                else f"{money(value['lift_abs'], True)} [{money(value['lift_abs_ci'][0], True)}, "
                f"{money(value['lift_abs_ci'][1], True)}]",
                "next": ""
                if not step
                else f"{money(step['per_send'], True)} "
                f"[{money(step['ci'][0], True)}, {money(step['ci'][1], True)}]",
            }
        )
    return out
