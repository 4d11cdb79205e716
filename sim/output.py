"""Files a run leaves behind: KPIs, summary, the KPI data dictionary, a CRM-shaped lead
export and event log (``sim.crm``), in Parquet and CSV, each recording the scenario,
seed and code version.

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

from common.files import atomic_dir
from sim.crm import crm_export, event_log
from sim.experiment import SweepResult, meta_json
from sim.kpis import data_dictionary


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
        data_dictionary(result.kpis.columns).to_csv(tmp / "kpi_dictionary.csv", index=False)
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

