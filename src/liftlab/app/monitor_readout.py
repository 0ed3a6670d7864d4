"""The monitor's readout (the API's and ``liftlab monitor``'s): a module of its own so that
printing an hourly update does not import the batch analysis behind ``readouts.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from liftlab.analyses.monitor import MonitorResult
    from liftlab.report.plots import MonitorPlots


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


def _comparison_lines(
    comparisons: Sequence[dict[str, Any]], timeline: Sequence[dict[str, Any]]
) -> list[str]:
    """Per comparison (channel, variant): its decision and the test that made it, its last
    lift with the always-valid CI, and the responses so far."""
    from liftlab.report.format import decided_by

    lines = []
    for c in comparisons:
        name = c["channel"] + (f" / {c['variant']}" if c.get("variant") else "")
        rows = [
            r
            for r in timeline
            if r["channel"] == c["channel"] and r.get("variant") == c.get("variant")
        ]
        by = f" by {decided_by(c.get('decided_by'))}" if c.get("decided_at") else ""
        lines.append(f"  {name}: {c['decision']}{by}")
        if rows and rows[-1]["estimate"] is not None:
            last = rows[-1]
            lines.append(
                f"    lift {last['estimate']:+.4g} per unit, always-valid CI "
                f"[{last['ci'][0]:+.4g}, {last['ci'][1]:+.4g}], "
                f"{last['n_treatment']:,} vs {last['n_holdout']:,} matured units"
            )
        if rows:
            lines.append(
                f"    responses so far: {rows[-1]['events_treatment']:,} treatment "
                f"vs {rows[-1]['events_holdout']:,} holdout"
            )
    return lines
