"""A realistic synthetic multichannel retailer with known truth.

Each customer has a latent value that drives purchase frequency and basket size, and also
the channels they use (better customers use more channels: self-selection). Using several
channels causally raises purchase frequency by a known premium. Three experiments run on the
base, with effects the simulation knows exactly:

- ``web-onboarding`` (2026-01-05 .. 02-02): store-only clients pushed to open a web account;
  adoption is the first stage, the extra orders of adopters the causal effect.
- ``spring-factorial`` (02-02 .. 02-23): email x SMS x catalog, a 2^3 factorial with an email x
  mail synergy, a small email x SMS cannibalisation, and catalog increments landing on the web.
- ``email-flash`` (02-16 .. 03-09, still running when the data ends on 02-24): one send on
  02-16 09:00 UTC whose orders, opens and clicks arrive within hours, and a slightly higher
  unsubscribe rate in treatment.

Orders are Poisson processes per customer, so every window's order count is Poisson with a
known mean under each potential outcome. ``truth.json`` holds the exact expectations of the
effects (revenue per customer, conversion, revenue by purchase channel) averaged over the
simulated population, with each customer's arms in the other experiments as they were drawn:
overlapping experiments add up coherently. Everything is vectorised: millions of customers
take seconds.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from liftlab.core.errors import UserError
from liftlab.core.fsio import atomic_write_bytes, atomic_write_text
from liftlab.spec.assign import assign_arms

UTC = dt.UTC
HISTORY_START = dt.datetime(2025, 10, 1, tzinfo=UTC)
DATA_END = dt.datetime(2026, 2, 24, tzinfo=UTC)
ONBOARD = (dt.datetime(2026, 1, 5, tzinfo=UTC), dt.datetime(2026, 2, 2, tzinfo=UTC))
SPRING = (dt.datetime(2026, 2, 2, tzinfo=UTC), dt.datetime(2026, 2, 23, tzinfo=UTC))
FLASH_START = dt.datetime(2026, 2, 16, tzinfo=UTC)
FLASH_SEND = dt.datetime(2026, 2, 16, 9, tzinfo=UTC)
PURCHASE = ("store", "web", "phone", "app", "mail")
REGIONS = np.array(["north", "south", "east", "west", "paris"])

VALUE_SIGMA = 0.9          # log-sd of the latent customer value
BASE_RATE = 0.015          # orders per customer per day at latent value 1
BASKET_SIGMA = 0.8         # log-sd of a basket around the customer's own typical basket
BASKET_CUSTOMER_SD = 0.3   # log-sd of the customers' typical baskets at equal value
MULTI_PREMIUM = 1.5       # causal frequency premium of using several channels
RETURN_SHARE = 0.02        # orders that are returns (negative revenue)
MARGIN_RATE = (0.35, 0.45)
ADOPT_P0, ADOPT_UPLIFT = 0.10, 0.22   # web-account adoption: ~10% -> ~32% when encouraged
SPRING_HOLDOUT = {"email": 0.20, "sms": 0.20, "mail": 0.30}
SPRING_EFFECT = {"email": 0.06, "sms": 0.04, "mail": 0.10}   # relative purchase frequency
SYNERGY_EMAIL_MAIL = 0.05
CANNIBAL_EMAIL_SMS = -0.02
# Where each channel's extra orders are placed (the email x mail synergy and the email x SMS
# cannibalisation belong to the email component): catalog increments land largely on the web.
SPRING_LANDING = {"email": {"web": 0.7, "store": 0.3},
                  "sms": {"store": 0.6, "web": 0.4},
                  "mail": {"web": 0.45, "store": 0.35, "mail": 0.2}}
FLASH_HOLDOUT = 0.10
FLASH_EXTRA = 0.045        # extra orders per treated customer (x value^0.5), within hours
FLASH_DELAY_HOURS = 16.0   # mean delay of those orders after the send
FLASH_WEB_SHARE = 0.8
# Unsubscribes and complaints of opted-in customers: a background rate over the history (list
# churn), plus a little after each email received (the guardrails move, without real harm).
UNSUB_BASE, UNSUB_PER_EMAIL = 0.02, 0.0003
FLASH_UNSUB = 0.0007        # the flash sale email is pushier: about one standard error
COMPLAINT_BASE, COMPLAINT_PER_EMAIL = 0.01, 0.00005
RESPONSE_DELAY_HOURS = 20.0                      # unsubscribes/complaints after an email
VISITS_PER_DAY = 0.03                            # web visits of web users
COST = {"email": 0.002, "sms": 0.045, "mail": 0.85, "web_onboarding": 0.30}
DAY = 86400.0


@dataclass(frozen=True)
class ExperimentTruth:
    """True average effects per channel, per customer of the experiment's population, over
    ``window`` ([start, end) ISO timestamps): expected treated minus expected holdout outcome.

    ``revenue`` and ``conversion`` (at least one order in the window) map channel -> effect;
    ``landing`` maps channel -> purchase channel -> revenue effect (sums to ``revenue``);
    ``extra`` holds experiment-specific truths (first stage, IV effect, interactions, ...).
    """

    window: tuple[str, str]
    revenue: dict[str, float]
    conversion: dict[str, float]
    landing: dict[str, dict[str, float]]
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthTruth:
    """Everything the simulation knows that an analysis has to recover (``truth.json``)."""

    n_customers: int
    seed: int
    experiments: dict[str, ExperimentTruth]
    multichannel: dict[str, float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _ts(seconds: np.ndarray) -> pl.Series:
    return pl.Series((seconds * 1e6).astype(np.int64)).cast(pl.Datetime("us", "UTC"))


def _mix(weights: dict[str, float]) -> np.ndarray:
    """A purchase-channel mix (a probability vector over ``PURCHASE``)."""
    out = np.array([weights.get(c, 0.0) for c in PURCHASE])
    return out / out.sum()


@dataclass
class _Orders:
    """Orders accumulated piece by piece: customer index, epoch seconds, channel code."""

    cust: list[np.ndarray] = field(default_factory=list)
    when: list[np.ndarray] = field(default_factory=list)
    chan: list[np.ndarray] = field(default_factory=list)

    def add(self, rng: np.random.Generator, idx: np.ndarray, start: np.ndarray | float,
            end: np.ndarray | float, rate: np.ndarray, mix: np.ndarray) -> None:
        """Poisson orders at ``rate`` per day on [start, end) for customers ``idx``, split by
        purchase channel along ``mix`` (one row per customer, or one shared row): each
        channel's orders are an independent Poisson process (thinning)."""
        start = np.broadcast_to(np.asarray(start, float), idx.shape)
        length = np.maximum(np.broadcast_to(np.asarray(end, float), idx.shape) - start, 0.0)
        k = rng.poisson((rate * length / DAY)[:, None] * mix)
        pos = np.repeat(np.arange(len(idx)), k.sum(axis=1))
        self.cust.append(idx[pos])
        self.when.append(start[pos] + rng.random(len(pos)) * length[pos])
        self.chan.append(np.repeat(np.tile(np.arange(len(PURCHASE)), len(idx)), k.ravel()))


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    atomic_write_bytes(path, buf.getvalue())


