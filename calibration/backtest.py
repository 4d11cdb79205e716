"""Back-test of a fitted scenario: simulate it over the history's period and put the
simulated KPIs (mean and 95% interval over replications) beside the actual ones.

Both sides are measured by the one KPI function (``sim.kpis.funnel_kpis``) on a lead
table alone: an export rarely has an event log, so the simulated side is read without
its own (each MQL counts at its first pass on both sides), over the same window, with
the same censoring at the export's end."""
from __future__ import annotations

import math

import pandas as pd

from calibration.history import FittedFunnel, read_history
from common.intervals import mean_interval
from sim.kpis import funnel_kpis, kpi

# What an export can show, in the order the back-test lists them.
BACKTEST_KPIS = [
    "leads_per_week", "mql_per_week", "hot_share_of_mql", "response_median_minutes", "response_p90_minutes",
    "within_1_hour_share", "mql_to_sql_rate", "sql_per_week", "sql_to_opportunity_rate", "win_rate",
    "pipeline_per_week_usd", "deal_size_mean_usd", "won_per_week",
]


def backtest(fitted: FittedFunnel, export, mapping=None, replications: int = 5, seed: int = 2026,
             n_jobs: int = 1) -> pd.DataFrame:
    """Simulate the fitted scenario over the history's period; one row per KPI of
    ``BACKTEST_KPIS`` with ``actual``, ``simulated`` (mean over replications), its 95%
    interval (n/a below 2 replications) and ``ratio`` = simulated / actual.

    The window runs from the end of the scenario's warm-up to the export's last date
    (inclusive). ``export`` is read again with ``mapping`` (default: the simulator's own
    mapping)."""
    from common.paths import ROOT
    from sim.crm import crm_export
    from sim.experiment import run_scenario

    scn = fitted.scenario
    mapping = mapping or ROOT / "data" / "mappings" / "sim_leads.yaml"
    actual_df, _ = read_history(export, mapping, scn.calendar.timezone)
    start = pd.Timestamp(scn.calendar.start_date) + pd.Timedelta(days=scn.calendar.warmup_days)
    end = fitted.end + pd.Timedelta(seconds=1)  # the export's last date counts
    actual = funnel_kpis(actual_df, None, scn, start, end)
    res = run_scenario(scn, replications=replications, seed=seed, n_jobs=n_jobs, keep_tables=True, progress=False)
    sims = []
    for _, leads in res.leads.groupby("replication", sort=True):
        crm = crm_export(leads.drop(columns=["replication"]), scn)
        sims.append(funnel_kpis(crm, None, scn, start, end))
    sim = pd.DataFrame(sims)
    rows = []
    for name in BACKTEST_KPIS:
        a = actual[name]
        m, lo, hi, _ = mean_interval(sim[name], lower=kpi(name).bounds[0], upper=kpi(name).bounds[1])
        rows.append(dict(kpi=name, actual=a, simulated=m, sim_ci_low=lo, sim_ci_high=hi,
                         ratio=m / a if a and not math.isnan(a) else math.nan))
    return pd.DataFrame(rows)
