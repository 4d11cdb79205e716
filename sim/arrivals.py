"""Lead arrivals: a non-homogeneous Poisson process by hour of week, a channel mix, and
lead attributes sampled per channel, scored with a points table into bands.

Everything here is sampled in bulk with numpy: arrivals do not contend for capacity.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sim.calendar import hour_of_week
from sim.columns import labels
from sim.scenario import SENIORITY, Scenario

TARGET_INDUSTRIES = ("software", "financial_services", "healthcare")
OTHER_INDUSTRIES = ("retail", "education", "manufacturing", "public_sector")
TARGET_REGIONS = ("north_america", "europe")
OTHER_REGIONS = ("apac", "latam", "mea")
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

    A piecewise-constant rate makes this an exact non-homogeneous Poisson process."""
    hours = scn.calendar.horizon_days * 24
    rates = hourly_rates(scn)[hour_of_week(scn.calendar, np.arange(hours) * 60.0)]
    counts = rng.poisson(rates)
    starts = np.repeat(np.arange(hours) * 60.0, counts)
    t = starts + rng.random(starts.size) * 60.0
    t.sort()
    return t


def sample_leads(scn: Scenario, t: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Attributes for leads arriving at ``t``: channel, firmographics, persona, engagement."""
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
