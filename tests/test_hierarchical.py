"""The hierarchical model on simulated cells with known lifts: coverage of the truth,
shrinkage of noisy small segments, reproducible draws, and poor convergence reported."""

from __future__ import annotations

import numpy as np
import pytest

from liftlab.stats.hierarchical import Cell, fit_hierarchical

SPEND = np.exp(3.5 + 0.8**2 / 2)  # mean of lognormal(3.5, 0.8)


def simulate(seed: int):
    rng = np.random.default_rng(seed)
    cells, truth = [], {}
    for channel, effect in (("email", 0.15), ("sms", 0.05), ("mail", 0.25)):
        for j, n in enumerate((20_000, 10_000, 5_000, 1_000, 300)):
            d = effect + rng.normal(0, 0.05)
            for treated in (False, True):
                size = n if treated else n // 4
                buyers = rng.binomial(size, 0.05 * np.exp(d * treated))
                spend = rng.lognormal(3.5, 0.8, buyers)
                cells.append(Cell(channel, f"s{j}", treated, size, int(buyers),
                                  float(spend.sum()), float((spend**2).sum())))
            truth[(channel, f"s{j}")] = 0.05 * (np.exp(d) - 1) * SPEND
    return cells, truth


@pytest.fixture(scope="module")
def fitted():
    cells, truth = simulate(0)
    return cells, truth, fit_hierarchical(cells, seed=3, draws=400, tune=400)


def test_posterior_covers_the_truth_in_most_cells(fitted):
    _, truth, res = fitted
    seg = [x for x in res.lifts if x.segment is not None]
    covered = sum(x.hdi[0] <= truth[(x.channel, x.segment)] <= x.hdi[1] for x in seg)
    assert len(seg) == 15 and covered >= 12


def test_small_segments_shrink_toward_their_channel(fitted):
    cells, truth, res = fitted
    raw = {}
    for c in cells:
        raw.setdefault((c.channel, c.segment), {})[c.treated] = c.revenue / c.n
    post = {(x.channel, x.segment): x.mean for x in res.lifts if x.segment is not None}
    chan = {x.channel: x.mean for x in res.lifts if x.segment is None}
    small = [k for k in post if k[1] in ("s3", "s4")]
    raw_lift = {k: v[True] - v[False] for k, v in raw.items()}
    closer = sum(abs(post[k] - chan[k[0]]) < abs(raw_lift[k] - chan[k[0]]) for k in small)
    assert closer == len(small)
    err_post = np.mean([abs(post[k] - truth[k]) for k in small])
    err_raw = np.mean([abs(raw_lift[k] - truth[k]) for k in small])
    assert err_post < err_raw


def test_poor_convergence_is_reported_and_reruns_are_identical():
    cells, _ = simulate(1)
    a = fit_hierarchical(cells, seed=5, draws=40, tune=40)
    b = fit_hierarchical(cells, seed=5, draws=40, tune=40)
    assert a.warnings and any("ESS" in w or "r_hat" in w for w in a.warnings)
    assert [x.mean for x in a.lifts] == [x.mean for x in b.lifts]
