"""Reading date columns of a CRM export without guessing.

Rules, per column (a mapping may set ``format``, ``dayfirst`` and ``timezone`` per column
or per table):

- ISO 8601 (``2026-01-05``, ``2026-01-05 14:03``, ``2026-01-05T14:03:00.000Z``,
  ``...+02:00``) is read as is; an offset counts only after a time of day.
- Numeric day/month/year text (``08-03-2018``, ``8/3/18 14:05``, ``08.03.2018 2:05 PM``)
  is read with an order decided from the data: a first number above 12 proves
  day-first, a second above 12 proves month-first. Both at once, or neither, is refused
  with the rows that prove it (set ``dayfirst`` or ``format`` in the mapping). The
  trailing year is always a year: ``-2018`` is never read as a UTC offset.
- Anything else (month names: ``8 Mar 2018``, ``March 8, 2018``) is read by pandas; a
  value whose parse carries a time zone its text does not state is refused.
- Naive timestamps with a ``timezone`` are localised to it and converted to UTC;
  values with an offset are converted to UTC; naive ones without a time zone stay naive
  (``DateInfo.aware`` is False: the caller decides what clock they are on).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.errors import LabError

_ISO = re.compile(r"^\s*\d{4}[-/]\d{1,2}[-/]\d{1,2}"
                  r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)?)?\s*$")
_OFFSET = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)\s*$")
_NUMERIC = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})"
                      r"(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*([AaPp]\.?[Mm]\.?)?)?\s*$")


@dataclass
class DateInfo:
    """How a column was read: ``order`` (iso / day-first / month-first / text / format),
    the row that proved a day/month order, and whether values are UTC (``aware``)."""

    order: set = field(default_factory=set)
    proof: str = ""
    aware: bool = False


def _rows(idx, s: pd.Series, k: int = 3) -> str:
    return ", ".join(f"row {s.index.get_loc(i) + 1} {s[i]!r}" for i in list(idx)[:k])


def parse_date_column(s: pd.Series, where: str, date_format: str | None = None, dayfirst: bool | None = None,
                      timezone: str | None = None) -> tuple[pd.Series, DateInfo]:
    """Parse one column; ``where`` starts every message (``file: table: column`` or
    ``file: column 'x'``). Returns naive timestamps (UTC when ``info.aware``)."""
    info = DateInfo()
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s
        info.order.add("native")
        info.aware = isinstance(s.dtype, pd.DatetimeTZDtype)
    else:
        present = s.notna().to_numpy()
        text = s.astype("string").str.strip()
        if date_format:
            info.aware = "%z" in date_format or "%Z" in date_format
            out = pd.to_datetime(text, format=date_format, errors="coerce", utc=info.aware)
            info.order.add("format")
            _refuse_unparsed(out, text, present, where, f"date_format {date_format!r}")
        else:
            out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
            iso = text.str.match(_ISO).fillna(False).to_numpy() & present
            if iso.any():
                info.order.add("iso")
                out[iso] = pd.to_datetime(text[iso], format="ISO8601", errors="coerce", utc=True)
                offset = text[iso].str.contains(_OFFSET).fillna(False)
                if offset.any():
                    info.aware = True
                if not offset.all() and offset.any():
                    i = text[iso].index[~offset.to_numpy()][0]
                    raise LabError(f"{where}, row {s.index.get_loc(i) + 1}: some dates carry a time-zone offset "
                                   f"and some do not (rule: one convention per column); got {s[i]!r}")
            parts = text.str.extract(_NUMERIC)
            num = parts[0].notna().to_numpy() & present & ~iso
            if num.any():
                _numeric(out, text, parts, num, s, where, dayfirst, info)
            rest = present & ~iso & ~num
            if rest.any():
                info.order.add("text")
                for i in s.index[rest]:
                    try:
                        v = pd.Timestamp(text[i])
                    except (ValueError, TypeError, OverflowError):
                        continue
                    if v.tzinfo is not None and not _OFFSET.search(str(text[i])):
                        raise LabError(f"{where}, row {s.index.get_loc(i) + 1}: the date was read with a time zone "
                                       f"its text does not state (rule: no guessed offsets); got {s[i]!r}; "
                                       "set date_format in the mapping")
                    if v.tzinfo is not None:
                        info.aware = True
                    out[i] = v.tz_localize("UTC") if v.tzinfo is None else v.tz_convert("UTC")
            _refuse_unparsed(out, text, present, where, "ISO 8601 or day/month/year")
    if isinstance(out.dtype, pd.DatetimeTZDtype):
        if info.aware:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        else:
            out = out.dt.tz_localize(None)
    out = out.astype("datetime64[ns]")
    if timezone and not info.aware:
        try:
            out = out.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward")
        except Exception as exc:  # unknown zone name
            raise LabError(f"{where}: unknown time zone {timezone!r} ({exc}); use an IANA name such as "
                           "'Europe/Paris' or 'UTC'") from None
        out = out.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
        info.aware = True
    return out, info


def _numeric(out, text, parts, num, s, where, dayfirst, info):
    a = parts[0].astype(float)
    b = parts[1].astype(float)
    idx = s.index[num]
    a_big = (a > 12).to_numpy() & num
    b_big = (b > 12).to_numpy() & num
    first = dayfirst
    if first is None:
        if a_big.any() and b_big.any():
            raise LabError(f"{where}, {_rows(s.index[a_big], s, 1)} is day-first and {_rows(s.index[b_big], s, 1)} is "
                           "month-first: dates mix day-first and month-first order (rule: one order per column); "
                           "set date_format in the mapping")
        if not a_big.any() and not b_big.any():
            raise LabError(f"{where}, row {s.index.get_loc(idx[0]) + 1}: ambiguous date {s[idx[0]]!r} could be "
                           f"day/month or month/day (rule: no value proves the order; checked {int(num.sum())} "
                           f"value(s) such as {_rows(idx, s)}); set date_format (e.g. '%d/%m/%Y') or dayfirst "
                           "in the mapping")
        first = bool(a_big.any())
        proof = s.index[a_big if first else b_big][0]
        info.proof = _rows([proof], s, 1)
    info.order.add("day-first" if first else "month-first")
    p = parts[num]
    day, month = (p[0], p[1]) if first else (p[1], p[0])
    year = p[2].astype(int)
    year = year.where(p[2].str.len() == 4, np.where(year < 70, 2000 + year, 1900 + year))
    hour = p[3].fillna("0").astype(int)
    ampm = p[6].fillna("").str.lower().str.replace(".", "", regex=False)
    hour = hour.where(ampm == "", (hour % 12) + np.where(ampm == "pm", 12, 0))
    stamp = pd.to_datetime(pd.DataFrame({"year": year, "month": month.astype(int), "day": day.astype(int),
                                         "hour": hour, "minute": p[4].fillna("0").astype(int),
                                         "second": p[5].fillna("0").astype(int)}), errors="coerce")
    out[num] = stamp.dt.tz_localize("UTC")


def _refuse_unparsed(out, text, present, where, rule):
    bad = present & out.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LabError(f"{where}, row {i + 1}: unparseable date {text.iloc[i]!r} "
                       f"(rule: {rule}; {int(bad.sum())} such value(s)); set date_format in the mapping")
