"""Plotly figures of the pages. Each chart also returns the tidy table behind it (written as
CSV next to the page). Div ids are deterministic so a rerun writes identical bytes."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from liftlab.report.format import decided_by, estimate_label, rel_floor

GREEN, RED, GREY, BLUE = "#1b7f3b", "#b42318", "#667085", "#1f5fbf"
PALETTE = ("#1f5fbf", "#e07b00", "#6941c6", "#0e9384", "#c11574", "#667085")
VERDICT_SYMBOL = {"desired": "triangle-up", "undesired": "triangle-down", "inconclusive": "circle"}
TEMPLATE = "plotly_white"
LAYOUT = dict(margin=dict(l=10, r=20, t=50, b=40),
              font=dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=13),
              hoverlabel=dict(namelength=-1))


def figure(data: Any = None) -> go.Figure:
    """A new figure, built with an empty template: plotly validates and deep-copies a named
    template (about a hundred properties) into every figure that names one, or its default
    template into every figure that names none, which was a third of a page's rendering time.
    ``Chart.html`` writes the template's JSON in at the end (``template_json``): the page holds
    the same figure JSON."""
    return go.Figure(data, layout=dict(template={}))


@functools.cache
def template_json() -> dict[str, Any]:
    """The ``TEMPLATE`` as plotly writes it into a figure's JSON, made once per process."""
    return go.Figure(layout=dict(template=TEMPLATE)).to_dict()["layout"]["template"]


def figure_json(fig: go.Figure, data: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """The figure's JSON (``Figure.to_dict``) with the ``TEMPLATE`` in its layout, and the
    data arrays of its first traces (``Chart.data``) in the slots plotly validated empty."""
    out = fig.to_dict()
    out["layout"]["template"] = template_json()
    for trace, arrays in zip(out["data"], data, strict=False):
        trace.update(arrays)
    return out


ARRAYS = ("x", "y", "customdata")


def lean(traces: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], tuple[dict[str, Any], ...]]:
    """The traces with their data arrays (``ARRAYS``) empty, and the arrays: plotly validates
    a data array value by value (a numpy check on each) and copies it twice more on its way
    to the page, most of the over-time chart's rendering time (hundreds of looks per channel).
    The empty arrays keep their slots in the trace's JSON, where ``Chart.html`` writes the
    arrays and ``Chart.plotly_figure`` sets them through plotly: the same page
    (tests/test_perf_render.py). The arrays hold what results.json holds (numbers, text,
    None); a numpy number in a live result is written with the same digits."""
    return ([{k: [] if k in ARRAYS else v for k, v in t.items()} for t in traces],
            tuple({k: t[k] for k in ARRAYS if k in t} for t in traces))


def add_traces(fig: go.Figure, traces: list[dict[str, Any]], rows: list[int] | None = None) -> None:
    """``fig.add_trace(go.Scatter(**t), row=r, col=1)`` (or ``go.Bar``, by the trace's
    ``type``) for each trace, in one call: ``add_trace`` of a trace object validates it twice
    (its constructor, then again from its JSON in ``add_traces``) and deep-copies it, most of
    a chart's time for many traces; a trace given as a dict is validated once. The same
    figure JSON (tests/test_perf_render.py), provided nested properties are given as dicts
    (``marker=dict(color=c)``): from a dict, plotly sets ``marker_color`` after the others,
    which moves ``marker`` to the end of the trace's JSON."""
    if traces:
        fig.add_traces(traces, rows=rows, cols=None if rows is None else [1] * len(traces))


def vline(fig: go.Figure, x: Any, line: dict[str, Any]) -> None:
    """``fig.add_vline(x=x, line=line)`` on a figure without subplots, added as the shape
    plotly makes of it: ``add_vline`` first looks through the figure for subplots that hold
    data and then rewrites the shape, a fifth of a page's rendering time (the same JSON:
    tests/test_perf_render.py)."""
    fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="y domain", line=line)


def hline(fig: go.Figure, y: Any, line: dict[str, Any]) -> None:
    """``fig.add_hline(y=y, line=line)`` on a figure without subplots (see ``vline``)."""
    fig.add_shape(type="line", x0=0, x1=1, xref="x domain", y0=y, y1=y, yref="y", line=line)