MAX_CUSTOMERS = 20_000_000  # about 8 GB of memory while generating


def generate(out_dir: Path, n_customers: int = 60_000, seed: int = 7) -> SynthTruth:
    """Write customers, orders, contacts, events, assignments (Parquet) and truth.json in
    ``out_dir``; return the truth. The same seed gives the same tables."""
    if n_customers < 1_000:
        message = (f"the synthetic retailer needs at least 1,000 customers, got {n_customers:,}"
                   "; ask for 60,000 (the default) or more")
        raise UserError(message)
    if n_customers > MAX_CUSTOMERS:
        raise UserError(f"the synthetic retailer has at most {MAX_CUSTOMERS:,} customers, got "
                        f"{n_customers:,}")
    rng = np.random.default_rng(seed)
    n = n_customers
    ids = np.arange(1, n + 1, dtype=np.int64)
    everyone = np.arange(n)
    t0, t_end = HISTORY_START.timestamp(), DATA_END.timestamp()

    # -- the customers: latent value, channel usage (self-selected), basket ----------------
    value = rng.lognormal(0.0, VALUE_SIGMA, n)
    rank = value.argsort().argsort() / n
    segment = np.where(rank >= 0.8, "gold", np.where(rank >= 0.4, "silver", "bronze"))
    uses_web = rng.random(n) < 1 / (1 + np.exp(0.6 - 0.6 * np.log(value)))
    uses_phone = rng.random(n) < 0.12 + 0.1 * (rank > 0.7)
    uses_app = uses_web & (rng.random(n) < 0.3)
    multi = uses_web | uses_phone | uses_app
    profile = np.where(~multi, "store", np.where(uses_web & ~uses_phone, "store+web", "multi"))
    mix = np.column_stack([np.ones(n), np.where(uses_web, 0.8, 0.0),
                           np.where(uses_phone, 0.3, 0.0), np.where(uses_app, 0.4, 0.0),
                           np.full(n, 0.05)])
    mix /= mix.sum(axis=1, keepdims=True)
    rate = BASE_RATE * value * np.where(multi, MULTI_PREMIUM, 1.0)
    basket_mu = 3.6 + 0.3 * np.log(value) + rng.normal(0.0, BASKET_CUSTOMER_SD, n)
    basket = np.exp(basket_mu + BASKET_SIGMA**2 / 2) * (1 - 2 * RETURN_SHARE)  # expected
    optin = {c: rng.random(n) < p for c, p in (("email", 0.85), ("sms", 0.55), ("mail", 0.7))}
    signup = t0 - rng.uniform(30, 6 * 365, n) * DAY
    region = rng.choice(REGIONS, n)

    # -- web-onboarding: encouragement of store-only clients ------------------------------
    pop_on = everyone[profile == "store"]
    on_arm = assign_arms(pl.Series(ids[pop_on]), "web-onboarding", "web_onboarding",
                         {"holdout": 0.5, "treatment": 0.5}).to_numpy()
    adopt = rng.random(len(pop_on)) < (_adoption_base(value[pop_on])
                                       + ADOPT_UPLIFT * (on_arm == "treatment"))
    adopt_at = ONBOARD[0].timestamp() + rng.uniform(0, 7, len(pop_on)) * DAY
    adopted_time = np.full(n, np.inf)
    adopted_time[pop_on[adopt]] = adopt_at[adopt]
    adopted = np.isfinite(adopted_time)
    web_mix = mix + 0.8 * np.eye(5)[1]
    web_mix /= web_mix.sum(axis=1, keepdims=True)
    rate_now = np.where(adopted, rate * MULTI_PREMIUM, rate)
    mix_now = np.where(adopted[:, None], web_mix, mix)

    # -- the arms of the two later experiments (both on opted-in email customers) ---------
    pop_sp = everyone[optin["email"]]
    arm = {c: np.zeros(n) for c in SPRING_HOLDOUT}
    for c, h in SPRING_HOLDOUT.items():
        arm[c][pop_sp] = assign_arms(pl.Series(ids[pop_sp]), "spring-factorial", c,
                                     {"holdout": h, "treatment": 1 - h}).to_numpy() == "treatment"
    fl_arm = assign_arms(pl.Series(ids[pop_sp]), "email-flash", "email",
                         {"holdout": FLASH_HOLDOUT, "treatment": 1 - FLASH_HOLDOUT}
                         ).to_numpy() == "treatment"
    treated = pop_sp[fl_arm]
    flash_treated = np.zeros(n)
    flash_treated[treated] = 1.0
    flash_orders = np.zeros(n)            # expected extra flash orders if treated
    flash_orders[pop_sp] = FLASH_EXTRA * np.sqrt(value[pop_sp])

    # -- orders: the base process, then each experiment's increments ----------------------
    orders = _Orders()
    orders.add(rng, everyone, t0, np.minimum(adopted_time, t_end), rate, mix)
    adopters = everyone[adopted]
    orders.add(rng, adopters, adopted_time[adopters], t_end, rate_now[adopters],
               web_mix[adopters])
    for comp, comp_rate in _spring_components(arm["email"], arm["sms"], arm["mail"]).items():
        on = everyone[comp_rate > 0]
        orders.add(rng, on, SPRING[0].timestamp(), SPRING[1].timestamp(),
                   rate_now[on] * comp_rate[on], _mix(SPRING_LANDING[comp]))
    who = np.repeat(treated, rng.poisson(flash_orders[treated]))
    when = FLASH_SEND.timestamp() + rng.exponential(FLASH_DELAY_HOURS * 3600, len(who))
    keep = when < t_end
    orders.cust.append(who[keep])
    orders.when.append(when[keep])
    orders.chan.append(np.where(rng.random(keep.sum()) < FLASH_WEB_SHARE, 1, 0))

    # -- the truth ------------------------------------------------------------------------
    world = _World(value, rate, rate_now, mix, web_mix, mix_now, basket, pop_on, adopt_at,
                   pop_sp, arm, flash_orders, flash_treated)
    truth = SynthTruth(n, seed, {"web-onboarding": world.onboarding_truth(),
                                 "spring-factorial": world.spring_truth(),
                                 "email-flash": world.flash_truth()},
                       _multichannel_truth(multi, rate, basket))

    # -- write the tables -----------------------------------------------------------------
    out_dir.mkdir(parents=True, exist_ok=True)
    cust = np.concatenate(orders.cust)
    ts = np.concatenate(orders.when)
    chan = np.concatenate(orders.chan)
    order = np.argsort(ts, kind="stable")
    cust, ts, chan = cust[order], ts[order], chan[order]
    revenue = rng.lognormal(basket_mu[cust], BASKET_SIGMA)
    revenue = np.where(rng.random(len(cust)) < RETURN_SHARE, -revenue, revenue).round(2)
    _write_parquet(pl.DataFrame({
        "order_id": np.arange(1, len(cust) + 1, dtype=np.int64), "customer_id": ids[cust],
        "ts": _ts(ts), "channel": np.array(PURCHASE)[chan], "revenue": revenue,
        "margin": (revenue * rng.uniform(*MARGIN_RATE, len(cust))).round(2),
    }), out_dir / "orders.parquet")
    _write_parquet(pl.DataFrame({
        "customer_id": ids, "segment": segment, "region": region,
        "signup_date": _ts(signup).dt.date(), "optin_email": optin["email"],
        "optin_sms": optin["sms"], "optin_mail": optin["mail"], "profile": profile,
    }), out_dir / "customers.parquet")
    _write_assignments(out_dir, ids, pop_on, on_arm, pop_sp, arm, fl_arm)
    sends = _sends(pop_on[on_arm == "treatment"], pop_sp, arm, treated)
    _write_parquet(pl.concat([pl.DataFrame({
        "customer_id": ids[idx], "channel": ch, "sent_at": _ts(np.full(len(idx), at)),
        "cost": COST[ch], "experiment_id": exp}) for exp, ch, idx, at in sends]),
        out_dir / "contacts.parquet")
    _write_events(rng, out_dir, ids, sends, optin["email"], uses_web, adopted_time)
    atomic_write_text(out_dir / "truth.json", truth.to_json())
    from liftlab.app.geo_synth import write_geo_metrics

    write_geo_metrics(out_dir, seed)  # the regions of the geo experiments
    return truth


