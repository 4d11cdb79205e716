"""Scenario files: one validated object per funnel, built from YAML, ``--set`` overrides
and notebook parameters alike.

Every field has a default taken from DOMAIN.md; units are in the names (``_minutes``,
``_per_week``, ``_days``). Unknown keys and impossible values are errors naming the file,
the field, the rule and the value.
"""
from __future__ import annotations

import copy
import math
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from common.errors import LabError, shown, validation_message
from common.files import read_yaml
from common.paths import ROOT

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
        raise ValueError(f"unknown time zone {v!r} (use an IANA name such as 'Europe/Berlin')")
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


class Scenario(Strict):
    """A whole funnel: who arrives, who works them, how fast, and what follows."""

    name: str = "baseline"
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 2026
    replications: Annotated[int, Field(ge=1)] = 20
    calendar: Calendar = Calendar()
    arrivals: Arrivals = Arrivals()
    scoring: Scoring = Scoring()
    team: Team = Team()
    routing: Routing = Routing()
    sla: SLA = SLA()
    decay: Decay = Decay()
    conversion: Conversion = Conversion()
    nurture: Nurture = Nurture()
    economics: Economics = Economics()
    _source: str = PrivateAttr("<scenario>")  # the file (and option) it came from, for messages

    @model_validator(mode="after")
    def _routing_combinations(self):
        # Combinations of routing and team that have no meaning are refused, not ignored.
        r, t = self.routing, self.team
        if t.capacity_cap is not None and r.policy != "round_robin":
            raise ValueError(
                f"team.capacity_cap caps the leads each rep owns, and only round_robin gives leads an owner "
                f"(under {r.policy} any rep takes any waiting attempt); use routing.policy=round_robin or drop the cap")
        if r.assign_on_duty_only and r.policy != "round_robin":
            raise ValueError(f"routing.assign_on_duty_only applies to round_robin only; got policy {r.policy}")
        if self.calendar.always_open and t.shifts and any(s.timezone for s in t.shifts):
            raise ValueError(f"team.shifts: a shift's timezone sets its hours, and calendar.always_open has no hours "
                             f"(everyone is always on duty); drop the timezone or always_open; got timezone "
                             f"{next(s.timezone for s in t.shifts if s.timezone)!r}")
        self._check_route_by()
        if r.on_breach == "escalate":
            if r.escalate_to == "overflow" and t.overflow_people < 1:
                raise ValueError("routing.on_breach=escalate to overflow needs team.overflow_people >= 1")
            if r.escalate_to == "ae" and t.aes < 1:
                raise ValueError("routing.on_breach=escalate to ae needs team.aes >= 1")
        return self

    def _check_route_by(self):
        """Routing by region or segment: refuse what has no meaning (see ``Routing.route_by``)."""
        by, shifts = self.routing.route_by, self.team.shifts or []
        field = {"region": "regions", "segment": "segments"}.get(by)
        for k, s in enumerate(shifts):
            for name in ("regions", "segments"):
                if getattr(s, name) is not None and name != field:
                    raise ValueError(
                        f"team.shifts.{k}.{name}: shift '{s.name}' lists {name}, which only routing.route_by="
                        f"{name[:-1]} uses; got routing.route_by={by}")
        if by is None:
            return
        if not shifts:
            raise ValueError(f"routing.route_by={by} routes leads to shifts and team.shifts is empty; list the "
                             f"shifts with the {field} each covers")
        if self.team.unlimited:
            raise ValueError(f"routing.route_by={by} routes leads to shifts and team.unlimited has none; drop one")
        lists = [(s.name, set(getattr(s, field))) for s in shifts if getattr(s, field) is not None]
        for i, (a, la) in enumerate(lists):
            for b, lb in lists[i + 1:]:
                if la & lb and la != lb:
                    raise ValueError(
                        f"team.shifts: shifts '{a}' and '{b}' both list {sorted(la & lb)} under {field} but not the "
                        f"same {field} (rule: shifts that share one list the same ones, and work them as one "
                        f"group); got {sorted(la)} and {sorted(lb)}")
        allowed = REGIONS if by == "region" else SEGMENTS
        covered = set().union(*(lx for _, lx in lists)) if lists else set()
        if len(lists) == len(shifts) and covered != set(allowed):
            missing = [x for x in allowed if x not in covered]
            raise ValueError(
                f"team.shifts: no shift works the {field} {missing} under routing.route_by={by} (rule: list them, "
                f"or leave one shift without {field} to work what no other shift lists)")

    def route_groups(self) -> tuple[list[int], dict[str, int]] | None:
        """Routing groups (``routing.route_by``): the group of each shift (shifts listing
        the same regions or segments form one; the shifts with no list another) and the
        group of each region or segment. None without ``route_by``."""
        by = self.routing.route_by
        if by is None:
            return None
        field, allowed = ("regions", REGIONS) if by == "region" else ("segments", SEGMENTS)
        seen: dict = {}
        shift_group = [seen.setdefault(None if getattr(s, field) is None else frozenset(getattr(s, field)), len(seen))
                       for s in self.team.shifts]
        key_group = {x: g for s, g in zip(self.team.shifts, shift_group) for x in getattr(s, field) or []}
        if None in seen:
            for x in allowed:
                key_group.setdefault(x, seen[None])
        return shift_group, key_group

    def lead_groups(self, region, segment) -> np.ndarray | None:
        """Routing group of each lead from its ``region`` and ``segment`` labels (-1 for a
        label no group covers, such as a missing one); None without ``route_by``."""
        route = self.route_groups()
        if route is None:
            return None
        keys = np.asarray(region if self.routing.route_by == "region" else segment, dtype=object)
        key_group = route[1]
        return np.fromiter((key_group.get(x, -1) for x in keys), dtype=np.int64, count=len(keys))

    @model_validator(mode="after")
    def _nested_odds(self):
        # A qualified lead must have been contacted: check the odds on a delay grid.
        grid = np.concatenate([np.linspace(0, 120, 241), np.geomspace(121, 60 * 24 * 90, 200)])
        for b in BANDS_ROUTED:
            q = self.conversion.qualify_prob[b] * self.decay.qualification(grid)
            if np.any(q > 1.0):
                raise ValueError(f"qualification odds exceed 1 for band {b}")
        return self

    # ---- derived ------------------------------------------------------------------
    def points_table(self, base_dir: Path | None = None):
        """The scoring table with this scenario's cut-offs applied."""
        from sim.scoring import PointsTable, Thresholds

        path = Path(self.scoring.points_table)
        if not path.is_absolute():
            candidates = [(base_dir or ROOT) / path, ROOT / path]
            path = next((p for p in candidates if p.exists()), candidates[-1])
        try:
            table = PointsTable.load(path)
        except Exception as exc:  # missing, unreadable or malformed: name the scenario's field
            problem = str(exc).removeprefix(f"{path}: ") if isinstance(exc, LabError) else \
                f"cannot read the points table ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
            hint = f" (relative paths start at {base_dir or ROOT})" if not Path(self.scoring.points_table).is_absolute() \
                and not path.exists() else ""
            raise LabError(f"{self._source}: scoring.points_table: {problem}{hint}; "
                           f"got {shown(self.scoring.points_table)}") from None
        th = table.thresholds
        try:
            table.thresholds = Thresholds(
                hot=th.hot if self.scoring.hot is None else self.scoring.hot,
                mql=th.mql if self.scoring.mql is None else self.scoring.mql,
                nurture=th.nurture if self.scoring.nurture is None else self.scoring.nurture,
            )
        except LabError as exc:  # the scenario's cut-offs against the table's own
            raise LabError(f"{self._source}: scoring: {exc}") from None
        return table


