"""The pages' charts skip plotly's per-figure template (issue 23): each figure is built with an
empty template and ``Chart.html`` writes the template's JSON in at the end, instead of plotly
validating and copying the whole template into every figure. The page must not change: every
chart of every kind of page (experiment, with its pressure and over-time charts; multichannel;
the daily index; geo; targeting) gives, to the byte, the HTML of plotly's own route (the
template named on the figure, ``Figure.to_html``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from liftlab.app.cli import app
from liftlab.app.geo_synth import write_geo_metrics
from liftlab.report import charts
from liftlab.report.daily import DailyRun, Outcome, render_index
from liftlab.report.geo_page import render_geo
from liftlab.report.pages import render_experiment, render_multichannel
from liftlab.report.targeting_page import drivers_chart
from test_daily import DATE
from test_report import load

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"displaylogo": False, "responsive": True}


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[charts.Chart, str]]:
    """Every chart a page writes, with the HTML the fast route gave it."""
    seen: list[tuple[charts.Chart, str]] = []
    fast = charts.Chart.html

    def recording(chart: charts.Chart) -> str:
        html = fast(chart)
        seen.append((chart, html))
        return html

    monkeypatch.setattr(charts.Chart, "html", recording)
    return seen


def _plotly_route(chart: charts.Chart) -> str:
    """What plotly writes with the template named on the figure (validated and copied in),
    and the data arrays of ``lean`` traces validated into the figure."""
    fig = chart.plotly_figure().update_layout(template=charts.TEMPLATE)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=chart.key, config=CONFIG)


def _check(drawn: list[tuple[charts.Chart, str]], least: int) -> None:
    assert len(drawn) >= least, [c.key for c, _ in drawn]
    for chart, html in drawn:
        assert html == _plotly_route(chart), chart.key
        assert '"template":{"data":{' in html  # the template is in the page, not left empty


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("spring-factorial", {"forest", "timeline", "segments", "money", "posteriors"}),
        ("email-flash", {"forest", "timeline"}),
        ("web-onboarding", {"forest", "segments"}),
        ("email-frequency", {"forest", "pressure"}),
    ],
)
def test_experiment_pages_draw_plotlys_figures(drawn, tmp_path: Path, name: str, kinds: set):
    render_experiment(load(name), tmp_path)
    assert kinds <= {c.key.removeprefix(f"{name}-").split("-")[0] for c, _ in drawn}
    _check(drawn, len(kinds))


def test_multichannel_and_index_pages_draw_plotlys_figures(drawn, tmp_path: Path):
    render_multichannel(load("multichannel"), tmp_path)
    outcomes = tuple(
        Outcome(r["experiment"], r["name"], "x.yaml", r)
        for r in map(load, ("spring-factorial", "email-flash", "web-onboarding"))
    )
    render_index(DailyRun(DATE, outcomes, tmp_path), tmp_path)
    assert any(c.key == "portfolio-by-channel" for c, _ in drawn)
    _check(drawn, 4)


def test_targeting_charts_draw_plotlys_figures(drawn):
    t: dict[str, Any] = {
        "channels": [
            {
                "label": "email",
                "drivers": [
                    {"feature": "revenue|pre", "importance": 0.5},
                    {"feature": "segment", "importance": 0.2},
                ],
            }
        ]
    }
    chart = drivers_chart(t)
    assert chart is not None
    drawn.append((chart, chart.html()))
    _check(drawn, 2)


def test_the_geo_page_draws_plotlys_figures(drawn, tmp_path: Path):
    write_geo_metrics(tmp_path / "data")
    out = tmp_path / "out"
    done = CliRunner().invoke(
        app,
        [
            "analyze",
            str(ROOT / "experiments" / "tv-winter.yaml"),
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(out),
        ],
    )
    assert done.exit_code == 0, done.output
    drawn.clear()  # the command's own page, then this one's
    render_geo(json.loads((out / "results.json").read_text()), tmp_path / "page")
    _check(drawn, 2)


def test_the_template_is_plotlys():
    """The JSON written in is the template plotly itself puts into a figure that names it."""
    import plotly.graph_objects as go

    named = go.Figure(layout={"template": charts.TEMPLATE}).to_dict()["layout"]["template"]
    assert charts.template_json() == named
    assert json.dumps(charts.template_json()) == json.dumps(named)  # key order too
    empty = charts.figure().to_dict()["layout"]["template"]
    assert empty != named and charts.figure_json(charts.figure())["layout"]["template"] == named


@pytest.mark.parametrize("traces", [0, 2])
def test_lines_are_the_shapes_plotly_makes(traces: int):
    """``charts.vline`` / ``hline`` add what ``add_vline`` / ``add_hline`` add to a figure
    without subplots (with or without data), key order included."""
    import plotly.graph_objects as go

    mine, plotlys = charts.figure(), charts.figure()
    for fig in (mine, plotlys):
        for k in range(traces):
            fig.add_trace(go.Scatter(x=[k, k + 1], y=[k, 2 * k]))
    line = {"color": "#101828", "dash": "dot", "width": 1}
    charts.vline(mine, "2026-02-03", line)
    plotlys.add_vline(x="2026-02-03", line=line)
    charts.hline(mine, 0, line)
    plotlys.add_hline(y=0, line=line)
    charts.vline(mine, 1.5, {"color": "#101828", "width": 1})
    plotlys.add_vline(x=1.5, line={"color": "#101828", "width": 1})
    assert len(mine.layout.shapes) == 3
    assert json.dumps(mine.to_dict()) == json.dumps(plotlys.to_dict())


def _panels(filled: set[int]):
    """Three subplots in one column (as the over-time chart), traces in the ``filled`` rows."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, figure=charts.figure())
    for row in sorted(filled):
        fig.add_trace(go.Scatter(x=["2026-02-01", "2026-02-02"], y=[row, 2.5]), row=row, col=1)
    # a decision's note sits on a row's domain: plotly does not count it as the row's data
    fig.add_annotation(x="2026-02-01", y=0.5, yref="y2 domain", showarrow=False, text="n")
    return fig


