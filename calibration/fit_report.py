"""The fit report: every scenario parameter, fitted (estimate, n, 95% interval, pull
toward the pooled value), declared (read from the mapping) or assumed (the base
scenario's value and why), beside the segment rates and the join report, written as CSV
files next to the fitted scenario. Rows ``recorded_from[column]`` name the stage dates
recorded only from some date on (``calibration.recording``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["parameter", "status", "value", "estimate", "ci_low", "ci_high", "n", "raw_estimate", "shrinkage",
           "reason"]
ORDER = {"fitted": 0, "declared": 1, "assumed": 2}


def report_table(fit) -> pd.DataFrame:
    """``fit.report`` in a fixed column order: fitted rows first, then declared, then assumed."""
    r = fit.report if fit.report is not None else pd.DataFrame(columns=COLUMNS)
    r = r.reindex(columns=COLUMNS)
    return r.sort_values("status", kind="stable", key=lambda s: s.map(ORDER).fillna(len(ORDER))) \
        .reset_index(drop=True)


def summary_lines(fit) -> list[str]:
    r = report_table(fit)
    fitted, assumed = (r["status"] == "fitted").sum(), (r["status"] == "assumed").sum()
    declared = (r["status"] == "declared").sum()
    lines = [f"fit report: {fitted} parameter(s) fitted, {declared} declared in the mapping, {assumed} assumed "
             "from the base scenario"]
    for _, row in r[r["parameter"].astype(str).str.startswith("recorded_from[")].iterrows():
        lines.append(f"  {row['parameter']} = {row['value']}: {row['reason']}")
    for _, row in r[r["status"] == "declared"].iterrows():
        if not str(row["parameter"]).startswith("recorded_from["):
            lines.append(f"  declared {row['parameter']}: {row['reason']}")
    for _, row in r[r["status"] == "assumed"].iterrows():
        lines.append(f"  assumed {row['parameter']}: {row['reason']}")
    shrunk = r[(r["status"] == "fitted") & (r["shrinkage"].fillna(0) > 0)]
    for _, row in shrunk.iterrows():
        lines.append(f"  shrunk  {row['parameter']}: {row['reason']}")
    if fit.joins is not None:
        lines += ["join report:"] + [f"  {ln}" for ln in fit.joins.lines()]
    return lines


def write_fit_report(fit, folder) -> list[Path]:
    """``fit_report.csv``, ``segment_rates.csv`` and (multi-table) ``join_report.csv``."""
    from common.files import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = [atomic_write_text(folder / "fit_report.csv", report_table(fit).to_csv(index=False))]
    if fit.segments is not None:
        out.append(atomic_write_text(folder / "segment_rates.csv", fit.segments.to_csv(index=False)))
    if fit.joins is not None:
        out.append(atomic_write_text(folder / "join_report.csv", fit.joins.table().to_csv(index=False)))
    return out

