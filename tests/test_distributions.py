"""liftlab.stats.distributions and the score statistic of binary metrics compute what
scipy.stats and statsmodels compute, to the bit (issue 23: ``analyze`` no longer imports those
two, so results.json must not move). Each function is compared with its reference over many
random inputs and the edges (0, 1, infinities, NaN, tiny and huge values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import score_test_proportions_2indep

from liftlab.stats import distributions as d
from liftlab.stats.proportions import score_statistic

RNG = np.random.default_rng(23)
EDGES = np.array(
    [
        0.0,
        -0.0,
        1e-300,
        -1e-300,
        1e-12,
        0.5,
        1.0,
        -1.0,
        1.96,
        -1.96,
        8.3,
        38.5,
        -38.5,
        1e5,
        -1e5,
        math.inf,
        -math.inf,
        math.nan,
    ]
)
XS = np.concatenate([EDGES, RNG.normal(0, 3, 2000), RNG.standard_cauchy(500)])
PROBS = np.concatenate(
    [
        [0.0, 1.0, 0.5, 1e-300, 1e-16, 1 - 1e-16, 0.025, 0.975, 0.05, math.nan, -0.1, 1.1],
        RNG.uniform(0, 1, 2000),
        10.0 ** RNG.uniform(-300, -1, 500),
    ]
)
DFS = [0.5, 1.0, 1.5, 2.0, 3.7, 10.0, 29.5, 1e3, 1e6, 1e12, math.inf]


def same(got: object, want: object) -> None:
    """Equal to the bit, NaN where the reference is NaN, same shape."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_array_equal(got, want, strict=True)


@pytest.mark.parametrize(
    ("mine", "ref", "inputs"),
    [
        (d.norm_cdf, sps.norm.cdf, XS),
        (d.norm_sf, sps.norm.sf, XS),
        (d.norm_pdf, sps.norm.pdf, XS),
        (d.norm_ppf, sps.norm.ppf, PROBS),
        (d.norm_isf, sps.norm.isf, PROBS),
    ],
    ids=["cdf", "sf", "pdf", "ppf", "isf"],
)
def test_normal_functions_equal_scipy_stats(mine, ref, inputs):
    same(mine(inputs), ref(inputs))  # vectors
    for v in inputs[:60]:  # and scalars, as the statistics call them
        assert type(mine(float(v))) is type(ref(float(v))) is np.float64
        same(mine(float(v)), ref(float(v)))


def test_normal_density_on_a_matrix_equals_scipy_stats():
    """The group-sequential bounds take the density of a grid difference matrix."""
    grid = np.linspace(-9, 9, 301)
    m = (grid[:, None] - grid[None, ::3]) / 0.37
    same(d.norm_pdf(m), sps.norm.pdf(m))


@pytest.mark.parametrize("df", DFS)
def test_t_functions_equal_scipy_stats(df: float):
    for mine, ref, inputs in [
        (d.t_cdf, sps.t.cdf, XS),
        (d.t_sf, sps.t.sf, XS),
        (d.t_ppf, sps.t.ppf, PROBS),
    ]:
        same(mine(inputs, df), ref(inputs, df))
        for v in inputs[:40]:
            same(mine(float(v), df), ref(float(v), df))
    if math.isfinite(df):  # the density is for finite df (norm_pdf covers df = inf)
        same(d.t_pdf(XS, df), sps.t.pdf(XS, df))
        for v in XS[:40]:
            same(d.t_pdf(float(v), df), sps.t.pdf(float(v), df))


@pytest.mark.parametrize("df", [1.0, 2.0, 3.0, 7.0, 50.0])
def test_chi2_sf_equals_scipy_stats(df: float):
    xs = np.concatenate([[0.0, 1e-300, math.inf, math.nan], RNG.chisquare(df, 1000) * 3])
    same(d.chi2_sf(xs, df), sps.chi2.sf(xs, df))


def test_chisquare_p_equals_scipy_chisquare():
    """The sample-ratio check: observed arm counts against expected shares (2 to 8 arms,
    balanced and lopsided, including a perfect match and an empty arm)."""
    cases = [([50, 50], [50.0, 50.0]), ([0, 100], [50.0, 50.0]), ([1, 2, 3], [2.0, 2.0, 2.0])]
    for _ in range(3000):
        k = int(RNG.integers(2, 9))
        shares = RNG.dirichlet(np.ones(k) * RNG.choice([0.5, 5.0, 50.0]))
        total = int(RNG.choice([10, 1000, 2_000_000]))
        counts = RNG.multinomial(total, shares).tolist()
        cases.append((counts, [total * s / shares.sum() for s in shares]))
    for counts, expected in cases:
        same(d.chisquare_p(counts, expected), sps.chisquare(counts, expected).pvalue)


def _score_cases() -> list[tuple[int, int, int, int]]:
    cases = [
        (0, 10, 0, 10),
        (10, 10, 10, 10),
        (0, 10, 10, 10),
        (1, 2, 0, 2),
        (3, 1000, 0, 90),
        (0, 500, 4, 50),
        (17_315, 170_065, 1_700, 17_000),
    ]
    for _ in range(400):
        n_t, n_h = (int(v) for v in 10.0 ** RNG.uniform(0.3, 6.5, 2))
        rate = 10.0 ** RNG.uniform(-5, 0)
        cases.append(
            (
                int(RNG.binomial(n_t, rate)),
                n_t,
                int(RNG.binomial(n_h, rate * RNG.uniform(0.5, 2) if rate < 0.5 else rate)),
                n_h,
            )
        )
    return cases


@pytest.mark.parametrize("compare", ["diff", "ratio"])
def test_score_statistic_equals_statsmodels(compare: str):
    """At the equality null, at nulls a brent search visits (near and far from the estimate,
    close to the edges of the parameter space) and where the statistic is undefined (NaN)."""
    checked = 0
    for k_t, n_t, k_h, n_h in _score_cases():
        if compare == "diff":
            est = k_t / n_t - k_h / n_h
            nulls = [
                0.0,
                est,
                -1 + 1e-12,
                1 - 1e-12,
                *RNG.uniform(-1, 1, 6),
                *(est + RNG.normal(0, 0.01, 4)),
            ]
            nulls = [v for v in nulls if -1 < v < 1]
        else:
            est = (k_t / n_t) / (k_h / n_h) if k_h else 1.0
            nulls = [
                1.0,
                est,
                1e-12,
                1e12,
                *10.0 ** RNG.uniform(-3, 3, 6),
                *(est * np.exp(RNG.normal(0, 0.05, 4))),
            ]
            nulls = [v for v in nulls if v > 0]
        for value in nulls:
            with np.errstate(all="ignore"):
                want = score_test_proportions_2indep(
                    k_t,
                    n_t,
                    k_h,
                    n_h,
                    value=float(value),
                    compare=compare,
                    correction=False,
                    return_results=True,
                ).statistic
                got = score_statistic(k_t, n_t, k_h, n_h, float(value), compare)
            same(got, want)
            checked += 1
    assert checked > 5000
