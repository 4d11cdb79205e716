"""Scenario files and overrides: every bad input gets one message naming the file, the
field, the rule and the value."""
import pytest

from common.errors import LabError
from common.paths import SCENARIOS
from sim.scenario import Scenario, load_policies, load_scenario, parse_override


def write(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_scenarios_load():
    base = load_scenario(SCENARIOS / "baseline.yaml")
    assert base.team.sdrs == 5 and base.sla.hot_minutes == 15
    pset, scns = load_policies(SCENARIOS / "policies.yaml")
    assert list(scns) == [p.name for p in pset.policies] and len(scns) >= 8
    assert scns["sdrs_8"].team.sdrs == 8 and scns["fifo"].routing.policy == "fifo"
    assert scns["thresholds_70_55"].points_table().thresholds.mql == 55
    load_scenario(SCENARIOS / "mmc.yaml")


def test_defaults_equal_baseline_file_where_it_is_silent():
    assert Scenario().decay == load_scenario(SCENARIOS / "baseline.yaml").decay


def test_unknown_key_names_file_and_field(tmp_path):
    p = write(tmp_path, "team:\n  sdrz: 4\n")
    with pytest.raises(LabError, match=r"s\.yaml: team\.sdrz: unknown field"):
        load_scenario(p)


def test_impossible_value_names_rule_and_value(tmp_path):
    p = write(tmp_path, "team:\n  sdrs: -2\n")
    with pytest.raises(LabError, match=r"team\.sdrs: Input should be greater than or equal to 0; got -2"):
        load_scenario(p)


def test_wrong_type(tmp_path):
    p = write(tmp_path, "arrivals:\n  leads_per_week: lots\n")
    with pytest.raises(LabError, match=r"arrivals\.leads_per_week: .*valid number.*'lots'"):
        load_scenario(p)


@pytest.mark.parametrize("text,match", [
    ("calendar:\n  open_hour: 18\n  close_hour: 9\n", r"close_hour \(9\.0\) must be after open_hour"),
    ("calendar:\n  timezone: Mars/Olympus\n", r"unknown time zone 'Mars/Olympus'"),
    ("calendar:\n  warmup_days: 100\n", r"warmup_days \(100\) must be shorter"),
    ("conversion:\n  qualify_prob: {hot: 0.9, mql: 0.3}\n", r"qualify_prob\[hot\] \(0\.9\) cannot exceed contact_prob"),
    ("arrivals:\n  profile: [1, 2, 3]\n", r"168 non-negative weights"),
    ("team:\n  sdrs: 3\n  shifts: [{people: 2}]\n", r"shifts staff 2 SDRs but sdrs = 3"),
    ("routing:\n  policy: random\n", r"routing\.policy: Input should be 'fifo', 'priority', 'round_robin' or 'edf'"),
    ("conversion:\n  rejection_mix: {bad_reason: 1}\n", r"rejection_mix takes reasons among"),
])
def test_rules(tmp_path, text, match):
    with pytest.raises(LabError, match=match):
        load_scenario(write(tmp_path, text))


def test_malformed_yaml_names_line(tmp_path):
    p = write(tmp_path, "team:\n  sdrs: [4\n")
    with pytest.raises(LabError, match=r"s\.yaml: line \d+, column \d+: not valid YAML"):
        load_scenario(p)


def test_missing_file():
    with pytest.raises(LabError, match="nope.yaml: file not found"):
        load_scenario("nope.yaml")


def test_overrides_from_command_line_and_notebook():
    s = load_scenario(SCENARIOS / "baseline.yaml", ["team.sdrs=8", "sla.clock=wall", "routing.policy=fifo"])
    assert (s.team.sdrs, s.sla.clock, s.routing.policy) == (8, "wall", "fifo")
    s = load_scenario(SCENARIOS / "baseline.yaml", {"team.handling_time.mean_minutes": 4.5})
    assert s.team.handling_time.mean_minutes == 4.5


@pytest.mark.parametrize("text,match", [
    ("team.sdrs", r"must look like field\.path=value"),
    ("=3", r"has no field name"),
])
def test_bad_override_syntax(text, match):
    with pytest.raises(LabError, match=match):
        parse_override(text)


def test_override_unknown_path_lists_fields():
    with pytest.raises(LabError, match=r"team\.size: unknown field; team has \[.*'sdrs'"):
        load_scenario(SCENARIOS / "baseline.yaml", ["team.size=3"])


def test_override_bad_value():
    with pytest.raises(LabError, match=r"team\.sdrs: Input should be a valid integer.*'many'"):
        load_scenario(SCENARIOS / "baseline.yaml", ["team.sdrs=many"])


def test_policy_file_errors(tmp_path):
    write(tmp_path, "name: b\n", "b.yaml")
    p = write(tmp_path, "base: b.yaml\npolicies:\n  - name: x\n    set: {team.sdrz: 3}\n", "p.yaml")
    with pytest.raises(LabError, match=r"p\.yaml \(policy 'x'\).*team\.sdrz: unknown field"):
        load_policies(p)
    p = write(tmp_path, "base: b.yaml\npolicies:\n  - name: x\n  - name: x\n", "p2.yaml")
    with pytest.raises(LabError, match=r"policy names must be unique; repeated \['x'\]"):
        load_policies(p)
    p = write(tmp_path, "base: b.yaml\npolicy: []\n", "p3.yaml")
    with pytest.raises(LabError, match=r"p3\.yaml: policy: unknown field"):
        load_policies(p)


def test_duration_distributions_know_their_moments():
    import numpy as np

    from sim.scenario import Duration

    rng = np.random.default_rng(0)
    for d in (Duration(dist="exponential", mean_minutes=5), Duration(dist="lognormal", mean_minutes=8, cv=0.6),
              Duration(dist="gamma", mean_minutes=3, cv=0.3), Duration(dist="fixed", mean_minutes=2)):
        x = d.sample(rng, 200_000)
        se = np.sqrt(d.variance / x.size)
        assert abs(x.mean() - d.mean) <= 4 * se + 1e-12, d
        assert "mean=" in repr(d)


@pytest.mark.parametrize("header,verdict,warned", [
    ("# backtest: fail (3 of 9 KPIs outside)\n# backtest leads_per_week: fail (actual 741, simulated 1142 [1089, 1195])\n",
     "fail (3 of 9 KPIs outside)", True),
    ("# backtest: pass\n", "pass", False),
    ("", "none recorded", False),
])
def test_a_twin_that_failed_its_backtest_says_so_in_every_run(tmp_path, capsys, header, verdict, warned):
    """The verdict save_backtest writes at the top of a fitted scenario travels into the
    provenance of every run of it (run.json), and a failed one is said on stderr."""
    import json

    from lab.cli import main

    base = (SCENARIOS / "baseline.yaml").read_text()
    path = tmp_path / "twin.yaml"
    path.write_text(header + base)
    out = tmp_path / "run"
    rc = main(["simulate", str(path), "-r", "1", "--no-tables", "--out", str(out),
               "--set", "calendar.horizon_days=21", "--set", "calendar.warmup_days=7"])
    err = capsys.readouterr().err
    assert rc == 0
    assert json.loads((out / "run.json").read_text())["scenario_backtest"] == verdict
    assert ("failed its back-test" in err) is warned
    if warned:
        assert str(path) in err and "fail (3 of 9 KPIs outside)" in err
