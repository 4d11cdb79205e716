"""Time zones and regional routing (issue 12): shifts in their own zones, leads arriving
on their region's clock, leads worked only by the shifts that cover their region or
segment, and SLA business minutes on each owner's own hours."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from common.paths import SCENARIOS
from sim.arrivals import arrival_times, business_profile, sample_leads
from sim.calendar import BusinessClock, hour_of_week, working_intervals
from sim.model import streams
from sim.scenario import Calendar, Shift, load_scenario

DAY = 1440.0


# ---- a shift in its own time zone ------------------------------------------------------------
def _week(intervals, first_day):
    """The intervals of the week from run day ``first_day``, in hours since its 00:00."""
    a, b = first_day * DAY, (first_day + 7) * DAY
    return [((s - a) / 60, (e - a) / 60) for s, e in intervals if a <= s < b]


def test_london_shift_seen_from_new_york_moves_when_only_the_us_has_changed_clocks():
    """9:00-17:00 Monday to Friday in London, on a New York calendar. In January both
    zones are on standard time (London 5 hours ahead): 04:00-12:00 New York. From 8 March
    2026 the US is on summer time and the UK not until 29 March (4 hours ahead):
    05:00-13:00. From 30 March both are on summer time: 04:00-12:00 again."""
    cal = Calendar(start_date=date(2026, 1, 5), timezone="America/New_York", horizon_days=120, warmup_days=0)
    shift = Shift(timezone="Europe/London", start_hour=9, end_hour=17)
    iv = working_intervals(cal, 120, shift)
    day = lambda d: (d - cal.start_date).days  # noqa: E731
    standard = [(24 * k + 4.0, 24 * k + 12.0) for k in range(5)]
    us_only = [(24 * k + 5.0, 24 * k + 13.0) for k in range(5)]
    assert _week(iv, day(date(2026, 1, 12))) == standard
    assert _week(iv, day(date(2026, 3, 9))) == us_only
    assert _week(iv, day(date(2026, 3, 30))) == standard
    # Duty minutes: 5 x 480 every week; the weekend of each change does not lose any.
    clock = BusinessClock(cal, intervals=iv)
    for monday in (date(2026, 1, 12), date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 23), date(2026, 3, 30)):
        assert clock.business_delay(day(monday) * DAY, (day(monday) + 7) * DAY) == 2400.0
    # Without a zone of its own the shift keeps the calendar's clock, as before.
    assert _week(working_intervals(cal, 120, Shift(start_hour=9, end_hour=17)), day(date(2026, 3, 9))) == \
        [(24 * k + 9.0, 24 * k + 17.0) for k in range(5)]


def test_a_shift_zone_reaches_back_across_the_start_of_the_run():
    """A Sydney shift 8:00-12:00 on Monday 5 January 2026 (UTC+11) is Sunday 16:00-20:00
    in New York, before the run: the first interval inside the run is the local Tuesday's
    shift (Monday evening in New York), and the next local Monday's is the run's Sunday
    evening, inside the run's first week."""
    cal = Calendar(start_date=date(2026, 1, 5), timezone="America/New_York")
    iv = working_intervals(cal, 7, Shift(timezone="Australia/Sydney", start_hour=8, end_hour=12))
    assert [(s / 60, e / 60) for s, e in iv] == [(16.0 + 24 * k, 20.0 + 24 * k) for k in (0, 1, 2, 3, 6)]


# ---- leads arrive on their region's clock ----------------------------------------------------
def _regional(zones: dict, days: int = 56):
    # January and February: New York and London both on standard time, 5 hours apart.
    return load_scenario(SCENARIOS / "baseline.yaml", {
        "calendar.horizon_days": days, "calendar.warmup_days": 7, "arrivals.leads_per_week": 3000,
        "arrivals.region_timezones": zones})


def _leads(scn, rep=0):
    rng = streams(scn.seed, rep)
    return sample_leads(scn, arrival_times(scn, rng["arrivals"]), rng["attributes"])


