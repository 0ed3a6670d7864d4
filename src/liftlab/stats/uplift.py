"""Uplift models: the effect of each action (a channel's arm) for each customer, learned on a
randomised experiment by meta-learners on scikit-learn's gradient boosting.

Every prediction is cross-fitted: the customers are split into folds and a customer's effects
come from models fitted on the other folds only, so no customer is scored by a model that saw
its outcome (the curves and the policy value evaluated on those predictions stay honest).

- T-learner: one outcome model per arm; effect = mu_a(x) - mu_0(x).
- X-learner (Kuenzel et al. 2019): imputed effects in each arm, regressed on x, combined with
  the design's arm shares as weights.
- DR-learner (Kennedy 2023): the doubly robust (AIPW) pseudo-outcome of each action, regressed
  on x; its outcome models are cross-fitted inside the training folds. The propensities are the
  design's arm shares (randomised assignment), not estimated.

The out-of-fold outcome models (``mu``) are returned too: the policy value and the
multi-armed curve are evaluated on AIPW scores built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Learner = Literal["t", "x", "dr"]
# Gradient boosting settings: fixed so a rerun gives the same predictions; modest depth and
# strong regularisation because an effect is a small difference of two noisy outcomes.
BOOSTING = dict(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=100,
                l2_regularization=1.0)


@dataclass(frozen=True)
class UpliftData:
    """One row per customer: features, outcome and arm (0 = holdout, 1..K = the actions).

    ``shares`` are the design's planned arm fractions (holdout first), used as propensities.
    """

    x: np.ndarray
    categorical: tuple[bool, ...]
    y: np.ndarray
    arm: np.ndarray
    shares: tuple[float, ...]

    @property
    def n_actions(self) -> int:
        return len(self.shares) - 1


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold predictions: ``tau`` (n, K) effects of each action, ``mu`` (n, K+1) outcome
    under each arm, and the fold of each customer."""

    tau: np.ndarray
    mu: np.ndarray
    fold: np.ndarray


def _model(data: UpliftData, seed: int):  # -> HistGradientBoostingRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor

    mask = np.array(data.categorical, dtype=bool)
    return HistGradientBoostingRegressor(
        **BOOSTING, categorical_features=mask if mask.any() else None, random_state=seed)


def _fit_predict(data: UpliftData, rows: np.ndarray, target: np.ndarray, predict_on: np.ndarray,
                 seed: int) -> np.ndarray:
    """Fit on ``rows`` (with ``target`` for them) and predict for ``predict_on``; a constant
    when the rows are too few to split (the mean of the target)."""
    if rows.size < 2 * BOOSTING["min_samples_leaf"]:
        return np.full(predict_on.size, float(target.mean()) if target.size else 0.0)
    model = _model(data, seed).fit(data.x[rows], target)
    return model.predict(data.x[predict_on])


def _outcome_models(data: UpliftData, train: np.ndarray, predict_on: np.ndarray,
                    seed: int) -> np.ndarray:
    """mu_a(x) for every arm a, fitted on the training rows of that arm."""
    out = np.empty((predict_on.size, data.n_actions + 1))
    for a in range(data.n_actions + 1):
        rows = train[data.arm[train] == a]
        out[:, a] = _fit_predict(data, rows, data.y[rows], predict_on, seed + a)
    return out


def aipw_scores(y: np.ndarray, arm: np.ndarray, mu: np.ndarray,
                shares: tuple[float, ...]) -> np.ndarray:
    """Doubly robust score of each action's effect per customer, (n, K): its mean over the
    customers estimates the action's average effect whatever the outcome models' errors
    (the propensities are known)."""
    n, k1 = mu.shape
    resid = y - mu[np.arange(n), arm]
    base = mu[:, 0] + np.where(arm == 0, resid / shares[0], 0.0)
    return np.stack([mu[:, a] + np.where(arm == a, resid / shares[a], 0.0) - base
                     for a in range(1, k1)], axis=1)


def _x_learner(data: UpliftData, train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    mu_train = _outcome_models(data, train, train, seed)
    position = np.empty(data.y.size, dtype=np.int64)
    position[train] = np.arange(train.size)
    control = train[data.arm[train] == 0]
    out = np.empty((test.size, data.n_actions))
    for a in range(1, data.n_actions + 1):
        treated = train[data.arm[train] == a]
        d1 = data.y[treated] - mu_train[position[treated], 0]
        d0 = mu_train[position[control], a] - data.y[control]
        tau1 = _fit_predict(data, treated, d1, test, seed + 100 + a)
        tau0 = _fit_predict(data, control, d0, test, seed + 200 + a)
        g = data.shares[a] / (data.shares[a] + data.shares[0])
        out[:, a - 1] = g * tau0 + (1.0 - g) * tau1
    return out


def _dr_learner(data: UpliftData, train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    inner = np.random.default_rng(seed).permutation(train)
    halves = np.array_split(inner, 2)
    mu = np.empty((train.size, data.n_actions + 1))
    position = np.empty(data.y.size, dtype=np.int64)
    position[train] = np.arange(train.size)
    for k, half in enumerate(halves):
        other = halves[1 - k]
        mu[position[half]] = _outcome_models(data, other, half, seed + 300 + k)
    scores = aipw_scores(data.y[train], data.arm[train], mu, data.shares)
    return np.stack([_fit_predict(data, train, scores[:, a], test, seed + 400 + a)
                     for a in range(data.n_actions)], axis=1)


LEARNERS = {"x": _x_learner, "dr": _dr_learner}


def cross_fit(data: UpliftData, learner: Learner = "dr", folds: int = 5,
              seed: int = 0) -> CrossFit:
    """Out-of-fold effects and outcome models for every customer (folds stratified by arm)."""
    n = data.y.size
    rng = np.random.default_rng(seed)
    fold = np.empty(n, dtype=np.int64)
    for a in range(data.n_actions + 1):  # each arm spread evenly over the folds
        rows = np.flatnonzero(data.arm == a)
        fold[rng.permutation(rows)] = np.arange(rows.size) % folds
    tau = np.empty((n, data.n_actions))
    mu = np.empty((n, data.n_actions + 1))
    from threadpoolctl import threadpool_limits

    # One OpenMP thread per fit: the boosting's threads spin while they wait, and beside any
    # other busy process (a test worker, a second job) a fit on thousands of rows measured 45
    # times slower with two threads than with one on a 2-core machine.
    with threadpool_limits(limits=1, user_api="openmp"):
        _fit_folds(data, learner, fold, folds, seed, tau, mu)
    return CrossFit(tau, mu, fold)


def _fit_folds(data: UpliftData, learner: Learner, fold: np.ndarray, folds: int, seed: int,
               tau: np.ndarray, mu: np.ndarray) -> None:
    for k in range(folds):
        test = np.flatnonzero(fold == k)
        train = np.flatnonzero(fold != k)
        mu[test] = _outcome_models(data, train, test, seed + 1000 * k)
        tau[test] = (mu[test, 1:] - mu[test, :1] if learner == "t"  # the T-learner is mu
                     else LEARNERS[learner](data, train, test, seed + 1000 * k + 500))
