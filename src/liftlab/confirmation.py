"""The readout of a confirmation experiment: did the targeting policy earn what ``liftlab
target`` predicted? Customers were randomised to the policy, to business as usual (the default
option sent to everyone) and to a holdout; the realised gain per customer is the difference of
the two treated arms' means, in value units, minus the difference of their contact costs."""

from __future__ import annotations

import math
from typing import Any

from scipy import stats as sps

from liftlab.cells import CellTable
from liftlab.spec import Experiment
from liftlab.stats.frequentist import welch


def confirmation_readout(spec: Experiment, cells: CellTable) -> dict[str, Any]:
    """Realised vs predicted gain of the policy over business as usual (per customer)."""
    c = spec.confirmation
    assert c is not None
    policy = cells.arm_stats(c.metric, cells.where({c.channel: "policy"}))
    bau = cells.arm_stats(c.metric, cells.where({c.channel: "bau"}))
    lift = welch(policy, bau, spec.alpha)
    extra_cost = c.cost_per_customer.get("policy", 0.0) - c.cost_per_customer.get("bau", 0.0)
    z = float(sps.norm.ppf(1 - spec.alpha / 2))
    out: dict[str, Any] = {
        "source": c.source, "bau": c.bau, "metric": c.metric, "value_per_unit": c.value_per_unit,
        "n_policy": policy.n, "n_bau": bau.n, "extra_cost_per_customer": extra_cost,
        "predicted_gain": c.predicted_gain, "predicted_gain_ci": list(c.predicted_gain_ci)}
    if not lift.ok:
        return {**out, "realised_gain": None, "realised_gain_ci": None, "error": lift.error}
    realised = c.value_per_unit * lift.abs - extra_cost
    se_r = c.value_per_unit * lift.abs_se
    se_p = (c.predicted_gain_ci[1] - c.predicted_gain_ci[0]) / (2 * z)
    se_d = math.hypot(se_r, se_p)
    gap = realised - c.predicted_gain
    p = float(2 * sps.norm.sf(abs(gap) / se_d)) if se_d > 0 else math.nan
    return {**out, "realised_gain": realised,
            "realised_gain_ci": [c.value_per_unit * lift.abs_ci[0] - extra_cost,
                                 c.value_per_unit * lift.abs_ci[1] - extra_cost],
            "realised_minus_predicted": gap,
            "realised_minus_predicted_ci": [gap - z * se_d, gap + z * se_d],
            "p_value": p, "consistent": bool(p >= spec.alpha) if math.isfinite(p) else None,
            "method": "Welch difference of the policy and business-as-usual arms; the gap to "
                      "the prediction by a normal test with both standard errors"}
