"""Files a run leaves behind: KPIs, summary, a CRM-shaped lead export and event log,
in Parquet and CSV, each recording the scenario, seed and code version.

The whole output directory is built aside and swapped in only when complete
(``common.files.atomic_dir``): a failed run never leaves half a result where a good one was.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from sim.calendar import timestamps
from sim.experiment import SweepResult, meta_json
from common.files import atomic_dir

CRM_COLUMNS = [
    "lead_id", "created_at", "channel", "employee_count", "industry", "industry_fit", "region", "region_fit",
    "seniority", "demo_requests", "pricing_page_visits", "content_downloads", "web_visits", "webinars",
    "score", "band", "first_response_at", "owner_id", "mql_at", "sal_at", "sql_at", "opportunity_at",
    "closed_at", "outcome", "stage", "rejection_reason", "amount",
]
_TIMES = {"created_at": "t_created", "first_response_at": "t_first_response", "mql_at": "t_mql",
          "sal_at": "t_sal", "sql_at": "t_sql", "opportunity_at": "t_opportunity", "closed_at": "t_closed"}


def crm_export(leads: pd.DataFrame, scenario) -> pd.DataFrame:
    """The simulated leads as a CRM export (DOMAIN.md section 6 columns), with
    time-zone-aware timestamps, so calibration can read a simulated history like a real one."""
    out = pd.DataFrame(index=leads.index)
    multi = "replication" in leads and leads["replication"].nunique() > 1
    for col in CRM_COLUMNS:
        if col in _TIMES:
            out[col] = timestamps(scenario.calendar, leads[_TIMES[col]].to_numpy())
        elif col == "lead_id" and multi:
            rep = leads["replication"].astype(str).str.zfill(2)
            out[col] = ("R" + rep + "-" + leads["lead_id"]).to_numpy()
        else:
            out[col] = leads[col].to_numpy()
    for extra in ("policy", "replication"):
        if extra in leads:
            out[extra] = leads[extra].to_numpy()
    return out.reset_index(drop=True)


def _ids(lead_index, replication, multi: bool) -> pd.Series:
    ids = pd.Series(lead_index).map("L{:06d}".format)
    if multi:
        ids = "R" + pd.Series(replication).astype(str).str.zfill(2) + "-" + ids
    return ids


def event_log(events: pd.DataFrame, crm: pd.DataFrame, scenario) -> pd.DataFrame:
    """One row per lead per stage change, carrying the lead's CRM columns."""
    multi = "replication" in events and events["replication"].nunique() > 1
    ev = pd.DataFrame({
        "lead_id": _ids(events["lead"].to_numpy(), events.get("replication", pd.Series(0, index=events.index)).to_numpy(), multi).to_numpy(),
        "stage_change": events["stage"].to_numpy(),
        "at": timestamps(scenario.calendar, events["t"].to_numpy()),
        "reason_at_change": events["rejection_reason"].to_numpy(),
    })
    keys = ["lead_id"]
    if "policy" in events:
        ev["policy"] = events["policy"].to_numpy()
        keys.append("policy")
    base = crm.drop(columns=[c for c in ("replication",) if c in crm])
    return ev.merge(base, on=keys, how="left")


def _write_table(df: pd.DataFrame, path_stem: Path, meta: str):
    table = pa.Table.from_pandas(df, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[b"smarketing_lab"] = meta.encode()
    pq.write_table(table.replace_schema_metadata(md), path_stem.with_suffix(".parquet"))
    df.to_csv(path_stem.with_suffix(".csv"), index=False)


def write_result(result: SweepResult, out_dir: str | Path) -> Path:
    """Write a sweep or simulation result into ``out_dir`` atomically; returns the path."""
    out_dir = Path(out_dir)
    meta = meta_json(result)
    with atomic_dir(out_dir) as tmp:
        (tmp / "run.json").write_text(meta + "\n")
        for name, scn in result.scenarios.items():
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            (tmp / "scenarios").mkdir(exist_ok=True)
            (tmp / "scenarios" / f"{safe}.yaml").write_text(
                yaml.safe_dump(json.loads(scn.model_dump_json()), sort_keys=False))
        _write_table(result.kpis, tmp / "kpis", meta)
        _write_table(result.summary, tmp / "summary", meta)
        if result.leads is not None:
            scn = next(iter(result.scenarios.values()))
            crm = crm_export(result.leads, scn)
            _write_table(crm, tmp / "leads", meta)
            if result.events is not None:
                ev = event_log(result.events, crm, scn)
                _write_table(ev, tmp / "events", meta)
        (tmp / "summary.txt").write_text(result.table().to_string() + "\n")
    return out_dir


def read_meta(path: str | Path) -> dict:
    """Provenance stored in a Parquet file written by the lab."""
    md = pq.read_schema(path).metadata or {}
    return json.loads(md.get(b"smarketing_lab", b"{}"))

