"""Behaviour of the funnel: reproducibility, common random numbers, conservation,
published speed-to-lead ratios, parallel runs, CLI and outputs."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.cli import main
from sim.decay import STUDY_RATIOS, expected_group_rates, study_ratios
from sim.engine import Engine
from sim.experiment import run_scenario, run_sweep
from sim.model import STAGES, run_replication
from sim.output import read_meta, write_result
from common.paths import SCENARIOS
from sim.scenario import load_policies, load_scenario


def short(**over):
    return load_scenario(SCENARIOS / "baseline.yaml", {"calendar.horizon_days": 35, "calendar.warmup_days": 7, **over})


def test_same_seed_same_numbers_and_other_seed_differs():
    a = run_replication(short(), 0)
    b = run_replication(short(), 0)
    pd.testing.assert_frame_equal(a.leads, b.leads)
    pd.testing.assert_frame_equal(a.events, b.events)
    c = run_replication(short(), 1)
    assert not a.leads["t_created"].equals(c.leads["t_created"])


def test_policy_change_keeps_arrivals_and_attributes():
    a = run_replication(short(), 0).leads
    b = run_replication(short(**{"team.sdrs": 8, "routing.policy": "fifo"}), 0).leads
    cols = ["t_created", "channel", "employee_count", "seniority", "demo_requests", "score"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_every_lead_ends_in_exactly_one_state_and_stages_nest():
    L = run_replication(short(), 0).leads
    assert L["stage"].isin(STAGES).all()
    assert L["lead_id"].is_unique
    # Later stages imply earlier ones: won/lost => opportunity => SQL => SAL => MQL.
    assert L.loc[L["t_opportunity"].notna(), "t_sql"].notna().all()
    assert L.loc[L["t_sql"].notna(), "t_sal"].notna().all()
    assert L.loc[L["t_sal"].notna(), "t_mql"].notna().all()
    assert L.loc[L["outcome"].isin(["won", "lost", "no_decision"]), "t_closed"].notna().all()
    # Time never runs backwards along a lead's path.
    for a, b in [("t_created", "t_mql"), ("t_mql", "t_first_response"), ("t_sal", "t_sql"),
                 ("t_sql", "t_opportunity"), ("t_opportunity", "t_closed")]:
        m = L[a].notna() & L[b].notna()
        assert (L.loc[m, b] >= L.loc[m, a]).all(), (a, b)
    # The final stage is the furthest stage the lead reached before the horizon.
    reached = {"t_sql": ["sql", "opportunity", "won", "lost", "no_decision"],
               "t_opportunity": ["opportunity", "won", "lost", "no_decision"],
               "t_closed": ["won", "lost", "no_decision"]}
    for col, stages in reached.items():
        assert (L[col].notna() == L["stage"].isin(stages)).all(), col
    closed = L["t_closed"].notna()
    assert (L.loc[closed, "stage"] == L.loc[closed, "outcome"]).all()
    assert (L["t_mql"].isna() == (L["stage"] == "lead")).all()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sdrs=st.integers(1, 8),
    policy=st.sampled_from(["fifo", "priority", "round_robin"]),
    attempts=st.integers(1, 4),
    mql=st.integers(40, 80),
    seed=st.integers(0, 10_000),
)
def test_invariants_hold_for_any_policy(sdrs, policy, attempts, mql, seed):
    scn = load_scenario(SCENARIOS / "baseline.yaml", {
        "calendar.horizon_days": 14, "calendar.warmup_days": 2, "team.sdrs": sdrs, "routing.policy": policy,
        "team.max_attempts": attempts, "scoring.mql": mql, "scoring.hot": max(mql, 75), "scoring.nurture": min(mql, 45),
        "seed": seed})
    r = run_replication(scn, 0)
    L, E = r.leads, r.episodes
    assert L["stage"].isin(STAGES).all() and len(L) == L["lead_id"].nunique()
    assert (E["attempts"] <= attempts).all()
    assert (E["response_minutes"].dropna() >= 0).all()
    # every pass is recorded once, and a lead never has two passes open at once
    assert not E.duplicated(["lead", "episode"]).any()
    assert (E.groupby("lead")["outcome"].apply(lambda s: (s == "open").sum()) <= 1).all()
    from sim.calendar import BusinessClock
    from sim.kpis import replication_kpis

    k = replication_kpis(scn, r, BusinessClock(scn.calendar))
    for name, v in k.items():
        if name.endswith(("_rate", "_share")) or name.startswith(("sla_attainment", "rejection_share", "win_rate")):
            assert math.isnan(v) or 0.0 <= v <= 1.0, (name, v)


def test_default_decay_reproduces_published_speed_to_lead_ratios():
    """DOMAIN.md section 4. The exact expectation is within 1% of each published ratio;
    a Monte Carlo run of 200,000 leads per group through the simulator's attempt rules
    gives a 95% interval that contains it."""
    scn = load_scenario(SCENARIOS / "baseline.yaml")
    exact = expected_group_rates(scn)
    for a, b, what, published, _ in STUDY_RATIOS.values():
        assert exact[a][what] / exact[b][what] == pytest.approx(published, rel=0.01)
    mc = study_ratios(scn, n_per_group=200_000, seed=3)
    for row in mc.itertuples():
        assert row.ci_low <= row.published <= row.ci_high, row


def test_decay_is_monotone_and_bounded():
    scn = load_scenario(SCENARIOS / "baseline.yaml")
    d = np.linspace(0, 60 * 24 * 30, 5000)
    for curve in (scn.decay.contact, scn.decay.qualification):
        m = curve(d)
        assert m[0] == pytest.approx(1.0)
        assert np.all(np.diff(m) <= 1e-15) and np.all(m > 0) and np.all(m <= 1)


def test_faster_sla_policy_beats_slower_on_common_random_numbers():
    _, pols = load_policies(SCENARIOS / "policies.yaml", ["calendar.horizon_days=42", "calendar.warmup_days=7"])
    chosen = {k: pols[k] for k in ("sdrs_4", "sdrs_8")}
    res = run_sweep(chosen, replications=3, n_jobs=1, progress=False)
    k = res.kpis.set_index(["policy", "replication"])
    diff = k.loc["sdrs_8", "response_median_minutes"] - k.loc["sdrs_4", "response_median_minutes"]
    assert (diff < 0).all()
    assert (k.loc["sdrs_8", "sql_count"] >= k.loc["sdrs_4", "sql_count"]).all()


@pytest.mark.parametrize("workers", ["forked", "joblib"])
def test_parallel_equals_serial(workers, monkeypatch):
    # Forked workers (Linux) and joblib's (elsewhere) give the serial numbers, for a
    # policy of the compiled engine and one of the reference engine in the same sweep.
    import sim.experiment as ex

    if workers == "joblib":
        monkeypatch.setattr(ex, "_fork_context", lambda: None)
    scenarios = {"priority": short(**{"calendar.horizon_days": 21}),
                 "round_robin": short(**{"calendar.horizon_days": 21, "routing.policy": "round_robin"})}
    a = run_sweep(scenarios, replications=3, n_jobs=1, progress=False, keep_tables=True)
    b = run_sweep(scenarios, replications=3, n_jobs=2, progress=False, keep_tables=True)
    pd.testing.assert_frame_equal(a.kpis, b.kpis)
    pd.testing.assert_frame_equal(a.leads, b.leads)


def _die(chunk):
    """A worker's chunk that kills its process (as the out-of-memory killer would)."""
    import os

    os._exit(9)


