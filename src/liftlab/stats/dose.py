"""Dose-response of contact frequency: a Bayesian model fitted on sufficient statistics.

Per segment ``s`` and contact frequency ``f`` (contacts per frequency unit, 0 = holdout):

- margin per unit over the window: ``m_s(f) = a_s + b_s * (1 - exp(-f / k_s))``, monotone
  and saturating (``b_s, k_s > 0``); each arm's mean margin is normal around it with its
  own standard error (the central limit theorem on the arm's n, sum and sum of squares);
- fatigue (the probability of losing a reachable customer in the window):
  ``p_s(f) = 1 - exp(-(l0_s + l1_s * f))``, a constant hazard per contact (``l0_s, l1_s >
  0``); each arm's events are binomial;
- ``a``, the log of the gain over the tested range ``b * (1 - exp(-f_max / k))``, ``log l0``
  and ``log l1`` are partially pooled across segments (centred normal hierarchies); ``log k``
  has its own prior per segment, on a scale set by the data (the margin is centred on the
  holdout arms' mean and scaled by the spread of the arm means).

The value of a frequency is ``m_s(f) - cost_per_frequency * f - optin_value * p_s(f)``; its
maximiser over the tested range is read off every posterior draw (the draws' interval is the
optimum's interval) and off the posterior mean curve (the recommended frequency). Overall
curves weight the segments by their units. ``equal_means`` is the frequentist gate: when the
arms' values cannot be told apart, no optimum is claimed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

# scipy is imported inside the functions that use it: it takes up to a second to import,
# which ``liftlab validate`` and ``import liftlab.stats`` should not pay
from liftlab.core.errors import UserError
from liftlab.stats.hierarchical import (
    ESS_MIN,
    RHAT_MAX,
    Diagnostics,
    Sampler,
    divergence_advice,
)

if TYPE_CHECKING:
    import pymc as pm

_FREE = (
    "mu_a",
    "sigma_a",
    "z_a",
    "mu_gain",
    "sigma_gain",
    "z_gain",
    "log_k",
    "mu_l0",
    "sigma_l0",
    "z_l0",
    "mu_l1",
    "sigma_l1",
    "z_l1",
)
GRID_POINTS = 201


@dataclass(frozen=True)
class DoseCell:
    """One arm in one segment: units, the margin's sum and sum of squares, fatigue events."""

    segment: str
    frequency: float
    n: int
    total: float
    total_sq: float
    events: int | None = None

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def se(self) -> float:
        var = max(self.total_sq - self.total**2 / self.n, 0.0) / max(self.n - 1, 1)
        return math.sqrt(var / self.n)


@dataclass(frozen=True)
class Band:
    """Posterior mean and equal-tailed interval of a curve at each frequency."""

    mean: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]

    @staticmethod
    def of(draws: np.ndarray, alpha: float) -> Band:
        lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
        return Band(
            tuple(map(float, draws.mean(axis=0))), tuple(map(float, lo)), tuple(map(float, hi))
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "lo": list(self.lo), "hi": list(self.hi)}


@dataclass(frozen=True)
class Estimate:
    mean: float
    ci: tuple[float, float]
    prob_positive: float

    @staticmethod
    def of(draws: np.ndarray, alpha: float) -> Estimate:
        lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
        return Estimate(float(draws.mean()), (float(lo), float(hi)), float((draws > 0).mean()))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci": list(self.ci), "prob_positive": self.prob_positive}


@dataclass(frozen=True)
class DoseCurve:
    """One segment's (or the whole population's) posterior curves and optimum."""

    frequency: tuple[float, ...]
    margin: Band
    fatigue: Band | None
    value: Band
    optimum: float
    optimum_ci: tuple[float, float]
    draws: np.ndarray  # the value curve's draws on the grid (draws x grid)

    @property
    def optimum_draws(self) -> np.ndarray:
        """The maximiser of each posterior draw's value curve."""
        return np.asarray(self.frequency)[self.draws.argmax(axis=1)]

    def value_at(self, f: float) -> np.ndarray:
        """Posterior draws of the value at frequency ``f`` (linear between grid points)."""
        grid = np.asarray(self.frequency)
        j = int(np.clip(np.searchsorted(grid, f), 1, len(grid) - 1))
        w = (f - grid[j - 1]) / (grid[j] - grid[j - 1])
        return (1 - w) * self.draws[:, j - 1] + w * self.draws[:, j]

    def gain(self, frm: float, alpha: float) -> Estimate:
        """Value at the optimum minus value at ``frm``, per unit; prob_positive = P(pays)."""
        return Estimate.of(self.value_at(self.optimum) - self.value_at(frm), alpha)

    def next_send(self, f: float, alpha: float) -> Estimate:
        """The value of one more contact per frequency unit at ``f``."""
        return Estimate.of(self.value_at(f + 1.0) - self.value_at(f), alpha)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frequency": list(self.frequency),
            "margin": self.margin.to_dict(),
            "fatigue": None if self.fatigue is None else self.fatigue.to_dict(),
            "value": self.value.to_dict(),
        }


