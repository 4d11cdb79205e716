"""``lab fit-scenario``: fit the simulator to a CRM export and back-test it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from common.errors import LabError


def register(app: typer.Typer):
    @app.command("fit-scenario")
    def fit_scenario_cmd(
        export: Path = typer.Argument(..., help="CRM export, CSV or Parquet, one row per lead"),
        mapping: Path = typer.Option(..., "--mapping", "-m", help="mapping file (see data/mappings/)"),
        out: Path = typer.Option(Path("runs/fitted_scenario.yaml"), "--out", help="scenario YAML to write"),
        base: Optional[Path] = typer.Option(None, "--base", help="scenario supplying what an export cannot tell "
                                            "(team hours, nurture, costs); default data/scenarios/baseline.yaml"),
        backtest_: bool = typer.Option(True, "--backtest/--no-backtest", help="simulate the fit and compare KPIs"),
        replications: int = typer.Option(5, "--replications", "-r", help="back-test replications"),
        seed: int = typer.Option(2026, "--seed", help="back-test base seed"),
    ):
        """Fit arrivals, channels, response times, decay, stage rates and deal sizes to a
        CRM export; write a scenario the simulator runs as is; optionally back-test it."""
        import pandas as pd

        from calibration.backtest import backtest
        from calibration.history import fit_scenario

        if replications < 1:
            raise LabError(f"--replications must be at least 1; got {replications}")
        if not export.exists():
            raise LabError(f"{export}: export file not found")
        if not mapping.exists():
            raise LabError(f"{mapping}: mapping file not found")
        fitted = fit_scenario(export, mapping, base=base)
        path = fitted.write(out)
        print(fitted.summary())
        if backtest_:
            bt = backtest(fitted, export, mapping, replications=replications, seed=seed)
            with pd.option_context("display.width", 160, "display.float_format", "{:,.4g}".format):
                print("\nback-test (simulated mean and 95% CI vs actual):")
                print(bt.to_string(index=False))
        print(f"\nwrote {path}")
