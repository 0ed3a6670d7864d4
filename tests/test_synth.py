"""The synthetic retailer: deterministic, contract-shaped, realistic (heavy tail, returns,
self-selection, CUPED-grade pre-period correlation), and its recorded truth is recovered by
independent routes: crude differences of means computed here from the raw tables (Welch
standard errors), and the full analysis (its confidence intervals)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from liftlab.analyses.experiment import analyze
from liftlab.app.synth import DATA_END, HISTORY_START, generate
from liftlab.core.errors import UserError
from liftlab.engines.open import open_engine
from liftlab.spec.loader import load_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
TABLES = ("customers", "orders", "contacts", "events", "assignments")
OUTCOMES = ("revenue", "web", "converted", "unsubscribed", "adopted")
Z = 4.0  # tolerance in standard errors: ~25 checks, a false alarm has odds ~1e-3 overall


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth")
    generate(path, 60_000, 7)
    return path


@pytest.fixture(scope="module")
def truth(world: Path) -> dict:
    return json.loads((world / "truth.json").read_text())


def _read(world: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(world / f"{table}.parquet")


def _window(truth: dict, experiment: str) -> tuple[dt.datetime, dt.datetime]:
    start, end = truth["experiments"][experiment]["window"]
    return dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)


def _units(world: Path, truth: dict, experiment: str, channel: str) -> pl.DataFrame:
    """One row per assigned unit: arm, revenue, web revenue, converted, unsubscribed,
    adopted (account created) in the experiment's truth window."""
    start, end = _window(truth, experiment)
    orders = _read(world, "orders").filter(pl.col("ts").is_between(start, end, closed="left"))
    per = orders.group_by("customer_id").agg(
        revenue=pl.col("revenue").sum(),
        web=pl.col("revenue").filter(pl.col("channel") == "web").sum(),
        converted=pl.lit(1.0))
    events = _read(world, "events").filter(pl.col("ts").is_between(start, end, closed="left"))
    flags = events.group_by("customer_id").agg(
        unsubscribed=(pl.col("event") == "unsubscribe").any().cast(pl.Float64),
        adopted=(pl.col("event") == "account_created").any().cast(pl.Float64))
    return (_read(world, "assignments")
            .filter(experiment_id=experiment, channel=channel)
            .join(per, on="customer_id", how="left").join(flags, on="customer_id", how="left")
            .with_columns(pl.col(OUTCOMES).fill_null(0.0)))


def _diff(units: pl.DataFrame, column: str) -> tuple[float, float]:
    """Treatment minus holdout mean, with its Welch standard error."""
    t = units.filter(group="treatment")[column].to_numpy()
    h = units.filter(group="holdout")[column].to_numpy()
    return t.mean() - h.mean(), math.sqrt(t.var(ddof=1) / len(t) + h.var(ddof=1) / len(h))


def test_deterministic_for_a_seed(world: Path, tmp_path: Path):
    generate(tmp_path, 60_000, 7)
    for table in TABLES:
        assert _read(world, table).equals(_read(tmp_path, table)), table
    assert (world / "truth.json").read_text() == (tmp_path / "truth.json").read_text()
    other = tmp_path / "other"
    generate(other, 60_000, 8)
    assert not _read(world, "orders").equals(_read(other, "orders"))


def test_too_few_customers_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="at least 1,000 customers, got 10"):
        generate(tmp_path, 10)


def test_contract_columns_dtypes_and_unique_ids(world: Path):
    ts = pl.Datetime("us", "UTC")
    expected = {
        "customers": {"customer_id": pl.Int64, "segment": pl.String, "region": pl.String,
                      "signup_date": pl.Date, "optin_email": pl.Boolean,
                      "optin_sms": pl.Boolean, "optin_mail": pl.Boolean, "profile": pl.String},
        "orders": {"order_id": pl.Int64, "customer_id": pl.Int64, "ts": ts,
                   "channel": pl.String, "revenue": pl.Float64, "margin": pl.Float64},
        "contacts": {"customer_id": pl.Int64, "channel": pl.String, "sent_at": ts,
                     "cost": pl.Float64, "experiment_id": pl.String},
        "events": {"customer_id": pl.Int64, "channel": pl.String, "event": pl.String,
                   "ts": ts},
        "assignments": {"experiment_id": pl.String, "customer_id": pl.Int64,
                        "channel": pl.String, "group": pl.String, "assigned_at": ts},
    }
    for table, schema in expected.items():
        assert dict(_read(world, table).schema) == schema, table
    customers, orders = _read(world, "customers"), _read(world, "orders")
    assert customers["customer_id"].is_unique().all() and len(customers) == 60_000
    assert orders["order_id"].is_unique().all()
    assert orders["customer_id"].is_in(customers["customer_id"].implode()).all()
    assert orders["ts"].min() >= HISTORY_START and orders["ts"].max() < DATA_END
    assert _read(world, "events")["ts"].max() < DATA_END
    assignments = _read(world, "assignments")
    assert not assignments.select("experiment_id", "channel", "customer_id").is_duplicated().any()
    assert set(assignments["group"]) == {"treatment", "holdout"}