# ---- building from files and overrides -------------------------------------------
def _format_errors(exc: ValidationError, source: str) -> str:
    return validation_message(exc, source, unknown="unknown field (not part of a scenario; check the spelling)")


def parse_override(text: str) -> tuple[str, object]:
    """``team.sdrs=8`` -> ("team.sdrs", 8); the value is read as YAML."""
    if "=" not in text:
        raise LabError(f"--set {text}: override must look like field.path=value (for example team.sdrs=8); "
                       f"got {shown(text)}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise LabError(f"--set {text}: override has no field name before '='; got {shown(text)}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(doc: dict, overrides: dict[str, object], source: str = "override") -> dict:
    """Set dotted paths in a scenario dict; a path that names no scenario field is an error."""
    doc = copy.deepcopy(doc)
    for key, value in overrides.items():
        parts = key.split(".")
        model: type[BaseModel] | None = Scenario
        node = doc
        for i, part in enumerate(parts):
            if model is not None:
                if part not in model.model_fields:
                    here = ".".join(parts[: i + 1])
                    raise LabError(
                        f"{source}: {here}: unknown field; {'.'.join(parts[:i]) or 'a scenario'} has "
                        f"{sorted(model.model_fields)}"
                    )
                ann = model.model_fields[part].annotation
                model = _model_of(ann)
                if model is None and i < len(parts) - 1 and not _is_mapping(ann):
                    here = ".".join(parts[: i + 1])
                    raise LabError(f"{source}: {here} is a single value or a list, it has no field "
                                   f"{parts[i + 1]!r} (rule: name a field, or set the whole value); got {key!r}")
            if not isinstance(node, dict):
                here = ".".join(parts[:i])
                raise LabError(f"{source}: {here} holds {shown(node)}, not fields (rule: name a field, or set "
                               f"the whole value); got {key!r}")
            if i == len(parts) - 1:
                node[part] = value
            else:
                nxt = node.get(part)
                if nxt is None:
                    nxt = {}
                elif isinstance(nxt, BaseModel):
                    nxt = nxt.model_dump()
                node[part] = nxt
                node = nxt
    return doc


def _model_of(ann):
    """The scenario section a field holds (``Team``, or ``Team | None``), else None."""
    for t in (ann, *getattr(ann, "__args__", ())):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _is_mapping(ann) -> bool:
    """Whether a field is a dict (``--set conversion.win_prob.smb=0.3`` reaches inside)."""
    import typing

    return any(t is dict or typing.get_origin(t) is dict for t in (ann, *getattr(ann, "__args__", ())))


def _parse_overrides(overrides) -> tuple[dict, dict]:
    """Overrides as a dict, and the option each came from (``--set k=v``) for messages."""
    if isinstance(overrides, (list, tuple)):
        pairs = [(o, parse_override(o)) for o in overrides]
        return {k: v for _, (k, v) in pairs}, {k: f"--set {o}" for o, (k, _) in pairs}
    return dict(overrides or {}), {}


def build_scenario(doc: dict | None = None, overrides: dict | None = None, source: str = "<scenario>",
                   labels: dict[str, str] | None = None) -> Scenario:
    """Validate a scenario dict (plus dotted overrides) into a ``Scenario``.

    ``labels`` names where each override came from (``--set team.sdrs=8``): a problem
    with an overridden field blames that option, others blame ``source``."""
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise LabError(f"{source}: a scenario must be a mapping of fields; got {type(doc).__name__}")
    labels = labels or {}
    overrides = dict(overrides or {})

    def blame(key):
        return labels.get(key, f"{source} (override)")

    for key, value in overrides.items():
        doc = apply_overrides(doc, {key: value}, source=blame(key))

    def where(loc: tuple) -> str:
        path = tuple(str(p) for p in loc)
        for key in reversed(list(overrides)):
            parts = tuple(key.split("."))
            if path[: len(parts)] == parts:
                return blame(key)
            if parts[: len(path)] == path and path:
                return f"{source} with {blame(key)}"
        return source

    try:
        scn = Scenario.model_validate(doc)
    except ValidationError as exc:
        raise LabError(_format_errors(exc, where)) from None
    scn._source = source
    return scn


def backtest_verdict(path: str | Path) -> str | None:
    """The back-test verdict a fitted scenario file carries in its header
    (``# backtest: pass | fail ... | not testable``, written by
    ``calibration.backtest.save_backtest``); None when the file records none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.startswith("#"):
                    return None
                if line.startswith("# backtest:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def load_scenario(path: str | Path, overrides: dict | list[str] | None = None) -> Scenario:
    """Read a scenario YAML file; ``overrides`` is a dict or a list of ``k=v`` strings
    (a problem with one of those blames its ``--set`` option). An empty file is refused;
    the points table is read now, so that a bad one is named before anything runs."""
    overrides, labels = _parse_overrides(overrides)
    scn = build_scenario(read_yaml(path, allow_empty=False, what="scenario file"), overrides,
                         source=str(path), labels=labels)
    scn.points_table()
    return scn


class Policy(Strict):
    """One policy of a policy file: a short ``name`` (an identifier for commands and
    files), a ``title`` and a one-line ``description`` for reports, and the scenario
    settings it changes (``set``)."""

    name: str
    title: str = ""
    description: str = ""
    set: dict[str, object] = {}


class PolicySet(Strict):
    """A policy file: a base scenario and the policies to compare as overrides of it."""

    base: str = "baseline.yaml"
    replications: Annotated[int, Field(ge=1)] | None = None
    policies: list[Policy]

    @field_validator("policies")
    @classmethod
    def _unique(cls, v):
        names = [p.name for p in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"policy names must be unique; repeated {sorted(dup)}")
        if not v:
            raise ValueError("list at least one policy")
        return v


def load_policies(path: str | Path, overrides: dict | list[str] | None = None) -> tuple[PolicySet, dict[str, Scenario]]:
    """Read a policy file; return it and one validated scenario per policy (in order)."""
    path = Path(path)
    try:
        pset = PolicySet.model_validate(read_yaml(path, allow_empty=False, what="policy file"))
    except ValidationError as exc:
        raise LabError(_format_errors(exc, str(path))) from None
    base_path = (path.parent / pset.base) if not Path(pset.base).is_absolute() else Path(pset.base)
    if not base_path.exists():
        raise LabError(f"{path}: base: scenario file not found (rule: a path relative to the policy "
                       f"file's folder); got {shown(pset.base)}")
    base_doc = read_yaml(base_path, allow_empty=False, what="scenario file")
    overrides, labels = _parse_overrides(overrides)
    scenarios, tables = {}, set()
    for pol in pset.policies:
        source = f"{path} (policy '{pol.name}')"
        merged = {**overrides, **pol.set}
        if pset.replications is not None:
            merged.setdefault("replications", pset.replications)
        scn = build_scenario(base_doc, merged, source=source,
                             labels={**labels, **{k: source for k in pol.set}})
        scn.name = pol.name
        if scn.scoring.points_table not in tables:  # a bad table is named before anything runs
            scn.points_table()
            tables.add(scn.scoring.points_table)
        scenarios[pol.name] = scn
    return pset, scenarios
