"""Group-sequential monitoring (``monitoring.method: group_sequential``): Lan-DeMets bounds
against published tables and the joint normal law, the A/A type-I error by simulation, the
monitor's decisions at the planned looks, and the YAML rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from liftlab.analyses.monitor import run_monitor
from liftlab.core.errors import SpecError
from liftlab.spec.loader import parse_experiment
from liftlab.stats import sequential as s
from liftlab.stats.suffstats import ArmStats

FIVE = np.array([0.2, 0.4, 0.6, 0.8, 1.0])


def test_pocock_type_five_looks_published_values():
    """Lan-DeMets Pocock-type spending alpha log(1 + (e - 1) t), two-sided 0.05, five equally
    spaced looks: 2.438, 2.427, 2.410, 2.397, 2.386 (Jennison & Turnbull 2000, table 7.6;
    the R package ldbounds, bounds(1:5/5, iuse=2); spending formula as in gscounts'
    R/spending_functions.R ``pocock``)."""
    b = s.group_sequential_bounds(FIVE, 0.05, 2, "pocock")
    assert b.z == pytest.approx((2.438, 2.427, 2.410, 2.397, 2.386), abs=1e-3)
    assert b.spent == pytest.approx(0.025 * np.log1p((np.e - 1) * FIVE), abs=1e-12)


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_no_crossing_probability_matches_the_joint_normal_law(spending):
    """Independent route: P(|Z_j| < b_j for j <= k) from the multivariate normal with
    corr sqrt(t_i / t_j) equals 1 - the alpha spent up to look k (both sides)."""
    t = np.array([0.15, 0.35, 0.7, 1.0])
    b = s.group_sequential_bounds(t, 0.05, 2, spending)
    for k in (2, 4):
        corr = np.sqrt(np.minimum.outer(t[:k], t[:k]) / np.maximum.outer(t[:k], t[:k]))
        z = np.array(b.z[:k])
        law = stats.multivariate_normal(np.zeros(k), corr, abseps=1e-8, releps=1e-8, seed=1)
        assert law.cdf(z, lower_limit=-z) == pytest.approx(1 - 2 * b.spent[k - 1], abs=2e-5)


def test_final_look_short_of_the_plan_spends_what_is_left():
    """At the horizon with 80% of the planned information the last look spends all of
    alpha: the no-crossing probability is then exactly 1 - alpha."""
    t = np.array([0.3, 0.55, 0.8])
    b = s.group_sequential_bounds(t, 0.05, 2, "obrien_fleming", final=True)
    assert b.spent[-1] == 0.025
    corr = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    z = np.array(b.z)
    law = stats.multivariate_normal(np.zeros(3), corr, abseps=1e-8, releps=1e-8, seed=1)
    assert law.cdf(z, lower_limit=-z) == pytest.approx(0.95, abs=2e-5)


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_aa_type_one_error_by_simulation(spending):
    """A/A: 40,000 replications of two arms of 500 units per look (unit variance), five
    looks, rejected when a look's |z| reaches the bound that group_sequential_look returns.
    The false-positive rate is 0.05 within 4 Monte Carlo standard errors
    (sqrt(0.05 * 0.95 / 40000) = 0.0011)."""
    rng = np.random.default_rng(20)
    reps, per_look = 40_000, 500
    sums = rng.normal(0.0, np.sqrt(per_look), (2, reps, 5)).cumsum(axis=2)
    n = per_look * np.arange(1, 6)
    z = (sums[0] / n - sums[1] / n) / np.sqrt(2 / n)
    looks: list[s.GroupSequentialLook] = []
    for k in range(5):
        nxt = s.group_sequential_look(looks, float(FIVE[k]), float(z[0, k]), 0.05, spending,
                                      last=k == 4)
        assert nxt is not None
        looks.append(nxt)
    bounds = np.array([g.bound for g in looks])
    rate = float((np.abs(z) >= bounds).any(axis=1).mean())
    assert abs(rate - 0.05) < 4 * np.sqrt(0.05 * 0.95 / reps), rate


def test_repeated_p_value_is_the_level_where_the_path_crosses():
    fractions, zs = [0.25, 0.5, 0.75], [1.0, 2.2, 2.9]
    p = s.repeated_p_value(fractions, zs)
    assert 0 < p < 1
    at = s.group_sequential_bounds(fractions, p, 2).z
    assert max(abs(z) - b for z, b in zip(zs, at, strict=True)) == pytest.approx(0, abs=1e-3)


def test_information_fraction_is_planned_variance_over_current():
    t, h = ArmStats(400, 100.0, 300.0), ArmStats(100, 20.0, 90.0)
    vt, vh = t.variance, h.variance
    expected = (vt / 1000 + vh / 250) / (vt / 400 + vh / 100)
    assert s.information_fraction(t, h, 1000, 250) == pytest.approx(expected)


def test_a_look_without_new_information_is_skipped():
    first = s.group_sequential_look([], 0.5, 1.0, 0.05, "obrien_fleming", last=False)
    assert first is not None
    assert s.group_sequential_look([first], 0.5, 1.5, 0.05, "obrien_fleming", False) is None


# -- the monitor ------------------------------------------------------------------------------
SEND = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
TS = pl.Datetime("us", "UTC")
SPEC = """\
schema_version: 1
id: rolling-email
start: 2026-03-02
end: 2026-03-23
channels:
  email: {holdout: 0.5}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
