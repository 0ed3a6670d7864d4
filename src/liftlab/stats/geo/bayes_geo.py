"""Bayesian time-based regression in PyMC (``method: bayesian_tbr``).

TBR's model, ``y_t = a + b x_t + e_t`` with ``e_t ~ Normal(0, sigma)`` on the pre-period
(``y`` the treatment geos' total, ``x`` the controls' total, both divided by the treatment
pre-period mean so the priors are on a unit scale; ``x`` centred on its pre-period mean):
``a ~ Normal(1, 1)``,
``b ~ Normal(r, r)`` with ``r`` the pre-period ratio of the means, ``sigma ~ HalfNormal(0.5)``.
Each posterior draw gives the counterfactual of every measurement period with its own noise
(posterior predictive), so the cumulative effect's draws carry both the parameters' and
the periods' uncertainty. Intervals are equal-tailed; ``p_value`` is the two-sided posterior
tail probability ``2 min(P(effect > 0), P(effect < 0))``. Convergence (r_hat, ESS,
divergences) is read from ArviZ in one function.
"""

from __future__ import annotations

import numpy as np

from liftlab.stats.geo.common import GeoFit, check_shapes

RHAT_MAX, ESS_MIN = 1.01, 400


def fit(treated: np.ndarray, controls: np.ndarray, n_pre: int, alpha: float, draws: int = 1000,
        tune: int = 1000, chains: int = 2, seed: int = 20260223) -> GeoFit:
    import pymc as pm

    check_shapes(treated, controls, n_pre)
    y_all, x_all = treated.sum(axis=1), controls.sum(axis=1)
    scale = float(y_all[:n_pre].mean())
    y, x = y_all / scale, x_all / scale
    ratio = float(y[:n_pre].mean() / x[:n_pre].mean())
    xc = x - x[:n_pre].mean()  # centred: the intercept is the pre-period level (1)
    with pm.Model():
        a = pm.Normal("a", 1.0, 1.0)
        b = pm.Normal("b", ratio, abs(ratio))
        sigma = pm.HalfNormal("sigma", 0.5)
        pm.Normal("y", a + b * xc[:n_pre], sigma, observed=y[:n_pre])
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=1, random_seed=seed,
                          progressbar=False, compute_convergence_checks=False)
    post = idata.posterior
    a_d, b_d, s_d = (post[v].values.ravel() for v in ("a", "b", "sigma"))
    rng = np.random.default_rng(seed)
    mean_cf = a_d[:, None] + b_d[:, None] * xc[None, :]
    cf_draws = (mean_cf + rng.normal(size=mean_cf.shape) * s_d[:, None]) * scale
    effect = (y_all[None, n_pre:] - cf_draws[:, n_pre:]).cumsum(axis=1)
    lo_q, hi_q = alpha / 2, 1 - alpha / 2
    total = effect[:, -1]
    p_pos = float(np.mean(total > 0))
    return GeoFit(
        method="bayesian_tbr", observed=y_all.astype(float),
        counterfactual=mean_cf.mean(axis=0) * scale,
        band=(np.quantile(cf_draws, lo_q, axis=0), np.quantile(cf_draws, hi_q, axis=0)),
        cumulative=effect.mean(axis=0),
        cumulative_ci=(np.quantile(effect, lo_q, axis=0), np.quantile(effect, hi_q, axis=0)),
        effect=float(total.mean()),
        effect_ci=(float(np.quantile(total, lo_q)), float(np.quantile(total, hi_q))),
        se=float(total.std(ddof=1)), p_value=2 * min(p_pos, 1 - p_pos), n_pre=n_pre,
        inference=f"Bayesian TBR in PyMC (NUTS {chains}x{draws} draws, seed {seed}): "
                  "equal-tailed posterior predictive intervals; p is the two-sided posterior "
                  "tail probability",
        details={"slope": float(b_d.mean()), "level": float(a_d.mean() * scale),
                 "sigma": float(s_d.mean() * scale), "prob_positive": p_pos,
                 **convergence(idata)})


def convergence(idata: object) -> dict[str, object]:
    """Worst r_hat and ESS of the parameters and the divergences, with warnings (the one
    place this module calls ArviZ)."""
    import arviz as az

    table = az.summary(idata, var_names=["a", "b", "sigma"], kind="diagnostics")
    r_hat = float(table["r_hat"].max())
    ess = float(min(table["ess_bulk"].min(), table["ess_tail"].min()))
    divergences = int(idata.sample_stats["diverging"].values.sum())  # type: ignore[attr-defined]
    notes = []
    if not r_hat <= RHAT_MAX:
        notes.append(f"poor convergence: r_hat up to {r_hat:.3f}")
    if not ess >= ESS_MIN:
        notes.append(f"few effective draws: ESS {ess:.0f}")
    if divergences:
        notes.append(f"{divergences} divergent transitions")
    return {"r_hat": r_hat, "ess": ess, "divergences": divergences,
            "convergence_warnings": notes}
