"""Quantile treatment effects (stats/quantiles.py): the sketch against numpy, the engines'
histograms against unit rows and each other, and interval coverage by simulation with its
Monte Carlo error."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from liftlab.analyses.experiment import AnalysisResult, analyze
from liftlab.data.folder import FolderSource
from liftlab.engines.open import open_engine
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.spec.models import Experiment
from liftlab.stats.quantiles import RELATIVE, Histogram, bin_of, quantile_effect, value_of

from tinydata import END, SPEC_YAML, START


def test_bins_hold_values_within_the_relative_accuracy() -> None:
    rng = np.random.default_rng(0)
    v = np.r_[rng.lognormal(2, 3, 5000), -rng.lognormal(1, 1, 100), 0.0, 1e-9, 1.0]
    rep = value_of(bin_of(v))
    big = np.abs(v) >= 1e-6
    assert np.all(np.abs(rep[big] - v[big]) <= RELATIVE * np.abs(v[big]) * (1 + 1e-9))
    assert np.all(rep[~big] == 0)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.99])
def test_quantile_is_numpys_within_the_accuracy(q: float) -> None:
    rng = np.random.default_rng(1)
    x = np.where(rng.random(3000) < 0.6, rng.lognormal(3, 1, 3000), 0.0)
    ref = np.quantile(x, q, method="inverted_cdf")
    assert Histogram.from_values(x).quantile(q) == pytest.approx(ref, rel=RELATIVE, abs=1e-12)


def test_histograms_of_parts_add() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.lognormal(0, 1, 500), rng.lognormal(0, 1, 700)
    merged = Histogram.from_values(a) + Histogram.from_values(b)
    whole = Histogram.from_values(np.r_[a, b])
    assert np.array_equal(merged.bins, whole.bins) and np.array_equal(merged.counts, whole.counts)


def test_bootstrap_law_matches_resampling() -> None:
    """The exact percentile bootstrap equals resampling the histogram (40,000 draws: the
    interval's ends agree to the resampling's own error)."""
    rng = np.random.default_rng(3)
    t = Histogram.from_values(np.where(rng.random(400) < 0.6, rng.lognormal(3, 1, 400), 0))
    h = Histogram.from_values(np.where(rng.random(300) < 0.6, rng.lognormal(3, 1, 300), 0))
    exact = quantile_effect(t, h, 0.5)
    draws = []
    for hist in (t, h):
        counts = rng.multinomial(hist.n, hist.counts / hist.n, size=40000)
        cum = np.cumsum(counts, axis=1)
        idx = (cum < np.ceil(0.5 * hist.n)).sum(axis=1)
        draws.append(value_of(hist.bins)[idx])
    lo, hi = np.quantile(draws[0] - draws[1], [0.025, 0.975])
    assert exact.ci[0] == pytest.approx(lo, rel=0.08)
    assert exact.ci[1] == pytest.approx(hi, rel=0.08)


def test_an_atom_gives_no_effect() -> None:
    """3% buyers: both medians are 0; the interval is [0, 0]."""
    rng = np.random.default_rng(4)
    x = [np.where(rng.random(5000) < 0.03, rng.lognormal(3, 1, 5000), 0) for _ in range(2)]
    e = quantile_effect(Histogram.from_values(x[0]), Histogram.from_values(x[1]), 0.5)
    assert e.diff == 0 and e.ci == (0.0, 0.0)


def _spend(rng: np.random.Generator, n: int, buyers: float, scale: float) -> np.ndarray:
    return np.where(rng.random(n) < buyers, rng.lognormal(3, 1, n) * scale, 0.0)


def _coverage(reps: int, n: int, buyers: float, q: float, seed: int) -> float:
    """Share of 95% intervals covering the true difference of q-quantiles when the treatment
    multiplies spend by 1.2 (truth from 4 million draws: its own error is far below the
    bins' 0.5%)."""
    rng = np.random.default_rng(seed)
    truth = np.quantile(_spend(rng, 4_000_000, buyers, 1.2), q) - np.quantile(
        _spend(rng, 4_000_000, buyers, 1.0), q
    )
    hits = 0
    for _ in range(reps):
        e = quantile_effect(
            Histogram.from_values(_spend(rng, n, buyers, 1.2)),
            Histogram.from_values(_spend(rng, n, buyers, 1.0)),
            q,
        )
        hits += e.ci[0] <= truth <= e.ci[1]
    return hits / reps


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_coverage_fixed_sample(q: float) -> None:
    """400 runs, 500 units per arm, 60% buyers: Monte Carlo error 0.011; at least
    0.95 - 3 errors."""
    assert _coverage(400, 500, 0.6, q, 10) >= 0.917


@pytest.mark.slow
@pytest.mark.parametrize("n,buyers", [(200, 0.6), (2000, 0.6), (5000, 0.2)])
@pytest.mark.parametrize("q", [0.5, 0.9])
def test_coverage_grid(n: int, buyers: float, q: float) -> None:
    """4,000 runs per point: Monte Carlo error 0.0034; at least 0.94 (0.95 - 3 errors)."""
    assert _coverage(4000, n, buyers, q, n) >= 0.94


# -- end to end: the engines' histograms ---------------------------------------------------

QUANTILE_YAML = SPEC_YAML.replace(
    "{name: revenue, kind: mean, table: orders, value: revenue}",
    "{name: revenue, kind: mean, table: orders, value: revenue, quantiles: true}",
).replace(
    "{name: clicks, kind: count, table: events, event: click}",
    "{name: clicks, kind: count, table: events, event: click, quantiles: [0.25, 0.75]}",
)


def _spec() -> Experiment:
    return Experiment.model_validate(yaml.safe_load(QUANTILE_YAML))


@pytest.fixture(scope="module")
def result(tiny_data: Path) -> AnalysisResult:
    return analyze(_spec(), PolarsEngine(FolderSource(tiny_data)))


def test_quantile_effects_match_unit_rows(result: AnalysisResult, tiny_data: Path) -> None:
    orders = pd.read_parquet(tiny_data / "orders.parquet")
    arms = pd.read_parquet(tiny_data / "assignments.parquet").pivot(
        index="customer_id", columns="channel", values="group"
    )
    win = orders[(orders.ts >= START) & (orders.ts < END)]
    revenue = win.groupby("customer_id").revenue.sum().reindex(arms.index, fill_value=0)
    found = {
        (r["channel"], r["variant"], r["metric"], r["quantile"]): r
        for r in result.sections.quantiles
    }
    assert {k[3] for k in found if k[2] == "revenue"} == {0.5, 0.9}
    assert {k[3] for k in found if k[2] == "clicks"} == {0.25, 0.75}
    for channel, arm, variant in (("email", "treatment", None), ("mail", "big", "big")):
        t = revenue[arms[channel] == arm].to_numpy()
        h = revenue[arms[channel] == "holdout"].to_numpy()
        for q in (0.5, 0.9):
            ref = quantile_effect(Histogram.from_values(t), Histogram.from_values(h), q)
            got = found[(channel, variant, "revenue", q)]
            assert got["diff"] == pytest.approx(ref.diff) and got["diff_ci"] == pytest.approx(
                list(ref.ci)
            )
            assert got["treatment"] == pytest.approx(
                np.quantile(t, q, method="inverted_cdf"), rel=RELATIVE
            )
            assert (got["n_treatment"], got["n_holdout"]) == (len(t), len(h))


def test_duckdb_gives_the_same_quantiles(
    result: AnalysisResult, tiny_data: Path, tmp_path: Path
) -> None:
    db = tmp_path / "q.duckdb"
    con = duckdb.connect(str(db))
    for table in ("customers", "orders", "events", "assignments"):
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_parquet(?)",
            [str(tiny_data / f"{table}.parquet")],
        )
    con.close()
    other = analyze(_spec(), open_engine(f"duckdb:///{db}"))
    assert other.sections.quantiles == result.sections.quantiles


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs java")
def test_spark_gives_the_same_quantiles(result: AnalysisResult, tiny_data: Path) -> None:
    other = analyze(_spec(), open_engine(str(tiny_data), engine="spark"))
    assert other.sections.quantiles == result.sections.quantiles


def test_quantiles_of_a_ratio_are_refused() -> None:
    text = SPEC_YAML.replace(
        "numerator: revenue, denominator: orders}",
        "numerator: revenue, denominator: orders, quantiles: true}",
    )
    with pytest.raises(ValueError, match="quantiles"):
        Experiment.model_validate(yaml.safe_load(text))
