"""What a geo method returns, and diagnostics shared by the methods.

Every method sees the same arrays: ``treated`` (periods x treatment geos), ``controls``
(periods x control geos), the number of pre-period rows ``n_pre`` (the rest are the
measurement periods) and ``alpha``. It estimates the counterfactual of the treatment geos'
*total* over the measurement periods; ``effect`` = observed - counterfactual, per period
and cumulated, with the method's own two-sided interval at level 1 - alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Pair = tuple[float, float]


@dataclass(frozen=True)
class GeoFit:
    """One method's counterfactual of the treatment geos' total, and its effect."""

    method: str
    observed: np.ndarray  # treatment total per period (pre and measurement)
    counterfactual: np.ndarray  # same periods
    band: tuple[np.ndarray, np.ndarray]  # per-period interval of the counterfactual
    cumulative: np.ndarray  # cumulative effect over the measurement periods
    cumulative_ci: tuple[np.ndarray, np.ndarray]
    effect: float  # cumulative effect over all measurement periods
    effect_ci: Pair
    se: float | None  # None when the interval is not a normal/t interval
    p_value: float
    n_pre: int
    inference: str  # how the interval and p-value were found
    details: dict[str, Any] = field(default_factory=dict)  # method-specific fit figures

    @property
    def per_period(self) -> np.ndarray:
        return (self.observed - self.counterfactual)[self.n_pre :]

    @property
    def counterfactual_total(self) -> float:
        return float(self.counterfactual[self.n_pre :].sum())

    @property
    def observed_total(self) -> float:
        return float(self.observed[self.n_pre :].sum())

    def pre_mape(self) -> float:
        """Mean absolute percentage error of the fit over the pre-period."""
        y, f = self.observed[: self.n_pre], self.counterfactual[: self.n_pre]
        ok = y != 0
        return float(np.mean(np.abs(y[ok] - f[ok]) / np.abs(y[ok]))) if ok.any() else np.nan

    def pre_r2(self) -> float:
        y, f = self.observed[: self.n_pre], self.counterfactual[: self.n_pre]
        ss = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - f) ** 2)) / ss if ss > 0 else np.nan


def check_shapes(treated: np.ndarray, controls: np.ndarray, n_pre: int) -> None:
    """The arrays a method accepts (a caller's bug otherwise, not a user's mistake)."""
    if treated.ndim != 2 or controls.ndim != 2 or treated.shape[0] != controls.shape[0]:
        raise ValueError("treated and controls must be (periods x geos) with the same periods")
    if not 2 < n_pre < treated.shape[0]:
        raise ValueError(f"n_pre={n_pre} must leave pre and measurement periods")
    if treated.shape[1] < 1 or controls.shape[1] < 1:
        raise ValueError("at least one treatment and one control geo are needed")
