"""Regression adjustment end to end: YAML ``covariates`` (pre-period metrics, a join date's
missing indicator, customer attributes) -> every engine's small table -> effects equal to
statsmodels OLS with centred covariates interacted with treatment on unit rows computed
here with pandas; the same effects on polars, DuckDB and (slow) Spark."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
import yaml

from liftlab.analyses.experiment import AnalysisResult, analyze
from liftlab.core.errors import DataError
from liftlab.data.folder import FolderSource
from liftlab.engines.open import open_engine
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.spec.models import Experiment
from pgserver import find_bin, load_tables, postgres_server

from tinydata import END, SPEC_YAML, START, make_tiny

COVARIATES = (
    "covariates: {pre_period_days: 28, pre_period_metrics: [conversion], "
    "attributes: [age, vip], joined: signup_date}"
)
PRE_START = START - dt.timedelta(days=28)


def _spec(covariates: str = COVARIATES) -> Experiment:
    text = SPEC_YAML.replace("covariates: {pre_period_days: 28}", covariates)
    return Experiment.model_validate(yaml.safe_load(text))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny factorial with an age, a true/false attribute (some nulls) and a signup
    date; 20% of customers joined during the pre-period (their earlier orders removed)."""
    path = make_tiny(tmp_path_factory.mktemp("reg") / "data")
    rng = np.random.default_rng(5)
    cust = pl.read_parquet(path / "customers.parquet")
    n = cust.height
    new = rng.random(n) < 0.2
    signup = [
        PRE_START.date() + dt.timedelta(days=int(d))
        if is_new
        else dt.date(2024, 1, 1) + dt.timedelta(days=int(d))
        for is_new, d in zip(new, rng.integers(1, 27, n), strict=True)
    ]
    vip = pl.Series("vip", rng.random(n) < 0.1).scatter(np.arange(0, n, 97).tolist(), None)
    cust = cust.with_columns(
        pl.Series("age", rng.normal(45, 12, n).round()), vip, pl.Series("signup_date", signup)
    )
    cust.write_parquet(path / "customers.parquet")
    joined = cust.select("customer_id", "signup_date")
    orders = (
        pl.read_parquet(path / "orders.parquet")
        .join(joined, on="customer_id")
        .filter(pl.col("ts").dt.date() >= pl.col("signup_date"))
        .drop("signup_date")
    )
    orders.write_parquet(path / "orders.parquet")
    return path


@pytest.fixture(scope="module")
def result(data: Path) -> AnalysisResult:
    return analyze(_spec(), PolarsEngine(FolderSource(data)))


@pytest.fixture(scope="module")
def units(data: Path) -> pd.DataFrame:
    """Per-unit outcomes and covariates computed independently with pandas."""
    cust = pd.read_parquet(data / "customers.parquet").set_index("customer_id")
    orders = pd.read_parquet(data / "orders.parquet")
    events = pd.read_parquet(data / "events.parquet")
    arms = pd.read_parquet(data / "assignments.parquet").pivot(
        index="customer_id", columns="channel", values="group"
    )
    df = cust.join(arms)
    for label, lo, hi in (("", START, END), ("_pre", PRE_START, START)):
        rows = orders[(orders.ts >= lo) & (orders.ts < hi)].groupby("customer_id")
        df["revenue" + label] = rows.revenue.sum().reindex(df.index, fill_value=0)
        df["orders" + label] = rows.size().reindex(df.index, fill_value=0).astype(float)
        df["conversion" + label] = (df["orders" + label] > 0).astype(float)
    ev = events[(events.ts >= START) & (events.ts < END) & (events.event == "click")]
    df["clicks"] = ev.groupby("customer_id").size().reindex(df.index, fill_value=0)
    df["new"] = (pd.to_datetime(df.signup_date) > pd.Timestamp(PRE_START.date())).astype(float)
    df["vip"] = df.vip.astype(float).fillna(0.0)
    return df


