"""The hierarchical model on simulated unit-level data with known lifts (reduced to sufficient
statistics): coverage of the truth, shrinkage of noisy small segments, agreement with the
frequentist revenue estimate when there is nothing to pool, reproducible draws, and poor
convergence reported."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from liftlab.stats.bayes import prob_roi_positive
from liftlab.stats.frequentist import welch
from liftlab.stats.hierarchical import RevenueCell, _diagnostics, fit_hierarchical
from liftlab.stats.suffstats import ArmStats

MU, SIGMA = 3.5, 0.8  # buyers' spend ~ lognormal(MU + g, SIGMA)
CHANNELS = {"email": (0.15, 0.04), "sms": (0.05, 0.0), "mail": (0.25, 0.08)}  # (d, g) means
SIZES = (20_000, 10_000, 5_000, 1_000, 300)  # treated units per segment; holdout is 1/4
FIT = {"draws": 300, "tune": 300, "chains": 2}


def _cells(channel: str, segment: str, y_t: np.ndarray, y_h: np.ndarray) -> list[RevenueCell]:
    out = []
    for treated, y in ((True, y_t), (False, y_h)):
        s = ArmStats.from_values(y)
        out.append(RevenueCell(channel, segment, treated, s.n, int((y > 0).sum()), s.sum, s.sum_sq))
    return out


def _units(rng: np.random.Generator, n: int, p: float, log_spend: float) -> np.ndarray:
    """Revenue of n units: a buyer with probability p spends lognormal(log_spend, SIGMA)."""
    buys = rng.random(n) < p
    return np.where(buys, rng.lognormal(log_spend, SIGMA, n), 0.0)


def simulate(seed: int) -> tuple[list[RevenueCell], dict[tuple[str, str], float]]:
    """3 channels x 5 segments; segment lifts scatter around the channel's (the model's
    assumption); returns the cells and the true revenue lift per unit of each segment."""
    rng = np.random.default_rng(seed)
    cells, truth = [], {}
    for channel, (d_c, g_c) in CHANNELS.items():
        for j, n in enumerate(SIZES):
            seg = f"s{j}"
            p0, m0 = 0.04 + 0.01 * j, MU + 0.1 * (j - 2)  # baselines differ by segment
            d, g = d_c + rng.normal(0, 0.05), g_c + rng.normal(0, 0.03)
            p1 = 1 / (1 + math.exp(-(math.log(p0 / (1 - p0)) + d)))
            y_t, y_h = _units(rng, n, p1, m0 + g), _units(rng, n // 4, p0, m0)
            cells += _cells(channel, seg, y_t, y_h)
            spend = math.exp(m0 + SIGMA**2 / 2)
            truth[(channel, seg)] = p1 * spend * math.exp(g) - p0 * spend
    return cells, truth


def _raw(cells: list[RevenueCell]) -> dict[tuple[str, str], float]:
    per_unit: dict[tuple[str, str], dict[bool, float]] = {}
    for c in cells:
        per_unit.setdefault((c.channel, c.segment), {})[c.treated] = c.revenue / c.n
    return {k: v[True] - v[False] for k, v in per_unit.items()}


@pytest.fixture(scope="module", params=[0, 1])
def fitted(request):
    cells, truth = simulate(request.param)
    return cells, truth, fit_hierarchical(cells, seed=3, **FIT)


def test_posterior_covers_the_truth_in_most_cells(fitted):
    _, truth, res = fitted
    seg = [x for x in res.lifts if x.segment is not None]
    covered = sum(x.hdi[0] <= truth[(x.channel, x.segment)] <= x.hdi[1] for x in seg)
    assert len(seg) == 15
    assert covered >= 12, f"only {covered} of 15 95% HDIs cover the true lift"


def test_small_segments_shrink_toward_their_channel(fitted):
    """The 6 small segments (1,000 and 300 treated units): their posterior means sit closer to
    their channel's than the raw estimates do (in total, and for most of them; a raw estimate
    can land near the channel's by chance), and they are closer to the truth."""
    cells, truth, res = fitted
    raw = _raw(cells)
    small = [(ch, s) for ch in CHANNELS for s in ("s3", "s4")]
    post = {k: res.lift(*k).mean for k in small}
    chan = {ch: res.lift(ch).mean for ch in CHANNELS}
    dist_post = np.array([abs(post[k] - chan[k[0]]) for k in small])
    dist_raw = np.array([abs(raw[k] - chan[k[0]]) for k in small])
    assert dist_post.sum() < 0.6 * dist_raw.sum(), (dist_post, dist_raw)
    assert (dist_post < dist_raw).sum() >= 4, (dist_post, dist_raw)
    err_post = np.mean([abs(post[k] - truth[k]) for k in small])
    err_raw = np.mean([abs(raw[k] - truth[k]) for k in small])
    assert err_post < 0.7 * err_raw, f"posterior error {err_post:.3f} vs raw {err_raw:.3f}"


