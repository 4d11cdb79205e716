"""Lead arrivals: a non-homogeneous Poisson process by hour of week, a channel mix, and
lead attributes sampled per channel, scored with a points table into bands.

Everything here is sampled in bulk with numpy: arrivals do not contend for capacity.

Regions in other time zones (``arrivals.region_timezones``): the hour-of-week profile is
read on each lead's local clock. The process is drawn as without zones, plus a margin of
``ZONE_MARGIN_DAYS`` days before and after the run (drawn after the run's own draws, so
these stay the same); each lead gets its attributes, region included, and a lead of a
zoned region then moves to the instant its local arrival time stands for on the
calendar's clock (``sim.calendar.zone_to_run_minutes``). Leads are marked with a region
independently of their time, so each region's arrivals stay a non-homogeneous Poisson
process, now with the profile on its own clock; leads moved out of the run are dropped
and the margin supplies those moved in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sim.calendar import ZONE_MARGIN_DAYS, hour_of_week, zone_to_run_minutes
from sim.columns import labels
from sim.scenario import REGIONS, SENIORITY, Scenario

TARGET_INDUSTRIES = ("software", "financial_services", "healthcare")
OTHER_INDUSTRIES = ("retail", "education", "manufacturing", "public_sector")
TARGET_REGIONS = REGIONS[:2]  # north_america, europe
OTHER_REGIONS = REGIONS[2:]   # apac, latam, mea
ENGAGEMENT = ("demo_requests", "pricing_page_visits", "content_downloads", "web_visits", "webinars")


def business_profile() -> np.ndarray:
    """Default hour-of-week weights (Monday 00:00 first): business-day peaks mid-morning
    and mid-afternoon, a quiet evening and a light weekend (B2B web-lead pattern)."""
    day = np.array([0.15, 0.1, 0.1, 0.1, 0.15, 0.25, 0.5, 0.9, 1.6, 2.3, 2.6, 2.5,
                    2.0, 2.2, 2.5, 2.4, 2.0, 1.5, 1.0, 0.8, 0.6, 0.45, 0.3, 0.2])
    weekend = np.maximum(day * 0.25, 0.08)
    w = np.concatenate([day] * 5 + [weekend] * 2)
    return w / w.sum()


def hourly_rates(scn: Scenario) -> np.ndarray:
    """Expected leads per hour of week (168 values) for the scenario's volume and shape."""
    prof = scn.arrivals.profile
    if prof == "flat":
        w = np.full(168, 1 / 168)
    elif prof == "business":
        w = business_profile()
    else:
        w = np.asarray(prof, dtype=float)
        w = w / w.sum()
    return w * scn.arrivals.leads_per_week


def arrival_times(scn: Scenario, rng: np.random.Generator) -> np.ndarray:
    """Sorted arrival minutes over the horizon: a Poisson count per hour, uniform within.

    A piecewise-constant rate makes this an exact non-homogeneous Poisson process. With
    ``arrivals.region_timezones`` the minutes are local-clock minutes and run from
    ``ZONE_MARGIN_DAYS`` days before the start to as many after the horizon (the
    margin's draws follow the run's own); ``sample_leads`` moves and trims them."""
    hours = scn.calendar.horizon_days * 24
    t = _poisson_hours(scn, np.arange(hours) * 60.0, rng)
    if scn.arrivals.region_timezones:
        m = ZONE_MARGIN_DAYS * 24
        margin = np.r_[np.arange(-m, 0), np.arange(hours, hours + m)] * 60.0
        t = np.sort(np.r_[t, _poisson_hours(scn, margin, rng)])
    return t


