"""Return on a channel's spend, from its per-customer increments and its (known) cost.

ROI = (incremental margin - cost) / cost and incremental ROAS = incremental revenue / cost,
where an increment in total is the per-treated-customer increment times the number treated.
Cost is a known constant, so both are linear maps of one estimated increment: the delta
method is exact, the standard error is ``n * se / cost`` and the CI is the increment's CI
mapped through the same line. A zero or unknown cost leaves ROI and ROAS undefined (None,
with the reason); zero and negative increments are reported as they are (ROI -1 = the whole
cost is lost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from liftlab.stats.bayes import prob_roi_positive
from liftlab.stats.contribution import Estimate
from liftlab.stats.frequentist import Lift

Pair = tuple[float, float]


@dataclass(frozen=True)
class Increment:
    """An incremental quantity per treated customer (with its CI) and in total."""

    per_customer: float
    se: float
    ci: Pair
    n_treated: int

    @property
    def total(self) -> float:
        return self.per_customer * self.n_treated

    @property
    def total_ci(self) -> Pair:
        return (self.ci[0] * self.n_treated, self.ci[1] * self.n_treated)

    @classmethod
    def of(cls, effect: Lift | Estimate, n_treated: int) -> Increment | None:
        """From a treatment-vs-holdout ``Lift`` (its Welch CI) or a contribution ``Estimate``;
        None when the comparison could not be estimated."""
        if isinstance(effect, Lift):
            if not effect.ok:
                return None
            value, se, ci = effect.abs, effect.abs_se, effect.abs_ci
        else:
            value, se, ci = effect.value, effect.se, effect.ci
        if not math.isfinite(value):
            return None
        return cls(float(value), float(se), (float(ci[0]), float(ci[1])), n_treated)



@dataclass(frozen=True)
class ChannelRoi:
    """Increments, cost, ROI and ROAS of one channel; ``note`` says why a figure is None."""

    cost: float
    n_treated: int
    margin: Increment | None
    revenue: Increment | None
    orders: Increment | None
    roi: float | None
    roi_se: float | None
    roi_ci: Pair | None
    roas: float | None
    roas_se: float | None
    roas_ci: Pair | None
    prob_roi_positive: float | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Fields merged into a results.json ``effects`` item (the primary metric's)."""
        out: dict[str, Any] = {
            "cost": self.cost, "n_treated": self.n_treated,
            "cost_per_treated": self.cost / self.n_treated if self.n_treated else None,
            "roi": self.roi, "roi_se": self.roi_se, "roi_ci": _lst(self.roi_ci),
            "roas": self.roas, "roas_se": self.roas_se, "roas_ci": _lst(self.roas_ci),
            "prob_roi_positive": self.prob_roi_positive, "roi_note": self.note}
        for name, inc in (("margin", self.margin), ("revenue", self.revenue),
                          ("orders", self.orders)):
            out.update({f"incremental_{name}_per_customer": None,
                        f"incremental_{name}_per_customer_ci": None,
                        f"incremental_{name}": None, f"incremental_{name}_ci": None}
                       if inc is None else
                       {f"incremental_{name}_per_customer": inc.per_customer,
                        f"incremental_{name}_per_customer_ci": list(inc.ci),
                        f"incremental_{name}": inc.total,
                        f"incremental_{name}_ci": list(inc.total_ci)})
        return out


def channel_roi(margin: Lift | Estimate, revenue: Lift | Estimate, n_treated: int, cost: float,
                orders: Lift | Estimate | None = None) -> ChannelRoi:
    """ROI and ROAS of a channel from its per-treated-customer margin and revenue increments
    (``Lift`` of treatment vs holdout, or a factorial main effect), the number of treated
    customers and the campaign's cost (contacts x cost per contact, or the contacts table's
    summed cost). Pass the revenue increment as ``margin`` when the data has no margin."""
    m = Increment.of(margin, n_treated)
    r = Increment.of(revenue, n_treated)
    o = Increment.of(orders, n_treated) if orders is not None else None
    reason = _cost_problem(cost)
    if reason is None and m is None:
        reason = "the margin increment could not be estimated: ROI is undefined"
    roi = roi_se = roi_ci = prob = None
    if reason is None and m is not None:
        roi = (m.total - cost) / cost
        roi_se = m.se * n_treated / cost
        roi_ci = ((m.total_ci[0] - cost) / cost, (m.total_ci[1] - cost) / cost)
        prob = prob_roi_positive(m.per_customer, m.se, n_treated, cost)
    roas = roas_se = roas_ci = None
    if _cost_problem(cost) is None and r is not None:
        roas = r.total / cost
        roas_se = r.se * n_treated / cost
        roas_ci = (r.total_ci[0] / cost, r.total_ci[1] / cost)
    return ChannelRoi(cost, n_treated, m, r, o, roi, roi_se, roi_ci, roas, roas_se, roas_ci,
                      prob, reason)


def _cost_problem(cost: float) -> str | None:
    if not math.isfinite(cost):
        return f"the cost is not a number ({cost}): ROI and ROAS are undefined"
    if cost < 0:
        return (f"the cost is negative ({cost:g}): ROI and ROAS are undefined; check the "
                "contacts table's cost column or cost_per_contact")
    if cost == 0:
        return ("no cost recorded (0): ROI and ROAS are undefined; set cost_per_contact or "
                "fill the contacts table's cost column")
    return None


def _lst(pair: Pair | None) -> list[float] | None:
    return None if pair is None else list(pair)
