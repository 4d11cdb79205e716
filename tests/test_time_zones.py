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


# ---- regional routing against queueing theory -----------------------------------------------
def _ci_controlled(y, controls, level):
    """Control-variate t-interval for E[y] (as ``tests/test_sim_theory.py``, whose function
    this is, loaded from its file: the tests folder is not a package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_theory", Path(__file__).with_name("test_sim_theory.py"))
    theory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(theory)
    return theory._ci_controlled(y, controls, level)


def test_two_regional_teams_are_two_independent_erlang_c_queues():
    """The M/M/c case (data/scenarios/mmc.yaml: around the clock, Poisson arrivals of 1 a
    minute, exponential handling, one touch, no decay) split by region: every lead is
    North American or European with probability 1/2 each (the channel's target regions,
    drawn independently of time), so each region's leads are a Poisson stream of 0.5 a
    minute; 'na' (3 SDRs) works North America only and 'rest' (3 SDRs) every other
    region. Routed by region, they are two M/M/3 queues with offered load 0.5 x 4.8 =
    2.4 erlangs (utilisation 0.8), whatever the other does. Per region: P(wait > 0), mean
    wait and P(wait > 2 min) against Erlang C (``sim.erlang``), each in a control-variate
    t-interval over 24 replications of 47 days at level 1 - 0.05/6 (six checks). The
    mean-wait half-width achieved is 3.65% (North America) and 2.41% (Europe) of Erlang
    C's Wq; it is asserted under 4.5%, so
    a team that took the other region's leads (a wait near M/M/6's, 55% shorter) or a
    bias of 10% would fall outside. Without routing the same leads would see M/M/6."""
    from sim.erlang import erlang_c, mean_wait_minutes
    from sim.model import run_replication

    c, mean_service, lam, days, reps = 3, 4.8, 0.5, 48, 24
    shifts = [{"name": "na", "people": c, "regions": ["north_america"]}, {"name": "rest", "people": c}]
    scn = load_scenario(SCENARIOS / "mmc.yaml", {
        "team.sdrs": 2 * c, "team.shifts": shifts, "routing.route_by": "region",
        "team.handling_time.mean_minutes": mean_service, "calendar.horizon_days": days, "calendar.warmup_days": 1})
    mu, a, t = 1 / mean_service, lam * mean_service, 2.0
    pw = erlang_c(c, a)
    theory = {"p_wait": pw, "mean_wait": mean_wait_minutes(c, lam, mean_service),
              "p_wait_gt_t": pw * np.exp(-(c * mu - lam) * t)}
    assert theory["mean_wait"] == pytest.approx(pw / (c * mu - lam))
    clock, table = BusinessClock(scn.calendar), scn.points_table()
    warm, end = DAY, days * DAY - 120.0
    per = {r: {k: [] for k in theory} for r in ("north_america", "europe")}
    load = {r: ([], []) for r in per}
    for rep in range(reps):
        run = run_replication(scn, rep, clock=clock, table=table)
        e = run.episodes
        region = run.leads["region"].to_numpy(object)[e["lead"].to_numpy()]
        owner = e["owner"].to_numpy()
        touched = owner >= 0
        assert ((region == "north_america") == (owner < c))[touched].all()  # each lead worked by its own team
        keep = ((e["entered"] >= warm) & (e["entered"] < end)).to_numpy()
        for r in per:
            m = keep & (region == r)
            w = e["response_minutes"].to_numpy()[m]
            handled = (e["done_at"] - e["first_touch"]).to_numpy()[m]
            assert not np.isnan(w).any()
            per[r]["p_wait"].append((w > 1e-9).mean())
            per[r]["mean_wait"].append(w.mean())
            per[r]["p_wait_gt_t"].append((w > t).mean())
            load[r][0].append(handled.mean() * mu - 1.0)
            load[r][1].append(len(w) / (lam * (end - warm)) - 1.0)
    level = 1 - 0.05 / 6
    for r in per:
        for k, value in theory.items():
            lo, hi = _ci_controlled(per[r][k], load[r], level)
            assert lo <= value <= hi, f"{r} {k}: Erlang C {value:.4f} outside [{lo:.4f}, {hi:.4f}]"
        lo, hi = _ci_controlled(per[r]["mean_wait"], load[r], level)
        half = (hi - lo) / 2 / theory["mean_wait"]
        assert half < 0.045, f"{r}: mean-wait half-width {half:.2%} of Wq"
    # The pooled team would wait far less: the routing really splits the queue.
    assert mean_wait_minutes(2 * c, 2 * lam, mean_service) < 0.5 * theory["mean_wait"]


def test_a_lead_waits_for_its_own_team_s_hours_in_another_zone():
    """An APAC team works 9:00-17:00 Tokyo (19:00-03:00 New York, Sunday to Thursday
    evenings), the rest of the team 9:00-18:00 New York. Monday 5 January, New York time:
    an APAC lead arriving at 10:00 waits for Tokyo's Tuesday 9:00, 19:00 New York (540
    minutes), though the New York rep is free; a North American lead at 10:00 is taken at
    once; an APAC lead at 21:00 (11:00 in Tokyo) is taken at once."""
    from sim.engine import Engine
    from sim.episodes import Draws

    shifts = [{"name": "apac", "people": 1, "start_hour": 9, "end_hour": 17, "timezone": "Asia/Tokyo",
               "regions": ["apac"]}, {"name": "rest", "people": 1, "start_hour": 9, "end_hour": 18}]
    scn = load_scenario(SCENARIOS / "mmc.yaml", {
        "calendar.always_open": False, "calendar.horizon_days": 7, "calendar.warmup_days": 1,
        "team.sdrs": 2, "team.shifts": shifts, "routing.route_by": "region"})
    region = ["apac", "north_america", "apac"]
    groups = scn.lead_groups(region, ["mid"] * 3)
    assert groups.tolist() == [0, 1, 0]
    times = np.array([600.0, 600.0, 1260.0])
    draws = Draws(u_touch=np.full((1, 1, 3), 0.5), handle=np.full((1, 1, 3), 5.0), handle_ae=None)
    eng = Engine(scn, BusinessClock(scn.calendar), 3, np.zeros(3, dtype=np.int64), draws, lambda *a: None,
                 groups=groups)
    cols = eng.run(times, np.arange(3), np.zeros(3, dtype=np.int64)).columns()
    touch = dict(zip(cols["lead"].tolist(), zip(cols["first_touch"].tolist(), cols["owner"].tolist())))
    assert touch == {0: (1140.0, 0), 1: (600.0, 1), 2: (1260.0, 0)}


# ---- the example and bad inputs, through the CLI -------------------------------------------
def test_regions_example_runs_from_the_cli(tmp_path, capsys):
    """data/scenarios/regions.yaml, shortened, through ``lab simulate``: each lead is
    touched only by its region's shift."""
    from lab.cli import main

    out = tmp_path / "o"
    rc = main(["simulate", str(SCENARIOS / "regions.yaml"), "-r", "2", "--set", "calendar.horizon_days=21",
               "--set", "calendar.warmup_days=3", "--out", str(out)])
    assert rc == 0 and "sla_attainment_hot" in capsys.readouterr().out
    leads = pd.read_parquet(out / "leads.parquet")
    touched = leads[leads["owner_id"].notna()]
    team = {"SDR00": "emea", "SDR01": "emea", "SDR02": "apac", "SDR03": "americas", "SDR04": "americas"}
    works = {"emea": {"europe", "mea"}, "apac": {"apac"}, "americas": {"north_america", "latam"}}
    assert len(touched) > 100
    assert all(r in works[team[o]] for o, r in zip(touched["owner_id"], touched["region"]))