def _poisson_hours(scn: Scenario, starts_minutes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted arrival minutes in the hours starting at ``starts_minutes``."""
    rates = hourly_rates(scn)[hour_of_week(scn.calendar, starts_minutes)]
    counts = rng.poisson(rates)
    starts = np.repeat(starts_minutes, counts)
    t = starts + rng.random(starts.size) * 60.0
    t.sort()
    return t


def sample_leads(scn: Scenario, t: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Attributes for leads arriving at ``t``: channel, firmographics, persona, engagement.

    With ``arrivals.region_timezones``, ``t`` is ``arrival_times``' local-clock minutes:
    the leads inside the run draw their attributes first (the same ones as without
    zones), then the margin's; each lead of a zoned region moves to the run minute of
    its local arrival time, and the leads inside the run are returned in time order.
    What changes against no zones: the arrival times of zoned regions' leads, and which
    leads are in the run at its two ends."""
    zones = scn.arrivals.region_timezones
    if not zones:
        return _sample(scn, t, rng)
    horizon = scn.calendar.horizon_days * 1440.0
    inside = (t >= 0) & (t < horizon)
    df = pd.concat([_sample(scn, t[inside], rng), _sample(scn, t[~inside], rng)], ignore_index=True)
    local = df["t_created"].to_numpy(dtype=float)
    run = local.copy()
    region = df["region"].to_numpy(dtype=object)
    for name, zone in zones.items():
        m = region == name
        run[m] = zone_to_run_minutes(scn.calendar, zone, local[m])
    keep = np.flatnonzero((run >= 0) & (run < horizon))
    keep = keep[np.argsort(run[keep], kind="stable")]
    df["t_created"] = run
    return df.take(keep).reset_index(drop=True)


def _sample(scn: Scenario, t: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """``sample_leads`` for leads on the calendar's clock."""
    n = t.size
    names = list(scn.arrivals.channels)
    shares = np.array([c.share for c in scn.arrivals.channels.values()], dtype=float)
    ch = rng.choice(len(names), size=n, p=shares / shares.sum())
    emp = np.empty(n)
    ind_fit = np.empty(n, dtype=bool)
    reg_fit = np.empty(n, dtype=bool)
    sen = np.empty(n, dtype=np.int8)
    eng = {k: np.zeros(n, dtype=np.int16) for k in ENGAGEMENT}
    cost = np.empty(n)
    u = rng.random((n, 6))  # one draw per attribute keeps attributes independent of policy
    for j, name in enumerate(names):
        c = scn.arrivals.channels[name]
        m = ch == j
        k = int(m.sum())
        if k == 0:
            continue
        emp[m] = np.maximum(1, np.round(c.employee_count_median * np.exp(c.employee_count_sigma * rng.standard_normal(k))))
        ind_fit[m] = u[m, 0] < c.target_industry_share
        reg_fit[m] = u[m, 1] < c.target_region_share
        p = np.array([c.seniority.get(s, 0.0) for s in SENIORITY])
        sen[m] = np.searchsorted(np.cumsum(p), u[m, 2] * p.sum(), side="right").clip(0, len(SENIORITY) - 1)
        demo = u[m, 3] < c.demo_request_rate
        eng["demo_requests"][m] = demo + (demo & (u[m, 4] < 0.1))
        eng["pricing_page_visits"][m] = rng.poisson(c.pricing_page_visits_mean * np.where(demo, 1.8, 1.0))
        eng["content_downloads"][m] = rng.poisson(c.content_downloads_mean, k)
        eng["web_visits"][m] = 1 + rng.poisson(c.web_visits_mean, k)
        eng["webinars"][m] = rng.poisson(c.webinars_mean, k)
        cost[m] = c.cost_per_lead
    pick = u[:, 5]
    industries = TARGET_INDUSTRIES + OTHER_INDUSTRIES
    industry = np.where(ind_fit, (pick * len(TARGET_INDUSTRIES)).astype(int),
                        len(TARGET_INDUSTRIES) + (pick * len(OTHER_INDUSTRIES)).astype(int))
    regions = TARGET_REGIONS + OTHER_REGIONS
    region = np.where(reg_fit, (pick * len(TARGET_REGIONS)).astype(int),
                      len(TARGET_REGIONS) + (pick * len(OTHER_REGIONS)).astype(int))
    emp = emp.astype(np.int64)
    df = pd.DataFrame(
        {
            "t_created": t,
            "channel": labels(names, ch),
            "employee_count": emp,
            "industry": labels(industries, industry),
            "industry_fit": labels(("target", "other"), (~ind_fit).view(np.int8)),
            "region": labels(regions, region),
            "region_fit": labels(("target", "other"), (~reg_fit).view(np.int8)),
            "seniority": labels(SENIORITY, sen),
            **eng,
            "cost": cost,
            "segment": labels(SEGMENT_NAMES, segment_code(emp)),
        }
    )
    return df


SEGMENT_NAMES = ("smb", "mid", "enterprise")


def segment_code(employee_count: np.ndarray) -> np.ndarray:
    """Index into ``SEGMENT_NAMES``: smb below 100 employees, mid 100-1,000, enterprise above."""
    e = np.asarray(employee_count)
    return (e >= 100).astype(np.int8) + (e > 1000)


def segment_of(employee_count: np.ndarray) -> np.ndarray:
    """smb below 100 employees, mid 100-1,000, enterprise above (the seeds' fit band)."""
    return np.asarray(SEGMENT_NAMES, dtype=object)[segment_code(employee_count)]
