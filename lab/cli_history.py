"""``lab fit-scenario``: fit the simulator to a CRM export and back-test it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from common.errors import LabError


def register(app: typer.Typer):
    @app.command("fit-scenario")
    def fit_scenario_cmd(
        export: Path = typer.Argument(..., help="CRM export: a CSV or Parquet file (one row per lead), or the "
                                      "folder of a multi-table export"),
        mapping: Path = typer.Option(..., "--mapping", "-m", help="mapping file (see data/mappings/)"),
        out: Path = typer.Option(Path("runs/fitted_scenario.yaml"), "--out", help="scenario YAML to write"),
        base: Optional[Path] = typer.Option(None, "--base", help="scenario supplying what an export cannot tell "
                                            "(team hours, nurture, costs); default data/scenarios/baseline.yaml"),
        window_start: Optional[str] = typer.Option(None, "--window-start", help="first lead-creation date to fit "
                                                   "(default: the export's first)"),
        window_end: Optional[str] = typer.Option(None, "--window-end", help="last lead-creation date to fit"),
        backtest_: bool = typer.Option(True, "--backtest/--no-backtest", help="out-of-sample back-test: fit on the "
                                       "earlier leads, simulate the later ones, a verdict per KPI"),
        split: Optional[str] = typer.Option(None, "--split", help="back-test split date (default: two thirds "
                                            "into the creation window)"),
        replications: int = typer.Option(5, "--replications", "-r", help="back-test replications"),
        seed: int = typer.Option(2026, "--seed", help="back-test base seed"),
    ):
        """Fit arrivals, channels, response times, decay, stage rates and deal sizes to a
        CRM export; write a scenario the simulator runs as is, its fit report (fitted and
        assumed parameters), segment rates and join report; optionally back-test it."""
        import pandas as pd

        from calibration.backtest import holdout_backtest, save_backtest
        from calibration.fit_report import summary_lines, write_fit_report
        from calibration.history import fit_scenario

        if replications < 1:
            raise LabError(f"--replications must be at least 1; got {replications}")
        if not export.exists():
            raise LabError(f"{export}: export file not found")
        if not mapping.exists():
            raise LabError(f"{mapping}: mapping file not found")
        window = None
        if window_start or window_end:
            try:
                window = (pd.Timestamp(window_start or "1900-01-01"), pd.Timestamp(window_end or "2200-01-01"))
            except ValueError as exc:
                raise LabError(f"--window-start/--window-end: not a date ({exc})") from None
        fitted = fit_scenario(export, mapping, base=base, window=window)
        path = fitted.write(out)
        folder = Path(out).with_suffix("")
        files = write_fit_report(fitted, folder)
        print(fitted.summary())
        print("\n".join(summary_lines(fitted)))
        if backtest_:
            table, overall, _ = holdout_backtest(export, mapping, base=base, split=split,
                                                 replications=replications, seed=seed)
            files += save_backtest(table, overall, folder, scenario_path=path)
            with pd.option_context("display.width", 160, "display.float_format", "{:,.4g}".format):
                print(f"\nback-test (out of sample): {overall}")
                print(table[["kpi", "actual", "simulated", "pi_low", "pi_high", "verdict", "note"]].to_string(index=False))
        print(f"\nwrote {path}")
        for f in files:
            print(f"wrote {f}")
