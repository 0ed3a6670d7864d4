"""Non-inferiority of a guardrail: is the harm shown to be smaller than the tolerated margin?

A guardrail with ``margin: m`` (relative) is non-inferior when the test rejects "the
treatment is worse than the holdout by at least ``m``". For a metric that should decrease
(unsubscribes) the null is ``mu_t >= (1 + m) mu_h``, for one that should increase
``mu_t <= (1 - m) mu_h``. The statistic is Fieller's for the ratio ``rho0`` at the margin,
``(rho0 mu_h - mu_t) / sqrt(v_t + rho0^2 v_h)`` (sign by direction), referred to the normal
distribution, one-sided at ``alpha``: the same pivot as the relative interval on the page, so
the guardrail passes exactly when the one-sided Fieller bound at level ``1 - 2 alpha`` lies
inside the margin. Arm variances are the unadjusted ones (Welch's per-arm ``s^2 / n``, the
binomial ``p (1 - p) / n``, the delta method's for a ratio). With fewer than
``MIN_EVENTS`` expected events in an arm the normal pivot is not trusted and no claim is
made (``passed`` False, the reason given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from liftlab.stats.distributions import norm_sf

MIN_EVENTS = 10.0


@dataclass(frozen=True)
class NonInferiority:
    margin: float
    statistic: float
    p_value: float
    passed: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "passed": self.passed,
            "note": self.note,
            "method": "one-sided Fieller pivot at the margin (normal)",
        }


def non_inferiority(
    mean_t: float,
    var_t: float,
    mean_h: float,
    var_h: float,
    margin: float,
    desired: Literal["increase", "decrease"],
    alpha: float,
    events: float | None = None,
) -> NonInferiority:
    """The test above; ``var_*`` are the variances of the arm means, ``events`` the fewest
    expected events of an arm for a binary metric (None otherwise)."""
    if events is not None and events < MIN_EVENTS:
        return NonInferiority(
            margin,
            math.nan,
            math.nan,
            False,
            f"fewer than {MIN_EVENTS:g} expected events in an arm: non-inferiority is not claimed",
        )
    if not (mean_h > 0 and math.isfinite(mean_t) and var_t + var_h > 0):
        return NonInferiority(
            margin,
            math.nan,
            math.nan,
            False,
            "the holdout mean is not positive: a relative margin is undefined",
        )
    rho0 = 1 + margin if desired == "decrease" else 1 - margin
    sign = 1.0 if desired == "decrease" else -1.0
    z = sign * (rho0 * mean_h - mean_t) / math.sqrt(var_t + rho0 * rho0 * var_h)
    p = float(norm_sf(z))
    return NonInferiority(margin, z, p, p < alpha)
