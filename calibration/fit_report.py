"""The fit report: every scenario parameter, fitted (estimate, n, 95% interval, pull
toward the pooled value) or assumed (the base scenario's value and why), beside the
segment rates and the join report, written as CSV files next to the fitted scenario."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["parameter", "status", "value", "estimate", "ci_low", "ci_high", "n", "raw_estimate", "shrinkage",
           "reason"]


def report_table(fit) -> pd.DataFrame:
    """``fit.report`` in a fixed column order, fitted rows first."""
    r = fit.report if fit.report is not None else pd.DataFrame(columns=COLUMNS)
    r = r.reindex(columns=COLUMNS)
    return r.sort_values("status", kind="stable", key=lambda s: s.map({"fitted": 0, "assumed": 1})) \
        .reset_index(drop=True)


def summary_lines(fit) -> list[str]:
    r = report_table(fit)
    fitted, assumed = (r["status"] == "fitted").sum(), (r["status"] == "assumed").sum()
    lines = [f"fit report: {fitted} parameter(s) fitted, {assumed} assumed from the base scenario"]
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
