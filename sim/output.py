"""Files a run leaves behind: KPIs, summary, the KPI data dictionary, a CRM-shaped lead
export and event log (``sim.crm``), in Parquet and CSV, each recording the scenario,
seed and code version.

The whole output directory is built aside and swapped in only when complete
(``common.files.atomic_dir``): a failed run never leaves half a result where a good one was.

CSV files are written by Arrow, not ``DataFrame.to_csv`` (ten times faster on a million
leads), with pandas' text cell by cell (``_csv_text``): same numbers, same time-zone
offsets, same empty cells. A table Arrow cannot write that way (a value holding a comma,
quote or line break) goes through ``to_csv`` as before.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from common.files import atomic_dir
from sim.crm import crm_export, event_log, event_log_parts  # crm_export: imported from here too
from sim.experiment import SweepResult, meta_json
from sim.kpis import data_dictionary

CSV_OPTIONS = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
EVENT_CHUNK_ROWS = 100_000  # event-log rows built and written at once: bounds the memory of a big run
_TWO = [f"{k:02d}" for k in range(60)]
_HOURS, _MINUTES, _SECONDS = (pa.array([x + sep for x in _TWO[:top]]) for top, sep in ((24, ":"), (60, ":"), (60, "")))


class _NotPlain(Exception):
    """A column Arrow would not write as pandas does: left to ``to_csv``."""


def _timestamp_text(col: pd.Series) -> pa.Array:
    """'2026-01-05 09:03:12-05:00' for whole-second time-zone-aware readings, as pandas
    writes them, put together in Arrow from lookup tables of days, hours, minutes,
    seconds and offsets (a few hundred strings) rather than formatted one by one."""
    missing = col.isna().to_numpy()
    if missing.all():
        return pa.nulls(len(col), pa.string())  # nothing to print (an empty cell each)
    local = col.dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view(np.int64)
    utc = col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view(np.int64)
    local, utc = local[~missing], utc[~missing]
    if (local % 10**9).any():
        raise _NotPlain  # pandas would print fractions of a second
    sec = local // 10**9
    day, sod = np.divmod(sec, 86400)
    d0 = int(day.min()) if day.size else 0
    days = np.datetime64(0, "D") + np.arange(d0, int(day.max()) + 1 if day.size else d0 + 1)
    day_text = pa.array([str(d) + " " for d in days.tolist()], type=pa.string())
    minutes = (sec - utc // 10**9) // 60
    uniq, code = np.unique(minutes, return_inverse=True)
    off_text = pa.array([f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in uniq.tolist()],
                        type=pa.string())
    parts = [day_text.take(day - d0), _HOURS.take(sod // 3600), _MINUTES.take(sod % 3600 // 60),
             _SECONDS.take(sod % 60), off_text.take(code.astype(np.int64))]
    text = pc.binary_join_element_wise(*parts, "")
    if not missing.any():
        return text
    where = np.cumsum(~missing) - 1  # position of each present value in ``text``
    return text.take(pa.array(where, mask=missing))


def _float_text(v: np.ndarray) -> pa.Array:
    """Python's ``repr`` of each float (what pandas writes: '81.0', '1e-05'); NaN is null.

    Arrow prints the same shortest digits but '81' for 81.0 and switches to exponents
    at other magnitudes: a '.0' is added to whole numbers, and values below 1e-4 or from
    1e9 up are printed by numpy."""
    nan = np.isnan(v)
    text = pc.cast(pa.array(v, mask=nan), pa.string())
    text = pc.if_else(pc.match_substring_regex(text, r"^-?[0-9]+$"), pc.binary_join_element_wise(text, ".0", ""), text)
    a = np.abs(v)
    odd = ~nan & ((a >= 1e9) | ((a < 1e-4) & (a > 0)))
    if odd.any():
        out = text.to_numpy(zero_copy_only=False).astype(object)
        out[odd] = v[odd].astype(str)
        text = pa.array(out, type=pa.string())
    return text


def _csv_text(col: pd.Series) -> pa.Array:
    """The text ``DataFrame.to_csv`` writes in each cell of ``col`` (missing: null, written
    as an empty cell)."""
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _timestamp_text(col)
    extension = isinstance(dtype, pd.api.extensions.ExtensionDtype)
    if pd.api.types.is_float_dtype(dtype) and not extension:
        return _float_text(col.to_numpy())
    if pd.api.types.is_integer_dtype(dtype) and not extension:
        return pc.cast(pa.array(col.to_numpy()), pa.string())
    if pd.api.types.is_bool_dtype(dtype) and not extension:
        return pa.array(np.where(col.to_numpy(), "True", "False"))
    if isinstance(dtype, pd.StringDtype) or dtype == object:
        arr = pa.array(col.to_numpy(object) if dtype == object else col.array, from_pandas=True)
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type)):
            raise _NotPlain
        return arr.cast(pa.string())
    raise _NotPlain


def _text_table(df: pd.DataFrame) -> pa.Table:
    if len(df.columns) != len(set(map(str, df.columns))) or not len(df):
        raise _NotPlain
    return pa.table({str(c): _csv_text(df[c]) for c in df.columns})


def _write_csv(df: pd.DataFrame, path: Path) -> pa.Table | None:
    """Write ``df`` as ``to_csv`` would; returns the text table (None if ``to_csv`` wrote it)."""
    try:
        text = _text_table(df)
        pacsv.write_csv(text, path, CSV_OPTIONS)
        return text
    except (_NotPlain, pa.ArrowInvalid):
        df.to_csv(path, index=False)
        return None


def _with_meta(schema: pa.Schema, meta: str) -> pa.Schema:
    md = dict(schema.metadata or {})
    md[b"smarketing_lab"] = meta.encode()
    return schema.with_metadata(md)


def _write_table(df: pd.DataFrame, path_stem: Path, meta: str) -> tuple[pa.Table, pa.Table | None]:
    """Parquet and CSV of ``df``; returns its Arrow table and its CSV text table."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(_with_meta(table.schema, meta).metadata),
                   path_stem.with_suffix(".parquet"))
    return table, _write_csv(df, path_stem.with_suffix(".csv"))