def _axes(n: int) -> tuple[str, str]:
    """The x and y axis names of subplot ``n`` (a row of subplots stacked in one column; in a
    grid, ``(row - 1) * columns + column``)."""
    suffix = "" if n == 1 else str(n)
    return f"x{suffix}", f"y{suffix}"


def cell_vline(fig: go.Figure, x: Any, line: dict[str, Any], n: int) -> None:
    """``fig.add_vline(x=x, line=line, row=..., col=...)`` on subplot ``n``, which holds data:
    plotly finds whether it does by scanning every trace, shape and annotation of the figure,
    and re-validates the figure's shapes, on every line; in the over-time and pressure charts
    that was a third of their rendering time. The same shape (tests/test_perf_render.py);
    plotly draws nothing on a subplot without data, so neither must the caller."""
    xref, yref = _axes(n)
    fig.add_shape(type="line", x0=x, x1=x, xref=xref, y0=0, y1=1, yref=f"{yref} domain",
                  line=line)


def cell_vrect(fig: go.Figure, x0: Any, x1: Any, n: int, **style: Any) -> None:
    """``fig.add_vrect(x0=x0, x1=x1, row=..., col=..., **style)`` on subplot ``n``, which
    holds data (see ``cell_vline``)."""
    xref, yref = _axes(n)
    fig.add_shape(type="rect", x0=x0, x1=x1, xref=xref, y0=0, y1=1, yref=f"{yref} domain",
                  **style)


def panel_vline(fig: go.Figure, x: Any, line: dict[str, Any], filled: set[int]) -> None:
    """``fig.add_vline(x=x, line=line)`` on subplots stacked in one column, whose rows holding
    data are ``filled``: plotly draws the line on each of those rows (see ``cell_vline``)."""
    for row in sorted(filled):
        cell_vline(fig, x, line, row)


def panel_hline(fig: go.Figure, y: Any, line: dict[str, Any], row: int, filled: set[int],
                text: str) -> None:
    """``fig.add_hline(y=y, line=line, row=row, col=1, annotation_text=text,
    annotation_position="bottom left")`` on subplots stacked in one column (see
    ``panel_vline``): nothing when the row holds no data."""
    if row not in filled:
        return
    xref, yref = _axes(row)
    fig.add_shape(type="line", x0=0, x1=1, xref=f"{xref} domain", y0=y, y1=y, yref=yref,
                  line=line)
    fig.add_annotation(showarrow=False, text=text, x=0, xanchor="left", xref=f"{xref} domain",
                       y=y, yanchor="top", yref=yref)


@dataclass(frozen=True)
class Chart:
    """A figure, its deterministic id, and the data behind it."""

    key: str
    title: str
    figure: go.Figure
    table: pl.DataFrame
    data: tuple[dict[str, Any], ...] = ()  # arrays of the figure's first traces (``lean``)

    def html(self) -> str:
        # validate=False: the figure was validated as it was built; only the template (and
        # the data arrays of ``lean`` traces) are new
        return pio.to_html(figure_json(self.figure, self.data), validate=False,
                           full_html=False, include_plotlyjs=False, div_id=self.key,
                           config={"displaylogo": False, "responsive": True})

    def plotly_figure(self) -> go.Figure:
        """The figure with the data arrays of its ``lean`` traces set through plotly."""
        for trace, arrays in zip(self.figure.data, self.data, strict=False):
            trace.update(arrays)
        return self.figure


def colours(names: Any) -> dict[str, str]:
    """One colour per channel / arm, by its place in the sorted names: every chart of a page
    draws the same channel in the same colour."""
    return {n: PALETTE[k % len(PALETTE)] for k, n in enumerate(sorted(set(names)))}


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _arm(e: dict[str, Any]) -> str:
    return e["channel"] + (f" / {e['variant']}" if e.get("variant") else "")


