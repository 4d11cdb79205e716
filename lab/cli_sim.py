"""``lab simulate`` and ``lab sweep``: RevOps' commands."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from common.errors import LabError


def _ran(result, seconds: float) -> None:
    """On a terminal the replications bar showed the run; in a log (no bar there) one
    line says what ran and how long it took, once the output is written."""
    if not sys.stderr.isatty():
        n, policies = len(result.kpis), len(result.scenarios)
        of = f" ({policies} policies)" if policies > 1 else ""
        print(f"ran {n} replications{of} in {seconds:.1f} s", file=sys.stderr, flush=True)


def _print_summary(result, out: Path):
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 40):
        print(result.table().to_string())
    print(f"\nwrote {out}")


#: The KPIs whose differences from the baseline ``lab sweep`` prints, money first.
DIFFERENCE_KPIS = ["sql_count", "pipeline_usd", "expected_revenue_usd", "net_value_per_quarter_usd",
                   "sla_attainment_hot", "response_median_minutes"]


def baseline_policy(names: list[str], wanted: str | None, source: Path) -> str:
    """The policy the others are compared with: ``wanted``, else the one named
    ``baseline``, else the first; an unknown name is one ``LabError``."""
    if wanted is None:
        return "baseline" if "baseline" in names else names[0]
    if wanted not in names:
        raise LabError(f"--baseline: {source} has no policy named {wanted!r} "
                       f"(rule: one of its policies: {', '.join(names)}); got {wanted!r}")
    return wanted


def difference_table(kpis, policies: list[str], baseline: str, names: list[str] | None = None):
    """Each policy's difference from ``baseline``, paired by replication: one row per
    policy, one column per KPI, "effect [low, high]" with the 95% interval of the paired
    differences (``lab.story.effects``), or "effect n/a" below two replications."""
    import pandas as pd

    from lab.story import effects

    names = [k for k in (names or DIFFERENCE_KPIS) if k in kpis.columns]
    rows = {}
    for policy in policies:
        if policy == baseline:
            continue
        e = effects(kpis, policy, baseline, names).set_index("kpi")
        rows[policy] = {k: _difference(k, e.loc[k]) for k in names if k in e.index}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=names)
    table.index.name = "policy"
    return table


def _difference(kpi: str, e) -> str:
    import pandas as pd

    from lab.story import fmt

    effect = fmt(kpi, e["effect"], signed=True)
    if pd.isna(e["low"]) or pd.isna(e["high"]):
        return f"{effect} n/a"
    return f"{effect} [{fmt(kpi, e['low'], signed=True)}, {fmt(kpi, e['high'], signed=True)}]"


def _print_differences(result, baseline: str) -> None:
    import pandas as pd

    table = difference_table(result.kpis, list(result.scenarios), baseline)
    if table.empty:
        print(f"\nno difference from {baseline} to show: the sweep has one policy")
        return
    print(f"\ndifference from {baseline} (policy minus {baseline}, paired by replication; mean [95% interval]):")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 40):
        print(table.to_string())


def _backtest_record(result, scenario_path: Path) -> None:
    """Record the scenario's back-test verdict in the run's provenance (run.json), and say
    on stderr when the twin failed it: its figures are not validated."""
    from sim.scenario import backtest_verdict

    verdict = backtest_verdict(scenario_path)
    result.meta["scenario_backtest"] = verdict or "none recorded"
    if verdict is not None and verdict.startswith("fail"):
        print(f"warning: {scenario_path}: this scenario failed its back-test ({verdict}); "
              "its figures are not validated against history", file=sys.stderr)


def register(app: typer.Typer):
    @app.command()
    def simulate(
        scenario: Path = typer.Argument(..., help="scenario YAML file (see data/scenarios/)"),
        replications: Optional[int] = typer.Option(None, "--replications", "-r", help="number of replications"),
        seed: Optional[int] = typer.Option(None, "--seed", help="base random seed"),
        set_: List[str] = typer.Option([], "--set", help="override a field: --set team.sdrs=8 (repeatable)"),
        out: Path = typer.Option(Path("runs/simulate"), "--out", help="output directory"),
        jobs: int = typer.Option(1, "--jobs", "-j", help="local worker processes"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="dask.distributed scheduler address"),
        tables: bool = typer.Option(True, "--tables/--no-tables", help="write the lead export and event log"),
    ):
        """Run one scenario over many replications; write KPIs, summary, leads and events."""
        from common.files import output_lock
        from sim.experiment import run_scenario
        from sim.output import write_result
        from sim.scenario import load_scenario

        _check(replications, jobs, seed)
        scn = load_scenario(scenario, set_)
        with output_lock(out):  # checked and held from before the run to the swap
            started = time.monotonic()
            res = run_scenario(scn, replications=replications, seed=seed, n_jobs=jobs, scheduler=scheduler,
                               keep_tables=tables, progress=sys.stderr.isatty())
            seconds = time.monotonic() - started
            _backtest_record(res, scenario)
            _print_summary(res, write_result(res, out))
            _ran(res, seconds)

    @app.command()
    def sweep(
        policies: Path = typer.Argument(..., help="policy file: a base scenario and the policies to compare"),
        replications: Optional[int] = typer.Option(None, "--replications", "-r", help="replications per policy"),
        seed: Optional[int] = typer.Option(None, "--seed", help="base random seed (shared by all policies)"),
        set_: List[str] = typer.Option([], "--set", help="override a field of every policy: --set team.sdrs=8"),
        out: Path = typer.Option(Path("runs/sweep"), "--out", help="output directory"),
        jobs: int = typer.Option(2, "--jobs", "-j", help="local worker processes"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="dask.distributed scheduler address"),
        baseline: Optional[str] = typer.Option(None, "--baseline", help="policy the others are compared with "
                                               "(default: the one named baseline, else the first)"),
    ):
        """Compare policies side by side on common random numbers: their levels, then each
        one's difference from the baseline with its 95% interval."""
        from common.files import output_lock
        from sim.experiment import run_sweep
        from sim.output import write_result
        from sim.scenario import load_policies

        _check(replications, jobs, seed)
        pset, scenarios = load_policies(policies, set_)
        base_policy = baseline_policy(list(scenarios), baseline, policies)
        with output_lock(out):
            started = time.monotonic()
            res = run_sweep(scenarios, replications=replications, seed=seed, n_jobs=jobs, scheduler=scheduler,
                            keep_tables="first", progress=sys.stderr.isatty())
            seconds = time.monotonic() - started
            base = Path(pset.base) if Path(pset.base).is_absolute() else policies.parent / pset.base
            _backtest_record(res, base)
            _print_summary(res, write_result(res, out))
            _ran(res, seconds)
        _print_differences(res, base_policy)
        from sim.mechanism import mechanism_table  # an SLA change alone may move nothing

        print("\nwhat each policy changes in the team's work:\n" + mechanism_table(scenarios)["mechanism"].to_string())


def _check(replications, jobs, seed=None):
    if replications is not None and replications < 1:
        raise LabError(f"--replications must be at least 1; got {replications}")
    if jobs < 1:
        raise LabError(f"--jobs must be at least 1; got {jobs}")
    if seed is not None and seed < 0:
        raise LabError(f"--seed: a seed must be a non-negative integer (rule: seeds start at 0); got {seed}")
