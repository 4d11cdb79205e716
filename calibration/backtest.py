"""Back-test of a fitted scenario: simulate it over the history's period and put the
simulated KPIs (mean and 95% interval over replications) beside the actual ones, both
measured alike on a CRM export."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from calibration.history import FittedFunnel, read_history, to_local


def history_kpis(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, float]:
    """Dashboard KPIs computed from an export alone (local naive dates), for leads created
    in ``[start, end]``. The same function reads the actual and the simulated exports, so
    the two columns of a back-test are measured alike (including censoring at ``end``)."""
    L = df[(df["created_at"] >= start) & (df["created_at"] <= end)]
    weeks = ((end - start) / pd.Timedelta(days=1)) / 7.0
    M = L[L["mql_at"].notna()]
    k = {"leads_per_week": len(L) / weeks, "mql_per_week": len(M) / weeks}
    k["hot_share_of_mql"] = float((M["band"] == "hot").mean()) if "band" in M and len(M) else math.nan
    if "first_response_at" in M:
        rt = ((M["first_response_at"] - M["mql_at"]).dt.total_seconds() / 60.0).dropna().to_numpy()
        k["response_median_minutes"] = float(np.median(rt)) if rt.size else math.nan
        k["response_p90_minutes"] = float(np.quantile(rt, 0.9)) if rt.size else math.nan
        k["within_1_hour_share"] = float((rt <= 60).mean()) if rt.size else math.nan
    sql = M["sql_at"].notna() if "sql_at" in M else pd.Series(False, index=M.index)
    k["mql_to_sql_rate"] = float(sql.mean()) if len(M) else math.nan
    S = L[L["sql_at"].notna()] if "sql_at" in L else L.iloc[:0]
    O = L[L["opportunity_at"].notna()] if "opportunity_at" in L else L.iloc[:0]
    k["sql_per_week"] = len(S) / weeks
    k["sql_to_opportunity_rate"] = len(S[S["opportunity_at"].notna()]) / len(S) if len(S) else math.nan
    C = O[O["closed_at"].notna()] if "closed_at" in O else O.iloc[:0]
    k["win_rate"] = float((C["outcome"] == "won").mean()) if len(C) else math.nan
    k["pipeline_per_week_usd"] = float(O["amount"].sum()) / weeks if "amount" in O else math.nan
    k["deal_size_mean_usd"] = float(O["amount"].mean()) if "amount" in O and len(O) else math.nan
    k["won_per_week"] = float((C["outcome"] == "won").sum()) / weeks
    return k


def backtest(fitted: FittedFunnel, export, mapping=None, replications: int = 5, seed: int = 2026,
             n_jobs: int = 1) -> pd.DataFrame:
    """Simulate the fitted scenario over the history's period and put simulated (mean and
    95% t-interval over replications) and actual KPIs side by side.

    Both sides are measured by ``history_kpis`` on an export (the simulated leads through
    ``sim.output.crm_export``), after the scenario's warm-up. ``export`` is read again
    with ``mapping`` (default: the simulator's own mapping)."""
    from sim.experiment import run_scenario
    from sim.output import crm_export

    from common.paths import ROOT

    scn = fitted.scenario
    mapping = mapping or ROOT / "data" / "mappings" / "sim_leads.yaml"
    actual_df, _ = read_history(export, mapping, scn.calendar.timezone)
    start = pd.Timestamp(scn.calendar.start_date) + pd.Timedelta(days=scn.calendar.warmup_days)
    end = fitted.end
    actual = history_kpis(actual_df, start, end)
    res = run_scenario(scn, replications=replications, seed=seed, n_jobs=n_jobs, keep_tables=True, progress=False)
    sims = []
    for _, leads in res.leads.groupby("replication", sort=True):
        crm = to_local(crm_export(leads.drop(columns=["replication"]), scn), scn.calendar.timezone)
        sims.append(history_kpis(crm, start, end))
    sim = pd.DataFrame(sims)
    rows = []
    for kpi, a in actual.items():
        x = sim[kpi].dropna().to_numpy(float)
        m = float(x.mean()) if x.size else math.nan
        half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else math.nan
        rows.append(dict(kpi=kpi, actual=a, simulated=m, sim_ci_low=m - half, sim_ci_high=m + half,
                         ratio=m / a if a else math.nan))
    return pd.DataFrame(rows)
