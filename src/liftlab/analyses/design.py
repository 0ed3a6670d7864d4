"""Design checks read off the sufficient statistics: did the campaign reach the units it was
meant to, and only those?

- **contamination**: the share of a channel's holdout units that were contacted on that
  channel in the window (the holdout no longer measures "no contact");
- **exposure**: the share of its treated units that were contacted (a low share dilutes the
  lift: the effect is an intention-to-treat one);
- a channel with no contact at all in the contacts table is a warning (its cost is unknown).

The counts come from the ``contacted@<channel>`` measure of the aggregation plan, so every
engine computes them with the rest of the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from liftlab.analyses.cells import CellTable
from liftlab.spec.aggregation import contacted, sum_col
from liftlab.spec.models import Experiment, Threshold

Status = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class DesignCheck:
    """One check of one channel: ``share`` = ``contacted`` of ``units``."""

    check: Literal["contamination", "exposure", "contacts"]
    channel: str
    units: int
    contacted: int
    status: Status
    message: str
    threshold: Threshold | None = None

    @property
    def share(self) -> float | None:
        return self.contacted / self.units if self.units else None

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "channel": self.channel, "share": self.share,
                "units": self.units, "contacted": self.contacted, "status": self.status,
                "warn": None if self.threshold is None else self.threshold.warn,
                "error": None if self.threshold is None else self.threshold.error,
                "message": self.message}


def design_checks(spec: Experiment, cells: CellTable) -> tuple[DesignCheck, ...]:
    """Contamination, exposure and absent channels, for each channel the contacts table
    was aggregated for (none without a contacts table)."""
    out: list[DesignCheck] = []
    for ch, cfg in spec.channels.items():
        if sum_col(contacted(ch)) not in cells.frame.columns:
            continue
        holdout = cells.where({ch: cfg.control})
        treated = cells.frame.filter(pl.col(f"arm:{ch}").is_in(cfg.treatment_arms))
        n_h, c_h = _count(cells, holdout, ch)
        n_t, c_t = _count(cells, treated, ch)
        if c_h + c_t == 0:
            out.append(DesignCheck(
                "contacts", ch, n_t, 0, "warning",
                f"channel {ch!r} never appears in the contacts table in the window: its "
                "exposure and contamination are unknown and its ROI is not computed"))
            continue
        out.append(_graded("contamination", ch, n_h, c_h, spec.checks.contamination, above=True,
                           what="of its holdout units were contacted on it"))
        out.append(_graded("exposure", ch, n_t, c_t, spec.checks.exposure, above=False,
                           what="of its treated units were contacted on it"))
    return tuple(out)


def _count(cells: CellTable, rows: pl.DataFrame, channel: str) -> tuple[int, int]:
    return int(rows["n"].sum()), round(cells.total(sum_col(contacted(channel)), rows))


def _graded(check: Literal["contamination", "exposure"], channel: str, units: int,
            hits: int, threshold: Threshold, above: bool, what: str) -> DesignCheck:
    share = hits / units if units else 0.0

    def beyond(limit: float) -> bool:
        return share > limit if above else share < limit

    status: Status = ("error" if beyond(threshold.error) else
                      "warning" if beyond(threshold.warn) else "ok")
    limit = {"error": threshold.error, "warning": threshold.warn, "ok": threshold.warn}[status]
    side = ("above" if above else "below") if status != "ok" else (
        "within" if above else "at or above")
    return DesignCheck(check, channel, units, hits, status,
                       f"{check} of {channel}: {share:.1%} ({hits:,} of {units:,}) {what}; "
                       f"{side} the {status if status != 'ok' else 'warning'} threshold "
                       f"{limit:.1%}", threshold)
