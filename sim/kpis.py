"""The shared dashboard (DOMAIN.md section 5), computed per replication, and summarised
over replications with 95% confidence intervals.

Only leads created after the warm-up count (the queue starts empty; see Law & Kelton,
*Simulation Modeling and Analysis*, on initial-transient bias). Rates are cohort rates:
of the leads that reached a stage after the warm-up, the share that reached the next one
before the horizon.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from sim.calendar import BusinessClock
from sim.scenario import REASONS, SEGMENTS, Scenario

DAY = 1440.0


def _rate(num, den) -> float:
    return float(num) / float(den) if den else float("nan")


def _mean(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(x.mean()) if x.size else float("nan")


def _q(x, q) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.quantile(x, q)) if x.size else float("nan")


def replication_kpis(scn: Scenario, rep, clock: BusinessClock) -> dict[str, float]:
    """Every dashboard KPI for one replication (``sim.model.Replication``)."""
    cal = scn.calendar
    warm = cal.warmup_days * DAY
    horizon = cal.horizon_days * DAY
    weeks = (horizon - warm) / (7 * DAY)
    L = rep.leads[rep.leads["t_created"] >= warm]
    E = rep.episodes[rep.episodes["entered"] >= warm]
    k: dict[str, float] = {}

    k["leads_per_week"] = len(L) / weeks
    k["hot_share"] = _rate((L["band"] == "hot").sum(), len(L))
    mql = L[L["t_mql"].notna()]
    k["mql_volume"] = float(len(mql))
    k["mql_per_week"] = len(mql) / weeks
    k["hot_volume"] = float((mql["band"] == "hot").sum())

    # Response time: first touch of each pass through the queue.
    touched = E[E["first_touch"].notna()]
    rt = touched["response_minutes"].to_numpy()
    rb = touched["response_business_minutes"].to_numpy()
    k["response_mean_minutes"] = _mean(rt)
    k["response_median_minutes"] = _q(rt, 0.5)
    k["response_p90_minutes"] = _q(rt, 0.9)
    k["response_p95_minutes"] = _q(rt, 0.95)
    k["response_mean_business_minutes"] = _mean(rb)
    k["response_median_business_minutes"] = _q(rb, 0.5)
    k["response_p90_business_minutes"] = _q(rb, 0.9)
    k["untouched_share"] = _rate(E["first_touch"].isna().sum(), len(E))

    # SLA attainment per band, on the SLA clock. A pass still waiting at the horizon
    # counts only if its deadline had already passed (right censoring).
    business = scn.sla.clock == "business" and not cal.always_open
    met_all = dead_all = 0
    for band, sla in (("hot", scn.sla.hot_minutes), ("mql", scn.sla.mql_minutes)):
        b = E[E["band"] == band]
        resp = (b["response_business_minutes"] if business else b["response_minutes"]).to_numpy()
        entered = b["entered"].to_numpy()
        deadline = clock.wall_time_after(entered, sla) if business else entered + sla
        done = ~np.isnan(resp)
        counted = done | (deadline < horizon)
        met = done & (resp <= sla)
        k[f"sla_attainment_{band}"] = _rate(met.sum(), counted.sum())
        met_all += met.sum()
        dead_all += counted.sum()
    k["sla_attainment"] = _rate(met_all, dead_all)
    k["within_15_minutes_share"] = _rate((rt <= 15).sum(), len(E))
    k["within_24_hours_share"] = _rate((rt <= 1440).sum(), len(E))

    # Funnel conversion (cohorts after the warm-up).
    sql = mql["t_sql"].notna()
    k["sql_count"] = float(sql.sum())
    k["mql_to_sql_rate"] = _rate(sql.sum(), len(mql))
    decided = mql["t_decided"].notna() & (mql["t_decided"] < horizon)
    accepted = mql["t_sal"].notna()
    k["sal_acceptance_rate"] = _rate(accepted.sum(), decided.sum())
    disp = (mql.loc[decided, "t_decided"] - mql.loc[decided, "t_handoff"]).to_numpy() / DAY
    k["disposition_mean_days"] = _mean(disp)
    k["disposition_within_target_share"] = _rate((disp <= scn.sla.disposition_target_days).sum(), disp.size)
    rej = mql.loc[decided & ~accepted, "rejection_reason"]
    for r in REASONS:
        k[f"rejection_share_{r}"] = _rate((rej == r).sum(), len(rej))
    S = L[L["t_sql"].notna()]
    opp = S["t_opportunity"].notna()
    k["opportunity_count"] = float(opp.sum())
    k["sql_to_opportunity_rate"] = _rate(opp.sum(), len(S))
    O = L[L["t_opportunity"].notna()]
    closed = O[O["t_closed"].notna()]
    k["won_count"] = float((closed["outcome"] == "won").sum())
    k["win_rate"] = _rate((closed["outcome"] == "won").sum(), len(closed))
    k["no_decision_rate"] = _rate((closed["outcome"] == "no_decision").sum(), len(closed))
    for s in SEGMENTS:
        c = closed[closed["segment"] == s]
        k[f"win_rate_{s}"] = _rate((c["outcome"] == "won").sum(), len(c))
    for ch in scn.arrivals.channels:
        c = closed[closed["channel"] == ch]
        k[f"win_rate_{ch}"] = _rate((c["outcome"] == "won").sum(), len(c))
        o = O[O["channel"] == ch]
        k[f"deal_size_{ch}"] = _mean(o["amount"])

    # Stage velocity (days).
    k["days_mql_to_sql"] = _mean((S["t_sql"] - S["t_mql"]) / DAY)
    k["days_sql_to_opportunity"] = _mean((O["t_opportunity"] - O["t_sql"]) / DAY)
    k["days_opportunity_to_close"] = _mean((closed["t_closed"] - closed["t_opportunity"]) / DAY)

    # Money.
    pipeline = float(O["amount"].sum())
    won = float(closed.loc[closed["outcome"] == "won", "amount"].sum())
    cv = scn.conversion
    p_win = O["segment"].map(cv.win_prob).astype(float)
    k["pipeline_usd"] = pipeline
    k["pipeline_per_week_usd"] = pipeline / weeks
    k["deal_size_mean_usd"] = _mean(O["amount"])
    k["revenue_won_usd"] = won
    k["expected_revenue_usd"] = float((O["amount"] * p_win).sum())
    quarter_target = scn.economics.quarterly_revenue_target * weeks / 13.0
    k["pipeline_coverage"] = pipeline / quarter_target
    spend = float(L["cost"].sum())
    k["marketing_spend_usd"] = spend
    k["marketing_roi"] = _rate(k["expected_revenue_usd"], spend)

    # The team.
    for name, p in rep.pools.items():
        k[f"{name}_utilisation"] = _rate(p["busy_minutes"], p["duty_minutes"])
        k[f"{name}_mean_queue"] = float(p["mean_queue"])
        k[f"{name}_max_queue"] = float(p["max_queue"])
        k[f"{name}_max_open_per_person"] = float(p["max_open_per_person"])
    k["reassigned"] = float(rep.reassigned)
    return k


# Headline KPIs, in the order reports show them.
HEADLINE = [
    "mql_per_week", "response_median_minutes", "response_p90_minutes", "sla_attainment_hot",
    "sla_attainment_mql", "mql_to_sql_rate", "sql_count", "opportunity_count", "pipeline_usd",
    "won_count", "expected_revenue_usd", "pipeline_coverage", "sdr_utilisation",
]


def summarise(kpis: pd.DataFrame, by: str | list[str] = "policy", level: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval over replications, one row per (group, KPI).

    ``kpis`` has one row per replication; the interval is mean +- t(n-1) s / sqrt(n)."""
    by = [by] if isinstance(by, str) else list(by)
    value_cols = [c for c in kpis.columns if c not in by + ["replication", "seed"]]
    long = kpis.melt(id_vars=by, value_vars=value_cols, var_name="kpi", value_name="value")
    g = long.groupby(by + ["kpi"], sort=False)["value"]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    t = stats.t.ppf(0.5 + level / 2, np.maximum(out["n"] - 1, 1))
    half = t * out["sd"].fillna(0.0) / np.sqrt(out["n"].clip(lower=1))
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out
