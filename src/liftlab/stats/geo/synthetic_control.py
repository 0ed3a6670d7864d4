"""Synthetic control with simplex weights and conformal inference.

The treatment geos' mean series ``y`` is matched over the pre-period by a convex
combination of the control geos, ``w >= 0``, ``sum w = 1`` (Abadie, Diamond and
Hainmueller 2010, without covariates). With ``demean`` each series' pre-period mean is
removed first, so the weights match the shape and the level is the treated geos' own (an
intercept shift: Doudchenko and Imbens 2016, GeoLift's fixed effects). The counterfactual of
the treatment geos' total is ``n_treated`` times the synthetic mean.

Inference is conformal (Chernozhukov, Wüthrich and Zhu 2021): under the null of a constant
relative effect ``rho`` (a campaign's effect scales with the day's traffic), the measurement
periods divided by ``1 + rho`` are the counterfactual; the weights are fitted on every
period under that null and the residuals' measurement-period sum of absolute values is
compared with that of every cyclic shift of the residuals in time (moving-block
permutations). The p-value of ``rho = 0`` is the test's; the interval is the set of ``rho``
not rejected at ``alpha``, mapped to the effect total ``observed * rho / (1 + rho)``.

Ridge augmentation (Ben-Michael, Feller and Rothstein 2021, augsynth's ``progfunc =
"Ridge"``) corrects the simplex weights' pre-period imbalance with a ridge regression of the
treated series on the controls: with the controls centred on their mean per period (``C``,
periods x controls) and ``a = y - C w`` the simplex fit's residual, the augmented weights are
``w + (C'C + lambda I)^-1 C' a``. They still sum to one but may be negative (the fit may
extrapolate beyond the controls' hull); ``lambda -> infinity`` gives back the simplex weights
and ``lambda -> 0`` fits the pre-period exactly when it is shorter than the control pool.
Unless given, ``lambda`` is chosen as augsynth does: on 21 values from the largest squared
singular value of ``C`` down to 1e-8 of it, leave-one-pre-period-out errors (the simplex
weights refitted without the period), the largest ``lambda`` whose mean error is within one
standard error of the smallest. The conformal refits keep the chosen ``lambda`` (as
augsynth's ``conformal_inf`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# scipy is imported inside the functions that use it: it takes up to a second to import,
# which ``liftlab validate`` and ``import liftlab.stats`` should not pay
from liftlab.stats.geo.common import GeoFit, check_shapes

BISECTIONS = 30
MAX_DOUBLINGS = 60
GRID = 20  # grid points each side of the estimate where the interval is looked for
BAND_POINTS = 8  # partial cumulative effects given an interval
N_LAMBDA = 20  # augsynth's lambda grid: N_LAMBDA + 1 values
LAMBDA_MIN_RATIO = 1e-8


def simplex_weights(controls: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``argmin ||target - controls @ w||`` over the simplex (``w >= 0``, ``sum w = 1``).

    Non-negative least squares on the system with one added row ``M * (sum w - 1)``; ``M``
    far above the data's scale makes the sum constraint binding to ~1e-12 relative, and the
    weights are renormalised to sum to exactly one."""
    from scipy.optimize import nnls

    scale = max(float(np.abs(controls).max()), float(np.abs(target).max()), 1.0)
    big = 1e6 * scale * np.sqrt(controls.shape[0])
    a = np.vstack([controls, np.full((1, controls.shape[1]), big)])
    b = np.append(target, big)
    w, _ = nnls(a, b, maxiter=50 * controls.shape[1])
    total = float(w.sum())
    if total <= 0:
        raise ValueError("the simplex fit failed (all weights zero)")
    return w / total


def ridge_augmented(
    controls: np.ndarray, target: np.ndarray, weights: np.ndarray, lam: float
) -> np.ndarray:
    """Simplex ``weights`` augmented by a ridge fit of their residual: ``w + (C'C + lam
    I)^-1 C' (target - C w)`` with ``C`` the controls centred on their mean per period
    (the centring leaves the sum of the weights at one)."""
    centred = controls - controls.mean(axis=1, keepdims=True)
    x1 = target - controls.mean(axis=1)
    a = x1 - centred @ weights
    periods, geos = centred.shape
    if periods < geos:  # the same correction, solved in the smaller dimension
        return weights + centred.T @ np.linalg.solve(centred @ centred.T + lam * np.eye(periods), a)
    return weights + np.linalg.solve(centred.T @ centred + lam * np.eye(geos), centred.T @ a)


@dataclass(frozen=True)
class RidgeChoice:
    """The ridge ``lambda`` chosen by leave-one-period-out cross-validation, with its grid."""

    lam: float
    lambdas: np.ndarray
    errors: np.ndarray  # mean squared error of the held-out period, per lambda
    errors_se: np.ndarray


