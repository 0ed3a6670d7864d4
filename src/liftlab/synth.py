"""A realistic synthetic multichannel retailer with known truth.

Each customer has a latent value that drives purchase frequency and basket size, and also
the channels they use (better customers use more channels: self-selection). Using several
channels causally raises purchase frequency by a known premium. Three experiments run on the
base, with effects the simulation knows exactly:

- ``web-onboarding`` (2026-01-05 .. 02-02): store-only clients pushed to open a web account;
  adoption is the first stage, the extra orders of adopters the causal effect.
- ``spring-factorial`` (02-02 .. 02-23): email x SMS x catalog, a 2^3 factorial with an email x
  mail synergy, a small email x SMS cannibalisation, and catalog increments landing on the web.
- ``email-flash`` (02-16 .. 03-09, still running on 02-24): one send on 02-16 09:00 UTC whose
  orders, opens and clicks arrive within hours.

The truth (``truth.json``) is computed from the simulation's own expected potential outcomes
over the simulated customers, so estimates can be checked against it.
Everything is vectorised: millions of customers take seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from liftlab.assign import assign_arms
from liftlab.fsio import atomic_write_text

UTC = dt.UTC
HISTORY_START = dt.datetime(2025, 10, 1, tzinfo=UTC)
DATA_END = dt.datetime(2026, 2, 24, tzinfo=UTC)
ONBOARD = (dt.datetime(2026, 1, 5, tzinfo=UTC), dt.datetime(2026, 2, 2, tzinfo=UTC))
SPRING = (dt.datetime(2026, 2, 2, tzinfo=UTC), dt.datetime(2026, 2, 23, tzinfo=UTC))
FLASH_SEND = dt.datetime(2026, 2, 16, 9, tzinfo=UTC)
FLASH_START = dt.datetime(2026, 2, 16, tzinfo=UTC)
PURCHASE = np.array(["store", "web", "phone", "app", "mail"])
REGIONS = np.array(["north", "south", "east", "west", "paris"])

BASE_RATE = 0.011          # orders per customer per day at latent value 1
MULTI_PREMIUM = 1.25       # causal frequency premium of using several channels
RETURN_SHARE = 0.02        # orders that are returns (negative revenue)
SPRING_EFFECT = {"email": 0.06, "sms": 0.04, "mail": 0.10}
SYNERGY_EMAIL_MAIL = 0.05
CANNIBAL_EMAIL_SMS = -0.02
SPRING_HOLDOUT = {"email": 0.20, "sms": 0.20, "mail": 0.30}
COST = {"email": 0.002, "sms": 0.045, "mail": 0.85, "web_onboarding": 0.30}
FLASH_EXTRA = 0.045        # extra orders per treated customer (x value^0.5), within hours
FLASH_DELAY_HOURS = 16.0
ADOPT_P0, ADOPT_P1 = 0.10, 0.32


@dataclass(frozen=True)
class ExperimentTruth:
    """True average effects per channel (per customer of the population, in the window)."""

    revenue: dict[str, float]
    conversion: dict[str, float]
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthTruth:
    n_customers: int
    seed: int
    experiments: dict[str, ExperimentTruth]
    multichannel: dict[str, float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _days(a: dt.datetime, b: dt.datetime) -> float:
    return (b - a).total_seconds() / 86400


def _ts(seconds: np.ndarray) -> pl.Series:
    return pl.Series((seconds * 1e6).astype(np.int64)).cast(pl.Datetime("us", "UTC"))


@dataclass
class _Orders:
    """Orders accumulated piece by piece: customer index, epoch seconds, channel code."""

    cust: list[np.ndarray] = field(default_factory=list)
    when: list[np.ndarray] = field(default_factory=list)
    chan: list[np.ndarray] = field(default_factory=list)

    def add(self, rng: np.random.Generator, idx: np.ndarray, start: np.ndarray,
            end: np.ndarray, rate: np.ndarray, mix: np.ndarray) -> None:
        """Poisson orders at ``rate`` per day on [start, end) per customer, channel ~ mix."""
        length = np.maximum(end - start, 0.0)
        k = rng.poisson(rate * length / 86400)
        who = np.repeat(idx, k)
        if not len(who):
            return
        pos = np.repeat(np.arange(len(idx)), k)
        self.cust.append(who)
        self.when.append(start[pos] + rng.random(len(who)) * length[pos])
        cum = np.cumsum(mix[pos], axis=1)
        self.chan.append((rng.random(len(who))[:, None] > cum).sum(axis=1))


def generate(out_dir: Path, n_customers: int = 60_000, seed: int = 7) -> SynthTruth:
    """Write customers, orders, contacts, events, assignments (Parquet) and truth.json."""
    rng = np.random.default_rng(seed)
    n = n_customers
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = np.arange(1, n + 1, dtype=np.int64)
    value = rng.lognormal(0.0, 0.7, n)
    rank = value.argsort().argsort() / n
    segment = np.where(rank > 0.8, "gold", np.where(rank > 0.4, "silver", "bronze"))
    # Channel usage: better customers use more channels (self-selection).
    logit = -0.6 + 1.3 * np.log(value)
    uses_web = rng.random(n) < 1 / (1 + np.exp(-logit))
    uses_phone = rng.random(n) < 0.12 + 0.1 * (rank > 0.7)
    uses_app = uses_web & (rng.random(n) < 0.3)
    multi = uses_web | uses_phone | uses_app
    profile = np.where(~multi, "store", np.where(uses_web & ~uses_phone, "store+web", "multi"))
    mix = np.zeros((n, len(PURCHASE)))
    mix[:, 0] = 1.0
    mix[:, 1] = np.where(uses_web, 0.8, 0.0)
    mix[:, 2] = np.where(uses_phone, 0.3, 0.0)
    mix[:, 3] = np.where(uses_app, 0.4, 0.0)
    mix[:, 4] = 0.05
    mix /= mix.sum(axis=1, keepdims=True)
    rate = BASE_RATE * value * np.where(multi, MULTI_PREMIUM, 1.0)
    basket_mu = 3.6 + 0.3 * np.log(value)
    basket_mean = np.exp(basket_mu + 0.9**2 / 2) * (1 - 2 * RETURN_SHARE)
    optin = {c: rng.random(n) < p for c, p in (("email", 0.85), ("sms", 0.55), ("mail", 0.7))}
    signup = HISTORY_START.timestamp() - rng.uniform(30, 6 * 365, n) * 86400
    orders = _Orders()
    t0, t_end = HISTORY_START.timestamp(), DATA_END.timestamp()
    everyone = np.arange(n)

    # -- web-onboarding: encouragement of store-only clients ------------------------------
    store_only = profile == "store"
    pop_on = everyone[store_only]
    on_arm = assign_arms(pl.Series(ids[pop_on]), "web-onboarding", "web_onboarding",
                         {"holdout": 0.5, "treatment": 0.5}).to_numpy()
    u = rng.random(len(pop_on))
    p0 = ADOPT_P0 * np.clip(value[pop_on], 0.5, 2.0)
    p1 = p0 + (ADOPT_P1 - ADOPT_P0)
    adopt = u < np.where(on_arm == "treatment", p1, p0)
    adopt_at = ONBOARD[0].timestamp() + rng.uniform(0, 7, len(pop_on)) * 86400
    adopted_time = np.full(n, np.inf)
    adopted_time[pop_on[adopt]] = adopt_at[adopt]
    # orders before the window (everyone), then in pieces around adoption
    orders.add(rng, everyone, np.full(n, t0), np.full(n, ONBOARD[0].timestamp()), rate, mix)
    switch = np.minimum(adopted_time, t_end)
    orders.add(rng, everyone, np.full(n, ONBOARD[0].timestamp()), np.minimum(
        switch, SPRING[0].timestamp()), rate, mix)
    web_mix = mix.copy()
    web_mix[:, 1] += 0.8
    web_mix /= web_mix.sum(axis=1, keepdims=True)
    adopters = everyone[np.isfinite(adopted_time)]
    orders.add(rng, adopters, adopted_time[adopters],
               np.full(len(adopters), SPRING[0].timestamp()),
               rate[adopters] * MULTI_PREMIUM, web_mix[adopters])
    rate_now = np.where(np.isfinite(adopted_time), rate * MULTI_PREMIUM, rate)
    mix_now = np.where(np.isfinite(adopted_time)[:, None], web_mix, mix)
    complier = (u >= p0) & (u < p1)
    days_after = (ONBOARD[1].timestamp() - adopt_at) / 86400
    per_adopter = (MULTI_PREMIUM - 1) * rate[pop_on] * days_after * basket_mean[pop_on]
    onboarding_truth = ExperimentTruth(
        revenue={"web_onboarding": float(np.mean((p1 - p0) * per_adopter))},
        conversion={},
        extra={"first_stage": float(np.mean(p1 - p0)),
               "iv_effect": float(per_adopter[complier].mean()),
               "itt": float(np.mean((p1 - p0) * per_adopter))})

    # -- spring-factorial ---------------------------------------------------------------
    pop_sp = everyone[optin["email"]]
    arms_sp = {c: assign_arms(pl.Series(ids[pop_sp]), "spring-factorial", c,
                              {"holdout": h, "treatment": 1 - h}).to_numpy() == "treatment"
               for c, h in SPRING_HOLDOUT.items()}
    e, s, m = arms_sp["email"], arms_sp["sms"], arms_sp["mail"]

    def mult(e_: np.ndarray | float, s_: np.ndarray | float, m_: np.ndarray | float
             ) -> np.ndarray | float:
        return (1 + SPRING_EFFECT["email"] * e_ + SPRING_EFFECT["sms"] * s_
                + SPRING_EFFECT["mail"] * m_ + SYNERGY_EMAIL_MAIL * e_ * m_
                + CANNIBAL_EMAIL_SMS * e_ * s_)

    sp_start, sp_end = SPRING[0].timestamp(), SPRING[1].timestamp()
    orders.add(rng, everyone, np.full(n, sp_start), np.full(n, t_end), rate_now, mix_now)
    extra_mix = np.tile([0.25, 0.6, 0.0, 0.0, 0.15], (len(pop_sp), 1))
    orders.add(rng, pop_sp, np.full(len(pop_sp), sp_start), np.full(len(pop_sp), sp_end),
               rate_now[pop_sp] * (mult(e, s, m) - 1), extra_mix)
    spring_days = _days(*SPRING)
    k_rev = rate_now[pop_sp] * spring_days * basket_mean[pop_sp]
    lam = rate_now[pop_sp] * spring_days
    ps = {c: 1 - h for c, h in SPRING_HOLDOUT.items()}
    rev_truth, conv_truth = {}, {}
    for ch in ("email", "sms", "mail"):
        diffs_rev, diffs_conv = 0.0, 0.0
        others = [c for c in ("email", "sms", "mail") if c != ch]
        for a in (0, 1):
            for b in (0, 1):
                w = (ps[others[0]] if a else 1 - ps[others[0]]) * (
                    ps[others[1]] if b else 1 - ps[others[1]])
                on = {ch: 1, others[0]: a, others[1]: b}
                off = {ch: 0, others[0]: a, others[1]: b}
                m_on = mult(on["email"], on["sms"], on["mail"])
                m_off = mult(off["email"], off["sms"], off["mail"])
                diffs_rev += w * (m_on - m_off) * k_rev.mean()
                diffs_conv += w * np.mean(np.exp(-lam * m_off) - np.exp(-lam * m_on))
        rev_truth[ch] = float(diffs_rev)
        conv_truth[ch] = float(diffs_conv)
    spring_truth = ExperimentTruth(rev_truth, conv_truth, {
        "interaction_email_mail": float(SYNERGY_EMAIL_MAIL * k_rev.mean()),
        "interaction_email_sms": float(CANNIBAL_EMAIL_SMS * k_rev.mean()),
        "interaction_sms_mail": 0.0})

    # -- email-flash: a batch send whose orders arrive within hours ------------------------
    pop_fl = everyone[optin["email"]]
    fl_arm = assign_arms(pl.Series(ids[pop_fl]), "email-flash", "email",
                         {"holdout": 0.1, "treatment": 0.9}).to_numpy() == "treatment"
    treated = pop_fl[fl_arm]
    extra_rate = FLASH_EXTRA * np.sqrt(value[treated])
    k = rng.poisson(extra_rate)
    who = np.repeat(treated, k)
    delay = rng.exponential(FLASH_DELAY_HOURS * 3600, len(who))
    keep = FLASH_SEND.timestamp() + delay < t_end
    orders.cust.append(who[keep])
    orders.when.append(FLASH_SEND.timestamp() + delay[keep])
    orders.chan.append(np.where(rng.random(keep.sum()) < 0.8, 1, 0))
    horizon = 1 - np.exp(-(t_end - FLASH_SEND.timestamp()) / 3600 / FLASH_DELAY_HOURS)
    base_lam = rate_now[pop_fl] * _days(FLASH_START, DATA_END)
    flash_extra = np.zeros(len(pop_fl))
    flash_extra[fl_arm] = extra_rate * horizon
    flash_truth = ExperimentTruth(
        revenue={"email": float(np.mean(FLASH_EXTRA * np.sqrt(value[pop_fl]) * horizon
                                        * basket_mean[pop_fl]))},
        conversion={"email": float(np.mean(np.exp(-base_lam) * (1 - np.exp(
            -FLASH_EXTRA * np.sqrt(value[pop_fl]) * horizon))))})

    # -- write the tables ---------------------------------------------------------------
    cust = np.concatenate(orders.cust)
    when = np.concatenate(orders.when)
    chan = np.concatenate(orders.chan)
    order = np.argsort(when, kind="stable")
    cust, when, chan = cust[order], when[order], chan[order]
    revenue = rng.lognormal(basket_mu[cust], 0.9)
    revenue = np.where(rng.random(len(cust)) < RETURN_SHARE, -revenue, revenue).round(2)
    pl.DataFrame({
        "order_id": np.arange(1, len(cust) + 1, dtype=np.int64), "customer_id": ids[cust],
        "ts": _ts(when), "channel": PURCHASE[chan], "revenue": revenue,
        "margin": (revenue * rng.uniform(0.35, 0.45, len(cust))).round(2),
    }).write_parquet(out_dir / "orders.parquet")
    pl.DataFrame({
        "customer_id": ids, "segment": segment, "region": rng.choice(REGIONS, n),
        "signup_date": _ts(signup).dt.date(), "optin_email": optin["email"],
        "optin_sms": optin["sms"], "optin_mail": optin["mail"], "profile": profile,
    }).write_parquet(out_dir / "customers.parquet")
    _write_assignments(out_dir, ids, pop_on, on_arm, pop_sp, arms_sp, pop_fl, fl_arm)
    _write_contacts_and_events(rng, out_dir, ids, pop_on, on_arm, pop_sp, arms_sp, treated,
                               uses_web, adopted_time, n)
    truth = SynthTruth(n, seed, {"web-onboarding": onboarding_truth,
                                 "spring-factorial": spring_truth, "email-flash": flash_truth},
                       {"causal_frequency_premium": MULTI_PREMIUM,
                        "share_multichannel": float(multi.mean())})
    atomic_write_text(out_dir / "truth.json", truth.to_json())
    return truth


def _write_assignments(out_dir: Path, ids: np.ndarray, pop_on: np.ndarray, on_arm: np.ndarray,
                       pop_sp: np.ndarray, arms_sp: dict[str, np.ndarray], pop_fl: np.ndarray,
                       fl_arm: np.ndarray) -> None:
    def rows(exp: str, start: dt.datetime, idx: np.ndarray, channel: str,
             group: np.ndarray) -> pl.DataFrame:
        return pl.DataFrame({"experiment_id": exp, "customer_id": ids[idx], "channel": channel,
                             "group": group, "assigned_at": [start] * len(idx)},
                            schema_overrides={"assigned_at": pl.Datetime("us", "UTC")})

    frames = [rows("web-onboarding", ONBOARD[0], pop_on, "web_onboarding", on_arm)]
    frames += [rows("spring-factorial", SPRING[0], pop_sp, c,
                    np.where(t, "treatment", "holdout")) for c, t in arms_sp.items()]
    frames.append(rows("email-flash", FLASH_SEND, pop_fl, "email",
                       np.where(fl_arm, "treatment", "holdout")))
    pl.concat(frames).write_parquet(out_dir / "assignments.parquet")


def _write_contacts_and_events(rng: np.random.Generator, out_dir: Path, ids: np.ndarray,
                               pop_on: np.ndarray, on_arm: np.ndarray, pop_sp: np.ndarray,
                               arms_sp: dict[str, np.ndarray], flash_treated: np.ndarray,
                               uses_web: np.ndarray, adopted_time: np.ndarray, n: int) -> None:
    sends: list[tuple[str, str, np.ndarray, float]] = [
        ("web-onboarding", "web_onboarding", pop_on[on_arm == "treatment"],
         ONBOARD[0].timestamp() + 10 * 3600)]
    for day, ch in ((2, "email"), (9, "email"), (16, "email"), (3, "sms"), (12, "sms"),
                    (2, "mail")):
        sends.append(("spring-factorial", ch, pop_sp[arms_sp[ch]],
                      SPRING[0].timestamp() + (day - 2) * 86400 + 9 * 3600))
    sends.append(("email-flash", "email", flash_treated, FLASH_SEND.timestamp()))
    contacts = pl.concat([pl.DataFrame({
        "customer_id": ids[idx], "channel": ch, "sent_at": _ts(np.full(len(idx), at)),
        "cost": COST[ch], "experiment_id": exp}) for exp, ch, idx, at in sends])
    contacts.write_parquet(out_dir / "contacts.parquet")
    events: list[pl.DataFrame] = []

    def emit(idx: np.ndarray, channel: str, event: str, when: np.ndarray) -> None:
        events.append(pl.DataFrame({"customer_id": ids[idx], "channel": channel,
                                    "event": event, "ts": _ts(when)}))

    for exp, ch, idx, at in sends:
        if ch != "email":
            continue
        opened = idx[rng.random(len(idx)) < 0.32]
        emit(opened, "email", "open", at + rng.exponential(5 * 3600, len(opened)))
        clicked = idx[rng.random(len(idx)) < (0.07 if exp == "email-flash" else 0.04)]
        emit(clicked, "email", "click", at + rng.exponential(7 * 3600, len(clicked)))
        bounced = idx[rng.random(len(idx)) < 0.004]
        emit(bounced, "email", "bounce", at + rng.uniform(0, 600, len(bounced)))
    # Unsubscribes and complaints: a small background rate for everyone, a little more after
    # an email (so the guardrail moves, without real harm).
    every = np.arange(n)
    for event, base, bump in (("unsubscribe", 0.0020, 0.0006), ("complaint", 0.0004, 0.0001)):
        hit = every[rng.random(n) < base]
        emit(hit, "email", event, rng.uniform(HISTORY_START.timestamp(),
                                              DATA_END.timestamp(), len(hit)))
        for _, ch, idx, at in sends:
            if ch == "email":
                extra = idx[rng.random(len(idx)) < bump]
                emit(extra, "email", event, at + rng.exponential(20 * 3600, len(extra)))
    web = every[uses_web]
    k = rng.poisson(0.03 * _days(HISTORY_START, DATA_END), len(web))
    emit(np.repeat(web, k), "web", "visit",
         rng.uniform(HISTORY_START.timestamp(), DATA_END.timestamp(), k.sum()))
    adopters = every[np.isfinite(adopted_time)]
    emit(adopters, "web", "account_created", adopted_time[adopters])
    frame = pl.concat(events)
    frame.filter(pl.col("ts") < DATA_END).sort("ts").write_parquet(out_dir / "events.parquet")
