"""Multi-table exports: read each table a mapping names, join them to the main table by
the keys it names, derive lab columns from one-to-many tables, and report what did not
join.

The result is one row per row of the main table. Its columns are the main table's own
(bare names), those of tables joined one-to-one (``table.column``), the derived lab
columns (lab names) and, when the outcome comes from a one-to-many table, that table's
outcome column (``table.column``). ``calibration.importer`` then renames, cleans and
checks it exactly as a one-table export.

Every problem is one line: ``<file>: <table>: <column>, row N: <rule>; got <value>``
(row N is the 1-based data row of that table's file).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.dates import parse_date_column
from calibration.mapping import DATES, Mapping, TableSpec
from common.errors import LabError

EXAMPLES = 5


@dataclass
class JoinReport:
    """Per joined table: rows, main rows matched, main rows with no key, keys of the main
    table with no row here (count and examples), rows here matching no main row, and
    keys that would match after normalising case or spaces (a hint)."""

    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dates: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def lines(self) -> list[str]:
        out = []
        for r in self.rows:
            line = (f"{r['table']} ({r['kind']}, {r['column']} -> {r['to']}): {r['table_rows']} rows; "
                    f"{r['main_matched']} of {r['main_rows']} main rows matched")
            if r["main_without_key"]:
                line += f", {r['main_without_key']} with no key"
            if r["main_unmatched"]:
                line += f", {r['main_unmatched']} whose key has no row here (e.g. {r['main_unmatched_examples']})"
            if r["table_unmatched"]:
                line += f"; {r['table_unmatched']} rows here match no main row (e.g. {r['table_unmatched_examples']})"
            if r.get("hint"):
                line += f"; {r['hint']}"
            out.append(line)
        return out + self.notes


def norm_keys(s: pd.Series, how) -> pd.Series:
    """Keys as text, trimmed; ``case`` folds case, ``spaces`` removes every space."""
    out = s.astype("string").str.strip()
    out = out.str.replace(r"\.0$", "", regex=True) if pd.api.types.is_float_dtype(s) else out
    if "case" in how:
        out = out.str.casefold()
    if "spaces" in how:
        out = out.str.replace(r"\s+", "", regex=True)
    return out


def table_path(export: str | Path, spec: TableSpec) -> Path:
    base = Path(export)
    return (base if base.is_dir() else base.parent) / spec.file


def read_tables(export: str | Path, mapping: Mapping) -> dict[str, pd.DataFrame]:
    """Each table of the mapping, read (any encoding / dialect), filtered by ``where``,
    value maps applied. A missing file or column is one line."""
    from calibration.importer import read_table

    out = {}
    for name, spec in mapping.tables.items():
        path = table_path(export, spec)
        if not path.exists():
            raise LabError(f"{path}: {name}: table file not found (rule: every table of {mapping.source} "
                           f"is in the export folder {Path(export)})")
        df = read_table(path, mapping.placeholders)
        df.columns = [str(c).strip() for c in df.columns]
        needed = _columns_needed(mapping, name)
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise LabError(f"{path}: {name}: missing column(s) {missing} (named in {mapping.source}); the "
                           f"table has {list(df.columns)[:12]}{' ...' if df.shape[1] > 12 else ''}")
        df.index = pd.RangeIndex(len(df))
        for col, table in spec.values.items():
            if col in df:
                t = {str(k): v for k, v in table.items()}
                df[col] = df[col].map(lambda v: t.get(str(v), v) if pd.notna(v) else v)
        for col, keep in spec.where.items():
            if col not in df:
                raise LabError(f"{path}: {name}: {col}: column named in 'where' is missing")
            df = df[df[col].astype("string").isin([str(v) for v in keep])]
        out[name] = df
    return out


def _columns_needed(mapping: Mapping, table: str) -> list[str]:
    main = mapping.main_table
    cols = []
    for c in [*mapping.columns, *mapping.features, mapping.outcome.column]:
        t, col = c.split(".", 1) if "." in c and c.split(".", 1)[0] in mapping.tables else (main, c)
        if t == table:
            cols.append(col)
    spec = mapping.tables[table]
    if spec.join is not None:
        cols.append(spec.join.column)
    for other in mapping.tables.values():
        if other.join is not None:
            t, col = other.join.to.split(".", 1) if "." in other.join.to else (main, other.join.to)
            if t == table:
                cols.append(col)
    for d in mapping.derived.values():
        if d.table == table:
            cols += [d.column] + ([d.order_by] if d.order_by else []) + list(d.where)
    if mapping.outcome.order_by and mapping.outcome.column.startswith(table + "."):
        cols.append(mapping.outcome.order_by)
    return list(dict.fromkeys(cols))


def _date_columns(mapping: Mapping, table: str) -> set[str]:
    """Columns of ``table`` read as dates: those feeding a lab date, derived dates and
    their ordering columns, and any the table's ``dates`` names."""
    main = mapping.main_table
    spec = mapping.tables[table]
    cols = set(spec.dates)
    for export, lab in mapping.renames:
        if lab in DATES:
            t, col = export.split(".", 1) if "." in export and export.split(".", 1)[0] in mapping.tables \
                else (main, export)
            if t == table:
                cols.add(col)
    for lab, d in mapping.derived.items():
        if d.table == table:
            if lab in DATES:
                cols.add(d.column)
            if d.order_by:
                cols.add(d.order_by)
            if d.after and d.order_by is None:
                cols.add(d.column)
    if mapping.outcome.order_by and mapping.outcome.column.startswith(table + "."):
        cols.add(mapping.outcome.order_by)
    return cols


