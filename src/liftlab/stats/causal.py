"""The multichannel estimators on sufficient statistics and model matrices: the naive
premium and its decomposition, the adjustment for self-selection (regression, IPW,
AIPW), and the Wald / 2SLS effect of an encouragement experiment (methods: the
docstring of ``liftlab.analyses.multichannel``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# scipy and statsmodels are imported inside the functions that use them: they take up to a
# second to import, which ``liftlab validate`` and ``import liftlab.stats`` should not pay
from liftlab.core.errors import UserError
from liftlab.stats.distributions import norm_ppf

LOGIT_MAX_ITER = 200
PROPENSITY_CLIP = 0.01       # propensities are clipped to [clip, 1 - clip] in the weights
EXTREME_PROPENSITY = 0.05    # overlap diagnostic: share of clients outside [0.05, 0.95]
EXTREME_SHARE_LIMIT = 0.10   # warn above this share of extreme propensities
SMD_LIMIT = 0.10             # warn when a weighted standardized mean difference exceeds this


@dataclass(frozen=True)
class Ratio:
    """A ratio of two means with its CI (delta method on the log scale)."""

    value: float
    ci: tuple[float, float]
    se_log: float

    @classmethod
    def from_log_variance(cls, value: float, var_log: float, alpha: float) -> Ratio:
        """CI value * exp(+-z sd); NaN when the ratio is not positive or the variance unknown."""
        if not (value > 0 and math.isfinite(value) and math.isfinite(var_log) and var_log >= 0):
            return cls(value, (math.nan, math.nan), math.nan)
        z, sd = float(norm_ppf(1 - alpha / 2)), math.sqrt(var_log)
        return cls(value, (value * math.exp(-z * sd), value * math.exp(z * sd)), sd)

    def to_list(self) -> list[float]:
        return list(self.ci)


def _var_log_ratio(n: float, s_a: float, s_b: float, s_aa: float, s_bb: float,
                   s_ab: float) -> float:
    """Variance of log(mean a / mean b) over n i.i.d. units, from sums (delta method)."""
    if n < 2 or s_a == 0 or s_b == 0:
        return math.nan
    ma, mb = s_a / n, s_b / n
    va, vb = (s_aa - s_a * ma) / (n - 1), (s_bb - s_b * mb) / (n - 1)
    cab = (s_ab - s_a * mb) / (n - 1)
    return (va / ma**2 + vb / mb**2 - 2 * cab / (ma * mb)) / n


@dataclass(frozen=True)
class ValueStats:
    """Outcome-period sums of one group of clients: clients, active clients (at least one
    order), orders, revenue, and the second moments the delta method needs. Additive."""

    n: int
    active: float
    orders: float
    revenue: float
    orders_sq: float
    revenue_sq: float
    revenue_orders: float

    def __add__(self, other: ValueStats) -> ValueStats:
        return ValueStats(self.n + other.n, self.active + other.active,
                          self.orders + other.orders, self.revenue + other.revenue,
                          self.orders_sq + other.orders_sq, self.revenue_sq + other.revenue_sq,
                          self.revenue_orders + other.revenue_orders)

    @classmethod
    def from_values(cls, orders: np.ndarray, revenue: np.ndarray) -> ValueStats:
        """From per-client outcome-period order counts and revenue."""
        o, v = np.asarray(orders, float), np.asarray(revenue, float)
        return cls(len(o), float((o > 0).sum()), float(o.sum()), float(v.sum()),
                   float(o @ o), float(v @ v), float(v @ o))

    @property
    def retention(self) -> float:
        """Share of clients who order again in the outcome period."""
        return self.active / self.n if self.n else math.nan

    @property
    def frequency(self) -> float:
        """Orders per client who ordered."""
        return self.orders / self.active if self.active else math.nan

    @property
    def basket(self) -> float:
        """Revenue per order."""
        return self.revenue / self.orders if self.orders else math.nan

    @property
    def value(self) -> float:
        """Revenue per client (= retention x frequency x basket)."""
        return self.revenue / self.n if self.n else math.nan

    def log_variances(self) -> dict[str, float]:
        """Variance of the log of each factor and of the value per client. The active
        indicator a satisfies a*a = a, a*orders = orders, a*revenue = revenue."""
        n = self.n
        return {
            "retention": _var_log_ratio(n, self.active, n, self.active, n, self.active),
            "frequency": _var_log_ratio(n, self.orders, self.active, self.orders_sq,
                                        self.active, self.orders),
            "basket": _var_log_ratio(n, self.revenue, self.orders, self.revenue_sq,
                                     self.orders_sq, self.revenue_orders),
            "value": _var_log_ratio(n, self.revenue, n, self.revenue_sq, n, self.revenue),
        }

    def to_dict(self) -> dict[str, float]:
        return {"clients": self.n, "retention": self.retention, "frequency": self.frequency,
                "basket": self.basket, "value_per_client": self.value}


FACTORS = ("frequency", "basket", "retention")


@dataclass(frozen=True)
class Decomposition:
    """Naive premium = frequency x basket x retention (multi over single, each factor a ratio
    of the groups' factors), each with a delta-method CI; the groups are independent."""

    multi: ValueStats
    single: ValueStats
    naive: Ratio
    factors: dict[str, Ratio]


def decompose(multi: ValueStats, single: ValueStats, alpha: float = 0.05) -> Decomposition:
    """The naive premium and its exact multiplicative decomposition."""
    vm, vs = multi.log_variances(), single.log_variances()
    factors = {f: Ratio.from_log_variance(getattr(multi, f) / getattr(single, f),
                                          vm[f] + vs[f], alpha) for f in FACTORS}
    naive = Ratio.from_log_variance(multi.value / single.value, vm["value"] + vs["value"],
                                    alpha)
    return Decomposition(multi, single, naive, factors)


# ---------------------------------------------------------------- adjustment for selection


@dataclass(frozen=True)
class Overlap:
    """Are multichannel and single-channel clients comparable given the covariates?"""

    covariates: tuple[str, ...]
    smd_before: tuple[float, ...]
    smd_after: tuple[float, ...]
    propensity_quantiles: dict[str, tuple[float, ...]]   # group -> 5/25/50/75/95%
    propensity_histogram: dict[str, tuple[int, ...]]     # group -> counts in 20 bins of 0.05
    share_extreme: float
    share_clipped: float
    effective_n: dict[str, float]                        # Kish ESS of the IPW weights

    @property
    def max_abs_smd_before(self) -> float:
        return max(map(abs, self.smd_before), default=0.0)

    @property
    def max_abs_smd_after(self) -> float:
        return max(map(abs, self.smd_after), default=0.0)

    @property
    def poor(self) -> bool:
        return self.share_extreme > EXTREME_SHARE_LIMIT or self.max_abs_smd_after > SMD_LIMIT

    def to_dict(self) -> dict[str, Any]:
        return {"share_extreme_propensity": self.share_extreme,
                "share_clipped_propensity": self.share_clipped,
                "max_abs_smd_before": self.max_abs_smd_before,
                "max_abs_smd_after": self.max_abs_smd_after,
                "smd": [{"covariate": c, "before": b, "after": a} for c, b, a in
                        zip(self.covariates, self.smd_before, self.smd_after, strict=True)],
                "propensity_quantiles": {k: list(v) for k, v in
                                         self.propensity_quantiles.items()},
                "propensity_histogram": {"edges": np.linspace(0, 1, 21).round(2).tolist(),
                                         **{k: list(v) for k, v in
                                            self.propensity_histogram.items()}},
                "effective_n": self.effective_n, "poor": self.poor}


@dataclass(frozen=True)
class Adjusted:
    """Premium E[Y(multi)] / E[Y(single)] by three methods, their potential-outcome means
    (multi, single), overlap diagnostics and warnings."""

    ratios: dict[str, Ratio]
    means: dict[str, tuple[float, float]]
    n: int
    overlap: Overlap
    warnings: tuple[str, ...]


def _ratio_from_if(mu1: float, mu0: float, if1: np.ndarray, if0: np.ndarray,
                   alpha: float) -> Ratio:
    """Ratio mu1 / mu0 with the CI of its log from the influence functions of the means."""
    if mu1 <= 0 or mu0 <= 0:
        return Ratio(mu1 / mu0 if mu0 else math.nan, (math.nan, math.nan), math.nan)
    var_log = float(np.var(if1 / mu1 - if0 / mu0, ddof=1) / len(if1))
    return Ratio.from_log_variance(mu1 / mu0, var_log, alpha)


def adjust(covariates: np.ndarray, multi: np.ndarray, value: np.ndarray,
           names: Sequence[str], alpha: float = 0.05,
           clip: float = PROPENSITY_CLIP) -> Adjusted:
    """Regression adjustment, IPW and AIPW premium from per-client arrays.

    ``covariates`` (n, k) without constant; ``multi`` 0/1; ``value`` outcome-period revenue.
    Propensity: statsmodels Logit; outcome models: OLS per group. Influence functions:
    RA includes the OLS estimation, IPW (Hajek) the logit estimation, AIPW needs neither
    (orthogonal scores). Propensities are clipped to [clip, 1 - clip] in the weights.
    """
    import statsmodels.api as sm

    X = sm.add_constant(np.asarray(covariates, float), has_constant="add")
    d, y = np.asarray(multi, float), np.asarray(value, float)
    n = len(y)
    try:
        with warnings.catch_warnings():  # non-convergence is read from mle_retvals below
            warnings.simplefilter("ignore")
            logit = sm.Logit(d, X).fit(disp=0, maxiter=LOGIT_MAX_ITER)
    except np.linalg.LinAlgError as exc:
        msg = (f"the propensity model of multichannel use cannot be fit ({exc}); the "
               "covariates are collinear: drop a segment column or widen the pre-period")
        raise UserError(msg) from exc
    p = logit.predict(X)
    e = np.clip(p, clip, 1 - clip)
    inside = (p > clip) & (p < 1 - clip)
    # regression adjustment
    xbar = X.mean(axis=0)
    means: dict[str, tuple[float, float]] = {}
    ifs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    mu: dict[int, np.ndarray] = {}
    ra_if: dict[int, np.ndarray] = {}
    for g, mask in ((1, d), (0, 1 - d)):
        beta = sm.OLS(y[mask == 1], X[mask == 1]).fit().params
        mu[g] = X @ beta
        q = (X * mask[:, None]).T @ X / n
        score = X * (mask * (y - mu[g]))[:, None]
        ra_if[g] = mu[g] - mu[g].mean() + score @ np.linalg.pinv(q) @ xbar
    means["regression"] = (float(mu[1].mean()), float(mu[0].mean()))
    ifs["regression"] = (ra_if[1], ra_if[0])
    # IPW (Hajek), with the logit's estimation in the influence function
    info = (X * (p * (1 - p))[:, None]).T @ X / n
    if_gamma = (X * (d - p)[:, None]) @ np.linalg.pinv(info)
    w1, w0 = d / e, (1 - d) / (1 - e)
    m1 = float((w1 * y).sum() / w1.sum())
    m0 = float((w0 * y).sum() / w0.sum())
    grad1 = -(X * (d * (y - m1) * (1 - e) / e * inside)[:, None]).mean(axis=0)
    grad0 = (X * ((1 - d) * (y - m0) * e / (1 - e) * inside)[:, None]).mean(axis=0)
    means["ipw"] = (m1, m0)
    ifs["ipw"] = ((w1 * (y - m1) + if_gamma @ grad1) / w1.mean(),
                  (w0 * (y - m0) + if_gamma @ grad0) / w0.mean())
    # AIPW
    phi1 = mu[1] + d * (y - mu[1]) / e
    phi0 = mu[0] + (1 - d) * (y - mu[0]) / (1 - e)
    means["aipw"] = (float(phi1.mean()), float(phi0.mean()))
    ifs["aipw"] = (phi1 - phi1.mean(), phi0 - phi0.mean())
    ratios = {k: _ratio_from_if(*means[k], *ifs[k], alpha) for k in means}
    overlap = _overlap(X[:, 1:], d, p, w1, w0, names, clip)
    notes = _convergence(logit)
    if overlap.poor:
        notes.append(
            f"poor overlap between multichannel and single-channel clients: "
            f"{overlap.share_extreme:.0%} have a propensity outside "
            f"[{EXTREME_PROPENSITY}, {1 - EXTREME_PROPENSITY}] and the largest standardized "
            f"difference after weighting is {overlap.max_abs_smd_after:.2f} (limit "
            f"{SMD_LIMIT}); the adjusted figures lean on the models: compare within a segment "
            "or rely on an encouragement experiment")
    return Adjusted(ratios, means, n, overlap, tuple(notes))


def _convergence(logit: Any) -> list[str]:
    """A warning when the propensity fit stopped without converging (its estimates, and the
    IPW and AIPW figures built on them, are then not the maximum-likelihood ones)."""
    if logit.mle_retvals.get("converged", True):
        return []
    return [f"the propensity model (logistic regression of multichannel use) did not "
            f"converge in {LOGIT_MAX_ITER} iterations: the IPW and AIPW figures are "
            "unreliable; the covariates may separate the two groups almost perfectly"]


def _overlap(X: np.ndarray, d: np.ndarray, p: np.ndarray, w1: np.ndarray, w0: np.ndarray,
             names: Sequence[str], clip: float) -> Overlap:
    one, zero = d == 1, d == 0
    before, after = [], []
    for j in range(X.shape[1]):
        x = X[:, j]
        sd = math.sqrt((x[one].var() + x[zero].var()) / 2) or 1.0
        before.append(float((x[one].mean() - x[zero].mean()) / sd))
        after.append(float((np.average(x, weights=w1) - np.average(x, weights=w0)) / sd))
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    edges = np.linspace(0, 1, 21)
    groups = {"multi": one, "single": zero}
    return Overlap(
        tuple(names), tuple(before), tuple(after),
        {g: tuple(float(q) for q in np.quantile(p[m], qs)) for g, m in groups.items()},
        {g: tuple(int(c) for c in np.histogram(p[m], edges)[0]) for g, m in groups.items()},
        float(((p < EXTREME_PROPENSITY) | (p > 1 - EXTREME_PROPENSITY)).mean()),
        float(((p <= clip) | (p >= 1 - clip)).mean()),
        {"multi": float(w1.sum() ** 2 / (w1 @ w1)), "single": float(w0.sum() ** 2 / (w0 @ w0))})


# ---------------------------------------------------------------- encouragement experiment


@dataclass(frozen=True)
class PairStats:
    """Per-arm sufficient statistics of an outcome y and an adoption indicator d. Additive."""

    n: int
    sum_y: float
    sum_d: float
    sum_yy: float
    sum_dd: float
    sum_yd: float

    def __add__(self, other: PairStats) -> PairStats:
        return PairStats(self.n + other.n, self.sum_y + other.sum_y, self.sum_d + other.sum_d,
                         self.sum_yy + other.sum_yy, self.sum_dd + other.sum_dd,
                         self.sum_yd + other.sum_yd)

    @classmethod
    def from_values(cls, y: np.ndarray, d: np.ndarray) -> PairStats:
        y, d = np.asarray(y, float), np.asarray(d, float)
        return cls(len(y), float(y.sum()), float(d.sum()), float(y @ y), float(d @ d),
                   float(y @ d))

    def moments(self) -> tuple[float, float, float, float, float]:
        """Means of y and d, their sample variances and covariance (ddof=1)."""
        n = self.n
        my, md = self.sum_y / n, self.sum_d / n
        vy = (self.sum_yy - n * my * my) / (n - 1)
        vd = (self.sum_dd - n * md * md) / (n - 1)
        cyd = (self.sum_yd - n * my * md) / (n - 1)
        return my, md, vy, vd, cyd


@dataclass(frozen=True)
class IvEstimate:
    """ITT on the outcome, first stage on adoption, and their ratio (Wald / 2SLS): the
    effect of adopting for the clients the encouragement moved (compliers)."""

    experiment: str
    itt: float
    itt_ci: tuple[float, float]
    first_stage: float
    first_stage_ci: tuple[float, float]
    effect: float
    effect_ci: tuple[float, float]
    first_stage_f: float
    weak_instrument: bool

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "itt": self.itt, "itt_ci": list(self.itt_ci),
                "first_stage": self.first_stage, "first_stage_ci": list(self.first_stage_ci),
                "effect": self.effect, "effect_ci": list(self.effect_ci),
                "first_stage_f": self.first_stage_f, "weak_instrument": self.weak_instrument}