def _spring_components(e: np.ndarray, s: np.ndarray, m: np.ndarray) -> dict[str, np.ndarray]:
    """Extra purchase frequency (relative) that each channel's contacts add, per customer;
    the components sum to the factorial model's total lift."""
    return {"email": e * (SPRING_EFFECT["email"] + SYNERGY_EMAIL_MAIL * m
                          + CANNIBAL_EMAIL_SMS * s),
            "sms": s * SPRING_EFFECT["sms"], "mail": m * SPRING_EFFECT["mail"]}


@dataclass(frozen=True)
class _World:
    """The per-customer quantities the exact expectations of the truth are computed from
    (arrays over all customers unless named for a population)."""

    value: np.ndarray
    rate: np.ndarray
    rate_now: np.ndarray          # after the web adoptions (which end before 2026-01-12)
    mix: np.ndarray
    web_mix: np.ndarray
    mix_now: np.ndarray
    basket: np.ndarray
    pop_on: np.ndarray
    adopt_at: np.ndarray          # over pop_on: when a client adopts, if it does
    pop_sp: np.ndarray            # the opted-in email customers (spring and flash)
    arm: dict[str, np.ndarray]    # spring arms, 1.0 treated / 0.0 holdout or outside
    flash_orders: np.ndarray      # expected extra flash orders if treated
    flash_treated: np.ndarray     # 1.0 treated by the flash email

    def _spring_orders(self, start: dt.datetime, end: dt.datetime,
                       arm: dict[str, np.ndarray]) -> np.ndarray:
        """Expected spring increment orders per customer and purchase channel in a window."""
        lo, hi = max(start, SPRING[0]), min(end, SPRING[1])
        days = max((hi - lo).total_seconds() / DAY, 0.0)
        comps = _spring_components(arm["email"], arm["sms"], arm["mail"])
        return sum((self.rate_now * days * comps[c])[:, None] * _mix(SPRING_LANDING[c])
                   for c in comps)

    def _flash_orders(self, start: dt.datetime, end: dt.datetime,
                      treated: np.ndarray) -> np.ndarray:
        """Expected flash increment orders per customer and purchase channel in a window."""
        lo = max((start - FLASH_SEND).total_seconds(), 0.0) / 3600
        hi = max((end - FLASH_SEND).total_seconds(), 0.0) / 3600
        share = np.exp(-lo / FLASH_DELAY_HOURS) - np.exp(-hi / FLASH_DELAY_HOURS)
        land = _mix({"store": 1 - FLASH_WEB_SHARE, "web": FLASH_WEB_SHARE})
        return (treated * self.flash_orders * share)[:, None] * land

    def _base_orders(self, start: dt.datetime, end: dt.datetime) -> np.ndarray:
        """Expected base orders per customer and purchase channel in a window after the
        adoptions."""
        days = (end - start).total_seconds() / DAY
        return (self.rate_now * days)[:, None] * self.mix_now

    def _effects(self, idx: np.ndarray, treated: np.ndarray, control: np.ndarray,
                 weight: float = 1.0) -> tuple[float, float, dict[str, float]]:
        """Revenue, conversion and landing effects from expected orders per purchase
        channel under treatment and control (rows: the population ``idx``)."""
        land = weight * ((treated - control) * self.basket[idx][:, None]).mean(axis=0)
        conv = weight * np.mean(np.exp(-control.sum(axis=1)) - np.exp(-treated.sum(axis=1)))
        return float(land.sum()), float(conv), dict(zip(PURCHASE, land.tolist(), strict=True))

    def onboarding_truth(self) -> ExperimentTruth:
        """Encouragement raises adoption by ``ADOPT_UPLIFT`` for everyone (no defiers), so
        ITT = uplift x E[effect of adopting], and the IV (per complier) effect is that
        expectation."""
        idx = self.pop_on
        start, end = (t.timestamp() for t in ONBOARD)
        before = ((self.adopt_at - start) / DAY)[:, None]
        after = ((end - self.adopt_at) / DAY)[:, None]
        rate = self.rate[idx][:, None]
        control = rate * (before + after) * self.mix[idx]
        adopter = rate * (before * self.mix[idx] + MULTI_PREMIUM * after * self.web_mix[idx])
        revenue, conversion, landing = self._effects(idx, adopter, control, ADOPT_UPLIFT)
        p0 = float(np.mean(_adoption_base(self.value[idx])))
        return ExperimentTruth(
            _window(*ONBOARD), {"web_onboarding": revenue}, {"web_onboarding": conversion},
            {"web_onboarding": landing},
            {"first_stage": ADOPT_UPLIFT, "iv_effect": revenue / ADOPT_UPLIFT,
             "iv_effect_conversion": conversion / ADOPT_UPLIFT, "adoption_holdout": p0,
             "adoption_treatment": p0 + ADOPT_UPLIFT})

    def spring_truth(self) -> ExperimentTruth:
        """Each channel switched on and off, the customer's other arms (and flash email) as
        drawn."""
        idx = self.pop_sp
        start, end = SPRING
        base = (self._base_orders(start, end)
                + self._flash_orders(start, end, self.flash_treated))[idx]
        revenue, conversion, landing = {}, {}, {}
        for ch in SPRING_HOLDOUT:
            on = self._spring_orders(start, end, {**self.arm, ch: np.ones(len(self.rate))})
            off = self._spring_orders(start, end, {**self.arm, ch: np.zeros(len(self.rate))})
            revenue[ch], conversion[ch], landing[ch] = self._effects(idx, base + on[idx],
                                                                     base + off[idx])
        days = (end - start).total_seconds() / DAY
        k = float(np.mean(self.rate_now[idx] * days * self.basket[idx]))
        return ExperimentTruth(_window(start, end), revenue, conversion, landing, {
            "interaction_email_mail": SYNERGY_EMAIL_MAIL * k,
            "interaction_email_sms": CANNIBAL_EMAIL_SMS * k, "interaction_sms_mail": 0.0})

    def flash_truth(self) -> ExperimentTruth:
        """The send switched on and off, the spring arms as drawn, up to the data end."""
        idx = self.pop_sp
        start, end = FLASH_START, DATA_END
        base = (self._base_orders(start, end) + self._spring_orders(start, end, self.arm))[idx]
        extra = self._flash_orders(start, end, np.ones(len(self.rate)))[idx]
        revenue, conversion, landing = self._effects(idx, base + extra, base)
        hours = (end - FLASH_SEND).total_seconds() / 3600
        unsub = FLASH_UNSUB * (1 - np.exp(-hours / RESPONSE_DELAY_HOURS))
        return ExperimentTruth(_window(start, end), {"email": revenue}, {"email": conversion},
                               {"email": landing}, {"unsubscribe": float(unsub)})


