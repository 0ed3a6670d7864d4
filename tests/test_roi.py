"""ROI and ROAS against hand-computed cases: positive, zero and negative increments, zero,
negative and missing costs, failed comparisons, and factorial estimates as inputs."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from liftlab.stats.contribution import Estimate
from liftlab.stats.frequentist import Lift, failed
from liftlab.stats.roi import channel_roi


def lift(abs_: float, se: float) -> Lift:
    """A treatment-vs-holdout lift with a +-1.96 se interval (as a large-sample Welch CI)."""
    return Lift(10 + abs_, 10.0, abs_, se, (abs_ - 1.96 * se, abs_ + 1.96 * se), abs_ / 10,
                se / 10, (0.0, 0.0), 0.5, 1e6)


def test_positive_increment_by_hand():
    # 2,000 treated; +0.50 margin per customer (se 0.10) -> +1,000 margin; cost 400
    r = channel_roi(lift(0.5, 0.1), lift(1.2, 0.2), 2000, 400.0, orders=lift(0.03, 0.01))
    assert r.margin is not None and r.margin.total == pytest.approx(1000.0)
    assert r.roi == pytest.approx(1.5)  # (1000 - 400) / 400
    assert r.roi_se == pytest.approx(0.5)  # 0.10 x 2000 / 400
    # CI of the margin: 0.5 -+ 0.196 -> 608 .. 1392 in total -> ROI 0.52 .. 2.48
    assert r.roi_ci == pytest.approx((0.52, 2.48))
    assert r.roas == pytest.approx(6.0)  # 1.2 x 2000 / 400
    assert r.roas_ci == pytest.approx((4.04, 7.96))  # (1.2 -+ 0.392) x 2000 / 400
    # P(margin per customer > break-even 400 / 2000 = 0.2) with margin ~ N(0.5, 0.1) = Phi(3)
    assert r.prob_roi_positive == pytest.approx(sps.norm.cdf(3.0))
    assert r.orders is not None and r.orders.total == pytest.approx(60.0)
    assert r.note is None
    d = r.to_dict()
    assert d["incremental_margin"] == pytest.approx(1000.0)
    assert d["incremental_margin_ci"] == pytest.approx([608.0, 1392.0])
    assert d["incremental_revenue"] == pytest.approx(2400.0)
    assert d["incremental_orders_per_customer_ci"] == pytest.approx([0.0104, 0.0496])
    assert d["cost_per_treated"] == pytest.approx(0.2)


def test_roi_se_is_the_delta_method_gradient():
    """ROI(m) = (n m - C) / C: its numerical derivative times se(m) is the reported se."""
    n, cost, m, se = 1500, 300.0, 0.4, 0.07
    r = channel_roi(lift(m, se), lift(m, se), n, cost)
    h = 1e-6
    grad = (((n * (m + h) - cost) / cost) - ((n * (m - h) - cost) / cost)) / (2 * h)
    assert r.roi_se == pytest.approx(abs(grad) * se, rel=1e-6)


def test_zero_increment_loses_the_whole_cost():
    r = channel_roi(lift(0.0, 0.1), lift(0.0, 0.1), 1000, 250.0)
    assert r.roi == pytest.approx(-1.0)
    assert r.roas == pytest.approx(0.0)
    assert r.roi_ci == pytest.approx(((-196 - 250) / 250, (196 - 250) / 250))
    assert r.prob_roi_positive == pytest.approx(sps.norm.sf(2.5))  # break-even 0.25 = 2.5 se


def test_negative_increment():
    r = channel_roi(lift(-0.2, 0.1), lift(-0.5, 0.1), 1000, 100.0)
    assert r.roi == pytest.approx(-3.0)  # (-200 - 100) / 100
    assert r.roas == pytest.approx(-5.0)  # -500 / 100
    assert r.roas_ci == pytest.approx(((-0.5 - 0.196) * 10, (-0.5 + 0.196) * 10))
    assert r.prob_roi_positive == pytest.approx(sps.norm.sf(3.0))


@pytest.mark.parametrize(("cost", "reason"), [
    (0.0, "no cost recorded"), (-5.0, "negative"), (math.nan, "not a number")])
def test_zero_negative_or_missing_cost_leaves_roi_undefined(cost, reason):
    r = channel_roi(lift(0.5, 0.1), lift(1.0, 0.1), 1000, cost)
    assert r.roi is None and r.roi_ci is None and r.roas is None and r.prob_roi_positive is None
    assert r.note is not None and reason in r.note
    assert r.margin is not None and r.margin.total == pytest.approx(500.0)  # still reported
    assert r.to_dict()["roi_note"] == r.note


def test_failed_comparison():
    r = channel_roi(failed("too few units"), lift(1.0, 0.1), 1000, 50.0)
    assert r.roi is None and r.margin is None and "margin increment" in (r.note or "")
    assert r.roas == pytest.approx(20.0)  # revenue is still there: 1000 / 50
    d = r.to_dict()
    assert d["incremental_margin"] is None and d["incremental_margin_ci"] is None


def test_factorial_estimate_as_input():
    z = sps.norm.ppf(0.975)
    r = channel_roi(Estimate(0.5, 0.1), Estimate(2.0, 0.3), 800, 200.0)
    assert r.roi == pytest.approx((400 - 200) / 200)
    assert r.roi_ci == pytest.approx((((0.5 - z * 0.1) * 800 - 200) / 200,
                                      ((0.5 + z * 0.1) * 800 - 200) / 200))
    assert r.roas == pytest.approx(8.0)
    assert channel_roi(Estimate(math.nan, math.nan), Estimate(1.0, 0.1), 10, 1.0).roi is None
