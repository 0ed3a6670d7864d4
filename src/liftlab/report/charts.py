"""Plotly figures of the pages. Each chart also returns the tidy table behind it (written as
CSV next to the page). Div ids are deterministic so a rerun writes identical bytes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import polars as pl

from liftlab.report.format import rel_floor, segment_label

GREEN, RED, GREY, BLUE = "#1b7f3b", "#b42318", "#667085", "#1f5fbf"
PALETTE = ("#1f5fbf", "#e07b00", "#6941c6", "#0e9384", "#c11574", "#667085")
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
                         array=[_gap(e.get("lift_rel_ci"), 1, e["lift_rel"]) * 100 for e in sub],
                         arrayminus=[_gap(_floored(e.get("lift_rel_ci"), e), 0,
                                          e["lift_rel"]) * 100 for e in sub]),
            customdata=[[e["n_treatment"], e["n_holdout"], e["p_value"]] for e in sub],
            hovertemplate="%{y}: %{x:+.2f}%<br>n = %{customdata[0]:,} vs %{customdata[1]:,}"
                          "<br>p = %{customdata[2]:.4f}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, title=f"Relative lift of {metric} vs holdout (95% CI)",
                      height=140 + 45 * max(len(labels), 1), showlegend=True,
                      xaxis_title="relative lift (%)", yaxis_title="channel / arm")
    table = pl.DataFrame({
        "comparison": labels, "lift_rel": [e["lift_rel"] for e in rows],
        "lift_rel_lo": [(e.get("lift_rel_ci") or [None, None])[0] for e in rows],
        "lift_rel_hi": [(e.get("lift_rel_ci") or [None, None])[1] for e in rows],
        "p_value": [e["p_value"] for e in rows], "verdict": [e["verdict"] for e in rows]},
        schema={"comparison": pl.String, "lift_rel": pl.Float64, "lift_rel_lo": pl.Float64,
                "lift_rel_hi": pl.Float64, "p_value": pl.Float64, "verdict": pl.String})
    return Chart(key, f"Forest plot: {metric}", fig, table)


def posteriors(effects: list[dict[str, Any]], key: str) -> Chart | None:
    """Posterior mean relative lift with its 95% HDI, labelled with P(lift > 0)."""
    rows = [e for e in effects if e["segment"] is None and _finite((e.get("bayes") or {})
                                                                   .get("mean_rel"))]
    if not rows:
        return None
    labels = [f"{e['metric']} · {_arm(e)}" for e in rows]
    means = [e["bayes"]["mean_rel"] * 100 for e in rows]
    raw = [e["bayes"].get("hdi_rel") or [None, None] for e in rows]
    hdi = [_floored(h, e) for h, e in zip(raw, rows, strict=True)]
    prob = [e["bayes"].get("prob_positive") for e in rows]
    fig = go.Figure(go.Scatter(
        x=means, y=labels, mode="markers+text", marker=dict(color=BLUE, size=10),
        text=[f"P(>0) {p:.0%}" if _finite(p) else "" for p in prob], textposition="top center",
        error_x=dict(type="data", symmetric=False,
                     array=[_gap(h, 1, m / 100) * 100 for h, m in zip(hdi, means, strict=True)],
                     arrayminus=[_gap(h, 0, m / 100) * 100
                                 for h, m in zip(hdi, means, strict=True)]),
        customdata=[[p if _finite(p) else float("nan")] for p in prob],
        hovertemplate="%{y}: %{x:+.2f}%<br>P(lift > 0) = %{customdata[0]:.4f}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, title="Posterior relative lift (mean, 95% HDI)",
                      height=150 + 40 * len(rows), xaxis_title="relative lift (%)",
                      yaxis_title="metric · comparison", showlegend=False)
    table = pl.DataFrame({"comparison": labels, "mean_rel": [m / 100 for m in means],
                          "hdi_lo": [h[0] for h in raw], "hdi_hi": [h[1] for h in raw],
                          "prob_positive": prob},
                         schema={"comparison": pl.String, "mean_rel": pl.Float64,
                                 "hdi_lo": pl.Float64, "hdi_hi": pl.Float64,
                                 "prob_positive": pl.Float64})
    return Chart(key, "Posteriors", fig, table)


def segments(effects: list[dict[str, Any]], metric: str, dimension: str, key: str) -> Chart:
    """The lift per value of one segment dimension for each comparison, with n shown, so
    that the noise of small segments is obvious."""
    rows = [e for e in effects if e["metric"] == metric and e["segment"] is not None
            and list(e["segment"]) == [dimension] and _finite(e.get("lift_abs"))]
    fig = go.Figure()
    for comp in sorted({_arm(e) for e in rows}):
        sub = [e for e in rows if _arm(e) == comp]
        fig.add_trace(go.Scatter(
            x=[e["lift_abs"] for e in sub],
            y=[f"{e['segment'][dimension]} (n={e['n_treatment'] + e['n_holdout']:,})"
               for e in sub],
            mode="markers", name=comp,
            error_x=dict(type="data", symmetric=False,
                         array=[_gap(e.get("lift_abs_ci"), 1, e["lift_abs"]) for e in sub],
                         arrayminus=[_gap(e.get("lift_abs_ci"), 0, e["lift_abs"]) for e in sub]),
            hovertemplate="%{y}<br>lift %{x:+.4g}<extra>" + comp + "</extra>"))
    fig.add_vline(x=0, line=dict(color="#101828", width=1))
    n_rows = len({e["segment"][dimension] for e in rows})
    fig.update_layout(**LAYOUT, title=f"Absolute lift of {metric} by {dimension} (95% CI)",
                      height=170 + 34 * max(n_rows, 1), xaxis_title=f"lift in {metric} per unit",
                      yaxis_title=f"{dimension} (units in both arms)")
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
    return Chart(key, f"Segments: {metric} by {dimension}", fig, table)


def timeline(seq: dict[str, Any], metric: str, variant: str | None, key: str) -> Chart | None:
    """Cumulative lift of one metric (and variant) per channel, each with its own
    confidence-sequence band and legend group, the hour each channel's decision was reached,
    and the cumulative units per arm (the split made visible)."""
    rows = [r for r in seq.get("timeline", []) if r.get("metric") == metric
            and r.get("variant") == variant and _finite(r.get("estimate"))]
    if not rows:
        return None
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32],
                        vertical_spacing=0.08)
    channels = list(dict.fromkeys(r.get("channel") or "" for r in rows))
    settled: list[float | None] = []
    for n, channel in enumerate(channels):
        sub = sorted((r for r in rows if (r.get("channel") or "") == channel),
                     key=lambda r: r["at"])
        settled += _channel_traces(fig, sub, channel, PALETTE[n % len(PALETTE)])
        _decision_marker(fig, seq, sub, channel, metric, variant, n)
    fig.add_hline(y=0, line=dict(color="#101828", width=1), row=1, col=1,
                  annotation_text="decision boundary: band clear of 0",
                  annotation_position="bottom left")
    fig.update_layout(**LAYOUT, height=560, legend=dict(orientation="h", y=-0.18),
                      title=f"{metric}{f' / {variant}' if variant else ''}: cumulative lift "
                      "per channel and units per arm")
    fig.update_yaxes(title=dict(text=f"cumulative lift, {metric} per unit<br>"
                                "(within the response window)", font=dict(size=11)),
                     row=1, col=1, range=_settled_range(settled))
    fig.update_yaxes(title_text="units (cumulative)", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    table = pl.DataFrame({
        "channel": [r.get("channel") for r in rows], "at": [r["at"] for r in rows],
        "estimate": [r["estimate"] for r in rows],
        "ci_lo": [_or_none(r["ci"][0]) for r in rows], "ci_hi": [_or_none(r["ci"][1])
                                                                 for r in rows],
        "p_value": [r.get("p_value") for r in rows],
        "n_treatment": [r.get("n_treatment") for r in rows],
        "n_holdout": [r.get("n_holdout") for r in rows],
        "decision": [r.get("decision") for r in rows]}, strict=False)
    return Chart(key, "Over time", fig, table)


def _or_none(x: Any) -> float | None:
    return x if _finite(x) else None


def _channel_traces(fig: go.Figure, rows: list[dict[str, Any]], channel: str,
                    colour: str) -> list[float | None]:
    """One channel's band, lift line and units per arm, in one legend group; returns the band
    values once the first tenth of the looks is past (for the y-range)."""
    at = [r["at"] for r in rows]
    lo = [_or_none(r["ci"][0]) for r in rows]
    hi = [_or_none(r["ci"][1]) for r in rows]
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    group = dict(legendgroup=channel, legendgrouptitle_text=channel or None)
    fig.add_trace(go.Scatter(x=at, y=hi, line=dict(width=0), showlegend=False,
                             legendgroup=channel,
                             hovertemplate="%{x}<br>upper bound %{y:.4g}<extra>" + channel
                             + "</extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=at, y=lo, fill="tonexty",
                             fillcolor=f"rgba({red},{green},{blue},0.15)", line=dict(width=0),
                             name="95% confidence sequence", **group,
                             hovertemplate="%{x}<br>lower bound %{y:.4g}<extra>" + channel
                             + "</extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=at, y=[r["estimate"] for r in rows], name="cumulative lift",
                             line=dict(color=colour), customdata=[r.get("p_value")
                                                                  for r in rows], **group,
                             hovertemplate="%{x}<br>lift %{y:.4g}<br>always-valid p "
                             "%{customdata:.4f}<extra>" + channel + "</extra>"), row=1, col=1)
    for arm, dash in (("treatment", "solid"), ("holdout", "dot")):
        fig.add_trace(go.Scatter(x=at, y=[r.get(f"n_{arm}") for r in rows],
                                 name=f"units, {arm}", line=dict(color=colour, dash=dash),
                                 **group, hovertemplate="%{x}<br>" + arm + ": %{y:,} units"
                                 "<extra>" + channel + "</extra>"), row=2, col=1)
    skip = len(rows) // 10
    return [*lo[skip:], *hi[skip:]]


def _decision_marker(fig: go.Figure, seq: dict[str, Any], rows: list[dict[str, Any]],
                     channel: str, metric: str, variant: str | None, n: int) -> None:
    """A dashed line at the hour the channel's decision was reached; a decision reached
    before the first plotted look is drawn at that look and says so."""
    comps = [c for c in seq.get("comparisons") or [] if c.get("metric") == metric
             and c.get("variant") == variant and (c.get("channel") or "") == channel]
    decided_at = comps[0].get("decided_at") if comps else seq.get("decided_at")
    decision = comps[0].get("decision") if comps else seq.get("decision")
    if not decided_at:
        return
    first = rows[0]["at"]
    x = max(decided_at, first)
    text = f"{channel + ': ' if channel else ''}{decision} ({decided_at}"
    text += ", before the first plotted look)" if decided_at < first else ")"
    fig.add_vline(x=x, line=dict(color=RED, dash="dash"))
    fig.add_annotation(x=x, y=1 - 0.09 * n, yref="y domain", showarrow=False, text=text,
                       xanchor="left", bgcolor="rgba(255,255,255,0.8)")


def money(effects: list[dict[str, Any]], primary: str, key: str) -> Chart | None:
    """Per channel: incremental margin (revenue when no margin), minus contact cost, to the
    net return of all channels together (a waterfall)."""
    rows = [e for e in effects if e["metric"] == primary and e["segment"] is None
            and _finite(e.get("incremental_total"))]
    if not rows:
        return None
    x, y, measure = [], [], []
    for e in rows:
        margin = e.get("incremental_margin")
        gain = margin if _finite(margin) else e["incremental_total"]
        x += [f"{_arm(e)}: {'margin' if _finite(margin) else primary}", f"{_arm(e)}: cost"]
        y += [gain, -(e.get("cost") or 0.0)]
        measure += ["relative", "relative"]
    x.append("net return")
    y.append(0.0)
    measure.append("total")
    fig = go.Figure(go.Waterfall(x=x, y=y, measure=measure,
                                 increasing=dict(marker=dict(color=GREEN)),
                                 decreasing=dict(marker=dict(color=RED)),
                                 totals=dict(marker=dict(color=BLUE)),
                                 hovertemplate="%{x}<br>€ %{y:,.2f}<extra></extra>"))
    fig.update_layout(**LAYOUT, height=420, title="Incremental margin minus contact cost, "
                      "per channel (€, whole experiment)",
                      yaxis_title="€ (incremental)", xaxis_title="channel: component")
    table = pl.DataFrame({"item": x, "eur": y, "measure": measure})
    return Chart(key, "Money", fig, table)


def portfolio(items: list[dict[str, Any]], key: str) -> Chart | None:
    """Across experiments: incremental revenue (left) and ROI (right) by channel."""
    items = [i for i in items if _finite(i.get("incremental_total"))]
    if not items:
        return None
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "Incremental revenue (€)", "ROI (net return per € spent)"))
    for n, exp in enumerate(sorted({i["experiment"] for i in items})):
        sub = [i for i in items if i["experiment"] == exp]
        colour = PALETTE[n % len(PALETTE)]
        fig.add_trace(go.Bar(x=[i["channel"] for i in sub], y=[i["incremental_total"]
                                                               for i in sub],
                             name=exp, legendgroup=exp, marker_color=colour,
                             hovertemplate="%{x}: € %{y:,.0f}<extra>" + exp + "</extra>"),
                      row=1, col=1)
        roi = [i for i in sub if _finite(i.get("roi"))]
        fig.add_trace(go.Bar(
            x=[i["channel"] for i in roi], y=[i["roi"] for i in roi], name=exp,
            legendgroup=exp, showlegend=False, marker_color=colour,
            error_y=dict(type="data", symmetric=False,
                         array=[_gap(i.get("roi_ci"), 1, i["roi"]) for i in roi],
                         arrayminus=[_gap(i.get("roi_ci"), 0, i["roi"]) for i in roi]),
            hovertemplate="%{x}: ROI %{y:,.2f}<extra>" + exp + "</extra>"), row=1, col=2)
    fig.update_layout(**LAYOUT, barmode="group", height=400,
                      title="Portfolio: what each channel returned across experiments")
    fig.update_xaxes(title_text="channel")
    fig.update_yaxes(title_text="€ (incremental, whole experiment)", row=1, col=1)
    fig.update_yaxes(title_text="ROI (×, 95% CI)", row=1, col=2)
    table = pl.DataFrame(
        {"experiment": [i["experiment"] for i in items], "channel": [i["channel"] for i in items],
         "incremental_total": [i["incremental_total"] for i in items],
         "cost": [i.get("cost") for i in items], "roi": [i.get("roi") for i in items]},
        schema={"experiment": pl.String, "channel": pl.String, "incremental_total": pl.Float64,
                "cost": pl.Float64, "roi": pl.Float64})
    return Chart(key, "Portfolio", fig, table)


def _settled_range(values: list[float | None]) -> list[float] | None:
    """The y-range of the bands once the first tenth of the looks is past: the first hours'
    very wide intervals would otherwise flatten the rest of the chart (they are still drawn,
    clipped, and in the CSV)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    lo, hi = min(*vals, 0.0), max(*vals, 0.0)
    pad = 0.08 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def _floored(ci: Any, e: dict[str, Any]) -> Any:
    """A relative interval as drawn: a rate's or a count's lower end at −100% at most."""
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return ci
    return [rel_floor(ci[0], e.get("metric_kind", "mean")), ci[1]]