def _adoption_base(value: np.ndarray) -> np.ndarray:
    """Probability of opening a web account without encouragement: better clients adopt more
    (selection among adopters, which the randomized encouragement removes)."""
    return ADOPT_P0 * np.clip(value, 0.5, 2.0)


def _window(start: dt.datetime, end: dt.datetime) -> tuple[str, str]:
    return start.isoformat(), end.isoformat()


def _multichannel_truth(multi: np.ndarray, rate: np.ndarray, basket: np.ndarray
                        ) -> dict[str, float]:
    """Naive premium (expected value per habitual multichannel client over per single-channel
    client, before the experiments) against the causal one (the same client, multichannel or
    not: the frequency premium, baskets unchanged)."""
    value = rate * basket
    return {"share_multichannel": float(multi.mean()),
            "naive_ratio": float(value[multi].mean() / value[~multi].mean()),
            "causal_ratio": MULTI_PREMIUM}


def _write_assignments(out_dir: Path, ids: np.ndarray, pop_on: np.ndarray, on_arm: np.ndarray,
                       pop_sp: np.ndarray, arm: dict[str, np.ndarray], fl_arm: np.ndarray
                       ) -> None:
    def rows(exp: str, start: dt.datetime, idx: np.ndarray, channel: str,
             group: np.ndarray) -> pl.DataFrame:
        return pl.DataFrame({"experiment_id": exp, "customer_id": ids[idx], "channel": channel,
                             "group": group}).with_columns(
            assigned_at=pl.lit(start, pl.Datetime("us", "UTC")))

    frames = [rows("web-onboarding", ONBOARD[0], pop_on, "web_onboarding", on_arm)]
    frames += [rows("spring-factorial", SPRING[0], pop_sp, c,
                    np.where(a[pop_sp] > 0, "treatment", "holdout")) for c, a in arm.items()]
    frames.append(rows("email-flash", FLASH_SEND, pop_sp, "email",
                       np.where(fl_arm, "treatment", "holdout")))
    _write_parquet(pl.concat(frames), out_dir / "assignments.parquet")


