"""Experiment definitions: the pydantic models behind ``experiments/*.yaml``.

Loading and error reporting (file:line:col for every problem) live in ``spec_loader.py``;
this module only says what a valid definition is.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

MetricKind = Literal["mean", "binary", "ratio", "count"]
Design = Literal["factorial", "holdout_per_channel", "global_holdout"]
BayesMode = Literal["off", "closed_form", "hierarchical"]
Direction = Literal["increase", "decrease"]
SourceTable = Literal["orders", "events", "contacts"]

HOLDOUT = "holdout"
TREATMENT = "treatment"
ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# Built-in per-unit quantities a ratio metric may use besides the declared metrics.
BUILTIN_QUANTITIES = ("orders", "revenue", "margin")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class Channel(_Model):
    """One channel's arms: a holdout fraction and either one treatment or named variants."""

    holdout: Fraction
    variants: dict[str, Fraction] | None = None
    cost_per_contact: float = Field(0.0, ge=0.0)

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("variants must name at least one arm; or remove 'variants'")
        for name in v:
            if name == HOLDOUT:
                raise ValueError("a variant cannot be called 'holdout'; rename it")
        return v

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> Channel:
        if self.variants is not None:
            total = self.holdout + sum(self.variants.values())
            if abs(total - 1.0) > 1e-3:
                raise ValueError(
                    f"holdout + variants add up to {total:.4f}; they must add up to 1"
                )
        return self

    @property
    def arms(self) -> dict[str, float]:
        """Arm name -> planned fraction, holdout first."""
        if self.variants is None:
            return {HOLDOUT: self.holdout, TREATMENT: 1.0 - self.holdout}
        return {HOLDOUT: self.holdout, **self.variants}

    @property
    def treatment_arms(self) -> list[str]:
        return [a for a in self.arms if a != HOLDOUT]


class Metric(_Model):
    """A per-unit outcome measured in the analysis window (and in the pre-period for CUPED).

    - ``mean``: sum of ``value`` over the unit's rows in ``table`` (0 when none).
    - ``count``: number of the unit's rows in ``table``.
    - ``binary``: 1 if the unit has at least one row in ``table`` (matching ``event``).
    - ``ratio``: sum of ``numerator`` over sum of ``denominator`` across units (delta method).
    """

    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")]
    kind: MetricKind
    table: SourceTable | None = None
    value: str | None = None
    event: str | None = None
    purchase_channel: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    guardrail: bool = False
    direction: Direction | None = None
    winsorize: Annotated[float, Field(gt=0.5, lt=1.0)] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Metric:
        if self.kind == "ratio":
            if not self.numerator or not self.denominator:
                raise ValueError("a ratio metric needs 'numerator' and 'denominator'")
            if self.table is not None or self.value is not None:
                raise ValueError("a ratio metric takes numerator/denominator, not table/value")
            return self
        if self.table is None:
            raise ValueError(f"a {self.kind} metric needs 'table' (orders, events or contacts)")
        if self.numerator or self.denominator:
            raise ValueError("numerator/denominator are only for kind: ratio")
        if self.kind == "mean" and not self.value:
            raise ValueError("a mean metric needs 'value': the column to sum, e.g. revenue")
        if self.kind in ("binary", "count") and self.value:
            raise ValueError(f"a {self.kind} metric counts rows; remove 'value' or use kind: mean")
        if self.event is not None and self.table != "events":
            raise ValueError("'event' filters the events table; set table: events")
        return self

    @property
    def desired_direction(self) -> Direction:
        """Guardrails (unsubscribes, complaints) are bad when they go up."""
        if self.direction is not None:
            return self.direction
        return "decrease" if self.guardrail else "increase"


class Population(_Model):
    where: str | None = None


class Covariates(_Model):
    pre_period_days: int = Field(0, ge=0, le=3650)


class Monitoring(_Model):
    sequential: bool = False
    alpha: float | None = Field(None, gt=0.0, lt=0.5)
    method: Literal["mixture", "group_sequential"] = "mixture"
    horizon_hours: int | None = Field(None, gt=0)
    response_window_hours: int = Field(72, gt=0)
    min_events_per_arm: int = Field(100, ge=0)
    expected_lift: float | None = None
    srm_alpha: float = Field(0.001, gt=0.0, lt=0.5)


