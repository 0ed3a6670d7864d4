"""A hierarchical Bayesian model of revenue lift across channels and segments (PyMC).

Revenue per unit is zero-inflated: most units buy nothing. The model follows that shape on
sufficient statistics only (n units, k buyers, sum and sum of squares of revenue per cell):

    k ~ Binomial(n, p)                      logit p = a[c,s] + treated * d[c,s]
    mean spend of buyers ~ Normal(mu, sd/sqrt(k))     log mu = b[c,s] + treated * g[c,s]
    d[c,s] = d_c + tau_c * z[c,s],  g[c,s] = g_c + sigma_c * w[c,s]      (non-centred)

so the lift of a segment is pulled toward its channel's lift by as much as the data of the
segment is weak (partial pooling). Revenue per unit = p * mu; the lift is its difference
between arms. Fixed seeds make a rerun on the same data give the same numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RHAT_MAX, ESS_MIN = 1.01, 400


@dataclass(frozen=True)
class Cell:
    """One (channel, segment, arm) cell's sufficient statistics of revenue."""

    channel: str
    segment: str
    treated: bool
    n: int
    buyers: int
    revenue: float
    revenue_sq: float


@dataclass(frozen=True)
class PosteriorLift:
    channel: str
    segment: str | None
    mean: float
    hdi: tuple[float, float]
    prob_positive: float
    prob_roi_positive: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "segment": self.segment, "mean": self.mean,
                "hdi": list(self.hdi), "prob_positive": self.prob_positive,
                "prob_roi_positive": self.prob_roi_positive}


@dataclass(frozen=True)
class HierarchicalResult:
    lifts: tuple[PosteriorLift, ...]
    diagnostics: dict[str, Any]
    seconds: float
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "hierarchical", "effects": [x.to_dict() for x in self.lifts],
                "diagnostics": {**self.diagnostics, "warnings": list(self.warnings)},
                "seconds": self.seconds}


def fit_hierarchical(cells: list[Cell], seed: int = 1, draws: int = 1000, tune: int = 1000,
                     chains: int = 2, target_accept: float = 0.9,
                     costs: dict[str, tuple[float, int, float]] | None = None,
                     hdi_prob: float = 0.95, sampler: str = "pymc") -> HierarchicalResult:
    """Fit the model; ``costs`` maps channel -> (cost, treated units, margin share of revenue)
    to report P(ROI > 0); ``sampler`` is PyMC's own NUTS or "nutpie" (Rust, if installed)."""
    import arviz as az
    import pymc as pm

    t0 = time.perf_counter()
    channels = sorted({c.channel for c in cells})
    segments = sorted({c.segment for c in cells})
    ci = np.array([channels.index(c.channel) for c in cells])
    si = np.array([segments.index(c.segment) for c in cells])
    treated = np.array([float(c.treated) for c in cells])
    n = np.array([c.n for c in cells])
    k = np.array([c.buyers for c in cells])
    has_buyers = k >= 2
    spend_mean = np.array([c.revenue / c.buyers if c.buyers else 0.0 for c in cells])
    spend_var = np.array([(c.revenue_sq - c.revenue**2 / c.buyers) / (c.buyers - 1)
                          if c.buyers >= 2 else 0.0 for c in cells])
    spend_se = np.sqrt(np.maximum(spend_var, 1e-9) / np.maximum(k, 1))
    pooled_p = max(k.sum() / n.sum(), 1e-6)
    pooled_spend = float(np.sum(spend_mean * k) / max(k.sum(), 1)) or 1.0
    nc, ns = len(channels), len(segments)
    with pm.Model():
        a = pm.Normal("a", math.log(pooled_p / (1 - pooled_p)), 1.5, shape=(nc, ns))
        b = pm.Normal("b", math.log(pooled_spend), 1.0, shape=(nc, ns))
        d_c = pm.Normal("d_c", 0.0, 0.5, shape=nc)
        g_c = pm.Normal("g_c", 0.0, 0.3, shape=nc)
        tau = pm.HalfNormal("tau", 0.3, shape=nc)
        sigma = pm.HalfNormal("sigma", 0.2, shape=nc)
        z = pm.Normal("z", 0.0, 1.0, shape=(nc, ns))
        w = pm.Normal("w", 0.0, 1.0, shape=(nc, ns))
        d = pm.Deterministic("d", d_c[:, None] + tau[:, None] * z)
        g = pm.Deterministic("g", g_c[:, None] + sigma[:, None] * w)
        logit_p = a[ci, si] + treated * d[ci, si]
        pm.Binomial("buyers", n=n, logit_p=logit_p, observed=k)
        log_mu = b[ci, si] + treated * g[ci, si]
        pm.Normal("spend", mu=pm.math.exp(log_mu[has_buyers]), sigma=spend_se[has_buyers],
                  observed=spend_mean[has_buyers])
        # revenue per unit in each arm, per (channel, segment)
        p0 = pm.math.invlogit(a)
        p1 = pm.math.invlogit(a + d)
        pm.Deterministic("lift", p1 * pm.math.exp(b + g) - p0 * pm.math.exp(b))
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=1, random_seed=seed,
                          target_accept=target_accept, progressbar=False,
                          compute_convergence_checks=False, nuts_sampler=sampler)
    lift = idata.posterior["lift"].stack(sample=("chain", "draw")).values  # (nc, ns, S)
    weights = np.zeros((nc, ns))
    for c in cells:
        weights[channels.index(c.channel), segments.index(c.segment)] += c.n
    out = []
    for i, ch in enumerate(channels):
        share = weights[i] / weights[i].sum()
        overall = (lift[i] * share[:, None]).sum(0)
        roi = None
        if costs and ch in costs:
            cost, n_t, margin_share = costs[ch]
            roi = float(((overall * n_t * margin_share - cost) > 0).mean()) if cost > 0 else None
        out.append(_summary(ch, None, overall, hdi_prob, roi))
        for j, seg in enumerate(segments):
            if weights[i, j] > 0:
                out.append(_summary(ch, seg, lift[i, j], hdi_prob, None))
    summary = az.summary(idata, var_names=["d_c", "g_c", "tau", "sigma", "z", "w"],
                         kind="diagnostics")
    divergences = int(idata.sample_stats["diverging"].sum())
    diag = {"r_hat_max": float(summary["r_hat"].max()),
            "ess_bulk_min": float(summary["ess_bulk"].min()),
            "ess_tail_min": float(summary["ess_tail"].min()), "divergences": divergences,
            "draws": draws, "tune": tune, "chains": chains, "seed": seed}
    warnings = []
    if not diag["r_hat_max"] <= RHAT_MAX:
        warnings.append(f"poor convergence: r_hat up to {diag['r_hat_max']:.3f} (> {RHAT_MAX})")
    if not diag["ess_bulk_min"] >= ESS_MIN:
        warnings.append(f"few effective draws: bulk ESS down to {diag['ess_bulk_min']:.0f} "
                        f"(< {ESS_MIN}); increase draws")
    if divergences:
        warnings.append(f"{divergences} divergent transitions: the posterior may be biased")
    return HierarchicalResult(tuple(out), diag, time.perf_counter() - t0, tuple(warnings))


def _summary(channel: str, segment: str | None, draws: np.ndarray, hdi_prob: float,
             roi: float | None) -> PosteriorLift:
    import arviz as az

    lo, hi = az.hdi(np.asarray(draws), hdi_prob=hdi_prob)
    return PosteriorLift(channel, segment, float(np.mean(draws)), (float(lo), float(hi)),
                         float((draws > 0).mean()), roi)
