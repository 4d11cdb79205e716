"""Tables and columns a CRM recorded only from some date on (a migration, a new field,
deals entered only since a new process), and the cohorts a fit may then use.

A stage date recorded only from ``start`` on is blank for every record that reached the
stage before ``start``: rates and durations that read it are complete only for the
records that entered the stage before it (its *anchor*) at or after ``start``. The fit
(``calibration.history.fit_scenario``) restricts each such quantity to that cohort and the
fit report says so.

Windows are declared in the mapping (``recorded_from`` of a table: every date column it
feeds; ``recorded_from`` at the top level: one column, by export or lab name) or detected:

Detection (a stage ``S`` after a stage ``P``, e.g. ``closed_at`` after ``opportunity_at``):
let ``x`` be the first recorded ``S``. Records whose ``P`` is before ``x`` show no ``S``
before ``x`` by definition; how many would they have shown if ``S`` had been recorded all
along? With ``F(h)`` the share of records reaching ``S`` within ``h`` days of ``P``,
estimated on the records with ``P`` at or after ``x`` (those old enough to have had
``h`` days), the expected number is ``E = sum_i F(x - P_i)``. For a process recorded
from its beginning, ``E`` at the first event is the compensator of a counting process at
its first jump, an Exp(1) variable (the random time-change theorem), so
``P(E >= 10) = e**-10``, about 5e-5. The window is declared detected when
``E >= MIN_EXPECTED`` and ``x`` comes at least ``MIN_SILENT_DAYS`` after the first ``P``
(calendar effects - nights, weekends, holidays - average badly into ``F`` and last
days, not weeks).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Lab date column -> the stages before it, first present one used (detection).
PREDECESSORS = {"mql_at": ("created_at",), "first_response_at": ("mql_at",), "sal_at": ("mql_at",),
                "sql_at": ("sal_at", "mql_at"), "opportunity_at": ("sql_at",), "closed_at": ("opportunity_at",)}
MIN_EXPECTED = 10.0
MIN_SILENT_DAYS = 14.0
MIN_RECORDS = 20
#: Cohorts of the fit: the anchor date a record enters it by, and the columns it reads.
COHORTS = {
    "qualification": ("mql_at", ("mql_at", "first_response_at", "handoff_at", "decided_at", "sal_at")),
    "response": ("mql_at", ("mql_at", "first_response_at")),
    "sql": ("sql_at", ("sql_at", "opportunity_at")),
    "opportunity": ("opportunity_at", ("opportunity_at", "closed_at")),
    "disposition": ("first_response_at", ("first_response_at", "handoff_at", "decided_at", "sal_at")),
}
#: Fit-report parameter (prefix) -> its cohort.
PARAMETER_COHORT = {"decay.": "qualification", "sal_accept[": "qualification",
                    "conversion.rejection_mix": "qualification", "sql_to_opportunity[": "sql",
                    "sql_to_opportunity_days[": "sql", "win[": "opportunity", "no_decision[": "opportunity",
                    "days_to_close[": "opportunity", "deal_size_median[": "opportunity",
                    "deal_size_sigma[": "opportunity", "disposition_days[": "disposition"}


@dataclass
class RecordingWindow:
    """``column`` (a lab date) is complete only from ``start`` on; ``how``: declared
    (mapping) or detected (of the ``records_before`` records that entered the stage
    before it before ``start``, ``expected_before`` would have shown it before)."""

    column: str
    start: pd.Timestamp
    how: str
    reason: str
    expected_before: float = float("nan")
    records_before: int = 0


def declared(mapping) -> dict[str, pd.Timestamp]:
    """Lab date column -> start date declared in the mapping (a column's own date wins
    over its table's)."""
    from calibration.mapping import DATES

    out: dict[str, pd.Timestamp] = {}
    main = mapping.main_table
    for name, spec in mapping.tables.items():
        if spec.recorded_from is None:
            continue
        for export, lab in mapping.renames:
            table = export.split(".", 1)[0] if "." in export and export.split(".", 1)[0] in mapping.tables else main
            if table == name and lab in DATES:
                out[lab] = pd.Timestamp(spec.recorded_from)
        for lab, d in mapping.derived.items():
            if d.table == name and lab in DATES:
                out[lab] = pd.Timestamp(spec.recorded_from)
    lab_of = dict(mapping.renames)
    for col, day in mapping.recorded_from.items():
        out[lab_of.get(col, col)] = pd.Timestamp(day)
    return out


def expected_before(prev: pd.Series, stage: pd.Series, end: pd.Timestamp) -> tuple[pd.Timestamp, float, int] | None:
    """``(x, E, n)``: the first recorded ``stage`` date, the number of records with
    ``prev`` before it expected to have reached ``stage`` before it (see the module
    docstring), and how many records those are; None when there is too little to tell."""
    p = prev.to_numpy("datetime64[ns]")
    s = stage.to_numpy("datetime64[ns]")
    has_p = ~np.isnat(p)
    if (~np.isnat(s)).sum() < MIN_RECORDS or has_p.sum() < MIN_RECORDS:
        return None
    x = s[~np.isnat(s)].min()
    before = has_p & (p < x)
    after = has_p & (p >= x)
    if before.sum() == 0 or after.sum() < MIN_RECORDS:
        return None
    day = np.timedelta64(1, "D")
    h = (x - p[before]) / day                       # days each early record had before x
    lag = np.where(np.isnat(s[after]), np.inf, (s[after] - p[after]) / day)
    age = (pd.Timestamp(end).to_datetime64() - p[after]) / day  # how long each later record was watched
    grid = np.linspace(0.0, h.max(), 257)
    at_risk = (age[None, :] >= grid[:, None])
    reached = at_risk & (lag[None, :] < grid[:, None])
    n_risk = at_risk.sum(axis=1)
    F = np.where(n_risk >= MIN_RECORDS, reached.sum(axis=1) / np.maximum(n_risk, 1), np.nan)
    # Beyond the horizon the later records can show, keep the last estimate (F only grows).
    F = pd.Series(F).ffill().fillna(0.0).to_numpy()
    return pd.Timestamp(x), float(np.interp(h, grid, F).sum()), int(before.sum())


def recording_windows(df: pd.DataFrame, mapping, end: pd.Timestamp) -> dict[str, RecordingWindow]:
    """Windows of the lab date columns of ``df``: declared in ``mapping``, else detected."""
    out = {}
    for col, start in declared(mapping).items():
        if col in df:
            prev = next((c for c in PREDECESSORS.get(col, ()) if c in df), None)
            n = int((df[prev] < start).sum()) if prev is not None else int((df[col] < start).sum())
            out[col] = RecordingWindow(col, start, "declared",
                                       f"declared in {mapping.source}: recorded_from {start:%Y-%m-%d}", records_before=n)
    for col, prevs in PREDECESSORS.items():
        if col in out or col not in df or df[col].notna().sum() == 0:
            continue
        prev = next((c for c in prevs if c in df and df[c].notna().any()), None)
        if prev is None:
            continue
        found = expected_before(df[prev], df[col], end)
        if found is None:
            continue
        x, e, n = found
        silent = (x - df[prev].min()) / pd.Timedelta(days=1)
        if e >= MIN_EXPECTED and silent >= MIN_SILENT_DAYS:
            out[col] = RecordingWindow(
                col, x, "detected",
                f"detected: no {col} before {x:%Y-%m-%d} although {n} record(s) had {prev} before it and "
                f"{e:.0f} would have reached {col} before it at the later records' pace (rule: fewer than "
                f"{MIN_EXPECTED:g} expected; declare recorded_from in the mapping to override)", e, n)
    return out


def cohort_start(windows: dict[str, RecordingWindow], cohort: str) -> pd.Timestamp | None:
    """The date from which a cohort's records are complete (None: all of them)."""
    starts = [windows[c].start for c in COHORTS[cohort][1] if c in windows]
    return max(starts) if starts else None


def in_cohort(df: pd.DataFrame, windows: dict[str, RecordingWindow], cohort: str) -> pd.Series:
    """True for the records whose anchor date is at or after the cohort's start (all
    records when no column it reads is time-limited)."""
    start = cohort_start(windows, cohort)
    if start is None:
        return pd.Series(True, index=df.index)
    anchor = COHORTS[cohort][0]
    return (df[anchor] >= start).fillna(False) if anchor in df else pd.Series(False, index=df.index)


def report_rows(windows: dict[str, RecordingWindow]) -> list[dict]:
    """One fit-report row per window: ``recorded_from[column]``, declared or fitted
    (``n``: the records left out of the cohorts it feeds)."""
    from calibration.team import row

    return [row(f"recorded_from[{w.column}]", f"{w.start:%Y-%m-%d}", "fitted" if w.how == "detected" else "declared",
                w.reason, n=w.records_before) for w in windows.values()]


def annotate(report: list[dict], windows: dict[str, RecordingWindow]) -> None:
    """Append to each affected parameter's reason the cohort it was fitted on."""
    for row in report:
        cohort = next((c for p, c in PARAMETER_COHORT.items() if row["parameter"].startswith(p)), None)
        start = cohort_start(windows, cohort) if cohort else None
        if start is None or row["status"] != "fitted":
            continue
        cols = [c for c in COHORTS[cohort][1] if c in windows and windows[c].start == start]
        note = (f"fitted on records with {COHORTS[cohort][0]} from {start:%Y-%m-%d} on ({', '.join(cols)} "
                f"recorded only from then, {windows[cols[0]].how})")
        row["reason"] = f"{row['reason']}; {note}" if row["reason"] else note