def _ols(d: pd.DataFrame, channel: str, arm: str, y: str, covariates: list[str]) -> Any:
    d = d[d[channel].isin([arm, "holdout"])]
    x = d[covariates].to_numpy(float)
    xc = x - x.mean(axis=0)
    treated = (d[channel] == arm).to_numpy(float)
    design = np.column_stack([np.ones(len(d)), treated, xc, xc * treated[:, None]])
    return sm.OLS(d[y].to_numpy(float), design).fit(cov_type="HC1")


def _effect(result: AnalysisResult, channel: str, metric: str, variant: str | None = None):
    [e] = [
        e
        for e in result.effects
        if e.channel == channel
        and e.metric.name == metric
        and e.variant == variant
        and e.segment is None
    ]
    return e


EXTRA = ["conversion_pre", "new", "age", "vip"]


@pytest.mark.parametrize("channel,variant", [("email", None), ("mail", "big")])
@pytest.mark.parametrize("metric", ["revenue", "clicks", "conversion"])
def test_effect_is_interacted_ols(
    result: AnalysisResult, units: pd.DataFrame, channel: str, variant: str | None, metric: str
) -> None:
    own = [] if metric in ("clicks", "conversion") else [f"{metric}_pre"]
    covariates = list(dict.fromkeys(own + EXTRA))
    if metric == "clicks":  # clicks has no pre-period rows: its pre value is 0 throughout
        covariates = ["conversion_pre", "new", "age", "vip"]
    fit = _ols(units, channel, variant or "treatment", metric, covariates)
    e = _effect(result, channel, metric, variant)
    assert e.lift.method == "lin_regression"
    assert e.lift.abs == pytest.approx(fit.params[1], rel=1e-8)
    assert e.lift.abs_se == pytest.approx(fit.bse[1], rel=0.03)
    assert e.to_dict()["variance_reduction"] == e.lift.variance_reduction
    assert len(e.to_dict()["covariates"]) == len(covariates) + (metric == "clicks")


def test_ratio_metric_is_ols_on_its_linearisation(
    result: AnalysisResult, units: pd.DataFrame
) -> None:
    d = units.copy()
    for arm in ("treatment", "holdout"):
        rows = d.email == arm
        r = d.revenue[rows].sum() / d.orders[rows].sum()
        d.loc[rows, "phi"] = (d.revenue[rows] - r * d.orders[rows]) / d.orders[rows].mean() + r
    fit = _ols(d, "email", "treatment", "phi", ["revenue_pre", "orders_pre", *EXTRA])
    e = _effect(result, "email", "aov")
    assert e.lift.method == "delta_ratio_regression"
    assert e.lift.abs == pytest.approx(fit.params[1], rel=1e-8)
    assert e.lift.abs_se == pytest.approx(fit.bse[1], rel=0.03)
    # the tiny data's basket value does not depend on the past: nothing to gain, and the
    # degrees of freedom spent show as a reduction just below zero
    assert -0.01 < e.lift.variance_reduction < 0.05


def test_missing_indicator_reduces_variance_more(data: Path, result: AnalysisResult) -> None:
    """New customers coded 0 without their indicator give up part of the reduction."""
    plain = analyze(
        _spec("covariates: {pre_period_days: 28, method: regression}"),
        PolarsEngine(FolderSource(data)),
    )
    with_new = _effect(result, "email", "revenue").lift.variance_reduction
    without = _effect(plain, "email", "revenue").lift.variance_reduction
    assert with_new > without > 0


def test_text_attribute_is_a_data_error(data: Path) -> None:
    spec = _spec("covariates: {attributes: [segment]}")
    with pytest.raises(DataError, match="segment"):
        analyze(spec, PolarsEngine(FolderSource(data)))


def _duckdb(data: Path, root: Path) -> str:
    db = root / "reg.duckdb"
    con = duckdb.connect(str(db))
    for table in ("customers", "orders", "events", "assignments"):
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_parquet(?)",
            [str(data / f"{table}.parquet")],
        )
    con.close()
    return f"duckdb:///{db}"