class Prior(_Model):
    mean: float = 0.0
    sd: float | None = Field(None, gt=0.0)


class MultipleTesting(_Model):
    """Which comparisons share one error budget, and how it is split (stats/multiple.py).

    ``primary``: the primary metric across channels and variants (whole population);
    ``metrics``: every metric, whole population; ``all``: every metric and every segment."""

    method: Literal["holm", "bh", "none"] = "holm"
    family: Literal["primary", "metrics", "all"] = "primary"


class Analysis(_Model):
    bayes: BayesMode = "closed_form"
    prior: Prior = Prior()
    seed: int = 20260223
    draws: int = Field(1000, ge=100)
    tune: int = Field(1000, ge=100)
    chains: int = Field(2, ge=1)
    sampler: Literal["pymc", "nutpie"] = "pymc"
    target_accept: float = Field(0.95, gt=0.5, lt=1.0)  # NUTS step size: raise on divergences
    multiple_testing: MultipleTesting = MultipleTesting()


class Encouragement(_Model):
    adoption_metric: str
    outcome_metric: str | None = None


class Experiment(_Model):
    """An experiment definition (CONTRACT.md section 2)."""

    schema_version: Literal[1]
    id: Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
    name: str | None = None
    description: str | None = None
    start: dt.date
    end: dt.date
    timezone: str = "UTC"
    unit: str = "customer_id"
    population: Population = Population()
    channels: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], Channel]
    design: Design = "factorial"
    metrics: list[Metric]
    primary_metric: str
    covariates: Covariates = Covariates()
    segments: list[str] = []
    monitoring: Monitoring = Monitoring()
    analysis: Analysis = Analysis()
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    encouragement: Encouragement | None = None
    owner: str | None = None
    tags: list[str] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}; write e.g. UTC or Europe/Paris") from exc
        return v

    @field_validator("channels")
    @classmethod
    def _some_channel(cls, v: dict[str, Channel]) -> dict[str, Channel]:
        if not v:
            raise ValueError("name at least one channel, e.g. email: {holdout: 0.1}")
        return v

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, v: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("start")
        if start is not None and v <= start:
            raise ValueError(f"end ({v}) must be after start ({start}); end is exclusive")
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics_coherent(cls, v: list[Metric]) -> list[Metric]:
        names = [m.name for m in v]
        if not names:
            raise ValueError("define at least one metric")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names must be unique; repeated: {', '.join(dupes)}")
        known = set(names) | set(BUILTIN_QUANTITIES)
        for m in v:
            for part in (m.numerator, m.denominator) if m.kind == "ratio" else ():
                if part not in known:
                    raise ValueError(f"metric {m.name!r}: {part!r} is neither a metric nor one "
                                     f"of {', '.join(BUILTIN_QUANTITIES)}")
                if part == m.name:
                    raise ValueError(f"metric {m.name!r} cannot be its own {part}")
        return v

    @field_validator("primary_metric")
    @classmethod
    def _primary_is_metric(cls, v: str, info: ValidationInfo) -> str:
        names = [m.name for m in info.data.get("metrics") or []]
        if names and v not in names:
            raise ValueError(f"{v!r} is not a metric; choose one of: {', '.join(names)}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Experiment:
        names = [m.name for m in self.metrics]
        enc = self.encouragement
        if enc is not None and enc.adoption_metric not in names:
            raise ValueError(
                f"encouragement.adoption_metric {enc.adoption_metric!r} is not a metric"
            )
        if self.design == "global_holdout" and len(self.channels) > 1:
            fracs = {round(c.holdout, 6) for c in self.channels.values()}
            if len(fracs) > 1:
                raise ValueError(
                    "a global holdout keeps one blind zone for all channels: give every "
                    "channel the same holdout fraction"
                )
        return self

    @property
    def title(self) -> str:
        return self.name or self.id

    @property
    def monitoring_alpha(self) -> float:
        return self.monitoring.alpha if self.monitoring.alpha is not None else self.alpha

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)
