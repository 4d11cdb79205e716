"""``lab plan``: the least-cost SDR shift plan that meets SLA targets (``sim.staffing``)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from common.errors import LabError


def register(app: typer.Typer):
    @app.command()
    def plan(
        scenario: Path = typer.Argument(..., help="base scenario YAML (its routing and funnel are kept)"),
        target: List[str] = typer.Option([], "--target", "-t", help="SLA target per band: hot=5m@80%, mql=4h@90%"),
        replications: int = typer.Option(10, "--replications", "-r", help="replications per candidate plan"),
        seed: Optional[int] = typer.Option(None, "--seed", help="base random seed (common to every candidate)"),
        compare: Optional[Path] = typer.Option(None, "--compare", help="policy file whose policies are costed too"),
        set_: List[str] = typer.Option([], "--set", help="override a field of the scenario: --set team.aes=3"),
        out: Path = typer.Option(Path("runs/plan"), "--out", help="output directory"),
        jobs: int = typer.Option(2, "--jobs", "-j", help="local worker processes"),
    ):
        """Find the hour-of-week staffing that meets SLA targets at least cost (Erlang C, a
        shift-cover integer program, then simulation on common random numbers)."""
        import pandas as pd

        from common.files import atomic_dir
        from sim.plots import staffing_frontier
        from sim.scenario import load_policies, load_scenario
        from sim.staffing import parse_target, plan_staffing

        if replications < 2 or jobs < 1:
            raise LabError(f"--replications must be at least 2 (for intervals) and --jobs at least 1; "
                           f"got {replications}, {jobs}")
        targets = [parse_target(t) for t in target]
        scn = load_scenario(scenario, set_)
        pols = load_policies(compare, set_)[1] if compare else None
        res = plan_staffing(scn, targets, replications=replications, seed=seed, n_jobs=jobs, compare=pols)
        cols = ["name", "people", "cost_per_week_usd"] + [f"{t.band}_{k}" for t in targets
                                                          for k in ("attainment", "low", "high")] + \
            ["net_value_usd", "net_value_low", "net_value_high", "meets_targets"]
        with pd.option_context("display.width", 220, "display.max_columns", 30):
            if res.plan:
                print("plan (people on each shift per day):")
                print(res.schedule().to_string())
                print(f"\nbest net value among the plans: {res.best_value_plan}")
            else:
                print("no candidate plan met every target; the closest are listed below")
            print("\nevery scenario simulated (95% intervals over replications, common random numbers):")
            print(res.candidates.sort_values("cost_per_week_usd")[cols].round(3).to_string(index=False))
        with atomic_dir(out) as tmp:
            res.candidates.drop(columns=["plan"]).to_csv(tmp / "candidates.csv", index=False)
            (res.schedule() if res.plan else pd.DataFrame()).to_csv(tmp / "plan.csv")
            pd.DataFrame(res.need.reshape(7, 24)).to_csv(tmp / "erlang_agents_per_hour.csv")
            chosen = "plan " + " ".join(f"{n}={k}" for n, k in res.plan.items() if k > 0) if res.plan else None
            staffing_frontier(res.candidates, targets, chosen).savefig(tmp / "frontier.png", dpi=120)
        print(f"\nwrote {out}")