def forest(effects: list[dict[str, Any]], metric: str, key: str) -> Chart:
    """Relative lift with its CI, one named trace per comparison (channel / arm) on a shared
    zero line; the marker says the verdict (▲ desired, ▼ undesired, ● inconclusive)."""
    rows = [e for e in effects if e["metric"] == metric and e["segment"] is None
            and _finite(e.get("lift_rel"))]
    fig = figure()
    colour = colours(_arm(e) for e in rows)
    traces: list[dict[str, Any]] = []
    for e in rows:
        traces.append(dict(type="scatter",
            x=[e["lift_rel"] * 100], y=[_arm(e)], mode="markers", name=_arm(e),
            marker=dict(color=colour[_arm(e)], size=12,
                        symbol=VERDICT_SYMBOL[e["verdict"]]),
            error_x=dict(type="data", symmetric=False,
                         array=[_gap(e.get("lift_rel_ci"), 1, e["lift_rel"]) * 100],
                         arrayminus=[_gap(_floored(e.get("lift_rel_ci"), e), 0,
                                          e["lift_rel"]) * 100]),
            customdata=[[e["n_treatment"], e["n_holdout"], e["p_value"], e["verdict"]]],
            hovertemplate="%{y}: %{x:+.2f}%<br>n = %{customdata[0]:,} vs %{customdata[1]:,}"
                          "<br>p = %{customdata[2]:.4f} · %{customdata[3]}<extra></extra>"))
    add_traces(fig, traces)
    vline(fig, 0, dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, title=f"Relative lift of {metric} vs holdout (95% CI; "
                      f"{_labels(rows)}; ▲ desired, ▼ undesired, ● inconclusive)",
                      height=140 + 45 * max(len(rows), 1), showlegend=True,
                      xaxis_title="relative lift (%)", yaxis_title="channel / arm")
    table = pl.DataFrame({
        "channel": [e["channel"] for e in rows], "variant": [e.get("variant") for e in rows],
        "metric": [metric] * len(rows), "lift_rel": [e["lift_rel"] for e in rows],
        "lift_rel_lo": [(e.get("lift_rel_ci") or [None, None])[0] for e in rows],
        "lift_rel_hi": [(e.get("lift_rel_ci") or [None, None])[1] for e in rows],
        "p_value": [e["p_value"] for e in rows], "verdict": [e["verdict"] for e in rows],
        "winsorize": [e.get("winsorize") for e in rows],
        "winsorize_cap": [e.get("winsorize_cap") for e in rows]},
        schema={"channel": pl.String, "variant": pl.String, "metric": pl.String,
                "lift_rel": pl.Float64, "lift_rel_lo": pl.Float64, "lift_rel_hi": pl.Float64,
                "p_value": pl.Float64, "verdict": pl.String, "winsorize": pl.Float64,
                "winsorize_cap": pl.Float64})
    return Chart(key, f"Forest plot: {metric}", fig, table)


def posteriors(effects: list[dict[str, Any]], key: str) -> Chart | None:
    """Posterior mean relative lift with its 95% HDI per metric, one named trace per
    comparison (channel / arm), labelled with P(lift > 0)."""
    rows = [e for e in effects if e["segment"] is None and _finite((e.get("bayes") or {})
                                                                   .get("mean_rel"))]
    if not rows:
        return None
    fig = figure()
    comps = list(dict.fromkeys(_arm(e) for e in rows))
    colour = colours(comps)
    traces: list[dict[str, Any]] = []
    for comp in comps:
        sub = [e for e in rows if _arm(e) == comp]
        means = [e["bayes"]["mean_rel"] * 100 for e in sub]
        hdi = [_floored(e["bayes"].get("hdi_rel") or [None, None], e) for e in sub]
        prob = [e["bayes"].get("prob_positive") for e in sub]
        traces.append(dict(type="scatter",
            x=means, y=[[e["metric"] for e in sub], [comp] * len(sub)], name=comp,
            mode="markers+text", marker=dict(color=colour[comp], size=10),
            text=[f"P(>0) {p:.0%}" if _finite(p) else "" for p in prob],
            textposition="top center", cliponaxis=False,  # the top row's label shows whole
            error_x=dict(type="data", symmetric=False,
                         array=[_gap(h, 1, m / 100) * 100 for h, m in zip(hdi, means,
                                                                          strict=True)],
                         arrayminus=[_gap(h, 0, m / 100) * 100
                                     for h, m in zip(hdi, means, strict=True)]),
            customdata=[[p if _finite(p) else float("nan")] for p in prob],
            hovertemplate="%{y}: %{x:+.2f}%<br>P(lift > 0) = %{customdata[0]:.4f}"
                          "<extra>" + comp + "</extra>"))
    add_traces(fig, traces)
    vline(fig, 0, dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, title="Posterior relative lift (mean, 95% HDI)",
                      height=150 + 40 * len(rows), xaxis_title="relative lift (%)",
                      yaxis_title="metric", showlegend=True)
    raw = [e["bayes"].get("hdi_rel") or [None, None] for e in rows]
    table = pl.DataFrame({"channel": [e["channel"] for e in rows],
                          "variant": [e.get("variant") for e in rows],
                          "metric": [e["metric"] for e in rows],
                          "mean_rel": [e["bayes"]["mean_rel"] for e in rows],
                          "hdi_lo": [h[0] for h in raw], "hdi_hi": [h[1] for h in raw],
                          "prob_positive": [e["bayes"].get("prob_positive") for e in rows]},
                         schema={"channel": pl.String, "variant": pl.String,
                                 "metric": pl.String, "mean_rel": pl.Float64,
                                 "hdi_lo": pl.Float64, "hdi_hi": pl.Float64,
                                 "prob_positive": pl.Float64})
    return Chart(key, "Posteriors", fig, table)


