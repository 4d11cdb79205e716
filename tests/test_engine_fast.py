"""The compiled engine (sim.engine_fast) gives the reference engine's history to the last
bit, for every scenario it takes; every other scenario goes to the reference engine."""
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim.engine_fast as fast
from common.paths import SCENARIOS
from sim.model import run_replication
from sim.scenario import load_scenario

SHIFTS = [{"name": "early", "people": 2, "start_hour": 7, "end_hour": 15},
          {"name": "late", "people": 1, "start_hour": 12, "end_hour": 21, "holidays": ["2026-01-23"]}]
# The same team with its late shift in London (its hours on London's clock and holidays).
ZONED = [SHIFTS[0], {**SHIFTS[1], "timezone": "Europe/London", "start_hour": 14, "end_hour": 22}]


def both(scn, replication=0):
    """One replication by the compiled engine and by the reference engine."""
    assert fast.eligible(scn)
    compiled = run_replication(scn, replication)
    fast.ENABLED = False
    try:
        reference = run_replication(scn, replication)
    finally:
        fast.ENABLED = True
    return compiled, reference


def assert_same(a, b):
    pd.testing.assert_frame_equal(a.episodes, b.episodes)
    pd.testing.assert_frame_equal(a.leads, b.leads)
    pd.testing.assert_frame_equal(a.events, b.events)
    assert a.pools == b.pools  # exact: the same sums in the same order
    assert (a.reassigned, a.breaches, a.escalated) == (b.reassigned, b.breaches, b.escalated)


def test_baseline_quarter_is_the_reference_history():
    # The scenario of the speed target (benchmarks/bench_replication.py), a whole quarter.
    assert_same(*both(load_scenario(SCENARIOS / "baseline.yaml"), 2))


@pytest.mark.parametrize("policy", ["edf", "round_robin"])
def test_other_policies_go_to_the_reference_engine(policy):
    scn = load_scenario(SCENARIOS / "baseline.yaml", {"routing.policy": policy})
    assert not fast.eligible(scn)


@pytest.mark.parametrize("over", [
    {"routing.on_breach": "alert"},
    {"team.escalate_hot_to_ae": True},
    {"team.unlimited": True},
])
def test_breach_actions_escalation_and_unlimited_teams_go_to_the_reference_engine(over):
    assert not fast.eligible(load_scenario(SCENARIOS / "baseline.yaml", over))


def test_regional_routing_goes_to_the_reference_engine():
    assert not fast.eligible(load_scenario(SCENARIOS / "regions.yaml"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sdrs=st.integers(1, 6),
    policy=st.sampled_from(["fifo", "priority"]),
    attempts=st.integers(1, 5),
    shifts=st.sampled_from([None, SHIFTS, ZONED]),
    contact=st.sampled_from([{"kind": "none"}, {"kind": "exponential", "tau_minutes": 7.5},
                             {"kind": "mixture", "tau_minutes": 3.8, "weight_fast": 0.6, "floor": 0.01}]),
    qualification=st.sampled_from([{"kind": "none"}, {"kind": "power", "d0_minutes": 347.0, "alpha": 1.12}]),
    nurture=st.booleans(),
    reentries=st.integers(0, 3),
    leads_per_week=st.sampled_from([150, 770, 2500]),
    always_open=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_compiled_engine_is_the_reference_for_any_scenario_it_takes(sdrs, policy, attempts, shifts, contact,
                                                                     qualification, nurture, reentries,
                                                                     leads_per_week, always_open, seed):
    over = {"calendar.horizon_days": 21, "calendar.warmup_days": 3, "team.sdrs": sdrs, "routing.policy": policy,
            "team.max_attempts": attempts, "decay.contact": contact, "decay.qualification": qualification,
            "nurture.enabled": nurture, "nurture.max_reentries": reentries,
            "arrivals.leads_per_week": leads_per_week, "calendar.always_open": always_open, "seed": seed}
    if shifts:
        over.update({"team.shifts": shifts, "team.sdrs": 3})
        if shifts is ZONED:
            over["calendar.always_open"] = False  # a zoned shift needs hours (refused otherwise)
    assert_same(*both(load_scenario(SCENARIOS / "baseline.yaml", over)))
