"""Numbers for people: € 12,340; +5.8% [+3.2%, +8.5%]; p = 0.003."""

from __future__ import annotations

import math
from typing import Any

MONEY_METRICS = ("revenue", "margin", "spend", "aov", "value")


def _ok(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def num(x: Any, digits: int = 3) -> str:
    if not _ok(x):
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def money(x: Any, signed: bool = False) -> str:
    if not _ok(x):
        return "–"
    sign = ("+" if x > 0 else "−" if x < 0 else "") if signed else ("−" if x < 0 else "")
    v = abs(x)
    body = f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"
    return f"{sign}€ {body}"


def pct(x: Any, signed: bool = True) -> str:
    if not _ok(x):
        return "–"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def value(x: Any, metric: str, kind: str, signed: bool = False) -> str:
    """A metric's value in its natural unit (a rate as %, money in €)."""
    if kind == "binary":
        if not _ok(x):
            return "–"
        return f"{x * 100:+.2f} pp" if signed else f"{x:.2%}"
    if any(m in metric for m in MONEY_METRICS):
        return money(x, signed)
    if not _ok(x):
        return "–"
    return f"{x:+.4g}" if signed else num(x, 4)


def ratio(x: Any) -> str:
    """A return per euro spent (ROI, ROAS): 2.3x, 597x."""
    if not _ok(x):
        return "–"
    return (f"{x:,.2f}×" if abs(x) < 10 else f"{x:,.0f}×").replace("-", "−")


def interval(ci: Any, fmt: str = "pct") -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2 or not all(_ok(v) for v in ci):
        return ""
    if fmt == "pct":
        return f"[{pct(ci[0])}, {pct(ci[1])}]"
    if fmt == "money":
        return f"[{money(ci[0], True)}, {money(ci[1], True)}]"
    if fmt == "ratio":
        return f"[{ratio(ci[0])}, {ratio(ci[1])}]"
    return f"[{ci[0]:+.4g}, {ci[1]:+.4g}]"


BOUNDED_BELOW = ("binary", "count")  # a rate or a count cannot fall by more than 100%


def rel_floor(x: Any, kind: str) -> Any:
    """A relative lift as shown: a rate's or a count's never below −100% (results.json keeps
    the interval's own value)."""
    return max(x, -1.0) if kind in BOUNDED_BELOW and _ok(x) else x


def rel_interval(ci: Any, kind: str) -> str:
    """A relative interval; a rate's or a count's lower end below −100% reads "≥ −100%"."""
    if not interval(ci):
        return ""
    lo = "≥ −100%" if rel_floor(ci[0], kind) != ci[0] else pct(ci[0])
    return f"[{lo}, {pct(ci[1])}]"


def pvalue(p: Any) -> str:
    if not _ok(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: Any, name: str = "p") -> str:
    """A p-value in a sentence: "p = 0.014", "p < 0.001" (never "p = < 0.001")."""
    shown = pvalue(p)
    return f"{name} {shown}" if shown.startswith("<") else f"{name} = {shown}"



TEST_NAME = {
    "cohort": "the lift test on matured units (confidence sequence)",
    "event": "the response-count test (first responses per arm)",
    "group_sequential": "the group-sequential test at a planned look",
    "srm": "the sequential sample-ratio test",
    "fixed_horizon": "the scorecard's fixed-horizon test at the planned end",
}


def decided_by(test: Any) -> str:
    """The sequential test that made a decision, in words (``decided_by`` of the monitor)."""
    if isinstance(test, str) and test.startswith("guardrail:"):
        return f"the harm test on guardrail {test.split(':', 1)[1]}"
    return TEST_NAME.get(test, "a test the result does not name") if test else ""


def estimate_label(e: dict[str, Any]) -> str:
    """Which estimate a number is: CUPED-adjusted, winsorised (at which value and quantile)
    or raw."""
    parts = ["CUPED-adjusted" if e.get("cuped") else ""]
    if e.get("winsorize"):
        parts.append(winsorised(e))
    return ", ".join(p for p in parts if p) or "raw"


def winsorised(e: dict[str, Any]) -> str:
    """"winsorised at € 412.30 (p99.5)": the cap the engine applied (per unit, in the
    metric's unit) and its quantile; the quantile alone in a results.json without the cap."""
    q, cap = e["winsorize"] * 100, e.get("winsorize_cap")
    if not isinstance(cap, int | float) or not math.isfinite(cap):
        return f"winsorised at the {q:g}th percentile"
    unit = (f"€ {cap:,.2f}" if any(m in e["metric"] for m in MONEY_METRICS)
            else f"{cap:,.4g}")
    return f"winsorised at {unit} (p{q:g})"
