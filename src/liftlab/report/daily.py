"""The daily run: every experiment active on a date, one page each, an index, a digest.

Output is built in a temporary folder and swapped into ``reports/DATE`` in one rename, under
a lock, so a crash or a second run at the same time never leaves a half-written report.
One failing experiment is listed with its error and never stops the others.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liftlab import __version__
from liftlab.core.errors import LiftlabError
from liftlab.core.fsio import (
    atomic_write_json,
    atomic_write_text,
    claim_root,
    exclusive_lock,
    replace_dir,
)
from liftlab.report import charts
from liftlab.report.format import decided_by, interval, money, pct, ratio
from liftlab.report.pages import (
    ENV,
    _bar,
    _p_title,
    _rel_interval,
    _save,
    copy_plotly,
    estimate_label,
    render_experiment,
    render_multichannel,
)
from liftlab.spec.geo import GeoExperiment
from liftlab.spec.models import Experiment

log = logging.getLogger("liftlab.report")
ENDED_DAYS_SHOWN = 28  # a finished experiment stays on the report for its final readout
SEVERITY = {"error": ("bad", "✖"), "warning": ("amber", "!"), "info": ("warn", "i")}
# An ended experiment the monitor left undecided is decided by the scorecard's verdict on
# its primary metric at the planned end (the test it was sized for).
FIXED_HORIZON = "fixed_horizon"
FIXED_HORIZON_DECISION = {"desired": "treatment_wins", "undesired": "treatment_loses"}
SAFE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")  # the spec's id rule: a file name, never a path


@dataclass(frozen=True)
class Outcome:
    """One experiment of the run: its results, or the error that stopped it."""

    id: str
    name: str
    source: str
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """running, decided, needs attention or failed: a decision is a sequential decision
        actually reached; a failed sample-ratio or design check, an error-level warning or an
        experiment that ended without a decision needs a person."""
        if self.error is not None:
            return "failed"
        r = self.result or {}
        if _alarming(r):
            return "needs attention"
        if any(d != "continue" for d in _channel_decisions(r).values()):
            return "decided"
        return "needs attention" if r.get("status") == "ended" else "running"

    @property
    def has_warnings(self) -> bool:
        return self.result is not None and any(
            w.get("severity") in ("warning", "error") for w in _warnings(self.result))


@dataclass(frozen=True)
class DailyRun:
    """The outcome of one daily run and where its report was written."""

    date: dt.date
    outcomes: tuple[Outcome, ...]
    folder: Path
    freshness: dict[str, str] = field(default_factory=dict)
    multichannel: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        items = []
        for o in self.outcomes:
            item: dict[str, Any] = {"experiment": o.id, "name": o.name, "status": o.status,
                                    "error": o.error}
            if o.result is not None:
                p = _primary(o.result)
                item.update({
                    "decision": _decision(o.result),
                    "primary_metric": o.result.get("primary_metric"),
                    "lift_rel": p.get("lift_rel") if p else None,
                    "lift_rel_ci": p.get("lift_rel_ci") if p else None,
                    "p_value": p.get("p_value") if p else None,
                    "roi": p.get("roi") if p else None,
                    "channels": _channel_summary(o.result),
                    "warnings": [w["message"] for w in _warnings(o.result)
                                 if w.get("severity") != "info"]})
            items.append(item)
        return {"date": self.date.isoformat(), "liftlab": __version__,
                "freshness": self.freshness, "experiments": items}


def is_active(spec: Experiment | GeoExperiment, date: dt.date) -> bool:
    """Started on or before ``date`` and ended at most ENDED_DAYS_SHOWN days before it."""
    return spec.start <= date and (date - spec.end).days <= ENDED_DAYS_SHOWN


def run_daily(specs: Sequence[tuple[Path, Experiment | LiftlabError]], date: dt.date,
              out_dir: Path, analyze: Callable[[Experiment, dt.datetime], dict[str, Any]],
              freshness: dict[str, str] | None = None, progress: bool = False,
              multichannel: Callable[[dict[str, dict[str, Any]]], dict[str, Any] | None]
              | None = None, force: bool = False) -> DailyRun:
    """Analyse every active experiment and write ``out_dir/DATE`` atomically.

    ``out_dir`` holds the history: only ``DATE`` is replaced (see ``fsio.replace_dir``; a
    folder liftlab did not write needs ``force``). ``multichannel`` builds the multichannel
    page from the experiments' results (by id), so an encouragement experiment's IV is read
    from its analysis, not computed again."""
    claim_root(out_dir, "reports", force)
    as_of = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    todo = [(p, s) for p, s in specs
            if not isinstance(s, Experiment | GeoExperiment) or is_active(s, date)]
    outcomes = []
    for path, spec in _progress(todo, progress):
        if not isinstance(spec, Experiment | GeoExperiment):
            outcomes.append(Outcome(path.stem, path.stem, str(path), error=str(spec)))
            continue
        if not SAFE_ID.fullmatch(spec.id):
            outcomes.append(Outcome(spec.id, spec.title, str(path), error=(
                f"experiment id {spec.id!r} is not a safe file name: use lower-case letters, "
                "digits and dashes")))
            continue
        log.info("analysing %s", spec.id)
        try:
            outcomes.append(Outcome(spec.id, spec.title, str(path), analyze(spec, as_of)))
        except LiftlabError as exc:
            log.warning("%s failed: %s", spec.id, exc)
            outcomes.append(Outcome(spec.id, spec.title, str(path), error=str(exc)))
        except Exception as exc:  # one broken experiment never stops the others
            log.exception("%s failed unexpectedly", spec.id)
            outcomes.append(Outcome(spec.id, spec.title, str(path),
                                    error=f"internal error: {type(exc).__name__}: {exc}"))
    results = {o.id: o.result for o in outcomes if o.result is not None}
    run = DailyRun(date, tuple(outcomes), out_dir / date.isoformat(), freshness or {},
                   multichannel(results) if multichannel else None)
    with exclusive_lock(out_dir / ".liftlab.lock"):
        replace_dir(run.folder, "report-date", force, lambda folder: write_run(run, folder))
    return run


def _progress(items: list[Any], show: bool) -> Any:
    """A rich progress bar on an interactive terminal; plain logging otherwise."""
    if not (show and sys.stderr.isatty()):
        return items
    from rich.progress import track

    return track(items, description="analysing", console=None, transient=True)


def write_run(run: DailyRun, folder: Path) -> None:
    """Every file of the report into ``folder`` (the temporary folder of the atomic swap)."""
    copy_plotly(folder / "assets")
    for o in run.outcomes:
        if o.result is None:
            continue
        if not SAFE_ID.fullmatch(o.id):
            raise ValueError(f"refusing to write outside the report: experiment id {o.id!r}")
        exp = folder / "experiments" / o.id
        atomic_write_json(exp / "results.json", o.result)
        if "geo" in o.result:
            from liftlab.report.geo_page import render_geo

            html = render_geo(o.result, folder, assets="../../assets", home="../../index.html")
        else:
            html = render_experiment(o.result, folder, assets="../../assets",
                                     home="../../index.html", results_json="results.json")
        atomic_write_text(exp / "index.html", _retarget(html))
    if run.multichannel is not None:
        atomic_write_json(folder / "multichannel.json", run.multichannel)
        atomic_write_text(folder / "multichannel.html",
                          render_multichannel(run.multichannel, folder))
    atomic_write_text(folder / "index.html", render_index(run, folder))
    summary = run.summary()
    atomic_write_json(folder / "summary.json", summary)
    atomic_write_text(folder / "summary.md", render_markdown(run))


def _retarget(html: str) -> str:
    """Chart tables live under DATE/tables: links from experiments/ID/ go up two levels."""
    return html.replace('href="tables/', 'href="../../tables/')


def _primary(r: dict[str, Any]) -> dict[str, Any] | None:
    rows = [e for e in r["effects"] if e["metric"] == r.get("primary_metric")
            and e["segment"] is None]
    return rows[0] if rows else None


def _warnings(r: dict[str, Any]) -> list[dict[str, Any]]:
    return list(r["health"].get("warnings") or [])


def _alarming(r: dict[str, Any]) -> bool:
    h = r["health"]
    return (not h.get("srm_ok", True)
            or any(c.get("status") == "error" for c in h.get("design_checks") or [])
            or any(w.get("severity") == "error" for w in _warnings(r)))


def _channel_decisions(r: dict[str, Any]) -> dict[str, str]:
    """The decision of each channel (and variant) of the primary metric: the monitor's
    (``_monitor_decisions``); once a healthy experiment has ended without one, the
    scorecard's fixed-horizon verdict at the planned end (``FIXED_HORIZON``)."""
    monitor = _monitor_decisions(r)
    final = r.get("status") == "ended" and not _alarming(r) and "geo" not in r
    verdicts = {_arm(e): e.get("verdict") or "" for e in r["effects"]
                if e["metric"] == r.get("primary_metric") and e["segment"] is None}
    return {arm: (FIXED_HORIZON_DECISION.get(verdicts.get(arm, ""), d)
                  if d == "continue" and final else d) for arm, d in monitor.items()}


