"""Closed-form Bayesian lift against independent routes: the exact finite sum for P(p_t > p_h)
with integer Beta parameters, Monte-Carlo draws from the exact posteriors, scipy's adaptive
quadrature, statsmodels' Welch interval under a flat prior, and conjugate normal updating."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps
from scipy.special import betaln
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from liftlab.spec.models import Prior
from liftlab.stats.bayes import closed_form, from_lift, normal_posterior, prob_roi_positive
from liftlab.stats.frequentist import welch
from liftlab.stats.suffstats import ArmStats

CASES = [(130, 2000, 110, 2000), (9, 400, 4, 100), (5200, 90000, 530, 10000), (0, 50, 3, 40),
         (3, 20000, 1, 30)]


def _binary(k: int, n: int) -> ArmStats:
    return ArmStats(n, float(k), float(k))


def _p_greater_exact(at: int, bt: int, ah: int, bh: int) -> float:
    """P(Beta(at, bt) > Beta(ah, bh)) as a finite sum (Evan Miller's formula, integer at)."""
    i = np.arange(at)
    terms = betaln(ah + i, bt + bh) - np.log(bt + i) - betaln(1 + i, bt) - betaln(ah, bh)
    return float(np.exp(terms).sum())


@pytest.mark.parametrize(("kt", "nt", "kh", "nh"), CASES)
def test_beta_binomial_prob_positive_equals_exact_sum(kt, nt, kh, nh):
    post = closed_form(_binary(kt, nt), _binary(kh, nh), "binary")
    exact = _p_greater_exact(1 + kt, 1 + nt - kt, 1 + kh, 1 + nh - kh)
    assert post.prob_positive == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize(("kt", "nt", "kh", "nh"), CASES[:3])
def test_beta_binomial_matches_monte_carlo(kt, nt, kh, nh):
    """4M draws: MC standard error <= 0.00025 for a probability, so 3 decimals is >= 4 SE."""
    post = closed_form(_binary(kt, nt), _binary(kh, nh), "binary")
    rng = np.random.default_rng(0)
    pt = rng.beta(1 + kt, 1 + nt - kt, 4_000_000)
    ph = rng.beta(1 + kh, 1 + nh - kh, 4_000_000)
    diff, rel = pt - ph, pt / ph - 1
    assert post.prob_positive == pytest.approx((diff > 0).mean(), abs=1e-3)
    assert post.mean_abs == pytest.approx(diff.mean(), abs=3 * diff.std() / 2000)
    assert post.mean_rel == pytest.approx(rel.mean(), abs=3 * rel.std() / 2000)
    assert post.loss_ship == pytest.approx(np.maximum(-diff, 0).mean(), rel=0.01, abs=1e-7)
    assert post.loss_hold == pytest.approx(np.maximum(diff, 0).mean(), rel=0.01, abs=1e-7)
    for got, want in zip(post.ci_abs, np.quantile(diff, [0.025, 0.975]), strict=True):
        assert got == pytest.approx(want, abs=0.01 * diff.std())
    for got, want in zip(post.ci_rel, np.quantile(rel, [0.025, 0.975]), strict=True):
        assert got == pytest.approx(want, abs=0.01 * rel.std())


@pytest.mark.parametrize(("kt", "nt", "kh", "nh"), CASES)
def test_beta_binomial_interval_ends_are_exact_quantiles(kt, nt, kh, nh):
    """At each interval end, P(lift <= end) computed by scipy's adaptive quadrature (another
    integration route: over p_h, on its natural scale) is 2.5% or 97.5%."""
    post = closed_form(_binary(kt, nt), _binary(kh, nh), "binary")
    bt, bh = sps.beta(1 + kt, 1 + nt - kt), sps.beta(1 + kh, 1 + nh - kh)
    lo, hi = bh.ppf(1e-13), bh.isf(1e-13)

    def cdf_abs(d: float) -> float:
        return integrate.quad(lambda y: bh.pdf(y) * bt.cdf(y + d), lo, hi, limit=500,
                              points=[bh.mean()], epsabs=1e-12)[0]

    def cdf_rel(r: float) -> float:
        return integrate.quad(lambda y: bh.pdf(y) * bt.cdf(y * (1 + r)), lo, hi, limit=500,
                              points=[bh.mean()], epsabs=1e-12)[0]

    for end, q in zip(post.ci_abs, (0.025, 0.975), strict=True):
        assert cdf_abs(end) == pytest.approx(q, abs=1e-6)
    for end, q in zip(post.ci_rel, (0.025, 0.975), strict=True):
        assert cdf_rel(end) == pytest.approx(q, abs=1e-6)


@pytest.mark.parametrize("alpha", [1e-17, 5e-324])
def test_a_vanishing_alpha_still_gives_finite_binary_bounds(alpha):
    """1 - alpha/2 rounds to 1: the root search must start from a finite point."""
    post = closed_form(_binary(120, 1000), _binary(100, 1000), "binary", alpha=alpha)
    assert np.isfinite(post.ci_abs).all() and np.isfinite(post.ci_rel).all()
    assert post.ci_abs[0] < post.mean_abs < post.ci_abs[1]


def test_flat_prior_equals_welch_from_statsmodels():
    """Under a flat prior the posterior is the Welch t: same estimate, same 95% interval, and
    P(lift > 0) is one minus the one-sided Welch p-value (statsmodels on unit-level rows)."""
    rng = np.random.default_rng(1)
    y_t, y_h = rng.lognormal(3, 1, 5000), rng.lognormal(3, 1, 150)
    post = closed_form(ArmStats.from_values(y_t), ArmStats.from_values(y_h), "mean")
    cm = CompareMeans(DescrStatsW(y_t), DescrStatsW(y_h))
    lo, hi = cm.tconfint_diff(alpha=0.05, usevar="unequal")
    _, p_larger, _ = cm.ttest_ind(alternative="larger", usevar="unequal")
    assert post.mean_abs == pytest.approx(y_t.mean() - y_h.mean(), rel=1e-12)
    assert post.ci_abs == pytest.approx((lo, hi), rel=1e-9)
    assert post.prob_positive == pytest.approx(1 - p_larger, rel=1e-9)
    assert post.method == "welch-t (flat prior)"


def test_flat_prior_relative_interval_is_the_delta_method():
    """Relative lift mean_t / mean_h - 1 with the delta-method SE, written out by hand."""
    rng = np.random.default_rng(2)
    y_t, y_h = rng.poisson(3.3, 4000), rng.poisson(3.0, 1000)
    post = closed_form(ArmStats.from_values(y_t), ArmStats.from_values(y_h), "count")
    mt, mh = y_t.mean(), y_h.mean()
    vt, vh = y_t.var(ddof=1) / len(y_t), y_h.var(ddof=1) / len(y_h)
    se = math.sqrt(vt / mh**2 + mt**2 * vh / mh**4)
    assert post.mean_rel == pytest.approx(mt / mh - 1, rel=1e-12)
    assert post.ci_rel == pytest.approx((mt / mh - 1 - 1.959964 * se, mt / mh - 1 + 1.959964 * se),
                                        rel=1e-6)


def test_from_lift_reads_the_cuped_estimate():
    rng = np.random.default_rng(3)
    x = rng.normal(50, 10, 6000)
    y = 0.8 * x + rng.normal(0, 5, 6000) + np.r_[np.full(3000, 1.0), np.zeros(3000)]
    lift = welch(ArmStats.from_values(y[:3000], x[:3000]), ArmStats.from_values(y[3000:], x[3000:]),
                 cuped=True)
    post = from_lift(lift)
    assert post.mean_abs == pytest.approx(lift.abs, rel=1e-12)
    assert post.ci_abs == pytest.approx(lift.abs_ci, rel=1e-12)
    z = sps.norm.ppf(0.975)  # the posterior's relative scale is normal on the delta-method se
    assert post.ci_rel == pytest.approx((lift.rel - z * lift.rel_se, lift.rel + z * lift.rel_se),
                                        rel=1e-12)


def test_prior_is_a_conjugate_normal_update():
    post = normal_posterior(estimate=2.0, se=1.0, baseline=10.0, prior=Prior(mean=0.0, sd=0.1),
                            rel_se=0.1)
    # relative prior N(0, 0.1^2) -> absolute N(0, 1); likelihood N(2, 1) -> posterior N(1, 1/2)
    assert post.mean_abs == pytest.approx(1.0)
    assert post.sd_abs == pytest.approx(math.sqrt(0.5))
    assert post.mean_rel == pytest.approx(0.1)
    assert post.prob_positive == pytest.approx(sps.norm.cdf(1 / math.sqrt(0.5)))


def test_binary_prior_updates_the_moment_matched_beta_posteriors():
    t, h = _binary(300, 5000), _binary(250, 5000)
    flat = closed_form(t, h, "binary")
    post = closed_form(t, h, "binary", Prior(mean=0.0, sd=0.05))
    base = 251 / 5002
    precision = 1 / flat.sd_abs**2 + 1 / (0.05 * base) ** 2
    assert post.mean_abs == pytest.approx(flat.mean_abs / flat.sd_abs**2 / precision, rel=1e-9)
    assert post.sd_abs == pytest.approx(precision**-0.5, rel=1e-9)
    assert 0 < post.mean_rel < flat.mean_rel


@pytest.mark.parametrize("df", [4.0, 30.0, math.inf])
def test_expected_losses_match_numerical_expectation(df):
    post = normal_posterior(0.3, 1.0, 10.0, df=df)
    dist = sps.t(df, 0.3, 1.0) if math.isfinite(df) else sps.norm(0.3, 1.0)
    assert post.loss_hold == pytest.approx(dist.expect(lambda x: x, lb=0), rel=1e-7)
    assert post.loss_ship == pytest.approx(dist.expect(lambda x: -x, ub=0), rel=1e-7)


def test_prob_roi_positive():
    # margin lift per unit ~ N(0.5, 0.2^2), 1,000 treated, cost 300: P(500 + 200 Z > 300)
    assert prob_roi_positive(0.5, 0.2, 1000, 300.0) == pytest.approx(sps.norm.cdf(1.0))
    assert prob_roi_positive(0.5, 0.2, 1000, 300.0, df=10) == pytest.approx(sps.t.cdf(1.0, 10))
    assert math.isnan(prob_roi_positive(0.5, 0.0, 1000, 300.0))


def test_degenerate_arms_give_none_and_bad_binary_counts_are_refused():
    assert closed_form(ArmStats(1, 3.0, 9.0), ArmStats(50, 100.0, 400.0)) is None
    assert closed_form(ArmStats(10, 20.0, 40.0), ArmStats(10, 20.0, 40.0)) is None  # constant
    with pytest.raises(ValueError, match="between 0 and n"):
        closed_form(ArmStats(10, 37.0, 200.0), _binary(3, 10), "binary")


@pytest.mark.parametrize(("a", "b"), [(1.0, 1.0), (3.0, 40.0), (1.0, 5e6), (2.5e5, 7.5e5)])
def test_beta_posterior_matches_scipy_stats(a: float, b: float) -> None:
    """The special-function Beta used in the quantile searches equals scipy.stats.beta,
    including outside the support (cdf 0 / 1) and in the far tails of the nodes."""
    from liftlab.stats.bayes import _S, _Beta, _tail

    mine, ref = _Beta(a, b), sps.beta(a, b)
    xs = np.concatenate([[-0.5, 0.0, 1.0, 1.5], ref.ppf([1e-9, 0.01, 0.5, 0.99, 1 - 1e-9])])
    np.testing.assert_allclose(mine.cdf(xs), ref.cdf(xs), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(mine.sf(xs), ref.sf(xs), rtol=1e-12, atol=1e-300)
    assert math.isclose(mine.mean, ref.mean(), rel_tol=1e-14)
    assert math.isclose(mine.std, ref.std(), rel_tol=1e-12)
    nodes = np.where(_S < 0, ref.ppf(_tail()), ref.isf(_tail()))
    np.testing.assert_allclose(mine.nodes, nodes, rtol=1e-10)
    # the density is a sum of logs of size ~1e6 for a, b ~ 1e6 (1e-9 lost); it only steers
    # Newton's steps, the roots are those of the CDF
    np.testing.assert_allclose(mine.pdf(xs), ref.pdf(xs), rtol=1e-8, atol=1e-300)


@pytest.mark.parametrize(("kt", "nt", "kh", "nh"), [*CASES, (0, 3, 2, 2), (1, 1, 0, 1),
                                                     (4_999_000, 10**8, 5_010_000, 10**8)])
def test_newton_quantiles_equal_the_bracketed_search(kt, nt, kh, nh, monkeypatch):
    """Newton's method on the quadrature's own density (from the normal approximation) and
    the bracketed root search (Newton disabled) find the same interval ends."""
    from liftlab.stats import bayes

    newton = closed_form(_binary(kt, nt), _binary(kh, nh), "binary")
    monkeypatch.setattr(bayes, "NEWTON_STEPS", 0)
    bracketed = closed_form(_binary(kt, nt), _binary(kh, nh), "binary")
    for got, want in zip([*newton.ci_abs, *newton.ci_rel],
                         [*bracketed.ci_abs, *bracketed.ci_rel], strict=True):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9 * newton.sd_abs)


def test_newton_needs_no_bracketed_search_for_the_usual_posterior(monkeypatch):
    """The density is the CDF sum's exact derivative: from the normal approximation the
    steps converge without falling back (a wrong density would exhaust them)."""
    from scipy import optimize  # the module bayes imports when it searches

    def refuse(*args, **kwargs):
        raise AssertionError("fell back to the bracketed search")

    monkeypatch.setattr(optimize, "brentq", refuse)
    for kt, nt, kh, nh in [(130, 2000, 110, 2000), (5200, 90000, 530, 10000),
                           (4_999_000, 10**8, 5_010_000, 10**8)]:
        assert closed_form(_binary(kt, nt), _binary(kh, nh), "binary") is not None
