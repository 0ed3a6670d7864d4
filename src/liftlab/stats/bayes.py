"""Closed-form Bayesian lift on sufficient statistics: no sampling, so it runs for every cell.

Mean and count metrics (``kind="mean" | "count"``)
    With a flat prior on the arm means (and on the log of their spreads) the posterior of the
    difference of means is the Behrens-Fisher distribution; its Welch-Satterthwaite
    approximation is a Student t centred on the estimate with the Welch standard error and
    degrees of freedom. So under a flat prior the posterior mean and the 95% interval *are*
    the Welch estimate and CI, and P(lift > 0) is one minus the one-sided p-value.
    The relative lift ``mean_t / mean_h - 1`` gets the delta method on the ratio (as the
    frequentist module does), with a normal interval.
    An optional prior (``spec.models.Prior``) is a normal prior on the *relative* lift, which
    is portable across metrics. It is updated conjugately against a normal likelihood: on the
    relative scale directly, and on the absolute scale after scaling by the holdout mean.

Binary metrics (``kind="binary"``)
    Beta-Binomial per arm with a Beta(1, 1) prior. Everything is computed from the exact Beta
    posteriors by deterministic quadrature (not Monte Carlo): P(p_t > p_h), the equal-tailed
    intervals of ``p_t - p_h`` and ``p_t / p_h - 1``, the means, and the expected losses (via
    the identity x Beta(a, b) density = a / (a + b) x Beta(a + 1, b) density). With a user
    prior on the relative lift the Beta posteriors are moment-matched by normals and updated
    as above (the prior is not conjugate to the Beta).

Expected loss (GrowthBook's "risk"): ``E[max(0, -lift)]`` is what shipping the treatment costs
per unit if it is in fact worse; ``E[max(0, lift)]`` is what keeping the holdout forgoes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

# scipy is imported inside the functions that use it: it takes up to a second to import,
# which ``liftlab validate`` and ``import liftlab.stats`` should not pay
from liftlab.spec.models import Prior
from liftlab.stats.distributions import norm_cdf, norm_pdf, norm_ppf, t_cdf, t_pdf, t_ppf, t_sf
from liftlab.stats.frequentist import relative_se, welch_df
from liftlab.stats.suffstats import ArmStats

if TYPE_CHECKING:
    from liftlab.stats.frequentist import Lift

NAN = math.nan
MetricKind = Literal["mean", "binary", "count"]

# Integrals over one Beta posterior are taken on its normal-score scale, x = F^-1(Phi(s)), with
# a 64-node Gauss-Hermite rule: the integrand (the other posterior's CDF) is smooth in s, so the
# rule is accurate to ~1e-10 (tests compare with the exact finite sum for integer parameters).
_S, _GH_W = np.polynomial.hermite_e.hermegauss(64)
_W = _GH_W / _GH_W.sum()


@functools.cache
def _tail() -> np.ndarray:
    """Phi(-|s|) at the rule's nodes (computed once, on first use: scipy loads lazily)."""
    return norm_cdf(-np.abs(_S))


@dataclass(frozen=True)
class _Beta:
    """A Beta(a, b) posterior through scipy.special: the same functions as
    ``scipy.stats.beta`` without its per-call argument checking, which dominated the cost of
    the quantile searches below (hundreds of calls per effect)."""

    a: float
    b: float

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def var(self) -> float:
        total = self.a + self.b
        return self.a * self.b / (total**2 * (total + 1))

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        from scipy import special

        return special.betainc(self.a, self.b, np.clip(x, 0.0, 1.0))

    def sf(self, x: np.ndarray) -> np.ndarray:
        from scipy import special

        return special.betaincc(self.a, self.b, np.clip(x, 0.0, 1.0))

    def pdf(self, x: np.ndarray) -> np.ndarray:
        from scipy import special

        inside = (x >= 0.0) & (x <= 1.0)
        x = np.where(inside, x, 0.5)  # xlogy(0, 0) = 0: a = 1 or b = 1 has a finite end
        log = (special.xlogy(self.a - 1, x) + special.xlog1py(self.b - 1, -x)
               - special.betaln(self.a, self.b))
        return np.where(inside, np.exp(log), 0.0)

    @cached_property
    def nodes(self) -> np.ndarray:
        """F^-1(Phi(s)) at the rule's nodes, from the nearer tail so no precision is lost
        (kept: an effect integrates over the same posterior several times)."""
        from scipy import special

        tail = _tail()
        return np.where(_S < 0, special.betaincinv(self.a, self.b, tail),
                        special.betainccinv(self.a, self.b, tail))


