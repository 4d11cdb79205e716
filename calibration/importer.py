"""Read a CRM export (CSV or Parquet, one row per lead) into the lab's columns.

Every check raises ``LabError`` naming the file, the column, the (1-based data) row,
the rule and the value: missing required columns, unparseable or ambiguous dates,
duplicate or missing lead ids, negative counts, unknown outcome values, empty data and
a single outcome class.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.mapping import (
    CATEGORICAL_FEATURES, CREATED, DATES, ID, NON_FEATURES, NUMERIC_FEATURES, OUTCOME,
    Mapping, load_mapping,
)
from common.errors import LabError

#: Targets a user may ask for besides the mapping's own success values.
STAGE_TARGETS = {"mql": "mql_at", "sal": "sal_at", "sql": "sql_at", "opportunity": "opportunity_at"}


@dataclass
class Target:
    """A binary outcome: ``y`` for the rows where ``mask`` is true, and what it means."""

    y: np.ndarray
    mask: np.ndarray
    label: str
    excluded: dict = field(default_factory=dict)


@dataclass
class LeadData:
    """An imported export: lab-named columns, candidate features and provenance."""

    frame: pd.DataFrame
    mapping: Mapping
    source: str
    sha256: str
    numeric: list[str]
    categorical: list[str]
    post_outcome: list[str]
    #: Multi-table exports: what joined and what did not (``calibration.joins``).
    joins: object = None
    #: Lab date columns that are naive local wall-clock (no offset, no declared time
    #: zone); None: unknown (a one-table export: the caller looks at the raw file).
    local_dates: set | None = None
    #: Rows flagged by the export checks, one line each (see ``check_export``).
    flags: list = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    @property
    def has_dates(self) -> bool:
        return CREATED in self.frame and self.frame[CREATED].notna().any()

    def target(self, outcome: str = "success", within_days: float | None = None) -> Target:
        """Build the binary target.

        Parameters
        ----------
        outcome : ``"success"`` (the mapping's success values), ``"won"`` (outcome ==
            won), or a stage reached: ``"mql"``, ``"sal"``, ``"sql"``, ``"opportunity"``.
        within_days : for a stage, count it only if reached within N days of
            ``created_at``; leads created less than N days before the export's last date
            are right-censored and left out.
        """
        df, excluded = self.frame, {}
        kind = df["_outcome_kind"].to_numpy()
        if outcome == "success":
            mask = kind != "open"
            y = kind == "success"
            label = f"{self.mapping.outcome.column} in {self.mapping.outcome.success}"
        elif outcome == "won":
            vals = df[OUTCOME].astype("string").str.lower()
            if not vals.dropna().isin(["won", "lost", "no_decision", "open"]).all():
                raise LabError(f"{self.source}: outcome 'won' needs column 'outcome' in won/lost/no_decision/"
                               f"open (map the values in the mapping's 'values'); got {sorted(vals.dropna().unique())[:5]}")
            mask = (vals != "open").fillna(False).to_numpy()
            y = (vals == "won").fillna(False).to_numpy()
            label = "outcome == won"
        elif outcome in STAGE_TARGETS:
            col = STAGE_TARGETS[outcome]
            if col not in df:
                raise LabError(f"{self.source}: outcome '{outcome}' needs column '{col}', which the mapping "
                               f"{self.mapping.source} does not provide")
            reached = df[col].notna().to_numpy()
            mask = np.ones(len(df), bool)
            label = f"{outcome} reached"
            if within_days is not None:
                if not self.has_dates:
                    raise LabError(f"{self.source}: '{outcome} within {within_days} days' needs created_at")
                delay = (df[col] - df[CREATED]).dt.total_seconds().to_numpy() / 86400.0
                reached = reached & (delay <= within_days)
                end = max(df[c].max() for c in DATES if c in df)
                mask = (df[CREATED] <= end - pd.Timedelta(days=within_days)).to_numpy()
                excluded["censored (created within the last window)"] = int((~mask).sum())
                label = f"{outcome} within {within_days:g} days"
            y = reached
        else:
            raise LabError(f"outcome must be one of success, won, {', '.join(STAGE_TARGETS)}; got {outcome!r}")
        excluded["open"] = int((kind == "open").sum()) if outcome == "success" else excluded.get("open", 0)
        y = np.asarray(y, dtype=np.int8)
        yy = y[mask]
        if len(yy) == 0:
            raise LabError(f"{self.source}: no labelled rows for outcome '{label}' (rule: at least one row)")
        if yy.min() == yy.max():
            raise LabError(f"{self.source}: outcome '{label}' has a single class (every labelled row is "
                           f"{int(yy[0])}); a scoring model needs both converting and non-converting leads")
        return Target(y=y, mask=np.asarray(mask, bool), label=label, excluded=excluded)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_table(path: str | Path, placeholders=()) -> pd.DataFrame:
    """Read CSV or Parquet (by suffix); exact placeholder strings become missing."""
    path = Path(path)
    if not path.exists():
        raise LabError(f"{path}: export file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if suffix in {".csv", ".txt", ".gz", ".tsv"}:
            # Any common encoding and dialect (calibration.csvread); plain UTF-8 CSV
            # takes pyarrow's multi-threaded parser.
            from calibration.csvread import read_csv_any

            if path.stat().st_size == 0:
                raise pd.errors.EmptyDataError
            return read_csv_any(path, na_values=list(placeholders) or None)[0]
    except pd.errors.EmptyDataError:
        raise LabError(f"{path}: the export is empty (rule: at least one lead row)") from None
    except (ValueError, OSError) as exc:
        raise LabError(f"{path}: cannot read the export: {exc}") from None
    raise LabError(f"{path}: unknown export format '{suffix}'; use .csv or .parquet")


def _tables_sha256(path, mapping: Mapping) -> str:
    from calibration.joins import table_path

    h = hashlib.sha256()
    for spec in mapping.tables.values():
        h.update(file_sha256(table_path(path, spec)).encode())
    return h.hexdigest()


def check_export(df: pd.DataFrame, mapping: Mapping, src: str, as_of=None) -> list[str]:
    """Checks a CRM export must pass; each problem is one line naming the file, column,
    row, rule and value. Refused: a negative amount, a date after the export's date
    (``as_of``: the mapping's ``as_of``, default now), a close date before the
    opportunity date. Flagged (returned): close dates of still-open leads, which CRMs
    fill with the *expected* close date - they are cleared, not read as closings."""
    flags = []
    if "amount" in df:
        neg = (df["amount"] < 0).fillna(False).to_numpy()
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise LabError(f"{src}: amount, row {i + 1}: an amount cannot be negative ({int(neg.sum())} such "
                           f"row(s)); got {float(df['amount'].iloc[i]):g}")
    if "closed_at" in df and "_outcome_kind" in df:
        open_ = (df["_outcome_kind"] == "open") & df["closed_at"].notna()
        if open_.any():
            i = int(np.flatnonzero(open_.to_numpy())[0])
            flags.append(f"{src}: closed_at, row {i + 1}: a close date on a lead still open is an expected date, "
                         f"not a closing; cleared on {int(open_.sum())} row(s); got {df['closed_at'].iloc[i]}")
            df.loc[open_, "closed_at"] = pd.NaT
    limit = pd.Timestamp(as_of or mapping.as_of or pd.Timestamp.now(tz="UTC").tz_localize(None)) + pd.Timedelta(days=1)
    for col in DATES:
        if col in df and pd.api.types.is_datetime64_any_dtype(df[col]):
            late = (df[col] > limit).fillna(False).to_numpy()
            if late.any():
                i = int(np.flatnonzero(late)[0])
                raise LabError(f"{src}: {col}, row {i + 1}: a date after the export's date {limit.date()} "
                               f"(rule: no future dates; {int(late.sum())} such row(s); set as_of in the mapping "
                               f"if the export is dated); got {df[col].iloc[i]}")
    if "closed_at" in df and "opportunity_at" in df:
        neg = ((df["closed_at"] - df["opportunity_at"]) < pd.Timedelta(0)).fillna(False).to_numpy()
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise LabError(f"{src}: closed_at, row {i + 1}: closed before the opportunity opened "
                           f"({df['opportunity_at'].iloc[i]}) (rule: durations are not negative; "
                           f"{int(neg.sum())} such row(s)); got {df['closed_at'].iloc[i]}")
    return flags


def import_export(path: str | Path, mapping: str | Path | Mapping, as_of=None) -> LeadData:
    """Read, rename, clean and validate an export (a file, or for a multi-table mapping
    the folder holding its tables). See the module docstring for checks."""
    mapping = load_mapping(mapping)
    joins, local = None, None
    if mapping.tables:
        from calibration.joins import assemble, table_path

        raw, joins, local_raw = assemble(path, mapping)
        main = mapping.tables[mapping.main_table]
        src = str(table_path(path, main))
        sha = _tables_sha256(path, mapping)
    else:
        raw = read_table(path, mapping.placeholders)
        src = str(path)
        sha = None
    if len(raw) == 0:
        raise LabError(f"{src}: the export is empty (rule: at least one lead row)")
    missing = [c for c in mapping.required if c not in raw.columns]
    if missing:
        raise LabError(f"{src}: missing required column(s) {missing} (named in mapping {mapping.source}); "
                       f"the export has {list(raw.columns)[:12]}{' ...' if raw.shape[1] > 12 else ''}")
    if ID not in [lab for _, lab in mapping.renames]:
        raise LabError(f"{mapping.source}: field 'columns': no export column is mapped to '{ID}'")
    post = [c for c in mapping.post_outcome if c in raw.columns]
    keep = list(dict.fromkeys([*mapping.required, *post]))
    df = _clear_placeholders(raw[keep], mapping.placeholders)
    extra = {lab: df[c] for c, lab in mapping.renames if lab != mapping.lab_name(c)}
    df = df.rename(columns={c: mapping.lab_name(c) for c in keep})
    for lab, s in extra.items():  # one export column feeding several lab columns
        df[lab] = s.to_numpy()
    for lab in mapping.derived:
        df[lab] = _clear_placeholders(raw[[lab]], mapping.placeholders)[lab].to_numpy()
    if mapping.tables:
        local = {lab for c, lab in mapping.renames if c in local_raw or f"{mapping.main_table}.{c}" in local_raw}
        local |= {lab for lab in mapping.derived if lab in local_raw}
    for col, table in mapping.values.items():
        col = mapping.lab_name(col)
        if col in df:
            df[col] = df[col].map(lambda v, t={str(k): w for k, w in table.items()}: t.get(str(v), v)
                                  if pd.notna(v) else v)
    _check_ids(df, src)
    for col in DATES:
        if col in df:
            df[col] = parse_dates(df[col], col, src, mapping.date_format, mapping.dayfirst)
    lab_numeric = [c for c in NUMERIC_FEATURES if c in df]
    extra_numeric = [c for c in mapping.features
                     if c in mapping.numeric or pd.api.types.is_numeric_dtype(df[c])]
    for col in lab_numeric + extra_numeric:
        df[col] = _to_number(df[col], col, src, nonnegative=col in lab_numeric)
    if "amount" in df:
        df["amount"] = _to_number(df["amount"], "amount", src, nonnegative=False)
    categorical = [c for c in CATEGORICAL_FEATURES if c in df]
    categorical += [c for c in mapping.features if c not in extra_numeric]
    for col in categorical:
        df[col] = df[col].astype("string").str.strip().astype(object).where(df[col].notna(), None)
    df["_outcome_kind"] = _outcome_kinds(df[OUTCOME], mapping, src)
    flags = check_export(df, mapping, f"{src}: {mapping.main_table}" if mapping.tables else src, as_of=as_of)
    ignore = {mapping.lab_name(c) for c in mapping.ignore}
    return LeadData(
        frame=df, mapping=mapping, source=src, sha256=sha or file_sha256(path), joins=joins,
        local_dates=local, flags=flags,
        numeric=[c for c in lab_numeric + extra_numeric if c not in ignore],
        categorical=[c for c in categorical if c not in ignore],
        post_outcome=post + [c for c in NON_FEATURES if c in df and c != OUTCOME],
    )


def _clear_placeholders(df: pd.DataFrame, placeholders) -> pd.DataFrame:
    """Placeholder values ("Select", "", "N/A", ...) become missing (case-insensitive)."""
    # Spelling variants a web form or a spreadsheet produces; a hash lookup per cell is
    # far cheaper on a million rows than normalising every cell.
    variants = set()
    for p in placeholders:
        for v in (p, p.strip(), p.lower(), p.upper(), p.title()):
            variants |= {v, f" {v}", f"{v} ", f" {v} "}
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
            continue
        bad = s.isin(variants)
        if bad.any():
            out[col] = s.mask(bad)
    return out


def _check_ids(df: pd.DataFrame, src: str):
    ids = df[ID]
    if ids.isna().any():
        i = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise LabError(f"{src}: column '{ID}', row {i + 1}: lead id is missing (rule: every lead has an id)")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        first = ids.iloc[rows[0]]
        same = np.flatnonzero((ids == first).to_numpy()) + 1
        raise LabError(f"{src}: column '{ID}': duplicate lead id {first!r} at rows {same[:5].tolist()} "
                       f"(rule: one row per lead; {int(ids.duplicated().sum())} duplicate row(s) in all)")


def parse_dates(s: pd.Series, col: str, src: str, date_format: str | None = None,
                dayfirst: bool | None = None) -> pd.Series:
    """Parse a date column to UTC-naive timestamps (``calibration.dates``: ISO 8601 as
    is; day/month order decided from the data or refused with the rows that prove it)."""
    from calibration.dates import parse_date_column

    return parse_date_column(s, f"{src}: column '{col}'", date_format, dayfirst)[0]


def _utc_naive(s: pd.Series) -> pd.Series:
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.astype("datetime64[ns]")


def _to_number(s: pd.Series, col: str, src: str, nonnegative: bool) -> pd.Series:
    x = pd.to_numeric(s, errors="coerce")
    bad = (s.notna() & x.isna()).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LabError(f"{src}: column '{col}', row {i + 1}: expected a number; got {s.iloc[i]!r}")
    if nonnegative and (x < 0).any():
        i = int(np.flatnonzero((x < 0).to_numpy())[0])
        raise LabError(f"{src}: column '{col}', row {i + 1}: a count cannot be negative; got {s.iloc[i]!r}")
    return x.astype(float)


def _outcome_kinds(s: pd.Series, mapping: Mapping, src: str) -> np.ndarray:
    uniq = pd.unique(s.dropna())
    kinds = {u: mapping.outcome_kind(u) for u in uniq}
    unknown = [u for u, k in kinds.items() if k is None]
    if s.isna().any():
        i = int(np.flatnonzero(s.isna().to_numpy())[0])
        raise LabError(f"{src}: column '{mapping.outcome.column}', row {i + 1}: outcome is missing "
                       "(rule: every lead has an outcome; mark undecided leads with an 'open' value)")
    if unknown:
        i = int(np.flatnonzero(s.isin(unknown).to_numpy())[0])
        o = mapping.outcome
        raise LabError(f"{src}: column '{o.column}', row {i + 1}: unknown outcome value {s.iloc[i]!r} "
                       f"(rule: one of success {o.success}, failure {o.failure}, open {o.open} "
                       f"in {mapping.source})")
    return s.map(kinds).to_numpy(dtype=object)
