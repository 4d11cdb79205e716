"""The decision chain behind ``lab report`` (and ``make report``).

``main_jobs`` assembles it: export -> scoring refit and fitted twin -> policies and
cut-offs on today's process -> the leadership report. Each ``Job`` is a notebook whose
``stage`` orders it after the runs whose outputs it reads; jobs of one stage run in
parallel:

    stage 0  00_simulate_history   -> runs/history.csv   (only without an export: the shipped sample)
    stage 1  01_refit_scoring      -> runs/refit/        (champion/challenger: the table in use)
             02_fit_funnel         -> runs/fitted_scenario.yaml + its fit report and back-test
    stage 2  03_sla_policies       -> runs/sla_policies/ (on today's process: lab.chain)
             04_threshold_policies -> runs/thresholds/   (today's cut-offs moved together)
    stage 3  05_scenario_report    (reads them all)

Today's process (scenario, scoring table, cut-offs) is decided once, by
``lab.chain.resolve_today``, from the files of stage 1; notebooks 03, 04 and 05 call it
with the same inputs. The policy comparison and the cut-off grid run with the same seed,
replications and horizon, so the grid's point at today's cut-offs *is* today's process
and every section of the report quotes the same figures.
"""
from __future__ import annotations

from pathlib import Path

from lab.notebook_jobs import Job
from common.paths import DATA, SCENARIOS

#: The seed of the policy runs when the command does not give one.
SEED = 2026
#: The shipped sample's history is simulated with its own seed, so the policy runs never
#: replay the very leads the twin and the refit learned from.
HISTORY_SEED = 7
BACKTEST_REPLICATIONS = 8
#: The refit learns which leads become SQLs (a quarter holds few closed deals), on the
#: default 0-100 scale, with cut-offs for what five SDRs can work (about 400 MQLs a week).
SDR_CAPACITY = 400.0
N_JOBS = 2


def main_jobs(out_dir: str | Path, export: str | Path | None = None, mapping: str | Path | None = None,
              scenario: str | Path | None = None, policies: str | Path | None = None, replications: int = 0,
              seed: int = SEED, outcome: str | None = None, horizon_days: int = 91,
              plan: bool = False) -> list[Job]:
    """The notebook jobs of the chain, writing under ``out_dir``.

    Parameters
    ----------
    out_dir : path
        The reports folder; intermediate results go to ``out_dir/runs/``.
    export, mapping : path, optional
        The team's CRM export (file or multi-table folder) and its mapping file; without
        an export, a history is simulated from the base scenario (the shipped sample).
    scenario : path, optional
        Base scenario (default: the policy file's ``base:``).
    policies : path, optional
        Policy file (default: data/scenarios/policies.yaml).
    replications : int
        Replications per policy and per cut-off (0: the policy file's).
    outcome : str, optional
        What the refit learns ("sql" for the sample, "success" (won) for an export).
    horizon_days : int
        Simulated days per replication (a quarter).
    plan : bool
        Include the staffing plan in the policy notebook (off by default: it searches and
        verifies many candidate teams and would triple the chain's time; ``lab plan`` and
        ``lab run 03_sla_policies`` run it).

    Returns
    -------
    list of Job
        In chain order, each with its stage.
    """
    from lab import chain
    from sim.scenario import load_scenario

    runs = Path(out_dir).resolve() / "runs"
    policies = str(Path(policies or SCENARIOS / "policies.yaml").resolve())
    base = str(chain.base_scenario_path(scenario or "", policies).resolve())
    jobs = []
    if export is None:
        history = str(runs / "history.csv")
        mapping = str(DATA / "mappings" / "sim_leads.yaml")
        jobs.append(Job("00_simulate_history", {"scenario": base, "export_path": history, "replications": 1,
                                                "seed": HISTORY_SEED, "horizon_days": horizon_days, "n_jobs": 1},
                        stage=0))
        outcome = outcome or "sql"
    else:
        if mapping is None:
            from common.errors import LabError

            raise LabError(f"--export {export}: a team's export needs its mapping file (rule: --mapping FILE, see "
                           f"data/mappings/); got none")
        history, mapping = str(Path(export).resolve()), str(Path(mapping).resolve())
        outcome = outcome or "success"
    fitted, refit = str(runs / "fitted_scenario.yaml"), str(runs / "refit")
    sla, thresholds = str(runs / "sla_policies"), str(runs / "thresholds")
    today = {"policies": policies, "scenario": base, "fitted_scenario": fitted, "model_dir": refit}
    size = {"replications": replications, "seed": seed, "horizon_days": horizon_days, "n_jobs": N_JOBS}
    previous = str(chain.table_file(load_scenario(base)))
    jobs += [
        Job("01_refit_scoring", {"export": history, "mapping": mapping, "previous": previous, "model_dir": refit,
                                 "outcome": outcome, "capacity": SDR_CAPACITY, "seed": 0}, name_hint="chain", stage=1),
        Job("02_fit_funnel", {"history": history, "mapping": mapping, "base_scenario": base, "fitted_path": fitted,
                              "replications": BACKTEST_REPLICATIONS, "seed": seed}, name_hint="chain", stage=1),
        Job("03_sla_policies", {**today, **size, "out_dir": sla, **({} if plan else {"plan_target_hot": ""})},
            name_hint="chain", stage=2),
        Job("04_threshold_policies", {**today, **size, "out_dir": thresholds}, name_hint="chain", stage=2),
        Job("05_scenario_report", {**today, "sla_dir": sla, "thresholds_dir": thresholds, "export": history,
                                   "mapping": mapping}, name_hint="chain", stage=3),
    ]
    return jobs
