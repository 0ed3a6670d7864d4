"""The value of multichannel clients: the naive premium, the premium adjusted for
self-selection, and the causal effect of becoming multichannel from an encouragement test.

Periods (all ``[start, end)``, UTC): a *pre-period* of ``pre_days`` before the look-back gives
the covariates; the *look-back* defines channel usage (a client is active when it bought, or
used a digital channel, there; *multichannel* with two or more channels); the *outcome period*
of ``outcome_days`` after the look-back gives the value (revenue) compared.

- Naive: value per multichannel client / value per single-channel client, decomposed as
  retention (share of clients who buy again) x frequency (orders per buying client) x basket
  (revenue per order). Each factor is a ratio of group totals, so the product equals the naive
  ratio by construction. CIs: delta method on the log scale from additive sums per group.
- Adjusted: the better clients adopt more channels. Regression adjustment, IPW (Hajek) and
  doubly-robust AIPW estimate E[Y(multi)] / E[Y(single)] over the active clients given
  pre-period behaviour and segment (statsmodels Logit and OLS), with influence-function CIs and
  overlap diagnostics. This is credible when the covariates precede adoption: for habitual
  multichannel clients the pre-period spend already contains the premium, and holding it
  equal pulls the adjusted figure toward 1; the encouragement experiment is the causal answer.
- Causal: an encouragement experiment randomises a push onto a new channel; Wald / 2SLS
  (intention-to-treat / first stage) is the effect of adopting, with a delta-method CI that
  uses the within-arm covariance of outcome and adoption (from ``PairStats`` per arm).
"""


from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from liftlab.core.errors import UserError
from liftlab.engines.base import Engine
from liftlab.engines.polars_multichannel import USAGE_EVENTS
from liftlab.stats.causal import (
    FACTORS,
    Adjusted,
    Decomposition,
    IvEstimate,
    Ratio,
    ValueStats,
    adjust,
    decompose,
)

MIN_GROUP = 5                # fewest clients per group (multi / single) to compare



@dataclass(frozen=True)
class MultichannelResult:
    """Usage, naive premium and its decomposition, adjusted premium, and (optionally) the
    instrumented effect from an encouragement experiment."""

    lookback: tuple[dt.date, dt.date]
    outcome: tuple[dt.date, dt.date]
    pre_days: int
    n_clients: int
    share_multichannel: float
    decomposition: Decomposition
    adjusted: Adjusted
    subsampled: bool
    combinations: tuple[dict[str, Any], ...]
    appetence: tuple[dict[str, Any], ...]
    iv: IvEstimate | None = None

    @property
    def naive(self) -> Ratio:
        return self.decomposition.naive

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.adjusted.warnings

    def to_json(self) -> dict[str, Any]:
        """The ``multichannel --json`` document: the value ratios with CIs, per-method
        estimates and diagnostics."""
        dec, adj = self.decomposition, self.adjusted
        return {
            "lookback": {"start": self.lookback[0].isoformat(),
                         "end": self.lookback[1].isoformat()},
            "outcome_period": {"start": self.outcome[0].isoformat(),
                               "end": self.outcome[1].isoformat()},
            "pre_period_days": self.pre_days,
            "n_clients": self.n_clients, "share_multichannel": self.share_multichannel,
            "naive_ratio": dec.naive.value, "naive_ratio_ci": dec.naive.to_list(),
            "decomposition": {f: dec.factors[f].value for f in FACTORS},
            "decomposition_ci": {f: dec.factors[f].to_list() for f in FACTORS},
            "groups": {"multi": dec.multi.to_dict(), "single": dec.single.to_dict()},
            "adjusted_ratio": adj.ratios["aipw"].value,
            "adjusted_ratio_ci": adj.ratios["aipw"].to_list(), "adjusted_method": "aipw",
            "adjusted": {k: {"ratio": r.value, "ci": r.to_list(),
                             "mean_multi": adj.means[k][0], "mean_single": adj.means[k][1]}
                         for k, r in adj.ratios.items()},
            "model_clients": adj.n, "subsampled": self.subsampled,
            "overlap": adj.overlap.to_dict(),
            "combinations": list(self.combinations), "appetence": list(self.appetence),
            "warnings": list(self.warnings),
            "iv": None if self.iv is None else self.iv.to_dict(),
        }


def _value_stats(rows: pl.DataFrame, multi: bool) -> ValueStats:
    row = rows.filter(pl.col("multi") == multi)
    if row.height == 0:
        return ValueStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    r = row.row(0, named=True)
    return ValueStats(int(r["n"]), *(float(r[k]) for k in (
        "active", "orders_sum", "revenue", "orders_sq", "revenue_sq", "revenue_orders")))


def analyze_multichannel(
        engine: Engine, lookback: tuple[dt.date, dt.date], outcome_days: int = 28,
        pre_days: int = 90, alpha: float = 0.05, seed: int = 0,
        usage_events: Sequence[str] = USAGE_EVENTS, attributes: Sequence[str] = ("segment",),
        iv: IvEstimate | None = None) -> MultichannelResult:
    """Usage, naive premium with its decomposition, and the adjusted premium; ``iv`` (from
    ``wald_iv`` on an encouragement experiment) is attached as given. The engine reads the
    rows (``Engine.multichannel_clients``); the models see at most ``MAX_CLIENTS_FOR_MODELS``
    clients (hash subsample)."""
    start, end = lookback
    clients = engine.multichannel_clients(lookback, outcome_days, pre_days, usage_events,
                                          attributes)
    sums = clients.group_sums()
    multi, single = _value_stats(sums.sums, True), _value_stats(sums.sums, False)
    n_clients = multi.n + single.n
    if min(multi.n, single.n) < MIN_GROUP:
        raise UserError(
            f"cannot compare multichannel with single-channel clients in the look-back "
            f"{start}..{end}: {multi.n} multichannel and {single.n} single-channel active "
            f"clients, at least {MIN_GROUP} of each are needed; choose a longer or earlier "
            "--lookback window")
    if single.value <= 0:
        raise UserError(
            f"the {single.n} single-channel clients of the look-back {start}..{end} have no "
            f"revenue in the outcome period {end}..{end + dt.timedelta(days=outcome_days)}: "
            "the premium is a ratio to their value; choose another --lookback window or "
            "more --outcome-days")
    model = clients.model_rows(n_clients, seed)
    adjusted = adjust(model.covariates, model.multi, model.value, model.names, alpha)
    return MultichannelResult(
        lookback, (end, end + dt.timedelta(days=outcome_days)), pre_days, n_clients,
        multi.n / n_clients, decompose(multi, single, alpha), adjusted, model.subsampled,
        tuple(sums.combinations.head(15).to_dicts()), tuple(sums.appetence.to_dicts()), iv)