@dataclass(frozen=True)
class DoseFit:
    segments: dict[str, DoseCurve]
    overall: DoseCurve
    diagnostics: Diagnostics
    method: str


def equal_means(means: Sequence[float], ses: Sequence[float]) -> tuple[float, int, float]:
    """Wald chi-square test that every arm has the same mean (heteroscedastic, inverse
    variance weights): (statistic, degrees of freedom, p-value)."""
    from scipy import stats as sps

    m, se = np.asarray(means, float), np.asarray(ses, float)
    if len(m) < 2 or not np.all(se > 0):
        return math.nan, len(m) - 1, math.nan
    w = 1 / se**2
    centre = (w * m).sum() / w.sum()
    chi2 = float((w * (m - centre) ** 2).sum())
    df = len(m) - 1
    return chi2, df, float(sps.chi2.sf(chi2, df))


def fit_dose(
    cells: Sequence[DoseCell],
    cost_per_frequency: float,
    optin_value: float,
    alpha: float = 0.05,
    seed: int = 1,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    target_accept: float = 0.95,
    sampler: Sampler = "pymc",
) -> DoseFit:
    """Fit the model of the module docstring and summarise each segment and the whole."""
    names = sorted({c.segment for c in cells})
    fmax = max(c.frequency for c in cells)
    t0 = time.perf_counter()
    model, centre, scale = _model(cells, names, fmax)
    idata, t1 = _sample(model, seed, draws, tune, chains, target_accept, sampler)
    t2 = time.perf_counter()
    post = {
        v: idata.posterior[v].values for v in ("a", "b", "k", "l0", "l1") if v in idata.posterior
    }
    post = {v: x.reshape(-1, *x.shape[2:]) for v, x in post.items()}
    grid = np.linspace(0.0, fmax, GRID_POINTS)
    margin = centre + scale * (
        post["a"][:, :, None]
        + post["b"][:, :, None] * (1 - np.exp(-grid[None, None, :] / post["k"][:, :, None]))
    )
    fatigue = (
        1 - np.exp(-(post["l0"][:, :, None] + post["l1"][:, :, None] * grid))
        if "l0" in post
        else None
    )
    value = (
        margin - cost_per_frequency * grid - (optin_value * fatigue if fatigue is not None else 0.0)
    )
    weights = np.array([sum(c.n for c in cells if c.segment == s) for s in names], float)
    weights /= weights.sum()

    def curve(m: np.ndarray, p: np.ndarray | None, v: np.ndarray) -> DoseCurve:
        best = int(v.mean(axis=0).argmax())
        lo, hi = np.quantile(grid[v.argmax(axis=1)], [alpha / 2, 1 - alpha / 2])  # optimum_draws
        return DoseCurve(
            tuple(map(float, grid)),
            Band.of(m, alpha),
            None if p is None else Band.of(p, alpha),
            Band.of(v, alpha),
            float(grid[best]),
            (float(lo), float(hi)),
            v,
        )

    per_segment = {
        s: curve(margin[:, i], None if fatigue is None else fatigue[:, i], value[:, i])
        for i, s in enumerate(names)
    }
    overall = curve(
        np.einsum("dsg,s->dg", margin, weights),
        None if fatigue is None else np.einsum("dsg,s->dg", fatigue, weights),
        np.einsum("dsg,s->dg", value, weights),
    )
    diag = _diagnostics(idata, sampler, draws, tune, chains, seed, target_accept, t1 - t0, t2 - t1)
    method = (
        f"dose-response: saturating margin curve and constant-hazard fatigue per "
        f"segment, partially pooled over {len(names)} segment(s), on sufficient "
        f"statistics per arm and segment; {sampler} NUTS {chains}x{draws} draws, seed "
        f"{seed}"
    )
    return DoseFit(per_segment, overall, diag, method)


