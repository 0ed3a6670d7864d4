"""The targeting page (``liftlab target``): Qini curves per channel with bands, the policy's
budget curve, calibration by decile, the appetence map by segment and the features that drive
the predicted effects. Presentation only: every number comes from targeting.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from liftlab import __version__
from liftlab.report.charts import LAYOUT, PALETTE, Chart, figure
from liftlab.report.format import num, pct, pvalue
from liftlab.report.pages import ENV, _save

PAGE_SHARES = (0.1, 0.3)  # the uplift at the top shares the page shows (all are in the JSON)


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _band(fig: go.Figure, x: list[float], lo: list[float], hi: list[float], name: str,
          colour: str) -> None:
    fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", mode="lines",
                             line=dict(width=0), fillcolor=colour, opacity=0.18,
                             name=f"{name}: 95% band", legendgroup=name, hoverinfo="skip"))


def qini_chart(t: dict[str, Any], key: str = "targeting-qini") -> Chart:
    """Qini curve per channel arm with its band, and the random-targeting line."""
    fig, rows = figure(), []
    for i, a in enumerate(t["channels"]):
        c, pts = _colour(i), a["qini_curve"]
        x = [0.0] + [p["share"] for p in pts]
        y = [0.0] + [p["qini"] for p in pts]
        _band(fig, x, [0.0] + [p["low"] for p in pts], [0.0] + [p["high"] for p in pts],
              a["label"], c)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=a["label"], legendgroup=a["label"],
                                 line=dict(color=c, width=2.5)))
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, a["ate"]["estimate"]], mode="lines",
                                 name=f"{a['label']}: random targeting", legendgroup=a["label"],
                                 line=dict(color=c, dash="dot", width=1.5)))
        rows += [{"option": a["label"], **p} for p in pts]
    fig.update_layout(**LAYOUT, height=420, title="Qini curves: targeting the customers with "
                      "the highest predicted effect first",
                      xaxis=dict(title="share of customers targeted", tickformat=".0%"),
                      yaxis=dict(title=f"incremental {t['metric']} per customer"))
    return Chart(key, "Qini curves", fig, pl.DataFrame(rows))


def budget_chart(t: dict[str, Any], key: str = "targeting-budget") -> Chart:
    """The policy's incremental value along the budget, with the options sent to everyone."""
    pts, unit = t["curve"], _unit(t)
    x = [p["budget"] for p in pts]
    fig = figure()
    _band(fig, x, [p["ci"][0] for p in pts], [p["ci"][1] for p in pts], "policy", _colour(0))
    fig.add_trace(go.Scatter(x=x, y=[p["total"] for p in pts], mode="lines", name="policy",
                             legendgroup="policy", line=dict(color=_colour(0), width=2.5)))
    n = t["n_customers"]
    for i, o in enumerate(t["options"]):
        spend = n * (o["cost"] if t["budget_unit"] == "cost" else len(o["arms"]))
        e = o["everyone"]
        fig.add_trace(go.Scatter(
            x=[spend], y=[e["total"]], mode="markers", name=f"{o['option']} to everyone",
            marker=dict(color=_colour(i + 1), size=11, symbol="diamond"),
            error_y=dict(type="data", symmetric=False, array=[e["ci"][1] - e["total"]],
                         arrayminus=[e["total"] - e["ci"][0]])))
    pol = t["policy"]
    fig.add_vline(x=pol["spend"], line=dict(color="#344054", dash="dash", width=1),
                  annotation_text="chosen budget", annotation_position="top left")
    fig.update_layout(**LAYOUT, height=420, title="What the policy earns for what it spends",
                      xaxis=dict(title=f"budget ({unit})"),
                      yaxis=dict(title="incremental value, all customers"))
    rows = [{"budget": p["budget"], "value": p["total"], "low": p["ci"][0], "high": p["ci"][1]}
            for p in pts]
    return Chart(key, "Budget curve", fig, pl.DataFrame(rows))


def calibration_chart(t: dict[str, Any], key: str = "targeting-calibration") -> Chart:
    """Observed vs predicted effect per decile of prediction, one trace per channel arm."""
    fig, rows, lo, hi = figure(), [], 0.0, 0.0
    for i, a in enumerate(t["channels"]):
        cal = a["calibration"]
        fig.add_trace(go.Scatter(
            x=[b["predicted"] for b in cal], y=[b["estimate"] for b in cal],
            mode="markers+lines", name=a["label"], line=dict(color=_colour(i), width=1),
            error_y=dict(type="data", symmetric=False,
                         array=[b["ci"][1] - b["estimate"] for b in cal],
                         arrayminus=[b["estimate"] - b["ci"][0] for b in cal])))
        preds = [b["predicted"] for b in cal]
        lo, hi = min(lo, *preds), max(hi, *preds)
        rows += [{"option": a["label"], "decile": k + 1, "predicted": b["predicted"],
                  "observed": b["estimate"], "low": b["ci"][0], "high": b["ci"][1], "n": b["n"]}
                 for k, b in enumerate(cal)]
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect calibration",
                             line=dict(color="#98a2b3", dash="dot")))
    fig.update_layout(**LAYOUT, height=380, title="Calibration: observed effect per decile of "
                      "predicted effect", xaxis=dict(title=f"predicted effect on {t['metric']}"),
                      yaxis=dict(title="observed effect (difference in means)"))
    return Chart(key, "Calibration", fig, pl.DataFrame(rows))