def _same(a: AnalysisResult, b: AnalysisResult) -> None:
    for ea, eb in zip(a.effects, b.effects, strict=True):
        assert (ea.channel, ea.metric.name, ea.segment) == (eb.channel, eb.metric.name, eb.segment)
        assert ea.lift.method == eb.lift.method
        for x, y in (
            (ea.lift.abs, eb.lift.abs),
            (ea.lift.abs_se, eb.lift.abs_se),
            (ea.lift.variance_reduction, eb.lift.variance_reduction),
        ):
            assert x == pytest.approx(y, rel=1e-9, abs=1e-12, nan_ok=True)


FULL = (
    (
        "{name: revenue, kind: mean, table: orders, value: revenue}",
        "{name: revenue, kind: mean, table: orders, value: revenue, quantiles: true}",
    ),
    ("guardrail: true}", "guardrail: true, margin: 0.5}"),
)


def _full_spec() -> Experiment:
    """Covariates, quantile effects and a guardrail margin at once."""
    text = SPEC_YAML.replace("covariates: {pre_period_days: 28}", COVARIATES)
    for old, new in FULL:
        text = text.replace(old, new)
    return Experiment.model_validate(yaml.safe_load(text))


def _same_sections(a: AnalysisResult, b: AnalysisResult) -> None:
    _same(a, b)
    assert a.sections.quantiles == b.sections.quantiles
    ni = [
        (e.non_inferiority, f.non_inferiority)
        for e, f in zip(a.effects, b.effects, strict=True)
    ]
    assert any(x is not None for x, _ in ni)
    for x, y in ni:
        assert (x is None) == (y is None)
        if x is not None:
            assert x.passed == y.passed
            assert x.p_value == pytest.approx(y.p_value, rel=1e-9, nan_ok=True)


@pytest.mark.slow
@pytest.mark.skipif(find_bin("initdb") is None, reason="needs the PostgreSQL server binaries")
def test_postgresql_gives_the_same_numbers(data: Path) -> None:
    """A real server: booleans, dates and nulls among the customers covariates, the sketch's
    bins computed in SQL."""
    reference = analyze(_full_spec(), PolarsEngine(FolderSource(data)))
    with postgres_server() as url:
        load_tables(url, data, ["customers", "orders", "events", "assignments"])
        _same_sections(reference, analyze(_full_spec(), open_engine(url)))
        with pytest.raises(DataError, match="segment"):
            analyze(_spec("covariates: {attributes: [segment]}"), open_engine(url))


def test_duckdb_gives_the_same_effects(data: Path, result: AnalysisResult, tmp_path: Path) -> None:
    engine = open_engine(_duckdb(data, tmp_path))
    _same(result, analyze(_spec(), engine))
    reference = analyze(_full_spec(), PolarsEngine(FolderSource(data)))
    _same_sections(reference, analyze(_full_spec(), engine))
    with pytest.raises(DataError, match="segment"):
        analyze(_spec("covariates: {attributes: [segment]}"), engine)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs java")
def test_spark_gives_the_same_effects(data: Path, result: AnalysisResult) -> None:
    engine = open_engine(str(data), engine="spark")
    _same(result, analyze(_spec(), engine))
    _same_sections(
        analyze(_full_spec(), PolarsEngine(FolderSource(data))), analyze(_full_spec(), engine)
    )
    with pytest.raises(DataError, match="segment"):
        analyze(_spec("covariates: {attributes: [segment]}"), engine)


def test_small_adjusted_arms_are_flagged(data: Path) -> None:
    """Segments by the 10% of VIPs: their arms have a few hundred units."""
    text = SPEC_YAML.replace("covariates: {pre_period_days: 28}", COVARIATES).replace(
        "segments: [segment]", "segments: [vip]"
    )
    result = analyze(
        Experiment.model_validate(yaml.safe_load(text)), PolarsEngine(FolderSource(data))
    )
    small = [
        e
        for e in result.effects
        if e.lift.method in ("lin_regression", "delta_ratio_regression")
        and min(e.n_treatment, e.n_holdout) < 500
    ]
    assert small and all(e.segment is not None for e in small)
    [w] = [w for w in result.warnings if w.code == "regression_adjustment"]
    assert f"{len(small)} regression-adjusted" in w.message
