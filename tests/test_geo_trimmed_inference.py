"""Trimmed match's randomization inference (the default, ``interval: randomization``): the
sign-flip test of the studentized trimmed mean within randomised matched pairs, inverted
over the iROAS; and the published normal interval kept as ``interval: normal``.

Independent routes: the README example's p-value in closed form (all five residuals
positive: only the observed pattern and its mirror are as extreme, 2/32); a plain Python
enumeration of the sign patterns; the interval's ends checked against the test on both
sides; and simulation with known truth.

The simulated world (``replicate``): 2n regions of lognormal(0, 1) sizes, 56 pre-period and
28 test days of sales (weekly cycle, a drift of its own per region, 5% daily noise), paired
on the pre-period sales as ``liftlab plan`` pairs them (``match_pairs``), a seeded coin
choosing the treatment region of each pair (``randomise``). Every region has a baseline
spend of about 10 x its size a day; the treatment region gets 2.5 to 7.5 x its size a day
more, each extra euro returning ``iroas`` (2, or 0 for an A/A test).
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from liftlab.analyses.geo_pairs import match_pairs, randomise
from liftlab.stats.geo import trimmed_match
from test_geo import _paired_regions, invoke

N_PRE, N_TEST, IROAS = 56, 28, 2.0


def replicate(n_pairs: int, seed: int, iroas: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs' test-period KPI and spend differences (treatment minus control)."""
    rng = np.random.default_rng(seed)
    g = 2 * n_pairs
    size = rng.lognormal(0, 1, g)
    t = np.arange(N_PRE + N_TEST)
    level = 100 * (1 + 0.2 * np.sin(2 * np.pi * t / 7))
    drift = rng.normal(0, 0.003, g)
    noise = 1 + rng.normal(0, 0.05, (len(t), g))
    y0 = size * level[:, None] * (1 + drift[None, :] * t[:, None]) * noise
    base = 10 * size * (1 + rng.normal(0, 0.1, g))
    pairs, left_out = match_pairs(list(range(g)), y0[:N_PRE].sum(axis=0))
    d = randomise(pairs, left_out, seed + 10_000)
    tr, co = list(d.treatment), list(d.control)
    extra = 5 * size[tr] * rng.uniform(0.5, 1.5, n_pairs) * N_TEST
    dx = (base[tr] - base[co]) * N_TEST + extra
    dy = y0[N_PRE:, tr].sum(axis=0) - y0[N_PRE:, co].sum(axis=0) + iroas * extra
    return dy, dx


def _slow_statistic(e: list[float]) -> float:
    """The studentized trimmed mean with its trim chosen from the residuals, written out."""
    n, s = len(e), sorted(e)
    rows = []
    for m in range(n):
        if m / n > trimmed_match.MAX_TRIM_RATE or n - 2 * m < 2:
            break
        kept = s[m : n - m]
        w = [s[m]] * m + kept + [s[n - m - 1]] * m
        mean = sum(w) / n
        scale = (n - 2 * m) / (n - 2 * m - 1) * sum((x - mean) ** 2 for x in w)
        wss = m * (s[m] ** 2 + s[n - m - 1] ** 2) + sum(x * x for x in kept)
        total = abs(sum(kept))
        rows.append((math.sqrt(wss) / (n - 2 * m), total / math.sqrt(scale)))
    best = min(se for se, _ in rows)
    return next(t for se, t in rows if se <= (1 + 0.25 / math.sqrt(n)) * best)


def test_readme_example_normal_and_randomization():
    """google/trimmed_match README: dy [1, 10, 3, 8, 5], dx [1, 5, 2, 5, 3], 80%:
    iroas 1.60, ci (1.52, 1.66) with the normal interval (interval: normal). With
    randomization the 32 sign patterns are enumerated; at iROAS 0 every residual is
    positive, so only that pattern and its mirror are as extreme: p = 2/32."""
    dy, dx = [1, 10, 3, 8, 5], [1, 5, 2, 5, 3]
    normal = trimmed_match.fit(dy, dx, confidence=0.80, inference="normal")
    assert (f"{normal.ci[0]:.2f}", f"{normal.ci[1]:.2f}") == ("1.52", "1.66")
    assert normal.inference == "normal" and normal.sign_patterns == 0
    rand = trimmed_match.fit(dy, dx, confidence=0.80)
    assert rand.inference == "randomization" and rand.exact and rand.sign_patterns == 32
    assert f"{rand.estimate:.2f}" == "1.60" and rand.p_value == pytest.approx(2 / 32)
    assert rand.ci[0] < rand.estimate < rand.ci[1]
    # 3 pairs: the smallest p-value is 2/8, so a 95% interval is unbounded
    three = trimmed_match.fit([1, 10, 3], [1, 5, 2], confidence=0.95)
    assert three.ci == (-math.inf, math.inf) and three.p_value == pytest.approx(0.25)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_p_value_by_plain_enumeration(seed):
    dy, dx = replicate(6, seed, IROAS)
    for theta in (0.0, 1.5, IROAS, 2.5):
        e = dy - theta * dx
        observed = _slow_statistic(list(e))
        as_extreme = sum(
            _slow_statistic([s * x for s, x in zip(signs, e, strict=True)]) >= observed * (1 - 1e-9)
            for signs in itertools.product((1, -1), repeat=6)
        )
        signs = trimmed_match.sign_patterns(6, 0)
        assert trimmed_match.randomization_p(e, signs) == pytest.approx(as_extreme / 64)


