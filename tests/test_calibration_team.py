"""Team size, working hours and time zone read from an export where it shows them, and
"assumed" with the reason where it does not."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from calibration.fit_report import report_table
from calibration.history import fit_scenario
from calibration.synthetic_crm import simulated_history, write_hubspot, write_salesforce
from calibration.team import working_hours
from common.paths import DATA, SCENARIOS
from sim.scenario import load_scenario

MAPS = DATA / "mappings"
ZONE = "Europe/Berlin"
# Four SDRs on 8:00-16:30, Monday to Saturday, in Berlin; the base knows none of it.
TEAM = {"nurture.enabled": False, "team.sdrs": 4, "calendar.open_hour": 8.0, "calendar.close_hour": 16.5,
        "calendar.working_days": [0, 1, 2, 3, 4, 5], "calendar.timezone": ZONE, "calendar.horizon_days": 42,
        "arrivals.leads_per_week": 300.0}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    truth = load_scenario(SCENARIOS / "baseline.yaml", TEAM)
    leads = simulated_history(truth, seed=3)
    root = tmp_path_factory.mktemp("team")
    doc = yaml.safe_load((MAPS / "hubspot.yaml").read_text())
    for t in doc["tables"].values():
        t["timezone"] = ZONE
    (root / "hubspot_berlin.yaml").write_text(yaml.safe_dump(doc))
    return write_salesforce(leads, root / "sf", seed=3), write_hubspot(leads, root / "hs", ZONE), root


def _report(fit):
    return report_table(fit).set_index("parameter")


def test_team_hours_and_zone_fitted_from_a_hubspot_export(exports):
    _, hs, root = exports
    base = load_scenario(SCENARIOS / "baseline.yaml", {"nurture.enabled": False})  # New York, 9-18, Mon-Fri, 5 SDRs
    fit = fit_scenario(hs, root / "hubspot_berlin.yaml", base=base)
    rep, cal = _report(fit), fit.scenario.calendar
    assert rep.loc["calendar.timezone", "status"] == "declared" and cal.timezone == ZONE
    assert "hubspot_berlin.yaml: table contacts: timezone" in rep.loc["calendar.timezone", "reason"]
    assert (cal.open_hour, cal.close_hour, list(cal.working_days)) == (8.0, 16.5, [0, 1, 2, 3, 4, 5])
    for p in ("calendar.open_hour", "calendar.close_hour", "calendar.working_days"):
        assert rep.loc[p, "status"] == "fitted" and rep.loc[p, "n"] > 300, rep.loc[p].to_dict()
    assert fit.scenario.team.sdrs == 4
    r = rep.loc["team.sdrs"]
    assert r["status"] == "fitted" and r["ci_low"] <= 4 <= r["ci_high"] and "median over 4 full weeks" in r["reason"]


def test_utc_dates_leave_the_zone_assumed_and_say_why(exports):
    sf, _, _ = exports
    base = load_scenario(SCENARIOS / "baseline.yaml", {"nurture.enabled": False, "calendar.timezone": ZONE})
    fit = fit_scenario(sf, MAPS / "salesforce.yaml", base=base)
    rep = _report(fit)
    assert rep.loc["calendar.timezone", "status"] == "assumed" and "declares no time zone" in \
        rep.loc["calendar.timezone", "reason"]
    # Read in the right zone, the hours are the team's.
    assert (fit.scenario.calendar.open_hour, fit.scenario.calendar.close_hour) == (8.0, 16.5)
    assert fit.scenario.team.sdrs == 4


def test_hours_assumed_without_first_touch_times():
    base = load_scenario(SCENARIOS / "baseline.yaml")
    days = pd.Series(pd.date_range("2026-01-05", periods=400, freq="D"))
    fields, rows = working_hours(pd.DataFrame({"first_response_at": days}), base)
    assert fields == {} and all(r["status"] == "assumed" for r in rows)
    assert "no time of day" in rows[0]["reason"] and "base scenario's value" in rows[0]["reason"]
    fields, rows = working_hours(pd.DataFrame({"first_response_at": days[:50] + pd.Timedelta(hours=10)}), base)
    assert fields == {} and "50 first touches" in rows[0]["reason"] and "at least 200" in rows[0]["reason"]