def _monitor_decisions(r: dict[str, Any]) -> dict[str, str]:
    """The sequential decision of each channel (and variant) of the primary metric: its own
    comparison when the monitor reports one, else the experiment's decision. A geo test's is
    its final readout's."""
    if "geo" in r:
        return {_arm(e): r["geo"]["decision"] for e in r["effects"]}
    seq = r.get("sequential") or {}
    own = {_arm(c): c.get("decision") or "continue" for c in seq.get("comparisons") or []
           if c.get("metric") in (None, r.get("primary_metric"))}
    return {_arm(e): own.get(_arm(e), seq.get("decision") or "continue")
            for e in r["effects"] if e["metric"] == r.get("primary_metric")
            and e["segment"] is None}


def _decided_by(r: dict[str, Any]) -> dict[str, str | None]:
    """Per channel (and variant) of the primary metric: the test that made its decision."""
    seq = r.get("sequential") or {}
    by = {_arm(c): c.get("decided_by") for c in seq.get("comparisons") or []
          if c.get("metric") in (None, r.get("primary_metric"))}
    monitor = _monitor_decisions(r)
    return {arm: FIXED_HORIZON if d != monitor[arm] else by.get(arm)
            for arm, d in _channel_decisions(r).items()}


def _channel_summary(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Per channel (and variant) of the primary metric: the decision with the test that made
    it, and the scorecard's verdict (summary.json; tomorrow's "since yesterday")."""
    by = _decided_by(r)
    decisions = _channel_decisions(r)
    return [{"channel": e["channel"], "variant": e.get("variant"),
             "decision": decisions[_arm(e)], "decided_by": by.get(_arm(e)),
             "verdict": e.get("verdict")}
            for e in r["effects"] if e["metric"] == r.get("primary_metric")
            and e["segment"] is None]


def _arm(e: dict[str, Any]) -> str:
    return (e.get("channel") or "") + (f" / {e['variant']}" if e.get("variant") else "")


def _row_decision(r: dict[str, Any], decision: str) -> str:
    """What the index says of one channel: srm, its sequential decision, or that the
    experiment ended without one (its final readout is on its page)."""
    if not r["health"].get("srm_ok", True):
        return "srm"
    if decision == "continue" and r.get("status") == "ended":
        return "ended, no decision"
    return decision


def _decision(r: dict[str, Any]) -> str:
    if not r["health"].get("srm_ok", True):
        return "srm"
    if "geo" in r:
        return str(r["geo"]["decision"])
    seq = r.get("sequential") or {}
    return seq.get("decision") or "continue"


def render_index(run: DailyRun, folder: Path) -> str:
    counts = {"running": 0, "decided": 0, "needs attention": 0, "failed": 0}
    rows = []
    for o in run.outcomes:
        counts[o.status] += 1
        rows += _index_rows(o)
    portfolio = _portfolio_chart(run)
    charts_ = [c for c in [_save(portfolio, folder, "tables")] if c]
    shared = shared_notes(run.outcomes)
    for row in rows:
        row["flags"] = [f for f in row["flags"] if f["title"] not in shared] or [
            {"cls": "ok", "text": "✔ healthy", "title": ""}]
    return ENV.get_template("index.html.j2").render(
        title=f"Daily report {run.date}", date=run.date.isoformat(), freshness=run.freshness,
        counts=counts, shared=shared,
        warned=len({r["id"] for r in rows if any(f["cls"] in ("amber", "bad")
                                                 for f in r["flags"])}),
        since=since_yesterday(run.summary(), _yesterday(run)),
        status_cls={"running": "warn", "decided": "ok", "needs attention": "amber",
                    "failed": "bad"},
        status_icon={"running": "▶", "decided": "✔", "needs attention": "!", "failed": "✖"},
        rows=rows, charts=charts_, assets="assets", home="index.html", version=__version__,
        multichannel_href="multichannel.html" if run.multichannel is not None else None)


def shared_notes(outcomes: Sequence[Outcome]) -> list[str]:
    """Data-quality messages every experiment that reads the shared tables carries (such as
    returns in orders; a geo test reads its own table and carries none): said once on the
    index, not on every row."""
    sets = [found for o in outcomes if o.result is not None
            for found in [{w["message"] for w in _warnings(o.result)
                           if w.get("code") == "data_quality"}] if found]
    if len(sets) < 2:
        return []
    return sorted(set.intersection(*sets))


def _yesterday(run: DailyRun) -> dict[str, Any] | None:
    """The previous day's summary.json in the same reports folder, when there is one."""
    path = run.folder.parent / (run.date - dt.timedelta(days=1)).isoformat() / "summary.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def since_yesterday(today: dict[str, Any], yesterday: dict[str, Any] | None
                    ) -> dict[str, Any] | None:
    """What changed since the previous day's report: decisions reached (per experiment and
    channel), new warnings, failed runs (new ones marked). None without a previous report."""
    if yesterday is None:
        return None
    before = {x["experiment"]: x for x in yesterday.get("experiments", [])}
    decisions, warnings, failed = [], [], []
    for x in today["experiments"]:
        old = before.get(x["experiment"], {})
        if x["status"] == "failed":
            failed.append({"experiment": x["experiment"], "error": x.get("error") or "",
                           "new": old.get("status") != "failed"})
            continue
        was = {(c["channel"], c.get("variant")): c["decision"] for c in old.get("channels")
               or []}
        for c in x.get("channels") or []:
            key = (c["channel"], c.get("variant"))
            if c["decision"] != "continue" and was.get(key, "continue") != c["decision"]:
                decisions.append({"experiment": x["experiment"], "channel": _arm(c),
                                  "decision": c["decision"],
                                  "by": decided_by(c.get("decided_by"))})
        warnings += [{"experiment": x["experiment"], "message": w}
                     for w in x.get("warnings") or [] if w not in (old.get("warnings") or [])]
    return {"date": yesterday.get("date"), "decisions": decisions, "warnings": warnings,
            "failed": failed}


