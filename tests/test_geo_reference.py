"""Geo methods against published reference values on their reference implementations'
public example data (sources and blobs in tests/fixtures/geo/README.md).

TBR: google/matched_markets, ``matched_markets/csv/salesandcost.csv`` with
``geoassignment.csv`` (group 2 treated), pre-period 2015-01-05 to 2015-02-16, test period
2015-02-16 to 2015-03-16 (the periods of ``examples/salesandcost.py``), spend change 50,000.
The R values are those quoted in ``matched_markets/tests/test_tbr.py`` (slope 0.9997001) and
``matched_markets/tests/test_tbr_iroas.py`` (iROAS 2.946742, one-sided 90% lower bound
2.826194, two-sided 90% interval 2.79135 to 3.102936, incremental response 147337.122,
relative lift 0.173998 with two-sided 90% interval 0.163273 to 0.184885).

Synthetic control: CausalPy's ``california_prop99.csv`` (packs per capita, 1970-2000,
California treated from 1989, 38 control states); Arkhangelsky et al. (2021), Table 1:
synthetic control -19.6 and difference-in-differences -27.3 (mean effect per year,
1989-2000). synthdid's SC solver (Frank-Wolfe with a stopping rule and a 1e-6 ridge) is
matched within 1%; DID has a closed form and is matched to three significant digits (it
checks the data file against the paper's).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from liftlab.app.cli import app
from liftlab.stats.geo import synthetic_control, trimmed_match

FIXTURES = Path(__file__).parent / "fixtures" / "geo"


def _sig3(x: float, ref: float) -> bool:
    """Equal to three significant digits."""
    return f"{x:.3g}" == f"{ref:.3g}"


@pytest.fixture(scope="module")
def matched_markets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mm")
    data = root / "data"
    data.mkdir()
    snc = pl.read_parquet(FIXTURES / "salesandcost.parquet")
    snc.write_parquet(data / "geo_metrics.parquet")
    groups = pl.read_csv(FIXTURES / "geoassignment.csv", schema_overrides={"geo": pl.String})
    treated = groups.filter(pl.col("geo.group") == 2)["geo"].to_list()
    spec = root / "salesandcost.yaml"
    spec.write_text(
        "schema_version: 1\nid: salesandcost\ndesign: geo\nchannel: search\nmethod: tbr\n"
        "kpi: sales\nspend: cost\n"
        f"geos: {{treatment: [{', '.join(treated)}]}}\n"
        "pre_period: {start: 2015-01-05, end: 2015-02-16}\n"
        "test_period: {start: 2015-02-16, end: 2015-03-16}\nmissing_rows: zero\nalpha: 0.10\n"
    )
    return data, spec


def _analyze(spec: Path, data: Path, out: Path, alpha: float | None = None) -> dict:
    if alpha is not None:
        text = spec.read_text().replace("alpha: 0.10", f"alpha: {alpha}")
        spec = out.parent / f"{out.name}.yaml"
        spec.write_text(text)
    result = CliRunner().invoke(app, ["analyze", str(spec), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


def test_tbr_reproduces_matched_markets(matched_markets, tmp_path):
    data, spec = matched_markets
    geo = _analyze(spec, data, tmp_path / "two")["geo"]
    assert geo["diagnostics"]["slope"] == pytest.approx(0.9997001, abs=1e-7)
    assert geo["spend_change"] == pytest.approx(50_000, rel=1e-9)
    assert geo["iroas"] == pytest.approx(2.946742, abs=1e-6)
    assert _sig3(geo["incremental"], 147337.122)
    assert geo["incremental"] == pytest.approx(147337.122, abs=0.01)
    # R's two-sided interval came with a simulated variable cost (1e-5 noise): 3 digits
    assert _sig3(geo["iroas_ci"][0], 2.79135) and _sig3(geo["iroas_ci"][1], 3.102936)
    assert _sig3(geo["lift_rel"], 0.173998)
    assert _sig3(geo["lift_rel_ci"][0], 0.163273) and _sig3(geo["lift_rel_ci"][1], 0.184885)
    # a one-sided 90% lower bound is the lower end of a two-sided 80% interval
    one_sided = _analyze(spec, data, tmp_path / "one", alpha=0.2)["geo"]
    assert one_sided["iroas_ci"][0] == pytest.approx(2.826194, abs=1e-6)


def _prop99() -> tuple[np.ndarray, np.ndarray, int]:
    frame = pl.read_csv(FIXTURES / "california_prop99.csv")
    treated = frame["California"].to_numpy()[:, None]
    controls = frame.drop("Year", "California").to_numpy()
    n_pre = int((frame["Year"] < 1989).sum())
    return treated, controls, n_pre


def test_prop99_data_gives_the_published_difference_in_differences():
    treated, controls, n_pre = _prop99()
    assert controls.shape == (31, 38) and n_pre == 19
    gap = treated[:, 0] - controls.mean(axis=1)
    assert _sig3(gap[n_pre:].mean() - gap[:n_pre].mean(), -27.3)


def test_synthetic_control_reproduces_prop99():
    treated, controls, n_pre = _prop99()
    fit = synthetic_control.fit(treated, controls, n_pre, 0.05, cumulative_band=False)
    per_year = fit.effect / (len(treated) - n_pre)
    assert per_year == pytest.approx(-19.6, rel=0.01)
    weights = fit.details["weights"]
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0, abs=1e-12)
    # the optimum: no feasible move along an edge of the simplex lowers the pre-period fit
    resid = treated[:n_pre, 0] - controls[:n_pre] @ weights
    grad = -2 * controls[:n_pre].T @ resid
    support = weights > 1e-9
    assert grad.min() >= grad[support].max() - 1e-6 * np.abs(grad).max()


# Trimmed match: google/trimmed_match. README.md (commit 1a3ff9c6c75639f7668426335119fe2d5f3c43da):
# delta_response [1, 10, 3, 8, 5], delta_spend [1, 5, 2, 5, 3], confidence 0.80 ->
# "iroas=1.60, ci=(1.52, 1.66)". trimmed_match/core/geox_data_util_test.cc (commit
# 0245558942256d8e6aeeb228b009bea23fe8fbbe): the zeros of the trimmed mean and the
# studentized ranges below, checked there with a tolerance of 0.001.
PAIRS_1 = np.array([[3.0, 2.0], [8.0, 5.0], [10.0, 10.0]])
PAIRS_2 = np.array([[1.5391406, -1.7904224], [1.3765249, -1.3941344], [-1.0470811, -0.9608362],
                    [0.4050382, -0.1808448], [-1.1829934, 0.2950698], [-0.1920367, 0.3012471],
                    [-2.1449249, 0.5700090], [0.2685824, 0.7528970], [1.0362271, 0.7777585],
                    [-0.2633370, 1.1244019]])


def test_trimmed_match_readme_example():
    # the published interval is the normal one (interval: normal; randomization is the default)
    fit = trimmed_match.fit([1, 10, 3, 8, 5], [1, 5, 2, 5, 3], confidence=0.80, inference="normal")
    assert f"{fit.estimate:.2f}" == "1.60" and fit.trim_rate == pytest.approx(0.2)
    assert (f"{fit.ci[0]:.2f}", f"{fit.ci[1]:.2f}") == ("1.52", "1.66")


def test_trimmed_match_core_reference_values():
    dy, dx = PAIRS_2[:, 0], PAIRS_2[:, 1]
    assert trimmed_match.zeros(dy, dx, 1) == pytest.approx([-9.187, -0.488, 0.560], abs=1e-3)
    assert trimmed_match.interval(dy, dx, 1, 0.05) == pytest.approx((-76.312, 0.898), abs=1e-3)
    assert trimmed_match.interval(PAIRS_1[:, 0], PAIRS_1[:, 1], 0, 1.645) == pytest.approx(
        (0.985, 2.180), abs=1e-3)
    more = np.vstack([PAIRS_1, [[0.0, 0.0], [20.0, 20.0]]])
    assert trimmed_match.interval(more[:, 0], more[:, 1], 1, 1.645) == pytest.approx(
        (0.978, 9.400), abs=1e-3)
    # no trimming on the second set: unbounded (the reference clips at its bound constant)
    assert trimmed_match.interval(dy, dx, 0, 1.645) == (-np.inf, np.inf)
