"""The value of multichannel clients: the naive premium, the premium adjusted for
self-selection, and the causal effect of becoming multichannel from an encouragement test.

- Usage: a client active in the look-back period is *multichannel* when it bought (or, for
  digital channels, visited) through two or more channels.
- Naive: value per multichannel client / value per single-channel client in the following
  outcome period, decomposed exactly as retention x frequency x basket (each a ratio, with a
  delta-method CI): value = share still buying x orders per buyer x revenue per order.
- Adjusted: the better clients adopt more channels, so the naive premium is inflated.
  Regression adjustment, inverse propensity weighting and doubly-robust AIPW (statsmodels)
  estimate the ratio E[Y(multi)] / E[Y(mono)] given pre-period behaviour and segment, with
  overlap diagnostics.
- Causal: an encouragement experiment randomises a push onto a new channel; the Wald / 2SLS
  estimate (intention-to-treat / first stage) is the effect of adopting, with a delta-method CI
  that uses the within-arm covariance of outcome and adoption.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import stats as sps

from liftlab.data.folder import FolderSource

DIGITAL_EVENTS = {"visit": "web", "app_session": "app", "account_created": "web"}
MAX_ROWS_FOR_MODELS = 500_000  # propensity/outcome models are fit on a random subsample


@dataclass(frozen=True)
class Ratio:
    value: float
    ci: tuple[float, float]

    def to_list(self) -> list[float]:
        return list(self.ci)


def _log_ratio_ci(value: float, var_log: float, alpha: float) -> Ratio:
    z = sps.norm.ppf(1 - alpha / 2)
    sd = math.sqrt(max(var_log, 0.0))
    return Ratio(value, (value * math.exp(-z * sd), value * math.exp(z * sd)))


@dataclass(frozen=True)
class PairStats:
    """Per-arm sufficient statistics of an outcome y and an adoption indicator d."""

    n: int
    sum_y: float
    sum_d: float
    sum_yy: float
    sum_dd: float
    sum_yd: float

    @classmethod
    def from_values(cls, y: np.ndarray, d: np.ndarray) -> PairStats:
        y, d = np.asarray(y, float), np.asarray(d, float)
        return cls(len(y), float(y.sum()), float(d.sum()), float(y @ y), float(d @ d),
                    float(y @ d))

    def moments(self) -> tuple[float, float, float, float, float]:
        n = self.n
        my, md = self.sum_y / n, self.sum_d / n
        vy = (self.sum_yy - n * my * my) / (n - 1)
        vd = (self.sum_dd - n * md * md) / (n - 1)
        cyd = (self.sum_yd - n * my * md) / (n - 1)
        return my, md, vy, vd, cyd


@dataclass(frozen=True)
class IvEstimate:
    experiment: str
    itt: float
    itt_ci: tuple[float, float]
    first_stage: float
    first_stage_ci: tuple[float, float]
    effect: float
    effect_ci: tuple[float, float]
    weak_instrument: bool

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "itt": self.itt, "itt_ci": list(self.itt_ci),
                "first_stage": self.first_stage, "first_stage_ci": list(self.first_stage_ci),
                "effect": self.effect, "effect_ci": list(self.effect_ci),
                "weak_instrument": self.weak_instrument}


def wald_iv(treated: PairStats, control: PairStats, experiment: str = "",
            alpha: float = 0.05) -> IvEstimate:
    """Wald estimator ITT / first stage with a delta-method CI."""
    my1, md1, vy1, vd1, c1 = treated.moments()
    my0, md0, vy0, vd0, c0 = control.moments()
    n1, n0 = treated.n, control.n
    itt, fs = my1 - my0, md1 - md0
    var_a, var_b = vy1 / n1 + vy0 / n0, vd1 / n1 + vd0 / n0
    cov_ab = c1 / n1 + c0 / n0
    z = sps.norm.ppf(1 - alpha / 2)
    theta = itt / fs if fs else math.nan
    var_t = (var_a - 2 * theta * cov_ab + theta**2 * var_b) / fs**2 if fs else math.nan
    se_t = math.sqrt(var_t) if var_t == var_t and var_t > 0 else math.nan
    weak = not (abs(fs) / math.sqrt(var_b) > math.sqrt(10)) if var_b > 0 else True
    return IvEstimate(experiment, itt, (itt - z * math.sqrt(var_a), itt + z * math.sqrt(var_a)),
                      fs, (fs - z * math.sqrt(var_b), fs + z * math.sqrt(var_b)), theta,
                      (theta - z * se_t, theta + z * se_t), weak)


@dataclass(frozen=True)
class MultichannelResult:
    lookback: tuple[dt.date, dt.date]
    outcome: tuple[dt.date, dt.date]
    n_clients: int
    share_multichannel: float
    naive: Ratio
    decomposition: dict[str, Ratio]
    adjusted: dict[str, Ratio]
    overlap: dict[str, Any]
    combinations: list[dict[str, Any]]
    appetence: list[dict[str, Any]]
    iv: IvEstimate | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lookback": {"start": self.lookback[0].isoformat(),
                         "end": self.lookback[1].isoformat()},
            "outcome_period": {"start": self.outcome[0].isoformat(),
                               "end": self.outcome[1].isoformat()},
            "n_clients": self.n_clients, "share_multichannel": self.share_multichannel,
            "naive_ratio": self.naive.value, "naive_ratio_ci": self.naive.to_list(),
            "decomposition": {k: v.value for k, v in self.decomposition.items()},
            "decomposition_ci": {k: v.to_list() for k, v in self.decomposition.items()},
            "adjusted_ratio": self.adjusted["aipw"].value,
            "adjusted_ratio_ci": self.adjusted["aipw"].to_list(), "adjusted_method": "aipw",
            "adjusted": {k: {"ratio": v.value, "ci": v.to_list()}
                         for k, v in self.adjusted.items()},
            "overlap": self.overlap, "combinations": self.combinations,
            "appetence": self.appetence, "warnings": self.warnings,
        }
        if self.iv is not None:
            out["iv"] = self.iv.to_dict()
        return out


def _ts(d: dt.date) -> dt.datetime:
    return dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC)


def usage(source: FolderSource, start: dt.date, end: dt.date) -> pl.LazyFrame:
    """customer_id, the sorted list of channels used in [start, end), and the profile text."""
    orders = (source.scan("orders").filter((pl.col("ts") >= _ts(start))
                                           & (pl.col("ts") < _ts(end)))
              .select("customer_id", pl.col("channel").cast(pl.String)))
    parts = [orders]
    if source.has("events"):
        ev = (source.scan("events").filter((pl.col("ts") >= _ts(start))
                                           & (pl.col("ts") < _ts(end))
                                           & pl.col("event").is_in(list(DIGITAL_EVENTS)))
              .select("customer_id", pl.col("event").replace_strict(
                  DIGITAL_EVENTS, return_dtype=pl.String).alias("channel")))
        parts.append(ev)
    return (pl.concat(parts).group_by("customer_id")
            .agg(pl.col("channel").unique().sort().alias("channels"))
            .with_columns(pl.col("channels").list.join("+").alias("channel_profile"),
                          (pl.col("channels").list.len() > 1).alias("multi")))


def channel_profile(source: FolderSource, before: dt.date, days: int = 90) -> pl.LazyFrame:
    """Each customer's channel profile over the ``days`` before ``before``: the one channel
    of a single-channel client ("store", "web", ...), "multichannel", or "inactive" (no
    purchase): a segment dimension for experiments with a handful of readable values."""
    prof = usage(source, before - dt.timedelta(days=days), before).select(
        "customer_id", pl.when(pl.col("multi")).then(pl.lit("multichannel"))
        .otherwise(pl.col("channel_profile")).alias("channel_profile"))
    return (source.scan("customers").select("customer_id")
            .join(prof, on="customer_id", how="left")
            .with_columns(pl.col("channel_profile").fill_null("inactive")))


def analyse(source: FolderSource, lookback: tuple[dt.date, dt.date], outcome_days: int = 28,
            pre_days: int = 90, alpha: float = 0.05, seed: int = 0) -> MultichannelResult:
    """Naive, decomposed and adjusted multichannel premium (IV: see ``wald_iv``)."""
    lb_start, lb_end = lookback
    out_end = lb_end + dt.timedelta(days=outcome_days)
    used = usage(source, lb_start, lb_end)
    outcome = (source.scan("orders").filter((pl.col("ts") >= _ts(lb_end))
                                            & (pl.col("ts") < _ts(out_end)))
               .group_by("customer_id").agg(pl.col("revenue").sum().alias("value"),
                                            pl.len().alias("orders")))
    pre_start = lb_start - dt.timedelta(days=pre_days)
    pre = (source.scan("orders").filter((pl.col("ts") >= _ts(pre_start))
                                        & (pl.col("ts") < _ts(lb_start)))
           .group_by("customer_id").agg(pl.col("revenue").sum().alias("pre_revenue"),
                                        pl.len().alias("pre_orders"),
                                        pl.col("ts").max().alias("last")))
    lb_orders = (source.scan("orders").filter((pl.col("ts") >= _ts(lb_start))
                                              & (pl.col("ts") < _ts(lb_end)))
                 .group_by("customer_id").agg(pl.col("revenue").sum().alias("lb_revenue"),
                                              pl.len().alias("lb_orders")))
    cust_cols = source.schema("customers").names()
    extra = [c for c in ("segment",) if c in cust_cols]
    frame = (used.join(lb_orders, on="customer_id", how="inner")
             .join(outcome, on="customer_id", how="left")
             .join(pre, on="customer_id", how="left")
             .join(source.scan("customers").select("customer_id", *extra), on="customer_id",
                   how="left")
             .with_columns(pl.col("value", "orders", "pre_revenue", "pre_orders").fill_null(0),
                           ((_ts(lb_start) - pl.col("last")).dt.total_days()
                            .fill_null(pre_days * 2)).alias("recency"))
             .collect())
    if frame.height < 20 or frame["multi"].sum() < 5 or (~frame["multi"]).sum() < 5:
        from liftlab.errors import UserError

        raise UserError(f"too few active clients in {lb_start}..{lb_end} to compare "
                        f"multichannel with single-channel clients ({frame.height} found)")
    naive, decomposition = _naive(frame, alpha)
    adjusted, overlap, warnings = _adjusted(frame, extra, alpha, seed)
    combos = (frame.group_by("channel_profile").agg(pl.len().alias("clients"),
                                                     pl.col("value").mean().alias("value"))
              .sort("clients", descending=True).head(15))
    appetence = _appetence(frame, extra)
    return MultichannelResult(
        (lb_start, lb_end), (lb_end, out_end), frame.height, float(frame["multi"].mean()),
        naive, decomposition, adjusted, overlap, combos.to_dicts(), appetence,
        warnings=warnings)


def _naive(frame: pl.DataFrame, alpha: float) -> tuple[Ratio, dict[str, Ratio]]:
    def parts(g: pl.DataFrame) -> dict[str, float]:
        active = g.filter(pl.col("orders") > 0)
        n, na = g.height, active.height
        orders, value = active["orders"].cast(pl.Float64), active["value"]
        r = na / n
        f = float(orders.mean()) if na else math.nan
        b = float(value.sum() / orders.sum()) if na else math.nan
        v = float(g["value"].mean())
        # variances of the logs (delta method)
        var_r = (1 - r) / (n * r) if r > 0 else math.inf
        var_f = float(orders.var()) / (na * f * f) if na > 1 else math.inf
        resid = value - b * orders
        var_b = float((resid**2).sum() / (na - 1)) / (na * (orders.mean() or 1) ** 2 * b * b) \
            if na > 1 and b else math.inf
        var_v = float(g["value"].var()) / (n * v * v) if v else math.inf
        return {"r": r, "f": f, "b": b, "v": v, "var_r": var_r, "var_f": var_f,
                "var_b": var_b, "var_v": var_v}

    m, s = parts(frame.filter(pl.col("multi"))), parts(frame.filter(~pl.col("multi")))
    ratios = {"retention": ("r", "var_r"), "frequency": ("f", "var_f"),
              "basket": ("b", "var_b")}
    decomposition = {k: _log_ratio_ci(m[a] / s[a], m[v] + s[v], alpha)
                     for k, (a, v) in ratios.items()}
    return _log_ratio_ci(m["v"] / s["v"], m["var_v"] + s["var_v"], alpha), decomposition


def _design(frame: pl.DataFrame, extra: list[str]) -> np.ndarray:
    # Pre-period behaviour only: look-back orders are partly caused by being multichannel.
    raw = [frame[c].clip(0).to_numpy().astype(float) for c in ("pre_revenue", "pre_orders")]
    # levels (outcomes scale with past spend) and logs (propensity saturates)
    cols = [*raw, *(np.log1p(x) for x in raw),
            np.log1p(frame["recency"].to_numpy().astype(float))]
    for c in extra:
        values = frame[c].cast(pl.String).fill_null("(missing)")
        for level in sorted(values.unique().to_list())[1:]:
            cols.append((values == level).to_numpy().astype(float))
    return sm.add_constant(np.column_stack(cols), has_constant="add")


def _adjusted(frame: pl.DataFrame, extra: list[str], alpha: float,
              seed: int) -> tuple[dict[str, Ratio], dict[str, Any], list[str]]:
    if frame.height > MAX_ROWS_FOR_MODELS:
        frame = frame.sample(MAX_ROWS_FOR_MODELS, seed=seed)
    X = _design(frame, extra)
    d = frame["multi"].to_numpy().astype(float)
    y = frame["value"].to_numpy().astype(float)
    n = len(y)
    logit = sm.Logit(d, X).fit(disp=0, maxiter=200)
    e = np.clip(logit.predict(X), 0.01, 0.99)
    fit1 = sm.OLS(y[d == 1], X[d == 1]).fit()
    fit0 = sm.OLS(y[d == 0], X[d == 0]).fit()
    mu1, mu0 = fit1.predict(X), fit0.predict(X)
    # regression adjustment: average predicted potential outcomes (CI from the AIPW IF)
    ra1, ra0 = mu1.mean(), mu0.mean()
    # IPW (Hajek)
    w1, w0 = d / e, (1 - d) / (1 - e)
    ipw1, ipw0 = (w1 * y).sum() / w1.sum(), (w0 * y).sum() / w0.sum()
    if1_ipw = w1 * (y - ipw1) / w1.mean()
    if0_ipw = w0 * (y - ipw0) / w0.mean()
    # AIPW
    phi1 = mu1 + d * (y - mu1) / e
    phi0 = mu0 + (1 - d) * (y - mu0) / (1 - e)
    a1, a0 = phi1.mean(), phi0.mean()

    def ratio(p1: float, p0: float, if1: np.ndarray, if0: np.ndarray) -> Ratio:
        var_log = np.var(if1 / p1 - if0 / p0, ddof=1) / n
        return _log_ratio_ci(p1 / p0, float(var_log), alpha)

    adjusted = {"regression": ratio(ra1, ra0, phi1 - a1, phi0 - a0),
                "ipw": ratio(ipw1, ipw0, if1_ipw, if0_ipw),
                "aipw": ratio(a1, a0, phi1 - a1, phi0 - a0)}
    raw_e = logit.predict(X)
    extreme = float(((raw_e < 0.05) | (raw_e > 0.95)).mean())
    smd_before, smd_after = [], []
    for j in range(1, X.shape[1]):
        x = X[:, j]
        sd = math.sqrt((x[d == 1].var() + x[d == 0].var()) / 2) or 1.0
        smd_before.append(float((x[d == 1].mean() - x[d == 0].mean()) / sd))
        m1 = (w1 * x).sum() / w1.sum()
        m0 = (w0 * x).sum() / w0.sum()
        smd_after.append(float((m1 - m0) / sd))
    overlap = {"propensity_quantiles_multi": np.quantile(raw_e[d == 1], [.05, .5, .95]).tolist(),
               "propensity_quantiles_single": np.quantile(raw_e[d == 0],
                                                          [.05, .5, .95]).tolist(),
               "share_extreme_propensity": extreme,
               "max_abs_smd_before": max(map(abs, smd_before)),
               "max_abs_smd_after": max(map(abs, smd_after))}
    warnings = []
    if extreme > 0.1 or overlap["max_abs_smd_after"] > 0.1:
        warnings.append(f"poor overlap: {extreme:.0%} of clients have a propensity outside "
                        f"[0.05, 0.95], max |SMD| after weighting "
                        f"{overlap['max_abs_smd_after']:.2f}; the adjusted figures lean on "
                        "the models")
    return adjusted, overlap, warnings


def _appetence(frame: pl.DataFrame, extra: list[str]) -> list[dict[str, Any]]:
    """Share of clients of each segment using each channel (the heatmap's cells)."""
    seg = extra[0] if extra else None
    exploded = frame.select(pl.col(seg).cast(pl.String) if seg else pl.lit("all").alias(
        "segment"), "channels").rename({seg: "segment"} if seg else {}).explode("channels")
    sizes = frame.group_by(pl.col(seg).cast(pl.String).alias("segment") if seg else
                           pl.lit("all").alias("segment")).len()
    table = (exploded.group_by("segment", "channels").len()
             .join(sizes, on="segment", suffix="_segment")
             .with_columns((pl.col("len") / pl.col("len_segment")).alias("share"))
             .rename({"channels": "channel"}).sort("segment", "channel"))
    return table.select("segment", "channel", "share", pl.col("len_segment").alias("clients")
                        ).to_dicts()
