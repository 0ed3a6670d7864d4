"""Closed-form Bayesian lift on sufficient statistics (no sampling, so it runs for every cell).

- Mean and count metrics: a normal likelihood for the difference of means (CLT on the
  sufficient statistics). With a flat prior the posterior is N(estimate, se^2), so the 95%
  credible interval equals the large-sample frequentist interval.
- Binary metrics: Beta-Binomial per arm (Beta(1, 1) prior); P(p_t > p_h) by numerical
  integration of the exact Beta posteriors, not by Monte Carlo.
- An optional normal prior on the *relative* lift (``analysis.prior``: mean, sd), which is
  portable across metrics; it is scaled by the holdout mean for the absolute lift.

Also the expected loss (GrowthBook's "risk") of shipping the treatment or keeping the holdout,
and P(ROI > 0) given costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from scipy import integrate
from scipy import stats as sps

from liftlab.spec import Prior
from liftlab.stats.suffstats import ArmStats

NAN = math.nan


@dataclass(frozen=True)
class BayesEffect:
    mean_abs: float
    sd_abs: float
    ci_abs: tuple[float, float]
    mean_rel: float
    ci_rel: tuple[float, float]
    prob_positive: float
    loss_ship: float      # expected loss (per unit) of shipping the treatment
    loss_hold: float      # expected loss (per unit) of keeping the holdout
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean_abs, "sd": self.sd_abs, "hdi": list(self.ci_abs),
                "mean_rel": self.mean_rel, "hdi_rel": list(self.ci_rel),
                "prob_positive": self.prob_positive, "expected_loss_treatment": self.loss_ship,
                "expected_loss_holdout": self.loss_hold, "method": self.method}


def _normal_posterior(est: float, se: float, prior_mean: float | None,
                      prior_sd: float | None) -> tuple[float, float]:
    if prior_sd is None or prior_mean is None:
        return est, se
    precision = 1 / se**2 + 1 / prior_sd**2
    return (est / se**2 + prior_mean / prior_sd**2) / precision, math.sqrt(1 / precision)


def _losses(mu: float, sd: float) -> tuple[float, float]:
    """E[max(0, -lift)] and E[max(0, lift)] for lift ~ N(mu, sd^2)."""
    if sd <= 0:
        return max(0.0, -mu), max(0.0, mu)
    z = mu / sd
    pdf, cdf = sps.norm.pdf(z), sps.norm.cdf(z)
    return sd * pdf - mu * (1 - cdf), sd * pdf + mu * cdf


def closed_form(treatment: ArmStats, holdout: ArmStats,
                kind: Literal["mean", "binary", "count"] = "mean",
                prior: Prior | None = None, alpha: float = 0.05) -> BayesEffect | None:
    """Posterior summary of the lift; None when the arms are too small to say anything."""
    t, h = treatment, holdout
    if t.n < 2 or h.n < 2:
        return None
    if kind == "binary":
        return _beta_binomial(t, h, prior, alpha)
    var = t.variance / t.n + h.variance / h.n
    if not var > 0:
        return None
    return normal_posterior(t.mean - h.mean, math.sqrt(var), h.mean, prior, alpha)


def normal_posterior(estimate: float, se: float, baseline: float, prior: Prior | None = None,
                     alpha: float = 0.05) -> BayesEffect | None:
    """Posterior of a lift whose likelihood is N(estimate, se^2) (e.g. a CUPED-adjusted or
    delta-method estimate); ``baseline`` (the holdout mean) scales the relative prior."""
    if not (se > 0 and math.isfinite(estimate)):
        return None
    z = sps.norm.ppf(1 - alpha / 2)
    scale = abs(baseline) if baseline else None
    p_mean = p_sd = None
    if prior is not None and prior.sd is not None and scale:
        p_mean, p_sd = prior.mean * scale, prior.sd * scale
    mu, sd = _normal_posterior(estimate, se, p_mean, p_sd)
    rel_mu, rel_sd = (mu / baseline, sd / abs(baseline)) if baseline else (NAN, NAN)
    ship, hold = _losses(mu, sd)
    return BayesEffect(mu, sd, (mu - z * sd, mu + z * sd), rel_mu,
                       (rel_mu - z * rel_sd, rel_mu + z * rel_sd),
                       float(sps.norm.cdf(mu / sd)), ship, hold,
                       "normal" + ("" if p_sd is None else " with prior"))


def _beta_binomial(t: ArmStats, h: ArmStats, prior: Prior | None,
                   alpha: float) -> BayesEffect:
    bt = sps.beta(1 + t.sum, 1 + t.n - t.sum)
    bh = sps.beta(1 + h.sum, 1 + h.n - h.sum)
    mu = bt.mean() - bh.mean()
    sd = math.sqrt(bt.var() + bh.var())
    lo = min(bt.ppf(1e-12), bh.ppf(1e-12))
    hi = max(bt.isf(1e-12), bh.isf(1e-12))
    # P(p_t > p_h) = integral of f_t(x) * F_h(x) dx over the joint support.
    prob, _ = integrate.quad(lambda x: bt.pdf(x) * bh.cdf(x), lo, hi, limit=400,
                             points=[bt.mean(), bh.mean()], epsabs=1e-10)
    prob = min(max(prob, 0.0), 1.0)
    if prior is not None and prior.sd is not None and bh.mean() > 0:
        mu, sd = _normal_posterior(mu, sd, prior.mean * bh.mean(), prior.sd * bh.mean())
        prob = float(sps.norm.cdf(mu / sd))
    z = sps.norm.ppf(1 - alpha / 2)
    base = bh.mean()
    rel_mu = mu / base if base else NAN
    rel_sd = sd / base if base else NAN
    ship, hold = _losses(mu, sd)
    return BayesEffect(mu, sd, (mu - z * sd, mu + z * sd), rel_mu,
                       (rel_mu - z * rel_sd, rel_mu + z * rel_sd), prob, ship, hold,
                       "beta-binomial")


def prob_roi_positive(mean_per_unit: float, sd_per_unit: float, n_treated: int,
                      cost: float) -> float:
    """P(incremental margin x treated units > cost) under a normal posterior."""
    if n_treated <= 0 or not sd_per_unit > 0:
        return NAN
    return float(sps.norm.sf((cost / n_treated - mean_per_unit) / sd_per_unit))
