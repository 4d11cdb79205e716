"""Erlang C, the shift-cover integer program, lab plan, and the measurement-only flag."""
import math

import numpy as np
import pytest

from common.errors import LabError
from common.paths import SCENARIOS
from lab.cli import main
from sim.erlang import agents_for_service_level, erlang_c, mean_wait_minutes, service_level
from sim.mechanism import MEASUREMENT_ONLY, describe_change, measurement_only
from sim.scenario import load_policies, load_scenario
from sim.staffing import ShiftPattern, cover, parse_target, plan_staffing


def _erlang_c_factorial(c, a):
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize("c,a", [(1, 0.5), (2, 1.6), (4, 3.4), (6, 5.0), (10, 8.7), (30, 25.0)])
def test_erlang_c_equals_the_closed_form(c, a):
    assert erlang_c(c, a) == pytest.approx(_erlang_c_factorial(c, a), rel=1e-12)
    # M/M/1: P(wait) = rho, mean wait rho / (mu - lambda)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert mean_wait_minutes(1, 0.5, 1.0) == pytest.approx(1.0)


def test_agents_for_service_level_is_the_fewest_that_reach_it():
    # A textbook case: 100 calls per 30 minutes, 180 s handling, 80% within 20 s.
    lam, h = 100 / 30, 3.0
    c = agents_for_service_level(lam, h, 20 / 60, 0.8)
    assert service_level(c, lam, h, 20 / 60) >= 0.8 > service_level(c - 1, lam, h, 20 / 60)
    assert c == 14
    assert agents_for_service_level(0.0, 3.0, 1.0, 0.8) == 0


def test_parse_target():
    t = parse_target("hot=5m@80%")
    assert (t.band, t.minutes, t.share) == ("hot", 5.0, 0.8)
    assert parse_target("mql=4h@90%").minutes == 240.0
    with pytest.raises(LabError, match="expected band=TIME@SHARE%"):
        parse_target("warm=5m")


def test_cover_is_the_least_cost_integer_cover():
    scn = load_scenario(SCENARIOS / "baseline.yaml")
    pats = (ShiftPattern("day", (0, 1, 2, 3, 4), 9.0, 18.0), ShiftPattern("late", (0, 1, 2, 3, 4), 13.0, 22.0))
    need = np.zeros(168, dtype=np.int64)
    need[9:13] = 2      # Monday mornings: only day covers them
    need[13:18] = 3     # both cover the afternoon
    need[19:22] = 1     # only late covers the evening
    plan = cover(scn, need, pats)
    assert plan == {"day": 2, "late": 1}


def test_measurement_only_flag():
    _, pols = load_policies(SCENARIOS / "policies.yaml")
    base = pols["baseline"]
    assert measurement_only(base, pols["sla_15min"]) and measurement_only(base, pols["sla_24h"])
    assert describe_change(base, pols["sla_15min"]) == MEASUREMENT_ONLY
    assert not measurement_only(base, pols["edf_sla_15min"]) and not measurement_only(base, pols["sdrs_6"])
    rr = load_scenario(SCENARIOS / "baseline.yaml", {"routing.policy": "round_robin"})
    rr15 = load_scenario(SCENARIOS / "baseline.yaml", {"routing.policy": "round_robin", "sla.mql_minutes": 15})
    assert not measurement_only(rr, rr15)  # round robin reassigns on breach: the SLA moves leads


@pytest.mark.parametrize("over,match", [
    ({"team.capacity_cap": 3}, "only round_robin gives leads an owner"),
    ({"routing.assign_on_duty_only": True}, "applies to round_robin only"),
    ({"routing.on_breach": "escalate"}, "needs team.overflow_people >= 1"),
])
def test_combinations_that_make_no_sense_are_refused(over, match):
    with pytest.raises(LabError, match=match):
        load_scenario(SCENARIOS / "baseline.yaml", over)


SMALL = {"calendar.horizon_days": 35, "calendar.warmup_days": 7}


def test_plan_meets_its_targets_at_no_more_than_any_policy_that_does():
    scn = load_scenario(SCENARIOS / "baseline.yaml", SMALL)
    _, pols = load_policies(SCENARIOS / "policies.yaml", [f"{k}={v}" for k, v in SMALL.items()])
    pols = {k: pols[k] for k in ("baseline", "sdrs_4", "sdrs_6")}
    targets = [parse_target("hot=15m@80%"), parse_target("mql=4h@85%")]
    res = plan_staffing(scn, targets, replications=3, n_jobs=1, compare=pols)
    assert res.plan
    c = res.candidates
    mine = c[(c["kind"] == "plan") & c["plan"].map(lambda p: p == res.plan)].iloc[0]
    assert mine["meets_targets"]
    for t in targets:
        assert mine[f"{t.band}_attainment"] >= t.share
    meeting = c[(c["kind"] == "policy") & c["meets_targets"]]
    assert (mine["cost_per_week_usd"] <= meeting["cost_per_week_usd"] + 1e-9).all()
    assert res.schedule().shape[1] == 7


def test_cli_plan_writes_the_plan_and_the_frontier(tmp_path, capsys):
    rc = main(["plan", str(SCENARIOS / "baseline.yaml"), "--target", "hot=15m@80%", "--target", "mql=4h@85%",
               "-r", "2", "-j", "1", "--set", "calendar.horizon_days=28", "--set", "calendar.warmup_days=7",
               "--out", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert rc == 0 and "every scenario simulated" in out
    assert (tmp_path / "p" / "frontier.png").stat().st_size > 1000
    assert (tmp_path / "p" / "candidates.csv").exists()
    assert main(["plan", str(SCENARIOS / "baseline.yaml"), "--target", "hot=soon"]) == 2
