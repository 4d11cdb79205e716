"""The sections of a scenario file, one pydantic model each: the calendar, arrivals,
scoring, the team and its shifts, routing, SLAs, speed-to-lead decay, conversion, nurture
and economics, with the distributions and the shared vocabularies (bands, rejection
reasons, segments, regions) they use.

``sim.scenario`` assembles them into a ``Scenario`` and reads scenario files;
import them from there. Every field has a default taken from DOMAIN.md; units are in the
names (``_minutes``, ``_per_week``, ``_days``).
"""
from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Finite numbers only: YAML reads '.inf' and '.nan' as floats, which no field means.
Prob = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
PosFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
BANDS_ROUTED = ("hot", "mql")
REASONS = ("not_icp", "no_intent", "no_timing", "wrong_role", "blocker")
SEGMENTS = ("smb", "mid", "enterprise")
# Where a lead's company is (sim.arrivals samples them; the first two are the seeds' target regions).
REGIONS = ("north_america", "europe", "apac", "latam", "mea")
SENIORITY = ("c_level", "vp", "director", "manager", "individual")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# ---- distributions -----------------------------------------------------------------
class Duration(Strict):
    """A positive random duration in minutes: ``fixed``, ``exponential``, ``lognormal`` or
    ``gamma``, given by its mean and coefficient of variation (cv = sd / mean)."""

    dist: Literal["fixed", "exponential", "lognormal", "gamma"] = "lognormal"
    mean_minutes: PosFloat = 12.0
    cv: NonNeg = 0.5

    @property
    def mean(self) -> float:
        return self.mean_minutes

    @property
    def variance(self) -> float:
        cv = 1.0 if self.dist == "exponential" else (0.0 if self.dist == "fixed" else self.cv)
        return (cv * self.mean_minutes) ** 2

    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        m = self.mean_minutes
        if self.dist == "fixed" or (self.cv == 0 and self.dist != "exponential"):
            return np.full(size, m)
        if self.dist == "exponential":
            return rng.exponential(m, size)
        if self.dist == "gamma":
            k = 1.0 / self.cv**2
            return rng.gamma(k, m / k, size)
        s2 = np.log1p(self.cv**2)  # lognormal with the given mean and cv
        return rng.lognormal(np.log(m) - s2 / 2, np.sqrt(s2), size)

    def __repr__(self) -> str:
        return f"{self.dist.capitalize()}(mean={self.mean_minutes:g} min, cv={self.cv:g})"


class DecayCurve(Strict):
    """A multiplier in (0, 1] of a probability as a function of response delay d (minutes).

    kinds (all monotone non-increasing, equal to 1 at d = 0):
    - ``none``:        m(d) = 1
    - ``exponential``: m(d) = exp(-d / tau)
    - ``power``:       m(d) = (1 + d / d0) ** -alpha
    - ``mixture``:     m(d) = w exp(-d / tau) + (1 - w - floor) exp(-d / tau_slow) + floor
    """

    kind: Literal["none", "exponential", "power", "mixture"] = "none"
    tau_minutes: PosFloat = 4.0
    tau_slow_minutes: PosFloat = 1440.0
    weight_fast: Prob = 1.0
    floor: Prob = 0.0
    d0_minutes: PosFloat = 60.0
    alpha: NonNeg = 0.8

    @model_validator(mode="after")
    def _weights(self):
        if self.kind == "mixture" and self.weight_fast + self.floor > 1.0:
            raise ValueError(f"weight_fast + floor must be <= 1; got {self.weight_fast} + {self.floor}")
        return self

    def __call__(self, d):
        d = np.maximum(np.asarray(d, dtype=float), 0.0)
        if self.kind == "none":
            return np.ones_like(d)
        if self.kind == "exponential":
            return np.exp(-d / self.tau_minutes)
        if self.kind == "power":
            return (1.0 + d / self.d0_minutes) ** (-self.alpha)
        w, f = self.weight_fast, self.floor
        return w * np.exp(-d / self.tau_minutes) + (1 - w - f) * np.exp(-d / self.tau_slow_minutes) + f

    def scalar(self):
        """The same ``m(d)`` as a plain-Python function of one float, for the simulator's
        event loop (numpy is slow on scalars). Keep the two spellings side by side:
        ``tests/test_sim_behaviour.py::test_scalar_decay_equals_vectorised`` holds them equal."""
        if self.kind == "none":
            return lambda d: 1.0
        if self.kind == "exponential":
            tau = self.tau_minutes
            return lambda d: math.exp(-d / tau)
        if self.kind == "power":
            d0, a = self.d0_minutes, self.alpha
            return lambda d: (1.0 + d / d0) ** -a
        w, f, tau, tau_s = self.weight_fast, self.floor, self.tau_minutes, self.tau_slow_minutes
        slow = 1.0 - w - f
        return lambda d: w * math.exp(-d / tau) + slow * math.exp(-d / tau_s) + f