@dataclass(frozen=True)
class BayesEffect:
    """Posterior summary of one treatment-vs-holdout lift.

    ``ci_abs`` / ``ci_rel`` are equal-tailed credible intervals (the HDI for the symmetric
    normal and t posteriors); they are written as ``hdi`` / ``hdi_rel`` in results.json.
    """

    mean_abs: float
    sd_abs: float
    ci_abs: tuple[float, float]
    mean_rel: float
    ci_rel: tuple[float, float]
    prob_positive: float
    loss_ship: float  # E[max(0, -lift)] per unit: the risk of shipping the treatment
    loss_hold: float  # E[max(0, lift)] per unit: the risk of keeping the holdout
    method: str

    def to_dict(self) -> dict[str, Any]:
        """The ``bayes`` fields of one effect in results.json."""
        return {"mean": self.mean_abs, "sd": self.sd_abs, "hdi": list(self.ci_abs),
                "mean_rel": self.mean_rel, "hdi_rel": list(self.ci_rel),
                "prob_positive": self.prob_positive, "expected_loss_treatment": self.loss_ship,
                "expected_loss_holdout": self.loss_hold, "method": self.method}


def closed_form(treatment: ArmStats, holdout: ArmStats, kind: MetricKind = "mean",
                prior: Prior | None = None, alpha: float = 0.05) -> BayesEffect | None:
    """Posterior of the lift of ``treatment`` over ``holdout``.

    Returns None when the arms cannot say anything (fewer than 2 units in an arm for a mean,
    no unit for a binary metric, or no variance at all), like a failed frequentist cell.
    For a binary metric ``sum`` is the number of converters and must lie in [0, n].
    """
    t, h = treatment, holdout
    if kind == "binary":
        for name, arm in (("treatment", t), ("holdout", h)):
            if not 0 <= arm.sum <= arm.n:
                msg = (f"binary metric: the {name} arm has {arm.sum:g} converters out of "
                       f"{arm.n} units; sum must be a count between 0 and n (use kind='mean' "
                       "for a metric that is not 0/1)")
                raise ValueError(msg)
        if t.n < 1 or h.n < 1:
            return None
        return _beta_binomial(t, h, prior, alpha)
    if t.n < 2 or h.n < 2:
        return None
    var_t, var_h = t.variance / t.n, h.variance / h.n
    if not var_t + var_h > 0:
        return None
    return normal_posterior(t.mean - h.mean, math.sqrt(var_t + var_h), h.mean, prior, alpha,
                            rel_se=relative_se(t.mean, h.mean, var_t, var_h),
                            df=welch_df(var_t, var_h, t.n, h.n))


def from_lift(lift: Lift, prior: Prior | None = None,
              alpha: float = 0.05) -> BayesEffect | None:
    """Posterior around a frequentist estimate (Welch, CUPED or delta-method ratio): uses its
    absolute and relative standard errors and its degrees of freedom."""
    if not lift.ok:
        return None
    return normal_posterior(lift.abs, lift.abs_se, lift.mean_holdout, prior, alpha,
                            rel_se=lift.rel_se, df=lift.df)


def normal_posterior(estimate: float, se: float, baseline: float, prior: Prior | None = None,
                     alpha: float = 0.05, *, rel_se: float | None = None,
                     df: float = math.inf) -> BayesEffect | None:
    """Posterior of a lift whose likelihood is centred on ``estimate`` with standard error
    ``se`` (Student t with ``df`` degrees of freedom under a flat prior, normal otherwise).

    ``baseline`` is the holdout mean: the relative lift is ``estimate / baseline`` and the
    relative prior is scaled by it. ``rel_se`` is the delta-method standard error of the
    relative lift; without it the baseline is taken as known (``se / |baseline|``).
    """
    if not (se > 0 and math.isfinite(estimate) and math.isfinite(se)):
        return None
    z = float(norm_ppf(1 - alpha / 2))
    rel = estimate / baseline if baseline else NAN
    if rel_se is None:
        rel_se = se / abs(baseline) if baseline else NAN
    if prior is None or prior.sd is None:
        q = float(t_ppf(1 - alpha / 2, df))
        ship, hold = _t_losses(estimate, se, df)
        return BayesEffect(estimate, se, (estimate - q * se, estimate + q * se), rel,
                           (rel - z * rel_se, rel + z * rel_se),
                           float(t_cdf(estimate / se, df)), ship, hold,
                           "normal (flat prior)" if math.isinf(df) else "welch-t (flat prior)")
    return _with_prior(estimate, se, rel, rel_se, baseline, prior, alpha, "normal")