def test_a_worker_that_dies_is_one_line_not_a_traceback(monkeypatch, tmp_path, capsys):
    # A forked worker killed mid-run (the system's out-of-memory killer, say) breaks the
    # pool: the run stops with one line naming --jobs and what to do, and writes nothing.
    import sim.experiment as ex

    if ex._fork_context() is None:
        pytest.skip("local workers are forked only on Linux")
    monkeypatch.setattr(ex, "run_tasks", _die)
    out = tmp_path / "o"
    rc = main(["simulate", str(SCENARIOS / "baseline.yaml"), "-r", "2", "--jobs", "2", "--set",
               "calendar.horizon_days=7", "--set", "calendar.warmup_days=1", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and not out.exists()
    assert "error: --jobs 2: a worker process died while running replications" in err


def test_parallel_on_a_dask_cluster_equals_serial():
    distributed = pytest.importorskip("dask.distributed")
    scn = short(**{"calendar.horizon_days": 21})
    a = run_scenario(scn, replications=2, n_jobs=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        b = run_scenario(scn, replications=2, scheduler=cl.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(a.kpis, b.kpis)


def test_summary_is_the_t_interval_of_the_replications():
    from scipy import stats

    res = run_scenario(short(), replications=3, progress=False)
    s = res.summary.dropna(subset=["mean"]).set_index("kpi")
    assert s["n"].max() == 3 and s["n"].min() >= 1  # a KPI with no cases in a run is left out
    # Recomputed here from the per-replication KPIs: mean +- t(n-1) sd / sqrt(n), which
    # the summary may only cut to what the KPI can take.
    k = res.kpis[s.index]
    n = k.notna().sum()
    half = stats.t.ppf(0.975, n - 1) * k.std(ddof=1) / np.sqrt(n)
    np.testing.assert_allclose(s["mean"], k.mean(), rtol=1e-12)
    two = s.index[(n >= 2).to_numpy()]
    assert (s.loc[two, "ci_low"] >= (k.mean() - half)[two] - 1e-9).all()
    assert (s.loc[two, "ci_high"] <= (k.mean() + half)[two] + 1e-9).all()
    for name in ("mql_per_week", "sql_count"):  # far from any bound: the interval is not cut
        assert s.loc[name, "ci_low"] == pytest.approx(k[name].mean() - half[name], rel=1e-12)
        assert s.loc[name, "ci_high"] == pytest.approx(k[name].mean() + half[name], rel=1e-12)
        assert half[name] > 0


def test_outputs_record_provenance_and_crm_columns(tmp_path):
    res = run_scenario(short(), replications=2, keep_tables=True, progress=False)
    out = write_result(res, tmp_path / "run")
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 2026 and meta["code_version"] and "baseline" in meta["scenarios"]
    assert read_meta(out / "kpis.parquet")["seed"] == 2026
    leads = pd.read_parquet(out / "leads.parquet")
    for col in ["lead_id", "created_at", "channel", "first_response_at", "mql_at", "sal_at", "sql_at",
                "opportunity_at", "closed_at", "outcome", "rejection_reason", "amount"]:
        assert col in leads.columns
    assert leads["lead_id"].is_unique
    ev = pd.read_parquet(out / "events.parquet")
    assert {"lead_id", "stage_change", "at", "channel"} <= set(ev.columns)
    assert (pd.read_csv(out / "kpis.csv")["replication"] == [0, 1]).all()


def test_cli_simulate_writes_and_summarises(tmp_path, capsys):
    rc = main(["simulate", str(SCENARIOS / "baseline.yaml"), "-r", "2", "--set", "calendar.horizon_days=21",
               "--set", "calendar.warmup_days=3", "--out", str(tmp_path / "o"), "--no-tables"])
    out = capsys.readouterr().out
    assert rc == 0 and "sla_attainment_hot" in out
    assert (tmp_path / "o" / "summary.csv").exists()


def test_cli_bad_override_is_one_readable_line(tmp_path, capsys):
    rc = main(["simulate", str(SCENARIOS / "baseline.yaml"), "--set", "team.sdr=8", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "team.sdr: unknown field" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_failed_run_keeps_the_previous_output(tmp_path, monkeypatch):
    res = run_scenario(short(**{"calendar.horizon_days": 14}), replications=1, progress=False)
    out = write_result(res, tmp_path / "run")
    before = (out / "kpis.csv").read_bytes()
    import sim.output as so

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(so, "_write_table", boom)
    with pytest.raises(RuntimeError):
        write_result(res, tmp_path / "run")
    assert (out / "kpis.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_hot_leads_escalate_to_account_executives():
    scn = short(**{"team.escalate_hot_to_ae": True, "team.aes": 2})
    r = run_replication(scn, 0)
    e = r.episodes
    assert set(e.loc[e["band"] == "hot", "pool"]) == {"ae"}
    assert set(e.loc[e["band"] == "mql", "pool"]) == {"sdr"}
    assert 0 < r.pools["ae"]["busy_minutes"] <= r.pools["ae"]["duty_minutes"] * 1.2


def test_round_robin_reassigns_breached_leads_and_respects_caps():
    # Two shifts that barely overlap: leads assigned to an SDR who is off duty wait for
    # the SLA to expire, then go to whoever is working.
    shifts = [{"name": "early", "people": 2, "start_hour": 7, "end_hour": 12},
              {"name": "late", "people": 2, "start_hour": 12, "end_hour": 20}]
    base = {"team.sdrs": 4, "team.shifts": shifts, "routing.policy": "round_robin", "sla.mql_minutes": 30}
    on = run_replication(short(**base, **{"routing.reassign_on_sla_breach": True}), 0)
    off = run_replication(short(**base, **{"routing.reassign_on_sla_breach": False}), 0)
    assert on.reassigned > 0 and off.reassigned == 0
    assert on.episodes["response_minutes"].median() < off.episodes["response_minutes"].median()
    capped = run_replication(short(**base, **{"team.capacity_cap": 3}), 0)
    assert capped.pools["sdr"]["max_open_per_person"] == 3
    assert on.pools["sdr"]["max_open_per_person"] > 3


def test_cli_unreachable_scheduler_is_one_readable_line(tmp_path, capsys, monkeypatch):
    import sim.experiment as ex

    monkeypatch.setattr(ex, "SCHEDULER_TIMEOUT_S", 2)
    rc = main(["simulate", str(SCENARIOS / "baseline.yaml"), "-r", "1", "--set", "calendar.horizon_days=14",
               "--set", "calendar.warmup_days=2", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--scheduler tcp://127.0.0.1:9: could not reach a dask scheduler" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


ENGINE_CASES = {
    "priority": {},
    "fifo, 2 SDRs": {"routing.policy": "fifo", "team.sdrs": 2},
    "round robin, reassign, cap": {"routing.policy": "round_robin", "team.capacity_cap": 4, "sla.mql_minutes": 30},
    "AE escalation, shifts": {"team.escalate_hot_to_ae": True, "team.aes": 1, "team.shifts": [
        {"name": "early", "people": 3, "start_hour": 7, "end_hour": 15},
        {"name": "late", "people": 2, "start_hour": 13, "end_hour": 21}]},
    "unlimited": {"team.unlimited": True},
    "edf, reassign on breach": {"routing.policy": "edf", "routing.on_breach": "reassign", "sla.hot_minutes": 5},
    "priority, escalate to overflow": {"routing.on_breach": "escalate", "team.overflow_people": 1,
                                       "sla.mql_minutes": 30},
    "round robin on duty, owner clock, escalate to AE": {
        "routing.policy": "round_robin", "routing.assign_on_duty_only": True, "sla.schedule": "owner",
        "routing.on_breach": "escalate", "routing.escalate_to": "ae", "sla.mql_minutes": 60, "team.shifts": [
            {"name": "early", "people": 3, "start_hour": 7, "end_hour": 15},
            {"name": "late", "people": 2, "start_hour": 13, "end_hour": 21, "holidays": ["2026-01-23"]}]},
    "regions in their zones, round robin, owner clock, reassign": {
        "routing.policy": "round_robin", "routing.route_by": "region", "sla.schedule": "owner",
        "routing.on_breach": "reassign", "sla.mql_minutes": 60, "team.capacity_cap": 3,
        "arrivals.region_timezones": {"europe": "Europe/London", "apac": "Asia/Singapore"}, "team.shifts": [
            {"name": "emea", "people": 2, "start_hour": 8, "end_hour": 17, "timezone": "Europe/London",
             "regions": ["europe", "mea"]},
            {"name": "apac", "people": 1, "start_hour": 9, "end_hour": 17, "timezone": "Asia/Singapore",
             "regions": ["apac"]},
            {"name": "americas", "people": 2, "start_hour": 9, "end_hour": 18}]},
    "segments, edf, owner clock, escalate": {
        "routing.policy": "edf", "routing.route_by": "segment", "sla.schedule": "owner", "sla.mql_minutes": 30,
        "routing.on_breach": "escalate", "team.overflow_people": 1, "team.shifts": [
            {"name": "enterprise", "people": 1, "start_hour": 9, "end_hour": 17, "timezone": "America/Los_Angeles",
             "segments": ["enterprise", "mid"]},
            {"name": "smb", "people": 4, "start_hour": 7, "end_hour": 19, "segments": ["smb"]}]},
}


@pytest.mark.parametrize("case", list(ENGINE_CASES))
def test_agenda_gives_the_history_of_an_event_per_item(case, monkeypatch):
    # The engine applies arrivals, later attempts, re-entries and SLA timers lazily, at
    # their own time stamps, just before the next event. Forcing an event at every such
    # item (as a plain event-per-item simulator would) must change nothing at all.
    scn = short(**ENGINE_CASES[case])
    lazy = run_replication(scn, 3)
    monkeypatch.setattr(Engine, "EAGER", True)
    eager = run_replication(scn, 3)
    pd.testing.assert_frame_equal(lazy.episodes, eager.episodes)
    pd.testing.assert_frame_equal(lazy.leads, eager.leads)
    pd.testing.assert_frame_equal(lazy.events, eager.events)
    assert lazy.reassigned == eager.reassigned
    for name, stats in lazy.pools.items():
        assert stats == pytest.approx(eager.pools[name], rel=1e-12)


SHIFTS = [{"name": "early", "people": 2, "start_hour": 7, "end_hour": 15},
          {"name": "late", "people": 1, "start_hour": 12, "end_hour": 21}]
# Routing groups for the property test: a group in its own zone and a catch-all (regions),
# or two groups that list every segment between them.
ROUTED_SHIFTS = {
    "region": [{"name": "emea", "people": 1, "start_hour": 8, "end_hour": 16, "timezone": "Europe/London",
                "regions": ["europe", "mea"]},
               {"name": "rest", "people": 2, "start_hour": 9, "end_hour": 18}],
    "segment": [{"name": "large", "people": 1, "start_hour": 9, "end_hour": 17, "timezone": "America/Los_Angeles",
                 "segments": ["enterprise", "mid"]},
                {"name": "smb", "people": 2, "start_hour": 7, "end_hour": 15, "segments": ["smb"]}],
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    sdrs=st.integers(1, 6),
    policy=st.sampled_from(["fifo", "priority", "round_robin", "edf"]),
    attempts=st.integers(1, 4),
    cap=st.sampled_from([None, 2, 5]),
    sla=st.sampled_from([15, 60, 240]),
    escalate=st.booleans(),
    shifts=st.booleans(),
    unlimited=st.booleans(),
    on_breach=st.sampled_from([None, "alert", "reassign", "escalate"]),
    escalate_to=st.sampled_from(["ae", "overflow"]),
    on_duty_only=st.booleans(),
    schedule=st.sampled_from(["office", "owner"]),
    route_by=st.sampled_from([None, "region", "segment"]),
    zones=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_agenda_matches_event_per_item_for_any_policy(sdrs, policy, attempts, cap, sla, escalate, shifts, unlimited,
                                                      on_breach, escalate_to, on_duty_only, schedule, route_by, zones,
                                                      seed, monkeypatch):
    rr = policy == "round_robin"
    over = {"calendar.horizon_days": 14, "calendar.warmup_days": 2, "team.sdrs": sdrs, "routing.policy": policy,
            "team.max_attempts": attempts, "team.capacity_cap": cap if rr else None, "sla.mql_minutes": sla,
            "team.escalate_hot_to_ae": escalate, "team.aes": 1, "team.unlimited": unlimited, "seed": seed,
            "routing.on_breach": on_breach, "routing.escalate_to": escalate_to, "team.overflow_people": 1,
            "routing.assign_on_duty_only": on_duty_only and rr, "sla.schedule": schedule}
    if shifts:
        over.update({"team.shifts": SHIFTS, "team.sdrs": 3})
    if zones:  # leads on their region's clock; a shift on London's
        over["arrivals.region_timezones"] = {"europe": "Europe/London", "apac": "Asia/Tokyo"}
        if shifts:
            over["team.shifts"] = [SHIFTS[0], {**SHIFTS[1], "timezone": "Europe/London"}]
    if route_by:  # routing groups replace the shifts above
        over.update({"team.shifts": ROUTED_SHIFTS[route_by], "team.sdrs": 3, "routing.route_by": route_by,
                     "team.unlimited": False})
    scn = load_scenario(SCENARIOS / "baseline.yaml", over)
    lazy = run_replication(scn, 0)
    with monkeypatch.context() as m:
        m.setattr(Engine, "EAGER", True)
        eager = run_replication(scn, 0)
    pd.testing.assert_frame_equal(lazy.episodes, eager.episodes)
    pd.testing.assert_frame_equal(lazy.leads, eager.leads)
    assert (lazy.reassigned, lazy.breaches, lazy.escalated) == (eager.reassigned, eager.breaches, eager.escalated)


@pytest.mark.parametrize("curve", [
    dict(kind="none"), dict(kind="exponential", tau_minutes=7.5), dict(kind="power", d0_minutes=347.0, alpha=1.12),
    dict(kind="mixture", tau_minutes=3.8, tau_slow_minutes=900.0, weight_fast=0.6, floor=0.0023),
])
def test_scalar_decay_equals_vectorised(curve):
    """The event loop's plain-Python decay curve is the scenario's numpy curve, and the
    compiled engine's is the plain-Python one to the last bit (its histories must be)."""
    from sim.engine_fast import _curve
    from sim.engine_kernel import _decay
    from sim.scenario import DecayCurve

    c = DecayCurve(**curve)
    d = np.array([0.0, 0.5, 5.0, 30.0, 60.0, 1440.0, 4320.0, 1e5])
    f = c.scalar()
    np.testing.assert_allclose([f(x) for x in d], c(d), rtol=1e-14, atol=0)
    assert [_decay(_curve(c), 0, x) for x in d] == [f(x) for x in d]
