"""The readout of a confirmation experiment: did the targeting policy earn what ``liftlab
target`` predicted? Customers were randomised to the policy, to business as usual (the default
option sent to everyone) and to a holdout; the realised gain per customer is the difference of
the two treated arms' means, in value units, minus the difference of their contact costs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from liftlab.analyses.cells import CellTable
from liftlab.spec.models import Experiment
from liftlab.stats.distributions import norm_ppf, norm_sf
from liftlab.stats.frequentist import welch


@dataclass(frozen=True)
class ConfirmationReadout:
    """Realised vs predicted gain of the policy over business as usual, per customer."""

    source: str
    bau: str
    metric: str
    value_per_unit: float
    n_policy: int
    n_bau: int
    extra_cost_per_customer: float
    predicted_gain: float
    predicted_gain_ci: tuple[float, float]
    realised_gain: float | None = None
    realised_gain_ci: tuple[float, float] | None = None
    gap: float | None = None  # realised minus predicted
    gap_ci: tuple[float, float] | None = None
    p_value: float | None = None
    error: str | None = None
    alpha_used: float = 0.05

    @property
    def consistent(self) -> bool | None:
        """The realised gain does not contradict the prediction (the gap is not significant);
        None when either could not be estimated."""
        if self.p_value is None or not math.isfinite(self.p_value):
            return None
        return self.p_value >= self.alpha_used


def confirmation_readout(spec: Experiment, cells: CellTable) -> ConfirmationReadout:
    c = spec.confirmation
    assert c is not None
    policy = cells.arm_stats(c.metric, cells.where({c.channel: "policy"}))
    bau = cells.arm_stats(c.metric, cells.where({c.channel: "bau"}))
    lift = welch(policy, bau, spec.alpha)
    extra = c.cost_per_customer.get("policy", 0.0) - c.cost_per_customer.get("bau", 0.0)
    base = ConfirmationReadout(c.source, c.bau, c.metric, c.value_per_unit, policy.n, bau.n,
                               extra, c.predicted_gain, c.predicted_gain_ci,
                               alpha_used=spec.alpha)
    if not lift.ok:
        return _replace(base, error=lift.error)
    z = float(norm_ppf(1 - spec.alpha / 2))
    realised = c.value_per_unit * lift.abs - extra
    se_d = math.hypot(c.value_per_unit * lift.abs_se,
                      (c.predicted_gain_ci[1] - c.predicted_gain_ci[0]) / (2 * z))
    gap = realised - c.predicted_gain
    return _replace(
        base, realised_gain=realised,
        realised_gain_ci=(c.value_per_unit * lift.abs_ci[0] - extra,
                          c.value_per_unit * lift.abs_ci[1] - extra),
        gap=gap, gap_ci=(gap - z * se_d, gap + z * se_d),
        p_value=float(2 * norm_sf(abs(gap) / se_d)) if se_d > 0 else math.nan)


def _replace(r: ConfirmationReadout, **changes: object) -> ConfirmationReadout:
    from dataclasses import replace

    return replace(r, **changes)  # type: ignore[arg-type]
