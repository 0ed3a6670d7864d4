"""Return on a channel's spend: ROI = (incremental margin - cost) / cost and incremental ROAS
= incremental revenue / cost, with CIs. Cost is known, so the intervals are the increments'
intervals mapped through these linear functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liftlab.stats.bayes import prob_roi_positive
from liftlab.stats.frequentist import Lift


@dataclass(frozen=True)
class Roi:
    cost: float
    n_treated: int
    incremental_margin: float | None
    incremental_margin_ci: tuple[float, float] | None
    roi: float | None
    roi_ci: tuple[float, float] | None
    roas: float | None
    roas_ci: tuple[float, float] | None
    prob_roi_positive: float | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        def lst(v: tuple[float, float] | None) -> list[float] | None:
            return None if v is None else list(v)

        return {"cost": self.cost, "incremental_margin": self.incremental_margin,
                "incremental_margin_ci": lst(self.incremental_margin_ci), "roi": self.roi,
                "roi_ci": lst(self.roi_ci), "roas": self.roas, "roas_ci": lst(self.roas_ci),
                "prob_roi_positive": self.prob_roi_positive, "roi_note": self.note}


def channel_roi(margin: Lift, revenue: Lift, n_treated: int, cost: float) -> Roi:
    """``margin`` and ``revenue`` are per-unit lifts (treatment vs holdout)."""
    inc = margin.abs * n_treated if margin.ok else None
    inc_ci = (margin.abs_ci[0] * n_treated, margin.abs_ci[1] * n_treated) if margin.ok else None
    if cost <= 0:
        return Roi(cost, n_treated, inc, inc_ci, None, None, None, None, None,
                   "no cost recorded: ROI is undefined")
    roi = roi_ci = roas = roas_ci = prob = None
    if inc is not None and inc_ci is not None:
        roi = (inc - cost) / cost
        roi_ci = ((inc_ci[0] - cost) / cost, (inc_ci[1] - cost) / cost)
        prob = prob_roi_positive(margin.abs, margin.abs_se, n_treated, cost)
    if revenue.ok:
        roas = revenue.abs * n_treated / cost
        roas_ci = (revenue.abs_ci[0] * n_treated / cost, revenue.abs_ci[1] * n_treated / cost)
    return Roi(cost, n_treated, inc, inc_ci, roi, roi_ci, roas, roas_ci, prob)
