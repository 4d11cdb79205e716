"""The lab's KPI vocabulary: every figure of the shared dashboard (DOMAIN.md section 5),
defined once and computed by one function from a CRM-shaped lead table and, when there
is one, its event log - for a real export and for a simulated run alike.

``funnel_kpis(leads, events, scenario, start, end)`` reads lab-named columns (what
``calibration.importer`` produces from an export, and what ``sim.crm`` writes for a run):
``lead_id, created_at, channel, employee_count, band, mql_at, first_response_at,
handoff_at, decided_at, sal_at, sql_at, opportunity_at, closed_at, outcome,
rejection_reason, amount``. Only ``created_at`` is required; a KPI whose columns are
missing is NaN. The event log (``lead_id, stage_change, at``, optional ``routed_band``)
adds every later pass of a lead through the SDR queue (nurture re-entries, recycles);
without it each MQL counts once, at its first pass.

Which leads count (the cohort rules, the same for both sources):

- the window is ``[start, end)``; for a run, ``start`` is the end of the warm-up (the
  queue starts empty: Law & Kelton, *Simulation Modeling and Analysis*, on
  initial-transient bias) and ``end`` the horizon;
- volume, conversion, money and velocity KPIs follow the leads *created* in the window;
  a stage reached at or after ``end`` has not happened yet (right censoring);
- response-time and SLA KPIs follow the *passes* that entered the queue in the window
  (a lead created before the window whose re-entry falls inside it counts there); a pass
  still waiting at ``end`` counts for a target only once its deadline has passed;
- team KPIs (utilisation, queue lengths) are time averages over the same window,
  measured inside the simulator (an export has no shift log).

``KPIS`` is the data dictionary (name, unit, meaning); ``data_dictionary`` writes it
next to every run's tables. ``summarise`` gives the mean and 95% interval over
replications (``common.intervals``), with each interval cut to what the KPI can take.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.intervals import summarise_means
from sim.calendar import BusinessClock, SlaClocks
from sim.economics import QUARTER_WEEKS, money_kpis
from sim.scenario import REASONS, SEGMENTS, Scenario

DAY = 1440.0
WEEK = 7 * DAY
MINUTE = pd.Timedelta(minutes=1)
STAGE_TIMES = ("created_at", "first_response_at", "mql_at", "handoff_at", "decided_at", "sal_at", "sql_at",
               "opportunity_at", "closed_at")
#: The lead columns ``funnel_kpis`` reads.
KPI_LEAD_COLUMNS = ("lead_id", "channel", "employee_count", "region", "band", "outcome", "rejection_reason",
                    "amount", "owner_id") + STAGE_TIMES
RESPONSE_TARGETS_MINUTES = {"15_minutes": 15.0, "1_hour": 60.0, "24_hours": 1440.0}


# ---- the vocabulary -------------------------------------------------------------------------
@dataclass(frozen=True)
class KPI:
    """One dashboard figure: ``name`` carries its unit; ``kind`` sets the bounds of its
    interval and how reports print it; ``meaning`` says what it counts."""

    name: str
    unit: str
    kind: str  # share | count | rate | money | net_money (can be negative) | minutes | days | ratio
    label: str
    meaning: str

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        if self.kind == "share":
            return 0.0, 1.0
        return (0.0, None) if self.kind in ("count", "rate", "money", "minutes", "days", "ratio") else (None, None)


_k = KPI  # short, for the table below


_LEADS = "leads created in the window"
_MQLS = "MQLs among " + _LEADS
_PASSES = "passes through the SDR queue that entered in the window"
KPIS: dict[str, KPI] = {k.name: k for k in [
    _k("leads_per_week", "leads/week", "rate", "leads per week", f"{_LEADS} / weeks in the window"),
    _k("lead_count", "leads", "count", "leads", _LEADS),
    _k("hot_share", "share", "share", "Hot share of leads", f"{_LEADS} scored Hot at creation / all of them"),
    _k("mql_count", "MQLs", "count", "MQLs", f"{_LEADS} that became an MQL before the window's end"),
    _k("mql_per_week", "MQLs/week", "rate", "MQLs per week", "mql_count / weeks in the window"),
    _k("hot_mql_count", "MQLs", "count", "Hot MQLs", "MQLs scored Hot at creation"),
    _k("hot_share_of_mql", "share", "share", "Hot share of MQLs", "hot_mql_count / mql_count"),
    _k("response_mean_minutes", "minutes", "minutes", "mean response time",
       f"wall-clock minutes from entering the queue to the first touch, {_PASSES}, touched ones"),
    _k("response_median_minutes", "minutes", "minutes", "median response time", "median of the same"),
    _k("response_p90_minutes", "minutes", "minutes", "90th-percentile response time", "90th percentile of the same"),
    _k("response_p95_minutes", "minutes", "minutes", "95th-percentile response time", "95th percentile of the same"),
    _k("response_mean_business_minutes", "business minutes", "minutes", "mean response time (business hours)",
       "the response time counted on the office's working minutes"),
    _k("response_median_business_minutes", "business minutes", "minutes", "median response time (business hours)",
       "median of the same"),
    _k("response_p90_business_minutes", "business minutes", "minutes",
       "90th-percentile response time (business hours)", "90th percentile of the same"),
    _k("untouched_share", "share", "share", "passes never touched", f"{_PASSES} with no touch by the window's end"),
    _k("sla_attainment_hot", "share", "share", "SLA attainment, Hot leads",
       "Hot passes first touched within the Hot SLA (on the SLA clock) / Hot passes touched or past their deadline"),
    _k("sla_attainment_mql", "share", "share", "SLA attainment, MQLs", "the same for MQL passes and the MQL SLA"),
    _k("sla_attainment", "share", "share", "SLA attainment (all routed leads)", "the same over Hot and MQL passes"),
    *[_k(f"within_{t}_share", "share", "share", f"answered within {t.replace('_', ' ')}",
         f"passes first touched within {m:g} wall-clock minutes / passes touched or waiting longer than that")
      for t, m in RESPONSE_TARGETS_MINUTES.items()],
    _k("sql_count", "SQLs", "count", "SQLs", "MQLs that became an SQL before the window's end"),
    _k("sql_per_week", "SQLs/week", "rate", "SQLs per week", "sql_count / weeks in the window"),
    _k("mql_to_sql_rate", "share", "share", "MQL -> SQL rate", "sql_count / mql_count"),
    _k("sal_acceptance_rate", "share", "share", "sales acceptance rate",
       "MQLs accepted by sales / MQLs sales decided on before the window's end"),
    _k("disposition_mean_days", "days", "days", "mean disposition time",
       "days from hand-off to sales' decision, decided MQLs (needs handoff_at and decided_at)"),
    _k("disposition_within_target_share", "share", "share", "dispositions within target",
       "decided MQLs whose disposition took at most the scenario's target days"),
    *[_k(f"rejection_share_{r}", "share", "share", f"rejections: {r.replace('_', ' ')}",
         f"MQLs rejected by sales for '{r}' / MQLs rejected") for r in REASONS],
    _k("opportunity_count", "opportunities", "count", "opportunities", "SQLs that became an opportunity"),
    _k("opportunity_per_week", "opportunities/week", "rate", "opportunities per week", "opportunity_count / weeks"),
    _k("sql_to_opportunity_rate", "share", "share", "SQL -> opportunity rate", "opportunity_count / sql_count"),
    _k("won_count", "deals", "count", "deals won", "opportunities closed won before the window's end"),
    _k("won_per_week", "deals/week", "rate", "deals won per week", "won_count / weeks in the window"),
    _k("win_rate", "share", "share", "win rate", "won / closed opportunities (open ones are not counted)"),
    _k("no_decision_rate", "share", "share", "no-decision rate", "closed with no decision / closed opportunities"),
    *[_k(f"win_rate_{s}", "share", "share", f"win rate, {s}", f"win rate of {s} accounts") for s in SEGMENTS],
    _k("days_mql_to_sql", "days", "days", "days MQL -> SQL", "mean days from MQL to SQL, SQLs"),
    _k("days_sql_to_opportunity", "days", "days", "days SQL -> opportunity", "mean days, opportunities"),
    _k("days_opportunity_to_close", "days", "days", "days opportunity -> close", "mean days, closed opportunities"),
    _k("pipeline_usd", "USD", "money", "pipeline created", "sum of the amounts of the opportunities"),
    _k("pipeline_per_week_usd", "USD/week", "money", "pipeline per week", "pipeline_usd / weeks in the window"),
    _k("deal_size_mean_usd", "USD", "money", "average deal size", "mean amount of the opportunities"),
    _k("revenue_won_usd", "USD", "money", "revenue won", "sum of the amounts of the won deals"),
    _k("expected_revenue_usd", "USD", "money", "expected revenue",
       "sum of opportunity amounts times the scenario's win odds of their segment (open deals included)"),
    _k("pipeline_coverage", "x quarterly target", "ratio", "pipeline coverage",
       "pipeline_usd / the scenario's quarterly revenue target scaled to the window's weeks"),
    _k("marketing_spend_usd", "USD", "money", "marketing spend", "leads times the scenario's cost per lead of their channel"),
    _k("marketing_roi", "USD per USD", "ratio", "marketing ROI", "expected_revenue_usd / marketing_spend_usd"),
    _k("reassigned_count", "passes", "count", "reassigned leads", "leads taken from a rep who missed the SLA"),
    _k("breach_count", "passes", "count", "SLA breaches acted on",
       "first touches still waiting at their SLA deadline under routing.on_breach (alert, escalate or reassign), "
       "over the run"),
    _k("escalated_count", "passes", "count", "escalated leads",
       "breached first touches moved to another team (routing.on_breach = escalate), over the run"),
    _k("overflow_utilisation", "share", "share", "overflow team utilisation",
       "busy minutes / on-duty minutes of the overflow team inside the window"),
    # Cost and value (sim.economics, the one home of these formulas).
    _k("team_cost_usd", "USD", "money", "team cost",
       "loaded cost of the SDRs (shift premiums included), overflow pool and AEs over the window"),
    _k("gross_profit_usd", "USD", "money", "gross profit", "gross margin x expected_revenue_usd"),
    _k("net_value_usd", "USD", "net_money", "net value",
       "gross_profit_usd - team_cost_usd - marketing_spend_usd over the window"),
    *[_k(f"{n}_per_quarter_usd", "USD/quarter", "net_money" if n == "net_value" else "money", f"{lab} per quarter",
         f"{n}_usd x 13 / weeks in the window") for n, lab in (
        ("pipeline", "pipeline created"), ("revenue_won", "revenue won"), ("expected_revenue", "expected revenue"),
        ("marketing_spend", "marketing spend"), ("team_cost", "team cost"), ("gross_profit", "gross profit"),
        ("net_value", "net value"))],
]}

# Per-channel and per-team KPIs: the names depend on the scenario.
_PATTERNS = [
    (re.compile(r"win_rate_channel_(.+)"), lambda m: KPI(m.group(0), "share", "share", f"win rate, {m.group(1)}",
                                                         f"win rate of leads from the '{m.group(1)}' channel")),
    (re.compile(r"deal_size_mean_usd_(.+)"), lambda m: KPI(m.group(0), "USD", "money", f"deal size, {m.group(1)}",
                                                           f"mean opportunity amount, '{m.group(1)}' channel")),
    (re.compile(r"(sdr|ae)_utilisation"), lambda m: KPI(m.group(0), "share", "share", f"{m.group(1).upper()} utilisation",
                                                        "busy minutes / on-duty minutes inside the window")),
    (re.compile(r"(sdr|ae)_mean_waiting_first_touch"), lambda m: KPI(
        m.group(0), "leads", "count", f"{m.group(1).upper()} queue, leads waiting for a first touch",
        "time-average number of leads of the pool's queue waiting for their first touch, inside the window")),
    (re.compile(r"(sdr|ae)_mean_waiting_attempts"), lambda m: KPI(
        m.group(0), "attempts", "count", f"{m.group(1).upper()} queue, attempts waiting",
        "time-average number of due attempts (first touches and follow-ups) waiting for a rep, inside the window")),
    (re.compile(r"(sdr|ae)_max_waiting_(first_touch|attempts)"), lambda m: KPI(
        m.group(0), "leads" if m.group(2) == "first_touch" else "attempts", "count",
        f"{m.group(1).upper()} queue, most waiting", "largest number waiting at once inside the window")),
    (re.compile(r"(sdr|ae)_max_open_per_person"), lambda m: KPI(
        m.group(0), "leads", "count", f"{m.group(1).upper()} most open leads per person",
        "largest number of open leads one rep held at once")),
]


def kpi(name: str) -> KPI:
    """The definition of KPI ``name`` (a ``LabError``-free fallback for unknown names:
    a plain number described by its name)."""
    if name in KPIS:
        return KPIS[name]
    for pattern, make in _PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            return make(m)
    return KPI(name, "", "number", name.replace("_", " "), "")


def data_dictionary(names) -> pd.DataFrame:
    """``name, unit, meaning`` of each KPI column in ``names`` (other columns skipped)."""
    rows = [kpi(n) for n in names if n not in ("policy", "replication", "seed")]
    return pd.DataFrame({"name": [k.name for k in rows], "unit": [k.unit for k in rows],
                         "meaning": [k.meaning for k in rows]})


# ---- computing them -------------------------------------------------------------------------
def _rate(num, den) -> float:
    return float(num) / float(den) if den else float("nan")


def _mean(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(x.mean()) if x.size else float("nan")


def _q(x, q) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.quantile(x, q)) if x.size else float("nan")


def _local(s: pd.Series, tz: str) -> pd.Series:
    """Naive local wall-clock times (the simulator's clock) from naive or aware dates."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert(tz).dt.tz_localize(None)
    return pd.to_datetime(s)


def run_minutes(s: pd.Series, scn: Scenario) -> np.ndarray:
    """Dates as minutes since 00:00 local of ``calendar.start_date`` (NaT -> NaN)."""
    origin = pd.Timestamp(scn.calendar.start_date)
    return ((_local(s, scn.calendar.timezone) - origin) / MINUTE).to_numpy(dtype=float, na_value=np.nan)


def _passes(leads, events, scn, lead_band, who=None):
    """(entered, first_touch, routed band, owner, group) of every pass through the queue,
    times in run minutes. ``who``: per lead (rows of ``leads``), the SDR index of its
    first pass's owner and its routing group (-1: none); then ``owner`` (from the event
    log's ``owner_id`` on first touches when it has one, else the lead's owner for its
    first pass) and ``group`` are given per pass, else they are None."""
    if events is not None and len(events) and (events["stage_change"] == "first_touch").any():
        ev = events[events["stage_change"].isin(["mql", "first_touch"])]
        t = run_minutes(ev["at"], scn)
        band = ev["routed_band"] if "routed_band" in ev else ev["lead_id"].map(
            pd.Series(lead_band, index=leads["lead_id"].to_numpy()))
        cols = {"lead": ev["lead_id"].to_numpy(), "kind": ev["stage_change"].to_numpy(), "t": t,
                "band": np.asarray(band, dtype=object)}
        if who is not None:
            cols["row"] = _lead_rows(ev["lead_id"], leads)
            if "owner_id" in ev:
                cols["owner"] = owner_index(ev["owner_id"], scn)
        df = pd.DataFrame(cols)
        df = df.sort_values(["lead", "t"], kind="stable")
        df["k"] = df.groupby(["lead", "kind"], sort=False).cumcount()
        entered = df[df["kind"] == "mql"].drop(columns="owner", errors="ignore")
        touch = df[df["kind"] == "first_touch"][["lead", "k", "t", *(["owner"] if "owner" in df else [])]]
        p = entered.merge(touch.rename(columns={"t": "touch"}), on=["lead", "k"], how="left")
        out = p["t"].to_numpy(float), p["touch"].to_numpy(float), p["band"].to_numpy(object)
        if who is None:
            return (*out, None, None)
        row = p["row"].to_numpy(float)
        known = ~np.isnan(row)
        row = np.where(known, row, 0).astype(np.int64)
        group = np.where(known, who[1][row], -1)
        if "owner" in p:
            owner = p["owner"].fillna(-1).to_numpy().astype(np.int64)
        else:  # the lead table knows the owner of the first pass only
            owner = np.where(known & (p["k"].to_numpy() == 0), who[0][row], -1)
        return (*out, owner, group)
    if "mql_at" not in leads:
        empty = np.array([], dtype=np.int64) if who is not None else None
        return np.array([]), np.array([]), np.array([], dtype=object), empty, empty
    entered = run_minutes(leads["mql_at"], scn)
    touch = run_minutes(leads["first_response_at"], scn) if "first_response_at" in leads \
        else np.full(len(leads), np.nan)
    m = ~np.isnan(entered)
    band = np.asarray(lead_band, dtype=object)[m]
    if who is None:
        return entered[m], touch[m], band, None, None
    return entered[m], touch[m], band, who[0][m], who[1][m]


def _lead_rows(lead_id: pd.Series, leads: pd.DataFrame) -> np.ndarray:
    """Row of ``leads`` of each event's lead (NaN when it has none). A run's pass events
    (``sim.crm.pass_events``) name leads by row number; an export's by ``lead_id``."""
    if pd.api.types.is_integer_dtype(lead_id) and not pd.api.types.is_integer_dtype(leads["lead_id"]):
        row = lead_id.to_numpy(dtype=float)
        return np.where((row >= 0) & (row < len(leads)), row, np.nan)
    ids = leads["lead_id"].reset_index(drop=True).drop_duplicates()
    return lead_id.map(pd.Series(ids.index.to_numpy(), index=ids.to_numpy())).to_numpy(dtype=float, na_value=np.nan)


def owner_index(owner_id, scn: Scenario) -> np.ndarray:
    """SDR index of each owner id as the simulator numbers its reps (``SDR00``, ``SDR01``,
    ... through the shifts in order; ``sim.model``), -1 for a missing id or one that is not
    an SDR of the scenario (a real export's owners: their hours are unknown, and their
    passes count on their group's or the team's hours)."""
    num = pd.Series(owner_id, dtype=object).str.extract(r"^SDR(\d+)$", expand=False)
    k = pd.to_numeric(num, errors="coerce").to_numpy(dtype=float)
    ok = ~np.isnan(k) & (k < scn.team.sdrs)
    return np.where(ok, np.nan_to_num(k, nan=-1.0), -1.0).astype(np.int64)


def _who(leads: pd.DataFrame, scn: Scenario, clocks: SlaClocks):
    """Per lead: the SDR index of its first pass's owner and its routing group, when the
    SLA clocks tell passes apart by them (``sim.calendar.SlaClocks``); else None."""
    per_owner = clocks.workers is not None and clocks.round_robin
    if not (per_owner or clocks.groups is not None):
        return None
    n = len(leads)
    owner = owner_index(leads["owner_id"], scn) if per_owner and "owner_id" in leads else np.full(n, -1)
    group = None
    if clocks.groups is not None:
        region = leads["region"].to_numpy(object) if "region" in leads else np.full(n, None, dtype=object)
        group = scn.lead_groups(region, lead_segments(leads, np.ones(n, dtype=bool)))
    return owner, group if group is not None else np.full(n, -1)


def funnel_kpis(leads: pd.DataFrame, events: pd.DataFrame | None, scn: Scenario,
                start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                clock: BusinessClock | None = None, evidence: dict | None = None) -> dict[str, float]:
    """Every funnel KPI of ``KPIS`` for the window ``[start, end)`` (default: the
    scenario's warm-up end and horizon). See the module docstring for the cohort rules.

    Parameters
    ----------
    leads : one row per lead, lab column names, dates naive local or time-zone aware.
    events : the event log (``lead_id, stage_change, at[, routed_band, owner_id]``) or None;
        ``owner_id`` on a first touch names the rep who made it (SLAs on the owner's hours).
    scn : the scenario whose calendar (time zone, business hours), SLA targets, channel
        costs, win odds and revenue target the KPIs use.
    evidence : if given, filled with what each KPI was computed from, for its interval
        (``sim.kpi_dashboard.kpi_interval``): ``("share", hits, trials)``, ``("mean",
        values)``, ``("quantile", values, q)`` or ``("sum", values, exposure)``.
    """
    ev = evidence if evidence is not None else {}
    k: dict[str, float] = {}

    def share(name: str, hits, trials):  # a share KPI and what its interval needs
        k[name] = _rate(hits, trials)
        ev[name] = ("share", hits, trials)

    def mean(name: str, x):
        k[name] = _mean(x)
        ev[name] = ("mean", x)

    cal = scn.calendar
    # Business minutes on each pass's SLA clock: the office's, or with sla.schedule: owner
    # its owner's, its routing group's or the team's hours (sim.calendar.SlaClocks).
    clocks = SlaClocks(scn, office=clock)
    origin = pd.Timestamp(cal.start_date)
    w0 = cal.warmup_days * DAY if start is None else (pd.Timestamp(start) - origin) / MINUTE
    w1 = cal.horizon_days * DAY if end is None else (pd.Timestamp(end) - origin) / MINUTE
    weeks = (w1 - w0) / WEEK
    T = {c: run_minutes(leads[c], scn) for c in STAGE_TIMES if c in leads}
    nan = np.full(len(leads), np.nan)
    created = T["created_at"]
    keep = (created >= w0) & (created < w1)
    t = {c: np.where(v < w1, v, np.nan)[keep] for c, v in T.items()}  # later than the window: not yet
    at = lambda c: t.get(c, nan[keep])  # noqa: E731
    col = lambda c, fill=None: (leads[c].to_numpy(object)[keep] if c in leads  # noqa: E731
                                else np.full(keep.sum(), fill, dtype=object))
    band = col("band")

    n = int(keep.sum())
    k["lead_count"] = float(n)
    k["leads_per_week"] = n / weeks
    k["hot_share"] = _rate((band == "hot").sum(), n)
    mql = ~np.isnan(at("mql_at"))
    k["mql_count"] = float(mql.sum())
    k["mql_per_week"] = mql.sum() / weeks
    k["hot_mql_count"] = float((mql & (band == "hot")).sum())
    k["hot_share_of_mql"] = _rate(k["hot_mql_count"], mql.sum())

    # Response: every pass through the queue that entered in the window.
    lead_band = np.where(leads["band"].to_numpy(object) == "hot", "hot", "mql") if "band" in leads \
        else np.full(len(leads), "mql", dtype=object)
    entered, touch, pband, owner, group = _passes(leads, events, scn, lead_band, _who(leads, scn, clocks))
    touch = np.where(touch < w1, touch, np.nan)
    inside = (entered >= w0) & (entered < w1)
    entered, touch, pband = entered[inside], touch[inside], pband[inside]
    done = ~np.isnan(touch)
    pick = lambda x, m: None if x is None else x[inside][m]  # noqa: E731  (owner, group of some passes)
    rt = (touch - entered)[done]
    rb = clocks.business_delay(entered[done], touch[done], pick(owner, done), pick(group, done))
    k["response_mean_minutes"] = _mean(rt)
    k["response_median_minutes"] = _q(rt, 0.5)
    k["response_p90_minutes"] = _q(rt, 0.9)
    k["response_p95_minutes"] = _q(rt, 0.95)
    k["response_mean_business_minutes"] = _mean(rb)
    k["response_median_business_minutes"] = _q(rb, 0.5)
    k["response_p90_business_minutes"] = _q(rb, 0.9)
    k["untouched_share"] = _rate((~done).sum(), entered.size)
    ev.update(response_mean_minutes=("mean", rt), response_mean_business_minutes=("mean", rb),
              untouched_share=("share", (~done).sum(), entered.size))
    for q, tag in ((0.5, "median"), (0.9, "p90"), (0.95, "p95")):
        ev[f"response_{tag}_minutes"] = ("quantile", rt, q)
        ev[f"response_{tag}_business_minutes"] = ("quantile", rb, q)

    # SLA attainment on the SLA clock; a pass still waiting counts once its deadline passed.
    business = scn.sla.clock == "business" and not cal.always_open
    resp_all = np.full(entered.size, np.nan)
    resp_all[done] = rb if business else rt
    met_all = counted_all = 0
    for b, sla in (("hot", scn.sla.hot_minutes), ("mql", scn.sla.mql_minutes)):
        m = pband == b
        # A pass not touched yet has no owner of its own (``owner`` is the rep who touched it).
        deadline = clocks.wall_time_after(entered[m], sla, pick(owner, m), pick(group, m)) if business \
            else entered[m] + sla
        counted = done[m] | (deadline < w1)
        met = done[m] & (resp_all[m] <= sla)
        share(f"sla_attainment_{b}", met.sum(), counted.sum())
        met_all += met.sum()
        counted_all += counted.sum()
    share("sla_attainment", met_all, counted_all)
    wall = touch - entered
    for name, minutes in RESPONSE_TARGETS_MINUTES.items():
        counted = done | (entered + minutes < w1)
        share(f"within_{name}_share", (done & (wall <= minutes)).sum(), counted.sum())

    # Funnel conversion, leads created in the window.
    sql = mql & ~np.isnan(at("sql_at"))
    k["sql_count"] = float(sql.sum())
    k["sql_per_week"] = sql.sum() / weeks
    k["mql_to_sql_rate"] = _rate(sql.sum(), mql.sum())
    accepted = mql & ~np.isnan(at("sal_at"))
    reason = col("rejection_reason")
    has_reason = pd.notna(reason)
    decided = mql & ~np.isnan(at("decided_at")) if "decided_at" in t else accepted | (mql & has_reason)
    share("sal_acceptance_rate", (accepted & decided).sum(), decided.sum())
    disp = (at("decided_at") - at("handoff_at"))[decided] / DAY
    disp = disp[~np.isnan(disp)]
    mean("disposition_mean_days", disp)
    share("disposition_within_target_share", (disp <= scn.sla.disposition_target_days).sum(), disp.size)
    rej = reason[decided & ~accepted]
    for r in REASONS:
        share(f"rejection_share_{r}", (rej == r).sum(), rej.size)
    opp = sql & ~np.isnan(at("opportunity_at"))
    k["opportunity_count"] = float(opp.sum())
    k["opportunity_per_week"] = opp.sum() / weeks
    k["sql_to_opportunity_rate"] = _rate(opp.sum(), sql.sum())
    closed = opp & ~np.isnan(at("closed_at"))
    outcome = col("outcome")
    won = closed & (outcome == "won")
    k["won_count"] = float(won.sum())
    k["won_per_week"] = won.sum() / weeks
    share("win_rate", won.sum(), closed.sum())
    share("no_decision_rate", (closed & (outcome == "no_decision")).sum(), closed.sum())
    segment = lead_segments(leads, keep)
    for s in SEGMENTS:
        c = closed & (segment == s)
        share(f"win_rate_{s}", (c & won).sum(), c.sum())
    channel = col("channel")
    amount = leads["amount"].to_numpy(float, na_value=np.nan)[keep] if "amount" in leads else nan[keep]
    for ch in scn.arrivals.channels:
        c = closed & (channel == ch)
        share(f"win_rate_channel_{ch}", (c & won).sum(), c.sum())
        mean(f"deal_size_mean_usd_{ch}", amount[opp & (channel == ch)])

    for name, (a, b, m) in {"days_mql_to_sql": ("mql_at", "sql_at", sql),
                            "days_sql_to_opportunity": ("sql_at", "opportunity_at", opp),
                            "days_opportunity_to_close": ("opportunity_at", "closed_at", closed)}.items():
        mean(name, (at(b) - at(a))[m] / DAY)

    # Money.
    a_opp = amount[opp]
    pipeline = float(np.nansum(a_opp))
    win_prob = np.array([scn.conversion.win_prob.get(s, np.nan) for s in segment[opp]], dtype=float)
    k["pipeline_usd"] = pipeline
    k["pipeline_per_week_usd"] = pipeline / weeks
    mean("deal_size_mean_usd", a_opp[~np.isnan(a_opp)])
    k["revenue_won_usd"] = float(np.nansum(amount[won]))
    ev.update(pipeline_usd=("sum", a_opp, 1.0),
              pipeline_per_week_usd=("sum", a_opp, weeks), pipeline_per_quarter_usd=("sum", a_opp, weeks / QUARTER_WEEKS),
              revenue_won_usd=("sum", amount[won], 1.0), revenue_won_per_quarter_usd=("sum", amount[won], weeks / QUARTER_WEEKS))
    k["expected_revenue_usd"] = float(np.nansum(a_opp * win_prob))
    k["pipeline_coverage"] = pipeline / (scn.economics.quarterly_revenue_target * weeks / QUARTER_WEEKS)
    cost = {name: c.cost_per_lead for name, c in scn.arrivals.channels.items()}
    spend = float(pd.Series(channel, dtype=object).map(cost).fillna(0.0).sum())
    k["marketing_spend_usd"] = spend
    k["marketing_roi"] = _rate(k["expected_revenue_usd"], spend)
    k.update(money_kpis(k, scn, weeks))
    return k


def lead_segments(leads: pd.DataFrame, keep: np.ndarray) -> np.ndarray:
    """smb / mid / enterprise from employee count (``sim.arrivals.segment_of``); 'mid'
    where the export has no employee count."""
    from sim.arrivals import segment_of

    if "employee_count" not in leads:
        return np.full(int(keep.sum()), "mid", dtype=object)
    e = pd.to_numeric(leads["employee_count"], errors="coerce").to_numpy(float)[keep]
    return np.where(np.isnan(e), "mid", segment_of(np.nan_to_num(e, nan=1.0)))


def team_kpis(pools: dict, reassigned: int, breaches: int = 0, escalated: int = 0,
              other: dict | None = None) -> dict[str, float]:
    """Utilisation and queue KPIs of each pool, from the simulator's own measurements
    (``sim.pool.Pool.stats``: time averages over the same window as every other KPI),
    and what enforced the SLA: breaches acted on and escalations (counted over the run).
    ``other``: pools without KPIs of their own (the overflow team): utilisation only."""
    k: dict[str, float] = {}
    for name, p in (other or {}).items():
        if name == "overflow" and "busy_minutes" in p:
            k["overflow_utilisation"] = _rate(p["busy_minutes"], p["duty_minutes"])
    for name, p in pools.items():
        k[f"{name}_utilisation"] = _rate(p["busy_minutes"], p["duty_minutes"])
        for key in ("mean_waiting_first_touch", "mean_waiting_attempts", "max_waiting_first_touch",
                    "max_waiting_attempts", "max_open_per_person"):
            if key in p:
                k[f"{name}_{key}"] = float(p[key])
    k["reassigned_count"] = float(reassigned)
    k["breach_count"] = float(breaches)
    k["escalated_count"] = float(escalated)
    return k


def replication_kpis(scn: Scenario, rep, clock: BusinessClock) -> dict[str, float]:
    """Every KPI of one replication (``sim.model.Replication``): the funnel KPIs measured
    on the run's own CRM export and event log (``sim.crm``), exactly as for a real
    export, plus the team KPIs only the simulator can see."""
    from sim.crm import crm_export, pass_events

    # Only what the KPIs read: the same values as the full export and event log on disk
    # (tests/test_kpis.py compares them to the last bit).
    events = pass_events(rep.episodes, scn)
    if scn.sla.schedule == "owner" and scn.routing.policy == "round_robin":
        # Each pass's owner (the rep of its first touch), for SLAs on the owner's own hours:
        # pass_events holds every pass's mql row, then the touched passes' first_touch rows.
        from sim.columns import numbered

        owner = rep.episodes["owner"].to_numpy()
        touched = rep.episodes["first_touch"].notna().to_numpy()
        events["owner_id"] = numbered("SDR", np.concatenate([owner, owner[touched]]), 2)
    k = funnel_kpis(crm_export(rep.leads, scn, KPI_LEAD_COLUMNS), events, scn, clock=clock)
    k.update(team_kpis(rep.pools, rep.reassigned, rep.breaches, rep.escalated, rep.other_pools))
    return k


# Headline KPIs, in the order reports show them.
HEADLINE = [
    "mql_per_week", "response_median_minutes", "response_p90_minutes", "sla_attainment_hot",
    "sla_attainment_mql", "mql_to_sql_rate", "sql_count", "opportunity_count", "pipeline_usd",
    "won_count", "expected_revenue_usd", "pipeline_coverage", "sdr_utilisation",
]


def summarise(kpis: pd.DataFrame, by: str | list[str] = "policy", level: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval over replications, one row per (group, KPI), each interval cut
    to what its KPI can take; n/a (NaN) below 2 replications. (The t quantile already
    widens the interval of few replications: no small-group flag here.)"""
    by = [by] if isinstance(by, str) else list(by)
    value_cols = [c for c in kpis.columns if c not in by + ["replication", "seed"]]
    out = summarise_means(kpis, by, value_cols, level, bounds={c: kpi(c).bounds for c in value_cols})
    return out.drop(columns="small_n")
