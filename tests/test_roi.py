"""ROI and ROAS against hand-computed cases, including zero and negative increments and a
zero cost."""

from __future__ import annotations

import math

import pytest

from liftlab.roi import channel_roi
from liftlab.stats.frequentist import Lift, failed


def lift(abs_: float, se: float) -> Lift:
    return Lift(10 + abs_, 10.0, abs_, se, (abs_ - 1.96 * se, abs_ + 1.96 * se), abs_ / 10,
                se / 10, (0.0, 0.0), 0.5, 1e6)


def test_positive_increment():
    # 2,000 treated, +0.50 margin per unit -> 1,000 margin; cost 400 -> ROI 1.5
    r = channel_roi(lift(0.5, 0.1), lift(1.2, 0.2), 2000, 400.0)
    assert r.incremental_margin == pytest.approx(1000.0)
    assert r.roi == pytest.approx(1.5)
    lo, hi = (0.5 - 0.196) * 2000, (0.5 + 0.196) * 2000
    assert r.roi_ci == pytest.approx(((lo - 400) / 400, (hi - 400) / 400))
    assert r.roas == pytest.approx(1.2 * 2000 / 400)


def test_zero_and_negative_increments():
    zero = channel_roi(lift(0.0, 0.1), lift(0.0, 0.1), 1000, 250.0)
    assert zero.roi == pytest.approx(-1.0)  # the whole cost is lost
    assert zero.roas == pytest.approx(0.0)
    neg = channel_roi(lift(-0.2, 0.1), lift(-0.5, 0.1), 1000, 100.0)
    assert neg.roi == pytest.approx((-200 - 100) / 100)
    assert neg.prob_roi_positive < 0.01


def test_zero_cost_and_failed_lift():
    free = channel_roi(lift(0.5, 0.1), lift(1.0, 0.1), 1000, 0.0)
    assert free.roi is None and free.roas is None and "undefined" in free.note
    bad = channel_roi(failed("too few units"), failed("too few units"), 1000, 50.0)
    assert bad.roi is None and bad.roas is None and bad.incremental_margin is None
    assert not math.isnan(bad.cost)