def test_interval_ends_are_where_the_test_starts_rejecting():
    for n, seed in ((10, 4), (25, 5)):
        dy, dx = replicate(n, seed, IROAS)
        fit = trimmed_match.fit(dy, dx, confidence=0.95, seed=7)
        signs = trimmed_match.sign_patterns(n, 7)
        lo, hi = fit.ci
        assert lo < fit.estimate < hi
        width = hi - lo
        for end, outward in ((lo, -1), (hi, 1)):
            assert trimmed_match.randomization_p(dy - end * dx, signs) > 0.05
            assert (
                trimmed_match.randomization_p(dy - (end + outward * 1e-5 * width) * dx, signs)
                <= 0.05
            )


def test_interval_when_the_test_rejects_the_point_estimate():
    """The test's trim is chosen from the residuals, Chen and Au's from the estimate's
    standard error: here (10 pairs, some spend differences near zero or negative) they
    differ, and the test rejects the estimate 8.99 (p = 12/1,024); the interval is where it
    does not reject, and it holds the true iROAS 2."""
    dy, dx = replicate(10, 80, IROAS)
    fit = trimmed_match.fit(dy, dx, confidence=0.95, seed=80)
    signs = trimmed_match.sign_patterns(10, 80)
    assert trimmed_match.randomization_p(dy - fit.estimate * dx, signs) == pytest.approx(12 / 1024)
    lo, hi = fit.ci
    assert lo == -math.inf and IROAS < hi < fit.estimate
    assert trimmed_match.randomization_p(dy - hi * dx, signs) > 0.05
    assert trimmed_match.randomization_p(dy - (hi + 1e-4) * dx, signs) <= 0.05


def test_a_warning_when_the_interval_excludes_the_estimate():
    """The analysis says so when the randomization interval leaves out the point estimate
    (the case above), and stays silent when it holds it."""
    from types import SimpleNamespace

    from liftlab.analyses.geo import _warnings

    spec = SimpleNamespace(max_pre_mape=0.1, alpha=0.05)
    codes = {}
    for n, seed in ((10, 80), (25, 5)):
        dy, dx = replicate(n, seed, IROAS)
        fit = trimmed_match.fit(dy, dx, confidence=0.95, seed=seed)
        d = {"iroas": fit.estimate, "iroas_ci": list(fit.ci)}
        stub = SimpleNamespace(effect_ci=(-1.0, 1.0))
        codes[n] = [w["code"] for w in _warnings(spec, stub, d, None)]  # type: ignore[arg-type]
    assert codes[10] == ["geo_estimate_outside_interval"]
    assert codes[25] == []


def test_monte_carlo_reference_is_seeded():
    dy, dx = replicate(20, 3, 0.0)
    a, b = trimmed_match.fit(dy, dx, 0.95, seed=11), trimmed_match.fit(dy, dx, 0.95, seed=11)
    assert a == b and not a.exact and a.sign_patterns == trimmed_match.RANDOMIZATION_DRAWS
    # (1 + k) / (1 + B): a valid Monte Carlo p-value, never 0
    k = a.p_value * (1 + a.sign_patterns) - 1
    assert k == pytest.approx(round(k)) and a.p_value > 0
    other = trimmed_match.fit(dy, dx, 0.95, seed=12)
    assert abs(other.p_value - a.p_value) < 4 * math.sqrt(0.25 / a.sign_patterns) + 1e-9


def _aa_calls(n: int, reps: int, inference: trimmed_match.Inference) -> float:
    calls = 0
    for rep in range(reps):
        dy, dx = replicate(n, rep, 0.0)
        calls += trimmed_match.p_value(dy, dx, inference=inference, seed=rep) < 0.05
    return calls / reps