def segments(effects: list[dict[str, Any]], metric: str, dimension: str, key: str) -> Chart:
    """The lift per value of one segment dimension, one named trace per comparison (channel
    / arm) drawn side by side within each segment's row, with n shown, so that the noise of
    small segments is obvious."""
    rows = [e for e in effects if e["metric"] == metric and e["segment"] is not None
            and list(e["segment"]) == [dimension] and _finite(e.get("lift_abs"))]
    values = sorted({e["segment"][dimension] for e in rows})
    comps = list(dict.fromkeys(_arm(e) for e in rows))
    colour = colours(comps)
    n_units = {v: sorted({e["n_treatment"] + e["n_holdout"] for e in rows
                          if e["segment"][dimension] == v}) for v in values}
    step = 0.7 / max(len(comps), 1)
    fig = figure()
    traces: list[dict[str, Any]] = []
    for k, comp in enumerate(comps):
        sub = [e for e in rows if _arm(e) == comp]
        offset = (k - (len(comps) - 1) / 2) * step
        traces.append(dict(type="scatter",
            x=[e["lift_abs"] for e in sub],
            y=[values.index(e["segment"][dimension]) + offset for e in sub],
            mode="markers", name=comp, marker=dict(color=colour[comp], size=9),
            error_x=dict(type="data", symmetric=False,
                         array=[_gap(e.get("lift_abs_ci"), 1, e["lift_abs"]) for e in sub],
                         arrayminus=[_gap(e.get("lift_abs_ci"), 0, e["lift_abs"]) for e in sub]),
            customdata=[[e["segment"][dimension], e["n_treatment"] + e["n_holdout"]]
                        for e in sub],
            hovertemplate="%{customdata[0]} (n=%{customdata[1]:,})<br>lift %{x:+.4g}<extra>"
                          + comp + "</extra>"))
    add_traces(fig, traces)
    vline(fig, 0, dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, title=f"Absolute lift of {metric} by {dimension} (95% CI; "
                      f"{_labels(rows)})",
                      height=170 + 26 * max(len(values), 1) * max(len(comps), 1),
                      xaxis_title=f"lift in {metric} per unit",
                      yaxis=dict(title=f"{dimension} (units compared)",
                                 tickvals=list(range(len(values))), autorange="reversed",
                                 ticktext=[f"{v} (n={_span(n_units[v])})" for v in values],
                                 zeroline=False))
    table = pl.DataFrame({
        "channel": [e["channel"] for e in rows], "variant": [e.get("variant") for e in rows],
        "metric": [metric] * len(rows), "dimension": [dimension] * len(rows),
        "segment": [e["segment"][dimension] for e in rows],
        "n_treatment": [e["n_treatment"] for e in rows],
        "n_holdout": [e["n_holdout"] for e in rows],
        "lift_abs": [e["lift_abs"] for e in rows],
        "lift_abs_lo": [e["lift_abs_ci"][0] for e in rows],
        "lift_abs_hi": [e["lift_abs_ci"][1] for e in rows]},
        schema={"channel": pl.String, "variant": pl.String, "metric": pl.String,
                "dimension": pl.String, "segment": pl.String, "n_treatment": pl.Int64,
                "n_holdout": pl.Int64, "lift_abs": pl.Float64, "lift_abs_lo": pl.Float64,
                "lift_abs_hi": pl.Float64})
    return Chart(key, f"Segments: {metric} by {dimension}", fig, table)


