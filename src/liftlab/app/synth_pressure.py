"""A synthetic email-frequency experiment with a known optimum per segment.

Customers of three segments are randomised (liftlab's stable hash, also written to the
assignments table) to arms that send 0, 1, 2, 3 or 5 emails a week for eight weeks
(``experiments/dose-response/email-frequency.yaml``). Each send is delivered with
probability ``DELIVERY`` (the others are skipped or bounce: they are not in ``contacts``).

Per segment, the expected margin per customer over the window is
``weeks * (base + lift * (1 - exp(-f / k)))`` (monotone and saturating in the frequency
``f``), and the probability of unsubscribing in the window is
``1 - exp(-weeks * (u0 + u1 * f))`` (a constant hazard per send). The value of a frequency is
the margin minus the contacts' cost minus ``OPTIN_VALUE`` times the probability of
unsubscribing; ``truth.json`` holds its exact maximiser per segment and overall (the
segments weighted by their shares). Customers differ in their own purchase rate (a gamma
multiplier with mean 1, also visible in the eight weeks before the start) and orders are
Poisson with gamma margins, so the per-customer margin is skewed as real margins are.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from liftlab.spec.assign import assign_arms

EXPERIMENT = "email-frequency"
START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
WEEKS = 8
ARMS = {"f0": 0.0, "f1": 1.0, "f2": 2.0, "f3": 3.0, "f5": 5.0}
COST_PER_CONTACT = 0.002
DELIVERY = 0.95
OPTIN_VALUE = 25.0
MARGIN_PER_ORDER = 15.0
MARGIN_SHAPE = 1.5  # gamma shape of one order's margin
MARGIN_RATE = 0.4  # margin / revenue
COMPLAINT = (0.0002, 0.0004)  # weekly hazard: base, per send


@dataclass(frozen=True)
class SegmentTruth:
    """Weekly margin ``base + lift * (1 - exp(-f / k))``; weekly unsubscribe hazard
    ``u0 + u1 * f``; ``share`` of the customers."""

    share: float
    base: float
    lift: float
    k: float
    u0: float
    u1: float

    def margin(self, f: np.ndarray, weeks: float = WEEKS) -> np.ndarray:
        return weeks * (self.base + self.lift * (1 - np.exp(-f / self.k)))

    def unsubscribe(self, f: np.ndarray, weeks: float = WEEKS) -> np.ndarray:
        return 1 - np.exp(-weeks * (self.u0 + self.u1 * f))

    def value(
        self,
        f: np.ndarray,
        weeks: float = WEEKS,
        optin_value: float = OPTIN_VALUE,
        cost_per_send: float = COST_PER_CONTACT * DELIVERY,
    ) -> np.ndarray:
        return (
            self.margin(f, weeks)
            - cost_per_send * weeks * f
            - optin_value * self.unsubscribe(f, weeks)
        )


SEGMENTS = {
    "loyal": SegmentTruth(0.2, 3.0, 1.0, 1.3, 0.0005, 0.0030),
    "casual": SegmentTruth(0.5, 1.2, 0.5, 1.0, 0.0008, 0.0025),
    "new": SegmentTruth(0.3, 0.8, 0.25, 0.7, 0.001, 0.005),
}
FLAT = {name: SegmentTruth(s.share, s.base, 0.0, 1.0, s.u0, 0.0) for name, s in SEGMENTS.items()}
GRID = np.linspace(0.0, max(ARMS.values()), 501)


def optimum(
    segments: dict[str, SegmentTruth], optin_value: float = OPTIN_VALUE
) -> dict[str, float]:
    """The exact maximiser of the expected value per segment and overall (within the
    tested frequencies, on a grid of 0.01 sends)."""
    values = {s: t.value(GRID, optin_value=optin_value) for s, t in segments.items()}
    overall = sum(segments[s].share * v for s, v in values.items())
    out = {s: float(GRID[v.argmax()]) for s, v in values.items()}
    return {**out, "overall": float(GRID[np.asarray(overall).argmax()])}


def generate(
    out_dir: Path,
    n_customers: int = 100_000,
    seed: int = 25,
    segments: dict[str, SegmentTruth] | None = None,
) -> dict[str, float]:
    """Write customers, orders, contacts, events, assignments (Parquet) and truth.json in
    ``out_dir``; return the true optimum per segment and overall."""
    segments = segments or SEGMENTS
    rng = np.random.default_rng(seed)
    n = n_customers
    ids = np.arange(1, n + 1, dtype=np.int64)
    names = list(segments)
    seg = rng.choice(len(names), n, p=[segments[s].share for s in names])
    arm = assign_arms(
        pl.Series(ids), EXPERIMENT, "email", {a: 1 / len(ARMS) for a in ARMS}
    ).to_numpy()
    freq = np.array([ARMS[a] for a in arm])
    own = rng.gamma(2.0, 0.5, n)  # the customer's own purchase rate, mean 1
    start = START.timestamp()
    week = 7 * 86400.0
    out_dir.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        {"customer_id": ids, "segment": np.array(names)[seg], "optin_email": np.ones(n, bool)}
    ).write_parquet(out_dir / "customers.parquet")
    orders = []
    for lo, weeks, f in ((start - WEEKS * week, WEEKS, np.zeros(n)), (start, WEEKS, freq)):
        margin = np.zeros(n)
        for j, s in enumerate(names):
            margin[seg == j] = segments[s].margin(f[seg == j], weeks)
        count = rng.poisson(own * margin / MARGIN_PER_ORDER)
        who = np.repeat(np.arange(n), count)
        m = rng.gamma(MARGIN_SHAPE, MARGIN_PER_ORDER / MARGIN_SHAPE, len(who))
        orders.append(
            pl.DataFrame(
                {
                    "customer_id": ids[who],
                    "ts": _ts(lo + rng.random(len(who)) * weeks * week),
                    "channel": rng.choice(["web", "store"], len(who)),
                    "revenue": np.round(m / MARGIN_RATE, 2),
                    "margin": np.round(m, 2),
                }
            )
        )
    frame = pl.concat(orders)
    frame.insert_column(0, pl.Series("order_id", np.arange(1, frame.height + 1)))
    frame.sort("ts").write_parquet(out_dir / "orders.parquet")
    _contacts(rng, ids, freq, start, week).write_parquet(out_dir / "contacts.parquet")
    _events(rng, ids, seg, names, segments, freq, start, week).write_parquet(
        out_dir / "events.parquet"
    )
    pl.DataFrame(
        {"experiment_id": EXPERIMENT, "customer_id": ids, "channel": "email", "group": arm}
    ).with_columns(assigned_at=pl.lit(START, pl.Datetime("us", "UTC"))).write_parquet(
        out_dir / "assignments.parquet"
    )
    truth = optimum(segments)
    (out_dir / "truth.json").write_text(
        json.dumps(
            {
                "optimum": truth,
                "weeks": WEEKS,
                "optin_value": OPTIN_VALUE,
                "segments": {s: vars(t) for s, t in segments.items()},
            },
            indent=2,
            sort_keys=True,
        )
    )
    return truth


def _ts(seconds: np.ndarray) -> pl.Series:
    return pl.Series((seconds * 1e6).astype(np.int64)).cast(pl.Datetime("us", "UTC"))


def _contacts(
    rng: np.random.Generator, ids: np.ndarray, freq: np.ndarray, start: float, week: float
) -> pl.DataFrame:
    """Emails at equal intervals (``f * WEEKS`` per customer), each delivered with
    probability ``DELIVERY``; and untested SMS touches (about one a fortnight), the other
    channel sharing the customers' attention. No ``experiment_id`` column: the engines
    would keep only the experiment's own rows, and the SMS touches belong to none."""
    sends = np.round(freq * WEEKS).astype(np.int64)
    who = np.repeat(np.arange(len(ids)), sends)
    k = np.arange(len(who)) - np.repeat(np.cumsum(sends) - sends, sends)
    at = start + (k + 0.5) * WEEKS * week / np.maximum(sends[who], 1)
    keep = rng.random(len(who)) < DELIVERY
    sms = rng.poisson(WEEKS / 2, len(ids))
    sms_who = np.repeat(np.arange(len(ids)), sms)
    return pl.concat(
        [
            pl.DataFrame(
                {
                    "customer_id": ids[who[keep]],
                    "channel": "email",
                    "sent_at": _ts(at[keep]),
                    "cost": COST_PER_CONTACT,
                }
            ),
            pl.DataFrame(
                {
                    "customer_id": ids[sms_who],
                    "channel": "sms",
                    "sent_at": _ts(start + rng.random(len(sms_who)) * WEEKS * week),
                    "cost": 0.045,
                }
            ),
        ]
    ).sort("sent_at")


