"""The demo retailer's regions: ``geo_metrics`` with a year of daily sales in 50 regions and a
regional TV flight of known effect (``geo_truth.json`` holds the truth).

Sales of region g on day t are ``size_g * level_t * weekday_t * (1 + loading_g * wave_t) *
exp(e_gt)``: a national level with a yearly cycle, a weekly pattern, a regional sensitivity
to a common slow wave, and day-to-day noise (AR(1), so days are not independent). TV runs in
the flight's regions during its weeks: their spend is ``SPEND_SHARE`` of their expected
sales and each euro brings ``TRUE_IROAS`` euros of sales.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from liftlab.core.fsio import atomic_write_text

CITIES = (
    "paris",
    "marseille",
    "lyon",
    "toulouse",
    "nice",
    "nantes",
    "montpellier",
    "strasbourg",
    "bordeaux",
    "lille",
    "rennes",
    "reims",
    "toulon",
    "saint_etienne",
    "le_havre",
    "grenoble",
    "dijon",
    "angers",
    "nimes",
    "villeurbanne",
    "clermont",
    "le_mans",
    "aix",
    "brest",
    "tours",
    "amiens",
    "limoges",
    "annecy",
    "perpignan",
    "metz",
    "besancon",
    "orleans",
    "rouen",
    "mulhouse",
    "caen",
    "nancy",
    "argenteuil",
    "roubaix",
    "tourcoing",
    "avignon",
    "poitiers",
    "pau",
    "calais",
    "la_rochelle",
    "cannes",
    "antibes",
    "ajaccio",
    "bastia",
    "colmar",
    "troyes",
)
FIRST_DAY = dt.date(2025, 2, 24)
DAYS = 365
FLIGHT = (dt.date(2026, 1, 12), dt.date(2026, 2, 9))  # the TV weeks (end exclusive)
FLIGHT_GEOS = ("lyon", "lille", "nantes", "bordeaux", "rennes")
SPEND_SHARE = 0.03  # TV spend per flight region and day, as a share of expected sales
TRUE_IROAS = 2.0
NOISE_SD = 0.03
NOISE_AR = 0.4


@dataclass(frozen=True)
class GeoTruth:
    flight: tuple[str, str]
    geos: tuple[str, ...]
    spend: float
    incremental_sales: float
    iroas: float


def geo_metrics(seed: int = 7) -> tuple[pl.DataFrame, GeoTruth]:
    """The table and its truth; the same seed gives the same table."""
    rng = np.random.default_rng(seed + 24)
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(DAYS)]
    t = np.arange(DAYS)
    size = np.sort(rng.lognormal(np.log(2_000.0), 0.6, len(CITIES)))[::-1]  # paris largest
    level = 1 + 0.15 * np.cos(2 * np.pi * (t - 300) / 365)
    weekday = np.array([0.9, 0.92, 0.95, 1.0, 1.1, 1.3, 0.83])[[d.weekday() for d in days]]
    wave = np.sin(2 * np.pi * t / 91) + 0.5 * np.sin(2 * np.pi * t / 29)
    loading = rng.normal(0.04, 0.02, len(CITIES))
    noise = np.zeros((DAYS, len(CITIES)))
    eps = rng.normal(0, NOISE_SD * np.sqrt(1 - NOISE_AR**2), (DAYS, len(CITIES)))
    noise[0] = rng.normal(0, NOISE_SD, len(CITIES))
    for i in range(1, DAYS):
        noise[i] = NOISE_AR * noise[i - 1] + eps[i]
    expected = size[None, :] * (level * weekday)[:, None] * (1 + loading[None, :] * wave[:, None])
    sales = expected * np.exp(noise)
    on = (
        np.array([FLIGHT[0] <= d < FLIGHT[1] for d in days])[:, None]
        & np.isin(CITIES, FLIGHT_GEOS)[None, :]
    )
    spend = np.where(on, SPEND_SHARE * expected, 0.0)
    sales = sales + TRUE_IROAS * spend
    frame = pl.DataFrame(
        {
            "geo": np.repeat(np.array(CITIES)[None, :], DAYS, axis=0).ravel(),
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), len(CITIES)),
            "sales": np.round(sales.ravel(), 2),
            "tv_spend": np.round(spend.ravel(), 2),
        }
    )
    truth = GeoTruth(
        (FLIGHT[0].isoformat(), FLIGHT[1].isoformat()),
        FLIGHT_GEOS,
        float(frame["tv_spend"].sum()),
        float(TRUE_IROAS * frame["tv_spend"].sum()),
        TRUE_IROAS,
    )
    return frame, truth


def write_geo_metrics(out_dir: Path, seed: int = 7) -> GeoTruth:
    """``geo_metrics.parquet`` and ``geo_truth.json`` in ``out_dir``."""
    import io

    from liftlab.core.fsio import atomic_write_bytes

    frame, truth = geo_metrics(seed)
    buf = io.BytesIO()
    frame.write_parquet(buf)
    atomic_write_bytes(out_dir / "geo_metrics.parquet", buf.getvalue())
    atomic_write_text(out_dir / "geo_truth.json", json.dumps(truth.__dict__, indent=2))
    return truth
