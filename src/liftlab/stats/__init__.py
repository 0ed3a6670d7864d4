"""Statistics on sufficient statistics: one method family per module.

The public face for notebooks and other tools::

    from liftlab.stats import ArmStats, compare, adjust_pvalues

    t = ArmStats(n=5000, sum=61_250.0, sum_sq=9.1e6)      # per-unit revenue, treated
    h = ArmStats(n=5000, sum=55_000.0, sum_sq=8.7e6)      # holdout
    lift = compare(t, h, kind="mean")
    lift.abs, lift.abs_ci, lift.rel, lift.rel_ci, lift.p_value, lift.rel_p_value
"""

from __future__ import annotations

from typing import Literal

from liftlab.stats.frequentist import Lift, welch
from liftlab.stats.multiple import adjust_pvalues
from liftlab.stats.suffstats import ArmStats

__all__ = ["ArmStats", "Lift", "adjust_pvalues", "compare"]


def compare(treatment: ArmStats, holdout: ArmStats, *,
            kind: Literal["mean", "binary"] = "mean", alpha: float = 0.05) -> Lift:
    """Treatment vs holdout on one metric: absolute lift with its interval and p-value, and
    the relative lift with Fieller's interval and its own p-value (``rel_p_value``).

    ``kind="mean"``: Welch's test (CUPED when the arms carry a pre-period covariate);
    ``kind="binary"``: ``sum`` counts the units with an event; the pooled score test, or
    Fisher's exact test when an arm expects few events (``Lift.method`` says which)."""
    if kind == "binary":
        from liftlab.stats.proportions import binary

        return binary(treatment, holdout, alpha, cuped=_has_covariate(treatment, holdout))
    if kind != "mean":
        raise ValueError(f"kind must be 'mean' or 'binary', not {kind!r}")
    return welch(treatment, holdout, alpha, cuped=_has_covariate(treatment, holdout))


def _has_covariate(*arms: ArmStats) -> bool:
    return any(a.pre_sum_sq > 0 for a in arms)
