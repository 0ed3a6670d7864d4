"""HTML pages from results dicts (results.json). No statistics here: only presentation.

Every value shown is escaped (jinja2 autoescape); charts come from ``charts.py`` with their
tidy tables written as CSV beside the page; plotly.js is one shared local file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2
import plotly

from liftlab import __version__
from liftlab.core.fsio import atomic_write_bytes, atomic_write_text
from liftlab.report import charts
from liftlab.report.charts import Chart
from liftlab.report.format import (
    decided_by,
    estimate_label,
    interval,
    money,
    num,
    p_is,
    pct,
    pvalue,
    ratio,
    rel_interval,
    value,
)

ENV = jinja2.Environment(loader=jinja2.PackageLoader("liftlab.report", "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined,
                         trim_blocks=True, lstrip_blocks=True)
ICON = {"desired": "▲", "undesired": "▼", "inconclusive": "●"}
BAR_SCALE = 0.5  # the shared CI bars span -50% .. +50% relative lift


def copy_plotly(assets: Path) -> None:
    """The one shared plotly.min.js (no CDN: pages work offline)."""
    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    atomic_write_bytes(assets / "plotly.min.js", src.read_bytes())


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
                + (f" ({p_is(p)})" if p is not None else "")})
    checks = h.get("data_checks", [])
    bad = [c for c in checks if not c.get("ok", True)]
    out.append({"level": "ok" if not bad else "amber", "icon": "✔" if not bad else "!",
                "label": "ok" if not bad else "check", "title": "Data checks",
                "detail": f"{len(checks) - len(bad)} of {len(checks)} passed"})
    design = h.get("design_checks") or []
    if design:
        worst = max({"ok": 0, "warning": 1, "error": 2}[c["status"]] for c in design)
        out.append({"level": ("ok", "amber", "bad")[worst], "icon": ("✔", "!", "✖")[worst],
                    "label": ("ok", "check", "error")[worst], "title": "Design checks",
                    "detail": "; ".join(
                        f"{c['channel']} {c['check']} "
                        + ("absent" if c["share"] is None or c["check"] == "contacts"
                           else f"{c['share']:.1%}") for c in design)})
    immature = any(w["code"] == "immature_window" for w in h.get("warnings", []))
    out.append({"level": "amber" if immature else "ok", "icon": "…" if immature else "✔",
                "label": "running" if immature else "complete",
                "title": "Conversion window",
                "detail": f"{r.get('days_run', 0):.0f} of {r.get('days_planned')} days"})
    for key, model in (("bayes", "Bayesian"), ("pressure", "dose-response")):
        diag = (r.get(key) or {}).get("diagnostics") or {}
        if diag:
            poor = bool(diag.get("warnings"))
            out.append({"level": "amber" if poor else "ok", "icon": "!" if poor else "✔",
                        "label": "poor" if poor else "ok", "title": f"Convergence ({model})",
                        "detail": f"r_hat max {diag.get('r_hat_max', float('nan')):.3f}, "
                                  f"{diag.get('divergences', 0)} divergences"})
    guards = [e for e in r["effects"] if e.get("guardrail") and e["segment"] is None]
    harmed = [e["metric"] for e in guards if e["verdict"] == "undesired"]
    harmed += [g["metric"] for g in (r.get("sequential") or {}).get("guardrails", [])
               if g.get("decision") == "harm" and g["metric"] not in harmed]
    out.append({"level": "bad" if harmed else "ok", "icon": "✖" if harmed else "✔",
                "label": "harm" if harmed else "ok", "title": "Guardrails",
                "detail": (f"harm on {', '.join(dict.fromkeys(harmed))}; " if harmed else "")
                + (", ".join(f"{e['metric']} {_arm(e)} {pct(e.get('lift_rel'))}"
                             for e in guards)
                   or "none defined")})
    return out


def _alarm(h: dict[str, Any]) -> list[str]:
    """Why the scorecard's numbers must not be trusted: a failed sample-ratio check or a design
    check at error (empty when there is no such reason)."""
    reasons = []
    if not h.get("srm_ok", True):
        p = h.get("srm_p_value")
        reasons.append("The sample-ratio check failed" + (f" ({p_is(p)})" if p is not None
                                                         else "")
                       + ": the arms are not the sizes the design planned.")
    for c in h.get("design_checks") or []:
        if c.get("status") == "error":
            reasons.append(f"Design check at error: {c['channel']} {c['check']}.")
    return reasons


def _caveat(r: dict[str, Any]) -> list[str]:
    """Why the numbers are provisional, short of untrustworthy (``_alarm``): a conversion
    window still open (late conversions to come) or a design check at warning level (such as
    some contamination of the holdout)."""
    h = r["health"]
    reasons = [f"{w['message'][:1].upper()}{w['message'][1:]}." for w in h.get("warnings") or []
               if w.get("code") == "immature_window"]
    reasons += [f"Design check at warning: {c['channel']} {c['check']}"
                + (f" {c['share']:.1%}." if isinstance(c.get("share"), float) else ".")
                for c in h.get("design_checks") or [] if c.get("status") == "warning"]
    return reasons


def _convergence(section: dict[str, Any] | None) -> list[str]:
    """Why a model's posterior numbers are doubtful: its sampler's warnings (``bayes``: P(lift
    > 0) and the Bayesian section; ``pressure``: the optimum, gain and P(pays))."""
    diag = (section or {}).get("diagnostics") or {}
    return [f"Doubtful: {w}." for w in diag.get("warnings") or []]


def _score_row(e: dict[str, Any]) -> dict[str, Any]:
    metric, kind = e["metric"], e.get("metric_kind", "mean")
    bayes = e.get("bayes") or {}
    prob = e.get("prob_positive", bayes.get("prob_positive"))
    rel_ci = e.get("lift_rel_ci") or [None, None]
    return {
        "metric": metric, "guardrail": e.get("guardrail", False), "comparison": _arm(e),
        "estimate": estimate_label(e),
        "n_treatment": f"{e.get('n_treatment', 0):,}", "n_holdout": f"{e.get('n_holdout', 0):,}",
        "holdout": value(e.get("mean_holdout"), metric, kind),
        "treatment": value(e.get("mean_treatment"), metric, kind),
        "lift_abs": value(e.get("lift_abs"), metric, kind, signed=True),
        "lift_abs_raw": _raw(e.get("lift_abs")),
        "abs_ci": _value_ci(e.get("lift_abs_ci"), metric, kind),
        "lift_rel": pct(e.get("lift_rel")), "lift_rel_raw": _raw(e.get("lift_rel")),
        "rel_ci": _rel_interval(e), "p": _p_text(e),
        "p_raw": _raw(e["p_adjusted"] if e.get("p_adjusted") is not None
                      else e.get("p_value")),
        "method": _p_title(e),
        "level": _level_note(e),
        "prob": pct(prob, signed=False) if prob is not None else "–",
        "verdict": e["verdict"], "icon": ICON[e["verdict"]], "error": e.get("error"),
        "direction": e.get("direction", "increase"),
        "bar": _bar(rel_ci[0], e.get("lift_rel"), rel_ci[1]),
    }


METHOD_LABEL = {
    "welch": "Welch t-test; relative interval by Fieller",
    "welch_cuped": "Welch t-test on CUPED-adjusted means; relative interval by Fieller",
    "delta_ratio": "delta method for a ratio metric; relative interval by Fieller",
    "score": "pooled score test of two proportions; score intervals",
    "fisher_exact": "Fisher's exact test (few events); score intervals",
    "lin_regression": "regression adjustment (OLS with centred covariates interacted with "
                      "treatment, robust variance); relative interval by Fieller",
    "delta_ratio_regression": "delta method for a ratio metric, regression-adjusted on its "
                              "linearisation; relative interval by Fieller",
}


def _p_text(e: dict[str, Any]) -> str:
    """The p-value the verdict used: the adjusted one when multiple testing applies (the raw
    one is in the cell's tooltip)."""
    p_adj = e.get("p_adjusted")
    if p_adj is None:
        return pvalue(e.get("p_value"))
    return f"{pvalue(p_adj)} adj."


def _p_title(e: dict[str, Any]) -> str:
    method = METHOD_LABEL.get(e.get("method") or "", "")
    reduction = e.get("variance_reduction")
    if e.get("cuped") and isinstance(reduction, float):
        method += f"; variance {-reduction:+.0%} by the covariates"
    if e.get("p_adjusted") is None:
        return method
    return f"{method}; adjusted for multiple testing, raw {p_is(e.get('p_value'))}"


def _level_note(e: dict[str, Any]) -> str:
    """Intervals of a multiple-testing family are drawn at the level matching the adjusted p."""
    level = e.get("ci_level")
    if e.get("p_adjusted") is None or not isinstance(level, float):
        return ""
    return f"{level * 100:.4g}% CI (adjusted)"


def _rel_interval(e: dict[str, Any]) -> str:
    """The relative interval; Fieller's is unbounded when the holdout mean cannot be told
    from zero, and says so."""
    ci = e.get("lift_rel_ci") or [None, None]
    shown = rel_interval(ci, e.get("metric_kind", "mean"))
    if shown or e.get("lift_rel") is None or e.get("error"):
        return shown
    lo = pct(ci[0]) if ci[0] is not None else "−∞"
    hi = pct(ci[1]) if ci[1] is not None else "+∞"
    return f"[{lo}, {hi}] (unbounded)"


def _value_ci(ci: Any, metric: str, kind: str) -> str:
    """An absolute-lift interval in the metric's own unit (€, percentage points...)."""
    if not interval(ci, "abs"):
        return ""
    return f"[{value(ci[0], metric, kind, True)}, {value(ci[1], metric, kind, True)}]"


def _raw(x: Any) -> str:
    """A sort key for a table cell: the exact number, or empty when missing. A numpy float
    (a live result, before its JSON) is written as the float it is in results.json: its own
    repr is ``np.float64(...)``, which the table's sort cannot read."""
    if not (isinstance(x, int | float) and math.isfinite(x)):
        return ""
    return repr(float(x)) if isinstance(x, float) else repr(x)


def _arm(e: dict[str, Any]) -> str:
    return e["channel"] + (f" / {e['variant']}" if e.get("variant") else "")


def _money_row(e: dict[str, Any]) -> dict[str, Any]:
    """One channel's money: the primary metric's increment (the scorecard's estimate times
    the treated units), margin, cost, ROI and ROAS."""
    n, ci = e.get("n_treatment") or 0, e.get("lift_abs_ci")
    total_ci = [ci[0] * n, ci[1] * n] if interval(ci, "abs") else None
    return {"comparison": _arm(e), "revenue": money(e.get("incremental_total"), True),
            "revenue_ci": interval(total_ci, "money"), "estimate": estimate_label(e),
            "margin": money(e.get("incremental_margin"), True),
            "margin_ci": interval(e.get("incremental_margin_ci"), "money"),
            "cost": money(e.get("cost")), "roi": ratio(e.get("roi")),
            "roi_ci": interval(e.get("roi_ci"), "ratio"), "roas": ratio(e.get("roas")),
            "prob_roi": pct(e.get("prob_roi_positive"), signed=False),
            "note": e.get("roi_note") or ""}


def _bayes_row(e: dict[str, Any]) -> dict[str, Any]:
    b = e["bayes"]
    hdi = b.get("hdi_rel") or [None, None]
    return {"metric": e["metric"], "comparison": _arm(e), "mean": pct(b.get("mean_rel")),
            "hdi": rel_interval(hdi, e.get("metric_kind", "mean")),
            "bar": _bar(hdi[0], b.get("mean_rel"), hdi[1]),
            "prob": pct(b.get("prob_positive"), signed=False),
            "prob_roi": pct(b.get("prob_roi_positive", e.get("prob_roi_positive")),
                            signed=False),
            "loss": value(b.get("expected_loss_treatment"), e["metric"],
                          e.get("metric_kind", "mean")),
            "method": b.get("method", "")}


def _save(chart: Chart | None, folder: Path, rel: str) -> dict[str, Any] | None:
    """Write the chart's table as CSV under ``folder/rel``; return what the template needs."""
    if chart is None:
        return None
    path = folder / rel / f"{chart.key}.csv"
    atomic_write_text(path, chart.table.write_csv())
    return {"html": chart.html(), "csv": f"{rel}/{chart.key}.csv", "title": chart.title}


def render_experiment(r: dict[str, Any], folder: Path, assets: str = "assets",
                      home: str = "index.html", results_json: str = "results.json") -> str:
    """The experiment page as HTML; its chart tables are written under ``folder/tables``.

    Only ``experiment``, ``as_of``, ``health`` and ``effects`` are required: every other
    section is shown when present and named as absent otherwise.
    """
    exp = r["experiment"]
    tables = f"tables/{exp}"
    effects = r["effects"]
    overall = [e for e in effects if e["segment"] is None]
    primary = r.get("primary_metric") or (overall[0]["metric"] if overall else "")
    metrics = list(dict.fromkeys(e["metric"] for e in overall if not e.get("guardrail")))
    forests = []
    for i, m in enumerate(metrics):
        saved = _save(charts.forest(effects, m, f"{exp}-forest-{i}"), folder, tables)
        forests.append({**saved, "metric": m})  # type: ignore[dict-item]
    seg_metrics = list(dict.fromkeys(e["metric"] for e in effects if e["segment"]))
    dims = sorted({k for e in effects if e["segment"] for k in e["segment"]})
    segs = []
    for i, m in enumerate(seg_metrics):
        for j, d in enumerate(dims):
            chart = charts.segments(effects, m, d, f"{exp}-segments-{i}-{j}")
            if chart.table.height:
                segs.append({**_save(chart, folder, tables), "key": f"{m}|{d}"})  # type: ignore[dict-item]
    seq = r.get("sequential") or {}
    series = list(dict.fromkeys((t.get("metric"), t.get("variant"))
                                for t in seq.get("timeline", [])))
    timelines = []
    for i, (m, v) in enumerate(series):
        saved = _save(charts.timeline(seq, m, v, f"{exp}-timeline-{i}"), folder, tables)
        if saved:
            timelines.append({**saved, "key": f"{m}{f' / {v}' if v else ''}"})
    contribution = [{
        "channel": c["channel"], "shapley": money(c.get("shapley"), True),
        "shapley_ci": interval(c.get("shapley_ci"), "money"),
        "solo": money(c.get("solo"), True), "solo_ci": interval(c.get("solo_ci"), "money"),
        "loo": money(c.get("leave_one_out"), True),
        "loo_ci": interval(c.get("leave_one_out_ci"), "money")}
        for c in r.get("contribution") or []]
    if len(contribution) < 2:  # one channel: its split is its own lift, raw; the scorecard's
        contribution = []
    interactions = [{
        "channels": " × ".join(i["channels"]), "metric": i["metric"],
        "estimate": value(i.get("estimate"), i["metric"], "mean", signed=True),
        "ci": _value_ci(i.get("ci"), i["metric"], "mean"), "p": pvalue(i.get("p_value")),
        "kind": i.get("kind") or "none",
        "cls": {"synergy": "ok", "cannibalisation": "bad"}.get(i.get("kind") or "", "warn")}
        for i in r.get("interactions") or []]
    definition = r.get("definition") or {}
    bayes = r.get("bayes") or {}
    return ENV.get_template("experiment.html.j2").render(
        title=r.get("name", exp), r=r, exp=exp, name=r.get("name", exp), primary=primary,
        meta=_meta(r), assets=assets, home=home, version=__version__,
        health=_health(r), alarm=_alarm(r["health"]), caveat=_caveat(r),
        convergence=_convergence(r.get("bayes")),
        pressure_doubt=_convergence(r.get("pressure")), warnings=r["health"].get("warnings", []),
        checks=r["health"].get("data_checks", []), metrics=metrics,
        score_rows=[_score_row(e) for e in overall if not e.get("guardrail")],
        guard_rows=[_score_row(e) for e in overall if e.get("guardrail")],
        bar_scale=int(BAR_SCALE * 100), forests=forests, segment_charts=segs,
        seg_metrics=seg_metrics, dims=dims, timelines=timelines, seq=seq,
        seq_p=p_is(seq.get("always_valid_p_value"), "always-valid p"),
        seq_decisions=_seq_decisions(seq, primary),
        money_margin=primary != next((e.get("roi_basis") for e in overall
                                      if e["metric"] == primary), None),
        guard_seq=seq.get("guardrails") or [],
        money=_save(charts.money(effects, primary, f"{exp}-money"), folder, tables),
        money_rows=[_money_row(e) for e in overall if e["metric"] == primary
                    and (e.get("incremental_total") is not None or e.get("roi") is not None)],
        landing=_save(charts.landing(r.get("landing") or [], f"{exp}-landing"), folder, tables),
        contribution=contribution, interactions=interactions,
        posteriors=_save(charts.posteriors(effects, f"{exp}-posteriors"), folder, tables),
        bayes_rows=[_bayes_row(e) for e in overall if e.get("bayes")],
        bayes_method=bayes.get("method"), diagnostics=_diagnostics(bayes.get("diagnostics")),
        definition=definition, parameters=sorted((definition.get("parameters") or {}).items()),
        software=sorted((definition.get("software") or {}).items()),
        results_json=results_json, quantile_rows=_quantile_rows(r.get("quantiles") or []),
        margin_rows=_margin_rows(overall), **_plan(r.get("plan")),
        **_pressure(r, folder, tables))


def _quantile_rows(effects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Quantile treatment effects (results.json ``quantiles``) as table rows."""
    return [{"comparison": q["channel"] + (f" / {q['variant']}" if q.get("variant") else ""),
             "metric": q["metric"], "quantile": f"p{q['quantile'] * 100:g}",
             "treatment": value(q.get("treatment"), q["metric"], "mean"),
             "holdout": value(q.get("holdout"), q["metric"], "mean"),
             "diff": value(q.get("diff"), q["metric"], "mean", signed=True),
             "ci": _value_ci(q.get("diff_ci"), q["metric"], "mean"),
             "method": q.get("method", "")} for q in effects]


def _margin_rows(effects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Guardrails with a non-inferiority margin: passed or not shown, with the p-value."""
    rows = []
    for e in effects:
        ni = e.get("non_inferiority")
        if not ni:
            continue
        arm = e["channel"] + (f" / {e['variant']}" if e.get("variant") else "")
        why = ni.get("note") or p_is(ni.get("p_value"))
        rows.append({"text": f"{e['metric']} on {arm} within {ni['margin']:.0%} ({why})",
                     "status": "non-inferior" if ni["passed"] else "not shown",
                     "cls": "treatment_wins" if ni["passed"] else "harm"})
    return rows


def _pressure(r: dict[str, Any], folder: Path, tables: str) -> dict[str, Any]:
    """The contact-pressure section (dose-response experiments only)."""
    from liftlab.report.pressure_page import arm_rows, curves, recommendations

    p = r.get("pressure")
    if not p:
        return {"pressure": None}
    return {"pressure": p, "pressure_rows": recommendations(p), "pressure_arms": arm_rows(p),
            "pressure_curves": _save(
        curves(p, f"{r['experiment']}-pressure"), folder, tables)}


def _seq_decisions(seq: dict[str, Any], primary: str) -> list[dict[str, str]]:
    """Each channel's sequential decision on the primary metric, when it was reached and the
    test that made it (the experiment's own decision when the monitor reports no channel)."""
    comps = [c for c in seq.get("comparisons") or [] if c.get("metric") in (None, primary)]
    return [{"comparison": _arm(c) if c.get("channel") else "all channels",
             "decision": c.get("decision") or "continue",
             "when": f"reached {c['decided_at']}" if c.get("decided_at") else "",
             "by": decided_by(c.get("decided_by")) if c.get("decided_at") else ""}
            for c in comps or ([seq] if seq else [])]


def _plan(plan: dict[str, Any] | None) -> dict[str, Any]:
    """The plan section: minimum detectable effects per channel and metric."""
    if not plan:
        return {"plan_rows": [], "plan_interactions": [], "plan_warnings": [],
                "plan_target": "", "plan_power": "", "plan_alpha": ""}
    rows = []
    for c in plan.get("channels", []):
        comparison = c["channel"] + (f" / {c['variant']}" if c.get("variant") else "")
        needs = []
        if c.get("holdout_for_target") is not None:
            needs.append(f"a {c['holdout_for_target']:.0%} holdout")
        if c.get("days_for_target") is not None:
            needs.append(f"{c['days_for_target']} days at the planned split")
        rows.append({"comparison": comparison, "metric": c["metric"],
                     "units": f"{c['n_treatment']:,} / {c['n_holdout']:,}",
                     "mde": pct(c.get("mde_rel")), "mde_abs": f"({c['mde_abs']:.4g} per unit)",
                     "reduction": _reduction(c),
                     "cost": money(c.get("holdout_cost")),
                     "needs": " or ".join(needs) or "not reachable in 84 days"})
    inter = [f"{' x '.join(i['channels'])} on {i.get('metric', '?')}: {pct(i.get('mde_rel'))} "
             f"({i.get('ratio_to_main_effect_mde', float('nan')):.1f}x a main effect's)"
             for i in plan.get("interactions", []) if i.get("mde_rel") is not None]
    return {"plan_rows": rows, "plan_interactions": inter,
            "plan_warnings": plan.get("warnings", []),
            "plan_target": pct(plan.get("target_mde_rel")), "plan_power": plan.get("power"),
            "plan_alpha": plan.get("alpha")}


def _reduction(c: dict[str, Any]) -> str:
    """The share of the variance the plan assumes the adjustment removes, and which
    adjustment: CUPED (with its correlation) or Lin's regression on the YAML's covariates."""
    reduction = c.get("variance_reduction") or 0.0
    if c.get("adjustment") == "lin_regression":
        return f"{reduction:.0%} (regression)"
    if c.get("adjustment") == "cuped":
        rho = round(c.get("cuped_rho") or 0, 2) + 0.0  # never "-0.00"
        return f"{reduction:.0%} (CUPED, ρ {rho:.2f})"
    return "none"


def _diagnostics(d: dict[str, Any] | None) -> str:
    """MCMC convergence in one line (empty for closed-form posteriors)."""
    if not d:
        return ""
    parts = [f"r̂ max {num(d.get('r_hat_max'), 4)}",
             f"smallest bulk ESS {num(d.get('ess_bulk_min'))}",
             f"{d.get('divergences', 0)} divergences", *d.get("warnings", [])]
    return " · ".join(parts)


def _meta(r: dict[str, Any]) -> list[str]:
    """The page's subtitle: what is known about the experiment, in order."""
    parts = [r["experiment"]]
    if r.get("design"):
        single = r["design"] == "factorial" and len(r.get("channels") or []) == 1
        parts.append("single-channel holdout" if single else f"{r['design']} design")
    if r.get("channels"):
        parts.append("channels: " + ", ".join(r["channels"]))
    if r.get("start") and r.get("end"):
        parts.append(f"{r['start']} → {r['end']}")
    if r.get("days_run") is not None:
        parts.append(f"day {r['days_run']:.0f} of {r.get('days_planned', '?')}")
    parts.append(f"as of {r['as_of']}" + (f" (default: {r['as_of_source']}, data up to "
                                          f"{r.get('data_freshness')})"
                                          if r.get("as_of_source") else ""))
    return parts


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
            "text": f"{money(iv['effect'], True)} {interval(iv['effect_ci'], 'money')}",
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
