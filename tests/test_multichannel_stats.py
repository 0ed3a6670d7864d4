"""Statistics of the multichannel analysis against independent routes: closed-form truths
with coverage over replications, a customer bootstrap, statsmodels' TreatmentEffect (GMM)
and IV2SLS, and a hand-written 2SLS sandwich."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate, stats
from statsmodels.sandbox.regression.gmm import IV2SLS
from statsmodels.treatment.treatment_effects import TreatmentEffect

from liftlab.multichannel import FACTORS, PairStats, ValueStats, adjust, decompose, wald_iv

Z = stats.norm.ppf(0.975)


def _coverage_ok(hits: np.ndarray) -> bool:
    """Coverage of a 95% CI within 3 binomial standard errors of 0.95."""
    reps = len(hits)
    return abs(hits.mean() - 0.95) < 3 * math.sqrt(0.05 * 0.95 / reps)


# ---------------------------------------------------------------- naive decomposition

# Poisson orders (rate lam) and gamma baskets (mean b): retention 1 - exp(-lam), frequency
# lam / (1 - exp(-lam)), basket b, value lam * b. Multi: lam 1.2, b 60; single: 0.6, 50.
GROUPS = {"multi": (1.2, 60.0), "single": (0.6, 50.0)}


def _truth(lam: float, basket: float) -> dict[str, float]:
    retention = 1 - math.exp(-lam)
    return {"retention": retention, "frequency": lam / retention, "basket": basket,
            "value": lam * basket}


def _group_sums(rng: np.random.Generator, reps: int, n: int, lam: float, basket: float
                ) -> list[ValueStats]:
    """Vectorised: reps x n clients, per-client revenue = sum of its orders' gamma baskets
    (a sum of k gamma(2, b/2) draws is gamma(2k, b/2))."""
    orders = rng.poisson(lam, (reps, n)).astype(float)
    revenue = np.where(orders > 0, rng.gamma(np.maximum(2 * orders, 1e-9), basket / 2), 0.0)
    return [ValueStats(n, *map(float, row)) for row in np.column_stack([
        (orders > 0).sum(1), orders.sum(1), revenue.sum(1), (orders**2).sum(1),
        (revenue**2).sum(1), (revenue * orders).sum(1)])]


def test_decomposition_cis_cover_the_closed_form_truth():
    rng = np.random.default_rng(11)
    reps = 400
    multi = _group_sums(rng, reps, 1500, *GROUPS["multi"])
    single = _group_sums(rng, reps, 3000, *GROUPS["single"])
    tm, ts = _truth(*GROUPS["multi"]), _truth(*GROUPS["single"])
    truth = {k: tm[k] / ts[k] for k in tm}
    decs = [decompose(m, s) for m, s in zip(multi, single, strict=True)]
    for f in FACTORS:
        hits = np.array([d.factors[f].ci[0] <= truth[f] <= d.factors[f].ci[1] for d in decs])
        assert _coverage_ok(hits), (f, hits.mean())
    hits = np.array([d.naive.ci[0] <= truth["value"] <= d.naive.ci[1] for d in decs])
    assert _coverage_ok(hits), hits.mean()
    # the identity holds exactly in every replication
    for d in decs:
        product = math.prod(d.factors[f].value for f in FACTORS)
        assert product == pytest.approx(d.naive.value, rel=1e-13)


def test_delta_method_standard_errors_match_a_customer_bootstrap():
    rng = np.random.default_rng(5)
    data = {}
    for g, (lam, b) in GROUPS.items():
        o = rng.poisson(lam, 3000).astype(float)
        data[g] = (o, np.where(o > 0, rng.gamma(np.maximum(2 * o, 1e-9), b / 2), 0.0))
    dec = decompose(ValueStats.from_values(*data["multi"]),
                    ValueStats.from_values(*data["single"]))

    def factors(o: np.ndarray, v: np.ndarray) -> np.ndarray:  # (B, n) -> (4, B)
        act, n = (o > 0).sum(1), o.shape[1]
        return np.log(np.stack([act / n, o.sum(1) / act, v.sum(1) / o.sum(1), v.sum(1) / n]))

    boot = []
    for g in ("multi", "single"):
        o, v = data[g]
        idx = rng.integers(0, len(o), (1000, len(o)))
        boot.append(factors(o[idx], v[idx]))
    sd = (boot[0] - boot[1]).std(axis=1, ddof=1)
    ours = [dec.factors["retention"].se_log, dec.factors["frequency"].se_log,
            dec.factors["basket"].se_log, dec.naive.se_log]
    np.testing.assert_allclose(ours, sd, rtol=0.08)


def test_value_stats_add_up_and_factor_the_value():
    rng = np.random.default_rng(0)
    o = rng.poisson(0.8, 500).astype(float)
    v = o * rng.gamma(3, 20, 500) - (rng.random(500) < 0.02) * 15  # a few returns
    whole = ValueStats.from_values(o, v)
    parts = ValueStats.from_values(o[:200], v[:200]) + ValueStats.from_values(o[200:], v[200:])
    for name in ("n", "active", "orders", "revenue", "orders_sq", "revenue_sq",
                 "revenue_orders"):
        assert getattr(parts, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    assert whole.retention * whole.frequency * whole.basket == pytest.approx(v.mean(),
                                                                               rel=1e-12)
    assert whole.frequency == pytest.approx(o[o > 0].mean(), rel=1e-12)


# ---------------------------------------------------------------- adjustment for selection


def _selected(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed confounders x drive both multichannel use and value; linear outcome and
    logit propensity (both models correctly specified). E[Y(1)] = 60 + 12, E[Y(0)] = 60."""
    x = rng.normal(size=(n, 2))
    d = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 0.9 * x[:, 0] - 0.6 * x[:, 1])))).astype(float)
    y = 60 + 15 * x[:, 0] + 5 * x[:, 1] + 12 * d + rng.normal(0, 20, n) * (1 + 0.5 * d)
    return x, d, y


