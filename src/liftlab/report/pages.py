"""HTML pages from results dicts (results.json). No statistics here: only presentation.

Every value shown is escaped (jinja2 autoescape); charts come from ``charts.py`` with their
tidy tables written as CSV beside the page; plotly.js is one shared local file.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import jinja2
import plotly

from liftlab import __version__
from liftlab.fsio import atomic_write_text
from liftlab.report import charts
from liftlab.report.charts import Chart
from liftlab.report.format import interval, money, pct, pvalue, value

ENV = jinja2.Environment(loader=jinja2.PackageLoader("liftlab.report", "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined,
                         trim_blocks=True, lstrip_blocks=True)
ICON = {"desired": "▲", "undesired": "▼", "inconclusive": "●"}
BAR_SCALE = 0.5  # the shared CI bars span -50% .. +50% relative lift


def copy_plotly(assets: Path) -> None:
    """The one shared plotly.min.js (no CDN: pages work offline)."""
    assets.mkdir(parents=True, exist_ok=True)
    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copyfile(src, assets / "plotly.min.js")


def _bar(lo: Any, est: Any, hi: Any, scale: float = BAR_SCALE) -> dict[str, float] | None:
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (lo, est, hi)):
        return None

    def pos(v: float) -> float:
        return max(0.0, min(100.0, 50 + 50 * v / scale))

    return {"lo": round(pos(lo), 2), "width": round(max(pos(hi) - pos(lo), 0.8), 2),
            "pt": round(pos(est), 2)}


def _health(r: dict[str, Any]) -> list[dict[str, str]]:
    h = r["health"]
    out = []
    srm_ok = h.get("srm_ok", True)
    p = h.get("srm_p_value")
    out.append({"level": "ok" if srm_ok else "bad", "icon": "✔" if srm_ok else "✖",
                "label": "ok" if srm_ok else "SRM", "title": "Sample ratio",
                "detail": "; ".join(f"{c['channel']}: " + ", ".join(
                    f"{a} {n:,}" for a, n in c["observed"].items()) for c in h.get("srm", []))
                + (f" (p = {pvalue(p)})" if p is not None else "")})
    checks = h.get("data_checks", [])
    bad = [c for c in checks if not c.get("ok", True)]
    out.append({"level": "ok" if not bad else "amber", "icon": "✔" if not bad else "!",
                "label": "ok" if not bad else "check", "title": "Data checks",
                "detail": f"{len(checks) - len(bad)} of {len(checks)} passed"})
    immature = any(w["code"] == "immature_window" for w in h.get("warnings", []))
    out.append({"level": "amber" if immature else "ok", "icon": "…" if immature else "✔",
                "label": "running" if immature else "complete",
                "title": "Conversion window",
                "detail": f"{r.get('days_run', 0):.0f} of {r.get('days_planned')} days"})
    diag = (r.get("bayes") or {}).get("diagnostics") or {}
    if diag:
        poor = bool(diag.get("warnings"))
        out.append({"level": "amber" if poor else "ok", "icon": "!" if poor else "✔",
                    "label": "poor" if poor else "ok", "title": "Convergence (Bayesian)",
                    "detail": f"r_hat max {diag.get('r_hat_max', float('nan')):.3f}, "
                              f"{diag.get('divergences', 0)} divergences"})
    guards = [e for e in r["effects"] if e.get("guardrail") and e["segment"] is None]
    harmed = [e for e in guards if e["verdict"] == "undesired"]
    out.append({"level": "bad" if harmed else "ok", "icon": "✖" if harmed else "✔",
                "label": "harm" if harmed else "ok", "title": "Guardrails",
                "detail": ", ".join(f"{e['metric']} {pct(e['lift_rel'])}" for e in guards)
                or "none defined"})
    return out


def _score_row(e: dict[str, Any]) -> dict[str, Any]:
    metric, kind = e["metric"], e.get("metric_kind", "mean")
    arm = e["channel"] + (f" / {e['variant']}" if e.get("variant") else "")
    bayes = e.get("bayes") or {}
    prob = e.get("prob_positive", bayes.get("prob_positive"))
    return {
        "metric": metric, "guardrail": e.get("guardrail", False), "comparison": arm,
        "holdout": value(e["mean_holdout"], metric, kind),
        "treatment": value(e["mean_treatment"], metric, kind),
        "lift_abs": value(e["lift_abs"], metric, kind, signed=True),
        "lift_abs_raw": e["lift_abs"], "abs_ci": interval(e["lift_abs_ci"], "abs"),
        "lift_rel": pct(e["lift_rel"]), "lift_rel_raw": e["lift_rel"],
        "rel_ci": interval(e["lift_rel_ci"]), "p": pvalue(e["p_value"]), "p_raw": e["p_value"],
        "prob": pct(prob, signed=False) if prob is not None else "–",
        "verdict": e["verdict"], "icon": ICON[e["verdict"]], "error": e.get("error"),
        "bar": _bar(e["lift_rel_ci"][0], e["lift_rel"], e["lift_rel_ci"][1]),
    }


def _save(chart: Chart | None, folder: Path, rel: str) -> dict[str, Any] | None:
    if chart is None:
        return None
    path = folder / rel / f"{chart.key}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, chart.table.write_csv())
    return {"html": chart.html(), "csv": f"{rel}/{chart.key}.csv"}


def render_experiment(r: dict[str, Any], folder: Path, assets: str = "assets",
                      home: str = "index.html", results_json: str = "results.json") -> str:
    """The experiment page as HTML; its chart tables are written under ``folder``."""
    exp = r["experiment"]
    tables = f"tables/{exp}"
    effects = r["effects"]
    metrics = list(dict.fromkeys(e["metric"] for e in effects))
    forests, segs = [], []
    for i, m in enumerate(metrics):
        saved = _save(charts.forest(effects, m, f"{exp}-forest-{i}"), folder, tables)
        forests.append({**saved, "metric": m})  # type: ignore[dict-item]
        if any(e["segment"] is not None and e["metric"] == m for e in effects):
            saved = _save(charts.segments(effects, m, f"{exp}-segments-{i}"), folder, tables)
            segs.append({**saved, "metric": m})  # type: ignore[dict-item]
    seq = r.get("sequential") or {}
    contribution = [{
        "channel": c["channel"], "inc": money(c.get("incremental_revenue_per_customer"), True),
        "ci": interval(c.get("ci"), "abs"), "shapley": money(c.get("shapley"), True),
        "solo": money(c.get("solo"), True), "loo": money(c.get("leave_one_out"), True),
        "roi": pct(c.get("roi"))} for c in r.get("contribution") or []]
    interactions = [{
        "channels": " × ".join(i["channels"]), "metric": i["metric"],
        "estimate": value(i["estimate"], i["metric"], "mean", signed=True),
        "ci": interval(i.get("ci"), "abs"), "kind": i.get("kind", ""),
        "cls": {"synergy": "ok", "cannibalisation": "bad"}.get(i.get("kind", ""), "warn")}
        for i in r.get("interactions") or []]
    p_seq = seq.get("always_valid_p_value")
    return ENV.get_template("experiment.html.j2").render(
        title=r.get("name", exp), r=r, assets=assets, home=home, version=__version__,
        health=_health(r), warnings=r["health"].get("warnings", []), metrics=metrics,
        score_rows=[_score_row(e) for e in effects if e["segment"] is None],
        bar_scale=int(BAR_SCALE * 100), forests=forests, segment_charts=segs,
        timeline=_save(charts.timeline(seq, f"{exp}-timeline"), folder, tables) if seq else None,
        seq=seq, seq_p=pvalue(p_seq),
        money=_save(charts.money(effects, r["primary_metric"], f"{exp}-money"), folder, tables),
        landing=_save(charts.landing(r.get("landing") or [], f"{exp}-landing"), folder, tables),
        contribution=contribution, interactions=interactions, results_json=results_json)



def render_multichannel(mc: dict[str, Any], folder: Path, assets: str = "assets",
                        home: str = "index.html") -> str:
    """The multichannel page: premium estimates side by side, decomposition, appetence."""
    if "error" in mc:
        return ENV.get_template("multichannel_error.html.j2").render(
            title="Multichannel", error=mc["error"], assets=assets, home=home,
            version=__version__)
    iv = mc.get("iv")
    ov = mc.get("overlap", {})
    return ENV.get_template("multichannel.html.j2").render(
        title="Multichannel value", mc=mc, assets=assets, home=home, version=__version__,
        share=pct(mc["share_multichannel"], signed=False),
        naive=f"{mc['naive_ratio']:.2f}x {_ratio_ci(mc.get('naive_ratio_ci'))}",
        adjusted=[(k, f"{v['ratio']:.2f}x {_ratio_ci(v['ci'])}")
                  for k, v in mc.get("adjusted", {}).items()],
        iv=None if not iv else {
            "experiment": iv["experiment"], "weak": iv.get("weak_instrument"),
            "text": f"{money(iv['effect'], True)} {interval(iv['effect_ci'], 'abs')}",
            "fs": pct(iv["first_stage"], signed=False)},
        premium=_save(charts.premium_estimates(mc, "mc-premium"), folder, "tables"),
        decomposition=_save(charts.decomposition(mc, "mc-decomposition"), folder, "tables"),
        heatmap=_save(charts.appetence_heatmap(mc.get("appetence", []), "mc-appetence"),
                      folder, "tables"),
        overlap_extreme=pct(ov.get("share_extreme_propensity"), signed=False),
        smd_before=f"{ov.get('max_abs_smd_before', float('nan')):.2f}",
        smd_after=f"{ov.get('max_abs_smd_after', float('nan')):.2f}")


def _ratio_ci(ci: Any) -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return ""
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"