def _coverage(n: int, reps: int) -> float:
    hits = 0
    for rep in range(reps):
        dy, dx = replicate(n, rep, IROAS)
        lo, hi = trimmed_match.fit(dy, dx, 0.95, seed=rep).ci
        hits += lo <= IROAS <= hi
    return hits / reps


def test_aa_calls_hold_alpha_with_few_pairs():
    """A fixed sample of the grid: 10 pairs (exact enumeration), 600 A/A tests: measured
    4.8% (Monte Carlo error 0.9 points); the normal interval calls 6.3% of the same tests.
    The exact test's size is at most 5% for any trim fixed in advance; the trim chosen from
    the residuals is part of the statistic, so it is at most 5% here too, up to the
    Monte Carlo error of the 600 replications."""
    rate = _aa_calls(10, 600, "randomization")
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 600), rate


def test_coverage_with_few_pairs():
    """A fixed sample of the grid: 10 pairs, 100 replications: measured coverage 99.0%
    (Monte Carlo error 2.2 points; 97.3% in the slow grid's 400 replications)."""
    cover = _coverage(10, 100)
    assert cover >= 0.93 - 2 * math.sqrt(0.95 * 0.05 / 100), cover


@pytest.mark.slow
@pytest.mark.parametrize("n", [10, 15, 25, 50])
def test_coverage_and_aa_calls_grid(n):
    """400 replications per size (Monte Carlo error 1.1 points at 95%, 1.1 at 5%).
    Measured, for 10, 15, 25 and 50 pairs: coverage 97.3%, 96.8%, 95.8%, 95.3%; A/A calls
    5.0%, 4.5%, 4.5%, 5.0% (the normal interval: 95.0%, 94.8%, 94.3%, 93.8%; 6.8%, 5.8%,
    5.8%, 6.5%)."""
    cover, calls = _coverage(n, 400), _aa_calls(n, 400, "randomization")
    se = math.sqrt(0.05 * 0.95 / 400)
    assert cover >= 0.93 and calls <= 0.05 + 2 * se, (cover, calls)


def test_yaml_interval_option(tmp_path):
    (tmp_path / "data").mkdir()
    treated, control = _paired_regions(tmp_path / "data", iroas=3.0)
    text = (
        "schema_version: 1\nid: tv-pairs\ndesign: geo\nchannel: tv\nmethod: trimmed_match\n"
        f"kpi: sales\nspend: tv_spend\ngeos:\n  treatment: [{', '.join(treated)}]\n"
        f"  control: [{', '.join(control)}]\n"
        "pre_period: {start: 2026-01-05, end: 2026-02-16}\n"
        "test_period: {start: 2026-02-16, end: 2026-03-02}\nalpha: 0.10\n"
    )
    geo = {}
    for option in ("", "interval: normal\n"):
        spec = tmp_path / "pairs.yaml"
        spec.write_text(text + option)
        out = tmp_path / f"out{len(option)}"
        res = invoke("analyze", spec, "--data", tmp_path / "data", "--out", out)
        assert res.exit_code == 0, res.output
        geo[option] = json.loads((out / "results.json").read_text())["geo"]
    rand, normal = geo[""], geo["interval: normal\n"]
    assert rand["diagnostics"]["interval"] == "randomization"
    assert rand["diagnostics"]["sign_patterns"] == trimmed_match.RANDOMIZATION_DRAWS
    assert rand["diagnostics"]["sign_patterns_exact"] is False
    assert "randomization inference" in rand["inference"] and "2,000" in rand["inference"]
    assert rand["iroas_ci"][0] < 3.0 < rand["iroas_ci"][1]
    assert normal["diagnostics"]["interval"] == "normal"
    assert (
        normal["diagnostics"]["sign_patterns"] is None and "normal quantile" in normal["inference"]
    )
    assert normal["iroas"] == rand["iroas"] and normal["iroas_ci"] != rand["iroas_ci"]
    # the option belongs to trimmed match: elsewhere an error at its line
    other = tmp_path / "tbr.yaml"
    other.write_text(text.replace("trimmed_match", "tbr") + "interval: normal\n")
    res = invoke("validate", other)
    assert res.exit_code == 1 and "interval: an option of method: trimmed_match only" in res.output
    assert "tbr.yaml:14:" in res.output, res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "interval: bootstrap\n")
    res = invoke("validate", bad)
    assert res.exit_code == 1 and "bad.yaml:14:" in res.output, res.output
