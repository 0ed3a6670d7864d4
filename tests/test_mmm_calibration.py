"""liftlab's lift-test export calibrates a pymc-marketing MMM (the `mmm` extra; skipped when
pymc-marketing is not installed, `make test` installs it).

A real liftlab analysis (the tiny factorial: email lifts the order rate by 25%, so its true
increment per treated customer is known in closed form) is exported with the weekly
pymc-marketing writer and fed to `add_lift_test_measurements` of a small MMM on synthetic
weekly sales. In that world email's saturation curve passes through the experiment's true
weekly increment at the experiment's weekly spend, and email's spend moves with TV's, so the
uncalibrated model cannot tell them apart. The calibrated posterior of email's response at
the tested spend must sit closer to the truth, and be tighter, than the uncalibrated one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from liftlab.analyses.calibration import Ledger, pymc_marketing, records_from_results
from liftlab.app.run import analyze_to_folder

pytest.importorskip("pymc_marketing", reason="the mmm extra: pip install 'liftlab[mmm]'")
pytestmark = pytest.mark.mmm

WEEKS, SEED = 78, 3
LAM_EMAIL, LAM_TV, B_TV = 2.0, 1.5, 20_000.0
FIT = {
    "chains": 2,
    "draws": 300,
    "tune": 300,
    "cores": 1,
    "random_seed": 5,
    "nuts_sampler": "pymc",
    "progressbar": False,
}
# tests/tinydata.py: a customer's order rate is 0.8 x value (lognormal(0, 0.8)) x 1.25 with
# email x 1.15 with the big mail (30% of customers); orders are lognormal(3.5, 0.9) revenue.
EMAIL_TRUE_PER_CUSTOMER = (
    0.25 * 0.8 * math.exp(0.8**2 / 2) * (1 + 0.15 * 0.3) * math.exp(3.5 + 0.9**2 / 2)
)


def _logistic(x: np.ndarray, lam: float | np.ndarray) -> np.ndarray:
    """pymc-marketing's logistic saturation: (1 - exp(-lam x)) / (1 + exp(-lam x))."""
    return (1 - np.exp(-lam * x)) / (1 + np.exp(-lam * x))


def _adstock(x: np.ndarray, alpha: float = 0.3, l_max: int = 4) -> np.ndarray:
    """pymc-marketing's normalised geometric adstock."""
    w = alpha ** np.arange(l_max)
    w /= w.sum()
    return np.convolve(x, w)[: len(x)]


@pytest.fixture(scope="module")
def lift_rows(tiny_data: Path, tiny_spec_path: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("mmm") / "analysis"
    analyze_to_folder(tiny_spec_path, tiny_data, None, out)
    results = json.loads((out / "results.json").read_text())
    ledger = records_from_results(results)
    email = [r for r in ledger.records if r.channel == "email"]
    table = pymc_marketing(Ledger(tuple(email)), period_days=7).table
    (effect,) = [
        e
        for e in results["effects"]
        if e["channel"] == "email" and e["metric"] == "revenue" and e["segment"] is None
    ]
    return email[0], table.drop("source").to_pandas(), effect["n_treatment"]


def _world(delta_x: float, true_week: float):
    """Weekly sales: email's curve passes through (delta_x, true_week); email and TV spend
    follow one campaign calendar."""
    import pandas as pd

    rng = np.random.default_rng(SEED)
    season = 0.5 * np.sin(np.arange(WEEKS) * 2 * np.pi / 52) + rng.normal(0, 0.15, WEEKS)
    email = np.clip(20 + 18 * season + rng.normal(0, 1.5, WEEKS), 0, None)
    tv = np.clip(50_000 + 40_000 * season + rng.normal(0, 3_000, WEEKS), 0, None)
    b_email = true_week / _logistic(delta_x / email.max(), LAM_EMAIL)
    sales = (
        200_000
        + b_email * _logistic(_adstock(email) / email.max(), LAM_EMAIL)
        + B_TV * _logistic(_adstock(tv) / tv.max(), LAM_TV)
        + rng.normal(0, 8_000, WEEKS)
    )
    dates = pd.date_range("2024-08-05", periods=WEEKS, freq="W-MON")
    return pd.DataFrame({"date": dates, "email": email, "tv": tv}), pd.Series(sales, name="y")


def _email_response(lift_tests, x, y, delta_x: float) -> np.ndarray:
    """Posterior draws of email's weekly response to delta_x (original units)."""
    from pymc_marketing.mmm import MMM, GeometricAdstock, LogisticSaturation

    mmm = MMM(
        date_column="date",
        channel_columns=["email", "tv"],
        adstock=GeometricAdstock(l_max=4),
        saturation=LogisticSaturation(),
    )
    mmm.build_model(x, y)
    if lift_tests is not None:
        mmm.add_lift_test_measurements(lift_tests)
    post = mmm.fit(x, y, **FIT).posterior
    lam = post["saturation_lam"].sel(channel="email").values.ravel()
    beta = post["saturation_beta"].sel(channel="email").values.ravel()
    target_scale = float(mmm.model["target_scale"].eval())
    return beta * target_scale * _logistic(delta_x / x["email"].max(), lam)


def test_lift_test_export_calibrates_the_mmm(lift_rows):
    record, lift_tests, n_treated = lift_rows
    true_total = EMAIL_TRUE_PER_CUSTOMER * n_treated
    assert abs(record.incremental - true_total) < 3 * record.se  # the analysis is right
    assert len(lift_tests) == 3 and lift_tests["x"].eq(0).all()
    delta_x, true_week = record.spend / 3, true_total / 3
    x, y = _world(delta_x, true_week)
    plain = _email_response(None, x, y, delta_x)
    calibrated = _email_response(lift_tests, x, y, delta_x)
    shift = {
        "truth": true_week,
        "uncalibrated": (plain.mean(), plain.std()),
        "calibrated": (calibrated.mean(), calibrated.std()),
        "lift_test": (record.incremental / 3, record.se / 3),
    }
    print(f"email weekly response at {delta_x:.2f} spend: {shift}")
    assert abs(calibrated.mean() - true_week) < 0.5 * abs(plain.mean() - true_week), shift
    assert calibrated.std() < 0.75 * plain.std(), shift