def wald_iv(treated: PairStats, control: PairStats, experiment: str = "",
            alpha: float = 0.05) -> IvEstimate:
    """Wald estimator ITT / first stage. Its delta-method variance
    Var(ITT - theta FS) / FS^2 uses the within-arm covariance of y and d; it equals the
    heteroskedasticity-robust 2SLS variance (with a per-arm n / (n - 1) correction). The
    instrument is flagged weak when the first-stage F = (FS / se)^2 is below 10."""
    my1, md1, vy1, vd1, c1 = treated.moments()
    my0, md0, vy0, vd0, c0 = control.moments()
    n1, n0 = treated.n, control.n
    itt, fs = my1 - my0, md1 - md0
    var_a, var_b = vy1 / n1 + vy0 / n0, vd1 / n1 + vd0 / n0
    cov_ab = c1 / n1 + c0 / n0
    z = float(norm_ppf(1 - alpha / 2))
    f_stat = fs * fs / var_b if var_b > 0 else math.nan
    if fs == 0:
        theta, se_t = math.nan, math.nan
    else:
        theta = itt / fs
        var_t = (var_a - 2 * theta * cov_ab + theta**2 * var_b) / fs**2
        se_t = math.sqrt(var_t) if var_t > 0 else math.nan
    se_a, se_b = math.sqrt(var_a), math.sqrt(var_b)
    return IvEstimate(experiment, itt, (itt - z * se_a, itt + z * se_a),
                      fs, (fs - z * se_b, fs + z * se_b), theta,
                      (theta - z * se_t, theta + z * se_t), f_stat,
                      not f_stat > 10)