def appetence_chart(t: dict[str, Any], key: str = "targeting-appetence") -> Chart | None:
    """Mean predicted effect per segment value (rows) and channel arm (columns)."""
    rows = t["appetence"]
    if not rows:
        return None
    frame = pl.DataFrame(rows)
    labels = [f"{r['segment']} = {r['value']}" for r in frame.unique(
        ["segment", "value"], maintain_order=True).iter_rows(named=True)]
    options = frame["option"].unique(maintain_order=True).to_list()
    z = [[next(r["predicted_effect"] for r in rows if f"{r['segment']} = {r['value']}" == lab
               and r["option"] == o) for o in options] for lab in labels]
    fig = figure(go.Heatmap(z=z, x=options, y=labels, colorscale="RdBu", zmid=0,
                               colorbar=dict(title="predicted"), name="predicted effect",
                               hovertemplate="%{y}<br>%{x}: %{z:.4g}<extra></extra>"))
    fig.update_layout(**LAYOUT, height=max(260, 34 * len(labels) + 120),
                      title="Appetence: predicted effect (value units) by segment and channel",
                      yaxis=dict(autorange="reversed"))
    return Chart(key, "Appetence", fig, frame)


def drivers_chart(t: dict[str, Any], key: str = "targeting-drivers") -> Chart | None:
    """The features that drive the predicted effect, per channel arm."""
    fig, rows = figure(), []
    for i, a in enumerate(t["channels"]):
        if not a["drivers"]:
            continue
        fig.add_trace(go.Bar(x=[d["importance"] for d in a["drivers"]],
                             y=[_feature(d["feature"]) for d in a["drivers"]],
                             orientation="h",
                             name=a["label"], marker=dict(color=_colour(i))))
        rows += [{"option": a["label"], **d} for d in a["drivers"]]
    if not rows:
        return None
    fig.update_layout(**LAYOUT, height=380, barmode="group",
                      title="What drives the predicted effect (share of a surrogate tree's "
                      "explained variance)", xaxis=dict(title="importance", tickformat=".0%"),
                      yaxis=dict(autorange="reversed", automargin=True))
    return Chart(key, "Drivers", fig, pl.DataFrame(rows))


def _feature(name: str) -> str:
    """A feature as an analyst names it: a metric's pre-period value (``revenue|pre``) says
    so; customers columns and segments keep their names."""
    if name.endswith("|pre"):
        return f"{name.removesuffix('|pre')} (pre-period)"
    return name.removesuffix("|attr")


def _unit(t: dict[str, Any]) -> str:
    return "contact cost" if t["budget_unit"] == "cost" else "contacts"


def _ci(e: dict[str, Any]) -> str:
    return f"{num(e['total'])} [{num(e['ci'][0])}, {num(e['ci'][1])}]"


def _est(i: dict[str, Any]) -> str:
    return f"{num(i['estimate'])} [{num(i['ci'][0])}, {num(i['ci'][1])}]"


def render_targeting(t: dict[str, Any], folder: Path, assets: str = "assets",
                     home: str = "targeting.html") -> str:
    """The page as HTML; the charts' tables are written under ``folder/tables``."""
    pol = t["policy"]
    channels = [{"label": a["label"], "n": f"{a['n_treated']:,} vs {a['n_holdout']:,}",
                 "ate": _est(a["ate"]), "p": pvalue(a["ate"]["p_value"]),
                 "auuc": _est(a["auuc"]), "qini": _est(a["qini_coefficient"]),
                 "top": {f"{s['share']:.0%}": _est(s) for s in a["uplift_at_top"]
                         if s["share"] in PAGE_SHARES}}
                for a in t["channels"]]
    options = [{"option": o["option"], "cost": num(o["cost"]), "everyone": _ci(o["everyone"]),
                "customers": f"{pol['customers'].get(o['option'], 0):,}"}
               for o in t["options"]]
    return ENV.get_template("targeting.html.j2").render(
        title=f"Targeting · {t['experiment_id']}", t=t, assets=assets, home=home,
        version=__version__, channels=channels, options=options, unit=_unit(t),
        budget=num(pol["budget"]), spend=num(pol["spend"]), value=_ci(pol["value"]),
        unbound=pol["spend"] < pol["budget"] and pol["spend"] >= t["curve"][-1]["budget"],
        random=_ci(pol["random"]), over_random=_ci(pol["over_random"]),
        over_default=_ci(pol["over_default"]),
        share=pct(sum(pol["customers"].values()) / t["n_customers"], signed=False),
        charts=[c for c in (
            _save(qini_chart(t), folder, "tables"), _save(budget_chart(t), folder, "tables"),
            _save(calibration_chart(t), folder, "tables"),
            _save(appetence_chart(t), folder, "tables"),
            _save(drivers_chart(t), folder, "tables")) if c is not None])
