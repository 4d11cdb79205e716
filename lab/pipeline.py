"""The main chain of notebooks behind ``lab report`` (and ``make report``).

``main_jobs`` is where the chain is assembled: a simulated history, the scoring refit,
the fitted funnel, the SLA and threshold policy runs and the leadership report, each a
``Job`` whose ``stage`` orders it after the runs whose outputs it reads. Jobs of one
stage run in parallel:

    stage 0  00_simulate_history   -> runs/history.csv
    stage 1  01_refit_scoring      -> runs/refit/          (reads the history)
             02_fit_funnel         -> runs/fitted_scenario.yaml
    stage 2  03_sla_policies       -> runs/sla_policies/
             04_threshold_policies -> runs/thresholds/     (scores with the refit model)
    stage 3  05_scenario_report    (reads 01, 03 and 04)

Sizes are chosen so that the whole chain takes a minute or two on two cores; the
notebooks' own defaults (or ``lab run``) may give longer, tighter runs.
"""
from __future__ import annotations

from pathlib import Path

from lab.notebooks import Job
from common.paths import DATA, SCENARIOS

#: Replications in the main chain (a baseline replication takes about 0.15 s; 20 per
#: policy, as in policies.yaml, keep the report's 95% intervals narrow).
SLA_REPLICATIONS = 20
THRESHOLD_REPLICATIONS = 10
BACKTEST_REPLICATIONS = 8
SEED = 2026
#: The refit learns which leads become SQLs (a quarter holds few closed deals), on the
#: default 0-100 scale (the lowest and highest possible totals), with cut-offs for what
#: five SDRs can work (about 400 MQLs a week at the baseline's 50% utilisation and 350 MQLs).
SDR_CAPACITY = 400.0
N_JOBS = 2


def main_jobs(out_dir: str | Path) -> list[Job]:
    """The notebook jobs of the main chain, writing under ``out_dir``.

    Parameters
    ----------
    out_dir : path
        The reports folder; intermediate results go to ``out_dir/runs/``, which later
        stages read through their path parameters.

    Returns
    -------
    list of Job
        In chain order, each with its stage.
    """
    runs = Path(out_dir).resolve() / "runs"
    scenario = str(SCENARIOS / "baseline.yaml")
    policies = str(SCENARIOS / "policies.yaml")
    mapping = str(DATA / "mappings" / "sim_leads.yaml")
    history = str(runs / "history.csv")
    refit = str(runs / "refit")
    sla = str(runs / "sla_policies")
    thresholds = str(runs / "thresholds")
    return [
        Job("00_simulate_history", {"scenario": scenario, "export_path": history, "replications": 1,
                                    "seed": SEED, "n_jobs": 1}, stage=0),
        Job("01_refit_scoring", {"export": history, "mapping": mapping,
                                 "previous": str(DATA / "scoring" / "seed_points.yaml"),
                                 "model_dir": refit, "outcome": "sql",
                                 "capacity": SDR_CAPACITY, "seed": 0}, name_hint="baseline", stage=1),
        Job("02_fit_funnel", {"history": history, "mapping": mapping, "base_scenario": scenario,
                              "fitted_path": str(runs / "fitted_scenario.yaml"),
                              "replications": BACKTEST_REPLICATIONS, "seed": SEED, "n_jobs": 1},
            name_hint="baseline", stage=1),
        Job("03_sla_policies", {"scenario": scenario, "policies": policies, "replications": SLA_REPLICATIONS,
                                "seed": SEED, "n_jobs": N_JOBS, "out_dir": sla}, stage=2),
        Job("04_threshold_policies", {"scenario": scenario, "points_table": refit,
                                      "replications": THRESHOLD_REPLICATIONS, "seed": SEED,
                                      "n_jobs": N_JOBS, "out_dir": thresholds}, stage=2),
        Job("05_scenario_report", {"scenario": scenario, "policies": policies, "sla_dir": sla,
                                   "thresholds_dir": thresholds, "model_dir": refit}, stage=3),
    ]