TRUE_ADJUSTED = 72 / 60


def test_adjusted_estimates_match_statsmodels_treatment_effect():
    x, d, y = _selected(np.random.default_rng(3), 4000)
    ours = adjust(x, d, y, ["x1", "x2"])
    X = sm.add_constant(x)
    te = TreatmentEffect(sm.OLS(y, X), d.astype(int), results_select=sm.Logit(d, X).fit(disp=0))
    for method, name in (("ra", "regression"), ("ipw", "ipw"), ("aipw", "aipw")):
        gmm = getattr(te, method)().results_gmm
        ate, pom0 = gmm.params[:2]
        assert ours.means[name][0] == pytest.approx(ate + pom0, rel=1e-9), method
        assert ours.means[name][1] == pytest.approx(pom0, rel=1e-9), method
        grad = np.array([1 / (ate + pom0), 1 / (ate + pom0) - 1 / pom0])
        se_log = math.sqrt(grad @ gmm.cov_params()[:2, :2] @ grad)
        # RA and IPW: same linearisation (nuisance estimation included); AIPW: GMM also
        # propagates the nuisance fits, which matter only to second order
        tol = 0.03 if name == "aipw" else 0.002
        assert ours.ratios[name].se_log == pytest.approx(se_log, rel=tol), method


def test_adjusted_cis_cover_the_truth_over_replications():
    rng = np.random.default_rng(8)
    reps = 200
    hits = {k: np.zeros(reps, bool) for k in ("regression", "ipw", "aipw")}
    naive = np.zeros(reps)
    for r in range(reps):
        x, d, y = _selected(rng, 1500)
        est = adjust(x, d, y, ["x1", "x2"])
        for k in hits:
            lo, hi = est.ratios[k].ci
            hits[k][r] = lo <= TRUE_ADJUSTED <= hi
        naive[r] = y[d == 1].mean() / y[d == 0].mean()
    assert naive.mean() > TRUE_ADJUSTED + 0.15  # the naive ratio is biased by selection
    for k, h in hits.items():
        assert _coverage_ok(h), (k, h.mean())