def _index_rows(o: Outcome) -> list[dict[str, Any]]:
    """One row per channel (and variant) of the experiment's primary metric; one row with
    the error for a failed experiment."""
    base: dict[str, Any] = {"id": o.id, "name": o.name, "href": None, "channel": "",
                            "days": "", "lift": "–", "ci": "", "lift_raw": "", "bar": None,
                            "estimate": "", "method": "", "by": "",
                            "verdict": "inconclusive", "decision": "failed", "roi": "–",
                            "roi_ci": "", "roi_raw": "", "flags": [], "error": o.error}
    if o.result is None:
        return [base]
    r = o.result
    flags = [{"cls": SEVERITY[w.get("severity", "warning")][0],
              "text": f"{SEVERITY[w.get('severity', 'warning')][1]} {w['code']}",
              "title": w.get("message", "")} for w in _warnings(r)
             if w.get("severity") != "info"]
    flags += [{"cls": "warn", "text": "… provisional", "title": w.get("message", "")}
              for w in _warnings(r) if w.get("code") == "immature_window"]
    base.update(href=f"experiments/{o.id}/index.html", decision="continue",
                days=f"{r.get('days_run', 0):.0f} / {r.get('days_planned', '')}",
                flags=flags or [{"cls": "ok", "text": "✔ healthy", "title": ""}])
    decisions = _channel_decisions(r)
    by = _decided_by(r)
    effects = [e for e in r["effects"] if e["metric"] == r.get("primary_metric")
               and e["segment"] is None]
    if not effects:
        return [{**base, "decision": _row_decision(r, "continue")}]
    rows = []
    for e in effects:
        ci = e.get("lift_rel_ci") or [None, None]
        decision = _row_decision(r, decisions[_arm(e)])
        rows.append({**base, "channel": _arm(e), "lift": pct(e.get("lift_rel")),
                     "ci": _rel_interval(e), "lift_raw": e.get("lift_rel", ""),
                     "estimate": estimate_label(e), "method": _p_title(e),
                     "by": decided_by(by.get(_arm(e))) if decision not in (
                         "continue", "ended, no decision", "srm") else "",
                     "verdict": e.get("verdict", "inconclusive"),
                     "bar": _bar(ci[0], e.get("lift_rel"), ci[1]),
                     "decision": decision,
                     "roi": ratio(e.get("roi")), "roi_ci": interval(e.get("roi_ci"), "ratio"),
                     "roi_raw": e.get("roi", "")})
    return rows


