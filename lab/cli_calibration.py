"""``lab refit``: the quarterly scoring refit from the command line (logic in calibration/).

``lab fit-scenario`` (fit the simulator to history) will register here too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("refit")(refit)


def refit(
    export: Path = typer.Argument(..., help="CRM export, CSV or Parquet, one row per lead"),
    mapping: Path = typer.Option(..., "--mapping", "-m", help="mapping YAML (data/mappings/*.yaml)"),
    previous: Optional[str] = typer.Option(None, "--previous", help="previous model: refit directory or points table"),
    out: Optional[Path] = typer.Option(None, "--out", help="model directory to write (default runs/refit/<name>)"),
    outcome: str = typer.Option("success", "--outcome", help="success | won | mql | sal | sql | opportunity"),
    within_days: Optional[float] = typer.Option(None, "--within-days", help="count the stage only within N days"),
    seed: int = typer.Option(0, "--seed", help="seed of the holdout, folds and bootstrap"),
    holdout: float = typer.Option(0.3, "--holdout", help="share of leads held out (latest by time, if dated)"),
    weekly_volume: Optional[float] = typer.Option(None, "--weekly-volume", help="leads arriving per week"),
    capacity: Optional[float] = typer.Option(None, "--capacity", help="leads/week the SDRs can work within SLA"),
    hot_capacity: Optional[float] = typer.Option(None, "--hot-capacity", help="leads/week contacted immediately"),
    score_min: int = typer.Option(0, "--score-min", help="lowest possible total (min-max scale)"),
    score_max: int = typer.Option(100, "--score-max", help="highest possible total (min-max scale)"),
    pdo: Optional[float] = typer.Option(None, "--pdo", help="points to double the odds (instead of min-max)"),
    score_both: list[str] = typer.Option([], "--score-both", help="raw field to score beside its derived flag"),
    n_boot: int = typer.Option(200, "--n-boot", help="bootstrap resamples for the confidence intervals"),
):
    """Refit lead-scoring points on outcomes; write a versioned model directory."""
    from calibration.refit import run_refit
    from common.files import output_lock
    from common.paths import ROOT

    def fit():
        return run_refit(export, mapping, previous=previous, outcome=outcome, within_days=within_days, seed=seed,
                         holdout=holdout, weekly_volume=weekly_volume, capacity=capacity, hot_capacity=hot_capacity,
                         score_min=score_min, score_max=score_max, pdo=pdo, score_both=score_both, n_boot=n_boot)

    if out is not None:
        with output_lock(out):  # checked (not a file, writable, not in use) before the fit, held to the swap
            res = fit()
            path = res.save(out)
    else:  # the default folder is named after the fitted model
        res = fit()
        target = ROOT / "runs" / "refit" / res.meta["name"]
        with output_lock(target):
            path = res.save(target)
    th = res.points_table.thresholds
    rows = res.meta["rows"]
    print(f"refit of {export} ({res.meta['outcome']}): {rows['labelled']} labelled leads, "
          f"train {rows['train']} / test {rows['test']}; split: {res.split['rule']}")
    print(res.summary().to_string())
    r = res.meta["rounding"]
    print(f"ROC AUC before / after rounding to points: {r['roc_auc_model']:.3f} / {r['roc_auc_points']:.3f}")
    sc = res.meta["scaling"]
    lo, hi = sc["table_range"]
    print(f"scale: {sc['scale']} {lo:g}-{hi:g} points ({sc['pdo']:.1f} points double the odds)")
    print(f"thresholds: hot {th.hot:g}, mql {th.mql:g}, nurture {th.nurture:g} ({res.meta['thresholds']['rule']})")
    print(f"score decay: {res.decay['rule']}")
    for note in res.notes:
        print(f"note: {note}")
    print(f"score PSI: {res.comparison.score_psi:.3f} ({res.comparison.psi_reference})")
    print(f"recommendation: {res.comparison.recommendation}")
    print(f"in use: {res.decision}")
    print(f"model written to {path}")
