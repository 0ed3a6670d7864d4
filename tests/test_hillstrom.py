"""A real public randomized email experiment through the normal YAML path.

MineThatData e-mail challenge (Hillstrom 2008): 64,000 customers randomized to a Mens
e-mail, a Womens e-mail or no e-mail. Each arm's lift on visit, conversion and spend, by past
purchase channel, is checked against a direct computation on the CSV (pandas + scipy).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from liftlab.analyses.experiment import analyze
from liftlab.engines.open import open_engine
from liftlab.spec.loader import load_experiment

CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom.csv"
ARMS = {"mens": "Mens E-Mail", "womens": "Womens E-Mail"}

pytestmark = pytest.mark.skipif(
    not CSV.exists(), reason=f"Hillstrom data not found at {CSV}: real-data test skipped")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from liftlab.data.hillstrom import import_hillstrom

    out = tmp_path_factory.mktemp("hillstrom")
    import_hillstrom(CSV, out)
    return out, out / "hillstrom.yaml"


@pytest.fixture(scope="module")
def result(imported):
    data, spec_path = imported
    spec = load_experiment(spec_path)
    return analyze(spec, open_engine(data))


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(CSV)


def _effect(result, variant, metric, segment=None):
    [e] = [e for e in result.effects if e.variant == variant and e.metric.name == metric
           and e.segment == segment]
    return e


@pytest.mark.parametrize("variant", list(ARMS))
@pytest.mark.parametrize("metric,column", [("visit", "visit"), ("conversion", "conversion"),
                                           ("spend", "spend")])
@pytest.mark.parametrize("past", [None, "Phone", "Web", "Multichannel"])
def test_lift_matches_direct_computation(result, raw, variant, metric, column, past):
    df = raw if past is None else raw[raw.channel == past]
    t = df.loc[df.segment == ARMS[variant], column].astype(float)
    h = df.loc[df.segment == "No E-Mail", column].astype(float)
    e = _effect(result, variant, metric, None if past is None else {"past_channel": past})
    assert (e.n_treatment, e.n_holdout) == (len(t), len(h))
    assert e.lift.abs == pytest.approx(t.mean() - h.mean(), rel=1e-9, abs=1e-12)
    if metric == "spend":
        ref = sps.ttest_ind(t, h, equal_var=False).pvalue
    else:  # binary metrics: the pooled score test (chi-squared without continuity correction)
        ref = proportions_ztest([t.sum(), h.sum()], [len(t), len(h)])[1]
        ci = confint_proportions_2indep(t.sum(), len(t), h.sum(), len(h), method="score",
                                        correction=False, alpha=e.ci_alpha or 0.05)
        assert e.lift.abs_ci == pytest.approx(ci, rel=1e-6)
    assert e.lift.p_value == pytest.approx(ref, rel=1e-6, abs=1e-12)
    assert e.lift.rel == pytest.approx(t.mean() / h.mean() - 1, rel=1e-9)


def test_published_headline_numbers(result):
    """Hillstrom's own summary: the Mens e-mail lifts visits from 10.6% to 18.3% and spend
    per customer from $0.65 to $1.42; the randomization is balanced (no SRM)."""
    e = _effect(result, "mens", "visit")
    assert e.lift.mean_holdout == pytest.approx(0.1062, abs=5e-4)
    assert e.lift.mean_treatment == pytest.approx(0.1828, abs=5e-4)
    s = _effect(result, "mens", "spend")
    assert s.lift.mean_holdout == pytest.approx(0.653, abs=5e-3)
    assert s.lift.mean_treatment == pytest.approx(1.423, abs=5e-3)
    assert result.srm_ok and result.n_units == 64_000
