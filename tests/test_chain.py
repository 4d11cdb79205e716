"""Today's process is decided once (lab.chain): the fitted twin only when its back-test
passed, the table in use after the refit, and policies laid on top of both."""
from __future__ import annotations

import shutil

import pytest

from common.errors import LabError
from common.paths import DATA, SCENARIOS
from lab.chain import replications_for, resolve_today, shifted_cutoffs, policy_scenarios
from sim.scenario import load_policies

POLICIES = SCENARIOS / "policies.yaml"


def _twin(tmp_path, header: str | None):
    """A 'fitted' scenario: the baseline with another arrival rate, and a back-test header."""
    text = (SCENARIOS / "baseline.yaml").read_text().replace("name: baseline", "name: fitted_twin")
    text = text.replace("leads_per_week: 770", "leads_per_week: 512", 1)
    path = tmp_path / "fitted.yaml"
    path.write_text((header + "\n" if header else "") + text)
    return path


@pytest.mark.parametrize("header,uses", [
    ("# backtest: pass", True),
    ("# backtest: fail", False),
    ("# backtest: not testable", False),
    (None, False),
])
def test_the_twin_is_used_only_when_its_backtest_passed(tmp_path, header, uses):
    twin = _twin(tmp_path, header)
    today = resolve_today("", POLICIES, twin, "")
    assert today.uses_twin is uses and today.twin_failed is (not uses)
    assert today.scenario().arrivals.leads_per_week == (512 if uses else 770)
    if not uses:
        assert today.scenario_path == (SCENARIOS / "baseline.yaml").resolve()
        assert "base scenario instead" in today.scenario_reason


def test_no_twin_and_no_refit_mean_the_base_scenario_and_its_table(tmp_path):
    today = resolve_today("", POLICIES, tmp_path / "missing.yaml", "")
    assert not today.uses_twin and not today.twin_failed and today.overrides == {}
    assert "no fitted twin at" in today.scenario_reason


def test_the_refit_folder_sets_the_table_and_cut_offs(tmp_path):
    refit = tmp_path / "refit"
    refit.mkdir()
    shutil.copy(DATA / "scoring" / "seed_points.yaml", refit / "points.yaml")
    (refit / "model.json").write_text('{"decision": "The previous table stays in use."}')
    today = resolve_today("", POLICIES, "", refit)
    assert today.table_path == (refit / "points.yaml").resolve()
    assert today.overrides["scoring.mql"] == 60 and today.table_reason == "The previous table stays in use."
    _, scenarios = policy_scenarios(today, POLICIES, ["baseline", "thresholds_70_55"])
    assert scenarios["baseline"].scoring.points_table == str(today.table_path)
    assert scenarios["thresholds_70_55"].scoring.mql == 55  # a policy's own setting wins


def test_policy_names_and_replications_follow_the_policy_file(tmp_path):
    today = resolve_today("", POLICIES, "", "")
    with pytest.raises(LabError, match="no policy named 'nope'"):
        policy_scenarios(today, POLICIES, ["nope"])
    pset, scenarios = policy_scenarios(today, POLICIES, [], {"calendar.horizon_days": 30})
    assert list(scenarios) == [p.name for p in pset.policies]
    assert all(s.calendar.horizon_days == 30 for s in scenarios.values())
    pset, _ = load_policies(POLICIES)
    assert replications_for(pset, 0, scenarios["baseline"]) == pset.replications == 20
    assert replications_for(pset, 3, scenarios["baseline"]) == 3


def test_cut_off_grid_keeps_todays_gaps():
    grid = shifted_cutoffs({"hot": 75, "mql": 60, "nurture": 45}, [-5, 0, 5])
    assert grid == {"mql_55": {"hot": 70, "mql": 55, "nurture": 40}, "mql_60": {"hot": 75, "mql": 60, "nurture": 45},
                    "mql_65": {"hot": 80, "mql": 65, "nurture": 50}}


def test_a_policy_files_base_is_the_base_everywhere(tmp_path):
    """``lab run 03_sla_policies -p policies FILE`` simulates on FILE's ``base:`` (as ``lab
    sweep`` does), unless a scenario is given."""
    from lab.chain import base_scenario_path

    other = tmp_path / "other.yaml"
    other.write_text((SCENARIOS / "baseline.yaml").read_text().replace("sdrs: 5", "sdrs: 9"))
    pol = tmp_path / "p.yaml"
    pol.write_text("base: other.yaml\nreplications: 3\npolicies:\n  - {name: baseline}\n")
    assert base_scenario_path("", pol) == other
    today = resolve_today("", pol, "", "")
    pset, scenarios = policy_scenarios(today, pol)
    assert scenarios["baseline"].team.sdrs == 9 and replications_for(pset, 0, scenarios["baseline"]) == 3
    assert base_scenario_path(SCENARIOS / "mmc.yaml", pol) == SCENARIOS / "mmc.yaml"