def _sends(onboarded: np.ndarray, pop_sp: np.ndarray,
           arm: dict[str, np.ndarray], flash_treated: np.ndarray
           ) -> list[tuple[str, str, np.ndarray, float]]:
    """Every outbound touch: (experiment, channel, customer indices, epoch seconds)."""
    sends = [("web-onboarding", "web_onboarding", onboarded,
              ONBOARD[0].timestamp() + 10 * 3600)]
    for day, ch in ((2, "email"), (9, "email"), (19, "email"), (3, "sms"), (12, "sms"),
                    (2, "mail")):
        at = dt.datetime(2026, 2, day, 9, tzinfo=UTC).timestamp()
        sends.append(("spring-factorial", ch, pop_sp[arm[ch][pop_sp] > 0], at))
    sends.append(("email-flash", "email", flash_treated, FLASH_SEND.timestamp()))
    return sends


def _write_events(rng: np.random.Generator, out_dir: Path, ids: np.ndarray,
                  sends: list[tuple[str, str, np.ndarray, float]], optin_email: np.ndarray,
                  uses_web: np.ndarray, adopted_time: np.ndarray) -> None:
    """Email responses, unsubscribes and complaints, web visits of web users and adopters,
    and account creations."""
    n = len(ids)
    t0, t_end = HISTORY_START.timestamp(), DATA_END.timestamp()
    events: list[pl.DataFrame] = []

    def emit(idx: np.ndarray, channel: str, event: str, when: np.ndarray) -> None:
        events.append(pl.DataFrame({"customer_id": ids[idx], "channel": channel,
                                    "event": event, "ts": _ts(when)}))

    emails = [(exp, idx, at) for exp, ch, idx, at in sends if ch == "email"]
    for exp, idx, at in emails:
        opened = idx[rng.random(len(idx)) < 0.32]
        emit(opened, "email", "open", at + rng.exponential(5 * 3600, len(opened)))
        clicked = idx[rng.random(len(idx)) < (0.07 if exp == "email-flash" else 0.04)]
        emit(clicked, "email", "click", at + rng.exponential(7 * 3600, len(clicked)))
        bounced = idx[rng.random(len(idx)) < 0.004]
        emit(bounced, "email", "bounce", at + rng.uniform(0, 600, len(bounced)))
    everyone = np.arange(n)
    for event, base, bump in (("unsubscribe", UNSUB_BASE, UNSUB_PER_EMAIL),
                              ("complaint", COMPLAINT_BASE, COMPLAINT_PER_EMAIL)):
        hit = everyone[optin_email & (rng.random(n) < base)]
        emit(hit, "email", event, rng.uniform(t0, t_end, len(hit)))
        for exp, idx, at in emails:
            p = FLASH_UNSUB if (exp, event) == ("email-flash", "unsubscribe") else bump
            extra = idx[rng.random(len(idx)) < p]
            emit(extra, "email", event,
                 at + rng.exponential(RESPONSE_DELAY_HOURS * 3600, len(extra)))
    adopters = everyone[np.isfinite(adopted_time)]
    web_from = np.where(uses_web, t0, adopted_time)
    visitors = everyone[np.isfinite(web_from)]
    length = t_end - web_from[visitors]
    k = rng.poisson(VISITS_PER_DAY * length / DAY)
    pos = np.repeat(np.arange(len(visitors)), k)
    emit(visitors[pos], "web", "visit",
         web_from[visitors][pos] + rng.random(len(pos)) * length[pos])
    emit(adopters, "web", "account_created", adopted_time[adopters])
    frame = pl.concat(events).filter(pl.col("ts") < DATA_END).sort("ts", maintain_order=True)
    _write_parquet(frame, out_dir / "events.parquet")
