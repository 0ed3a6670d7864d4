"""Invariants of the statistics (hypothesis): row order, splitting the data and adding the
sufficient statistics, swapping arms, CIs around estimates, relative vs absolute lift."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from liftlab.stats.frequentist import welch
from liftlab.stats.suffstats import ArmStats

values = st.lists(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
                  min_size=3, max_size=60)
pairs = st.lists(st.tuples(st.floats(-1e3, 1e3, allow_nan=False),
                           st.floats(-1e3, 1e3, allow_nan=False)), min_size=3, max_size=60)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@settings(deadline=None)
@given(pairs, st.randoms(use_true_random=False))
def test_row_order_does_not_matter(rows, rnd):
    y, x = map(np.array, zip(*rows, strict=True))
    perm = list(range(len(y)))
    rnd.shuffle(perm)
    a, b = ArmStats.from_values(y, x), ArmStats.from_values(y[perm], x[perm])
    assert a.n == b.n and close(a.mean, b.mean) and close(a.variance, b.variance)
    assert close(a.covariance, b.covariance)


@settings(deadline=None)
@given(pairs, st.integers(1, 59))
def test_parts_add_up_to_the_whole(rows, cut):
    y, x = map(np.array, zip(*rows, strict=True))
    cut = min(cut, len(y) - 1)
    whole = ArmStats.from_values(y, x)
    parts = ArmStats.from_values(y[:cut], x[:cut]) + ArmStats.from_values(y[cut:], x[cut:])
    assert parts.n == whole.n
    assert close(parts.mean, whole.mean) and close(parts.variance, whole.variance)
    assert close(parts.covariance, whole.covariance)


@settings(deadline=None)
@given(values, values, st.booleans())
def test_swapping_arms_flips_the_lift(t, h, cuped):
    a = ArmStats.from_values(t, np.arange(len(t)))
    b = ArmStats.from_values(h, np.arange(len(h)))
    ab, ba = welch(a, b, cuped=cuped), welch(b, a, cuped=cuped)
    if ab.ok:
        assert close(ab.abs, -ba.abs) and close(ab.p_value, ba.p_value)
        assert close(ab.abs_se, ba.abs_se)


@settings(deadline=None)
@given(values, values)
def test_ci_contains_the_estimate_and_relative_matches_absolute(t, h):
    lift = welch(ArmStats.from_values(t), ArmStats.from_values(h))
    if not lift.ok:
        return
    assert lift.abs_ci[0] <= lift.abs <= lift.abs_ci[1]
    assert 0 <= lift.p_value <= 1
    if lift.mean_holdout != 0 and math.isfinite(lift.rel):
        # relative to the holdout's size: a rise from a negative baseline is a positive lift
        assert close(lift.rel, lift.abs / abs(lift.mean_holdout))
        assert lift.rel_ci[0] <= lift.rel <= lift.rel_ci[1]
        # Fieller: the relative interval excludes 0 exactly when the absolute one does
        excl_abs = lift.abs_ci[0] > 0 or lift.abs_ci[1] < 0
        excl_rel = lift.rel_ci[0] > 0 or lift.rel_ci[1] < 0
        assert excl_abs == excl_rel or not math.isfinite(lift.rel_ci[0])
        assert lift.rel_p_value == lift.p_value
