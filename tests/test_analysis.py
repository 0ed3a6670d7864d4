"""End to end: YAML + contract tables -> effects, checked against a direct computation on
unit-level rows (pandas + scipy + statsmodels), never against liftlab itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from scipy import stats as sps

from liftlab.analyses.experiment import analyze
from liftlab.data.folder import FolderSource
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.spec.models import Experiment

from tinydata import END, SPEC_YAML, START


@pytest.fixture(scope="module")
def result(tiny_data):
    spec = Experiment.model_validate(yaml.safe_load(SPEC_YAML))
    return analyze(spec, PolarsEngine(FolderSource(tiny_data)))


@pytest.fixture(scope="module")
def units(tiny_data) -> pd.DataFrame:
    """Per-unit outcomes computed independently with pandas."""
    cust = pd.read_parquet(tiny_data / "customers.parquet")
    orders = pd.read_parquet(tiny_data / "orders.parquet")
    events = pd.read_parquet(tiny_data / "events.parquet")
    arms = pd.read_parquet(tiny_data / "assignments.parquet").pivot(
        index="customer_id", columns="channel", values="group")
    win = orders[(orders.ts >= START) & (orders.ts < END)]
    pre = orders[(orders.ts >= START - pd.Timedelta(days=28)) & (orders.ts < START)]
    df = cust.set_index("customer_id").join(arms)
    df["revenue"] = win.groupby("customer_id").revenue.sum().reindex(df.index, fill_value=0)
    df["orders"] = win.groupby("customer_id").size().reindex(df.index, fill_value=0)
    df["conversion"] = (df.orders > 0).astype(float)
    df["revenue_pre"] = pre.groupby("customer_id").revenue.sum().reindex(df.index, fill_value=0)
    df["conversion_pre"] = (pre.groupby("customer_id").size().reindex(df.index, fill_value=0)
                            > 0).astype(float)
    ev = events[(events.ts >= START) & (events.ts < END)]
    df["clicks"] = ev[ev.event == "click"].groupby("customer_id").size().reindex(
        df.index, fill_value=0)
    return df


def _effect(result, channel, metric, variant=None, segment=None):
    [e] = [e for e in result.effects if e.channel == channel and e.metric.name == metric
           and e.variant == variant and e.segment == segment]
    return e


@pytest.mark.parametrize("channel,variant", [("email", None), ("mail", "big"), ("mail", "small")])
def test_lift_matches_scipy_welch_per_arm(result, units, channel, variant):
    """Clicks have no pre-period rows, so no CUPED: exactly Welch on unit rows."""
    arm = variant or "treatment"
    t = units.loc[units[channel] == arm, "clicks"]
    h = units.loc[units[channel] == "holdout", "clicks"]
    e = _effect(result, channel, "clicks", variant)
    assert (e.n_treatment, e.n_holdout) == (len(t), len(h))
    assert not e.lift.cuped
    assert e.lift.abs == pytest.approx(t.mean() - h.mean(), rel=1e-9)
    assert e.lift.p_value == pytest.approx(sps.ttest_ind(t, h, equal_var=False).pvalue, rel=1e-6)


def _ols_lift(d: pd.DataFrame, channel: str, arm: str, metric: str):
    d = d[d[channel].isin([arm, "holdout"])]
    x = np.column_stack([(d[channel] == arm).astype(float), d[f"{metric}_pre"]])
    return sm.OLS(d[metric].to_numpy(), sm.add_constant(x)).fit(cov_type="HC1")


@pytest.mark.parametrize("metric", ["revenue", "conversion"])
@pytest.mark.parametrize("channel,variant", [("email", None), ("mail", "big")])
def test_cuped_matches_ols_with_pre_period(result, units, channel, variant, metric):
    e = _effect(result, channel, metric, variant)
    fit = _ols_lift(units, channel, variant or "treatment", metric)
    assert e.lift.cuped
    assert e.lift.abs == pytest.approx(fit.params[1], rel=1e-9)
    assert e.lift.abs_se == pytest.approx(fit.bse[1], rel=0.03)


def test_segment_breakdown_matches_subset(result, units):
    for seg in ("gold", "silver"):
        e = _effect(result, "email", "conversion", segment={"segment": seg})
        fit = _ols_lift(units[units.segment == seg], "email", "treatment", "conversion")
        assert e.lift.abs == pytest.approx(fit.params[1], rel=1e-9)


def test_ratio_metric_is_sum_over_sum(result, units):
    e = _effect(result, "email", "aov")
    t, h = units[units.email == "treatment"], units[units.email == "holdout"]
    assert e.lift.mean_treatment == pytest.approx(t.revenue.sum() / t.orders.sum(), rel=1e-9)
    assert e.lift.mean_holdout == pytest.approx(h.revenue.sum() / h.orders.sum(), rel=1e-9)


def test_recovers_known_effect_and_health(result):
    e = _effect(result, "email", "conversion")
    assert e.lift.abs > 0 and e.lift.p_value < 0.05 and e.verdict == "desired"
    assert result.srm_ok and result.status == "ended"
    guard = _effect(result, "email", "unsubscribe")
    assert guard.metric.desired_direction == "decrease"
    assert guard.verdict in ("undesired", "inconclusive")


def test_results_json_has_contract_fields(result):
    d = result.to_dict()
    assert {"experiment", "as_of", "health", "effects"} <= d.keys()
    assert {"srm_p_value", "srm_ok", "warnings"} <= d["health"].keys()
    row = d["effects"][0]
    for key in ("channel", "metric", "segment", "n_treatment", "n_holdout", "mean_treatment",
                "mean_holdout", "lift_abs", "lift_abs_ci", "lift_rel", "lift_rel_ci", "p_value",
                "cuped", "incremental_total"):
        assert key in row
    variants = {e["variant"] for e in d["effects"] if e["channel"] == "mail"}
    assert variants == {"big", "small"}


def test_channel_profile_is_a_derived_segment(tiny_data):
    """segments: [channel_profile] breaks every lift down by the channels each customer used
    in the 90 days before the start, computed from the orders (not a customers column)."""
    text = SPEC_YAML.replace("segments: [segment]", "segments: [channel_profile]")
    spec = Experiment.model_validate(yaml.safe_load(text))
    res = analyze(spec, PolarsEngine(FolderSource(tiny_data)))
    rows = [e for e in res.effects if e.channel == "email" and e.metric.name == "revenue"]
    by_profile = {e.segment["channel_profile"]: e for e in rows if e.segment}
    assert set(by_profile) <= {"store", "web", "multichannel", "inactive"}
    assert "multichannel" in by_profile
    whole = next(e for e in rows if e.segment is None)
    assert sum(e.n_treatment for e in by_profile.values()) == whole.n_treatment