def test_owner_kpis_of_a_run_count_each_pass_on_its_owner_s_shift():
    """A round-robin run with the owner's schedule: the business response KPI is the
    mean, over the passes touched in the window, of each pass's wait on the shift of the
    rep who touched it (``sim.calendar.SlaClocks.workers``), to the second."""
    from sim.calendar import SlaClocks
    from sim.kpis import replication_kpis
    from sim.model import run_replication

    shifts = [{"name": "early", "people": 2, "start_hour": 7, "end_hour": 13, "timezone": "America/Chicago"},
              {"name": "late", "people": 2, "start_hour": 12, "end_hour": 20}]
    scn = load_scenario(SCENARIOS / "baseline.yaml", {
        "calendar.horizon_days": 28, "calendar.warmup_days": 7, "team.sdrs": 4, "team.shifts": shifts,
        "routing.policy": "round_robin", "sla.schedule": "owner", "sla.mql_minutes": 60})
    clock = BusinessClock(scn.calendar)
    run = run_replication(scn, 0, clock=clock)
    k = replication_kpis(scn, run, clock)
    e = run.episodes
    e = e[(e["entered"] >= 7 * DAY) & (e["entered"] < 28 * DAY) & (e["first_touch"] < 28 * DAY)]
    workers = SlaClocks(scn).workers
    waits = [workers[o].business_delay(a, b) for o, a, b in zip(e["owner"], e["entered"], e["first_touch"])]
    # The KPIs read the run's CRM export, whose times are to the second.
    assert k["response_mean_business_minutes"] == pytest.approx(float(np.mean(waits)), abs=1 / 60)
    team = SlaClocks(scn).team.business_delay(e["entered"].to_numpy(), e["first_touch"].to_numpy())
    assert abs(np.mean(team) - np.mean(waits)) > 1.0  # the owner's hours make a difference here


