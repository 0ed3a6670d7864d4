"""Cross-channel credit: where each channel's measured increment was bought, what last-touch
attribution would have credited instead (the export of lifts for marketing-mix models is
calibration.py).

The increment per purchase channel comes from the experiment (treatment vs holdout on the
revenue bought in that purchase channel); last-touch credit comes from the data (each order
credited to the customer's last contact within a look-back). Side by side they show the
over- or under-claim of last-touch reporting (a catalog whose increment is bought on the web
gets no last-touch credit when the web visit is the last touch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from liftlab.stats.contribution import Estimate, contrast
from liftlab.stats.suffstats import ArmStats

ADDITIVITY_RTOL = 1e-9


@dataclass(frozen=True)
class LandedIncrement:
    """The increment bought in one purchase channel, per treated customer."""

    purchase_channel: str
    estimate: Estimate


@dataclass(frozen=True)
class Landing:
    """Where a channel's increment landed: one row per purchase channel, and the total."""

    n_treated: int
    rows: tuple[LandedIncrement, ...]
    total: Estimate

    def to_dicts(self, channel: str, variant: str | None = None,
                 last_touch: pl.DataFrame | None = None) -> list[dict[str, Any]]:
        """results.json ``landing`` rows (totals over the treated customers), each next to the
        revenue last-touch credits to ``channel`` in that purchase channel and the claim ratio
        (last-touch / measured; > 1 over-claims, None when the increment is not positive)."""
        out = []
        for row in self.rows:
            total = row.estimate.scaled(self.n_treated)
            credited = None
            if last_touch is not None:
                hit = last_touch.filter((pl.col("credited_channel") == channel)
                                        & (pl.col("purchase_channel") == row.purchase_channel))
                credited = float(hit["revenue"].sum())
            out.append({"channel": channel, "variant": variant,
                        "purchase_channel": row.purchase_channel,
                        "incremental_revenue": total.value, "ci": list(total.ci),
                        "incremental_revenue_per_customer": row.estimate.value,
                        "share_of_increment": (row.estimate.value / self.total.value
                                               if self.total.value else None),
                        "last_touch_revenue": credited,
                        "claim_ratio": (credited / total.value
                                        if credited is not None and total.value > 0 else None)})
        return out


def landing_by_purchase_channel(treated: Mapping[str, ArmStats], holdout: Mapping[str, ArmStats],
                                treated_total: ArmStats, holdout_total: ArmStats,
                                alpha: float = 0.05) -> Landing:
    """Incremental revenue per treated customer landed in each purchase channel, from each
    arm's revenue statistics per purchase channel; the total row comes from the total revenue's
    statistics (its variance needs the cross-channel covariance the parts do not carry).

    The per-channel increments add up to the total increment exactly, as long as the
    purchase-channel revenues add up to the total revenue in each arm (checked)."""
    missing = sorted(set(treated) ^ set(holdout))
    if missing:
        message = (f"purchase channels {missing} are in one arm only; give both arms the same "
                   "purchase channels (zero revenue is a valid value)")
        raise ValueError(message)
    for arm, parts, whole in (("treatment", treated, treated_total),
                              ("holdout", holdout, holdout_total)):
        _check_parts(arm, parts, whole)
    rows = tuple(LandedIncrement(pc, contrast({(True,): treated[pc], (False,): holdout[pc]},
                                              {(True,): 1.0, (False,): -1.0}, alpha))
                 for pc in sorted(treated))
    total = contrast({(True,): treated_total, (False,): holdout_total},
                     {(True,): 1.0, (False,): -1.0}, alpha)
    return Landing(treated_total.n, rows, total)


def _check_parts(arm: str, parts: Mapping[str, ArmStats], whole: ArmStats) -> None:
    wrong_n = {pc: s.n for pc, s in parts.items() if s.n != whole.n}
    if wrong_n:
        message = (f"{arm}: purchase-channel statistics must cover every unit of the arm "
                   f"({whole.n}), got {wrong_n}; count units without such orders as zero")
        raise ValueError(message)
    parts_sum = math.fsum(s.sum for s in parts.values())
    scale = math.fsum(abs(s.sum) for s in parts.values()) + abs(whole.sum)
    if abs(parts_sum - whole.sum) > ADDITIVITY_RTOL * max(scale, 1.0):
        message = (f"{arm}: revenue by purchase channel adds up to {parts_sum:,.2f}, not to "
                   f"the total revenue {whole.sum:,.2f}; orders without a listed purchase "
                   "channel need their own channel value")
        raise ValueError(message)