@pytest.mark.parametrize("experiment,channel,holdout,population", [
    ("web-onboarding", "web_onboarding", 0.5, pl.col("profile") == "store"),
    ("spring-factorial", "email", 0.2, pl.col("optin_email")),
    ("spring-factorial", "sms", 0.2, pl.col("optin_email")),
    ("spring-factorial", "mail", 0.3, pl.col("optin_email")),
    ("email-flash", "email", 0.1, pl.col("optin_email")),
])
def test_populations_and_split(world: Path, experiment: str, channel: str, holdout: float,
                               population: pl.Expr):
    rows = _read(world, "assignments").filter(experiment_id=experiment, channel=channel)
    expected_ids = _read(world, "customers").filter(population)["customer_id"]
    assert rows["customer_id"].sort().equals(expected_ids.sort(), check_names=False)
    n_hold = rows.filter(group="holdout").height
    n = rows.height
    assert sps.chisquare([n_hold, n - n_hold], [n * holdout, n * (1 - holdout)]).pvalue > 1e-3


def test_factorial_channels_are_independent(world: Path):
    wide = (_read(world, "assignments").filter(experiment_id="spring-factorial")
            .pivot("channel", index="customer_id", values="group"))
    for a, b in (("email", "sms"), ("email", "mail"), ("sms", "mail")):
        table = wide.group_by(a, b).len().pivot(b, index=a, values="len").drop(a).to_numpy()
        assert sps.chi2_contingency(table).pvalue > 1e-3, (a, b)


