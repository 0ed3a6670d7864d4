"""Hierarchical Bayesian model of revenue lift across the channels and segments of one
experiment (PyMC), on sufficient statistics only.

Revenue per unit is zero-inflated: most units buy nothing, buyers' spend is skewed. So revenue
per unit = p x s (conversion rate x mean spend of a buyer), each with its own lift. Per
(channel c, segment j, arm) cell with n units, k buyers, revenue sum and sum of squares:

    k ~ Binomial(n, p),          logit p = a[c,j] + treated * d[c,j]
    spend_mean ~ StudentT(k - 1, exp(b[c,j] + treated * g[c,j]), sd / sqrt(k))
    d[c,j] = mu_d[c] + tau_d[c] * z_d[c,j]        (non-centred partial pooling)
    g[c,j] = mu_g[c] + tau_g[c] * z_g[c,j]

The buyers' mean spend and its sd follow from the revenue statistics and k (non-buyers add 0
to both sums): mean = sum / k, var = (sum_sq - sum^2 / k) / (k - 1). A lognormal spend model
would need the sum of log spend, which the sufficient statistics do not keep; the mean of k
spends is close to normal by the CLT, and the Student t with k - 1 degrees of freedom carries
the uncertainty of the estimated sd in small cells (exact for normal spend).

A segment's lifts are pulled toward its channel's by as much as its own data is weak. The
revenue lift of a cell is p1 s1 - p0 s0; a channel's overall lift averages its segments
weighted by their treated units. Weakly informative priors: logit-scale conversion lift
mu_d ~ N(0, 0.5) (about +-65% relative), log-scale spend lift mu_g ~ N(0, 0.3), segment spreads
tau_d ~ HalfNormal(0.3), tau_g ~ HalfNormal(0.2); baselines centred on the pooled rate and
spend. Fixed seeds make a rerun on the same data give the same numbers (one process, cores=1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from liftlab.core.errors import UserError

if TYPE_CHECKING:
    import pymc as pm

RHAT_MAX, ESS_MIN = 1.01, 400
Sampler = Literal["pymc", "nutpie"]
_FREE = ("a", "b", "mu_d", "tau_d", "z_d", "mu_g", "tau_g", "z_g")


@dataclass(frozen=True)
class RevenueCell:
    """Sufficient statistics of revenue in one (channel, segment, arm) cell; ``buyers`` is the
    number of units with at least one order (k)."""

    channel: str
    segment: str
    treated: bool
    n: int
    buyers: int
    revenue: float
    revenue_sq: float


class ChannelCost(NamedTuple):
    """What a channel cost, over how many treated units, and the margin share of revenue."""

    cost: float
    n_treated: int
    margin_share: float = 1.0


CostLike = ChannelCost | tuple[float, int, float]


@dataclass(frozen=True)
class PosteriorLift:
    """Posterior of the revenue lift per unit of one channel (``segment`` None: overall)."""

    channel: str
    segment: str | None
    mean: float
    hdi: tuple[float, float]
    mean_rel: float
    hdi_rel: tuple[float, float]
    prob_positive: float
    prob_roi_positive: float | None
    method: str

    def to_dict(self) -> dict[str, Any]:
        """results.json fields of this effect."""
        return {"channel": self.channel, "segment": self.segment,
                "prob_positive": self.prob_positive,
                "bayes": {"mean": self.mean, "hdi": list(self.hdi), "mean_rel": self.mean_rel,
                          "hdi_rel": list(self.hdi_rel), "prob_positive": self.prob_positive,
                          "prob_roi_positive": self.prob_roi_positive, "method": self.method}}


@dataclass(frozen=True)
class Diagnostics:
    """Sampler health over every free parameter and every reported lift."""

    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    warnings: tuple[str, ...]
    sampler: str
    draws: int
    tune: int
    chains: int
    seed: int
    compile_seconds: float
    sample_seconds: float

    @property
    def ok(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {"r_hat_max": self.r_hat_max, "ess_bulk_min": self.ess_bulk_min,
                "ess_tail_min": self.ess_tail_min, "divergences": self.divergences,
                "warnings": list(self.warnings), "sampler": self.sampler, "draws": self.draws,
                "tune": self.tune, "chains": self.chains, "seed": self.seed,
                "compile_seconds": self.compile_seconds, "sample_seconds": self.sample_seconds}


@dataclass(frozen=True)
class HierarchicalResult:
    """Posterior lifts (each channel overall, then its segments) and diagnostics."""

    lifts: tuple[PosteriorLift, ...]
    diagnostics: Diagnostics
    method: str

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.diagnostics.warnings

    @property
    def seconds(self) -> float:
        return self.diagnostics.compile_seconds + self.diagnostics.sample_seconds

    def lift(self, channel: str, segment: str | None = None) -> PosteriorLift:
        """The posterior of one channel (overall when ``segment`` is None)."""
        for x in self.lifts:
            if x.channel == channel and x.segment == segment:
                return x
        known = sorted({x.channel for x in self.lifts})
        msg = (f"no posterior for channel {channel!r}, segment {segment!r}; channels fitted: "
               f"{', '.join(known)}")
        raise KeyError(msg)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "effects": [x.to_dict() for x in self.lifts],
                "diagnostics": self.diagnostics.to_dict(), "seconds": self.seconds}


@dataclass(frozen=True)
class _Data:
    """Cells as arrays, with the (channel, segment) grid they index."""

    channels: tuple[str, ...]
    segments: tuple[str, ...]
    ci: np.ndarray
    si: np.ndarray
    treated: np.ndarray
    n: np.ndarray
    k: np.ndarray
    spend_mean: np.ndarray
    spend_se: np.ndarray
    treated_units: np.ndarray  # (channels, segments): weights of a channel's overall lift
    w_conv: np.ndarray  # (channels, segments): treated share of units
    w_spend: np.ndarray  # (channels, segments): treated share of buyers


def fit_hierarchical(cells: Sequence[RevenueCell], seed: int = 1, draws: int = 1000,
                     tune: int = 1000,
                     chains: int = 2, target_accept: float = 0.95,
                     costs: Mapping[str, CostLike] | None = None,
                     hdi_prob: float = 0.95, sampler: Sampler = "pymc",
                     cores: int = 1) -> HierarchicalResult:
    """Fit the model and summarise each channel and (channel, segment) lift.

    ``costs`` maps a channel to (cost, treated units, margin share of revenue) to report
    P(ROI > 0) = P(lift x treated units x margin share > cost) for the channel overall.
    ``sampler`` is PyMC's NUTS or nutpie's (Rust; needs the nutpie package).
    """
    import pymc as pm

    data = _prepare(cells)
    t0 = time.perf_counter()
    model = _model(data)
    if sampler == "nutpie":
        try:
            import nutpie
        except ImportError as exc:
            msg = ("analysis.sampler is 'nutpie' but the nutpie package is not installed: "
                   "run `pip install nutpie`, or set `sampler: pymc`")
            raise UserError(msg) from exc
        compiled = nutpie.compile_pymc_model(model)
        t1 = time.perf_counter()
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores,
                              seed=seed, target_accept=target_accept, progress_bar=False)
    else:
        with model:
            initial, step = pm.init_nuts(init="jitter+adapt_diag", chains=chains,
                                         random_seed=seed, target_accept=target_accept,
                                         progressbar=False)
            t1 = time.perf_counter()
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, step=step,
                              initvals=initial, random_seed=seed, progressbar=False,
                              compute_convergence_checks=False)
    t2 = time.perf_counter()
    lifts, lift_draws = _summaries(data, idata.posterior, costs or {}, hdi_prob,
                                   f"hierarchical ({sampler})")
    posterior = {v: idata.posterior[v].values for v in _FREE if v in idata.posterior}
    diag = _diagnostics(posterior, idata.sample_stats["diverging"].values, lift_draws, sampler,
                        draws, tune, chains, seed, target_accept, t1 - t0, t2 - t1)
    method = (f"hierarchical zero-inflated revenue (binomial conversion x Student-t spend, "
              f"non-centred pooling over {len(data.segments)} segments), {sampler} NUTS "
              f"{chains}x{draws} draws, seed {seed}")
    return HierarchicalResult(lifts, diag, method)


def _model(data: _Data) -> pm.Model:
    """The PyMC model of the module docstring."""
    import pymc as pm

    k_all, n_all = data.k.sum(), data.n.sum()
    rate = min(max(k_all / n_all, 1e-6), 1 - 1e-6)
    has_spend = data.spend_se > 0
    spend = float(np.sum(data.spend_mean * data.k) / k_all) if k_all else 0.0
    if not spend > 0:
        msg = (f"the buyers' mean spend over all cells is {spend:g}: the zero-inflated revenue "
               "model needs buyers with positive revenue; use the closed-form analysis instead")
        raise ValueError(msg)
    ci, si, treated = data.ci, data.si, data.treated
    coords = {"channel": data.channels, "segment": data.segments}
    with pm.Model(coords=coords) as model:
        a = pm.Normal("a", math.log(rate / (1 - rate)), 1.5, dims=("channel", "segment"))
        b = pm.Normal("b", math.log(spend), 1.0, dims=("channel", "segment"))
        mu_d = pm.Normal("mu_d", 0.0, 0.5, dims="channel")
        mu_g = pm.Normal("mu_g", 0.0, 0.3, dims="channel")
        if len(data.segments) > 1:
            tau_d = pm.HalfNormal("tau_d", 0.3, dims="channel")
            z_d = pm.Normal("z_d", 0.0, 1.0, dims=("channel", "segment"))
            tau_g = pm.HalfNormal("tau_g", 0.2, dims="channel")
            z_g = pm.Normal("z_g", 0.0, 1.0, dims=("channel", "segment"))
            d = mu_d[:, None] + tau_d[:, None] * z_d
            g = mu_g[:, None] + tau_g[:, None] * z_g
        else:  # one segment: nothing to pool, and tau would only be a ridge for the sampler
            d, g = mu_d[:, None], mu_g[:, None]
        # a and b are the arms' information-weighted average (not the holdout's level), so
        # that they are nearly uncorrelated with the lifts d and g a posteriori.
        shift_d = treated - data.w_conv[ci, si]
        shift_g = treated - data.w_spend[ci, si]
        # flat integer indices (AdvancedSubtensor1 has a C implementation; 2-D fancy indexing
        # runs in Python and made sampling several times slower)
        flat = ci * len(data.segments) + si
        pm.Binomial("buyers", n=data.n,
                    logit_p=a.flatten()[flat] + shift_d * d.flatten()[flat], observed=data.k)
        if has_spend.any():
            idx = flat[has_spend]
            log_s = b.flatten()[idx] + shift_g[has_spend] * g.flatten()[idx]
            pm.StudentT("spend", nu=data.k[has_spend] - 1, mu=pm.math.exp(log_s),
                        sigma=data.spend_se[has_spend], observed=data.spend_mean[has_spend])
    return model


def _prepare(cells: Iterable[RevenueCell]) -> _Data:
    """Check the cells, add up duplicates (sufficient statistics are additive), make arrays."""
    merged: dict[tuple[str, str, bool], tuple[int, int, float, float]] = {}
    for c in cells:
        if c.n < 0 or not 0 <= c.buyers <= c.n:
            msg = (f"cell {c.channel}/{c.segment}/{'treatment' if c.treated else 'holdout'}: "
                   f"{c.buyers} buyers out of {c.n} units; buyers must be between 0 and n")
            raise ValueError(msg)
        n, k, s, ss = merged.get((c.channel, c.segment, c.treated), (0, 0, 0.0, 0.0))
        merged[(c.channel, c.segment, c.treated)] = (n + c.n, k + c.buyers, s + c.revenue,
                                                     ss + c.revenue_sq)
    # Sums from a parallel engine can differ in the last bits between runs, and NUTS amplifies
    # any difference: 12 significant digits make the same data give the same draws.
    merged = {key: (n, k, _canon(s), _canon(ss)) for key, (n, k, s, ss) in merged.items()}
    merged = {key: v for key, v in merged.items() if v[0] > 0}
    if not merged:
        raise ValueError("no cell with units: pass at least one (channel, segment, arm) cell "
                         "with n > 0 per arm")
    channels = tuple(sorted({key[0] for key in merged}))
    segments = tuple(sorted({key[1] for key in merged}))
    keys = list(merged)
    n = np.array([merged[key][0] for key in keys])
    k = np.array([merged[key][1] for key in keys])
    s = np.array([merged[key][2] for key in keys])
    ss = np.array([merged[key][3] for key in keys])
    safe_k = np.maximum(k, 1)
    spend_mean = np.where(k > 0, s / safe_k, 0.0)
    spend_var = np.where(k >= 2, (ss - s * s / safe_k) / np.maximum(k - 1, 1), 0.0)
    spend_se = np.sqrt(np.maximum(spend_var, 0.0) / safe_k)
    ci = np.array([channels.index(key[0]) for key in keys])
    si = np.array([segments.index(key[1]) for key in keys])
    treated = np.array([float(key[2]) for key in keys])
    grid = (len(channels), len(segments))
    units, all_units = np.zeros(grid), np.zeros(grid)
    np.add.at(units, (ci, si), n * treated)
    np.add.at(all_units, (ci, si), n)
    buyers, all_buyers = np.zeros(grid), np.zeros(grid)
    spend_k = np.where(spend_se > 0, k, 0)
    np.add.at(buyers, (ci, si), spend_k * treated)
    np.add.at(all_buyers, (ci, si), spend_k)
    w_conv = units / np.maximum(all_units, 1)
    w_spend = np.where(all_buyers > 0, buyers / np.maximum(all_buyers, 1), 0.5)
    return _Data(channels, segments, ci, si, treated, n, k, spend_mean, spend_se, units,
                 w_conv, w_spend)


def _summaries(data: _Data, post: Any, costs: Mapping[str, CostLike], hdi_prob: float,
               method: str) -> tuple[tuple[PosteriorLift, ...], dict[str, np.ndarray]]:
    """Per-cell and per-channel revenue lift draws, summarised; also the draws (chain, draw)
    of every reported lift, for their own convergence diagnostics."""
    a, b = post["a"].values, post["b"].values  # (chain, draw, channel, segment)
    d, g = post["mu_d"].values[..., None], post["mu_g"].values[..., None]
    if "z_d" in post:
        d = d + post["tau_d"].values[..., None] * post["z_d"].values
        g = g + post["tau_g"].values[..., None] * post["z_g"].values
    wc, ws = data.w_conv, data.w_spend
    base = _expit(a - wc * d) * np.exp(b - ws * g)
    lift = _expit(a + (1 - wc) * d) * np.exp(b + (1 - ws) * g) - base
    out: list[PosteriorLift] = []
    draws: dict[str, np.ndarray] = {}
    for i, ch in enumerate(data.channels):
        weights = data.treated_units[i]
        if weights.sum() > 0:
            share = weights / weights.sum()
            overall = lift[..., i, :] @ share
            roi = None
            if ch in costs:
                cost, n_treated, margin = ChannelCost(*costs[ch])
                if cost > 0 and n_treated > 0:
                    roi = float(np.mean(overall * n_treated * margin > cost))
            out.append(_summary(ch, None, overall, overall / (base[..., i, :] @ share),
                                hdi_prob, roi, method))
            draws[ch] = overall
        for j, seg in enumerate(data.segments):
            if weights[j] > 0:
                cell = lift[..., i, j]
                out.append(_summary(ch, seg, cell, cell / base[..., i, j], hdi_prob, None,
                                    method))
                draws[f"{ch}/{seg}"] = cell
    return tuple(out), draws


def _summary(channel: str, segment: str | None, lift: np.ndarray, rel: np.ndarray,
             hdi_prob: float, roi: float | None, method: str) -> PosteriorLift:
    return PosteriorLift(channel, segment, float(lift.mean()), _hdi(lift, hdi_prob),
                         float(rel.mean()), _hdi(rel, hdi_prob), float(np.mean(lift > 0)), roi,
                         method)


def _hdi(x: np.ndarray, prob: float) -> tuple[float, float]:
    """The shortest interval holding ``floor(prob * n)`` + 1 of the n draws (ArviZ's HDI of a
    unimodal sample, computed here so that it does not depend on ArviZ's version)."""
    s = np.sort(x.ravel())
    inside = math.floor(prob * len(s))
    widths = s[inside:] - s[: len(s) - inside]
    i = int(np.argmin(widths))
    return float(s[i]), float(s[i + inside])


def _canon(x: float) -> float:
    return float(f"{x:.12g}")


def _expit(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _diagnostics(posterior: Mapping[str, np.ndarray], diverging: np.ndarray,
                 lift_draws: Mapping[str, np.ndarray], sampler: str, draws: int, tune: int,
                 chains: int, seed: int, target_accept: float, compile_s: float,
                 sample_s: float) -> Diagnostics:
    """Worst r_hat and ESS over the free parameters (draws (chain, draw, ...) by name) and the
    reported lifts; warnings."""
    series = [v.reshape(v.shape[0], v.shape[1], -1) for k, v in posterior.items() if k in _FREE]
    series += [v.reshape(v.shape[0], v.shape[1], -1) for v in lift_draws.values()]
    r_hat, ess_bulk, ess_tail = _convergence(np.concatenate(series, axis=2))
    divergences = int(diverging.sum())
    warnings = []
    if chains < 2:
        warnings.append("r_hat needs at least 2 chains: convergence is unchecked; set chains: 2")
    elif not r_hat <= RHAT_MAX:
        warnings.append(f"poor convergence: r_hat up to {r_hat:.4f} (> {RHAT_MAX}); increase "
                        "tune and draws")
    if not min(ess_bulk, ess_tail) >= ESS_MIN:
        warnings.append(f"few effective draws: ESS bulk {ess_bulk:.0f}, tail {ess_tail:.0f} "
                        f"(< {ESS_MIN}); increase draws")
    if divergences:
        warnings.append(f"{divergences} divergent transitions at target_accept "
                        f"{target_accept:g}: the posterior may be biased; "
                        f"{divergence_advice(target_accept)}")
    return Diagnostics(r_hat, ess_bulk, ess_tail, divergences, tuple(warnings), sampler, draws,
                       tune, chains, seed, compile_s, sample_s)


def _convergence(series: np.ndarray) -> tuple[float, float, float]:
    """Worst rank-normalised split r_hat, least bulk ESS and least tail ESS over the scalar
    series ``series[chain, draw, k]`` (ArviZ). Tail ESS is the smaller of the ESS of the 5% and
    95% quantiles, passed explicitly: ArviZ 1 ties its default tail to the 89% interval."""
    import arviz as az

    r_hat, bulk, tail = [], [], []
    for k in range(series.shape[2]):
        x = series[:, :, k]
        r_hat.append(float(az.rhat(x)))
        bulk.append(float(az.ess(x, method="bulk")))
        tail.append(min(float(az.ess(x, method="quantile", prob=p)) for p in (0.05, 0.95)))
    return float(np.max(r_hat)), float(np.min(bulk)), float(np.min(tail))


def divergence_advice(target_accept: float) -> str:
    """What to try after divergences: a higher ``target_accept`` than the one used (a
    smaller step), then more tuning."""
    higher = next((t for t in (0.99, 0.995, 0.999) if t > target_accept), None)
    if higher is None:
        return "increase analysis.tune (target_accept is already at its ceiling)"
    return f"raise analysis.target_accept (e.g. {higher:g}) and tune"
