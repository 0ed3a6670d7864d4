"""The value of multichannel clients: the naive premium, the premium adjusted for
self-selection, and the causal effect of becoming multichannel from an encouragement test.

Periods (all ``[start, end)``, UTC): a *pre-period* of ``pre_days`` before the look-back gives
the covariates; the *look-back* defines channel usage (a client is active when it bought, or
used a digital channel, there; *multichannel* with two or more channels); the *outcome period*
of ``outcome_days`` after the look-back gives the value (revenue) compared.

- Naive: value per multichannel client / value per single-channel client, decomposed as
  retention (share of clients who buy again) x frequency (orders per buying client) x basket
  (revenue per order). Each factor is a ratio of group totals, so the product equals the naive
  ratio by construction. CIs: delta method on the log scale from additive sums per group.
- Adjusted: the better clients adopt more channels. Regression adjustment, IPW (Hajek) and
  doubly-robust AIPW estimate E[Y(multi)] / E[Y(single)] over the active clients given
  pre-period behaviour and segment (statsmodels Logit and OLS), with influence-function CIs and
  overlap diagnostics. This is credible when the covariates precede adoption: for habitual
  multichannel clients the pre-period spend already contains the premium, and holding it
  equal pulls the adjusted figure toward 1; the encouragement experiment is the causal answer.
- Causal: an encouragement experiment randomises a push onto a new channel; Wald / 2SLS
  (intention-to-treat / first stage) is the effect of adopting, with a delta-method CI that
  uses the within-arm covariance of outcome and adoption (from ``PairStats`` per arm).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import stats as sps

from liftlab.data.folder import FolderSource, parse_timestamps
from liftlab.errors import UserError
from liftlab.stable import stable_mean, stable_sum

# Events that count as using their (digital) channel, like a purchase does.
USAGE_EVENTS = ("visit", "app_session", "session", "login", "account_created")
# Propensity and outcome models are fit on a deterministic hash subsample of at most this many
# clients: the estimates' standard errors at that size are far below the selection bias.
MAX_CLIENTS_FOR_MODELS = 500_000
LOGIT_MAX_ITER = 200
PROPENSITY_CLIP = 0.01       # propensities are clipped to [clip, 1 - clip] in the weights
EXTREME_PROPENSITY = 0.05    # overlap diagnostic: share of clients outside [0.05, 0.95]
EXTREME_SHARE_LIMIT = 0.10   # warn above this share of extreme propensities
SMD_LIMIT = 0.10             # warn when a weighted standardized mean difference exceeds this
MAX_SEGMENT_LEVELS = 20      # rarer levels of a segment column are pooled as "(other)"
MIN_GROUP = 5                # fewest clients per group (multi / single) to compare


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
        z, sd = float(sps.norm.ppf(1 - alpha / 2)), math.sqrt(var_log)
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
    z = float(sps.norm.ppf(1 - alpha / 2))
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


# ---------------------------------------------------------------- data: usage and clients


def _ts(d: dt.date) -> dt.datetime:
    return dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC)


def _between(start: dt.date, end: dt.date) -> pl.Expr:
    return (pl.col("ts") >= _ts(start)) & (pl.col("ts") < _ts(end))


def _id_type(source: FolderSource) -> pl.DataType:
    return source.scan("customers").collect_schema()["customer_id"]


def usage(source: FolderSource, start: dt.date, end: dt.date,
          usage_events: Sequence[str] = USAGE_EVENTS) -> pl.LazyFrame:
    """Per client active in [start, end): the sorted channels used (purchase channels, and
    the channel of any event named in ``usage_events``), their number, the combination text
    ("store+web") and whether it is multichannel."""
    ids = _id_type(source)
    parts = [source.scan("orders", ids).filter(_between(start, end))
             .select("customer_id", pl.col("channel").cast(pl.String))]
    if usage_events and source.has("events"):
        parts.append(source.scan("events", ids)
                     .filter(_between(start, end) & pl.col("event").is_in(list(usage_events)))
                     .select("customer_id", pl.col("channel").cast(pl.String)))
    return (pl.concat(parts).drop_nulls("channel").group_by("customer_id")
            .agg(pl.col("channel").unique().sort().alias("channels"))
            .with_columns(pl.col("channels").list.len().alias("n_channels"),
                          pl.col("channels").list.join("+").alias("combination"))
            .with_columns((pl.col("n_channels") > 1).alias("multi")))


def channel_profile(source: FolderSource, before: dt.date, days: int = 90,
                    usage_events: Sequence[str] = USAGE_EVENTS,
                    max_named: int = 1) -> pl.LazyFrame:
    """(customer_id, channel_profile) for every customer over the ``days`` before
    ``before``: the channel combination ("store", or "store+web" with ``max_named=2``) when
    it has at most ``max_named`` channels, "multichannel" beyond, "inactive" without
    activity. Joined as a segment dimension, it reports each campaign's lift per profile;
    the default keeps few, well-filled profiles."""
    prof = usage(source, before - dt.timedelta(days=days), before, usage_events).select(
        "customer_id", pl.when(pl.col("n_channels") > max_named).then(pl.lit("multichannel"))
        .otherwise(pl.col("combination")).alias("channel_profile"))
    return (source.scan("customers").select("customer_id")
            .join(prof, on="customer_id", how="left")
            .with_columns(pl.col("channel_profile").fill_null("inactive")))


def clients(source: FolderSource, lookback: tuple[dt.date, dt.date], outcome_days: int = 28,
            pre_days: int = 90, usage_events: Sequence[str] = USAGE_EVENTS,
            attributes: Sequence[str] = ("segment",)) -> pl.LazyFrame:
    """One row per client active in the look-back: usage (channels, combination, multi),
    outcome-period ``orders`` and ``value`` (revenue), pre-period ``pre_orders`` and
    ``pre_revenue``, ``recency_days`` (since the last order before the look-back, capped at
    2 x pre_days), ``tenure_days`` (since signup_date, else the first order; 0 when new) and
    the customer ``attributes`` present."""
    start, end = lookback
    ids = _id_type(source)
    orders = source.scan("orders", ids)
    out_end = end + dt.timedelta(days=outcome_days)
    outcome = (orders.filter(_between(end, out_end)).group_by("customer_id")
               .agg(pl.len().alias("orders"), stable_sum(pl.col("revenue")).alias("value")))
    in_pre = pl.col("ts") >= _ts(start - dt.timedelta(days=pre_days))
    history = (orders.filter(pl.col("ts") < _ts(start)).group_by("customer_id").agg(
        in_pre.sum().alias("pre_orders"),
        stable_sum(pl.col("revenue").filter(in_pre)).alias("pre_revenue"),
        pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts")))
    names = source.schema("customers").names()
    attrs = [a for a in attributes if a in names]
    signup = ([(pl.lit(start) - _as_date(source, "signup_date")).dt.total_days()
               .alias("signup_days")] if "signup_date" in names else [])
    tenure = [pl.col("signup_days")] if signup else []
    customers = source.scan("customers", ids).select("customer_id", *attrs, *signup)
    cap = 2 * pre_days
    return (usage(source, start, end, usage_events)
            .join(outcome, on="customer_id", how="left")
            .join(history, on="customer_id", how="left")
            .join(customers, on="customer_id", how="left")
            .with_columns(
                pl.col("orders", "pre_orders").fill_null(0).cast(pl.Int64),
                pl.col("value", "pre_revenue").fill_null(0.0),
                (_ts(start) - pl.col("last_ts")).dt.total_days().fill_null(cap).clip(0, cap)
                .alias("recency_days"),
                pl.coalesce(*tenure,
                            (_ts(start) - pl.col("first_ts")).dt.total_days(), pl.lit(0))
                .clip(0).alias("tenure_days"))
            .drop("first_ts", "last_ts", *(["signup_days"] if signup else [])))


def _as_date(source: FolderSource, column: str) -> pl.Expr:
    """A customers column of dates as stored: Date, a timestamp, or ISO text (a CSV; a date
    is its wall-clock date, whatever the data's timezone)."""
    if source.schema("customers")[column] == pl.String:
        return parse_timestamps(pl.col(column), "UTC").dt.date()
    return pl.col(column).cast(pl.Date)


def design(frame: pl.DataFrame, attributes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Pre-period covariates of the propensity and outcome models, with their names: pre
    orders and revenue (levels: outcomes scale with past spend; logs: propensity saturates),
    log recency, log tenure and segment dummies (first level the reference). Look-back
    behaviour is left out: it is partly caused by being multichannel."""
    cols: list[np.ndarray] = []
    names: list[str] = []
    for c in ("pre_orders", "pre_revenue"):
        x = frame[c].cast(pl.Float64).clip(0).to_numpy()
        cols += [x, np.log1p(x)]
        names += [c, f"log1p_{c}"]
    for c in ("recency_days", "tenure_days"):
        cols.append(np.log1p(frame[c].cast(pl.Float64).to_numpy()))
        names.append(f"log1p_{c}")
    for a in attributes:
        values = frame[a].cast(pl.String).fill_null("(missing)")
        top = values.value_counts(sort=True).head(MAX_SEGMENT_LEVELS)[a].to_list()
        values = pl.select(pl.when(values.is_in(top)).then(values)
                           .otherwise(pl.lit("(other)"))).to_series()
        for level in sorted(values.unique().to_list())[1:]:
            cols.append((values == level).cast(pl.Float64).to_numpy())
            names.append(f"{a}={level}")
    X = np.column_stack(cols)
    keep = X.std(axis=0) > 0
    return X[:, keep], [nm for nm, k in zip(names, keep, strict=True) if k]


# ---------------------------------------------------------------- the whole analysis


@dataclass(frozen=True)
class MultichannelResult:
    """Usage, naive premium and its decomposition, adjusted premium, and (optionally) the
    instrumented effect from an encouragement experiment."""

    lookback: tuple[dt.date, dt.date]
    outcome: tuple[dt.date, dt.date]
    pre_days: int
    n_clients: int
    share_multichannel: float
    decomposition: Decomposition
    adjusted: Adjusted
    subsampled: bool
    combinations: tuple[dict[str, Any], ...]
    appetence: tuple[dict[str, Any], ...]
    iv: IvEstimate | None = None

    @property
    def naive(self) -> Ratio:
        return self.decomposition.naive

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.adjusted.warnings

    def to_json(self) -> dict[str, Any]:
        """The ``multichannel --json`` document: the value ratios with CIs, per-method
        estimates and diagnostics."""
        dec, adj = self.decomposition, self.adjusted
        return {
            "lookback": {"start": self.lookback[0].isoformat(),
                         "end": self.lookback[1].isoformat()},
            "outcome_period": {"start": self.outcome[0].isoformat(),
                               "end": self.outcome[1].isoformat()},
            "pre_period_days": self.pre_days,
            "n_clients": self.n_clients, "share_multichannel": self.share_multichannel,
            "naive_ratio": dec.naive.value, "naive_ratio_ci": dec.naive.to_list(),
            "decomposition": {f: dec.factors[f].value for f in FACTORS},
            "decomposition_ci": {f: dec.factors[f].to_list() for f in FACTORS},
            "groups": {"multi": dec.multi.to_dict(), "single": dec.single.to_dict()},
            "adjusted_ratio": adj.ratios["aipw"].value,
            "adjusted_ratio_ci": adj.ratios["aipw"].to_list(), "adjusted_method": "aipw",
            "adjusted": {k: {"ratio": r.value, "ci": r.to_list(),
                             "mean_multi": adj.means[k][0], "mean_single": adj.means[k][1]}
                         for k, r in adj.ratios.items()},
            "model_clients": adj.n, "subsampled": self.subsampled,
            "overlap": adj.overlap.to_dict(),
            "combinations": list(self.combinations), "appetence": list(self.appetence),
            "warnings": list(self.warnings),
            "iv": None if self.iv is None else self.iv.to_dict(),
        }


def _value_stats(rows: pl.DataFrame, multi: bool) -> ValueStats:
    row = rows.filter(pl.col("multi") == multi)
    if row.height == 0:
        return ValueStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    r = row.row(0, named=True)
    return ValueStats(int(r["n"]), *(float(r[k]) for k in (
        "active", "orders_sum", "revenue", "orders_sq", "revenue_sq", "revenue_orders")))


def analyse(source: FolderSource, lookback: tuple[dt.date, dt.date], outcome_days: int = 28,
            pre_days: int = 90, alpha: float = 0.05, seed: int = 0,
            usage_events: Sequence[str] = USAGE_EVENTS, attributes: Sequence[str] = ("segment",),
            iv: IvEstimate | None = None) -> MultichannelResult:
    """Usage, naive premium with its decomposition, and the adjusted premium; ``iv`` (from
    ``wald_iv`` on an encouragement experiment) is attached as given. Aggregates are lazy
    polars; the models see at most ``MAX_CLIENTS_FOR_MODELS`` clients (hash subsample)."""
    start, end = lookback
    frame = clients(source, lookback, outcome_days, pre_days, usage_events, attributes)
    attrs = [a for a in attributes if a in frame.collect_schema().names()]
    seg = pl.col(attrs[0]).cast(pl.String).fill_null("(missing)") if attrs else pl.lit("all")
    o, v = pl.col("orders").cast(pl.Float64), pl.col("value")
    sums = frame.group_by("multi").agg(
        pl.len().alias("n"), (o > 0).sum().alias("active"), o.sum().alias("orders_sum"),
        stable_sum(v).alias("revenue"), (o * o).sum().alias("orders_sq"),
        stable_sum(v * v).alias("revenue_sq"), stable_sum(v * o).alias("revenue_orders"))
    combos = (frame.group_by("combination").agg(
        pl.len().alias("clients"), pl.col("multi").first(),
        stable_mean(v).alias("value_per_client"),
        (o > 0).mean().alias("retention")).sort("clients", "combination", descending=[True,
                                                                                      False]))
    used = (frame.select(seg.alias("segment"), "channels").explode("channels")
            .group_by("segment", pl.col("channels").alias("channel")).len())
    sizes = frame.group_by(seg.alias("segment")).agg(pl.len().alias("clients"))
    appetence = (used.join(sizes, on="segment")
                 .select("segment", "channel", (pl.col("len") / pl.col("clients"))
                         .alias("share"), "clients").sort("segment", "channel"))
    sums_df, combos_df, app_df = pl.collect_all([sums, combos, appetence])
    multi, single = _value_stats(sums_df, True), _value_stats(sums_df, False)
    n_clients = multi.n + single.n
    if min(multi.n, single.n) < MIN_GROUP:
        raise UserError(
            f"cannot compare multichannel with single-channel clients in the look-back "
            f"{start}..{end}: {multi.n} multichannel and {single.n} single-channel active "
            f"clients, at least {MIN_GROUP} of each are needed; choose a longer or earlier "
            "--lookback window")
    if single.value <= 0:
        raise UserError(
            f"the {single.n} single-channel clients of the look-back {start}..{end} have no "
            f"revenue in the outcome period {end}..{end + dt.timedelta(days=outcome_days)}: "
            "the premium is a ratio to their value; choose another --lookback window or "
            "more --outcome-days")
    subsampled = n_clients > MAX_CLIENTS_FOR_MODELS
    model_rows = frame
    if subsampled:
        keep = round(MAX_CLIENTS_FOR_MODELS / n_clients * 1_000_000)
        model_rows = frame.filter(pl.col("customer_id").hash(seed) % 1_000_000 < keep)
    model = model_rows.sort("customer_id").select(  # the fits see the same rows in one order
        "multi", "value", "pre_orders", "pre_revenue", "recency_days", "tenure_days",
        *attrs).collect()
    X, names = design(model, attrs)
    adjusted = adjust(X, model["multi"].to_numpy(), model["value"].to_numpy(), names, alpha)
    return MultichannelResult(
        lookback, (end, end + dt.timedelta(days=outcome_days)), pre_days, n_clients,
        multi.n / n_clients, decompose(multi, single, alpha), adjusted, subsampled,
        tuple(combos_df.head(15).to_dicts()), tuple(app_df.to_dicts()), iv)
