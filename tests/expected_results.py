"""Small fixed runs whose every number is committed under ``tests/expected/``.

``tests/test_expected.py`` recomputes each case and compares it with its CSV (exact for
counts and text, rtol 1e-9 for floats). A change that moves a number fails there until
the files are regenerated on purpose, so the change is seen in review::

    .venv/bin/python tests/expected_results.py          # all cases
    .venv/bin/python tests/expected_results.py mmc      # one case

Each case returns a dict of table name -> DataFrame; the file of a table is
``tests/expected/<case>__<table>.csv``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected"
sys.path.insert(0, str(HERE.parent))  # run as a script from anywhere in the checkout

from common.paths import DATA, SCENARIOS  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

SHORT = {"calendar.horizon_days": 35, "calendar.warmup_days": 7, "arrivals.leads_per_week": 300}
LEAD_COLUMNS = ["lead_id", "created_at", "channel", "employee_count", "score", "band", "mql_at",
                "first_response_at", "owner_id", "handoff_at", "decided_at", "sal_at", "sql_at",
                "opportunity_at", "closed_at", "outcome", "stage", "rejection_reason", "amount"]


def _run(scn, replications: int, seed: int) -> dict[str, pd.DataFrame]:
    from sim.crm import crm_export
    from sim.experiment import run_scenario

    res = run_scenario(scn, replications=replications, seed=seed, keep_tables="first", progress=False)
    leads = crm_export(res.leads.drop(columns=["policy", "replication"]), scn)[LEAD_COLUMNS]
    for c in leads.columns:
        if c.endswith("_at"):
            leads[c] = leads[c].dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {"kpis": res.kpis.drop(columns=["policy"]), "summary": res.summary.drop(columns=["policy"]),
            "leads": leads}


def baseline() -> dict[str, pd.DataFrame]:
    """Today's process (data/scenarios/baseline.yaml), five weeks, three replications."""
    return _run(load_scenario(SCENARIOS / "baseline.yaml", SHORT), 3, 2026)


def round_robin_shifts() -> dict[str, pd.DataFrame]:
    """Round robin with reassignment on SLA breach, two shifts, Hot leads escalated to AEs."""
    scn = load_scenario(SCENARIOS / "baseline.yaml", {
        **SHORT, "routing.policy": "round_robin", "routing.reassign_on_sla_breach": True,
        "team.sdrs": 4, "team.escalate_hot_to_ae": True, "team.aes": 2, "team.capacity_cap": 40,
        "team.shifts": [{"name": "early", "people": 2, "days": [0, 1, 2, 3, 4], "start_hour": 7, "end_hour": 15},
                        {"name": "late", "people": 2, "days": [0, 1, 2, 3, 4], "start_hour": 13, "end_hour": 21}],
    })
    return _run(scn, 2, 7)


def mmc() -> dict[str, pd.DataFrame]:
    """The M/M/c case of the Erlang C checks (data/scenarios/mmc.yaml), ten days."""
    from sim.model import run_replication

    scn = load_scenario(SCENARIOS / "mmc.yaml", {"calendar.horizon_days": 10, "calendar.warmup_days": 1})
    out = _run(scn, 2, 11)
    del out["leads"]
    e = run_replication(scn, 0).episodes
    out["episodes"] = e[["lead", "entered", "first_touch", "owner", "response_minutes"]].head(2000)
    return out


def refit() -> dict[str, pd.DataFrame]:
    """The scoring refit on a generated export with a known truth (calibration.synthetic)."""
    import tempfile

    from calibration.refit import run_refit
    from calibration.synthetic import make_export

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        make_export(4000, seed=5).to_csv(path, index=False)
        res = run_refit(path, DATA / "mappings" / "sim_leads.yaml", n_boot=30, capacity=150, seed=0)
    table = res.points_table
    points = table.rows[["criterion", "value", "points"]].astype({"value": str})
    th = table.thresholds
    thresholds = pd.DataFrame([{"hot": th.hot, "mql": th.mql, "nurture": th.nurture}])
    return {"points": points, "thresholds": thresholds, "diagnostics": res.diagnostics.reset_index(drop=True),
            "bands": res.bands.reset_index(drop=True)}


def fit_backtest() -> dict[str, pd.DataFrame]:
    """The funnel fitted to a simulated history (known truth), and its back-test."""
    import tempfile

    from calibration.backtest import backtest
    from calibration.history import fit_scenario
    from sim.crm import crm_export
    from sim.model import run_replication

    truth = load_scenario(SCENARIOS / "baseline.yaml", {"nurture.enabled": False, "team.sdrs": 3,
                                                         "calendar.horizon_days": 91})
    base = load_scenario(SCENARIOS / "baseline.yaml", {"nurture.enabled": False})
    mapping = DATA / "mappings" / "sim_leads.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.parquet"
        crm_export(run_replication(truth, 0, seed=11).leads, truth).to_parquet(path)
        fit = fit_scenario(path, mapping, base=base)
        bt = backtest(fit, path, mapping, replications=2, seed=3)
    tables = []
    for name in ("volume", "channels", "response", "decay", "conversion", "durations", "deal_sizes"):
        t = getattr(fit, name).copy()
        t.insert(0, "table", name)
        tables.append(t)
    flat = pd.json_normalize(fit.scenario_dict(), sep=".").T.reset_index()
    flat.columns = ["field", "value"]
    flat["value"] = flat["value"].map(lambda v: json.dumps(v, default=str))
    return {"tables": pd.concat(tables, ignore_index=True), "scenario": flat, "backtest": bt}


FLOAT = "%.17g"  # every float written back exactly
CASES = {f.__name__: f for f in (baseline, round_robin_shifts, mmc, refit, fit_backtest)}


def path_of(case: str, table: str) -> Path:
    return EXPECTED / f"{case}__{table}.csv"


def as_stored(df: pd.DataFrame) -> pd.DataFrame:
    """A table as it reads back from its CSV (the same parser on both sides)."""
    import io

    return pd.read_csv(io.StringIO(df.to_csv(index=False, float_format=FLOAT)))


def regenerate(names=None) -> None:
    EXPECTED.mkdir(exist_ok=True)
    for name in names or CASES:
        for table, df in CASES[name]().items():
            df.to_csv(path_of(name, table), index=False, float_format=FLOAT)
            print(f"wrote {path_of(name, table).relative_to(HERE.parent)} ({len(df)} rows)")


if __name__ == "__main__":
    regenerate(sys.argv[1:] or None)