def test_european_leads_arrive_in_european_business_hours():
    """With europe on Europe/London, the hour-of-week counts of European leads (on the
    New York clock) follow the business profile moved 5 hours earlier, and North American
    leads follow it unmoved: chi-square goodness of fit over the 168 hours."""
    scn = _regional({"europe": "Europe/London"})
    leads = _leads(scn)
    t = leads["t_created"].to_numpy()
    assert np.all(np.diff(t) >= 0) and t.min() >= 0 and t.max() < scn.calendar.horizon_days * DAY
    prof = business_profile()
    for region, shift_hours in (("europe", 5), ("north_america", 0)):
        how = hour_of_week(scn.calendar, t[(leads["region"] == region).to_numpy()])
        counts = np.bincount(how, minlength=168)
        for h, expect_fit in ((shift_hours, True), (5 - shift_hours, False)):
            expected = np.roll(prof, -h)
            expected = expected / expected.sum() * counts.sum()
            p = stats.chisquare(counts, expected).pvalue
            assert (p > 1e-3) if expect_fit else (p < 1e-12), (region, h, p)
    # The weekday peak of European leads is 5 hours before the profile's peak hour.
    eu = hour_of_week(scn.calendar, t[(leads["region"] == "europe").to_numpy()])
    weekday = np.bincount(eu[eu < 120] % 24, minlength=24)
    assert np.argmax(weekday) == (np.argmax(prof[:24]) - 5) % 24