def test_channel_overall_summaries_and_result_fields(fitted):
    _, _, res = fitted
    for ch in CHANNELS:
        overall = res.lift(ch)
        segs = [res.lift(ch, f"s{j}") for j in range(5)]
        assert min(s.mean for s in segs) <= overall.mean <= max(s.mean for s in segs)
        assert overall.hdi[0] < overall.mean < overall.hdi[1]
    d = res.to_dict()
    assert set(d["diagnostics"]) >= {"r_hat_max", "ess_bulk_min", "ess_tail_min",
                                     "divergences", "warnings"}
    effect = d["effects"][0]
    assert effect["prob_positive"] == effect["bayes"]["prob_positive"]
    assert set(effect["bayes"]) >= {"mean", "hdi", "prob_positive", "prob_roi_positive",
                                    "method"}


def _one_pair(seed: int, n: int) -> tuple[list[RevenueCell], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_t, y_h = _units(rng, n, 0.06, MU), _units(rng, n, 0.05, MU)
    return _cells("email", "all", y_t, y_h), y_t, y_h


def test_without_pooling_it_reproduces_the_welch_revenue_estimate():
    """One channel, one large segment: the zero-inflated model's posterior of revenue per unit
    must match the plain Welch estimate and SE of revenue computed from the same units, and its
    P(ROI > 0) the normal-theory value for that posterior."""
    cells, y_t, y_h = _one_pair(7, 40_000)
    lift = welch(ArmStats.from_values(y_t), ArmStats.from_values(y_h))
    n_treated, margin, cost = 40_000, 0.4, 0.35 * lift.abs * 40_000
    res = fit_hierarchical(cells, seed=11, costs={"email": (cost, n_treated, margin)}, **FIT)
    post = res.lift("email", "all")
    sd = (post.hdi[1] - post.hdi[0]) / (2 * 1.96)
    assert post.mean == pytest.approx(lift.abs, abs=0.15 * lift.abs_se)
    assert sd == pytest.approx(lift.abs_se, rel=0.15)
    want = prob_roi_positive(margin * post.mean, margin * sd, n_treated, cost)
    assert res.lift("email").prob_roi_positive == pytest.approx(want, abs=0.05)


def test_poor_convergence_is_reported_and_reruns_are_identical():
    """Tiny runs must warn. A rerun gives identical numbers, even when the sums differ in the
    last bits (as from a parallel aggregation summing in another order)."""
    cells, _, _ = _one_pair(8, 5_000)
    nudged = [replace(c, revenue=c.revenue * (1 + 4e-16), revenue_sq=c.revenue_sq * (1 - 4e-16))
              for c in cells]
    assert nudged != cells
    a = fit_hierarchical(cells, seed=5, draws=40, tune=40)
    b = fit_hierarchical(nudged, seed=5, draws=40, tune=40)
    c = fit_hierarchical(cells, seed=6, draws=40, tune=40)
    assert any("ESS" in w for w in a.warnings), a.warnings
    assert a.to_dict()["diagnostics"]["warnings"] == list(a.warnings)
    assert [x.mean for x in a.lifts] == [x.mean for x in b.lifts]
    assert [x.hdi for x in a.lifts] == [x.hdi for x in b.lifts]
    assert [x.mean for x in a.lifts] != [x.mean for x in c.lifts]


def test_disagreeing_chains_and_divergences_raise_warnings():
    """Diagnostics on a hand-made trace: two chains stuck in different places (r_hat >> 1.01)
    with 3 divergent transitions."""
    rng = np.random.default_rng(0)
    shape = (2, 500)
    offset = np.array([0.0, 3.0])[:, None]
    post = {name: rng.normal(size=shape) + offset for name in
            ("a", "b", "mu_d", "tau_d", "z_d", "mu_g", "tau_g", "z_g")}
    diverging = np.zeros(shape, dtype=bool)
    diverging[0, :3] = True
    diag = _diagnostics(post, diverging, {"email": rng.normal(size=shape)}, "pymc", 500, 500, 2,
                        1, 0.95, 0.0, 0.0)
    assert diag.r_hat_max > 1.5 and diag.divergences == 3
    assert any("r_hat" in w for w in diag.warnings)
    assert any("divergent" in w for w in diag.warnings)
    good = {name: rng.normal(size=(2, 2000)) for name in post}
    ok = _diagnostics(good, np.zeros((2, 2000), dtype=bool),
                      {"email": rng.normal(size=(2, 2000))}, "pymc", 2000, 500, 2, 1, 0.95, 0.0,
                      0.0)
    assert ok.warnings == () and ok.ok


def test_bad_cells_are_refused_with_the_cell_named():
    with pytest.raises(ValueError, match=r"email/s0/treatment: 12 buyers out of 10 units"):
        fit_hierarchical([RevenueCell("email", "s0", True, 10, 12, 50.0, 500.0)])


def test_target_accept_is_read_from_the_yaml_and_bounded(monkeypatch, tiny_data):
    """`analysis.target_accept` (advised by the divergence warning) reaches the sampler."""
    import yaml
    from pydantic import ValidationError

    import liftlab.stats.hierarchical as hierarchical
    from liftlab.analyses.experiment import analyze
    from liftlab.engines.open import open_engine
    from liftlab.spec.models import Experiment

    from tinydata import SPEC_YAML

    class Reached(Exception):
        pass

    def fake_fit(*args, target_accept, **kwargs):
        raise Reached(target_accept)

    raw = yaml.safe_load(SPEC_YAML)
    assert Experiment.model_validate(raw).analysis.target_accept == 0.95
    raw["analysis"] = {"bayes": "hierarchical", "target_accept": 0.99}
    assert Experiment.model_validate(raw).analysis.target_accept == 0.99
    monkeypatch.setattr(hierarchical, "fit_hierarchical", fake_fit)
    with pytest.raises(Reached, match=r"0\.99"):
        analyze(Experiment.model_validate(raw), open_engine(tiny_data))
    for bad in (0.3, 1.0):
        raw["analysis"]["target_accept"] = bad
        with pytest.raises(ValidationError):
            Experiment.model_validate(raw)


def test_hdi_and_convergence_match_arviz():
    """The HDI computed here is ArviZ's (either major version), and the diagnostics are ArviZ's
    summary columns on the same draws (tail ESS at the 5% and 95% quantiles)."""
    import arviz as az

    from liftlab.stats.hierarchical import _convergence, _hdi

    rng = np.random.default_rng(4)
    x = rng.lognormal(0.0, 0.7, size=(2, 700))
    key = "prob" if int(az.__version__.split(".")[0]) >= 1 else "hdi_prob"
    for prob in (0.5, 0.9, 0.95):
        assert _hdi(x, prob) == pytest.approx(tuple(az.hdi(x.ravel(), **{key: prob})), abs=0)
    series = rng.normal(size=(2, 400, 3)) + np.array([0.0, 2.0])[:, None, None] * [0, 1, 0]
    r_hat, bulk, tail = _convergence(series)
    assert r_hat == pytest.approx(float(az.rhat(series[:, :, 1])))
    assert bulk == pytest.approx(min(float(az.ess(series[:, :, k], method="bulk"))
                                     for k in range(3)))
    assert r_hat > 1.5 and bulk < 20 and 0 < tail < 400


def test_divergence_advice_suggests_a_target_accept_above_the_one_used():
    from liftlab.stats.hierarchical import divergence_advice

    assert "(e.g. 0.99)" in divergence_advice(0.95)
    assert "(e.g. 0.995)" in divergence_advice(0.99)
    assert "(e.g. 0.999)" in divergence_advice(0.995)
    assert "target_accept is already at its ceiling" in divergence_advice(0.999)
