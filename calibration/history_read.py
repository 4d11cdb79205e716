"""Reading a CRM history for a fit: the export imported and validated
(``calibration.importer``), its dates on the team's local wall clock.

``read_history`` is what every fit and back-test reads an export with; ``to_local`` puts
the date columns ``TIMES`` on the simulator's clock (naive local time), converting dates
that carry an offset and taking naive ones to be local already.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import LabError

TIMES = ("created_at", "first_response_at", "mql_at", "handoff_at", "decided_at", "sal_at", "sql_at",
         "opportunity_at", "closed_at")


def _raw_has_offset(path: Path, column: str) -> bool:
    """Whether the export's own ``column`` carries a time-zone offset (the importer turns
    every date into UTC and would hide that naive dates were local)."""
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            s = pd.read_parquet(path, columns=[column])[column]
        else:
            s = pd.read_csv(path, usecols=[column], nrows=2000)[column]
    except (ValueError, KeyError, OSError):
        return True
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return True
    if pd.api.types.is_datetime64_any_dtype(s):
        return False
    txt = s.dropna().astype(str).head(200)
    return bool(txt.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})\s*$", regex=True).any())


def to_local(frame: pd.DataFrame, tz: str, aware: bool = True, local: set | None = None) -> pd.DataFrame:
    """Date columns as naive local wall-clock timestamps (the simulator's clock).
    ``local``: columns already on local wall-clock time (the others are UTC-naive)."""
    out = frame.copy()
    for col in TIMES:
        if col not in out:
            continue
        s = out[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            out[col] = s.dt.tz_convert(tz).dt.tz_localize(None)
        elif (col not in local) if local is not None else aware:  # UTC-naive from the importer
            out[col] = s.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)
    return out


def read_history(export, mapping, tz: str) -> tuple[pd.DataFrame, object]:
    """Import and validate ``export`` with ``mapping`` (``calibration.importer``); return
    the lab-named frame in local time and the importer's ``LeadData``."""
    from calibration.importer import import_export

    path = Path(export)
    data = import_export(path, mapping)
    df = data.frame
    for col in ("created_at",):
        if col not in df:
            raise LabError(f"{path}: column '{col}' is needed to fit a scenario (rule: map an export "
                           f"column to '{col}' in {data.mapping.source})")
    if data.local_dates is not None:  # a multi-table export: the importer knows each column's clock
        df = to_local(df, tz, local=data.local_dates)
    else:
        src_col = next((k for k, v in data.mapping.renames if v == "created_at"), "created_at")
        df = to_local(df, tz, aware=_raw_has_offset(path, src_col))
    bad = df["created_at"].isna().to_numpy()
    if bad.any() and (bad.all() or data.mapping.tables == {}):
        i = int(np.flatnonzero(bad)[0])
        raise LabError(f"{path}: column 'created_at', row {i + 1}: creation date is missing "
                       "(rule: every lead has a creation date to fit arrivals)")
    if bad.any():  # a multi-table export: records not yet dated (e.g. deals still prospecting)
        data.flags.append(f"{data.source}: created_at: {int(bad.sum())} row(s) without a creation date left out "
                          f"of the fit (e.g. row {int(np.flatnonzero(bad)[0]) + 1})")
        df = df[~bad].copy()
    if "outcome" in df and not df["outcome"].dropna().astype(str).isin(["won", "lost", "no_decision", "open"]).all():
        df["outcome"] = pd.Series(df["_outcome_kind"]).map({"success": "won", "failure": "lost",
                                                             "open": "open"}).to_numpy()
    for col in ("first_response_at", "mql_at", "sal_at", "sql_at", "opportunity_at", "closed_at"):
        if col in df:
            early = (df[col] < df["created_at"] - pd.Timedelta(minutes=1)).to_numpy()
            if early.any():
                i = int(np.flatnonzero(early)[0])
                raise LabError(f"{path}: column '{col}', row {i + 1}: {df[col].iloc[i]} is before the lead "
                               f"was created ({df['created_at'].iloc[i]}) (rule: stages follow creation)")
    return df, data
