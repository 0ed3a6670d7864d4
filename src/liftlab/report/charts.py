"""Plotly figures of the pages. Each chart also returns the tidy table behind it (written as
CSV next to the page). Div ids are deterministic so a rerun writes identical bytes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import polars as pl

from liftlab.report.format import segment_label

GREEN, RED, GREY, BLUE = "#1b7f3b", "#b42318", "#667085", "#1f5fbf"
VERDICT_COLOUR = {"desired": GREEN, "undesired": RED, "inconclusive": GREY}
LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=20, t=50, b=40),
              font=dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=13),
              hoverlabel=dict(namelength=-1))


@dataclass(frozen=True)
class Chart:
    """A figure, its deterministic id, and the data behind it."""

    key: str
    title: str
    figure: go.Figure
    table: pl.DataFrame

    def html(self) -> str:
        return self.figure.to_html(full_html=False, include_plotlyjs=False, div_id=self.key,
                                   config={"displaylogo": False, "responsive": True})


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _arm(e: dict[str, Any]) -> str:
    return e["channel"] + (f" / {e['variant']}" if e.get("variant") else "")


def forest(effects: list[dict[str, Any]], metric: str, key: str) -> Chart:
    """Relative lift with its CI per comparison, on a shared zero line."""
    rows = [e for e in effects if e["metric"] == metric and e["segment"] is None
            and _finite(e.get("lift_rel"))]
    labels = [_arm(e) for e in rows]
    fig = go.Figure()
    for verdict, colour in VERDICT_COLOUR.items():
        sub = [e for e in rows if e["verdict"] == verdict]
        if not sub:
            continue
        fig.add_trace(go.Scatter(
            x=[e["lift_rel"] * 100 for e in sub], y=[_arm(e) for e in sub], mode="markers",
            name=verdict, marker=dict(color=colour, size=11,
                                      symbol={"desired": "triangle-up", "undesired":
                                              "triangle-down"}.get(verdict, "circle")),
            error_x=dict(type="data", symmetric=False,
                         array=[(e["lift_rel_ci"][1] - e["lift_rel"]) * 100 for e in sub],
                         arrayminus=[(e["lift_rel"] - e["lift_rel_ci"][0]) * 100 for e in sub]),
            customdata=[[e["n_treatment"], e["n_holdout"], e["p_value"]] for e in sub],
            hovertemplate="%{y}: %{x:+.2f}%<br>n = %{customdata[0]:,} vs %{customdata[1]:,}"
                          "<br>p = %{customdata[2]:.4f}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, title=f"Relative lift of {metric} vs holdout (95% CI)",
                      height=140 + 45 * max(len(labels), 1), showlegend=True,
                      xaxis_title="relative lift (%)", yaxis_title="channel / arm")
    table = pl.DataFrame({
        "comparison": labels, "lift_rel": [e["lift_rel"] for e in rows],
        "lift_rel_lo": [e["lift_rel_ci"][0] for e in rows],
        "lift_rel_hi": [e["lift_rel_ci"][1] for e in rows],
        "p_value": [e["p_value"] for e in rows], "verdict": [e["verdict"] for e in rows]},
        schema={"comparison": pl.String, "lift_rel": pl.Float64, "lift_rel_lo": pl.Float64,
                "lift_rel_hi": pl.Float64, "p_value": pl.Float64, "verdict": pl.String})
    return Chart(key, f"Forest plot: {metric}", fig, table)


def segments(effects: list[dict[str, Any]], metric: str, key: str) -> Chart:
    """Small multiples: the lift per segment value for each comparison, with n shown."""
    rows = [e for e in effects if e["metric"] == metric and e["segment"] is not None
            and _finite(e.get("lift_abs"))]
    fig = go.Figure()
    for comp in sorted({_arm(e) for e in rows}):
        sub = [e for e in rows if _arm(e) == comp]
        fig.add_trace(go.Scatter(
            x=[e["lift_abs"] for e in sub],
            y=[f"{segment_label(e['segment'])} (n={e['n_treatment'] + e['n_holdout']:,})"
               for e in sub],
            mode="markers", name=comp,
            error_x=dict(type="data", symmetric=False,
                         array=[e["lift_abs_ci"][1] - e["lift_abs"] for e in sub],
                         arrayminus=[e["lift_abs"] - e["lift_abs_ci"][0] for e in sub]),
            hovertemplate="%{y}<br>lift %{x:+.4g}<extra>" + comp + "</extra>"))
    fig.add_vline(x=0, line=dict(color="#101828", width=1))
    n_rows = len({segment_label(e["segment"]) for e in rows})
    fig.update_layout(**LAYOUT, title=f"Absolute lift of {metric} by segment (95% CI)",
                      height=160 + 28 * max(n_rows, 1), xaxis_title=f"lift in {metric} per unit",
                      yaxis_title="segment (units)")
    table = pl.DataFrame({
        "comparison": [_arm(e) for e in rows],
        "segment": [segment_label(e["segment"]) for e in rows],
        "n_treatment": [e["n_treatment"] for e in rows],
        "n_holdout": [e["n_holdout"] for e in rows],
        "lift_abs": [e["lift_abs"] for e in rows],
        "lift_abs_lo": [e["lift_abs_ci"][0] for e in rows],
        "lift_abs_hi": [e["lift_abs_ci"][1] for e in rows]},
        schema={"comparison": pl.String, "segment": pl.String, "n_treatment": pl.Int64,
                "n_holdout": pl.Int64, "lift_abs": pl.Float64, "lift_abs_lo": pl.Float64,
                "lift_abs_hi": pl.Float64})
    return Chart(key, f"Segments: {metric}", fig, table)


def timeline(seq: dict[str, Any], key: str) -> Chart | None:
    """Cumulative lift with the confidence-sequence band, the decision hour, and exposures."""
    rows = [r for r in seq.get("timeline", []) if _finite(r.get("estimate"))]
    if not rows:
        return None
    from plotly.subplots import make_subplots

    at = [r["at"] for r in rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32],
                        vertical_spacing=0.08)
    lo = [r["ci"][0] if _finite(r["ci"][0]) else None for r in rows]
    hi = [r["ci"][1] if _finite(r["ci"][1]) else None for r in rows]
    fig.add_trace(go.Scatter(x=at, y=hi, line=dict(width=0), showlegend=False,
                             hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(x=at, y=lo, fill="tonexty", fillcolor="rgba(31,95,191,0.18)",
                             line=dict(width=0), name="confidence sequence (always valid)",
                             hovertemplate="%{x}<br>bound %{y:.4g}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=at, y=[r["estimate"] for r in rows], name="cumulative lift",
                             line=dict(color=BLUE), hovertemplate="%{x}<br>lift %{y:.4g}"
                             "<extra></extra>"), row=1, col=1)
    fig.add_hline(y=0, line=dict(color="#101828", width=1), row=1, col=1)
    if seq.get("decided_at"):
        fig.add_vline(x=seq["decided_at"], line=dict(color=RED, dash="dash"))
        fig.add_annotation(x=seq["decided_at"], y=1, yref="y domain", showarrow=False,
                           text=f"decision: {seq.get('decision')}", xanchor="left")
    fig.add_trace(go.Scatter(x=at, y=[r.get("n_treatment") for r in rows], name="treatment",
                             line=dict(color=GREEN)), row=2, col=1)
    fig.add_trace(go.Scatter(x=at, y=[r.get("n_holdout") for r in rows], name="holdout",
                             line=dict(color=GREY)), row=2, col=1)
    fig.update_layout(**LAYOUT, height=520, title="Over time: cumulative lift and exposures")
    fig.update_yaxes(title_text="lift per unit", row=1, col=1)
    fig.update_yaxes(title_text="units counted", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    table = pl.DataFrame({"at": at, "estimate": [r["estimate"] for r in rows], "ci_lo": lo,
                          "ci_hi": hi, "n_treatment": [r.get("n_treatment") for r in rows],
                          "n_holdout": [r.get("n_holdout") for r in rows],
                          "decision": [r.get("decision") for r in rows]},
                         strict=False)
    return Chart(key, "Over time", fig, table)


def money(effects: list[dict[str, Any]], primary: str, key: str) -> Chart | None:
    """Incremental revenue, cost and net return per channel (a waterfall)."""
    rows = [e for e in effects if e["metric"] == primary and e["segment"] is None
            and _finite(e.get("incremental_total"))]
    if not rows:
        return None
    x, y, measure = [], [], []
    for e in rows:
        x += [f"{_arm(e)}: increment", f"{_arm(e)}: cost"]
        y += [e["incremental_total"], -(e.get("cost") or 0.0)]
        measure += ["relative", "relative"]
    x.append("net")
    y.append(0.0)
    measure.append("total")
    fig = go.Figure(go.Waterfall(x=x, y=y, measure=measure,
                                 increasing=dict(marker=dict(color=GREEN)),
                                 decreasing=dict(marker=dict(color=RED)),
                                 totals=dict(marker=dict(color=BLUE)),
                                 hovertemplate="%{x}<br>€ %{y:,.0f}<extra></extra>"))
    fig.update_layout(**LAYOUT, height=420, title=f"Incremental {primary} minus cost (€)",
                      yaxis_title="€", xaxis_title="channel")
    table = pl.DataFrame({"item": x, "eur": y, "measure": measure})
    return Chart(key, "Money", fig, table)


def landing(rows: list[dict[str, Any]], key: str) -> Chart | None:
    """Where each channel's increment was bought, next to what last-touch would credit."""
    rows = [r for r in rows if _finite(r.get("incremental_revenue"))]
    if not rows:
        return None
    fig = go.Figure()
    for ch in sorted({r["channel"] for r in rows}):
        sub = [r for r in rows if r["channel"] == ch]
        fig.add_trace(go.Bar(x=[r["purchase_channel"] for r in sub],
                             y=[r["incremental_revenue"] for r in sub], name=f"{ch} increment",
                             error_y=dict(type="data", symmetric=False,
                                          array=[r["ci"][1] - r["incremental_revenue"]
                                                 for r in sub],
                                          arrayminus=[r["incremental_revenue"] - r["ci"][0]
                                                      for r in sub]),
                             hovertemplate="%{x}: € %{y:,.0f}<extra>" + ch + "</extra>"))
    fig.update_layout(**LAYOUT, barmode="group", height=400,
                      title="Where the increment landed (purchase channel)",
                      xaxis_title="purchase channel", yaxis_title="incremental revenue (€)")
    table = pl.DataFrame(rows, strict=False).select(
        "channel", "purchase_channel", "incremental_revenue")
    return Chart(key, "Landing", fig, table)


