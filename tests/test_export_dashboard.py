"""The shared dashboard on a team's own export (lab.export_view): the simulated runs' KPI
definitions, intervals, and "not in this export" where the export cannot say, never 0."""
from __future__ import annotations

import pytest

from calibration.synthetic_crm import simulated_history, write_hubspot, write_salesforce
from common.paths import DATA, SCENARIOS
from lab.export_view import export_dashboard
from sim.kpi_dashboard import NOT_IN_EXPORT
from sim.scenario import load_scenario


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    scn = load_scenario(SCENARIOS / "baseline.yaml", {"calendar.horizon_days": 42})
    leads = simulated_history(scn, seed=5)
    root = tmp_path_factory.mktemp("dash")
    return write_salesforce(leads, root / "sf"), write_hubspot(leads, root / "hs", scn.calendar.timezone)


def test_a_figure_the_export_cannot_support_is_said_so(exports):
    sf, hs = exports
    hub = export_dashboard(hs, DATA / "mappings" / "hubspot.yaml", SCENARIOS / "baseline.yaml")
    sales = export_dashboard(sf, DATA / "mappings" / "salesforce.yaml", SCENARIOS / "baseline.yaml")
    # HubSpot's contacts carry no SAL date: acceptance is not in that export, never 0%.
    assert hub.loc["Sales acceptance rate", "all"] == NOT_IN_EXPORT
    assert sales.loc["Sales acceptance rate", "all"] != NOT_IN_EXPORT
    # Both exports hold the same leads: the volume agrees, with its interval.
    assert hub.loc["Leads per week (leads/week)", "all"] == sales.loc["Leads per week (leads/week)", "all"]
    assert " to " in hub.loc["Leads per week (leads/week)", "all"]


def test_the_dashboard_by_channel_has_a_column_per_channel(exports):
    sf, _ = exports
    by = export_dashboard(sf, DATA / "mappings" / "salesforce.yaml", SCENARIOS / "baseline.yaml", by="channel")
    assert set(by.columns) >= {"content", "paid_search", "partner"}
    assert by.notna().all().all()
