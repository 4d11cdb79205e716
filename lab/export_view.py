"""The shared dashboard (DOMAIN.md section 5) on a team's own CRM export, as the funnel
notebook shows it: the simulated runs' KPI definitions (``sim.kpi_dashboard.dashboard``) with 95%
intervals, and "not in this export" where the export cannot support a figure."""
from __future__ import annotations

import pandas as pd


#: The shared dashboard's figures (DOMAIN.md section 5), in the order the notebook shows them.
DASHBOARD_KPIS = ["leads_per_week", "mql_per_week", "hot_share_of_mql", "response_median_minutes",
                  "sla_attainment_hot", "sla_attainment_mql", "mql_to_sql_rate", "sql_per_week",
                  "sal_acceptance_rate", "sql_to_opportunity_rate", "win_rate", "deal_size_mean_usd",
                  "pipeline_per_week_usd", "won_per_week"]


def export_dashboard(export, mapping, base, by: str | None = None, names=None) -> pd.DataFrame:
    """The shared dashboard on a CRM export, with the simulated runs' KPI definitions
    (``sim.kpi_dashboard.dashboard``): one row per KPI, one column per group (``by``: None for the
    whole export, ``"week"``, ``"segment"`` or a lead column such as ``channel``), cells
    "value (95% interval)" or "not in this export" (never 0).

    The window is the export's lead-creation window; the base scenario supplies the SLA
    targets and business hours the KPIs are judged on (and the time zone of naive dates).
    """
    import math

    from calibration.history_read import read_history
    from lab.story import fmt, label
    from sim.kpi_dashboard import NOT_IN_EXPORT, dashboard
    from sim.kpis import kpi
    from sim.scenario import Scenario, build_scenario, load_scenario

    scn = base if isinstance(base, Scenario) else load_scenario(base)
    leads, _ = read_history(export, mapping, scn.calendar.timezone)
    created = leads["created_at"].dropna()
    start, end = created.min().floor("D"), created.max() + pd.Timedelta(seconds=1)
    # The calendar starts at the export's first day and covers it whole, so business
    # minutes are counted over the export's own dates.
    doc = scn.model_dump(mode="json")
    days = math.ceil((end - start) / pd.Timedelta(days=1))
    doc["calendar"].update(start_date=str(start.tz_localize(None).date() if start.tzinfo else start.date()),
                           warmup_days=0, horizon_days=max(days, 1))
    scn = build_scenario(doc, source=f"{export} (dashboard window)")
    names = names or DASHBOARD_KPIS
    d = dashboard(leads, scn, start.tz_localize(None) if start.tzinfo else start,
                  end.tz_localize(None) if end.tzinfo else end, by=by, names=names)

    def cell(r):
        if r.status == NOT_IN_EXPORT:
            return NOT_IN_EXPORT
        if r.ci_low == r.ci_low:
            return f"{fmt(r.kpi, r.value)} ({fmt(r.kpi, r.ci_low)} to {fmt(r.kpi, r.ci_high)})"
        return fmt(r.kpi, r.value)

    d = d.assign(cell=[cell(r) for r in d.itertuples()])
    out = d.pivot(index="kpi", columns="group", values="cell").reindex([n for n in names if n in set(d["kpi"])])
    out.index = [label(k, capital=True) + (f" ({kpi(k).unit})" if kpi(k).kind in ("rate",) else "") for k in out.index]
    out.index.name = "95% interval in brackets"
    out.columns.name = by or ""
    return out
