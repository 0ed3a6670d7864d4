"""Multiple comparisons: adjusted p-values and the interval level that matches each of them.

A daily report makes many comparisons (channels x variants x metrics x segments); at a raw
alpha each, some will be "significant" by chance. Two corrections (equal to statsmodels'
``multipletests``, which the tests check; it is not called here because it runs a full
garbage collection on every call, 0.1-0.2 s in a process holding the analysis):

- ``holm``: Holm's step-down, controlling the family-wise error rate. The interval of the
  k-th smallest p-value is drawn at the level Holm tested it at, alpha / (m - k + 1), when it
  is rejected, and at Bonferroni's alpha / m otherwise. A rejected hypothesis then has an
  interval that excludes zero and a retained one an interval that covers it (its p-value is
  at least the first retained p, which is at least alpha / m), so the interval and the
  adjusted p-value always agree.
- ``bh``: Benjamini-Hochberg, controlling the false discovery rate, with the false-coverage-
  rate intervals of Benjamini and Yekutieli (2005): every interval of the family at level
  R * alpha / m, where R is the number of rejections (alpha / m when there is none). The
  rejected p-values are at most R * alpha / m and the retained ones above it, so again the
  intervals agree with the decisions.

NaN p-values (comparisons that could not be estimated) are left out of the family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

Method = Literal["holm", "bh"]


def adjust_pvalues(pvalues: Sequence[float], method: Method = "holm") -> list[float]:
    """Adjusted p-values in input order (NaN stays NaN and is not counted in the family)."""
    if method not in ("holm", "bh"):
        raise ValueError(f"unknown method {method!r}; use 'holm' or 'bh'")
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = _holm(p[ok]) if method == "holm" else _bh(p[ok])
    return [float(v) for v in out]


def _holm(p: np.ndarray) -> np.ndarray:
    """max over the smaller p-values of (m - k + 1) p_(k), capped at 1."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(steps, 1.0)
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    """min over the larger p-values of m p_(k) / k, capped at 1."""
    m = len(p)
    order = np.argsort(p, kind="stable")[::-1]
    steps = np.minimum.accumulate(m * p[order] / np.arange(m, 0, -1))
    out = np.empty(m)
    out[order] = np.minimum(steps, 1.0)
    return out


def interval_alphas(pvalues: Sequence[float], method: Method, alpha: float) -> list[float]:
    """The alpha at which each comparison's interval is drawn so that it excludes zero exactly
    when its adjusted p-value is below ``alpha`` (input order; NaN p-values get ``alpha``)."""
    p = np.asarray(pvalues, dtype=float)
    idx = [i for i in range(len(p)) if not math.isnan(p[i])]
    m = len(idx)
    out = [alpha] * len(p)
    if m == 0:
        return out
    adjusted = adjust_pvalues(p[idx], method)
    rejected = [a < alpha for a in adjusted]
    if method == "bh":
        level = max(sum(rejected), 1) * alpha / m
        for i in idx:
            out[i] = level
        return out
    order = sorted(range(m), key=lambda j: p[idx[j]])
    for rank, j in enumerate(order):
        out[idx[j]] = alpha / (m - rank) if rejected[j] else alpha / m
    return out