def choose_lambda(controls: np.ndarray, target: np.ndarray) -> RidgeChoice:
    """augsynth's rule (``cv_lambda`` with ``holdout_length = 1``, ``min_1se = TRUE``) on
    the pre-period rows ``controls`` and ``target`` (already demeaned when asked)."""
    centred = controls - controls.mean(axis=1, keepdims=True)
    lam_max = float(np.linalg.svd(centred, compute_uv=False)[0] ** 2)
    lambdas = lam_max * (LAMBDA_MIN_RATIO ** (1 / N_LAMBDA)) ** np.arange(N_LAMBDA + 1)
    n = len(target)
    if n < 3:
        raise ValueError("choosing the ridge lambda needs at least 3 pre-periods")
    errors = np.empty((n - 1, len(lambdas)))
    for i in range(n - 1):  # augsynth holds out periods 1..n-1 (not the last)
        keep = np.arange(n) != i
        w = simplex_weights(controls[keep], target[keep])
        for j, lam in enumerate(lambdas):
            aug = ridge_augmented(controls[keep], target[keep], w, float(lam))
            errors[i, j] = (target[i] - controls[i] @ aug) ** 2
    mean, se = errors.mean(axis=0), errors.std(axis=0, ddof=1) / np.sqrt(n - 1)
    best = int(np.argmin(mean))
    lam = float(lambdas[mean <= mean[best] + se[best]].max())
    return RidgeChoice(lam, lambdas, mean, se)


def _weights(controls: np.ndarray, target: np.ndarray, ridge: float | None) -> np.ndarray:
    w = simplex_weights(controls, target)
    return w if ridge is None else ridge_augmented(controls, target, w, ridge)


