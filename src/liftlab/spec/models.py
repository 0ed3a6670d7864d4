"""Experiment definitions: the pydantic models behind ``experiments/*.yaml``.

Loading and error reporting (file:line:col for every problem) live in ``spec_loader.py``;
this module only says what a valid definition is.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

MetricKind = Literal["mean", "binary", "ratio", "count"]
Design = Literal["factorial", "holdout_per_channel", "global_holdout", "dose_response"]
FrequencyUnit = Literal["per_day", "per_week", "per_month"]
BayesMode = Literal["off", "closed_form", "hierarchical"]
Direction = Literal["increase", "decrease"]
SourceTable = Literal["orders", "events", "contacts"]

# Limits on what a definition may ask for (README, "Limits"): far beyond any real
# experiment, low enough that no definition can exhaust memory or time.
MAX_CHANNELS = 8  # a factorial design has 2^channels cells
MAX_VARIANTS = 10
MAX_METRICS = 50
MAX_SEGMENTS = 10
MAX_ATTRIBUTES = 20  # customers columns used as covariates
MAX_TAGS = 20
MAX_NAME_CHARS = 64  # metric, channel, segment and column names
MAX_TITLE_CHARS = 200  # name, owner, tags
MAX_DRAWS = 20_000  # per chain, for draws and tune
MAX_CHAINS = 8
MAX_RESPONSE_WINDOW_HOURS = 24 * 90
MAX_LOOKS = 50  # group-sequential analyses
MAX_HORIZON_HOURS = 3 * 366 * 24
MAX_FREQUENCY = 1000.0  # contacts per frequency unit in one dose-response arm
FIRST_DATE = dt.date(1990, 1, 1)  # the data checks' earliest plausible timestamp
LAST_DATE = dt.date(2100, 1, 1)  # an end date (exclusive) at most this

HOLDOUT = "holdout"
TREATMENT = "treatment"
ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# Built-in per-unit quantities a ratio metric may use besides the declared metrics.
BUILTIN_QUANTITIES = ("orders", "revenue", "margin")
# Segments computed from the data when the customers table has no such column:
# channel_profile = the channels each customer bought through in the 90 days before the start,
# so every campaign's lift is reported per channel profile (which clients respond to what).
DERIVED_SEGMENTS = ("channel_profile",)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
Title = Annotated[str, Field(max_length=MAX_TITLE_CHARS)]


def _known_zone(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {v!r}; write e.g. UTC or Europe/Paris") from exc
    return v


TimeZone = Annotated[str, Field(max_length=MAX_TITLE_CHARS), AfterValidator(_known_zone)]


class DoseArm(_Model):
    """One arm of a dose-response channel: its share of the units and its contact frequency
    (contacts per ``frequency_unit``; 0 is the holdout)."""

    share: Fraction
    frequency: float = Field(ge=0.0, le=MAX_FREQUENCY)


class Channel(_Model):
    """One channel's arms: a holdout fraction and either one treatment or named variants, or
    (``design: dose_response``) named ``arms`` that differ in contact frequency."""

    holdout: Fraction | None = None
    variants: Annotated[dict[Name, Fraction], Field(max_length=MAX_VARIANTS)] | None = None
    cost_per_contact: float = Field(0.0, ge=0.0)
    dose_arms: Annotated[dict[Name, DoseArm], Field(max_length=MAX_VARIANTS)] | None = Field(
        None, alias="arms")
    frequency_unit: FrequencyUnit | None = None

    @model_validator(mode="after")
    def _holdout_or_arms(self) -> Channel:
        if self.dose_arms is None:
            if self.holdout is None:
                raise ValueError("a channel needs 'holdout' (e.g. holdout: 0.1), or 'arms' "
                                 "with frequencies under design: dose_response")
            if self.frequency_unit is not None:
                raise ValueError("frequency_unit is for dose-response arms; remove it or "
                                 "declare 'arms'")
            return self
        if self.holdout is not None or self.variants is not None:
            raise ValueError("a dose-response channel declares its arms under 'arms' (the "
                             "holdout is the arm with frequency 0); remove holdout/variants")
        arms = self.dose_arms
        total = sum(a.share for a in arms.values())
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"the arms' shares add up to {total:.4f}; they must add up to 1")
        zero = [n for n, a in arms.items() if a.frequency == 0]
        if len(zero) != 1:
            raise ValueError(f"exactly one arm must have frequency 0 (the holdout); found "
                             f"{len(zero)}")
        freqs = [a.frequency for a in arms.values()]
        if len(set(freqs)) != len(freqs):
            raise ValueError("each arm needs its own frequency; two arms share one")
        if len(arms) < 3:
            raise ValueError("a dose-response channel needs at least 3 arms (the holdout and "
                             "two frequencies) to trace a curve")
        return self

    @property
    def control(self) -> str:
        """The arm every other arm is compared with: the holdout, or the frequency-0 arm."""
        if self.dose_arms is None:
            return HOLDOUT
        return next(n for n, a in self.dose_arms.items() if a.frequency == 0)

    @property
    def frequencies(self) -> dict[str, float]:
        """Arm -> contact frequency (dose-response channels; empty otherwise)."""
        return {n: a.frequency for n, a in (self.dose_arms or {}).items()}

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
        """Arm name -> planned fraction, holdout (control) first."""
        if self.dose_arms is not None:
            control = self.control
            return {control: self.dose_arms[control].share, **{
                n: a.share for n, a in self.dose_arms.items() if n != control}}
        assert self.holdout is not None
        if self.variants is None:
            return {HOLDOUT: self.holdout, TREATMENT: 1.0 - self.holdout}
        return {HOLDOUT: self.holdout, **self.variants}

    @property
    def treatment_arms(self) -> list[str]:
        return [a for a in self.arms if a != self.control]


class Metric(_Model):
    """A per-unit outcome measured in the analysis window (and in the pre-period for CUPED).

    - ``mean``: sum of ``value`` over the unit's rows in ``table`` (0 when none).
    - ``count``: number of the unit's rows in ``table``.
    - ``binary``: 1 if the unit has at least one row in ``table`` (matching ``event``).
    - ``ratio``: sum of ``numerator`` over sum of ``denominator`` across units (delta method).
    """

    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=MAX_NAME_CHARS)]
    kind: MetricKind
    table: SourceTable | None = None
    value: Name | None = None
    event: Title | None = None
    purchase_channel: Title | None = None
    numerator: Name | None = None
    denominator: Name | None = None
    guardrail: bool = False
    direction: Direction | None = None
    winsorize: Annotated[float, Field(gt=0.5, lt=1.0)] | None = None
    # A guardrail's non-inferiority margin: the relative harm tolerated (0.1 = 10% worse).
    margin: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    # Quantile treatment effects of a mean or count metric: ``true`` = median and p90.
    quantiles: bool | Annotated[list[Annotated[float, Field(gt=0.0, lt=1.0)]],
                                Field(min_length=1, max_length=9)] = False

    @model_validator(mode="after")
    def _coherent(self) -> Metric:
        if self.margin is not None and not self.guardrail:
            raise ValueError("'margin' is a guardrail's non-inferiority margin; set "
                             "guardrail: true")
        if self.quantiles and self.kind not in ("mean", "count"):
            raise ValueError("'quantiles' are of a per-unit mean or count metric (e.g. "
                             "revenue per customer)")
        if self.kind == "ratio":
            if not self.numerator or not self.denominator:
                raise ValueError("a ratio metric needs 'numerator' and 'denominator'")
            if self.table is not None or self.value is not None:
                raise ValueError("a ratio metric takes numerator/denominator, not table/value")
            if self.winsorize is not None:
                raise ValueError("'winsorize' caps per-unit values of a mean or count metric; "
                                 "a ratio metric's parts are not capped")
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
    def quantile_levels(self) -> tuple[float, ...]:
        """The quantiles whose treatment effects are reported (none by default)."""
        if self.quantiles is True:
            return (0.5, 0.9)
        return tuple(sorted(set(self.quantiles or ())))

    @property
    def desired_direction(self) -> Direction:
        """Guardrails (unsubscribes, complaints) are bad when they go up."""
        if self.direction is not None:
            return self.direction
        return "decrease" if self.guardrail else "increase"


class Population(_Model):
    where: str | None = None


class Covariates(_Model):
    """``pre_period_days`` alone: CUPED on each metric's own pre-period value (``method:
    cuped``, one slope pooled over the arms). ``method: regression`` (the default when any
    covariate below is named) adjusts every metric, ratio metrics included, by OLS with
    centred covariates interacted with treatment (Lin 2013): the metric's own pre-period
    value (a ratio's numerator and denominator), the pre-period values of
    ``pre_period_metrics``, a missing indicator for customers who joined after the
    pre-period's first day (``joined``: a customers date column) and numeric or true/false
    customers columns (``attributes``)."""

    pre_period_days: int = Field(0, ge=0, le=3650)
    method: Literal["cuped", "regression"] | None = None
    pre_period_metrics: Annotated[list[Name], Field(max_length=MAX_METRICS)] = []
    attributes: Annotated[list[Name], Field(max_length=MAX_ATTRIBUTES)] = []
    joined: Name | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Covariates:
        for key in ("pre_period_metrics", "attributes"):
            values = getattr(self, key)
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"{key} must be unique; repeated: {', '.join(dupes)}")
        if (self.pre_period_metrics or self.joined) and not self.pre_period_days:
            raise ValueError("pre_period_metrics and joined need a pre-period: set "
                             "pre_period_days")
        if self.method == "cuped" and self.named:
            raise ValueError("method: cuped adjusts by the metric's own pre-period value "
                             "only; use method: regression with pre_period_metrics, "
                             "attributes or joined")
        if self.method == "regression" and not (self.pre_period_days or self.attributes):
            raise ValueError("method: regression needs covariates: set pre_period_days or "
                             "attributes")
        return self

    @property
    def named(self) -> bool:
        return bool(self.pre_period_metrics or self.attributes or self.joined)

    @property
    def regression(self) -> bool:
        """Lin's regression adjustment rather than the pooled CUPED."""
        return self.method == "regression" or (self.method is None and self.named)


class Monitoring(_Model):
    """``method``: ``mixture`` (always-valid at any hour, the default) or
    ``group_sequential`` (Lan-DeMets spending at planned looks up to ``horizon_hours`` after
    the first exposure: ``looks`` equally spaced, or one every ``look_every_hours``)."""

    sequential: bool = False
    alpha: float | None = Field(None, gt=0.0, lt=0.5)
    response_window_hours: int = Field(72, gt=0, le=MAX_RESPONSE_WINDOW_HOURS)
    min_events_per_arm: int = Field(100, ge=0)
    expected_lift: float | None = None
    srm_alpha: float = Field(0.001, gt=0.0, lt=0.5)
    method: Literal["mixture", "group_sequential"] = "mixture"
    spending: Literal["obrien_fleming", "pocock"] | None = None
    looks: int | None = Field(None, ge=1, le=MAX_LOOKS)
    look_every_hours: int | None = Field(None, gt=0)
    horizon_hours: int | None = Field(None, gt=0, le=MAX_HORIZON_HOURS)

    @model_validator(mode="after")
    def _group_sequential(self) -> Monitoring:
        gs_keys = [k for k in ("spending", "looks", "look_every_hours", "horizon_hours")
                   if getattr(self, k) is not None]
        if self.method == "mixture":
            if gs_keys:
                raise ValueError(f"{', '.join(gs_keys)}: only for method: group_sequential")
            return self
        if not self.sequential:
            raise ValueError("method: group_sequential needs sequential: true")
        if self.horizon_hours is None:
            raise ValueError("method: group_sequential needs horizon_hours (the planned end "
                             "of the looks, in hours after the first exposure)")
        if (self.looks is None) == (self.look_every_hours is None):
            raise ValueError("method: group_sequential needs exactly one of looks or "
                             "look_every_hours")
        if max(self.looks or 0, self.look_every_hours or 0) > self.horizon_hours:
            raise ValueError(f"looks / look_every_hours cannot exceed horizon_hours "
                             f"({self.horizon_hours}): at most one look per hour")
        if len(self.look_hours) > MAX_LOOKS:
            raise ValueError(f"look_every_hours: {self.look_every_hours} gives "
                             f"{len(self.look_hours)} looks in {self.horizon_hours} h; at most "
                             f"{MAX_LOOKS}")
        return self

    @property
    def look_hours(self) -> tuple[int, ...]:
        """Hours after the first exposure's hour at which the group-sequential test looks:
        ``looks`` equally spaced (rounded to the hour) or every ``look_every_hours``, always
        ending at ``horizon_hours``."""
        n = self.horizon_hours or 0
        if self.looks is not None:
            hours = {max(1, round(n * j / self.looks)) for j in range(1, self.looks + 1)}
        else:
            step = self.look_every_hours or n
            hours = {*range(step, n + 1, step), n}
        return tuple(sorted(hours))


class Threshold(_Model):
    """Where a design check turns into a warning and into an error (shares of units)."""

    warn: float = Field(ge=0.0, le=1.0)
    error: float = Field(ge=0.0, le=1.0)


class Checks(_Model):
    """Design checks from the contacts table. ``contamination``: share of holdout units
    contacted on the channel (warn/error above); ``exposure``: share of treated units
    contacted (warn/error below)."""

    contamination: Threshold = Threshold(warn=0.01, error=0.05)
    exposure: Threshold = Threshold(warn=0.8, error=0.5)

    @model_validator(mode="after")
    def _ordered(self) -> Checks:
        if self.contamination.warn > self.contamination.error:
            raise ValueError("contamination: warn must not exceed error (shares that are "
                             "too high)")
        if self.exposure.warn < self.exposure.error:
            raise ValueError("exposure: warn must not be below error (shares that are too "
                             "low)")
        return self


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
    seed: int = Field(20260223, ge=0, le=2**32 - 1)
    draws: int = Field(1000, ge=100, le=MAX_DRAWS)
    tune: int = Field(1000, ge=100, le=MAX_DRAWS)
    chains: int = Field(2, ge=1, le=MAX_CHAINS)
    sampler: Literal["pymc", "nutpie"] = "pymc"
    target_accept: float = Field(0.95, gt=0.5, lt=1.0)  # NUTS step size: raise on divergences
    multiple_testing: MultipleTesting = MultipleTesting()


class Pressure(_Model):
    """Contact pressure (``design: dose_response``): ``optin_value`` is the value of keeping
    a customer reachable (estimated from the data when absent), ``current_frequency`` today's
    frequency (the gain of the optimum is stated over it), ``fatigue_metric`` the binary metric
    whose events cost a reachable customer (default: the first binary guardrail)."""

    optin_value: float | None = Field(None, ge=0.0, le=1e9)
    current_frequency: float | None = Field(None, ge=0.0, le=MAX_FREQUENCY)
    fatigue_metric: Name | None = None


class Encouragement(_Model):
    adoption_metric: Name
    outcome_metric: Name | None = None


class Targeting(_Model):
    """How ``liftlab target`` learns who gets which channel from this experiment
    (docs/targeting.md): the outcome, its value, the pre-period features and the learner."""

    metric: Name | None = None  # default: the primary metric (a per-customer metric)
    value_per_unit: float = Field(1.0, gt=0.0)  # margin earned per unit of the metric
    features: Annotated[list[Name], Field(max_length=200)] | None = None  # customers columns
    pre_period_days: int = Field(90, ge=0, le=3650)  # behaviour before the start, as features
    learner: Literal["t", "x", "dr"] = "dr"
    folds: int = Field(5, ge=2, le=20)
    max_channels_per_customer: int = Field(1, ge=1, le=MAX_CHANNELS)


class Confirmation(_Model):
    """This experiment confirms a targeting policy (written by ``liftlab target``): customers
    randomised to the policy, to business as usual and to a holdout, in the arms of
    ``channel``; ``analyze`` reports the realised gain of the policy over business as usual
    against the prediction."""

    source: Name  # the experiment the policy was learned from
    channel: Name
    bau: Title  # the option business as usual sends to everyone
    metric: Name
    value_per_unit: float = Field(gt=0.0)
    predicted_gain: float  # per customer, policy minus business as usual, net of contact cost
    predicted_gain_ci: tuple[float, float]
    cost_per_customer: dict[Literal["policy", "bau"], Annotated[float, Field(ge=0.0)]]


class Experiment(_Model):
    """An experiment definition (docs/yaml.md)."""

    schema_version: Literal[1]
    id: Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
    name: Title | None = None
    description: str | None = None
    start: Annotated[dt.date, Field(ge=FIRST_DATE, lt=LAST_DATE)]
    end: Annotated[dt.date, Field(gt=FIRST_DATE, le=LAST_DATE)]
    timezone: TimeZone = "UTC"
    unit: Name = "customer_id"
    population: Population = Population()
    channels: Annotated[dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$",
                                                  max_length=MAX_NAME_CHARS)], Channel],
                        Field(max_length=MAX_CHANNELS)]
    design: Design = "factorial"
    # Where the arms come from: None = the assignments table when the data has one, else
    # the stable hash; "table" = the assignments table, required; "hash" = always the hash.
    assignment: Literal["table", "hash"] | None = None
    metrics: Annotated[list[Metric], Field(max_length=MAX_METRICS)]
    primary_metric: Name
    covariates: Covariates = Covariates()
    segments: Annotated[list[Name], Field(max_length=MAX_SEGMENTS)] = []
    monitoring: Monitoring = Monitoring()
    checks: Checks = Checks()
    analysis: Analysis = Analysis()
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    encouragement: Encouragement | None = None
    pressure: Pressure | None = None
    owner: Title | None = None
    tags: Annotated[list[Title], Field(max_length=MAX_TAGS)] = []
    targeting: Targeting = Targeting()
    confirmation: Confirmation | None = None

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

    @field_validator("segments")
    @classmethod
    def _segments_unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({s for s in v if v.count(s) > 1})
        if dupes:
            raise ValueError(f"segments must be unique; repeated: {', '.join(dupes)}")
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

    @field_validator("covariates")
    @classmethod
    def _covariate_metrics(cls, v: Covariates, info: ValidationInfo) -> Covariates:
        kinds = {m.name: m.kind for m in info.data.get("metrics") or []}
        for name in v.pre_period_metrics:
            if kinds and kinds.get(name) in (None, "ratio"):
                raise ValueError(f"pre_period_metrics: {name!r} is not a mean, count or "
                                 "binary metric of the experiment")
        return v

    @field_validator("targeting")
    @classmethod
    def _targeting_metric(cls, v: Targeting, info: ValidationInfo) -> Targeting:
        metrics = {m.name: m for m in info.data.get("metrics") or []}
        if v.metric is None or not metrics:
            return v
        metric = metrics.get(v.metric)
        if metric is None:
            raise ValueError(f"targeting.metric {v.metric!r} is not a metric; choose one of: "
                             f"{', '.join(metrics)}")
        if metric.kind == "ratio":
            raise ValueError(f"targeting needs a per-customer outcome; {metric.name!r} is a "
                             "ratio metric: set targeting.metric to a mean, count or binary "
                             "metric")
        return v

    @field_validator("confirmation")
    @classmethod
    def _confirmation_arms(cls, v: Confirmation | None,
                           info: ValidationInfo) -> Confirmation | None:
        if v is None:
            return v
        channels = info.data.get("channels") or {}
        metrics = [m.name for m in info.data.get("metrics") or []]
        if channels and v.channel not in channels:
            raise ValueError(f"confirmation.channel {v.channel!r} is not a channel of this "
                             "experiment")
        channel = channels.get(v.channel)
        if channel is not None and set(channel.treatment_arms) != {"policy", "bau"}:
            raise ValueError(f"channel {v.channel!r} must have the variants policy and bau "
                             "(and a holdout) to confirm a policy")
        if metrics and v.metric not in metrics:
            raise ValueError(f"confirmation.metric {v.metric!r} is not a metric")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Experiment:
        names = [m.name for m in self.metrics]
        enc = self.encouragement
        if enc is not None and enc.adoption_metric not in names:
            raise ValueError(
                f"encouragement.adoption_metric {enc.adoption_metric!r} is not a metric"
            )
        self._dose_response_checks()
        if self.design == "global_holdout" and len(self.channels) > 1:
            fracs = {round(c.holdout, 6) for c in self.channels.values()}
            if len(fracs) > 1:
                raise ValueError(
                    "a global holdout keeps one blind zone for all channels: give every "
                    "channel the same holdout fraction"
                )
        return self

    def _dose_response_checks(self) -> None:
        dosed = [ch for ch, cfg in self.channels.items() if cfg.dose_arms is not None]
        if self.design != "dose_response":
            if dosed or self.pressure is not None:
                raise ValueError("'arms' with frequencies and 'pressure' need design: "
                                 "dose_response")
            return
        if len(self.channels) != 1 or not dosed:
            raise ValueError("design: dose_response takes one channel, with 'arms' that "
                             "declare a share and a frequency each")
        primary = self.metric(self.primary_metric)
        if primary.kind != "mean":
            raise ValueError(f"design: dose_response fits a curve to a mean metric; primary "
                             f"metric {primary.name!r} is a {primary.kind} metric")
        if self.analysis.bayes == "hierarchical" or self.monitoring.sequential or \
                self.encouragement is not None:
            raise ValueError("design: dose_response has its own model: remove bayes: "
                             "hierarchical, sequential monitoring and encouragement")
        fatigue, pressure = self.fatigue_metric, self.pressure
        if pressure is None:
            return
        if pressure.fatigue_metric is not None and (fatigue is None or fatigue.kind != "binary"):
            raise ValueError(f"pressure.fatigue_metric {pressure.fatigue_metric!r} must "
                             "name a binary metric (e.g. unsubscribe)")
        if pressure.optin_value is not None and fatigue is None:
            raise ValueError("pressure.optin_value values the customers a fatigue metric "
                             "loses: add a binary guardrail metric (e.g. unsubscribe)")
        top = max(self.channels[dosed[0]].frequencies.values())
        if pressure.current_frequency is not None and pressure.current_frequency > top:
            raise ValueError(f"pressure.current_frequency {pressure.current_frequency:g} is "
                             f"beyond the highest tested frequency ({top:g})")

    @property
    def fatigue_metric(self) -> Metric | None:
        """The binary metric whose events lose a reachable customer (dose-response)."""
        name = self.pressure.fatigue_metric if self.pressure is not None else None
        if name is not None:
            return next((m for m in self.metrics if m.name == name), None)
        return next((m for m in self.metrics if m.kind == "binary" and m.guardrail), None)

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
