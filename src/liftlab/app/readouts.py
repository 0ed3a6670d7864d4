"""What the readouts of the commands and of the Python API share: each wraps a typed result
with ``summary()`` (the text the command line prints), ``to_polars()`` and a ``plot``
namespace of plotly figures (``report/plots.py``), imported when first used."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from liftlab.analyses.experiment import AnalysisResult
from liftlab.app.monitor_readout import MonitorReadout as MonitorReadout  # its own module

if TYPE_CHECKING:
    import polars as pl

    from liftlab.analyses.planning import PlanResult
    from liftlab.report.plots import AnalysisPlots, MultichannelPlots


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