def test_heavy_tail_returns_margin_and_optins(world: Path):
    orders, customers = _read(world, "orders"), _read(world, "customers")
    per = (customers.select("customer_id")
           .join(orders.group_by("customer_id").agg(pl.col("revenue").sum()), on="customer_id",
                 how="left").fill_null(0.0).sort("revenue", descending=True))
    assert per.head(len(per) // 100)["revenue"].sum() / per["revenue"].sum() > 0.10
    returns = (orders["revenue"] < 0).mean()
    assert abs(returns - 0.02) < 4 * math.sqrt(0.02 * 0.98 / len(orders))
    rate = orders["margin"] / orders["revenue"]
    assert rate.min() >= 0.345 and rate.max() <= 0.455
    for column, share in (("optin_email", 0.85), ("optin_sms", 0.55), ("optin_mail", 0.70)):
        assert abs(customers[column].mean() - share) < 4 * math.sqrt(share * (1 - share) / 6e4)
    assert set(orders["channel"]) == {"store", "web", "phone", "app", "mail"}


def test_pre_period_correlation_is_cuped_grade(world: Path, truth: dict):
    """CUPED's variance reduction is rho^2: the brief asks for rho in [0.3, 0.6]."""
    start, end = _window(truth, "spring-factorial")
    orders = _read(world, "orders")

    def revenue(lo: dt.datetime, hi: dt.datetime) -> pl.DataFrame:
        return orders.filter(pl.col("ts").is_between(lo, hi, closed="left")).group_by(
            "customer_id").agg(pl.col("revenue").sum())

    both = (_read(world, "customers").select("customer_id")
            .join(revenue(start, end), on="customer_id", how="left")
            .join(revenue(start - dt.timedelta(days=28), start), on="customer_id", how="left",
                  suffix="_pre").fill_null(0.0))
    rho = np.corrcoef(both["revenue"], both["revenue_pre"])[0, 1]
    assert 0.3 <= rho <= 0.6, rho


def test_selection_inflates_the_naive_premium(world: Path, truth: dict):
    """Habitual multichannel clients are worth far more before any experiment, mostly by
    selection: the realised naive ratio matches the recorded expectation (4 SE on the log
    scale) and exceeds the causal premium."""
    pre = _read(world, "orders").filter(pl.col("ts") < dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    per = (_read(world, "customers").join(
        pre.group_by("customer_id").agg(pl.col("revenue").sum()), on="customer_id",
        how="left").fill_null(0.0))
    multi = per.filter(pl.col("profile") != "store")["revenue"].to_numpy()
    single = per.filter(pl.col("profile") == "store")["revenue"].to_numpy()
    ratio = multi.mean() / single.mean()
    se_log = math.sqrt(multi.var(ddof=1) / len(multi) / multi.mean() ** 2
                       + single.var(ddof=1) / len(single) / single.mean() ** 2)
    mc = truth["multichannel"]
    assert abs(math.log(ratio) - math.log(mc["naive_ratio"])) < Z * se_log
    assert mc["naive_ratio"] > 1.5 * mc["causal_ratio"] > 1.5


@pytest.mark.parametrize("experiment,channel", [
    ("web-onboarding", "web_onboarding"), ("spring-factorial", "email"),
    ("spring-factorial", "sms"), ("spring-factorial", "mail"), ("email-flash", "email")])
def test_truth_matches_a_crude_difference_of_means(world: Path, truth: dict, experiment: str,
                                                   channel: str):
    units = _units(world, truth, experiment, channel)
    exp = truth["experiments"][experiment]
    checks = {"revenue": exp["revenue"][channel], "converted": exp["conversion"][channel],
              "web": exp["landing"][channel]["web"]}
    for column, value in checks.items():
        diff, se = _diff(units, column)
        assert abs(diff - value) < Z * se, (column, diff, se, value)
    assert sum(exp["landing"][channel].values()) == pytest.approx(exp["revenue"][channel])


def test_onboarding_first_stage_and_iv(world: Path, truth: dict):
    units = _units(world, truth, "web-onboarding", "web_onboarding")
    extra = truth["experiments"]["web-onboarding"]["extra"]
    fs, se = _diff(units, "adopted")
    assert abs(fs - extra["first_stage"]) < Z * se
    hold = units.filter(group="holdout")["adopted"].mean()
    assert abs(hold - extra["adoption_holdout"]) < Z * math.sqrt(hold * (1 - hold) / 1.5e4)
    itt = truth["experiments"]["web-onboarding"]["revenue"]["web_onboarding"]
    assert extra["iv_effect"] == pytest.approx(itt / extra["first_stage"])
    assert extra["iv_effect"] > 0


def test_flash_unsubscribe_truth(world: Path, truth: dict):
    diff, se = _diff(_units(world, truth, "email-flash", "email"), "unsubscribed")
    value = truth["experiments"]["email-flash"]["extra"]["unsubscribe"]
    assert 0 < value < 2 * se and abs(diff - value) < Z * se  # real, but small


@pytest.mark.parametrize("experiment,metric", [("spring-factorial", "revenue"),
                                               ("spring-factorial", "conversion"),
                                               ("email-flash", "revenue"),
                                               ("web-onboarding", "revenue"),
                                               ("web-onboarding", "adopted_web")])
def test_truth_is_within_the_analysis_intervals(world: Path, truth: dict, experiment: str,
                                                metric: str):
    """The full analysis (CUPED on) recovers the truth in its window, 99.9% intervals."""
    exp = truth["experiments"][experiment]
    values = ({"web_onboarding": exp["extra"]["first_stage"]} if metric == "adopted_web"
              else exp[metric])
    spec = load_experiment(EXPERIMENTS / f"{experiment}.yaml")
    spec = spec.model_copy(update={"monitoring": spec.monitoring.model_copy(
        update={"sequential": False})})
    result = analyze(spec, open_engine(world), as_of=_window(truth, experiment)[1])
    for channel, value in values.items():
        [e] = [e for e in result.effects if e.channel == channel and e.metric.name == metric
               and e.segment is None]
        lo, hi = e.lift.abs_ci
        half = (hi - lo) / 2 * 3.29 / 1.96
        assert e.lift.abs - half <= value <= e.lift.abs + half, (channel, e.lift.abs, value)
