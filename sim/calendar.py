"""Business hours: which minutes of the run are working minutes, and conversions between
wall-clock and business minutes.

Time in the simulator is minutes since 00:00 local time of ``calendar.start_date``, in
the calendar's time zone (``calendar.timezone``), counted on the local wall clock (the
convention of ``timestamps``). A shift or a lead's region may live in another zone: its
local times are converted here, once (``zone_to_run_minutes``), daylight saving included.
"""
from __future__ import annotations

from bisect import bisect_left

import numpy as np

from sim.scenario import Calendar, Shift

MIN_PER_DAY = 1440
# Days before and after a run that local days of another zone can reach: no two zones
# are 48 hours apart (shift hours here, zoned arrivals in sim.arrivals).
ZONE_MARGIN_DAYS = 2


class BusinessClock:
    """Working-minute arithmetic over the horizon (plus a tail for leads still open).

    The working minutes are the calendar's, or any on-duty ``intervals`` given (a
    shift's, a team's: an SLA clock on the owner's own schedule), at minute resolution.

    ``B(t)`` is the number of working minutes in ``[0, t)``; the business-minute delay
    between ``t0`` and ``t1`` is ``B(t1) - B(t0)``. Built once per scenario as a cumulative
    sum at minute resolution, so conversions are vectorised lookups.
    """

    def __init__(self, cal: Calendar, extra_days: int = 60, intervals: list[tuple[float, float]] | None = None):
        self.cal = cal
        self.days = cal.horizon_days + extra_days
        n = self.days * MIN_PER_DAY
        if cal.always_open and intervals is None:
            open_min = np.ones(n, dtype=bool)
        else:
            open_min = np.zeros(n, dtype=bool)
            for start, end in (working_intervals(cal, self.days) if intervals is None else intervals):
                open_min[int(start) : int(end)] = True
        self.open = open_min
        self.cum = np.concatenate([[0], np.cumsum(open_min, dtype=np.int64)]).astype(float)

    def business_minutes(self, t) -> np.ndarray:
        """B(t): working minutes elapsed since the start, interpolated within a minute."""
        t = np.clip(np.asarray(t, dtype=float), 0, len(self.open) - 1e-9)
        i = np.floor(t).astype(np.int64)
        return self.cum[i] + self.open[i] * (t - i)

    def business_delay(self, t0, t1) -> np.ndarray:
        return self.business_minutes(t1) - self.business_minutes(t0)

    def wall_time_after_scalar(self, t0: float, business_minutes: float) -> float:
        """``wall_time_after`` for one float, in plain Python (the engine's event loop)."""
        lists = getattr(self, "_lists", None)
        if lists is None:
            lists = self._lists = (self.cum.tolist(), self.open.tolist())
        cum, open_ = lists
        t = min(max(t0, 0.0), len(open_) - 1e-9)
        i = int(t)
        target = cum[i] + (t - i if open_[i] else 0.0) + business_minutes
        j = min(max(bisect_left(cum, target), 1), len(cum) - 1)
        return (j - 1) + (target - cum[j - 1])

    def wall_time_after(self, t0, business_minutes) -> np.ndarray:
        """The wall-clock time at which ``business_minutes`` working minutes have passed
        after ``t0`` (the inverse of B, used for SLA deadlines on a business clock)."""
        target = self.business_minutes(t0) + np.asarray(business_minutes, dtype=float)
        i = np.searchsorted(self.cum, target, side="left")  # first minute boundary with B >= target
        i = np.clip(i, 1, len(self.cum) - 1)
        # Inside minute i-1 (which is open) B rises linearly by one.
        return (i - 1) + (target - self.cum[i - 1])


def _holiday_index(cal: Calendar) -> set[int]:
    return {(h - cal.start_date).days for h in cal.holidays}