def _events(
    rng: np.random.Generator,
    ids: np.ndarray,
    seg: np.ndarray,
    names: list[str],
    segments: dict[str, SegmentTruth],
    freq: np.ndarray,
    start: float,
    week: float,
) -> pl.DataFrame:
    """Unsubscribes and complaints in the window, at a uniform time."""
    p_unsub = np.zeros(len(ids))
    for j, s in enumerate(names):
        p_unsub[seg == j] = segments[s].unsubscribe(freq[seg == j])
    p_complaint = 1 - np.exp(-WEEKS * (COMPLAINT[0] + COMPLAINT[1] * freq))
    frames = []
    for event, p in (("unsubscribe", p_unsub), ("complaint", p_complaint)):
        hit = np.flatnonzero(rng.random(len(ids)) < p)
        frames.append(
            pl.DataFrame(
                {
                    "customer_id": ids[hit],
                    "channel": "email",
                    "event": event,
                    "ts": _ts(start + rng.random(len(hit)) * WEEKS * week),
                }
            )
        )
    return pl.concat(frames).sort("ts")


def main(argv: list[str] | None = None) -> None:
    """``python -m liftlab.app.synth_pressure --out DIR [--customers N] [--seed S]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the tables")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args(argv)
    truth = generate(args.out, args.customers, args.seed)
    print(
        f"wrote {args.out}; true optimum (contacts per week): "
        + ", ".join(f"{k} {v:g}" for k, v in truth.items())
    )


if __name__ == "__main__":
    main()
