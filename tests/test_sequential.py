"""Always-valid statistics: published reference values, and A/A simulations showing that
peeking every hour keeps the false-positive rate at alpha (a naive test does not)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liftlab.stats.sequential import (
    always_valid_p,
    expected_time_to_decision,
    halfwidth,
    look,
    multinomial_mixture_p,
    running_min,
)
from liftlab.stats.suffstats import ArmStats


def test_growthbook_reference_interval():
    """gbstats test_sequential_test_runs (GrowthBook's Python stats engine): control
    SampleMeanStatistic(sum=1396.87, sum_squares=52377.9767, n=3000), treatment (2422.7,
    134698.29, 3461), sequential_tuning_parameter=1000, relative lift: expected 0.50336,
    ci [-0.55844, 1.56516]."""
    a = ArmStats(3000, 1396.87, 52377.9767)
    b = ArmStats(3461, 2422.7, 134698.29)
    rel = b.mean / a.mean - 1
    var = b.variance / (b.n * a.mean**2) + b.mean**2 * a.variance / (a.n * a.mean**4)
    seq = look(rel, var, a.n + b.n, n_star=1000, alpha=0.05)
    assert rel == pytest.approx(0.50336, abs=1e-4)
    assert seq.lower == pytest.approx(-0.55844, abs=1e-4)
    assert seq.upper == pytest.approx(1.56516, abs=1e-4)


def test_p_value_inverts_the_interval():
    """At p = alpha' the sequence tuned at alpha' just touches zero (closed form vs root)."""
    est, var, n = 1.5, 0.09, 5000
    p = float(always_valid_p(est, var, n, 2000, 0.05))
    assert 0 < p < 0.05
    # the half-width at level p with the same mixing parameter equals |est|
    from liftlab.stats import sequential as s

    r2 = s.rho_squared(2000, 0.05)
    hw = math.sqrt(var * n) * math.sqrt(2 * (n * r2 + 1) / (n**2 * r2) * math.log(
        math.sqrt(n * r2 + 1) / p))
    assert hw == pytest.approx(est, rel=1e-9)


def test_interval_is_tightest_near_n_star():
    widths = [float(halfwidth(1.0, 5000, n_star, 0.05)) for n_star in (50, 5000, 500_000)]
    assert widths[1] < widths[0] and widths[1] < widths[2]


def _aa(kind: str, reps: int, looks: int, per_look: int, share: float, seed: int):
    """Cumulative per-look estimates and variances of A/A tests, vectorised over reps."""
    rng = np.random.default_rng(seed)
    n_t = rng.binomial(per_look, share, (reps, looks))
    n_h = per_look - n_t

    def sums(size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum and sum of squares of the outcome over ``size`` units, per cell."""
        if kind == "binary":  # conversion at 3%
            s = rng.binomial(size, 0.03)
            return s, s, s
        buyers = rng.binomial(size, 0.05)  # 5% buy; heavy-tailed lognormal spend
        spend = rng.lognormal(3.5, 1.2, (*size.shape, int(buyers.max())))
        spend *= np.arange(spend.shape[-1]) < buyers[..., None]
        return spend.sum(-1), (spend**2).sum(-1), buyers

    (s_t, q_t, e_t), (s_h, q_h, e_h) = sums(n_t), sums(n_h)
    N_t, N_h = n_t.cumsum(1), n_h.cumsum(1)
    S_t, S_h, Q_t, Q_h = s_t.cumsum(1), s_h.cumsum(1), q_t.cumsum(1), q_h.cumsum(1)
    v_t = (Q_t - S_t**2 / N_t) / (N_t - 1)
    v_h = (Q_h - S_h**2 / N_h) / (N_h - 1)
    events = np.minimum(e_t.cumsum(1), e_h.cumsum(1))
    return S_t / N_t - S_h / N_h, v_t / N_t + v_h / N_h, N_t + N_h, events


@pytest.mark.parametrize("kind", ["binary", "revenue"])
def test_aa_false_positive_rate_with_hourly_peeking(kind: str):
    """2,000 A/A tests, 72 hourly looks, 90/10 split: the always-valid test rejects at most
    alpha (+ Monte-Carlo error); a fixed-horizon z-test at every look inflates badly."""
    reps, looks, per_look, alpha = 2000, 72, 1000, 0.05
    est, var, n, events = _aa(kind, reps, looks, per_look, 0.9,
                              seed=1 if kind == "binary" else 2)
    n_star = looks * per_look
    # burn-in: no decision before 100 responding units per arm (the monitor default)
    p = np.where(events >= 100, always_valid_p(est, var, n, n_star, alpha), 1.0)
    fpr_seq = (np.minimum.accumulate(p, axis=1)[:, -1] < alpha).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        naive = (np.abs(est) / np.sqrt(var) > 1.959964).any(axis=1).mean()
    mc = 3 * math.sqrt(alpha * (1 - alpha) / reps)
    assert fpr_seq <= alpha + mc, fpr_seq
    assert naive > 0.15, naive  # peeking 72 times at a fixed test: ~20-35% false positives


def test_multinomial_mixture_srm_is_valid_and_powerful():
    rng = np.random.default_rng(3)
    reps, looks = 1000, 60
    counts = rng.multinomial(50, [0.9, 0.1], (reps, looks)).cumsum(1)
    p = np.array([[multinomial_mixture_p(c, [0.9, 0.1]) for c in row] for row in counts])
    assert (p.min(1) < 0.05).mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    broken = rng.multinomial(50, [0.87, 0.13], (50, looks)).cumsum(1)
    p_b = np.array([[multinomial_mixture_p(c, [0.9, 0.1]) for c in row] for row in broken])
    assert (p_b.min(1) < 0.05).mean() > 0.8


def test_running_min_and_degenerate_look():
    assert running_min([0.5, 0.2, 0.3, 0.1]) == [0.5, 0.2, 0.2, 0.1]
    assert look(1.0, 0.0, 10, 100, 0.05).p_value == 1.0


def test_expected_time_to_decision_shrinks_with_effect():
    slow = expected_time_to_decision(0.5, 40.0, 400, 0.9, 400 * 504, reps=300)
    fast = expected_time_to_decision(2.0, 40.0, 400, 0.9, 400 * 504, reps=300)
    assert fast[0] < slow[0] and fast[1] >= slow[1]
