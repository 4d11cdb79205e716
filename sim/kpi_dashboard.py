"""The shared dashboard on a team's own export: each KPI of ``sim.kpis`` with its 95%
interval from the export's own counts, overall or by group, and "not in this export"
(never 0) where the export lacks the columns a KPI needs.

The definitions and formulas are ``sim.kpis``' (``funnel_kpis``); this module only says
which an export can support and how sure each figure is.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from common.errors import LabError
from sim.kpis import KPIS, funnel_kpis, kpi, lead_segments
from sim.scenario import Scenario

# ---- the dashboard on an export: intervals, groups, what the export cannot show ------------------
#: The lead-table columns each KPI needs; a KPI whose columns an export lacks is shown as
#: "not in this export", never as 0.
_SCENARIO_COST = "(team cost: the scenario's, not the export's)"
KPI_NEEDS = {
    "mql_count": ("mql_at",), "mql_per_week": ("mql_at",), "hot_share": ("band",), "hot_mql_count": ("mql_at", "band"),
    "hot_share_of_mql": ("mql_at", "band"), "untouched_share": ("mql_at", "first_response_at"),
    "sla_attainment_hot": ("mql_at", "first_response_at", "band"),
    "sla_attainment_mql": ("mql_at", "first_response_at", "band"), "sla_attainment": ("mql_at", "first_response_at"),
    "sql_count": ("mql_at", "sql_at"), "sql_per_week": ("mql_at", "sql_at"), "mql_to_sql_rate": ("mql_at", "sql_at"),
    "sal_acceptance_rate": ("mql_at", "sal_at"), "disposition_mean_days": ("handoff_at", "decided_at"),
    "disposition_within_target_share": ("handoff_at", "decided_at"),
    "opportunity_count": ("sql_at", "opportunity_at"), "opportunity_per_week": ("sql_at", "opportunity_at"),
    "sql_to_opportunity_rate": ("sql_at", "opportunity_at"), "days_mql_to_sql": ("mql_at", "sql_at"),
    "days_sql_to_opportunity": ("sql_at", "opportunity_at"),
    "days_opportunity_to_close": ("opportunity_at", "closed_at"), "won_count": ("opportunity_at", "closed_at", "outcome"),
    "won_per_week": ("opportunity_at", "closed_at", "outcome"), "win_rate": ("opportunity_at", "closed_at", "outcome"),
    "no_decision_rate": ("opportunity_at", "closed_at", "outcome"), "pipeline_usd": ("opportunity_at", "amount"),
    "pipeline_per_week_usd": ("opportunity_at", "amount"), "deal_size_mean_usd": ("opportunity_at", "amount"),
    "revenue_won_usd": ("opportunity_at", "amount", "outcome"), "expected_revenue_usd": ("opportunity_at", "amount"),
    "pipeline_coverage": ("opportunity_at", "amount"), "marketing_spend_usd": ("channel",),
    "marketing_roi": ("channel", "opportunity_at", "amount"),
    # Costs come from the scenario, not the export: an export cannot show them.
    **{n: (_SCENARIO_COST,) for n in ("team_cost_usd", "net_value_usd", "team_cost_per_quarter_usd",
                                      "net_value_per_quarter_usd")},
    **{n: ("opportunity_at", "amount") for n in ("gross_profit_usd", "gross_profit_per_quarter_usd",
                                                 "pipeline_per_quarter_usd", "expected_revenue_per_quarter_usd")},
    "revenue_won_per_quarter_usd": ("opportunity_at", "amount", "outcome"),
    "marketing_spend_per_quarter_usd": ("channel",),
}
NOT_IN_EXPORT = "not in this export"
_COUNT_OF = {"leads_per_week": "lead_count", "mql_per_week": "mql_count", "sql_per_week": "sql_count",
             "won_per_week": "won_count", "opportunity_per_week": "opportunity_count"}
_DENOMINATOR = {"hot_share": "lead_count", "hot_share_of_mql": "mql_count", "mql_to_sql_rate": "mql_count",
                "sql_to_opportunity_rate": "sql_count"}


def kpi_supported(leads: pd.DataFrame, name: str) -> bool:
    """Whether ``leads`` has (and fills) every column KPI ``name`` needs."""
    base = re.sub(r"^(rejection_share|win_rate_channel|deal_size_mean_usd)_.+$", r"\1", name)
    needs = KPI_NEEDS.get(name) or KPI_NEEDS.get(base) or (
        ("mql_at", "first_response_at") if name.startswith(("response_", "within_")) else
        ("rejection_reason",) if name.startswith("rejection_share") else
        ("opportunity_at", "closed_at", "outcome") if name.startswith("win_rate") else ())
    return all(c in leads and leads[c].notna().any() for c in needs)


def kpi_interval(name: str, k: dict, weeks: float, evidence: dict | None = None) -> tuple[float, float]:
    """95% interval of KPI ``name`` from one export's KPIs ``k`` (``common.intervals``):
    exact Poisson for counts and counts per week, Wilson for shares, order statistics for
    response-time quantiles, t for means, a compound-Poisson sum for pipeline and revenue
    (``evidence``: what ``funnel_kpis`` computed each KPI from); NaN where neither gives
    one (cost and net value, which come from the scenario, and ratios of two sums)."""
    from common.intervals import (mean_interval, poisson_rate_interval, poisson_sum_interval, proportion_interval,
                                  quantile_interval)

    v = k.get(name, float("nan"))
    if v is None or not np.isfinite(v):
        return float("nan"), float("nan")
    how = (evidence or {}).get(name)
    if how is not None and name not in _COUNT_OF:
        if how[0] == "share" and how[2] > 0:
            _, lo, hi = proportion_interval(int(how[1]), int(how[2]))
            return lo, hi
        if how[0] == "mean":
            _, lo, hi, _ = mean_interval(how[1])
            return lo, hi
        if how[0] == "quantile":
            x = np.asarray(how[1], dtype=float)
            _, lo, hi = quantile_interval(x[~np.isnan(x)], how[2])
            return lo, hi
        if how[0] == "sum" and how[2] > 0:
            _, lo, hi = poisson_sum_interval(how[1], how[2])
            return lo, hi
    if name in _COUNT_OF and weeks > 0:
        _, lo, hi = poisson_rate_interval(int(k[_COUNT_OF[name]]), weeks)
        return lo, hi
    if name.endswith("_count"):
        _, lo, hi = poisson_rate_interval(int(v), 1.0)
        return lo, hi
    n = None
    if name in _DENOMINATOR:
        n = k.get(_DENOMINATOR[name])
    elif name == "win_rate" and v > 0:
        n = round(k["won_count"] / v)
    if n:
        _, lo, hi = proportion_interval(round(v * n), int(n))
        return lo, hi
    return float("nan"), float("nan")


def implied_stages(frame: pd.DataFrame) -> pd.DataFrame:
    """A later stage implies the earlier ones (an opportunity was an SQL and an MQL): an
    export holding only opportunities gets those dates filled for counting; the KPIs
    that need the real earlier dates stay "not in this export" (``kpi_supported`` looks
    at the export itself)."""
    out = frame.copy()
    later = None
    for col in ("opportunity_at", "sql_at", "mql_at"):
        if col not in out or out[col].isna().all():
            if later is not None:
                out[col] = out[later]
            continue
        if later is not None:
            out[col] = out[col].fillna(out[later])
        later = col
    return out


def dashboard(leads: pd.DataFrame, scn: Scenario, start=None, end=None, by: str | None = None,
              names=None) -> pd.DataFrame:
    """The shared dashboard on an export (or a run's CRM table): one row per (group, KPI)
    with ``value``, ``ci_low``, ``ci_high`` and ``status`` ("ok" or "not in this
    export": the value is then NaN, never 0). ``by``: None (overall), ``"week"`` (leads
    by creation week), ``"segment"`` (employee-count segment) or a lead-table column
    (``channel``, ``industry``...). Every value comes from ``funnel_kpis``."""
    cal = scn.calendar
    origin = pd.Timestamp(cal.start_date)
    start = pd.Timestamp(start) if start is not None else origin + pd.Timedelta(days=cal.warmup_days)
    end = pd.Timestamp(end) if end is not None else origin + pd.Timedelta(days=cal.horizon_days)
    groups: list[tuple[str, pd.Series, pd.Timestamp, pd.Timestamp]] = []
    if by is None:
        groups.append(("all", pd.Series(True, index=leads.index), start, end))
    elif by == "week":
        w0 = start.normalize() - pd.Timedelta(days=start.dayofweek)
        while w0 < end:
            w1 = w0 + pd.Timedelta(days=7)
            groups.append((f"{w0:%Y-%m-%d}", pd.Series(True, index=leads.index), max(w0, start), min(w1, end)))
            w0 = w1
    else:
        if by == "segment":
            key = pd.Series(lead_segments(leads, np.ones(len(leads), bool)), index=leads.index)
        elif by in leads:
            key = leads[by].astype(object).fillna("(missing)")
        else:
            raise LabError(f"dashboard: by: no column {by!r} in the lead table to group by (rule: 'week', "
                           f"'segment' or a column of the export); got {by!r}")
        for g in sorted(key.unique(), key=str):
            groups.append((str(g), key == g, start, end))
    rows = []
    for label, mask, s, e in groups:
        sub = implied_stages(leads[mask.to_numpy()])
        evidence: dict = {}
        k = funnel_kpis(sub, None, scn, s, e, evidence=evidence)
        weeks = (e - s) / pd.Timedelta(days=7)
        for name in names or list(KPIS):
            if name not in k:
                continue
            ok = kpi_supported(leads, name)
            lo, hi = kpi_interval(name, k, weeks, evidence) if ok else (float("nan"), float("nan"))
            rows.append(dict(by=by or "all", group=label, kpi=name, value=k[name] if ok else float("nan"),
                             ci_low=lo, ci_high=hi, unit=kpi(name).unit, status="ok" if ok else NOT_IN_EXPORT))
    return pd.DataFrame(rows)