def zone_to_run_minutes(cal: Calendar, zone: str | None, local_minutes) -> np.ndarray:
    """Minutes since 00:00 of ``cal.start_date`` on the local clock of ``zone`` -> run
    minutes (the same instants on the calendar's local clock).

    The offset between the zones is taken at each instant, so it follows both zones'
    daylight-saving dates (London is 5 hours ahead of New York in January, 4 in the weeks
    of March when only the US has moved). A local time that does not exist (the hour
    skipped when clocks go forward) moves forward to the first that does; a repeated one
    (clocks going back) is read as the first, summer-time, reading, as ``timestamps``
    does. ``zone`` None or the calendar's own: the minutes are returned as they are."""
    import pandas as pd

    t = np.asarray(local_minutes, dtype=float)
    if zone is None or zone == cal.timezone or t.size == 0:
        return t
    origin = pd.Timestamp(cal.start_date)
    naive = pd.DatetimeIndex(origin + pd.to_timedelta(t.ravel(), unit="m"))
    aware = naive.tz_localize(zone, nonexistent="shift_forward", ambiguous=np.ones(t.size, dtype=bool))
    here = aware.tz_convert(cal.timezone).tz_localize(None)
    return ((here - origin) / pd.Timedelta(minutes=1)).to_numpy(dtype=float).reshape(t.shape)


def working_intervals(cal: Calendar, days: int, shift: Shift | None = None) -> list[tuple[float, float]]:
    """On-duty ``[start, end)`` run-minute intervals for the calendar (or one shift of it),
    over run days ``0 .. days - 1``.

    Holidays close the office for everyone, and a shift's own holidays close it for that
    shift; a shift may run past midnight (end_hour up to 48). A shift with its own
    ``timezone`` keeps its days, hours and holidays (the calendar's too) on its own local
    dates; its intervals are those local times seen on the calendar's clock
    (``zone_to_run_minutes``), cut at the start of the run."""
    if cal.always_open:
        return [(0.0, float(days * MIN_PER_DAY))]
    holidays = _holiday_index(cal)
    if shift is not None and shift.holidays:
        holidays |= {(h - cal.start_date).days for h in shift.holidays}
    week0 = cal.start_date.weekday()
    days_on = shift.days if shift is not None else cal.working_days
    start_h = shift.start_hour if shift is not None else cal.open_hour
    end_h = shift.end_hour if shift is not None else cal.close_hour
    zone = shift.timezone if shift is not None else None
    if zone is None or zone == cal.timezone:
        out = []
        for d in range(days):
            if (week0 + d) % 7 not in days_on or d in holidays:
                continue
            out.append((d * MIN_PER_DAY + start_h * 60.0, d * MIN_PER_DAY + end_h * 60.0))
        return out
    # Local days from ZONE_MARGIN_DAYS before the run to as many after: every local day
    # that can touch the run's days is among them.
    local = [d for d in range(-ZONE_MARGIN_DAYS, days + ZONE_MARGIN_DAYS)
             if (week0 + d) % 7 in days_on and d not in holidays]
    base = np.asarray(local, dtype=float) * MIN_PER_DAY
    starts = zone_to_run_minutes(cal, zone, base + start_h * 60.0).tolist()
    ends = zone_to_run_minutes(cal, zone, base + end_h * 60.0).tolist()
    horizon = days * MIN_PER_DAY
    return [(max(s, 0.0), e) for s, e in zip(starts, ends) if e > 0.0 and s < horizon]


def union_intervals(groups) -> list[tuple[float, float]]:
    """The union of several lists of ``[start, end)`` intervals, merged and sorted."""
    out: list[list[float]] = []
    for s, e in sorted(iv for g in groups for iv in g):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def shift_duty(cal: Calendar, team, days: int) -> list[list[tuple[float, float]]]:
    """Duty intervals of each shift of ``team`` over ``days`` days (one list per shift; a
    team without shifts is one shift on the calendar's hours)."""
    if team.shifts:
        return [working_intervals(cal, days, s) for s in team.shifts]
    return [working_intervals(cal, days)]


def per_sdr(per_shift: list, team) -> list:
    """A per-shift list expanded to one item per SDR, SDRs numbered through the shifts in
    order (the numbering of the engine's workers and of ``owner_id``)."""
    sizes = [s.people for s in team.shifts] if team.shifts else [team.sdrs]
    return [x for x, m in zip(per_shift, sizes, strict=True) for _ in range(m)]


