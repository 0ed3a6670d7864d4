"""Always-valid statistics: published reference values (GrowthBook's gbstats test cases, the
Lan-DeMets bounds of SeqBounds.jl / gsDesign), independent computations (exact roots,
multivariate-normal probabilities, numerical integration), A/A simulations showing that
peeking every hour keeps the false-positive rate at alpha while a naive test does not, and
property tests."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from liftlab.stats import sequential as s
from liftlab.stats.suffstats import ArmStats

# gbstats (growthbook/growthbook, packages/stats/tests/frequentist/test_tests.py):
# SampleMeanStatistic(sum=1396.87, sum_squares=52377.9767, n=3000) is the control,
# (2422.7, 134698.29, 3461) the treatment; alpha 0.05, default tuning parameter 5000.
CONTROL = ArmStats(3000, 1396.87, 52377.9767)
TREAT = ArmStats(3461, 2422.7, 134698.29)


def test_growthbook_two_sided_relative():
    """test_sequential_test_runs (tuning 1000): expected 0.50336, ci (-0.55844, 1.56516)."""
    look = s.mixture_look(TREAT, CONTROL, 1000, 0.05, "relative")
    assert look.estimate == pytest.approx(0.50336, abs=1e-4)
    assert (look.lower, look.upper) == pytest.approx((-0.55844, 1.56516), abs=1e-4)
    assert look.p_value == 1.0  # gbstats: pValue=1


def test_growthbook_two_sided_proportions():
    """test_sequential_test_runs_prop: ProportionStatistic(sum=1396, n=3000) vs (2422, 3461),
    tuning 5000: expected 0.50386, ci (0.40098, 0.60675), pValue 0.0."""
    look = s.mixture_look(ArmStats(3461, 2422, 2422), ArmStats(3000, 1396, 1396), 5000, 0.05,
                          "relative")
    assert look.estimate == pytest.approx(0.50386, abs=1e-4)
    assert (look.lower, look.upper) == pytest.approx((0.40098, 0.60675), abs=1e-4)
    assert look.p_value < 1e-40


@pytest.mark.parametrize("scale,side,bound", [
    ("relative", "greater", -0.42356454602790883),  # TestSequentialOneSidedGreaterTTest
    ("absolute", "greater", -0.12656844172804982),
    ("relative", "less", 1.4302867177403806),       # TestSequentialOneSidedLesserTTest
    ("absolute", "less", 0.5953217750613832),
])
def test_growthbook_one_sided_bounds(scale, side, bound):
    look = s.mixture_look(TREAT, CONTROL, 5000, 0.05, scale, side)
    got = look.lower if side == "greater" else look.upper
    assert got == pytest.approx(bound, abs=1e-4)
    assert (look.upper if side == "greater" else look.lower) in (math.inf, -math.inf)


def test_growthbook_one_sided_p_value():
    """gbstats reports pValue=0.46316491943359384 (absolute, greater): the output of its
    bisection on alpha (bracket [1e-5, 0.4999], stop when the bound is within 1e-6 of zero),
    so it is only accurate to ~1e-4. Running that bisection on our half-width gives exactly
    their number; our closed form is the exact root of ``lower bound = 0``."""
    look = s.mixture_look(TREAT, CONTROL, 5000, 0.05, "absolute", "greater")
    est, var = s.difference(TREAT, CONTROL)
    n = TREAT.n + CONTROL.n
    r2 = s.rho_squared(5000, 0.05, "greater")

    def lower(a: float) -> float:  # half-width with the mixing variance fixed at alpha 0.05
        nr1 = n * r2 + 1
        return est - math.sqrt(var * n * 2 * nr1 / (n**2 * r2) * math.log1p(
            math.sqrt(nr1) / (2 * a)))

    lo, hi = 1e-5, 0.4999
    a = (lo + hi) / 2
    for _ in range(100):
        d = lower(a)
        lo, hi = (a, hi) if d < 0 else (lo, a)
        a = (lo + hi) / 2
        if abs(d) < 1e-6:
            break
    assert a == pytest.approx(0.46316491943359384, abs=1e-12)
    assert look.p_value == pytest.approx(optimize.brentq(lower, 0.3, 0.49, xtol=1e-14),
                                         rel=1e-9)
    assert look.p_value == pytest.approx(0.46316, abs=2e-4)


def test_two_sided_p_value_inverts_the_interval():
    """At level p the sequence (mixing variance fixed) just touches zero: closed form vs
    root of the half-width."""
    est, var, n = 1.5, 0.09, 5000
    p = float(s.always_valid_p(est, var, n, 2000, 0.05))
    r2 = s.rho_squared(2000, 0.05)
    root = optimize.brentq(lambda a: math.sqrt(var * n * 2 * (n * r2 + 1) / (n**2 * r2)
                                               * math.log(math.sqrt(n * r2 + 1) / a)) - est,
                           1e-12, 0.999)
    assert 0 < p < 0.05 and p == pytest.approx(root, rel=1e-9)


def test_tuning_makes_the_sequence_tightest_at_n_star():
    widths = [float(s.halfwidth(1 / 5000, 5000, n_star, 0.05)) for n_star in (50, 5000, 5e5)]
    assert widths[1] < widths[0] and widths[1] < widths[2]
    grid = np.geomspace(500, 50_000, 400)
    best = grid[np.argmin([float(s.halfwidth(1 / 5000, 5000, g, 0.05)) for g in grid])]
    assert best == pytest.approx(5000, rel=0.03)


def test_tune_n_star_puts_the_expected_effect_on_the_boundary():
    """With the closed-form n_star, an effect of the planned size sits exactly on the
    boundary at n_star (independent check: the half-width formula at that n)."""
    sd, effect, q = 40.0, 1.2, 0.9
    n_star = s.tune_n_star(10**9, 0.05, unit_sd=sd, effect=effect, treatment_share=q)
    var = sd**2 * (1 / (q * n_star) + 1 / ((1 - q) * n_star))
    assert float(s.halfwidth(var, n_star, n_star, 0.05)) == pytest.approx(effect, rel=1e-9)
    assert s.tune_n_star(1000, 0.05, unit_sd=sd, effect=effect, treatment_share=q) == 1000
    assert s.tune_n_star(1000, 0.05) == 1000


# -- group sequential -----------------------------------------------------------------------
def test_lan_demets_one_sided_reference():
    """SeqBounds.jl README (github.com/PharmCat/SeqBounds.jl): one-sided O'Brien-Fleming-type
    spending, alpha 0.05, fractions 0.25/0.5/0.75/1: Z 3.74955, 2.53993, 2.01604, 1.72014,
    cumulative spend 8.85754e-5, 0.0055746, 0.0236251, 0.05."""
    b = s.group_sequential_bounds([0.25, 0.5, 0.75, 1.0], 0.05, sides=1)
    assert b.z == pytest.approx((3.74955, 2.53993, 2.01604, 1.72014), abs=1e-4)
    assert b.spent == pytest.approx((8.85754e-5, 0.0055746, 0.0236251, 0.05), abs=1e-7)


def test_lan_demets_two_sided_against_multivariate_normal():
    """Five equally spaced looks, two-sided 0.05 (gsDesign sfLDOF, one-sided 0.025 per side):
    the classic bounds 4.877, 3.357, 2.680, 2.290, 2.031, and, by an independent route (the
    joint normal law of the z-statistics, corr sqrt(t_i / t_j)), the probability of no
    crossing up to each look equals 1 - the alpha spent."""
    t = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    b = s.group_sequential_bounds(t, 0.05, sides=2)
    assert b.z == pytest.approx((4.877, 3.357, 2.680, 2.290, 2.031), abs=1e-3)
    for k in (2, 3, 5):
        corr = np.sqrt(np.minimum.outer(t[:k], t[:k]) / np.maximum.outer(t[:k], t[:k]))
        z = np.array(b.z[:k])
        law = stats.multivariate_normal(np.zeros(k), corr, abseps=1e-8, releps=1e-8, seed=1)
        inside = law.cdf(z, lower_limit=-z)
        assert inside == pytest.approx(1 - 2 * b.spent[k - 1], abs=2e-5)


def test_group_sequential_rejects_bad_fractions():
    with pytest.raises(ValueError, match="increase strictly"):
        s.group_sequential_bounds([0.5, 0.4, 1.0], 0.05)


# -- A/A simulations (vectorised over replications) ----------------------------------------
def _aa(kind: str, reps: int, looks: int, per_look: int, share: float, seed: int):
    """Cumulative per-look estimates, variances, n and responders of A/A tests."""
    rng = np.random.default_rng(seed)
    n_t = rng.binomial(per_look, share, (reps, looks))
    n_h = per_look - n_t

    def sums(size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if kind == "binary":  # conversion at 3%
            k = rng.binomial(size, 0.03)
            return k, k, k
        buyers = rng.binomial(size, 0.05)  # 5% buy; heavy-tailed lognormal spend
        spend = rng.lognormal(3.5, 1.2, int(buyers.sum()))
        cell = np.repeat(np.arange(buyers.size), buyers.ravel())
        total = np.bincount(cell, spend, buyers.size).reshape(size.shape)
        squares = np.bincount(cell, spend**2, buyers.size).reshape(size.shape)
        return total, squares, buyers

    (s_t, q_t, e_t), (s_h, q_h, e_h) = sums(n_t), sums(n_h)
    big_n_t, big_n_h = n_t.cumsum(1), n_h.cumsum(1)
    st_, sh_, qt_, qh_ = s_t.cumsum(1), s_h.cumsum(1), q_t.cumsum(1), q_h.cumsum(1)
    v_t = (qt_ - st_**2 / big_n_t) / (big_n_t - 1)
    v_h = (qh_ - sh_**2 / big_n_h) / (big_n_h - 1)
    events = (e_t.cumsum(1), e_h.cumsum(1))
    return (st_ / big_n_t - sh_ / big_n_h, v_t / big_n_t + v_h / big_n_h,
            big_n_t + big_n_h, events)


REPS, LOOKS, PER_LOOK, ALPHA = 2000, 72, 2000, 0.05
MC = 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)


@pytest.mark.parametrize("kind", ["binary", "revenue"])
def test_aa_false_positive_rate_with_hourly_peeking(kind: str):
    """2,000 A/A tests, 72 hourly looks, 90/10 split, both with the monitor's burn-in (100
    responders per arm): the always-valid test rejects at most alpha + 3 Monte-Carlo SE; a
    fixed-horizon z-test read at every look rejects several times more often."""
    est, var, n, (e_t, e_h) = _aa(kind, REPS, LOOKS, PER_LOOK, 0.9,
                                  seed=1 if kind == "binary" else 2)
    burned_in = np.minimum(e_t, e_h) >= 100
    p = np.where(burned_in, s.always_valid_p(est, var, n, LOOKS * PER_LOOK, ALPHA), 1.0)
    fpr_seq = (np.minimum.accumulate(p, axis=1)[:, -1] < ALPHA).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(est) / np.sqrt(var)
    naive = (burned_in & (z > stats.norm.isf(ALPHA / 2))).any(axis=1).mean()
    fixed_once = (np.abs(est[:, -1]) / np.sqrt(var[:, -1]) > 1.959964).mean()
    print(f"{kind}: always-valid FPR {fpr_seq:.4f}, naive hourly z-test {naive:.4f}, "
          f"single fixed-horizon test {fixed_once:.4f}")
    assert fpr_seq <= ALPHA + MC
    assert naive >= 3 * ALPHA  # measured: 21% (binary), 27% (revenue)
    assert abs(fixed_once - ALPHA) <= MC  # the naive test itself is fine when read once


def test_aa_event_indexed_and_one_sided_harm_tests():
    """A/A arrival splits (90/10, 72 hourly batches of responses): the event-indexed mixture
    and its one-sided (harm) version keep their levels when read every hour."""
    rng = np.random.default_rng(3)
    total = rng.poisson(40, (REPS, LOOKS))
    in_t = rng.binomial(total, 0.9)
    k_t, k_h = in_t.cumsum(1), (total - in_t).cumsum(1)
    conc = s.mixture_concentration(40 * LOOKS, ALPHA)
    p_two, p_gt, p_lt = s.event_p_values(k_t, k_h, 0.9, conc)
    two, harm = p_two.min(1), p_gt.min(1)
    print(f"event-indexed A/A FPR: two-sided {(two < ALPHA).mean():.4f}, "
          f"harm {(harm < ALPHA).mean():.4f}, benefit {(p_lt.min(1) < ALPHA).mean():.4f}")
    assert (two < ALPHA).mean() <= ALPHA + MC
    assert (harm < ALPHA).mean() <= ALPHA + MC


def test_event_indexed_test_detects_a_response_lift():
    """The same arrivals with a 30% higher response rate in treatment: mostly detected."""
    rng = np.random.default_rng(4)
    share = 0.9 * 1.3 / (0.9 * 1.3 + 0.1)
    total = rng.poisson(40, (300, LOOKS))
    in_t = rng.binomial(total, share)
    k_t, k_h = in_t.cumsum(1)[:, -1], (total - in_t).cumsum(1)[:, -1]
    conc = s.mixture_concentration(40 * LOOKS, ALPHA)
    looks = [s.event_look(int(a), int(b), 0.9, conc, ALPHA) for a, b in zip(k_t, k_h, strict=True)]
    assert np.mean([lk.p_value < ALPHA for lk in looks]) > 0.8
    covered = np.mean([lk.lower <= 1.3 <= lk.upper for lk in looks])
    assert covered >= 0.95


def test_multinomial_mixture_srm_is_valid_and_powerful():
    rng = np.random.default_rng(3)
    reps, looks = 1000, 60
    conc = s.mixture_concentration(50 * looks, 0.05)
    counts = rng.multinomial(50, [0.9, 0.1], (reps, looks)).cumsum(1)
    p = np.array([[s.multinomial_mixture_p(c, [0.9, 0.1], conc) for c in row]
                  for row in counts])
    assert (p.min(1) < 0.05).mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    broken = rng.multinomial(50, [0.87, 0.13], (100, looks)).cumsum(1)
    p_b = np.array([[s.multinomial_mixture_p(c, [0.9, 0.1], conc) for c in row]
                    for row in broken])
    assert (p_b.min(1) < 0.05).mean() > 0.8


def test_multinomial_mixture_equals_numerical_integration():
    """Two cells: 1 / BF = L(p0) / integral of L(p) under the Beta prior (scipy quad)."""
    k, n, p0, c = 130, 1000, 0.1, 250.0
    marginal, _ = integrate.quad(lambda p: stats.binom.pmf(k, n, p)
                                 * stats.beta.pdf(p, c * p0, c * (1 - p0)), 0, 1,
                                 points=[k / n], epsabs=1e-14)
    expected = stats.binom.pmf(k, n, p0) / marginal
    assert s.multinomial_mixture_p([k, n - k], [p0, 1 - p0], c) == pytest.approx(
        expected, rel=1e-6)


# -- properties -----------------------------------------------------------------------------
arm = st.builds(lambda n, m, sd: ArmStats.from_values(
    np.random.default_rng(n).normal(m, sd, n)),
    st.integers(5, 400), st.floats(0.5, 50), st.floats(0.1, 20))


@settings(max_examples=60, deadline=None)
@given(arm, arm, st.floats(10, 1e6), st.sampled_from(["absolute", "relative"]))
def test_sequence_contains_its_estimate_and_p_is_a_probability(t, h, n_star, scale):
    look = s.mixture_look(t, h, n_star, 0.05, scale)
    assert look.lower <= look.estimate <= look.upper
    assert 0.0 <= look.p_value <= 1.0
    assert (look.p_value < 0.05) == look.excludes_zero or math.isclose(look.p_value, 0.05)


@settings(max_examples=60, deadline=None)
@given(arm, arm, st.floats(10, 1e6))
def test_relabelling_the_arms_mirrors_the_absolute_sequence(t, h, n_star):
    a, b = s.mixture_look(t, h, n_star, 0.05), s.mixture_look(h, t, n_star, 0.05)
    assert b.estimate == pytest.approx(-a.estimate, abs=1e-12)
    assert (b.lower, b.upper) == pytest.approx((-a.upper, -a.lower), abs=1e-9)
    assert b.p_value == pytest.approx(a.p_value, rel=1e-9)
    g = s.mixture_look(t, h, n_star, 0.05, side="greater")
    lo = s.mixture_look(h, t, n_star, 0.05, side="less")
    assert g.p_value == pytest.approx(lo.p_value, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 3000), st.floats(0.05, 0.95), st.floats(5, 5000))
def test_event_look_relabelling_and_bounds(k_t, k_h, share, conc):
    a = s.event_look(k_t, k_h, share, conc, 0.05)
    b = s.event_look(k_h, k_t, 1 - share, conc, 0.05)
    assert 0 <= a.p_value <= 1 and a.p_value == pytest.approx(b.p_value, rel=1e-9)
    assert a.p_greater == pytest.approx(b.p_less, rel=1e-9)
    if k_t + k_h:
        assert a.lower <= a.rate_ratio <= a.upper
        if a.lower > 0 and math.isfinite(a.upper) and k_t and k_h:
            assert b.lower == pytest.approx(1 / a.upper, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=50))
def test_running_min_is_monotone(values):
    out = s.running_min(values)
    assert all(x >= y for x, y in itertools.pairwise(out))
    assert all(o <= v for o, v in zip(out, values, strict=True))


def test_degenerate_looks_do_not_raise():
    one = ArmStats(1, 1.0, 1.0)
    assert s.mixture_look(one, CONTROL, 100, 0.05).p_value == 1.0
    flat = ArmStats(10, 10.0, 10.0)
    assert s.mixture_look(flat, flat, 100, 0.05).p_value == 1.0
    zero = ArmStats(10, 0.0, 0.0)
    assert s.mixture_look(CONTROL, zero, 100, 0.05, "relative").lower == -math.inf


def test_expected_time_to_decision():
    """Faster and more powerful with a larger effect; for a large effect the median time is
    close to where the drift alone crosses the boundary (noise is small relative to it)."""
    slow = s.expected_time_to_decision(0.5, 40.0, 400, 0.9, 400 * 504, reps=300)
    fast = s.expected_time_to_decision(4.0, 40.0, 400, 0.9, 400 * 504, reps=300)
    hours, power = fast
    assert hours < slow.median_hours and power >= slow.power and power == 1.0
    h = np.arange(1, 505)
    n = 400 * h
    hw = s.halfwidth(40.0**2 * (1 / (0.9 * n) + 1 / (0.1 * n)), n, 400 * 504, 0.05)
    drift_hour = int(h[np.argmax(hw < 4.0)])
    assert hours == pytest.approx(drift_hour, rel=0.25)