def assemble(export: str | Path, mapping: Mapping) -> tuple[pd.DataFrame, JoinReport, set[str]]:
    """Join the tables of ``mapping`` into one frame, one row per main-table row (see the
    module docstring). Returns the frame, the join report and the set of its date
    columns that are naive local wall-clock (no offset in the data, no ``timezone``)."""
    report = JoinReport()
    tables = read_tables(export, mapping)
    main = mapping.main_table
    naive: set[str] = set()
    for name, df in tables.items():
        spec = mapping.tables[name]
        file = table_path(export, spec)
        for col in _date_columns(mapping, name):
            ds = spec.date_spec(col)
            df[col], info = parse_date_column(df[col], f"{file}: {name}: {col}", ds.format, ds.dayfirst, ds.timezone)
            report.dates[f"{name}.{col}"] = ", ".join(sorted(info.order)) + (" (proved by " + info.proof + ")"
                                                                              if info.proof else "") \
                + ("; UTC" if info.aware else "; local, no time zone")
            if not info.aware:
                naive.add(f"{name}.{col}")
    frame = tables[main].copy()
    _unique_key(tables[main], mapping.tables[main].key, table_path(export, mapping.tables[main]), main)
    many = {}
    for name, spec in mapping.tables.items():
        if name == main:
            continue
        df, j = tables[name], spec.join
        file = table_path(export, spec)
        to = j.to if "." in j.to and j.to.split(".", 1)[0] in mapping.tables else f"{main}.{j.to}"
        to_col = to if not to.startswith(main + ".") else to.split(".", 1)[1]
        left = frame[to_col]
        right = df[j.column]
        if j.keys:
            keys = {str(k): v for k, v in j.keys.items()}
            right = right.map(lambda v: keys.get(str(v), v) if pd.notna(v) else v)
        lk, rk = norm_keys(left, j.normalize), norm_keys(right, j.normalize)
        row = _report_row(name, j, left, lk, rk, df)
        report.rows.append(row)
        if j.kind == "one_to_one":
            dup = rk.duplicated(keep=False) & rk.notna()
            if dup.any():
                i = int(np.flatnonzero(dup.to_numpy())[0])
                same = np.flatnonzero((rk == rk.iloc[i]).fillna(False).to_numpy())
                raise LabError(f"{file}: {name}: {j.column}, row {int(df.index[i]) + 1}: key repeated at rows "
                               f"{(df.index[same][:5] + 1).tolist()} (rule: one_to_one join, one row per key; "
                               f"use kind: one_to_many with a rule); got {right.iloc[i]!r}")
            pos = pd.Series(np.arange(len(df)), index=rk.to_numpy())
            pos = pos[pos.index.notna()]
            hit = lk.map(pos)
            idx = hit.to_numpy(dtype=float)
            ok = ~np.isnan(idx)
            for col in df.columns:
                vals = pd.Series(pd.NA, index=frame.index, dtype=object) if not \
                    pd.api.types.is_datetime64_any_dtype(df[col]) else pd.Series(pd.NaT, index=frame.index)
                vals[ok] = df[col].to_numpy()[idx[ok].astype(int)]
                frame[f"{name}.{col}"] = vals.infer_objects() if vals.dtype == object else vals
            naive |= {f"{name}.{c}" for c in df.columns if f"{name}.{c}" in naive}
        else:
            pos = pd.Series(np.arange(len(frame)), index=lk.to_numpy())
            pos = pos[~pos.index.duplicated() & pos.index.notna()]
            owner = rk.map(pos)
            many[name] = df.assign(_main=owner.to_numpy()).dropna(subset=["_main"])
            many[name]["_main"] = many[name]["_main"].astype(int)
    for lab, d in mapping.derived.items():
        frame[lab] = _derive(frame, many[d.table], d, lab, mapping, report)
        if f"{d.table}.{d.column}" in naive:
            naive.add(lab)
    oc = mapping.outcome.column
    if "." in oc and oc.split(".", 1)[0] in many:
        frame[oc] = _derive_outcome(frame, many[oc.split(".", 1)[0]], oc.split(".", 1)[1], mapping, report)
    elif oc in frame and mapping.outcome.unmatched is not None:
        miss = frame[oc].isna()
        frame[oc] = frame[oc].astype(object).where(~miss, mapping.outcome.unmatched)
        report.notes.append(f"outcome: {int(miss.sum())} main rows have no {oc} (outcome "
                            f"{mapping.outcome.unmatched!r})")
    return frame, report, naive


