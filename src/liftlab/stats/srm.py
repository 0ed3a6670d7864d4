"""Sample ratio mismatch: are the arms the size the design says?

A chi-square goodness-of-fit test of the observed arm counts against the planned fractions.
A tiny p-value means the assignment or the data pipeline is broken, and every lift estimate
of that channel is suspect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liftlab.stats.distributions import chisquare_p

SRM_ALPHA = 0.001


@dataclass(frozen=True)
class SrmCheck:
    channel: str
    observed: dict[str, int]
    expected: dict[str, float]
    p_value: float
    alpha: float = SRM_ALPHA

    @property
    def ok(self) -> bool:
        return not (self.p_value < self.alpha)

    def describe(self) -> str:
        """The mismatch in words: each arm's units and planned share, and the p-value."""
        weight = sum(self.expected.values()) or 1.0
        arms = ", ".join(f"{arm} {n:,}" + (f" ({self.expected[arm] / weight:.0%} planned)"
                                           if arm in self.expected else "")
                         for arm, n in self.observed.items())
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        return (f"sample ratio mismatch on {self.channel}: {arms}, {p}; do not trust its "
                "lifts until the assignment is explained")

    def to_dict(self) -> dict[str, object]:
        return {"channel": self.channel, "observed": self.observed, "expected": self.expected,
                "p_value": self.p_value, "ok": self.ok}


def srm_check(channel: str, observed: dict[str, int], expected: dict[str, float],
              alpha: float = SRM_ALPHA) -> SrmCheck:
    """Chi-square test of ``observed`` counts against ``expected`` fractions (renormalised)."""
    arms = list(expected)
    counts = [observed.get(a, 0) for a in arms]
    total = sum(counts)
    weight = sum(expected.values())
    if total == 0 or len(arms) < 2:
        return SrmCheck(channel, dict(zip(arms, counts, strict=True)), expected, math.nan, alpha)
    exp_counts = [total * expected[a] / weight for a in arms]
    p = float(chisquare_p(counts, exp_counts))
    return SrmCheck(channel, dict(zip(arms, counts, strict=True)), expected, p, alpha)
