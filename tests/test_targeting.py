"""``liftlab target`` end to end: on a randomised experiment with known individual effects
and costs the learned policy is worth about what the oracle's is, beats every single channel
sent to everyone, and its predicted gain is confirmed by simulating the confirmation
experiment it writes; on Hillstrom (real, randomised) the curves' average effects equal the
experiment's direct estimates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from liftlab.analyses.experiment import analyze
from liftlab.analyses.targeting import target
from liftlab.app.cli import app
from liftlab.engines.open import open_engine
from liftlab.spec.loader import load_experiment
from targetdata import customers, make_experiment, net_value, write_period

HILLSTROM = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom.csv"


def _in_customer_order(assignment: pl.DataFrame, c: pl.DataFrame) -> list[str | None]:
    """The policy's option per customer, in the order of the customers table."""
    return c.select("customer_id").join(assignment, on="customer_id", how="left",
                                        maintain_order="left")["option"].to_list()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    folder = tmp_path_factory.mktemp("target")
    spec_path = make_experiment(folder)
    spec = load_experiment(spec_path)
    return folder, spec_path, spec, target(spec, open_engine(folder))


def test_average_effects_equal_the_experiments_direct_estimates(synth):
    folder, _, spec, result = synth
    analysis = analyze(spec, open_engine(folder))
    for action in result.actions:
        [effect] = [e for e in analysis.effects if e.channel == action.channel
                    and e.segment is None and e.metric.name == "revenue"]
        assert action.qini.ate.estimate == pytest.approx(effect.lift.abs, rel=1e-9)
        assert action.qini.ate_p_value == pytest.approx(effect.lift.p_value, rel=1e-6)


def test_the_learned_policy_is_worth_what_the_oracles_is(synth):
    result = synth[3]
    c = customers(8000, 3)
    options = [o.label for o in result.options]
    assert options == ["email", "sms"]
    # the oracle: each customer's best option by its true net value, when it pays
    truth = np.column_stack([net_value(c, [o] * c.height) for o in options])
    oracle = np.where(truth.max(axis=1) > 0, truth.max(axis=1), 0.0).sum()
    learned = _in_customer_order(result.assignment, c)
    learned_truth = net_value(c, learned).sum()
    value = result.policy.value
    assert value.low <= oracle <= value.high
    assert value.low <= learned_truth <= value.high
    assert learned_truth >= 0.85 * oracle
    # better than the best single channel sent to everyone, and than random targeting
    assert result.over_default.low > 0
    assert result.policy.over_random.low > 0
    best_single = max(truth.sum(axis=0))
    assert learned_truth > best_single


def test_the_budget_is_respected_and_spent_on_the_best_customers(synth):
    folder, _, spec, full = synth
    half = full.policy.spend / 2
    result = target(spec, open_engine(folder), budget=half)
    assert result.policy.spend <= half + 1e-9
    assert result.policy.spend >= half - 1.0  # the path stops at the last sends that fit
    assert result.policy.value.total / result.policy.spend > \
        full.policy.value.total / full.policy.spend  # the first euros earn the most
    values = [e.total for e in result.curve_values]
    assert values[0] == 0.0 and max(values) == pytest.approx(full.policy.value.total, rel=0.02)


def test_the_confirmation_experiment_confirms_the_prediction(synth, tmp_path):
    folder, spec_path, _, _ = synth
    out = tmp_path / "targeting"
    r = CliRunner().invoke(app, ["target", str(spec_path), "--data", str(folder), "--out",
                                 str(out), "--confirm-start", "2026-05-04"])
    assert r.exit_code == 0, r.output
    for name in ("targeting.json", "policy.parquet", "confirmation.yaml", "targeting.html"):
        assert (out / name).is_file()
    confirm = yaml.safe_load((out / "confirmation.yaml").read_text())
    assert confirm["start"] == "2026-05-04" and confirm["end"] == "2026-05-18"
    policy = pl.read_parquet(out / "policy.parquet")
    default = confirm["confirmation"]
    # simulate the confirmation: the same customers, a new period, randomised three ways
    c = customers(8000, 3)
    rng = np.random.default_rng(99)
    group = rng.choice(["holdout", "policy", "bau"], size=c.height, p=[0.1, 0.45, 0.45])
    bau_option = default["bau"]
    chosen = _in_customer_order(policy, c)
    received = {ch: np.zeros(c.height) for ch in ("email", "sms")}
    for i, g in enumerate(group):
        option = chosen[i] if g == "policy" else bau_option if g == "bau" else None
        for ch in (option.split(" + ") if option else []):
            received[ch][i] = 1.0
    start = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)
    data = tmp_path / "confirm-data"
    write_period(data, c, received, {"targeting": group}, confirm["id"], start, seed=5)
    spec = load_experiment(out / "confirmation.yaml")
    readout = analyze(spec, open_engine(data)).sections.confirmation
    truth = (net_value(c, chosen) - net_value(c, [bau_option] * c.height)).mean()
    assert readout is not None and readout.realised_gain_ci is not None
    lo, hi = readout.realised_gain_ci
    assert lo <= truth <= hi
    assert readout.consistent is True
    assert default["predicted_gain_ci"][0] <= truth <= default["predicted_gain_ci"][1]