def test_region_zones_keep_every_other_draw():
    """Common random numbers: turning region zones on keeps the arrivals of the run's own
    draws and each lead's attributes; only zoned leads move, by the zone's offset."""
    plain = _leads(_regional({}))
    zoned = _leads(_regional({"europe": "Europe/London"}))
    cols = ["channel", "employee_count", "industry", "region", "seniority", "demo_requests", "web_visits"]
    same = plain[plain["region"] != "europe"].reset_index(drop=True)
    other = zoned[(zoned["region"] != "europe")]
    # Leads of unzoned regions inside the run are the same leads (margin leads stay outside).
    other = other[other["t_created"].isin(same["t_created"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(same[["t_created", *cols]], other[["t_created", *cols]])
    eu_plain = plain[plain["region"] == "europe"]
    moved = eu_plain["t_created"].to_numpy() - 300.0
    inside = moved >= 0
    assert np.isin(np.round(moved[inside], 6), np.round(zoned["t_created"].to_numpy(), 6)).all()
    assert inside.sum() > 1000


def test_region_zones_draw_the_margin_after_the_run_s_own_arrivals():
    """The run's own arrival draws are the same with and without region zones; the zones
    add a two-day margin on either side (the local-clock minutes of ``arrival_times``)."""
    plain, zoned = _regional({}), _regional({"europe": "Europe/London"})
    a = arrival_times(plain, streams(plain.seed, 0)["arrivals"])
    b = arrival_times(zoned, streams(zoned.seed, 0)["arrivals"])
    horizon = plain.calendar.horizon_days * DAY
    np.testing.assert_array_equal(a, b[(b >= 0) & (b < horizon)])
    assert b.min() < 0 and b.max() >= horizon and b.min() >= -2 * DAY and b.max() < horizon + 2 * DAY


# ---- SLA KPIs on each owner's own hours -------------------------------------------------------
def _export(rows, tz="America/New_York"):
    """A hand-made export: (lead_id, region, mql_at, first_response_at, owner_id) rows."""
    df = pd.DataFrame(rows, columns=["lead_id", "region", "mql_at", "first_response_at", "owner_id"])
    for c in ("mql_at", "first_response_at"):
        df[c] = pd.to_datetime(df[c]).dt.tz_localize(tz)
    df["created_at"] = df["mql_at"]
    df["band"] = "mql"
    df["employee_count"] = 50
    return df


def test_owner_schedule_counts_each_owner_s_own_shift_hand_computed():
    """Round robin, SLA 60 business minutes on the owner's schedule. SDR00 works 7-11,
    SDR01 14-20 (New York), so the team's hours are 7-11 and 14-20. Monday 5 January:

    ====  ========  ============  =====  ========================  ==========================
    lead  entered   first touch   owner  on the owner's hours      on the team's hours
    ====  ========  ============  =====  ========================  ==========================
    A     10:00     10:30         SDR00  30 (met)                  30
    B     10:30     14:45         SDR01  45 (14:00-14:45, met)     75 (30 + 45)
    C     12:00     Tue 07:45     SDR00  45 (Tue 7:00-7:45, met)   405 (14-20, Tue 7-7:45)
    D     19:00     -             -      deadline 20:00 (missed)   the same (no owner yet)
    ====  ========  ============  =====  ========================  ==========================

    Attainment 3/4 (on the team's hours it would be 1/4: A only); mean business response
    (30 + 45 + 45) / 3 = 40 minutes (team: 170)."""
    shifts = [{"name": "early", "people": 1, "start_hour": 7, "end_hour": 11},
              {"name": "late", "people": 1, "start_hour": 14, "end_hour": 20}]
    over = {"team.sdrs": 2, "team.shifts": shifts, "routing.policy": "round_robin", "sla.mql_minutes": 60,
            "sla.schedule": "owner", "calendar.horizon_days": 21, "calendar.warmup_days": 0}
    scn = load_scenario(SCENARIOS / "baseline.yaml", over)
    leads = _export([("A", "europe", "2026-01-05 10:00", "2026-01-05 10:30", "SDR00"),
                     ("B", "europe", "2026-01-05 10:30", "2026-01-05 14:45", "SDR01"),
                     ("C", "europe", "2026-01-05 12:00", "2026-01-06 07:45", "SDR00"),
                     ("D", "europe", "2026-01-05 19:00", None, None)])
    from sim.kpis import funnel_kpis

    k = funnel_kpis(leads, None, scn, "2026-01-05", "2026-01-09")
    assert k["sla_attainment_mql"] == pytest.approx(3 / 4)
    assert k["response_mean_business_minutes"] == pytest.approx(40.0)
    assert k["response_median_business_minutes"] == pytest.approx(45.0)
    # Under fifo (a shared queue) there is no owner's schedule: the team's hours.
    k = funnel_kpis(leads, None, load_scenario(SCENARIOS / "baseline.yaml", {**over, "routing.policy": "fifo"}),
                    "2026-01-05", "2026-01-09")
    assert k["sla_attainment_mql"] == pytest.approx(1 / 4)
    assert k["response_mean_business_minutes"] == pytest.approx(170.0)


def test_owner_schedule_on_a_shared_queue_counts_the_routing_group_s_hours():
    """fifo by region: 'emea' works 9-13 London (4-8 New York) for Europe, 'rest' 9-18
    New York for the others. A European lead entering Monday 07:00 New York and touched at
    09:30 waited 60 minutes of its group's hours (7:00-8:00), though 90 of the team's."""
    shifts = [{"name": "emea", "people": 1, "start_hour": 9, "end_hour": 13, "timezone": "Europe/London",
               "regions": ["europe"]},
              {"name": "rest", "people": 1, "start_hour": 9, "end_hour": 18}]
    scn = load_scenario(SCENARIOS / "baseline.yaml", {
        "team.sdrs": 2, "team.shifts": shifts, "routing.policy": "fifo", "routing.route_by": "region",
        "sla.mql_minutes": 60, "sla.schedule": "owner", "calendar.horizon_days": 21, "calendar.warmup_days": 0})
    from sim.kpis import funnel_kpis

    leads = _export([("E", "europe", "2026-01-05 07:00", "2026-01-05 09:30", "SDR00"),
                     ("N", "north_america", "2026-01-05 07:00", "2026-01-05 09:30", "SDR01")])
    k = funnel_kpis(leads, None, scn, "2026-01-05", "2026-01-09")
    assert k["response_mean_business_minutes"] == pytest.approx((60.0 + 30.0) / 2)
    assert k["sla_attainment_mql"] == pytest.approx(1.0)