def _labels(rows: list[dict[str, Any]]) -> str:
    """Which estimate the chart's points are (``estimate_label``), each said once."""
    return " / ".join(dict.fromkeys(estimate_label(e) for e in rows)) or "raw"


def _span(ns: list[int]) -> str:
    """Units of a segment's comparisons: one number, or the range when the arms differ."""
    return f"{ns[0]:,}" if len(ns) == 1 else f"{ns[0]:,}–{ns[-1]:,}"


def timeline(seq: dict[str, Any], metric: str, variant: str | None, key: str) -> Chart | None:
    """Both sequential tests of one metric (and variant), one named series per channel: the
    cumulative lift of matured units with its confidence-sequence band (top), the response
    rate ratio with its own band (middle), and the cumulative units per arm (bottom). Each
    channel's decision is marked on the panel of the test that made it."""
    rows = [r for r in seq.get("timeline", []) if r.get("metric") == metric
            and r.get("variant") == variant
            and (_finite(r.get("estimate")) or _finite(r.get("rate_ratio")))]
    if not rows:
        return None
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.42, 0.3, 0.28],
                        vertical_spacing=0.06, figure=figure())
    channels = sorted({r.get("channel") or "" for r in rows})
    colour = colours(channels)
    settled: list[float | None] = []
    ratios: list[float | None] = []
    filled: set[int] = set()  # the rows holding data so far
    data: list[dict[str, Any]] = []  # the traces' arrays (``lean``)
    for n, channel in enumerate(channels):
        sub = sorted((r for r in rows if (r.get("channel") or "") == channel),
                     key=lambda r: r["at"])
        lift, lift_band = _band(sub, channel, colour[channel], "lift")
        ratio, ratio_band = _band(sub, channel, colour[channel], "rate ratio")
        settled += lift_band
        ratios += ratio_band
        units = _units(sub, channel, colour[channel])
        traces, arrays = lean([*lift, *ratio, *units])
        add_traces(fig, traces, [1] * len(lift) + [2] * len(ratio) + [3] * len(units))
        data += arrays
        filled |= {row for row, traces in ((1, lift), (2, ratio), (3, units)) if traces}
        _decision_marker(fig, seq, sub, channel, metric, variant, n, filled)
    panel_hline(fig, 0, dict(color="#101828", width=1), 1, filled,
                "decision boundary: band clear of 0")
    if any(_finite(r.get("rate_ratio")) for r in rows):
        panel_hline(fig, 1, dict(color="#101828", width=1), 2, filled,
                    "decision boundary: band clear of 1")
    else:  # a ratio metric: the monitor runs no response-count test on it
        fig.add_annotation(text="no response-count test for a ratio metric: the lift "
                           "band above decides", showarrow=False, x=0.5, y=0.5,
                           xref="x2 domain", yref="y2 domain", font=dict(color="#475467"))
    fig.update_layout(**LAYOUT, height=720, legend=dict(orientation="h", y=-0.12),
                      title=f"{metric}{f' / {variant}' if variant else ''}: the two sequential "
                      "tests per channel, and matured units per arm")
    fig.update_yaxes(title=dict(text=f"lift test: {metric} per matured unit<br>"
                                "(within the response window)", font=dict(size=11)),
                     row=1, col=1, range=_settled_range(settled))
    fig.update_yaxes(title=dict(text="response-count test:<br>rate ratio treat. / hold.",
                                font=dict(size=11)), row=2, col=1, type="log",
                     range=_log_range(ratios))
    fig.update_yaxes(title=dict(text="matured units<br>(cumulative)", font=dict(size=11)),
                     row=3, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=3, col=1)
    table = pl.DataFrame({
        "channel": [r.get("channel") for r in rows], "variant": [variant] * len(rows),
        "metric": [metric] * len(rows), "at": [r["at"] for r in rows],
        "estimate": [_or_none(r.get("estimate")) for r in rows],
        "ci_lo": [_or_none(r["ci"][0]) for r in rows],
        "ci_hi": [_or_none(r["ci"][1]) for r in rows],
        "rate_ratio": [_or_none(r.get("rate_ratio")) for r in rows],
        "rate_ratio_lo": [_or_none((r.get("rate_ratio_ci") or [None, None])[0]) for r in rows],
        "rate_ratio_hi": [_or_none((r.get("rate_ratio_ci") or [None, None])[1]) for r in rows],
        "p_value": [r.get("p_value") for r in rows],
        "n_treatment": [r.get("n_treatment") for r in rows],
        "n_holdout": [r.get("n_holdout") for r in rows],
        "decision": [r.get("decision") for r in rows]},
        schema={"channel": pl.String, "variant": pl.String, "metric": pl.String,
                "at": pl.String, "estimate": pl.Float64, "ci_lo": pl.Float64,
                "ci_hi": pl.Float64, "rate_ratio": pl.Float64, "rate_ratio_lo": pl.Float64,
                "rate_ratio_hi": pl.Float64, "p_value": pl.Float64, "n_treatment": pl.Int64,
                "n_holdout": pl.Int64, "decision": pl.String})
    return Chart(key, "Over time", fig, table, tuple(data))