def _gap(ci: Any, side: int, est: float) -> float:
    """Error-bar length from an estimate to one end of its CI (0 when the CI is missing)."""
    if not isinstance(ci, list | tuple) or not _finite(ci[side]):
        return 0.0
    return ci[1] - est if side == 1 else est - ci[0]


def landing(rows: list[dict[str, Any]], key: str) -> Chart | None:
    """Where each channel's increment was bought, next to what last-touch would credit."""
    rows = [r for r in rows if _finite(r.get("incremental_revenue"))
            or _finite(r.get("last_touch_revenue"))]
    if not rows:
        return None
    fig = go.Figure()
    for n, ch in enumerate(sorted({_arm(r) for r in rows})):
        sub = [r for r in rows if _arm(r) == ch]
        colour = PALETTE[n % len(PALETTE)]
        inc = [r for r in sub if _finite(r.get("incremental_revenue"))]
        fig.add_trace(go.Bar(
            x=[r["purchase_channel"] for r in inc], y=[r["incremental_revenue"] for r in inc],
            name=f"{ch}: measured increment", marker_color=colour, offsetgroup=f"{ch}-inc",
            error_y=dict(type="data", symmetric=False,
                         array=[_gap(r.get("ci"), 1, r["incremental_revenue"]) for r in inc],
                         arrayminus=[_gap(r.get("ci"), 0, r["incremental_revenue"])
                                     for r in inc]),
            hovertemplate="bought in %{x}: € %{y:,.0f} incremental<extra>" + ch + "</extra>"))
        lt = [r for r in sub if _finite(r.get("last_touch_revenue"))]
        fig.add_trace(go.Bar(
            x=[r["purchase_channel"] for r in lt], y=[r["last_touch_revenue"] for r in lt],
            name=f"{ch}: last-touch credit", marker=dict(color=colour, opacity=0.45,
                                                         pattern=dict(shape="/")),
            offsetgroup=f"{ch}-lt",
            hovertemplate="bought in %{x}: € %{y:,.0f} credited by last touch<extra>"
            + ch + "</extra>"))
    fig.add_hline(y=0, line=dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, barmode="group", height=420,
                      title="Where the increment landed vs what last-touch credits",
                      xaxis_title="purchase channel", yaxis_title="revenue (€, whole experiment)")
    table = pl.DataFrame({
        "channel": [_arm(r) for r in rows],
        "purchase_channel": [r["purchase_channel"] for r in rows],
        "incremental_revenue": [r.get("incremental_revenue") for r in rows],
        "ci_lo": [(r.get("ci") or [None, None])[0] for r in rows],
        "ci_hi": [(r.get("ci") or [None, None])[1] for r in rows],
        "last_touch_revenue": [r.get("last_touch_revenue") for r in rows]},
        schema={"channel": pl.String, "purchase_channel": pl.String,
                "incremental_revenue": pl.Float64, "ci_lo": pl.Float64, "ci_hi": pl.Float64,
                "last_touch_revenue": pl.Float64})
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
