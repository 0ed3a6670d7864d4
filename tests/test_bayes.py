"""Closed-form Bayesian lift against independent routes: Monte-Carlo draws from the exact
posteriors, the frequentist normal interval under a flat prior, and conjugate updating."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from liftlab.spec import Prior
from liftlab.stats.bayes import closed_form, normal_posterior, prob_roi_positive
from liftlab.stats.suffstats import ArmStats


def _binary(k: int, n: int) -> ArmStats:
    return ArmStats(n, float(k), float(k))


@pytest.mark.parametrize("kt,nt,kh,nh", [(130, 2000, 110, 2000), (9, 400, 4, 100),
                                         (5200, 90000, 530, 10000)])
def test_beta_binomial_prob_matches_monte_carlo_to_3_decimals(kt, nt, kh, nh):
    post = closed_form(_binary(kt, nt), _binary(kh, nh), "binary")
    rng = np.random.default_rng(0)
    draws = 4_000_000
    pt = rng.beta(1 + kt, 1 + nt - kt, draws)
    ph = rng.beta(1 + kh, 1 + nh - kh, draws)
    assert post.prob_positive == pytest.approx((pt > ph).mean(), abs=1e-3)
    assert post.mean_abs == pytest.approx((pt - ph).mean(), abs=1e-4)


def test_flat_prior_equals_frequentist_normal_interval():
    rng = np.random.default_rng(1)
    y_t, y_h = rng.lognormal(3, 1, 5000), rng.lognormal(3, 1, 1500)
    post = closed_form(ArmStats.from_values(y_t), ArmStats.from_values(y_h), "mean")
    diff = y_t.mean() - y_h.mean()
    se = np.sqrt(y_t.var(ddof=1) / 5000 + y_h.var(ddof=1) / 1500)
    assert post.mean_abs == pytest.approx(diff, rel=1e-12)
    assert post.ci_abs == pytest.approx((diff - 1.959964 * se, diff + 1.959964 * se), rel=1e-6)
    assert post.prob_positive == pytest.approx(sps.norm.cdf(diff / se), rel=1e-9)


def test_prior_is_conjugate_normal_update():
    post = normal_posterior(estimate=2.0, se=1.0, baseline=10.0, prior=Prior(mean=0.0, sd=0.1))
    # prior on relative lift N(0, 0.1^2) -> absolute N(0, 1): posterior N(1, 0.5)
    assert post.mean_abs == pytest.approx(1.0)
    assert post.sd_abs == pytest.approx(np.sqrt(0.5))


def test_expected_loss_matches_monte_carlo():
    post = normal_posterior(0.3, 1.0, 10.0)
    x = np.random.default_rng(2).normal(0.3, 1.0, 2_000_000)
    assert post.loss_ship == pytest.approx(np.maximum(0, -x).mean(), abs=2e-3)
    assert post.loss_hold == pytest.approx(np.maximum(0, x).mean(), abs=2e-3)


def test_prob_roi_positive():
    # margin lift per unit ~ N(0.5, 0.2^2), 1,000 treated, cost 300: P(500 + 200 Z > 300)
    assert prob_roi_positive(0.5, 0.2, 1000, 300.0) == pytest.approx(sps.norm.cdf(1.0))
    assert np.isnan(prob_roi_positive(0.5, 0.0, 1000, 300.0))
