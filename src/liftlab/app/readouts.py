"""What the readouts of the commands and of the Python API share: each wraps a typed result
with ``summary()`` (the text the command line prints), ``to_polars()`` and a ``plot``
namespace of plotly figures (``report/plots.py``), imported when first used."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from liftlab.analyses.experiment import AnalysisResult

if TYPE_CHECKING:
    import polars as pl

    from liftlab.analyses.monitor import MonitorResult
    from liftlab.analyses.planning import PlanResult
    from liftlab.report.plots import AnalysisPlots, MonitorPlots, MultichannelPlots


@dataclass(frozen=True)
class Analysis(AnalysisResult):
    """An analysis as the Python API returns it: the result with its ``plot`` namespace."""

    @classmethod
    def of(cls, result: AnalysisResult) -> Analysis:
        return cls(**{f.name: getattr(result, f.name) for f in fields(result)})

    @property
    def plot(self) -> AnalysisPlots:
        """Plotly figures of this result: ``plot.forest()``, ``plot.segments(...)``, ..."""
        from liftlab.report.plots import AnalysisPlots

        return AnalysisPlots(self.to_dict())


@dataclass(frozen=True)
class MonitorReadout:
    """The always-valid readout at a moment (the API's ``monitor``)."""

    result: MonitorResult
    as_of_basis: str | None

    def to_json(self) -> dict[str, Any]:
        """The ``liftlab monitor --json`` document."""
        return {**self.result.to_json(), "as_of_basis": self.as_of_basis}

    def summary(self) -> str:
        r = self.result
        lines = [
            f"{r.experiment} as of {r.as_of:%Y-%m-%d %H:%M} UTC"
            + (f" ({self.as_of_basis})" if self.as_of_basis else "")
            + f": {r.decision}"
            + (f" since {r.decided_at:%Y-%m-%d %H:%M}" if r.decided_at else "")
            + f" (always-valid p = {r.always_valid_p_value:.3g})"
        ]
        lines += _comparison_lines(r.comparisons, r.timeline)
        lines += [f"  guardrail {g['metric']}: {g['decision']}" for g in r.guardrails]
        if r.note:
            lines.append(f"  note: {r.note}")
        return "\n".join(lines)

    def to_polars(self) -> pl.DataFrame:
        """The hourly timeline, one row per hour and comparison (intervals as _lo/_hi)."""
        import polars as pl

        rows = [
            {
                **{k: v for k, v in row.items() if k != "ci"},
                "ci_lo": row["ci"][0],
                "ci_hi": row["ci"][1],
            }
            for row in self.result.timeline
        ]
        return pl.DataFrame(rows, infer_schema_length=None)

    @property
    def plot(self) -> MonitorPlots:
        from liftlab.report.plots import MonitorPlots

        return MonitorPlots(self.to_json())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())


@dataclass(frozen=True)
class PlanReadout:
    """The plan of an experiment from the history before its start (the API's ``plan``)."""

    result: PlanResult

    def to_json(self) -> dict[str, Any]:
        """The ``liftlab plan --json`` document."""
        return self.result.to_json()

    def summary(self) -> str:
        return self.result.summary()

    def to_polars(self) -> pl.DataFrame:
        """One row per channel, arm and metric: sizes, MDE, holdout cost (scalar fields)."""
        import polars as pl

        rows = [
            {k: v for k, v in r.to_dict().items() if not isinstance(v, dict | list)}
            for r in self.result.rows
        ]
        return pl.DataFrame(rows, infer_schema_length=None)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())


@dataclass(frozen=True)
class MultichannelReadout:
    """The value of multichannel clients (the API's ``multichannel``; the ``--json``
    document in ``results``)."""

    results: dict[str, Any]

    def summary(self) -> str:
        r = self.results
        d = r["decomposition"]
        lines = [
            f"{r['n_clients']:,} active clients, {r['share_multichannel']:.1%} multichannel",
            f"naive premium {r['naive_ratio']:.2f}x = retention {d['retention']:.2f} x "
            f"frequency {d['frequency']:.2f} x basket {d['basket']:.2f}",
        ]
        lines += [
            f"adjusted ({name}) {a['ratio']:.2f}x [{a['ci'][0]:.2f}, {a['ci'][1]:.2f}]"
            for name, a in r["adjusted"].items()
        ]
        iv = r.get("iv")
        if iv:
            lines.append(
                f"instrumented ({iv['experiment']}): {iv['effect']:+.2f} per adopter "
                f"[{iv['effect_ci'][0]:+.2f}, {iv['effect_ci'][1]:+.2f}], first "
                f"stage {iv['first_stage']:.1%}"
            )
        lines += [f"! {w}" for w in r["warnings"]]
        return "\n".join(lines)

    def to_polars(self) -> pl.DataFrame:
        """One row per estimate of the value ratio (multichannel / single-channel client):
        naive, each adjustment, with its interval."""
        import polars as pl

        r = self.results
        rows = [
            {
                "estimate": "naive",
                "ratio": r["naive_ratio"],
                "ci_lo": r["naive_ratio_ci"][0],
                "ci_hi": r["naive_ratio_ci"][1],
            }
        ]
        rows += [
            {"estimate": name, "ratio": a["ratio"], "ci_lo": a["ci"][0], "ci_hi": a["ci"][1]}
            for name, a in r["adjusted"].items()
        ]
        return pl.DataFrame(
            rows,
            schema={
                "estimate": pl.String,
                "ratio": pl.Float64,
                "ci_lo": pl.Float64,
                "ci_hi": pl.Float64,
            },
        )

    @property
    def plot(self) -> MultichannelPlots:
        from liftlab.report.plots import MultichannelPlots

        return MultichannelPlots(self.results)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())


def _comparison_lines(comparisons: Sequence[dict[str, Any]],
                      timeline: Sequence[dict[str, Any]]) -> list[str]:
    """Per comparison (channel, variant): its decision and the test that made it, its last
    lift with the always-valid CI, and the responses so far."""
    from liftlab.report.format import decided_by

    lines = []
    for c in comparisons:
        name = c["channel"] + (f" / {c['variant']}" if c.get("variant") else "")
        rows = [r for r in timeline if r["channel"] == c["channel"]
                and r.get("variant") == c.get("variant")]
        by = f" by {decided_by(c.get('decided_by'))}" if c.get("decided_at") else ""
        lines.append(f"  {name}: {c['decision']}{by}")
        if rows and rows[-1]["estimate"] is not None:
            last = rows[-1]
            lines.append(f"    lift {last['estimate']:+.4g} per unit, always-valid CI "
                         f"[{last['ci'][0]:+.4g}, {last['ci'][1]:+.4g}], "
                         f"{last['n_treatment']:,} vs {last['n_holdout']:,} matured units")
        if rows:
            lines.append(f"    responses so far: {rows[-1]['events_treatment']:,} treatment "
                         f"vs {rows[-1]['events_holdout']:,} holdout")
    return lines