def _model(
    cells: Sequence[DoseCell], names: list[str], fmax: float
) -> tuple[pm.Model, float, float]:
    import pymc as pm

    seg = np.array([names.index(c.segment) for c in cells])
    f = np.array([c.frequency for c in cells])
    n = np.array([c.n for c in cells])
    mean = np.array([c.mean for c in cells])
    se = np.array([c.se for c in cells])
    control = f == 0
    centre = float(np.average(mean[control], weights=n[control]))
    scale = float(max(np.ptp(mean), np.median(se), 1e-9 * max(abs(centre), 1.0)))
    se = np.maximum(se, 1e-6 * scale)
    S = len(names)
    with pm.Model() as model:
        # (gain over the tested range, k) rather than (b, k): the data pin the gain down
        # whatever k is, so the two are nearly uncorrelated in the posterior.
        a = _pooled("a", S, 0.0, 2.0, 1.0)
        gain = pm.math.exp(_pooled("gain", S, math.log(0.5), 2.0, 1.0))
        # k (the frequency scale of saturation) is weakly identified by a few arms: its own
        # prior per segment, not pooled (a pooled scale of few groups makes a funnel)
        k = pm.math.exp(pm.Normal("log_k", math.log(fmax / 3), 1.0, shape=S))
        b = gain / (1 - pm.math.exp(-fmax / k))
        pm.Deterministic("a", a)
        pm.Deterministic("b", b)
        pm.Deterministic("k", k)
        mu = a[seg] + b[seg] * (1 - pm.math.exp(-f / k[seg]))
        pm.Normal("margin", mu=mu, sigma=se / scale, observed=(mean - centre) / scale)
        if all(c.events is not None for c in cells):
            events = np.array([c.events for c in cells])
            p0 = max(events[control].sum() / n[control].sum(), 0.5 / n[control].sum())
            p_hi = max(events[~control].sum() / n[~control].sum(), p0)
            slope = max((p_hi - p0) / max(float(f[~control].mean()), 1e-9), p0 / 100)
            l0 = pm.math.exp(_pooled("l0", S, math.log(p0), 1.5, 1.0))
            l1 = pm.math.exp(_pooled("l1", S, math.log(slope * fmax), 2.0, 1.0)) / fmax
            pm.Deterministic("l0", l0)
            pm.Deterministic("l1", l1)
            p = 1 - pm.math.exp(-(l0[seg] + l1[seg] * f))
            pm.Binomial("fatigue", n=n, p=pm.math.clip(p, 1e-12, 1 - 1e-12), observed=events)
    return model, centre, scale


def _pooled(name: str, size: int, loc: float, sd: float, spread: float) -> Any:
    """A centred normal hierarchy, ``z ~ Normal(mu, sigma)`` per segment: arms of a CRM
    test hold thousands of units, so the data pin each segment down (the regime where the
    centred form samples better than the non-centred one)."""
    import pymc as pm

    mu = pm.Normal(f"mu_{name}", loc, sd)
    sigma = pm.HalfNormal(f"sigma_{name}", spread)
    return pm.Normal(f"z_{name}", mu, sigma, shape=size)


def _sample(
    model: pm.Model,
    seed: int,
    draws: int,
    tune: int,
    chains: int,
    target_accept: float,
    sampler: Sampler,
) -> tuple[Any, float]:
    import pymc as pm

    if sampler == "nutpie":
        try:
            import nutpie
        except ImportError as exc:
            msg = (
                "analysis.sampler is 'nutpie' but the nutpie package is not installed: "
                "run `pip install nutpie`, or set `sampler: pymc`"
            )
            raise UserError(msg) from exc
        compiled = nutpie.compile_pymc_model(model)
        t1 = time.perf_counter()
        return nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=1,
            seed=seed,
            target_accept=target_accept,
            progress_bar=False,
        ), t1
    with model, warnings.catch_warnings():  # a dense mass matrix: correlated parameters
        # PyMC flags the dense adaptation as experimental, and early adaptation steps may
        # overflow; sampler health is judged by the diagnostics (divergences, r_hat, ESS)
        warnings.filterwarnings("ignore", "QuadPotentialFullAdapt is an experimental feature")
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        initial, step = pm.init_nuts(
            init="jitter+adapt_full",
            chains=chains,
            random_seed=seed,
            target_accept=target_accept,
            progressbar=False,
        )
        t1 = time.perf_counter()
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=1,
            step=step,
            initvals=initial,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
        ), t1


def _diagnostics(
    idata: Any,
    sampler: str,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    target_accept: float,
    compile_s: float,
    sample_s: float,
) -> Diagnostics:
    """Worst r_hat and ESS over the free parameters (the only ArviZ call); warnings."""
    import arviz as az

    table = az.summary(
        idata,
        var_names=[v for v in _FREE if v in idata.posterior],
        kind="diagnostics",
        round_to="none",
    )
    r_hat = float(table["r_hat"].max())
    ess_bulk, ess_tail = float(table["ess_bulk"].min()), float(table["ess_tail"].min())
    divergences = int(idata.sample_stats["diverging"].values.sum())
    warnings = []
    if chains < 2:
        warnings.append("r_hat needs at least 2 chains: convergence is unchecked; set chains: 2")
    elif not r_hat <= RHAT_MAX:
        warnings.append(
            f"poor convergence of the dose-response model: r_hat up to "
            f"{r_hat:.4f} (> {RHAT_MAX}); increase tune and draws"
        )
    if not min(ess_bulk, ess_tail) >= ESS_MIN:
        warnings.append(
            f"few effective draws in the dose-response model: ESS bulk "
            f"{ess_bulk:.0f}, tail {ess_tail:.0f} (< {ESS_MIN}); increase draws"
        )
    if divergences:
        warnings.append(
            f"{divergences} divergent transitions in the dose-response model at "
            f"target_accept {target_accept:g}: {divergence_advice(target_accept)}"
        )
    return Diagnostics(
        r_hat,
        ess_bulk,
        ess_tail,
        divergences,
        tuple(warnings),
        sampler,
        draws,
        tune,
        chains,
        seed,
        compile_s,
        sample_s,
    )