def prob_roi_positive(mean_per_unit: float, sd_per_unit: float, n_treated: int, cost: float,
                      df: float = math.inf) -> float:
    """P(ROI > 0) = P(incremental margin per treated unit x treated units > cost), for a
    normal (or Student t with ``df``) posterior of the per-unit incremental margin."""
    if n_treated <= 0 or not sd_per_unit > 0:
        return NAN
    return float(t_sf((cost / n_treated - mean_per_unit) / sd_per_unit, df))


def _t_losses(mu: float, sd: float, df: float) -> tuple[float, float]:
    """E[max(0, -X)] and E[max(0, X)] for X = mu + sd * T, T ~ Student t(df) (normal when df
    is infinite): E[X+] = mu F(z) + sd (df + z^2) / (df - 1) f(z) with z = mu / sd."""
    z = mu / sd
    if math.isinf(df):
        pos = mu * norm_cdf(z) + sd * norm_pdf(z)
    elif df > 1:
        pos = mu * t_cdf(z, df) + sd * (df + z * z) / (df - 1) * t_pdf(z, df)
    else:  # a Cauchy-like tail has no mean
        return NAN, NAN
    return float(pos - mu), float(pos)


def _with_prior(mu_abs: float, sd_abs: float, mu_rel: float, sd_rel: float, baseline: float,
                prior: Prior, alpha: float, likelihood: str) -> BayesEffect | None:
    """Conjugate normal update of a normal likelihood by the prior N(mean, sd^2) on the
    relative lift (scaled by ``baseline`` on the absolute scale)."""
    assert prior.sd is not None
    if not baseline:
        return None
    scale = abs(baseline)
    mu, sd = _update(mu_abs, sd_abs, prior.mean * scale, prior.sd * scale)
    if math.isfinite(mu_rel) and sd_rel > 0:
        rmu, rsd = _update(mu_rel, sd_rel, prior.mean, prior.sd)
    else:
        rmu, rsd = NAN, NAN
    z = float(norm_ppf(1 - alpha / 2))
    ship, hold = _t_losses(mu, sd, math.inf)
    return BayesEffect(mu, sd, (mu - z * sd, mu + z * sd), rmu, (rmu - z * rsd, rmu + z * rsd),
                       float(norm_cdf(mu / sd)), ship, hold,
                       f"{likelihood} with prior N({prior.mean:g}, {prior.sd:g}^2) on the "
                       "relative lift")


def _update(est: float, se: float, prior_mean: float, prior_sd: float) -> tuple[float, float]:
    precision = 1 / se**2 + 1 / prior_sd**2
    return (est / se**2 + prior_mean / prior_sd**2) / precision, math.sqrt(1 / precision)


def _beta_binomial(t: ArmStats, h: ArmStats, prior: Prior | None,
                   alpha: float) -> BayesEffect | None:
    at, bt = 1 + t.sum, 1 + t.n - t.sum
    ah, bh = 1 + h.sum, 1 + h.n - h.sum
    pt, ph = _Beta(at, bt), _Beta(ah, bh)
    mt, mh = pt.mean, ph.mean
    mean_abs, sd_abs = mt - mh, math.sqrt(pt.var + ph.var)
    # E[1/p_h] = (a+b-1)/(a-1), E[1/p_h^2] = (a+b-1)(a+b-2)/((a-1)(a-2)): finite for a > 1, 2.
    inv1 = (ah + bh - 1) / (ah - 1) if ah > 1 else NAN
    mean_rel = mt * inv1 - 1
    if prior is not None and prior.sd is not None:
        inv2 = (ah + bh - 1) * (ah + bh - 2) / ((ah - 1) * (ah - 2)) if ah > 2 else NAN
        sd_rel = math.sqrt(max((pt.var + mt**2) * inv2 - (mt * inv1) ** 2, 0.0))
        return _with_prior(mean_abs, sd_abs, mean_rel, sd_rel, mh, prior, alpha,
                           "beta-binomial moments")
    lo, hi = alpha / 2, 1 - alpha / 2
    diff_cdf = _diff_cdf(pt, ph)
    ci_abs = (_quantile(diff_cdf, lo, mean_abs, sd_abs), _quantile(diff_cdf, hi, mean_abs, sd_abs))
    ratio_cdf = _log_ratio_cdf(pt, ph)
    centre = math.log(mt / mh)
    spread = math.hypot(pt.std / mt, ph.std / mh)
    ci_rel = (math.expm1(_quantile(ratio_cdf, lo, centre, spread)),
              math.expm1(_quantile(ratio_cdf, hi, centre, spread)))
    # E[(p_h - p_t)+] = E[p_h 1{p_h > p_t}] - E[p_t 1{p_h > p_t}], each a P(.>.) of shifted Betas
    ship = mh * _p_greater(_Beta(ah + 1, bh), pt) - mt * _p_greater(ph, _Beta(at + 1, bt))
    ship = max(ship, 0.0)
    return BayesEffect(mean_abs, sd_abs, ci_abs, mean_rel, ci_rel, _p_greater(pt, ph), ship,
                       ship + mean_abs, "beta-binomial (Beta(1, 1) prior, exact quadrature)")