def _unique_key(df, key, file, name):
    if key is None:
        return
    dup = df[key].duplicated(keep=False) & df[key].notna()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise LabError(f"{file}: {name}: {key}, row {i + 1}: key repeated (rule: the main table has one row per "
                       f"key; {int(df[key].duplicated().sum())} repeated row(s)); got {df[key].iloc[i]!r}")


def _examples(values) -> list:
    return [str(v) for v in pd.unique(pd.Series(values).dropna())[:EXAMPLES]]


def _report_row(name, j, left, lk, rk, df) -> dict:
    rset = set(rk.dropna())
    lset = set(lk.dropna())
    main_no_key = int(lk.isna().sum())
    main_unmatched = lk.notna() & ~lk.isin(rset)
    table_unmatched = rk.notna() & ~rk.isin(lset)
    row = dict(table=name, kind=j.kind, column=j.column, to=j.to, table_rows=len(df), main_rows=len(left),
               main_matched=int(lk.isin(rset).sum()), main_without_key=main_no_key,
               main_unmatched=int(main_unmatched.sum()), main_unmatched_examples=_examples(left[main_unmatched]),
               table_unmatched=int(table_unmatched.sum()),
               table_unmatched_examples=_examples(df[j.column][table_unmatched.to_numpy()]), hint="")
    lost = set(lk[main_unmatched].dropna()) | set(rk[table_unmatched].dropna())
    if lost:
        for how in (["spaces"], ["case"], ["case", "spaces"]):
            if set(j.normalize) >= set(how):
                continue
            ln, rn = norm_keys(lk[main_unmatched].dropna(), how), norm_keys(rk[table_unmatched].dropna(), how)
            both = set(ln) & set(rn)
            if both:
                a = lk[main_unmatched].dropna()[ln.isin(both).to_numpy()].iloc[0]
                b = rk[table_unmatched].dropna()[rn.isin(both).to_numpy()].iloc[0]
                row["hint"] = (f"{len(both)} key(s) match after normalising {' and '.join(how)} "
                               f"({a!r} ~ {b!r}): add normalize: {how} or a 'keys' entry to the join")
                break
    return row


def _derive(frame, rel: pd.DataFrame, d, lab, mapping: Mapping, report: JoinReport) -> pd.Series:
    r = rel
    for col, keep in d.where.items():
        r = r[r[col].astype("string").isin([str(v) for v in keep])]
    order = d.order_by or d.column
    if d.after:
        src = next((c for c, lab in mapping.renames if lab == d.after), d.after)
        if src not in frame and d.after in frame:
            src = d.after
        if src not in frame:
            raise LabError(f"{mapping.source}: derived.{lab}.after: lab column {d.after!r} is not built before "
                           f"{lab!r} (rule: map it in 'columns' or derive it earlier)")
        ref = frame[src].to_numpy()[r["_main"].to_numpy()]
        r = r[(r[order].to_numpy() >= ref)]
    g = r.groupby("_main", sort=False)
    if d.rule == "count":
        out = g.size().reindex(range(len(frame)), fill_value=0).astype(float)
        return pd.Series(out.to_numpy(), index=frame.index)
    r = r[r[d.column].notna()]
    if d.rule in ("first", "last"):
        r = r.sort_values(order, kind="stable", ascending=d.rule == "first", na_position="last")
        picked = r.drop_duplicates("_main", keep="first").set_index("_main")[d.column]
    elif d.rule == "any":
        picked = r.drop_duplicates("_main").set_index("_main")[d.column]
    else:
        picked = getattr(r.groupby("_main")[d.column], d.rule)()
    out = picked.reindex(range(len(frame)))
    report.notes.append(f"derived {lab}: {d.rule} {d.table}.{d.column}"
                        + (f" where {d.where}" if d.where else "") + (f" at or after {d.after}" if d.after else "")
                        + f": {int(out.notna().sum())} of {len(frame)} main rows have one")
    return pd.Series(out.to_numpy(), index=frame.index)


def _derive_outcome(frame, rel: pd.DataFrame, column: str, mapping: Mapping, report: JoinReport) -> pd.Series:
    o = mapping.outcome
    r = rel[rel[column].notna()].copy()
    rank = {"success": 0, "open": 1, "failure": 2, None: 3}
    vmap = {str(k): v for k, v in (mapping.values.get("outcome") or mapping.values.get(o.column) or {}).items()}
    r["_rank"] = [rank[mapping.outcome_kind(vmap.get(str(v), v))] for v in r[column]]
    if o.rule == "any":
        r = r.sort_values(["_main", "_rank"], kind="stable")
    else:
        r = r.sort_values(o.order_by, kind="stable", ascending=o.rule == "first")
    picked = r.drop_duplicates("_main").set_index("_main")[column].reindex(range(len(frame)))
    missing = int(picked.isna().sum())
    if o.unmatched is not None:
        picked = picked.astype(object).where(picked.notna(), o.unmatched)
    report.notes.append(f"outcome: {o.rule} {mapping.outcome.column}; {missing} main rows have no related row"
                        + (f" (outcome {o.unmatched!r})" if o.unmatched is not None else ""))
    return pd.Series(picked.to_numpy(), index=frame.index)