BAD_ROUTING = [
    ("no-shifts", {"routing": {"route_by": "region"}}, ["routing.route_by=region", "team.shifts is empty"]),
    ("unknown-region", {"team": {"sdrs": 1, "shifts": [{"name": "a", "regions": ["europa"]}]},
                        "routing": {"route_by": "region"}}, ["team.shifts.0.regions", "unknown region", "europa"]),
    ("unknown-segment", {"team": {"sdrs": 1, "shifts": [{"name": "a", "segments": ["large"]}]},
                         "routing": {"route_by": "segment"}}, ["team.shifts.0.segments", "'large'"]),
    ("uncovered", {"team": {"sdrs": 1, "shifts": [{"name": "a", "regions": ["europe"]}]},
                   "routing": {"route_by": "region"}}, ["no shift works the regions", "north_america"]),
    ("lists-without-route", {"team": {"sdrs": 1, "shifts": [{"name": "a", "regions": ["europe"]}]}},
     ["team.shifts.0.regions", "route_by=region", "got routing.route_by=None"]),
    ("wrong-list", {"team": {"sdrs": 1, "shifts": [{"name": "a", "segments": ["smb"]}]},
                    "routing": {"route_by": "region"}}, ["team.shifts.0.segments", "route_by=segment"]),
    ("overlap", {"team": {"sdrs": 2, "shifts": [{"name": "a", "regions": ["europe", "mea"]},
                                                {"name": "b", "regions": ["europe"]}, ]},
                 "routing": {"route_by": "region"}}, ["shifts 'a' and 'b'", "['europe']"]),
    ("empty-list", {"team": {"sdrs": 1, "shifts": [{"name": "a", "regions": []}]}, "routing": {"route_by": "region"}},
     ["team.shifts.0.regions", "empty list"]),
    ("unlimited", {"team": {"sdrs": 1, "unlimited": True, "shifts": [{"name": "a"}]},
                   "routing": {"route_by": "region"}}, ["route_by=region", "unlimited"]),
    ("bad-zone", {"team": {"sdrs": 1, "shifts": [{"name": "a", "timezone": "Mars/Olympus"}]}},
     ["team.shifts.0.timezone", "unknown time zone", "Mars/Olympus"]),
    ("zone-always-open", {"calendar": {"always_open": True},
                          "team": {"sdrs": 1, "shifts": [{"name": "a", "timezone": "Europe/Paris"}]}},
     ["calendar.always_open", "timezone", "Europe/Paris"]),
    ("region-zone-name", {"arrivals": {"region_timezones": {"emea": "Europe/London"}}},
     ["arrivals.region_timezones", "unknown region", "emea"]),
    ("region-zone-value", {"arrivals": {"region_timezones": {"europe": "Europe/Londres"}}},
     ["arrivals.region_timezones", "unknown time zone", "Europe/Londres"]),
]


@pytest.mark.parametrize("name,doc,parts", BAD_ROUTING, ids=[b[0] for b in BAD_ROUTING])
def test_bad_zone_or_routing_is_one_line_from_the_cli(tmp_path, capsys, name, doc, parts):
    import yaml

    from lab.cli import main

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "calendar": {"horizon_days": 14, "warmup_days": 2}} | doc))
    capsys.readouterr()
    rc = main(["simulate", str(path), "-r", "1", "--no-tables", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]
    assert rc == 2 and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}"), lines[0]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert not (tmp_path / "o").exists()