primary_metric: revenue
monitoring:
  sequential: true
  response_window_hours: 24
  min_events_per_arm: 20
  method: group_sequential
  spending: SPENDING
  looks: 4
  horizon_hours: 120
"""


def rolling_send(lift: float, n: int = 20_000, seed: int = 0) -> dict[str, pl.LazyFrame]:
    """Units enrolled uniformly over 96 hours, half treated (sent at enrolment); orders
    (Poisson 5% x (1 + lift), lognormal revenue) within 20 hours of exposure."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    treated = rng.random(n) < 0.5
    at = int(SEND.timestamp() * 1e6) + rng.integers(0, 96 * 3600_000_000, n)
    k = rng.poisson(0.05 * np.where(treated, 1 + lift, 1.0))
    who = np.repeat(np.arange(n), k)
    orders = pl.DataFrame({"order_id": np.arange(len(who)), "customer_id": ids[who],
                           "ts": at[who] + rng.integers(0, 20 * 3600_000_000, len(who)),
                           "revenue": rng.lognormal(3.5, 0.8, len(who))})
    assignments = pl.DataFrame({"customer_id": ids, "channel": "email",
                                "group": np.where(treated, "treatment", "holdout"),
                                "assigned_at": at})
    contacts = pl.DataFrame({"customer_id": ids[treated], "channel": "email",
                             "sent_at": at[treated]})
    return {name: frame.with_columns(pl.col(c).cast(TS) for c in ("ts", "assigned_at",
                                                                   "sent_at")
                                     if c in frame.columns).lazy()
            for name, frame in (("orders", orders), ("assignments", assignments),
                                ("contacts", contacts))}


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_monitor_decides_at_a_planned_look_with_the_published_boundary(spending):
    spec = parse_experiment(SPEC.replace("SPENDING", spending))
    res = run_monitor(spec, rolling_send(0.6), SEND + dt.timedelta(hours=130))
    comp = res.comparisons[0]
    assert comp["method"] == "group_sequential" and comp["spending"] == spending
    looks = comp["looks"]
    # looks at 30, 60, 90, 120 h after the first exposure's hour (the last spends the rest)
    origin = SEND.replace(minute=0)
    assert [lk["at"] for lk in looks] == [
        (origin + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for h in (30, 60, 90, 120)]
    fractions = [lk["fraction"] for lk in looks]
    bounds = s.group_sequential_bounds(fractions, 0.05, 2, spending,
                                       final=looks[-1]["final"]).z
    assert [lk["bound"] for lk in looks] == pytest.approx(bounds, rel=1e-9)
    assert res.decision == "treatment_wins"
    first = next(lk for lk in looks if lk["reject"])
    assert res.to_json()["decided_at"] == first["at"]
    assert abs(first["z"]) >= first["bound"]
    assert res.always_valid_p_value == pytest.approx(looks[-1]["p_value"])


def test_monitor_aa_decides_nothing_and_mixture_is_the_default():
    spec = parse_experiment(SPEC.replace("SPENDING", "obrien_fleming"))
    res = run_monitor(spec, rolling_send(0.0, seed=3), SEND + dt.timedelta(hours=130))
    assert res.decision == "continue" and len(res.comparisons[0]["looks"]) == 4
    assert res.comparisons[0]["looks"][-1]["final"]
    mixture = parse_experiment(SPEC.split("  method:")[0])
    out = run_monitor(mixture, rolling_send(0.0, seed=3), SEND + dt.timedelta(hours=130))
    assert out.comparisons[0]["method"] == "mixture" and "looks" not in out.comparisons[0]


@pytest.mark.parametrize(("monitoring", "message"), [
    ("{sequential: true, horizon_hours: 72}", "only for method: group_sequential"),
    ("{sequential: true, method: group_sequential, looks: 4}", "needs horizon_hours"),
    ("{sequential: true, method: group_sequential, horizon_hours: 72}", "exactly one of"),
    ("{sequential: false, method: group_sequential, looks: 2, horizon_hours: 72}",
     "needs sequential: true"),
    ("{sequential: true, method: group_sequential, look_every_hours: 1, horizon_hours: 72}",
     "at most 50"),
    ("{sequential: true, method: group_sequential, looks: 9, horizon_hours: 8}",
     "cannot exceed horizon_hours"),
])
def test_yaml_rules(monitoring: str, message: str):
    text = SPEC.split("monitoring:")[0] + f"monitoring: {monitoring}\n"
    with pytest.raises(SpecError, match=message):
        parse_experiment(text)


def test_look_every_hours_ends_at_the_horizon():
    text = SPEC.replace("  looks: 4\n", "  look_every_hours: 50\n").replace("SPENDING",
                                                                            "pocock")
    assert parse_experiment(text).monitoring.look_hours == (50, 100, 120)