def test_poor_overlap_is_diagnosed_and_warned():
    rng = np.random.default_rng(4)
    n = 4000
    x = rng.normal(size=(n, 1))
    d = (rng.random(n) < 1 / (1 + np.exp(-4 * x[:, 0]))).astype(float)
    y = 50 + 10 * x[:, 0] + 5 * d + rng.normal(0, 10, n)
    est = adjust(x, d, y, ["x"])
    assert est.overlap.poor and est.overlap.share_extreme > 0.3
    assert est.overlap.max_abs_smd_before > 1.5
    assert len(est.warnings) == 1 and "poor overlap" in est.warnings[0]
    good = adjust(*_selected(rng, 4000), ["x1", "x2"])
    assert not good.overlap.poor and good.warnings == ()
    assert good.overlap.max_abs_smd_after < 0.05 < good.overlap.max_abs_smd_before
    hist = good.overlap.propensity_histogram
    assert sum(hist["multi"]) + sum(hist["single"]) == 4000


# ---------------------------------------------------------------- encouragement experiment

SIGMA = 0.6


def _p_always(v: np.ndarray | float) -> np.ndarray | float:
    return 0.05 + 0.10 * v / (1 + v)


def _p_complier(v: np.ndarray | float) -> np.ndarray | float:
    return 0.35 * v / (1 + v)  # the better clients respond more: selective adoption


def _effect(v: np.ndarray | float) -> np.ndarray | float:
    return 0.4 * 30 * v  # adopting lifts this client's revenue by 40%


def _late_truth() -> float:
    """E[effect | complier] by quadrature over the lognormal value (independent of the
    simulation below)."""
    pdf = stats.lognorm(SIGMA).pdf
    num = integrate.quad(lambda v: _effect(v) * _p_complier(v) * pdf(v), 0, np.inf)[0]
    den = integrate.quad(lambda v: _p_complier(v) * pdf(v), 0, np.inf)[0]
    return num / den


