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


def test_every_figure_an_export_supports_carries_its_interval(exports):
    sf, _ = exports
    d = export_dashboard(sf, DATA / "mappings" / "salesforce.yaml", SCENARIOS / "baseline.yaml")
    for kpi_label, cell in d["all"].items():
        assert cell == NOT_IN_EXPORT or " to " in cell, (kpi_label, cell)


def test_intervals_are_the_stated_formulas_on_what_each_kpi_counts():
    # Each interval is computed from exactly what funnel_kpis counted for the KPI: Wilson
    # on its hits and trials, order statistics on its response times, t on its amounts,
    # the gamma interval of a compound Poisson sum for pipeline per week.
    import numpy as np

    from calibration.synthetic_crm import simulated_history
    from common.intervals import mean_interval, poisson_sum_interval, proportion_interval, quantile_interval
    from sim.kpi_dashboard import kpi_interval
    from sim.kpis import funnel_kpis

    scn = load_scenario(SCENARIOS / "baseline.yaml", {"calendar.horizon_days": 42})
    leads = simulated_history(scn, seed=9)
    ev: dict = {}
    k = funnel_kpis(leads, None, scn, evidence=ev)
    weeks = k["lead_count"] / k["leads_per_week"]
    for name in ("sla_attainment_hot", "sla_attainment_mql", "sal_acceptance_rate", "win_rate"):
        kind, hits, trials = ev[name]
        assert kind == "share" and trials > 0 and hits / trials == pytest.approx(k[name], rel=1e-12)
        assert kpi_interval(name, k, weeks, ev) == proportion_interval(hits, trials)[1:]
    rt = ev["response_median_minutes"][1]
    assert np.median(rt) == pytest.approx(k["response_median_minutes"])
    assert kpi_interval("response_median_minutes", k, weeks, ev) == quantile_interval(rt, 0.5)[1:]
    amounts = ev["deal_size_mean_usd"][1]
    assert kpi_interval("deal_size_mean_usd", k, weeks, ev) == mean_interval(amounts)[1:3]
    assert kpi_interval("pipeline_per_week_usd", k, weeks, ev) == poisson_sum_interval(amounts, weeks)[1:]
    lo, hi = kpi_interval("pipeline_per_week_usd", k, weeks, ev)
    assert lo < k["pipeline_per_week_usd"] < hi