def test_target_refuses_clearly(synth, tmp_path):
    folder, spec_path, _, _ = synth
    runner = CliRunner()
    r = runner.invoke(app, ["target", str(spec_path), "--data", str(folder), "--budget", "-3",
                            "--out", str(tmp_path / "a")])
    assert r.exit_code == 1 and "--budget" in r.output
    r = runner.invoke(app, ["target", str(spec_path), "--data", str(folder), "--default",
                            "fax", "--out", str(tmp_path / "b")])
    assert r.exit_code == 1 and "'fax' is not an option" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec_path.read_text().replace("learner: t", "learner: t, features: [shoe]"))
    r = runner.invoke(app, ["target", str(bad), "--data", str(folder), "--out",
                            str(tmp_path / "c")])
    assert r.exit_code == 1 and "shoe" in r.output and "customers" in r.output
    r = runner.invoke(app, ["target", str(spec_path), "--data", "duckdb:///nowhere.db",
                            "--out", str(tmp_path / "d")])
    assert r.exit_code == 1


@pytest.mark.skipif(not HILLSTROM.exists(), reason=f"Hillstrom data not found at {HILLSTROM}")
@pytest.mark.parametrize("metric", ["spend", "visit"])
def test_hillstrom_curves_and_the_choice_between_two_emails(tmp_path_factory, metric):
    from liftlab.data.hillstrom import import_hillstrom

    folder = tmp_path_factory.mktemp(f"hillstrom-{metric}")
    spec_path = import_hillstrom(HILLSTROM, folder)
    text = spec_path.read_text() + f"targeting: {{metric: {metric}, learner: t, folds: 3}}\n"
    spec_path.write_text(text)
    spec = load_experiment(spec_path)
    engine = open_engine(folder)
    result = target(spec, engine)
    analysis = analyze(spec, engine)
    assert [a.label for a in result.actions] == ["email/mens", "email/womens"]
    for action in result.actions:
        [effect] = [e for e in analysis.effects if e.variant == action.arm
                    and e.segment is None and e.metric.name == metric]
        assert action.qini.ate.estimate == pytest.approx(effect.lift.abs, rel=1e-9)
        assert action.qini.auuc.low <= action.qini.auuc.estimate <= action.qini.auuc.high
        lows, highs = np.array(action.qini.qini_low), np.array(action.qini.qini_high)
        assert (lows <= np.array(action.qini.qini) + 1e-12).all()
        assert (np.array(action.qini.qini) <= highs + 1e-12).all()
    # the multi-armed curve chooses between the two e-mails (one per customer)
    assert result.budget_unit == "contacts"
    counts = dict(zip([o.label for o in result.options], result.policy.counts, strict=True))
    assert set(counts) == {"email/mens", "email/womens"}
    assert 0 < sum(counts.values()) <= result.n
    assert result.policy.value.low > 0


def test_the_drivers_chart_names_features_as_an_analyst_does():
    from liftlab.report.targeting_page import drivers_chart

    t = {"channels": [{"label": "email", "drivers": [
        {"feature": "revenue|pre", "importance": 0.5}, {"feature": "age|attr",
                                                        "importance": 0.3},
        {"feature": "segment", "importance": 0.2}]}]}
    chart = drivers_chart(t)
    assert chart is not None
    assert list(chart.figure.data[0].y) == ["revenue (pre-period)", "age", "segment"]
    assert chart.table["feature"].to_list() == ["revenue|pre", "age|attr", "segment"]