def _p_greater(x: _Beta, y: _Beta) -> float:
    """P(X > Y) for independent X, Y, integrating over the narrower one."""
    narrow_x = x.std <= y.std
    value = float(_W @ (y.cdf(x.nodes) if narrow_x else x.sf(y.nodes)))
    return min(max(value, 0.0), 1.0)


@dataclass(frozen=True)
class _Quadrature:
    """P(V <= v) and the density of V at v, for V a function of two independent Beta
    posteriors, as sums over the quadrature nodes of one of them (the density is the exact
    derivative of the CDF sum, so Newton's method on it converges quadratically)."""

    cdf: Callable[[float], float]
    pdf: Callable[[float], float]


def _diff_cdf(x: _Beta, y: _Beta) -> _Quadrature:
    """d -> P(X - Y <= d), with the quadrature nodes computed once."""
    if x.std <= y.std:
        xs = x.nodes
        return _Quadrature(lambda d: float(_W @ y.sf(xs - d)),
                           lambda d: float(_W @ y.pdf(xs - d)))
    ys = y.nodes
    return _Quadrature(lambda d: float(_W @ x.cdf(ys + d)), lambda d: float(_W @ x.pdf(ys + d)))


def _log_ratio_cdf(x: _Beta, y: _Beta) -> _Quadrature:
    """v -> P(log(X / Y) <= v) for positive X, Y, integrating over the one narrower on the
    log scale (smaller coefficient of variation)."""
    if x.std / x.mean <= y.std / y.mean:
        xs = x.nodes
        return _Quadrature(lambda v: float(_W @ y.sf(xs * math.exp(-v))),
                           lambda v: float(_W @ (y.pdf(xs * math.exp(-v)) * xs * math.exp(-v))))
    ys = y.nodes
    return _Quadrature(lambda v: float(_W @ x.cdf(ys * math.exp(v))),
                       lambda v: float(_W @ (x.pdf(ys * math.exp(v)) * ys * math.exp(v))))


NEWTON_STEPS = 6


def _quantile(dist: _Quadrature, q: float, centre: float, spread: float) -> float:
    """Solve cdf(v) = q: Newton's method from the normal approximation's quantile (two or
    three steps for the usual posterior), else a bracketed search around it (a quarter of
    ``spread`` either side, doubling as needed)."""
    from scipy import special

    start = centre + spread * float(np.clip(special.ndtri(q), -40.0, 40.0))  # q may round to 1
    tol = 1e-12 * max(spread, 1e-300)
    v = start
    for _ in range(NEWTON_STEPS):
        density = dist.pdf(v)
        step = (dist.cdf(v) - q) / density if density > 0 else math.inf
        if not abs(step) <= spread:  # flat or far: Newton is not reliable here
            break
        v -= step
        if abs(step) <= tol:
            return v
    step = spread / 4
    lo, hi = start - step, start + step
    while dist.cdf(lo) > q:
        lo, hi, step = lo - 2 * step, lo, 2 * step
    while dist.cdf(hi) < q:
        lo, hi, step = hi, hi + 2 * step, 2 * step
    from scipy import optimize  # only here: Newton usually converges, and it loads in 0.3 s

    return float(optimize.brentq(lambda v: dist.cdf(v) - q, lo, hi, xtol=tol, rtol=1e-12))