def _or_none(x: Any) -> float | None:
    return x if _finite(x) else None


def _band(rows: list[dict[str, Any]], channel: str, colour: str,
          what: str) -> tuple[list[dict[str, Any]], list[float | None]]:
    """One channel's estimate and confidence-sequence band of one test (``lift``: the matured
    cohorts' lift, ``rate ratio``: the response-count test), named with the channel, as
    scatter traces (for ``add_traces``); with the band once the first tenth of the looks is
    past (for the y-range)."""
    if what == "lift":
        rows = [r for r in rows if _finite(r.get("estimate"))]
        est = [r["estimate"] for r in rows]
        lo, hi = [_or_none(r["ci"][0]) for r in rows], [_or_none(r["ci"][1]) for r in rows]
    else:
        rows = [r for r in rows if _finite(r.get("rate_ratio"))]
        est = [r["rate_ratio"] for r in rows]
        ci = [r.get("rate_ratio_ci") or [None, None] for r in rows]
        lo = [_or_none(c[0]) if _finite(c[0]) and c[0] > 0 else None for c in ci]
        hi = [_or_none(c[1]) for c in ci]
    if not rows:  # this test has no look yet (or the result predates it)
        return [], []
    at = [r["at"] for r in rows]
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    label = f"{channel}: " if channel else ""
    traces = [
        dict(type="scatter", x=at, y=hi, line=dict(width=0), showlegend=False,
             name=f"{label}{what}, upper bound", legendgroup=channel,
             hovertemplate="%{x}<br>upper bound %{y:.4g}<extra>" + channel + "</extra>"),
        dict(type="scatter", x=at, y=lo, fill="tonexty", line=dict(width=0),
             fillcolor=f"rgba({red},{green},{blue},0.15)", legendgroup=channel,
             name=f"{label}{what}, 95% confidence sequence", showlegend=what == "lift",
             hovertemplate="%{x}<br>lower bound %{y:.4g}<extra>" + channel + "</extra>"),
        dict(type="scatter", x=at, y=est, name=f"{label}{what}", legendgroup=channel,
             line=dict(color=colour, dash="solid" if what == "lift" else "dash"),
             customdata=[r.get("p_value") for r in rows],
             hovertemplate="%{x}<br>" + what + " %{y:.4g}<br>always-valid p "
             "%{customdata:.4f}<extra>" + channel + "</extra>")]
    skip = len(rows) // 10
    return traces, [*lo[skip:], *hi[skip:]]