class SlaClocks:
    """The business clocks SLA deadlines and SLA KPIs count on, and which pass counts on
    which: the one home of that rule, for the engine's deadlines (``sim.engine``) and the
    KPIs (``sim.kpis.funnel_kpis``) alike.

    ``sla.schedule: office`` (or an always-open calendar): the calendar's working minutes
    for every pass. ``sla.schedule: owner``:

    * a pass with an owner under round robin: the owner's own shift (its hours, days,
      holidays and time zone), ``workers[k]`` for SDR ``k`` (numbered through the shifts
      in order);
    * a pass with no owner (yet), or in a shared queue (fifo, priority, edf): the hours of
      the shifts that may take it, ``groups[g]`` for routing group ``g`` with
      ``routing.route_by`` (the union of the group's shifts), else ``team``, the union of
      every shift (the calendar's hours without shifts).

    Parameters
    ----------
    scn : the scenario.
    office : the calendar's clock, when already built (it is the same for every pass
        under the office schedule).
    extra_days : days after the horizon the clocks reach (leads still open).
    """

    def __init__(self, scn, office: BusinessClock | None = None, extra_days: int = 60):
        cal, team = scn.calendar, scn.team
        self.office = office if office is not None else BusinessClock(cal, extra_days)
        self.by_owner = scn.sla.schedule == "owner" and not cal.always_open
        self.round_robin = scn.routing.policy == "round_robin"
        self.team, self.groups, self.workers = self.office, None, None
        if not self.by_owner:
            return
        duty = shift_duty(cal, team, cal.horizon_days + extra_days)
        self.team = BusinessClock(cal, extra_days, intervals=union_intervals(duty))
        self.workers = per_sdr([BusinessClock(cal, extra_days, intervals=d) for d in duty], team)
        route = scn.route_groups()
        if route is not None:
            shift_group = route[0]
            self.groups = [BusinessClock(cal, extra_days, intervals=union_intervals(
                [d for d, g in zip(duty, shift_group, strict=True) if g == j])) for j in range(max(shift_group) + 1)]

    def clocks(self, owner=None, group=None) -> tuple[list[BusinessClock], np.ndarray]:
        """The clocks in use and, for each pass, the index of its own among them;
        ``owner``: SDR index per pass (-1 none), ``group``: routing group (-1 none)."""
        n = len(owner) if owner is not None else len(group) if group is not None else 0
        which = np.zeros(n, dtype=np.int64)
        out = [self.team]
        if self.groups is not None and group is not None:
            g = np.asarray(group, dtype=np.int64)
            which = np.where(g >= 0, 1 + g, which)
            out += self.groups
        if self.workers is not None and self.round_robin and owner is not None:
            k = np.asarray(owner, dtype=np.int64)
            which = np.where((k >= 0) & (k < len(self.workers)), len(out) + k, which)
            out += self.workers
        return out, which

    def business_delay(self, t0, t1, owner=None, group=None) -> np.ndarray:
        """Business minutes from ``t0`` to ``t1`` on each pass's own clock."""
        return self._per_pass("business_delay", owner, group, t0, t1)

    def wall_time_after(self, t0, business_minutes, owner=None, group=None) -> np.ndarray:
        """Each pass's deadline: ``business_minutes`` after ``t0`` on its own clock."""
        t0 = np.asarray(t0, dtype=float)
        return self._per_pass("wall_time_after", owner, group, t0, np.broadcast_to(
            np.asarray(business_minutes, dtype=float), t0.shape))

    def _per_pass(self, method: str, owner, group, *arrays) -> np.ndarray:
        arrays = tuple(np.asarray(a, dtype=float) for a in arrays)
        clocks, which = self.clocks(owner, group)
        if len(clocks) == 1:
            return getattr(clocks[0], method)(*arrays)
        out = np.empty(arrays[0].shape)
        for j in np.unique(which):
            m = which == j
            out[m] = getattr(clocks[j], method)(*(a[m] for a in arrays))
        return out


def hour_of_week(cal: Calendar, t) -> np.ndarray:
    """Hour of week (0 = Monday 00:00) of run times ``t`` in minutes."""
    offset = cal.start_date.weekday() * 24
    return ((np.asarray(t) // 60).astype(np.int64) + offset) % 168


def timestamps(cal: Calendar, t) -> "np.ndarray":
    """Run minutes -> timezone-aware pandas timestamps (NaN stays NaT)."""
    import pandas as pd

    # Local wall-clock minutes: add as naive offsets then localise, so 09:00 stays 09:00
    # across daylight-saving changes.
    naive = pd.Timestamp(cal.start_date) + pd.to_timedelta(np.asarray(t, dtype=float), unit="m")
    # In the hour that repeats when clocks go back, take the first (summer-time) reading:
    # "NaT" would erase the date of every lead of that hour.
    naive = pd.DatetimeIndex(naive).floor("s")
    return naive.tz_localize(cal.timezone, nonexistent="shift_forward", ambiguous=np.ones(len(naive), dtype=bool))
