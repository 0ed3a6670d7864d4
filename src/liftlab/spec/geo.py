"""Geo experiment definitions (``design: geo``): the pydantic model behind a YAML file whose
channel cannot be held out per customer (television, radio, billboards, regional media).

Some regions (geos) get the campaign, or lose it, during a test period; the others show
what would have happened. ``spec_loader`` validates a file with ``design: geo`` against
``GeoExperiment`` instead of ``Experiment``, so problems are reported at their line the
same way.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from liftlab.spec.models import (
    FIRST_DATE,
    ID_PATTERN,
    LAST_DATE,
    MAX_NAME_CHARS,
    MAX_TAGS,
    Fraction,
    TimeZone,
    Title,
    _Model,
)

GeoMethod = Literal["tbr", "synthetic_control", "trimmed_match", "bayesian_tbr"]
TestType = Literal["heavy_up", "holdback"]
MAX_GEOS = 5_000
MAX_COOLDOWN_DAYS = 90
MAX_PLACEBOS = 2_000
GeoId = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
COLUMN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Column = Annotated[str, Field(pattern=COLUMN_PATTERN, max_length=MAX_NAME_CHARS)]


class Period(_Model):
    """Days from ``start`` to ``end`` (exclusive)."""

    start: Annotated[dt.date, Field(ge=FIRST_DATE, lt=LAST_DATE)]
    end: Annotated[dt.date, Field(gt=FIRST_DATE, le=LAST_DATE)]

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, v: dt.date, info: object) -> dt.date:
        start = getattr(info, "data", {}).get("start")
        if start is not None and v <= start:
            raise ValueError(f"end ({v}) must be after start ({start}); end is exclusive")
        return v

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _as_text(v: object) -> object:
    """Geo ids may be written as numbers (postcodes, DMA codes): they are compared as text."""
    if isinstance(v, list):
        return [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v]
    return v


class Geos(_Model):
    """The treatment geos, the control pool (default: every geo neither treated nor
    excluded) and the geos left out. For trimmed match, ``control`` is required and pairs
    with ``treatment`` by position (randomised matched pairs)."""

    treatment: Annotated[list[GeoId], Field(min_length=1, max_length=MAX_GEOS)]
    control: Annotated[list[GeoId], Field(max_length=MAX_GEOS)] | None = None
    exclude: Annotated[list[GeoId], Field(max_length=MAX_GEOS)] = Field(default_factory=list)

    @field_validator("treatment", "control", "exclude", mode="before")
    @classmethod
    def _ids_as_text(cls, v: object) -> object:
        return _as_text(v)

    @model_validator(mode="after")
    def _disjoint(self) -> Geos:
        lists = {
            "treatment": self.treatment,
            "control": self.control or [],
            "exclude": self.exclude,
        }
        for name, ids in lists.items():
            dupes = sorted({g for g in ids if ids.count(g) > 1})
            if dupes:
                raise ValueError(f"{name} lists {', '.join(map(repr, dupes))} more than once")
        for a, b in (("treatment", "exclude"), ("treatment", "control"), ("control", "exclude")):
            both = sorted(set(lists[a]) & set(lists[b]))
            if both:
                raise ValueError(
                    f"{', '.join(map(repr, both))} is in both {a} and {b}; keep it in one list"
                )
        return self


class GeoExperiment(_Model):
    """A geo experiment: one channel, one KPI, treatment geos against the other geos."""

    schema_version: Literal[1]
    id: Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
    name: Title | None = None
    description: str | None = None
    design: Literal["geo"]
    # a geo_metrics date stored as a zoned timestamp is the calendar day in this zone
    timezone: TimeZone = "UTC"
    channel: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=MAX_NAME_CHARS)]
    method: GeoMethod = "tbr"
    kpi: Column
    spend: Column | None = None
    margin: Column | None = None
    geos: Geos
    pre_period: Period
    test_period: Period
    cooldown_days: int = Field(0, ge=0, le=MAX_COOLDOWN_DAYS)
    test_type: TestType = "heavy_up"
    # a geo and date without a row in geo_metrics: an error, or nothing sold (zero)
    missing_rows: Literal["error", "zero"] = "error"
    demean: bool | None = None
    # synthetic control: ridge augmentation (Ben-Michael, Feller and Rothstein 2021), its
    # lambda cross-validated as augsynth does unless given
    augment: Literal["ridge"] | None = None
    ridge_lambda: float | None = Field(None, gt=0.0, le=1e300)
    # trimmed match: randomization inference (sign flips within the randomised pairs, the
    # default) or the published normal interval of the studentized trimmed mean
    interval: Literal["randomization", "normal"] | None = None
    placebos: int = Field(200, ge=20, le=MAX_PLACEBOS)
    seed: int = Field(20260223, ge=0, le=2**32 - 1)
    alpha: Fraction = 0.05
    max_pre_mape: Fraction = 0.10
    # for liftlab plan: the iROAS the budget is computed at (spend = incremental / iROAS)
    expected_iroas: float | None = Field(None, gt=0.0, le=1e6)
    owner: Title | None = None
    tags: Annotated[list[Title], Field(max_length=MAX_TAGS)] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _interval_of_trimmed_match(cls, v: str | None, info: object) -> str | None:
        method = getattr(info, "data", {}).get("method")
        if v is not None and method != "trimmed_match":
            raise ValueError(
                f"an option of method: trimmed_match only; remove it for method: {method}"
            )
        return v

    @model_validator(mode="after")
    def _coherent(self) -> GeoExperiment:
        if self.pre_period.end > self.test_period.start:
            raise ValueError(
                f"pre_period ends on {self.pre_period.end}, after the test starts "
                f"({self.test_period.start}); the pre-period must end on or "
                "before test_period.start"
            )
        if self.pre_period.days < 7:
            raise ValueError(
                f"pre_period holds {self.pre_period.days} days; a counterfactual "
                "needs at least 7 (several weeks are usual)"
            )
        if self.method != "synthetic_control" and self.demean is not None:
            raise ValueError(
                "demean is an option of method: synthetic_control; "
                f"remove it for method: {self.method}"
            )
        if self.method != "synthetic_control" and self.augment is not None:
            raise ValueError(
                "augment is an option of method: synthetic_control; "
                f"remove it for method: {self.method}"
            )
        if self.ridge_lambda is not None and self.augment != "ridge":
            raise ValueError(
                "ridge_lambda is the lambda of augment: ridge; add augment: ridge "
                "or remove ridge_lambda"
            )
        if self.method == "trimmed_match":
            pairs = self.geos.control
            if pairs is None or len(pairs) != len(self.geos.treatment):
                raise ValueError(
                    "trimmed_match compares matched pairs: list geos.control with one control "
                    "geo per treatment geo, in the same order"
                )
            if len(pairs) < 3:
                raise ValueError("trimmed_match needs at least 3 pairs of geos")
            if self.spend is None:
                raise ValueError("trimmed_match estimates an iROAS: name the spend column")
        if self.alpha >= 0.5:
            raise ValueError(f"alpha must be below 0.5, got {self.alpha}")
        named = [c for c in (self.spend, self.margin) if c is not None]
        if self.kpi in named:
            raise ValueError(f"kpi {self.kpi!r} cannot also be the spend or margin column")
        return self

    @property
    def title(self) -> str:
        return self.name or self.id

    @property
    def start(self) -> dt.date:
        return self.test_period.start

    @property
    def end(self) -> dt.date:
        """The end of the measurement (exclusive): the test period and its cool-down."""
        return self.test_period.end + dt.timedelta(days=self.cooldown_days)

    @property
    def pair_inference(self) -> Literal["randomization", "normal"]:
        """Trimmed match's inference: ``interval``, randomization unless given."""
        return self.interval or "randomization"

    @property
    def heavy_up(self) -> bool:
        return self.test_type == "heavy_up"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.kpi, self.spend, self.margin) if c is not None)