def _fitted(
    y: np.ndarray,
    controls: np.ndarray,
    rows: slice | np.ndarray,
    demean: bool,
    ridge: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights fitted on ``rows`` (ridge-augmented with ``lambda = ridge`` unless None) and
    the synthetic series for every period."""
    if demean:
        my, mc = float(y[rows].mean()), controls[rows].mean(axis=0)
        w = _weights(controls[rows] - mc, y[rows] - my, ridge)
        return w, my + (controls - mc) @ w
    w = _weights(controls[rows], y[rows], ridge)
    return w, controls @ w


def conformal_p(
    y: np.ndarray,
    controls: np.ndarray,
    n_pre: int,
    rho: float,
    demean: bool,
    ridge: float | None = None,
) -> float:
    """The permutation p-value of a constant relative effect ``rho`` in the measurement
    periods (their values divided by ``1 + rho`` are the counterfactual under the null)."""
    z = y.astype(float).copy()
    z[n_pre:] /= 1 + rho
    _, fitted = _fitted(z, controls, slice(None), demean, ridge)
    u = np.abs(z - fitted)
    n, post = len(u), len(u) - n_pre
    # every cyclic shift's sum over the last ``post`` positions, from one cumulative sum
    doubled = np.concatenate([u, u])
    csum = np.concatenate([[0.0], np.cumsum(doubled)])
    starts = (n_pre - np.arange(n)) % n
    shifted = csum[starts + post] - csum[starts]
    observed = shifted[0]
    return float(np.mean(shifted >= observed - 1e-12 * max(1.0, abs(observed))))


def conformal_interval(
    p: Callable[[float], float], centre: float, step: float, alpha: float
) -> tuple[float, float]:
    """The ends of {rho: p(rho) > alpha}: the accepted points of a grid around ``centre``,
    each end widened by doubling and refined by bisection; an infinite end when nothing on
    that side is rejected, NaN ends when every grid point is rejected."""
    grid = centre + step * np.arange(-GRID, GRID + 1)
    grid = grid[grid > -1 + 1e-9]
    accepted = [g for g in grid if p(float(g)) > alpha]
    if not accepted:
        return np.nan, np.nan
    ends = []
    for sign, start in ((-1.0, min(accepted)), (1.0, max(accepted))):
        inside, width = start, step
        for _ in range(MAX_DOUBLINGS):
            probe = start + sign * width
            if probe <= -1 or p(probe) <= alpha:
                break
            inside, width = probe, width * 2
        else:
            ends.append(sign * np.inf)
            continue
        outside = max(start + sign * width, -1 + 1e-12)
        for _ in range(BISECTIONS):
            mid = (inside + outside) / 2
            if p(mid) > alpha:
                inside = mid
            else:
                outside = mid
        ends.append((inside + outside) / 2)
    return ends[0], ends[1]


def fit(
    treated: np.ndarray,
    controls: np.ndarray,
    n_pre: int,
    alpha: float,
    demean: bool = False,
    cumulative_band: bool = True,
    augment: bool = False,
    ridge_lambda: float | None = None,
) -> GeoFit:
    """Synthetic control of the treatment geos' total with conformal inference on a
    constant relative effect; ``cumulative_band=False`` computes the interval of the whole
    measurement only (else also of partial cumulative effects at up to BAND_POINTS
    periods). ``augment`` adds the ridge augmentation, with ``ridge_lambda`` or, when None,
    the cross-validated one."""
    check_shapes(treated, controls, n_pre)
    if ridge_lambda is not None and not augment:
        raise ValueError("ridge_lambda is the ridge augmentation's: set augment")
    n_treated = treated.shape[1]
    y = treated.mean(axis=1)
    ridge, augmentation = _ridge(y, controls, n_pre, demean, augment, ridge_lambda)
    w, synth = _fitted(y, controls, slice(0, n_pre), demean, ridge)
    gap = y - synth
    post = len(y) - n_pre
    rel_sd = float(np.sqrt(np.mean((gap[:n_pre] / np.where(y[:n_pre] != 0, y[:n_pre], 1)) ** 2)))
    step = max(rel_sd, 1e-6) / np.sqrt(post) / 2

    def interval(k: int) -> tuple[float, float]:
        rows = n_pre + k
        observed = float(y[n_pre:rows].sum())
        centre = float(gap[n_pre:rows].sum() / synth[n_pre:rows].sum())
        lo, hi = conformal_interval(
            lambda r: conformal_p(y[:rows], controls[:rows], n_pre, r, demean, ridge),
            centre,
            step * np.sqrt(post / k),
            alpha,
        )
        # the effect total is observed * rho / (1 + rho), increasing in rho
        return (n_treated * observed * lo / (1 + lo), n_treated * observed * hi / (1 + hi))

    ks = (
        sorted({int(k) for k in np.linspace(1, post, min(post, BAND_POINTS)).round()})
        if cumulative_band
        else [post]
    )
    ends = dict(zip(ks, map(interval, ks), strict=True))
    cum = np.cumsum(gap[n_pre:]) * n_treated
    lo = np.array([ends.get(k, (np.nan, np.nan))[0] for k in range(1, post + 1)])
    hi = np.array([ends.get(k, (np.nan, np.nan))[1] for k in range(1, post + 1)])
    q = float(np.quantile(np.abs(gap[:n_pre]), 1 - alpha)) * n_treated
    cf = synth * n_treated
    uniform = np.full(controls.shape[1], 1 / controls.shape[1])
    return GeoFit(
        method="synthetic_control",
        observed=treated.sum(axis=1).astype(float),
        counterfactual=cf,
        band=(cf - q, cf + q),
        cumulative=cum,
        cumulative_ci=(lo, hi),
        effect=float(cum[-1]),
        effect_ci=(float(lo[-1]), float(hi[-1])),
        se=None,
        p_value=conformal_p(y, controls, n_pre, 0.0, demean, ridge),
        n_pre=n_pre,
        inference="conformal inference on a constant relative effect: moving-block "
        "permutations of the residuals of a fit under each effect (Chernozhukov, "
        "Wüthrich and Zhu 2021); per-period band: pre-period residual quantile"
        + (
            "; weights ridge-augmented (Ben-Michael, Feller and Rothstein 2021), lambda "
            "kept in the refits"
            if ridge is not None
            else ""
        ),
        details={
            "weights": w,
            "demean": demean,
            "scaled_l2_imbalance": _imbalance(y, controls, w, uniform, n_pre, demean),
            "outside_hull": _outside_hull(y, controls, n_pre, demean),
            **augmentation,
        },
    )


def _ridge(
    y: np.ndarray,
    controls: np.ndarray,
    n_pre: int,
    demean: bool,
    augment: bool,
    given: float | None,
) -> tuple[float | None, dict[str, object]]:
    """The ridge lambda of the fit (None without augmentation) and its fit details: the
    lambda, the rule that chose it and the simplex weights before augmentation."""
    if not augment:
        return None, {}
    yp, cp = y[:n_pre], controls[:n_pre]
    if demean:
        yp, cp = yp - yp.mean(), cp - cp.mean(axis=0)
    choice = None if given is not None else choose_lambda(cp, yp)
    lam = given if choice is None else choice.lam
    details: dict[str, object] = {
        "augment": "ridge",
        "ridge_lambda": lam,
        "ridge_lambda_rule": "given"
        if choice is None
        else "leave-one-period-out cross-validation, largest within one standard error",
        "simplex_weights": simplex_weights(cp, yp),
    }
    return lam, details


def _imbalance(
    y: np.ndarray,
    controls: np.ndarray,
    w: np.ndarray,
    uniform: np.ndarray,
    n_pre: int,
    demean: bool,
) -> float:
    """Pre-period imbalance of the weights relative to equal weights (Ben-Michael, Feller
    and Rothstein 2021): 0 is a perfect fit, 1 no better than the plain average of the
    controls."""
    yp, cp = y[:n_pre], controls[:n_pre]
    if demean:
        yp, cp = yp - yp.mean(), cp - cp.mean(axis=0)
    base = float(np.linalg.norm(yp - cp @ uniform))
    return float(np.linalg.norm(yp - cp @ w) / base) if base > 0 else 0.0


def _outside_hull(y: np.ndarray, controls: np.ndarray, n_pre: int, demean: bool) -> float:
    """The share of pre-periods where the treated series lies above every control or below
    every control: no convex combination can follow it there."""
    yp, cp = y[:n_pre], controls[:n_pre]
    if demean:
        yp, cp = yp - yp.mean(), cp - cp.mean(axis=0)
    return float(np.mean((yp > cp.max(axis=1)) | (yp < cp.min(axis=1))))
