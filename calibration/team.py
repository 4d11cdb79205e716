"""The team as an export shows it: how many SDRs work a week, the hours and days they
first touch leads, and the time zone the dates are written in. Each is a fit-report row:
fitted (with how), declared (read from the mapping) or assumed (the base scenario's
value and why the export cannot tell).

- ``team.sdrs``: the median over full weeks of the owners who first-touched a lead that
  week, with the distribution-free 95% interval of that median (order statistics,
  ``common.intervals.quantile_interval``). Owners known only after assignment count only
  where they are known.
- ``calendar.open_hour`` / ``close_hour`` / ``working_days``: first touches happen only
  while someone is on duty, so the hours on duty are the support of the first-touch
  time of day: its 0.5% and 99.5% quantiles on working days, to the half hour (down
  for the opening, up for the close: late first touches are rare once the queue is
  empty, so the upper quantile of a small export falls a little before the close);
  the working days are the weekdays holding
  at least ``WORKING_DAY_SHARE`` of the busiest weekday's first touches.
- ``calendar.timezone``: only a zone the mapping declares for the main table (dates
  without an offset are local to it); dates in UTC or with offsets do not say where the
  team sits.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from common.intervals import quantile_interval

#: Fewest first touches to read the working hours from.
MIN_TOUCHES = 200
#: A weekday with at least this share of the busiest weekday's first touches is a working day.
WORKING_DAY_SHARE = 0.1
HALF_HOURS = 2.0


def row(parameter: str, value, status: str, reason: str = "", **kw) -> dict:
    """One fit-report row (``calibration.fit_report.COLUMNS``)."""
    r = dict(parameter=parameter, value=value, status=status, estimate=math.nan, ci_low=math.nan,
             ci_high=math.nan, n=0, raw_estimate=math.nan, shrinkage=0.0, reason=reason)
    r.update(kw)
    return r


def team_size(df: pd.DataFrame, base) -> tuple[int, dict]:
    """``(sdrs, report row)``; 0 SDRs when the export names no owner (the base's kept)."""
    assumed = row("team.sdrs", base.team.sdrs, "assumed", "no owner column in this export; base scenario's value")
    if "owner_id" not in df or df["owner_id"].notna().sum() == 0:
        return 0, assumed
    touched = "first_response_at" in df and df["first_response_at"].notna().any()
    when = df["first_response_at"] if touched else df["created_at"]
    d = pd.DataFrame({"w": when.dt.to_period("W"), "o": df["owner_id"]}).dropna()
    per_week = d.groupby("w")["o"].nunique()
    full = per_week.iloc[1:-1] if len(per_week) > 2 else per_week  # partial first and last weeks out
    med, lo, hi = quantile_interval(full.to_numpy(float), 0.5)
    est = int(round(med))
    what = "first-touched a lead" if touched else "owned a lead created"
    return est, row("team.sdrs", est, "fitted",
                    f"median over {len(full)} full weeks of the owners who {what} that week (95% interval of "
                    "the median from order statistics)", estimate=med, ci_low=lo, ci_high=hi, n=int(len(full)))


def working_hours(df: pd.DataFrame, base) -> tuple[dict, list[dict]]:
    """``(calendar fields, report rows)`` read from the first-touch times (see the module
    docstring); empty fields and assumed rows when the export cannot show them."""
    cal = base.calendar
    names = ("calendar.open_hour", "calendar.close_hour", "calendar.working_days")
    values = (cal.open_hour, cal.close_hour, list(cal.working_days))
    t = df["first_response_at"].dropna() if "first_response_at" in df else pd.Series(dtype="datetime64[ns]")
    why = None
    if base.team.shifts:
        why = "the base scenario's team works in shifts, which set the hours"
    elif cal.always_open:
        why = "the base scenario is always open"
    elif len(t) < MIN_TOUCHES:
        why = f"{len(t)} first touches with a time in this export (rule: at least {MIN_TOUCHES})"
    elif (t == t.dt.normalize()).mean() > 0.9:
        why = "first touches carry a date but no time of day"
    if why is not None:
        return {}, [row(n, v, "assumed", f"{why}; base scenario's value") for n, v in zip(names, values)]
    dow = t.dt.day_of_week.to_numpy()
    per_day = np.bincount(dow, minlength=7)
    days = [int(d) for d in range(7) if per_day[d] >= WORKING_DAY_SHARE * per_day.max()]
    on = np.isin(dow, days)
    hour = (t.dt.hour + t.dt.minute / 60 + t.dt.second / 3600).to_numpy()[on]
    lo_q, hi_q = np.quantile(hour, [0.005, 0.995])
    open_h = math.floor(lo_q * HALF_HOURS) / HALF_HOURS
    close_h = min(math.ceil(hi_q * HALF_HOURS) / HALF_HOURS, 24.0)
    n = int(on.sum())
    rows = [row("calendar.open_hour", open_h, "fitted", f"0.5% quantile of the first-touch time of day on working "
                f"days ({lo_q:.2f} h), down to the half hour", estimate=open_h, n=n),
            row("calendar.close_hour", close_h, "fitted", f"99.5% quantile of the first-touch time of day on working "
                f"days ({hi_q:.2f} h), up to the half hour", estimate=close_h, n=n),
            row("calendar.working_days", days, "fitted", "weekdays (0 = Monday) with at least "
                f"{WORKING_DAY_SHARE:.0%} of the busiest weekday's first touches", n=int(len(t)))]
    return {"open_hour": open_h, "close_hour": close_h, "working_days": days}, rows


def declared_timezone(mapping) -> str | None:
    """The time zone the mapping gives the main table's dates (None: not declared)."""
    if not mapping.tables:
        return None
    return mapping.tables[mapping.main_table].timezone


def time_zone(mapping, base) -> tuple[str, dict]:
    """``(zone the fit reads dates in, report row)``: the mapping's, else the base's."""
    tz = declared_timezone(mapping)
    if tz is not None:
        return tz, row("calendar.timezone", tz, "declared",
                       f"{mapping.source}: table {mapping.main_table}: timezone (its dates carry no offset)")
    return base.calendar.timezone, row("calendar.timezone", base.calendar.timezone, "assumed",
                                       "the mapping declares no time zone for the export's dates (UTC or with "
                                       "offsets, they do not say where the team sits); base scenario's zone")
