"""The ``plot`` namespaces of the Python API: the report pages' plotly figures (charts.py),
one method each, drawn from a result's JSON document.

Each method returns a ``plotly.graph_objects.Figure``; a figure with nothing to draw (no
sequential readout, no segment of that name) raises a ValueError saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from liftlab.report.charts import Chart


def _figure(chart: Chart | None, why: str) -> go.Figure:
    if chart is None:
        raise ValueError(f"nothing to plot: {why}")
    return _styled(chart)


def _styled(chart: Chart) -> go.Figure:
    """The chart's figure with the pages' template (a chart is built without it)."""
    from liftlab.report.charts import TEMPLATE

    return chart.plotly_figure().update_layout(template=TEMPLATE)


@dataclass(frozen=True)
class AnalysisPlots:
    """Figures of one analysis (``liftlab.analyze(...).plot``)."""

    results: dict[str, Any]

    def _metric(self, metric: str | None) -> str:
        names = {e["metric"] for e in self.results["effects"]}
        chosen = metric or self.results["primary_metric"]
        if chosen not in names:
            raise ValueError(
                f"no metric {chosen!r} in the results; metrics: {', '.join(sorted(names))}"
            )
        return chosen

    def forest(self, metric: str | None = None) -> go.Figure:
        """Relative lift with its interval per channel arm (default: the primary metric)."""
        from liftlab.report import charts

        return _styled(charts.forest(self.results["effects"], self._metric(metric), "forest"))

    def segments(self, dimension: str, metric: str | None = None) -> go.Figure:
        """Absolute lift per value of one segment dimension, with the units of each."""
        from liftlab.report import charts

        dims = {k for e in self.results["effects"] if e["segment"] for k in e["segment"]}
        if dimension not in dims:
            raise ValueError(
                f"no segment dimension {dimension!r} in the results; "
                f"dimensions: {', '.join(sorted(dims)) or 'none'}"
            )
        return _styled(
            charts.segments(self.results["effects"], self._metric(metric), dimension, "segments")
        )

    def timeline(self, metric: str | None = None, variant: str | None = None) -> go.Figure:
        """The sequential readout over time (experiments with ``monitoring.sequential``)."""
        from liftlab.report import charts

        seq = self.results.get("sequential")
        if not seq:
            raise ValueError(
                "no sequential readout in these results (set monitoring: "
                "{sequential: true} in the YAML; folders only)"
            )
        chosen = self._metric(metric)
        return _figure(
            charts.timeline(seq, chosen, variant, "timeline"),
            f"no timeline for {chosen!r}, variant {variant!r}",
        )

    def money(self) -> go.Figure:
        """Cost, incremental margin and ROI per channel arm."""
        from liftlab.report import charts

        return _figure(
            charts.money(self.results["effects"], self.results["primary_metric"], "money"),
            "no cost or ROI in these results",
        )

    def posteriors(self) -> go.Figure:
        """The closed-form posteriors of the relative lifts."""
        from liftlab.report import charts

        return _figure(
            charts.posteriors(self.results["effects"], "posteriors"),
            "no posterior in these results",
        )

    def landing(self) -> go.Figure:
        """Where each channel's increment was bought, next to last-touch credit."""
        from liftlab.report import charts

        return _figure(
            charts.landing(self.results.get("landing") or [], "landing"),
            "no landing in these results (orders need a channel column)",
        )


@dataclass(frozen=True)
class MonitorPlots:
    """Figures of a monitor readout (``liftlab.monitor(...).plot`` in the Python API)."""

    readout: dict[str, Any]

    def timeline(self, metric: str, variant: str | None = None) -> go.Figure:
        """Cumulative lift with its confidence sequence per channel, and units per arm."""
        from liftlab.report import charts

        return _figure(
            charts.timeline(self.readout, metric, variant, "timeline"),
            f"no timeline row for metric {metric!r}, variant {variant!r}",
        )


@dataclass(frozen=True)
class MultichannelPlots:
    """Figures of a multichannel analysis (``liftlab.multichannel(...).plot`` in the Python API)."""

    results: dict[str, Any]

    def premium(self) -> go.Figure:
        """The value ratio of multichannel clients: naive, adjusted and instrumented."""
        from liftlab.report import charts

        return _styled(charts.premium_estimates(self.results, "premium"))

    def decomposition(self) -> go.Figure:
        """The naive ratio split into frequency, basket and retention."""
        from liftlab.report import charts

        return _styled(charts.decomposition(self.results, "decomposition"))

    def appetence(self) -> go.Figure:
        """Channel appetence by segment, as a heat map."""
        from liftlab.report import charts

        return _figure(
            charts.appetence_heatmap(self.results.get("appetence", []), "appetence"),
            "no appetence table",
        )