# ---- sections -------------------------------------------------------------------------
def check_zone(v: str | None) -> str | None:
    """An IANA time zone name, checked (None passes: the calendar's zone)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if v is None:
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (use an IANA name such as 'Europe/Berlin')") from None
    return v


class Calendar(Strict):
    """When the team works. Times are local to ``timezone``; the run starts at 00:00 of
    ``start_date``."""

    start_date: date = date(2026, 1, 5)
    timezone: str = "America/New_York"
    horizon_days: Annotated[int, Field(ge=1, le=3660)] = 91
    warmup_days: Annotated[int, Field(ge=0)] = 14
    working_days: list[Annotated[int, Field(ge=0, le=6)]] = [0, 1, 2, 3, 4]
    open_hour: Annotated[float, Field(ge=0, le=24)] = 9.0
    close_hour: Annotated[float, Field(ge=0, le=24)] = 18.0
    holidays: list[date] = []
    always_open: bool = False

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v):
        return check_zone(v)

    @model_validator(mode="after")
    def _hours(self):
        if not self.always_open and self.close_hour <= self.open_hour:
            raise ValueError(f"close_hour ({self.close_hour}) must be after open_hour ({self.open_hour})")
        if self.warmup_days >= self.horizon_days:
            raise ValueError(f"warmup_days ({self.warmup_days}) must be shorter than horizon_days ({self.horizon_days})")
        return self


class Shift(Strict):
    """A group of SDRs working the same hours.

    The hours, days and holidays are local to ``timezone`` (None: the calendar's); a
    shift in another zone follows its own daylight-saving dates (``sim.calendar.working_intervals``).
    With ``routing.route_by``, ``regions`` or ``segments`` name the leads this shift
    works; a shift with no list works the leads no other shift lists."""

    name: str = "day"
    people: Annotated[int, Field(ge=1)] = 1
    days: list[Annotated[int, Field(ge=0, le=6)]] = [0, 1, 2, 3, 4]
    start_hour: Annotated[float, Field(ge=0, le=24)] = 9.0
    end_hour: Annotated[float, Field(ge=0, le=48)] = 18.0
    holidays: list[date] = []  # this shift's own days off, on top of the calendar's holidays
    # Left out of a dump while unset, as ``Routing.route_by``.
    timezone: str | None = Field(None, exclude_if=lambda v: v is None)
    regions: list[str] | None = Field(None, exclude_if=lambda v: v is None)
    segments: list[str] | None = Field(None, exclude_if=lambda v: v is None)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v):
        return check_zone(v)

    @field_validator("regions", "segments")
    @classmethod
    def _known(cls, v, info):
        allowed = REGIONS if info.field_name == "regions" else SEGMENTS
        unknown = [x for x in v or [] if x not in allowed]
        if unknown:
            raise ValueError(f"unknown {info.field_name[:-1]}(s) {unknown}; allowed {list(allowed)}")
        if v is not None and not v:
            raise ValueError(f"an empty list of {info.field_name} covers nothing; leave it out for a shift "
                             f"that works what no other shift lists")
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.end_hour <= self.start_hour:
            raise ValueError(f"shift '{self.name}': end_hour ({self.end_hour}) must be after start_hour ({self.start_hour})")
        return self


class Team(Strict):
    """SDRs (and AEs for escalated Hot leads), their hours, handling times and cadence."""

    sdrs: Annotated[int, Field(ge=0, le=100000)] = 5
    shifts: list[Shift] | None = None  # None: every SDR works the calendar's hours
    handling_time: Duration = Duration(dist="lognormal", mean_minutes=8.0, cv=0.6)
    no_contact_handling_share: Prob = 0.35  # an unanswered attempt (voicemail, email) vs a call
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 6
    attempt_gaps_minutes: list[PosFloat] = [30.0, 240.0, 1440.0, 2880.0, 4320.0]
    capacity_cap: Annotated[int, Field(ge=1)] | None = None
    aes: Annotated[int, Field(ge=0)] = 2
    ae_handling_time: Duration = Duration(dist="lognormal", mean_minutes=30.0, cv=0.4)
    escalate_hot_to_ae: bool = False
    unlimited: bool = False  # infinite SDRs: every lead is touched on arrival (a test case)
    # An overflow pool (a manager, a backup team) on the calendar's hours, handling like
    # an SDR; it takes the leads escalated on an SLA breach (routing.escalate_to).
    overflow_people: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _shifts(self):
        if self.shifts is not None and sum(s.people for s in self.shifts) != self.sdrs:
            raise ValueError(
                f"shifts staff {sum(s.people for s in self.shifts)} SDRs but sdrs = {self.sdrs}; make them agree"
            )
        if self.sdrs == 0 and not self.unlimited:
            raise ValueError("sdrs must be at least 1 (or set unlimited: true)")
        if self.escalate_hot_to_ae and self.aes < 1:
            raise ValueError("escalate_hot_to_ae needs aes >= 1")
        return self

    def attempt_offsets_minutes(self) -> np.ndarray:
        """Minutes from the first touch to each of the ``max_attempts`` attempts, following
        the cadence (the last gap repeats when there are more attempts than gaps)."""
        gaps = list(self.attempt_gaps_minutes) or [1440.0]
        g = [gaps[min(i, len(gaps) - 1)] for i in range(self.max_attempts - 1)]
        return np.concatenate([[0.0], np.cumsum(g)])


class Routing(Strict):
    """How leads reach SDRs: ``fifo`` (one shared queue), ``priority`` (Hot before MQL,
    first-come within a band) or ``round_robin`` (each lead assigned on arrival)."""

    policy: Literal["fifo", "priority", "round_robin", "edf"] = "priority"
    reassign_on_sla_breach: bool = True
    # What happens when a lead's first touch passes its SLA deadline, in every policy:
    # None keeps today's rule (round_robin reassigns when reassign_on_sla_breach, other
    # policies do nothing); "alert" counts the breach only; "reassign" gives the lead to
    # the next available rep (round_robin: out of its owner's queue into the shared one;
    # shared queues: to the front); "escalate" moves it to another pool (escalate_to).
    on_breach: Literal["alert", "reassign", "escalate"] | None = None
    escalate_to: Literal["ae", "overflow"] = "overflow"
    # round_robin: assign a new lead only to a rep on duty now and under the cap (else it
    # waits in the shared queue for the first rep free); False is today's blind rotation.
    assign_on_duty_only: bool = False
    # Regional or segment routing: a lead is worked only by the shifts whose ``regions``
    # (``segments``) list its own, or, when no shift lists it, by the shifts with no list.
    # Every policy works inside each group: its own queues, rotation and breach actions (a
    # reassigned lead goes to the next rep of its group). Hot leads escalated to AEs and
    # breaches escalated to the overflow team leave the groups (those teams are not routed).
    # (Left out of a dump while unset: a scenario written without it reads back the same.)
    route_by: Literal["region", "segment"] | None = Field(None, exclude_if=lambda v: v is None)


class SLA(Strict):
    """Response targets per band; the clock counts business or wall-clock minutes."""

    hot_minutes: PosFloat = 15.0
    mql_minutes: PosFloat = 240.0
    clock: Literal["business", "wall"] = "business"
    disposition_target_days: PosFloat = 3.0
    # Whose working hours a business clock counts: the office calendar's, or the owner's
    # own (a round-robin owner's shift, holidays and time zone; while a lead waits in a
    # shared queue, the hours of the shifts that may take it: its routing group's, or the
    # team's, the union of its shifts). Affects the engine's deadlines (edf, breach
    # timers) and the KPIs: attainment and business response times count each pass on
    # the same clock (sim.calendar.SlaClocks).
    schedule: Literal["office", "owner"] = "office"


class Scoring(Strict):
    """The points table scoring each lead, and the band cut-offs (override its own)."""

    points_table: str = "data/scoring/seed_points.yaml"
    hot: Annotated[float, Field(allow_inf_nan=False)] | None = None
    mql: Annotated[float, Field(allow_inf_nan=False)] | None = None
    nurture: Annotated[float, Field(allow_inf_nan=False)] | None = None


class Channel(Strict):
    """A lead source: its share of volume and the attributes of the leads it brings."""

    share: NonNeg = 0.2
    employee_count_median: PosFloat = 70.0
    employee_count_sigma: PosFloat = 1.3
    target_industry_share: Prob = 0.35
    target_region_share: Prob = 0.5
    seniority: dict[str, Prob] = {"c_level": 0.04, "vp": 0.08, "director": 0.18, "manager": 0.3, "individual": 0.4}
    demo_request_rate: Prob = 0.06
    pricing_page_visits_mean: NonNeg = 0.8
    content_downloads_mean: NonNeg = 0.5
    web_visits_mean: NonNeg = 3.0
    webinars_mean: NonNeg = 0.2
    cost_per_lead: NonNeg = 80.0

    @field_validator("seniority")
    @classmethod
    def _sen(cls, v):
        unknown = set(v) - set(SENIORITY)
        if unknown:
            raise ValueError(f"unknown seniority level(s) {sorted(unknown)}; allowed {list(SENIORITY)}")
        if abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"seniority shares must sum to 1; got {sum(v.values()):.4f}")
        return v


def _default_channels() -> dict[str, Channel]:
    return {
        "inbound_demo": Channel(share=0.15, demo_request_rate=0.6, pricing_page_visits_mean=2.0, cost_per_lead=150.0),
        "paid_search": Channel(share=0.3, demo_request_rate=0.06, cost_per_lead=90.0),
        "content": Channel(share=0.3, demo_request_rate=0.02, content_downloads_mean=1.0, cost_per_lead=45.0),
        "events": Channel(share=0.1, employee_count_median=300.0, demo_request_rate=0.05, webinars_mean=1.0, cost_per_lead=120.0),
        "partner": Channel(share=0.15, employee_count_median=200.0, target_industry_share=0.55, demo_request_rate=0.08, cost_per_lead=60.0),
    }


class Arrivals(Strict):
    """Lead volume, its hour-of-week shape and the channel mix."""

    leads_per_week: PosFloat = 770.0
    profile: Literal["business", "flat"] | list[NonNeg] = "business"
    channels: dict[str, Channel] = Field(default_factory=_default_channels)
    # Region -> IANA time zone: the profile applies on each such region's local clock
    # (European leads arrive in European business hours); other regions: the calendar's.
    region_timezones: dict[str, str] = {}

    @field_validator("region_timezones")
    @classmethod
    def _regions(cls, v):
        unknown = [r for r in v if r not in REGIONS]
        if unknown:
            raise ValueError(f"unknown region(s) {unknown}; allowed {list(REGIONS)}")
        for zone in v.values():
            check_zone(zone)
        return v

    @field_validator("profile")
    @classmethod
    def _profile(cls, v):
        if isinstance(v, list) and (len(v) != 168 or sum(v) <= 0):
            raise ValueError(f"an hour-of-week profile needs 168 non-negative weights with a positive sum; got {len(v)}")
        return v

    @field_validator("channels")
    @classmethod
    def _channels(cls, v):
        if not v or sum(c.share for c in v.values()) <= 0:
            raise ValueError("at least one channel with a positive share is needed")
        return v


class Decay(Strict):
    """Speed-to-lead: multipliers of contact and qualification odds by response delay.

    The default preset reproduces the published ratios of DOMAIN.md section 4 (see
    ``sim.decay``)."""

    # Fitted by sim.decay.fit_study_preset to the baseline odds and cadence: 5 vs 30 min
    # contact 100x and qualification 21x (LRM 2007); within 1 h vs 1-2 h 7x and vs 24 h+
    # 60x qualification (HBR 2011).
    contact: DecayCurve = DecayCurve(kind="mixture", tau_minutes=3.772, weight_fast=0.99768, floor=0.00232)
    qualification: DecayCurve = DecayCurve(kind="power", d0_minutes=347.1, alpha=1.1173)


class Conversion(Strict):
    """Probabilities and durations after the first touch, by band and segment."""

    contact_prob: dict[str, Prob] = {"hot": 0.85, "mql": 0.75}
    qualify_prob: dict[str, Prob] = {"hot": 0.6, "mql": 0.45}
    sal_accept_prob: dict[str, Prob] = {"hot": 0.85, "mql": 0.7}
    disposition_days_mean: PosFloat = 2.0
    rejection_mix: dict[str, NonNeg] = {"not_icp": 0.25, "no_intent": 0.3, "no_timing": 0.2, "wrong_role": 0.15, "blocker": 0.1}
    recycle_after_days: dict[str, PosFloat] = {"no_timing": 45.0, "blocker": 30.0}
    sql_to_opportunity: dict[str, Prob] = {"smb": 0.25, "mid": 0.3, "enterprise": 0.35}
    days_sql_to_opportunity_mean: PosFloat = 10.0
    win_prob: dict[str, Prob] = {"smb": 0.3, "mid": 0.25, "enterprise": 0.2}
    no_decision_prob: dict[str, Prob] = {"smb": 0.2, "mid": 0.25, "enterprise": 0.3}
    days_to_close_mean: dict[str, PosFloat] = {"smb": 30.0, "mid": 50.0, "enterprise": 80.0}
    deal_size_median: dict[str, PosFloat] = {"smb": 12000.0, "mid": 35000.0, "enterprise": 90000.0}
    deal_size_sigma: PosFloat = 0.5

    @model_validator(mode="after")
    def _keys(self):
        for name in ("contact_prob", "qualify_prob", "sal_accept_prob"):
            if set(getattr(self, name)) != set(BANDS_ROUTED):
                raise ValueError(f"{name} needs exactly the bands {list(BANDS_ROUTED)}; got {sorted(getattr(self, name))}")
        for name in ("sql_to_opportunity", "win_prob", "no_decision_prob", "days_to_close_mean", "deal_size_median"):
            if set(getattr(self, name)) != set(SEGMENTS):
                raise ValueError(f"{name} needs exactly the segments {list(SEGMENTS)}; got {sorted(getattr(self, name))}")
        for s in SEGMENTS:
            if self.win_prob[s] + self.no_decision_prob[s] > 1:
                raise ValueError(f"win_prob + no_decision_prob for '{s}' exceed 1")
        unknown = set(self.rejection_mix) - set(REASONS)
        if unknown or sum(self.rejection_mix.values()) <= 0:
            raise ValueError(f"rejection_mix takes reasons among {list(REASONS)} with a positive total; got {self.rejection_mix}")
        unknown = set(self.recycle_after_days) - set(REASONS)
        if unknown:
            raise ValueError(f"recycle_after_days: unknown reason(s) {sorted(unknown)}")
        for b in BANDS_ROUTED:
            if self.qualify_prob[b] > self.contact_prob[b]:
                raise ValueError(f"qualify_prob[{b}] ({self.qualify_prob[b]}) cannot exceed contact_prob[{b}] ({self.contact_prob[b]})")
        return self


class Nurture(Strict):
    """Marketing nurture: engagement accrues points, the score decays, and a lead that
    crosses the MQL cut-off re-enters the SDR queue."""

    enabled: bool = True
    engagement_events_per_week: NonNeg = 0.35
    points_per_event: NonNeg = 10.0
    score_decay_points_per_week: NonNeg = 2.0
    max_reentries: Annotated[int, Field(ge=0)] = 2


class Economics(Strict):
    """Targets behind pipeline coverage (seed target 4x) and marketing ROI (5:1)."""

    quarterly_revenue_target: PosFloat = 1_500_000.0
    coverage_target: PosFloat = 4.0
    # The cost of a policy (DOMAIN.md section 8). Defaults are assumptions to replace
    # with your own: a fully loaded SDR about $95k a year (US), an AE about $200k; hours
    # outside 9-18 or on weekends cost a shift premium; gross margin on revenue.
    sdr_cost_per_year_usd: NonNeg = 95_000.0
    ae_cost_per_year_usd: NonNeg = 200_000.0
    paid_hours_per_year: PosFloat = 2080.0
    off_hours_premium: Annotated[float, Field(ge=0.0, le=2.0)] = 0.15
    gross_margin: Prob = 0.75
