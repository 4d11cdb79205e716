"""A simulated run as a CRM would show it: one row per lead (DOMAIN.md section 6
columns) and one row per stage change, with time-zone-aware timestamps to the second.

The lab's KPIs (``sim.kpis``) are computed from these two tables, for a simulated run
exactly as for a real export, so a simulated run and its own export give the same
figures (``tests/test_kpis.py``).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pandas as pd

from sim.calendar import timestamps
from sim.columns import numbered

CRM_COLUMNS = [
    "lead_id", "created_at", "channel", "employee_count", "industry", "industry_fit", "region", "region_fit",
    "seniority", "demo_requests", "pricing_page_visits", "content_downloads", "web_visits", "webinars",
    "score", "band", "first_response_at", "owner_id", "mql_at", "handoff_at", "decided_at", "sal_at", "sql_at",
    "opportunity_at", "closed_at", "outcome", "stage", "rejection_reason", "amount",
]
# CRM column -> the simulator's run-minute column
TIMES = {"created_at": "t_created", "first_response_at": "t_first_response", "mql_at": "t_mql",
         "handoff_at": "t_handoff", "decided_at": "t_decided", "sal_at": "t_sal", "sql_at": "t_sql",
         "opportunity_at": "t_opportunity", "closed_at": "t_closed"}


def _values(col: pd.Series):
    """A column's values for a new frame: text stays in Arrow (``to_numpy`` would make a
    Python string per row, and the new frame would turn them back into Arrow text)."""
    return col.array if isinstance(col.dtype, pd.StringDtype) else col.to_numpy()


def _multi(frame: pd.DataFrame) -> bool:
    return "replication" in frame and frame["replication"].nunique() > 1


def crm_export(leads: pd.DataFrame, scenario, columns=CRM_COLUMNS) -> pd.DataFrame:
    """The simulated leads as a CRM export (``columns``: a subset of ``CRM_COLUMNS``). A
    date the CRM could not know yet at the run's horizon (a sales decision due later) is
    blank, and so is its rejection reason."""
    horizon = scenario.calendar.horizon_days * 1440.0
    out = pd.DataFrame(index=leads.index)
    multi = _multi(leads)
    known = {c: np.where(leads[t].to_numpy() < horizon, leads[t].to_numpy(), np.nan) for c, t in TIMES.items()
             if c in columns or c == "decided_at"}
    for col in columns:
        if col in TIMES:
            out[col] = timestamps(scenario.calendar, known[col])
        elif col == "lead_id" and multi:
            rep = leads["replication"].astype(str).str.zfill(2)
            out[col] = _values("R" + rep + "-" + leads["lead_id"])
        elif col == "rejection_reason":
            out[col] = _values(leads[col].where(~np.isnan(known["decided_at"]) | leads[col].isna(), None))
        else:
            out[col] = _values(leads[col])
    for extra in ("policy", "replication"):
        if extra in leads:
            out[extra] = _values(leads[extra])
    return out.reset_index(drop=True)


def lead_ids(lead_index, replication, multi: bool) -> pd.Series:
    """``L000042``, or ``R01-L000042`` when a table holds several replications (the
    ``lead_id`` of ``crm_export``), built in Arrow."""
    ids = pd.Series(numbered("L", lead_index, 6))
    if multi:
        ids = "R" + pd.Series(replication).astype(str).str.zfill(2) + "-" + ids
    return ids


def crm_events(events: pd.DataFrame, scenario) -> pd.DataFrame:
    """The simulator's event log (``Replication.events``) in CRM form: ``lead_id``,
    ``stage_change`` (a stage, or ``first_touch``), ``at``, ``reason_at_change`` and
    ``routed_band`` (the band a pass through the queue was routed with)."""
    multi = _multi(events)
    rep = events["replication"].to_numpy() if "replication" in events else np.zeros(len(events), dtype=int)
    ev = pd.DataFrame({
        "lead_id": _values(lead_ids(events["lead"].to_numpy(), rep, multi)),
        "stage_change": _values(events["stage"]),
        "at": timestamps(scenario.calendar, events["t"].to_numpy()),
        "reason_at_change": _values(events["rejection_reason"]),
        "routed_band": _values(events["routed_band"]),
    })
    for extra in ("policy", "replication"):
        if extra in events:
            ev[extra] = _values(events[extra])
    return ev


def pass_events(episodes: pd.DataFrame, scenario) -> pd.DataFrame:
    """The ``mql`` and ``first_touch`` rows of ``crm_events`` (what the response and SLA
    KPIs read), built straight from the replication's episodes without the whole event
    log: the same times through the same ``timestamps``; leads keep their row number
    as ``lead_id``."""
    touched = episodes["first_touch"].notna().to_numpy()
    lead = episodes["lead"].to_numpy()
    band = episodes["band"].to_numpy(object)
    return pd.DataFrame({
        "lead_id": np.concatenate([lead, lead[touched]]),
        "stage_change": np.repeat(np.array(["mql", "first_touch"], dtype=object), [len(lead), int(touched.sum())]),
        "at": timestamps(scenario.calendar, np.concatenate([episodes["entered"].to_numpy(),
                                                           episodes["first_touch"].to_numpy()[touched]])),
        "routed_band": np.concatenate([band, band[touched]]),
    })


def event_log(events: pd.DataFrame, crm: pd.DataFrame, scenario) -> pd.DataFrame:
    """One row per lead per stage change, carrying the lead's CRM columns: a left join of
    ``crm_events`` with ``crm`` on ``lead_id`` (and ``policy``)."""
    own, lead_cols, rows = event_log_parts(events, crm, scenario)
    if rows is None:
        return own
    return pd.concat([own, lead_cols.take(rows).reset_index(drop=True)], axis=1)


def event_log_parts(events: pd.DataFrame, crm: pd.DataFrame, scenario):
    """``event_log`` in two parts, for a writer that takes the lead rows chunk by chunk:
    the events' own columns, the lead columns of ``crm`` and, for each event, the row of
    ``crm`` holding its lead. When the lead rows cannot be found by position the first
    part is already the whole event log (a join on the keys) and the others are None."""
    ev = crm_events(events, scenario)
    keys = ["lead_id"] + (["policy"] if "policy" in ev else [])
    rows = _crm_rows(events, crm)
    ev = ev.drop(columns=["replication"], errors="ignore")
    base = crm.drop(columns=[c for c in ("replication",) if c in crm])
    lead_cols = base.drop(columns=keys)
    if rows is None or not _same_keys(ev, base, keys, rows) or any(c in ev for c in lead_cols):
        return ev.merge(base, on=keys, how="left", suffixes=("", "_lead")), None, None
    return ev, lead_cols, rows


def _blocks(frame: pd.DataFrame) -> tuple[np.ndarray, list]:
    """Starts of the runs of equal (policy, replication) in ``frame`` and their keys."""
    cols = [c for c in ("policy", "replication") if c in frame]
    n = len(frame)
    if not cols or n == 0:
        return np.zeros(min(n, 1), dtype=np.int64), [()] * min(n, 1)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in cols:
        v = frame[c].to_numpy()
        change[1:] |= v[1:] != v[:-1]
    starts = np.flatnonzero(change)
    return starts, [tuple(frame[c].iat[s] for c in cols) for s in starts]


def _crm_rows(events: pd.DataFrame, crm: pd.DataFrame) -> np.ndarray | None:
    """Row of ``crm`` holding each event's lead, by position: a sweep's lead and event
    tables hold the same replications in the same order, each replication's leads in
    lead order (``sim.experiment.run_sweep``). None when the layout is not that one
    (``event_log`` then joins on the keys)."""
    ev_starts, ev_keys = _blocks(events)
    crm_starts, crm_keys = _blocks(crm)
    at = {k: s for k, s in zip(crm_keys, crm_starts)}
    if len(at) != len(crm_keys) or not set(ev_keys) <= set(at):
        return None  # a replication in two places, or missing: join on the keys
    block = np.repeat(np.arange(len(ev_starts)), np.diff(np.r_[ev_starts, len(events)]))
    rows = np.array([at[k] for k in ev_keys], dtype=np.int64)[block] + events["lead"].to_numpy()
    if len(rows) and rows.max() >= len(crm):
        return None
    return rows


def _same_keys(ev: pd.DataFrame, base: pd.DataFrame, keys: list, rows: np.ndarray) -> bool:
    """Do the rows found by position hold the events' own keys (the join's answer)?
    Compared in Arrow: as Python strings a million leads' keys took 0.2 GB."""
    def arrow(col: pd.Series) -> pa.Array:
        a = pa.Array.from_pandas(col)
        return (a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a).cast(pa.large_string())

    take = pa.array(rows)
    return all(arrow(ev[k]).equals(arrow(base[k]).take(take)) for k in keys)