def _encouragement(rng: np.random.Generator, reps: int, n: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v = rng.lognormal(0, SIGMA, (reps, n))
    z = rng.random((reps, n)) < 0.5
    u = rng.random((reps, n))
    d = ((u < _p_always(v)) | (z & (u < _p_always(v) + _p_complier(v)))).astype(float)
    y = 30 * v + _effect(v) * d + rng.normal(0, 15, (reps, n))
    return z, d, y


def _arms(z: np.ndarray, d: np.ndarray, y: np.ndarray) -> list[tuple[PairStats, PairStats]]:
    """PairStats of both arms of every replication, from vectorised sums."""
    out = []
    cols = [lambda m: m.sum(1), lambda m: (y * m).sum(1), lambda m: (d * m).sum(1),
            lambda m: (y * y * m).sum(1), lambda m: (d * d * m).sum(1),
            lambda m: (y * d * m).sum(1)]
    t = np.column_stack([c(z) for c in cols])
    c = np.column_stack([c(~z) for c in cols])
    for a, b in zip(t, c, strict=True):
        out.append((PairStats(int(a[0]), *map(float, a[1:])),
                    PairStats(int(b[0]), *map(float, b[1:]))))
    return out


def test_wald_equals_2sls_and_its_robust_sandwich():
    z, d, y = (a[0] for a in _encouragement(np.random.default_rng(1), 1, 20_000))
    t, c = _arms(z[None], d[None], y[None])[0]
    est = wald_iv(t, c)
    iv = IV2SLS(y, sm.add_constant(d), sm.add_constant(z.astype(float))).fit()
    assert est.effect == pytest.approx(iv.params[1], rel=1e-9)
    # HC sandwich of the just-identified IV, by hand: A^-1 B A^-T with instruments (1, z),
    # scaling each arm's residuals by n / (n - 1) (the per-arm sample variances)
    Zm, Xm = sm.add_constant(z.astype(float)), sm.add_constant(d)
    u = y - Xm @ iv.params
    scale = np.where(z, z.sum() / (z.sum() - 1), (~z).sum() / ((~z).sum() - 1))
    a_inv = np.linalg.inv(Zm.T @ Xm)
    meat = (Zm * (u**2 * scale)[:, None]).T @ Zm
    se = math.sqrt((a_inv @ meat @ a_inv.T)[1, 1])
    assert (est.effect_ci[1] - est.effect) / Z == pytest.approx(se, rel=1e-9)
    first = sm.OLS(d, Zm).fit(cov_type="HC2")  # HC2 = per-arm ddof-1 variances here
    assert est.first_stage == pytest.approx(first.params[1], rel=1e-9)
    assert (est.first_stage_ci[1] - est.first_stage) / Z == pytest.approx(first.bse[1],
                                                                            rel=1e-9)
    assert not est.weak_instrument and est.first_stage_f == pytest.approx(first.tvalues[1]**2,
                                                                            rel=1e-9)


def test_iv_covers_the_late_over_replications():
    truth = _late_truth()
    z, d, y = _encouragement(np.random.default_rng(2), 400, 4000)
    ests = [wald_iv(t, c) for t, c in _arms(z, d, y)]
    effects = np.array([e.effect for e in ests])
    hits = np.array([e.effect_ci[0] <= truth <= e.effect_ci[1] for e in ests])
    assert _coverage_ok(hits), hits.mean()
    assert abs(effects.mean() - truth) < 3 * effects.std() / math.sqrt(len(effects))
    # the naive adopters-vs-others gap is inflated by the selective adoption
    naive = ((y * d).sum(1) / d.sum(1) - (y * (1 - d)).sum(1) / (1 - d).sum(1)).mean()
    assert naive > 1.2 * truth


def test_pair_stats_add_up():
    rng = np.random.default_rng(9)
    y, d = rng.normal(size=300), (rng.random(300) < 0.3).astype(float)
    whole = PairStats.from_values(y, d)
    parts = PairStats.from_values(y[:100], d[:100]) + PairStats.from_values(y[100:], d[100:])
    np.testing.assert_allclose(parts.moments(), whole.moments(), rtol=1e-12)
    my, md, vy, vd, cyd = whole.moments()
    np.testing.assert_allclose([my, md], [y.mean(), d.mean()], rtol=1e-12)
    np.testing.assert_allclose([vy, vd, cyd], np.cov(y, d, ddof=1)[[0, 1, 0], [0, 1, 1]],
                               rtol=1e-10)


def test_a_propensity_fit_that_does_not_converge_is_warned(tmp_path):
    """Covariates that separate the groups stop the logit at its iteration limit; the
    result once said nothing about it, in the JSON or on the page."""
    from pathlib import Path

    from liftlab.report.pages import render_multichannel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2))
    d = (x[:, 0] > 0).astype(float)
    adjusted = adjust(x, d, rng.lognormal(3, 1, 2000), ["a", "b"])
    warned = [w for w in adjusted.warnings if "did not converge" in w]
    assert warned and "IPW and AIPW figures are unreliable" in warned[0]
    fine = adjust(x, (rng.random(2000) < 0.4).astype(float), rng.lognormal(3, 1, 2000),
                  ["a", "b"])
    assert not any("did not converge" in w for w in fine.warnings)
    mc = json.loads((Path(__file__).parent / "fixtures" / "multichannel.json").read_text())
    html = render_multichannel({**mc, "warnings": warned}, tmp_path)
    assert "did not converge in 200 iterations" in html


def test_a_weak_or_missing_instrument_is_a_results_warning():
    from dataclasses import replace

    from liftlab.analysis import IvSection, _iv_warnings
    from liftlab.multichannel import IvEstimate

    base = IvEstimate("x", 0.2, (0.1, 0.3), 0.2, (0.1, 0.3), 1.0, (0.5, 1.5), 50.0, False)

    def section(**changes: object) -> IvSection:
        return IvSection(replace(base, **changes), "revenue", "adopted")

    assert _iv_warnings(section()) == []
    weak = _iv_warnings(section(first_stage_f=3.0, weak_instrument=True))
    assert weak[0].code == "iv" and "first-stage F = 3" in weak[0].message
    none = _iv_warnings(section(effect=math.nan, first_stage=0.0))
    assert "did not change adoption" in none[0].message
    assert "fewer than 2 units" in _iv_warnings(None)[0].message
