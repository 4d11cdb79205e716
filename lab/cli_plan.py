"""``lab plan``: the least-cost SDR shift plan that meets SLA targets, and the plan of
highest net value (``sim.staffing``)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from common.errors import LabError
from common.money import fmt_money


def describe(res) -> str:
    """The two plans as text: people per shift and day, cost per week and per quarter,
    attainment and net value with 95% intervals."""
    lines = []
    for label, plan in (("Least-cost plan meeting every target", res.plan),
                        ("Plan of highest net value", res.best_value_plan)):
        if not plan:
            lines += [f"{label}: none of the plans verified " +
                      ("met every target (the closest are listed below)" if plan is res.plan else "exists"), ""]
            continue
        r = res.row(plan)
        lines.append(f"{label}: {int(r['people'])} people, {fmt_money(r['cost_per_week_usd'], exact=True)} per week, "
                     f"{fmt_money(r['cost_per_quarter_usd'], exact=True)} per quarter")
        lines += ["  " + x for x in res.schedule(plan).to_string().splitlines()]
        for t in res.targets:
            a, lo, hi = (r[f"{t.band}_{k}"] for k in ("attainment", "low", "high"))
            lines.append(f"  {t.band.upper()} answered within {t.minutes:g} min: {a:.1%} "
                         f"(95% interval {lo:.1%} to {hi:.1%}; target {t.share:.0%})")
        lines.append(f"  net value against today: {fmt_money(r['net_value_per_quarter_usd'], exact=True)} per quarter "
                     f"(95% interval {fmt_money(r['net_value_per_quarter_low'], exact=True)} to "
                     f"{fmt_money(r['net_value_per_quarter_high'], exact=True)}); {fmt_money(r['net_value_usd'], exact=True)} over the "
                     f"{r['weeks']:g}-week window")
        lines.append("")
    return "\n".join(lines)


def register(app: typer.Typer):
    @app.command()
    def plan(
        scenario: Path = typer.Argument(..., help="base scenario YAML (its routing and funnel are kept)"),
        target: List[str] = typer.Option([], "--target", "-t", help="SLA target per band: hot=5m@80%, mql=4h@90%"),
        replications: int = typer.Option(10, "--replications", "-r", help="replications per plan verified"),
        seed: Optional[int] = typer.Option(None, "--seed", help="base random seed (common to every candidate)"),
        compare: Optional[Path] = typer.Option(None, "--compare", help="policy file whose policies are costed too"),
        set_: List[str] = typer.Option([], "--set", help="override a field of the scenario: --set team.aes=3"),
        patience: Optional[float] = typer.Option(None, "--patience", help="Erlang A mean patience in minutes for "
                                                 "the first guess (default: Erlang C; see sim/erlang.py)"),
        out: Path = typer.Option(Path("runs/plan"), "--out", help="output directory"),
        jobs: int = typer.Option(2, "--jobs", "-j", help="local worker processes"),
    ):
        """Find the hour-of-week staffing that meets SLA targets at least cost, and the one
        of highest net value (Erlang C per hour, a shift-cover integer program, then
        simulation on common random numbers: every candidate screened on a few
        replications, the finalists verified on all)."""
        import pandas as pd

        from common.files import atomic_dir
        from sim.plots import staffing_frontier
        from sim.scenario import load_policies, load_scenario
        from sim.staffing import parse_target, plan_label, plan_staffing

        if replications < 2:
            raise LabError(f"--replications: at least 2 are needed for an interval; got {replications}")
        if jobs < 1:
            raise LabError(f"--jobs: at least 1 worker; got {jobs}")
        if patience is not None and not patience > 0:
            raise LabError(f"--patience: a mean patience must be a positive number of minutes; got {patience}")
        targets = [parse_target(t) for t in target]
        scn = load_scenario(scenario, set_)
        pols = load_policies(compare, set_)[1] if compare else None
        res = plan_staffing(scn, targets, replications=replications, seed=seed, n_jobs=jobs, compare=pols,
                            patience_minutes=patience)
        cols = ["name", "people", "cost_per_week_usd", "cost_per_quarter_usd"] + \
            [f"{t.band}_{k}" for t in targets for k in ("attainment", "low", "high")] + \
            ["net_value_per_quarter_usd", "net_value_per_quarter_low", "net_value_per_quarter_high", "meets_targets"]
        print(describe(res))
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(f"every scenario verified ({replications} replications each, 95% intervals, common random "
                  f"numbers; {res.meta['plans_screened']} plans screened on {res.meta['screen_days']} days x "
                  f"{res.meta['screen_replications']} replications first):")
            print(res.candidates.sort_values("cost_per_week_usd")[cols].round(3).to_string(index=False))
        with atomic_dir(out) as tmp:
            res.candidates.drop(columns=["plan"]).to_csv(tmp / "candidates.csv", index=False)
            res.screened.drop(columns=["plan"]).to_csv(tmp / "screened.csv", index=False)
            res.summary().to_csv(tmp / "plans.csv", index_label="plan")
            (res.schedule() if res.plan else pd.DataFrame()).to_csv(tmp / "plan.csv")
            (res.schedule(res.best_value_plan) if res.best_value_plan else pd.DataFrame()).to_csv(
                tmp / "best_value_plan.csv")
            pd.DataFrame(res.need.reshape(7, 24)).to_csv(tmp / "erlang_agents_per_hour.csv")
            chosen = plan_label(res.plan) if res.plan else None
            staffing_frontier(res.candidates, targets, chosen).savefig(tmp / "frontier.png", dpi=120)
        print(f"wrote {out}")