@pytest.mark.parametrize("filled", [set(), {1}, {3}, {1, 3}, {2, 3}, {1, 2, 3}])
def test_panel_lines_are_the_shapes_plotly_makes(filled: set[int]):
    """``charts.panel_vline`` / ``panel_hline`` add what ``add_vline`` / ``add_hline`` (with
    its annotation) add to stacked subplots, on the rows holding data only, key order
    included."""
    mine, plotlys = _panels(filled), _panels(filled)
    line = {"color": "#b42318", "dash": "dash"}
    charts.panel_vline(mine, "2026-02-01T13:00:00Z", line, filled)
    plotlys.add_vline(x="2026-02-01T13:00:00Z", line=line)
    for y, row in ((0, 1), (1, 2), (0.5, 3)):
        charts.panel_hline(mine, y, {"color": "#101828", "width": 1}, row, filled, f"bound {y}")
        plotlys.add_hline(
            y=y,
            line={"color": "#101828", "width": 1},
            row=row,
            col=1,
            annotation_text=f"bound {y}",
            annotation_position="bottom left",
        )
    assert json.dumps(mine.to_dict()) == json.dumps(plotlys.to_dict())
    assert len(mine.layout.shapes) == 2 * len(filled)  # a line and a bound per row with data


@pytest.mark.parametrize("subplots", [False, True])
def test_traces_added_at_once_are_plotlys_traces(subplots: bool):
    """``charts.add_traces`` of trace dicts gives the figure that ``add_trace`` of each
    ``go.Scatter`` gives (on subplots: with its row), key order included."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    def new():
        fig = charts.figure()
        return make_subplots(rows=3, cols=1, figure=fig) if subplots else fig

    traces = [
        dict(x=["a", "b"], y=[1.5, None], name="lo", line=dict(width=0), showlegend=False),
        dict(
            x=["a", "b"],
            y=[2, 3],
            fill="tonexty",
            fillcolor="rgba(1,2,3,0.15)",
            customdata=[0.5, 0.01],
            hovertemplate="%{customdata:.4f}<extra>x</extra>",
        ),
        dict(
            x=[1.0],
            y=[["m"], ["c"]],
            mode="markers",
            marker=dict(size=9, color="#fff"),
            error_x=dict(type="data", symmetric=False, array=[1.0], arrayminus=[0.5]),
        ),
    ]
    bar = dict(
        x=["app", "web"],
        y=[2.0, -1.0],
        marker=dict(color="#fff", opacity=0.45),
        offsetgroup="g",
        error_y=dict(type="data", array=[0.5, 0.0]),
    )
    rows = [1, 3, 3, 2] if subplots else None
    mine, plotlys = new(), new()
    charts.add_traces(
        mine, [*({"type": "scatter", **t} for t in traces), {"type": "bar", **bar}], rows
    )
    for k, t in enumerate([*map(go.Scatter, traces), go.Bar(bar)]):
        where = dict(row=rows[k], col=1) if rows else {}
        plotlys.add_trace(t, **where)
    assert len(mine.data) == 4
    assert json.dumps(mine.to_dict()) == json.dumps(plotlys.to_dict())


def test_the_api_timeline_holds_its_data():
    """The over-time chart keeps its data arrays out of the figure until it is drawn
    (``charts.lean``); the figure the Python API returns has them, validated by plotly."""
    from liftlab.report.plots import AnalysisPlots

    r = load("spring-factorial")
    table = charts.timeline(r["sequential"], r["primary_metric"], None, "k").table
    fig = AnalysisPlots(r).timeline()
    assert table.height and len(fig.data) >= 8
    assert all(len(t.x) == len(t.y) > 0 for t in fig.data)
    units = [t for t in fig.data if "matured units, treatment" in t.name]
    drawn = sorted((t.legendgroup, x, y) for t in units for x, y in zip(t.x, t.y, strict=True))
    rows = table.select(pl.col("channel").fill_null(""), "at", "n_treatment").rows()
    assert drawn == sorted(rows)


def test_cell_lines_and_bands_are_the_shapes_plotly_makes():
    """``charts.cell_vline`` / ``cell_vrect`` on the subplots of a grid holding data add what
    ``add_vline`` / ``add_vrect`` with that row and column add (plotly draws nothing on the
    empty cell), key order included."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    def grid():
        fig = make_subplots(rows=2, cols=2, figure=charts.figure())
        for row, col in ((1, 1), (2, 1), (2, 2)):
            fig.add_trace(go.Scatter(x=[1.0, 2.0], y=[row, col]), row=row, col=col)
        return fig

    mine, plotlys = grid(), grid()
    style = dict(fillcolor="#1b7f3b", opacity=0.08, line_width=0)
    line = {"color": "#1b7f3b", "dash": "dash"}
    for row in (1, 2):
        for col in (1, 2):
            plotlys.add_vrect(x0=1.2, x1=1.5, row=row, col=col, **style)
            plotlys.add_vline(x=1.3, line=line, row=row, col=col)
            if (row, col) != (1, 2):
                charts.cell_vrect(mine, 1.2, 1.5, 2 * (row - 1) + col, **style)
                charts.cell_vline(mine, 1.3, line, 2 * (row - 1) + col)
    assert len(mine.layout.shapes) == 6
    assert json.dumps(mine.to_dict()) == json.dumps(plotlys.to_dict())


def test_lean_arrays_of_numpy_numbers_are_written_as_plotly_writes_them():
    """A live result (before its JSON) holds numpy numbers: the over-time chart's arrays,
    written into the figure JSON unvalidated, give the page plotly's validated route gives."""
    import numpy as np

    r = load("spring-factorial")
    seq = r["sequential"]
    for row in seq["timeline"]:
        for key in ("estimate", "rate_ratio", "p_value"):
            if isinstance(row.get(key), float):
                row[key] = np.float64(row[key])
        for key in ("n_treatment", "n_holdout"):
            if isinstance(row.get(key), int):
                row[key] = np.int64(row[key])
    chart = charts.timeline(seq, r["primary_metric"], None, "t")
    assert chart is not None and chart.data
    assert any(isinstance(v, np.int64) for a in chart.data for v in a.get("y", []))
    assert chart.html() == _plotly_route(chart)