def _compact(cols: list, names: list[str]) -> pa.Table:
    """Text columns with few distinct values (channel, stage, ...) dictionary-encoded:
    the lead text is held while the whole event log is written. ``cols`` is emptied
    column by column, so that each plain column is freed as its encoded one is made."""
    out = []
    while cols:
        col = cols.pop(0)
        enc = col.dictionary_encode()
        few = sum(len(c.dictionary) for c in enc.chunks) * 4 < len(col)
        out.append(enc if few else col)
        del col, enc
    return pa.Table.from_arrays(out, names=names)


def _write_events(result: SweepResult, lead_tables: dict, scn, path_stem: Path, meta: str):
    """The event log (``sim.crm.event_log``), written chunk by chunk: each chunk's lead
    columns are rows taken from the lead table already built (Arrow, and its CSV text),
    so the whole log - a few rows per lead, thirty columns each - is never held at once.

    ``lead_tables`` holds the lead table as ``crm`` (pandas), ``arrow`` and ``text`` (its
    CSV cells); they are taken out of it as soon as the columns the log needs are kept, so
    that the rest of the lead table is freed while the log is written (a million leads:
    about 0.3 GB less at the peak)."""
    crm = lead_tables.pop("crm")
    own, lead_cols, rows = event_log_parts(result.events, crm, scn)
    del crm
    if rows is None:
        _write_table(own, path_stem, meta)
        return
    head = pd.concat([own.iloc[:100], lead_cols.take(rows[:100]).reset_index(drop=True)], axis=1)
    schema = _with_meta(pa.Schema.from_pandas(head, preserve_index=False), meta)
    lead_names = list(lead_cols.columns)
    del lead_cols
    lead_arrow = lead_tables.pop("arrow").select(lead_names)
    crm_text = lead_tables.pop("text")
    lead_text = None
    if crm_text is not None:
        cols = [crm_text.column(c) for c in lead_names]
        del crm_text
        lead_text = _compact(cols, lead_names)
    csv_path = path_stem.with_suffix(".csv")
    csv_writer = None
    with pq.ParquetWriter(path_stem.with_suffix(".parquet"), schema) as pq_writer:
        for a in range(0, len(own), EVENT_CHUNK_ROWS):
            part = own.iloc[a:a + EVENT_CHUNK_ROWS]
            take = pa.array(rows[a:a + EVENT_CHUNK_ROWS])
            own_arrow = pa.Table.from_pandas(part, preserve_index=False)
            pq_writer.write_table(pa.Table.from_arrays(own_arrow.columns + lead_arrow.take(take).columns,
                                                       schema=schema))
            if lead_text is None:
                continue
            try:
                taken = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c
                         for c in lead_text.take(take).columns]
                text = pa.Table.from_arrays(_text_table(part).columns + taken,
                                            names=[str(c) for c in own.columns] + lead_names)
                if csv_writer is None:
                    csv_writer = pacsv.CSVWriter(csv_path, text.schema, write_options=CSV_OPTIONS)
                csv_writer.write_table(text)
            except (_NotPlain, pa.ArrowInvalid):
                lead_text = None
    if csv_writer is not None:
        csv_writer.close()
    if lead_text is None:  # a value Arrow cannot write unquoted, or no lead text: pandas writes it
        event_log(result.events, crm_export(result.leads, scn), scn).to_csv(csv_path, index=False)


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
            lead_tables = dict(zip(("arrow", "text"), _write_table(crm, tmp / "leads", meta)), crm=crm)
            del crm
            if result.events is not None:
                _write_events(result, lead_tables, scn, tmp / "events", meta)
            del lead_tables
        (tmp / "summary.txt").write_text(result.table().to_string() + "\n")
    return out_dir


def read_meta(path: str | Path) -> dict:
    """Provenance stored in a Parquet file written by the lab."""
    md = pq.read_schema(path).metadata or {}
    return json.loads(md.get(b"smarketing_lab", b"{}"))