def _units(rows: list[dict[str, Any]], channel: str, colour: str) -> list[dict[str, Any]]:
    """One channel's cumulative units per arm whose response window has closed (those the
    lift test reads; the split made visible), as scatter traces (for ``add_traces``)."""
    label = f"{channel}: " if channel else ""
    return [dict(type="scatter", x=[r["at"] for r in rows], y=[r.get(f"n_{arm}") for r in rows],
                 name=f"{label}matured units, {arm}", legendgroup=channel,
                 line=dict(color=colour, dash=dash),
                 hovertemplate="%{x}<br>" + arm + ": %{y:,} units<extra>" + channel + "</extra>")
            for arm, dash in (("treatment", "solid"), ("holdout", "dot"))]


def _log_range(values: list[float | None]) -> list[float] | None:
    """The log10 y-range of the rate-ratio bands once the first looks are past (1 included)."""
    vals = [v for v in values if v is not None and v > 0]
    if not vals:
        return None
    lo, hi = math.log10(min(*vals, 1.0)), math.log10(max(*vals, 1.0))
    pad = 0.08 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


DECISION_ROW = {"event": 2}  # the panel of the test that made a decision (others: the lift's)


def _decision_marker(fig: go.Figure, seq: dict[str, Any], rows: list[dict[str, Any]],
                     channel: str, metric: str, variant: str | None, n: int,
                     filled: set[int]) -> None:
    """A dashed line at the hour the channel's decision was reached, annotated on the panel
    of the test that made it; a decision reached before the first plotted look is drawn at
    that look and says so."""
    comps = [c for c in seq.get("comparisons") or [] if c.get("metric") == metric
             and c.get("variant") == variant and (c.get("channel") or "") == channel]
    comp = comps[0] if comps else seq
    decided_at, decision = comp.get("decided_at"), comp.get("decision")
    if not decided_at:
        return
    first = rows[0]["at"]
    x = max(decided_at, first)
    text = f"{channel + ': ' if channel else ''}{decision} ({decided_at}"
    text += ", before the first plotted look)" if decided_at < first else ")"
    if comp.get("decided_by"):
        text += f"<br>by {decided_by(comp['decided_by'])}"
    panel = DECISION_ROW.get(comp.get("decided_by") or "", 1)
    panel_vline(fig, x, dict(color=RED, dash="dash"), filled)
    fig.add_annotation(x=x, y=1 - 0.16 * n, yref="y domain" if panel == 1 else "y2 domain",
                       showarrow=False, text=text, xanchor="left", align="left",
                       bgcolor="rgba(255,255,255,0.85)", font=dict(size=11))


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
    fig = figure(go.Waterfall(x=x, y=y, measure=measure,
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
    """Across experiments: the increment of each experiment's primary metric, as the
    scorecard estimates it (left), and ROI (right) by channel; the left panel is titled with
    the metrics it plots."""
    items = [i for i in items if _finite(i.get("incremental_total"))]
    if not items:
        return None
    from plotly.subplots import make_subplots

    plotted = " / ".join(dict.fromkeys(i["metric"] for i in items))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, figure=figure(), subplot_titles=(
        f"Incremental {plotted} (primary metric)", "ROI (net return per € spent)"))
    for n, exp in enumerate(sorted({i["experiment"] for i in items})):
        sub = [i for i in items if i["experiment"] == exp]
        colour = PALETTE[n % len(PALETTE)]
        fig.add_trace(go.Bar(x=[i["channel"] for i in sub], y=[i["incremental_total"]
                                                               for i in sub],
                             name=exp, legendgroup=exp, marker_color=colour,
                             hovertemplate="%{x}: € %{y:,.0f} incremental " + sub[0]["metric"]
                             + "<extra>" + exp + "</extra>"),
                      row=1, col=1)
        roi = [i for i in sub if _finite(i.get("roi"))]
        fig.add_trace(go.Bar(
            x=[i["channel"] for i in roi], y=[i["roi"] for i in roi], name=exp,
            legendgroup=exp, showlegend=False, marker_color=colour,
            error_y=dict(type="data", symmetric=False,
                         array=[_gap(i.get("roi_ci"), 1, i["roi"]) for i in roi],
                         arrayminus=[_gap(i.get("roi_ci"), 0, i["roi"]) for i in roi]),
            hovertemplate="%{x}: ROI %{y:,.2f}<extra>" + exp + "</extra>"), row=1, col=2)
    fig.update_layout(**{**LAYOUT, "margin": {**LAYOUT["margin"], "t": 90}}, barmode="group",
                      height=440,
                      title="Portfolio: what each channel returned across experiments")
    fig.update_xaxes(title_text="channel")
    # short enough for the plot's height (the panel's title names the metrics)
    fig.update_yaxes(title_text="€, whole experiment", row=1, col=1)
    fig.update_yaxes(title_text="ROI (×, 95% CI)", row=1, col=2)
    table = pl.DataFrame(
        {"experiment": [i["experiment"] for i in items], "channel": [i["channel"] for i in items],
         "metric": [i["metric"] for i in items],
         "incremental_total": [i["incremental_total"] for i in items],
         "cost": [i.get("cost") for i in items], "roi": [i.get("roi") for i in items]},
        schema={"experiment": pl.String, "channel": pl.String, "metric": pl.String,
                "incremental_total": pl.Float64, "cost": pl.Float64, "roi": pl.Float64})
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
    fig = figure()
    traces: list[dict[str, Any]] = []
    for n, ch in enumerate(sorted({_arm(r) for r in rows})):
        sub = [r for r in rows if _arm(r) == ch]
        colour = PALETTE[n % len(PALETTE)]
        inc = [r for r in sub if _finite(r.get("incremental_revenue"))]
        traces.append(dict(type="bar",
            x=[r["purchase_channel"] for r in inc], y=[r["incremental_revenue"] for r in inc],
            name=f"{ch}: measured increment", marker=dict(color=colour),
            offsetgroup=f"{ch}-inc",
            error_y=dict(type="data", symmetric=False,
                         array=[_gap(r.get("ci"), 1, r["incremental_revenue"]) for r in inc],
                         arrayminus=[_gap(r.get("ci"), 0, r["incremental_revenue"])
                                     for r in inc]),
            hovertemplate="bought in %{x}: € %{y:,.0f} incremental<extra>" + ch + "</extra>"))
        lt = [r for r in sub if _finite(r.get("last_touch_revenue"))]
        traces.append(dict(type="bar",
            x=[r["purchase_channel"] for r in lt], y=[r["last_touch_revenue"] for r in lt],
            name=f"{ch}: last-touch credit", marker=dict(color=colour, opacity=0.45,
                                                         pattern=dict(shape="/")),
            offsetgroup=f"{ch}-lt",
            hovertemplate="bought in %{x}: € %{y:,.0f} credited by last touch<extra>"
            + ch + "</extra>"))
    add_traces(fig, traces)
    hline(fig, 0, dict(color="#101828", width=1))
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
    fig = figure(go.Heatmap(z=z, x=chans, y=segs, colorscale="Blues", zmin=0,
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
    fig = figure(go.Scatter(
        x=values, y=names, mode="markers", marker=dict(size=12, color=BLUE),
        error_x=dict(type="data", symmetric=False,
                     array=[c[1] - v for v, c in zip(values, cis, strict=True)],
                     arrayminus=[v - c[0] for v, c in zip(values, cis, strict=True)]),
        hovertemplate="%{y}: %{x:.3f}x<extra></extra>"))
    vline(fig, 1, dict(color="#101828", width=1))
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
    fig = figure(go.Bar(x=parts, y=values, marker_color=BLUE,
                           error_y=dict(type="data", symmetric=False,
                                        array=[c[1] - v for v, c in zip(values, cis,
                                                                        strict=True)],
                                        arrayminus=[v - c[0] for v, c in zip(values, cis,
                                                                             strict=True)]),
                           hovertemplate="%{x}: %{y:.3f}x<extra></extra>"))
    hline(fig, 1, dict(color="#101828", width=1))
    fig.update_layout(**LAYOUT, height=340, title="Naive premium = retention x frequency x "
                      "basket", xaxis_title="factor", yaxis_title="multi / single ratio")
    return Chart(key, "Decomposition", fig, pl.DataFrame({"factor": parts, "ratio": values}))