def _portfolio_chart(run: DailyRun) -> charts.Chart | None:
    """Incremental revenue and ROI of every channel of every experiment (primary metric)."""
    items = []
    for o in run.outcomes:
        if o.result is None:
            continue
        for e in o.result["effects"]:
            if e["metric"] == o.result.get("primary_metric") and e["segment"] is None:
                items.append({**e, "experiment": o.id,
                              "channel": e["channel"] + (f" / {e['variant']}"
                                                         if e.get("variant") else "")})
    return charts.portfolio(items, "portfolio-by-channel")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def md_text(text: object) -> str:
    """User text (experiment names, errors, warnings) as literal Markdown: on one line, HTML
    escaped and Markdown punctuation backslash-escaped, so nothing in it renders as a tag, a
    link, emphasis or a new list item."""
    one_line = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def render_markdown(run: DailyRun) -> str:
    lines = [f"# liftlab daily report {run.date}", ""]
    for o in run.outcomes:
        name, id_ = md_text(o.name), md_text(o.id)
        if o.error is not None:
            lines.append(f"- **{name}** ({id_}): FAILED: {md_text(o.error)}")
            continue
        r = o.result or {}
        p = _primary(r) or {}
        lines.append(f"- **{name}** ({id_}), {o.status}: {md_text(r.get('primary_metric'))} "
                     f"{pct(p.get('lift_rel'))} {interval(p.get('lift_rel_ci'))}, "
                     f"decision {_decision(r)}, incremental "
                     f"{money(p.get('incremental_total'), True)}")
        for w in _warnings(r):
            if w["severity"] != "info":
                lines.append(f"  - ⚠ {md_text(w['message'])}")
    lines += ["", "Open index.html in this folder for the dashboards."]
    return "\n".join(lines) + "\n"