def appetence_heatmap(rows: list[dict[str, Any]], key: str) -> Chart | None:
    """Segment x channel usage share: the channel-appetence map."""
    if not rows:
        return None
    segs = sorted({r["segment"] for r in rows})
    chans = sorted({r["channel"] for r in rows})
    share = {(r["segment"], r["channel"]): r["share"] for r in rows}
    z = [[share.get((s, c), 0.0) * 100 for c in chans] for s in segs]
    fig = go.Figure(go.Heatmap(z=z, x=chans, y=segs, colorscale="Blues", zmin=0,
                               colorbar=dict(title="% of clients"),
                               text=[[f"{v:.0f}%" for v in row] for row in z],
                               texttemplate="%{text}",
                               hovertemplate="%{y} · %{x}: %{z:.1f}% of clients<extra></extra>"))
    fig.update_layout(**LAYOUT, height=160 + 40 * len(segs),
                      title="Channel appetence: share of clients using each channel",
                      xaxis_title="channel", yaxis_title="segment")
    return Chart(key, "Appetence", fig, pl.DataFrame(rows))


def premium_estimates(mc: dict[str, Any], key: str) -> Chart:
    """Naive vs adjusted vs instrumented multichannel premium, with CIs."""
    names = ["naive", *[f"adjusted: {k}" for k in mc.get("adjusted", {})]]
    values = [mc["naive_ratio"], *[v["ratio"] for v in mc.get("adjusted", {}).values()]]
    cis = [mc.get("naive_ratio_ci"), *[v["ci"] for v in mc.get("adjusted", {}).values()]]
    fig = go.Figure(go.Scatter(
        x=values, y=names, mode="markers", marker=dict(size=12, color=BLUE),
        error_x=dict(type="data", symmetric=False,
                     array=[c[1] - v for v, c in zip(values, cis, strict=True)],
                     arrayminus=[v - c[0] for v, c in zip(values, cis, strict=True)]),
        hovertemplate="%{y}: %{x:.3f}x<extra></extra>"))
    fig.add_vline(x=1, line=dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, height=320, title="Value of a multichannel client / "
                      "single-channel client (95% CI)", xaxis_title="ratio",
                      yaxis_title="estimate")
    return Chart(key, "Premium", fig, pl.DataFrame({"estimate": names, "ratio": values,
                                                    "ci_lo": [c[0] for c in cis],
                                                    "ci_hi": [c[1] for c in cis]}))


def decomposition(mc: dict[str, Any], key: str) -> Chart:
    parts = list(mc["decomposition"])
    values = [mc["decomposition"][p] for p in parts]
    cis = [mc.get("decomposition_ci", {}).get(p, [v, v]) for p, v in zip(parts, values,
                                                                          strict=True)]
    fig = go.Figure(go.Bar(x=parts, y=values, marker_color=BLUE,
                           error_y=dict(type="data", symmetric=False,
                                        array=[c[1] - v for v, c in zip(values, cis,
                                                                        strict=True)],
                                        arrayminus=[v - c[0] for v, c in zip(values, cis,
                                                                             strict=True)]),
                           hovertemplate="%{x}: %{y:.3f}x<extra></extra>"))
    fig.add_hline(y=1, line=dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, height=340, title="Naive premium = retention x frequency x "
                      "basket", xaxis_title="factor", yaxis_title="multi / single ratio")
    return Chart(key, "Decomposition", fig, pl.DataFrame({"factor": parts, "ratio": values}))
