"""Guardrail non-inferiority margins: the test agrees with the one-sided Fieller bound, holds
its level at the margin (simulation, Monte Carlo error stated), and is reported."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from liftlab.analyses.experiment import analyze
from liftlab.data.folder import FolderSource
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.spec.models import Experiment
from liftlab.stats.frequentist import fieller
from liftlab.stats.noninferiority import non_inferiority

from tinydata import SPEC_YAML


@pytest.mark.parametrize("desired", ["decrease", "increase"])
@pytest.mark.parametrize("mean_t", [0.9, 1.0, 1.08, 1.2])
def test_passes_exactly_when_the_one_sided_fieller_bound_is_inside(
    desired: str, mean_t: float
) -> None:
    alpha, margin, vt, vh = 0.05, 0.1, 0.002, 0.003
    ni = non_inferiority(mean_t, vt, 1.0, vh, margin, desired, alpha)  # type: ignore[arg-type]
    lo, hi = fieller(mean_t, 1.0, vt, vh, float(sps.norm.ppf(1 - alpha)))
    inside = hi < 1 + margin if desired == "decrease" else lo > 1 - margin
    assert ni.passed == inside
    assert ni.p_value == pytest.approx(sps.norm.sf(ni.statistic))


def test_few_events_make_no_claim() -> None:
    ni = non_inferiority(0.001, 1e-7, 0.001, 1e-6, 0.5, "decrease", 0.05, events=3.0)
    assert not ni.passed and math.isnan(ni.p_value) and "expected events" in (ni.note or "")


def _rejections(reps: int, n: int, rate: float, ratio: float, margin: float, seed: int) -> float:
    """Share of runs where an unsubscribe guardrail (to decrease) passes, the treatment's
    true rate being ``ratio`` times the holdout's."""
    rng = np.random.default_rng(seed)
    kt = rng.binomial(n, rate * ratio, reps) / n
    kh = rng.binomial(n, rate, reps) / n
    passed = 0
    for pt, ph in zip(kt, kh, strict=True):
        ni = non_inferiority(
            pt,
            pt * (1 - pt) / n,
            ph,
            ph * (1 - ph) / n,
            margin,
            "decrease",
            0.05,
            events=n * min(pt, ph),
        )
        passed += ni.passed
    return passed / reps


def test_level_at_the_margin_fixed_sample() -> None:
    """2,000 runs with the treatment exactly at the margin (20% more unsubscribes): passing is
    a false claim; at most 0.05 + 3 x 0.0049 (Monte Carlo error)."""
    assert _rejections(2000, 5000, 0.02, 1.2, 0.2, 1) <= 0.05 + 3 * 0.0049


def test_power_without_harm() -> None:
    assert _rejections(500, 20000, 0.02, 1.0, 0.2, 2) > 0.8


@pytest.mark.slow
@pytest.mark.parametrize("rate,n", [(0.005, 5000), (0.02, 2000), (0.05, 50000)])
def test_level_grid(rate: float, n: int) -> None:
    """20,000 runs at the margin: Monte Carlo error 0.0015."""
    assert _rejections(20000, n, rate, 1.2, 0.2, 3) <= 0.05 + 3 * 0.0015


def test_reported_in_results_and_warned(tiny_data) -> None:
    text = SPEC_YAML.replace(
        "event: unsubscribe, guardrail: true", "event: unsubscribe, guardrail: true, margin: 0.05"
    )
    result = analyze(
        Experiment.model_validate(yaml.safe_load(text)), PolarsEngine(FolderSource(tiny_data))
    )
    unsub = [
        e.to_dict() for e in result.effects if e.metric.name == "unsubscribe" and e.segment is None
    ]
    assert unsub and all(
        set(e["non_inferiority"]) >= {"margin", "p_value", "passed"} for e in unsub
    )
    # the tiny data doubles unsubscribes on email: its guardrail cannot pass a 5% margin
    email = next(e for e in unsub if e["channel"] == "email")
    assert not email["non_inferiority"]["passed"]
    assert any(w.code == "non_inferiority" and "email" in w.message for w in result.warnings)


def test_margin_needs_a_guardrail() -> None:
    text = SPEC_YAML.replace(
        "{name: revenue, kind: mean, table: orders, value: revenue}",
        "{name: revenue, kind: mean, table: orders, value: revenue, margin: 0.1}",
    )
    with pytest.raises(ValueError, match="guardrail"):
        Experiment.model_validate(yaml.safe_load(text))
