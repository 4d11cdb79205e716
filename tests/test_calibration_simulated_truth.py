"""Ground truth from the simulator: a history made with the seeds' points table (the true
scoring: it decides each lead's band, and so its chance of becoming an SQL) is refitted,
and the refit must recover the ranking of the true weights and an AUC close to the true
table's."""
import pytest

from calibration.refit import run_refit
from sim.experiment import run_scenario
from sim.output import crm_export
from common.paths import DATA, SCENARIOS
from sim.scenario import load_scenario

SEED_POINTS = {"demo_requests": 30, "employee_count": 25, "seniority": 25, "pricing_page_visits": 20,
               "industry_fit": 15, "region_fit": 10, "content_downloads": 10, "web_visits": 5}


@pytest.fixture(scope="module")
def refit(tmp_path_factory):
    # Half a year, eight SDRs (so delay noise does not drown the score), nurture off
    # (re-entries would blur what the score at creation decided).
    scn = load_scenario(SCENARIOS / "baseline.yaml",
                        {"calendar.horizon_days": 182, "nurture.enabled": False, "team.sdrs": 8})
    res = run_scenario(scn, replications=1, keep_tables=True, progress=False)
    path = tmp_path_factory.mktemp("truth") / "history.csv"
    crm_export(res.leads, scn).to_csv(path, index=False)
    return run_refit(path, DATA / "mappings" / "sim_leads.yaml", outcome="sql", pdo=15, seed=0)


def test_refit_recovers_the_ranking_of_the_true_weights(refit):
    rows = refit.points_table.rows
    learned = rows.groupby("criterion")["points"].max()
    # Criteria whose true points differ by 10 or more must keep their order.
    for a, pa in SEED_POINTS.items():
        for b, pb in SEED_POINTS.items():
            if pa - pb >= 10:
                assert learned.get(a, 0) > learned.get(b, 0), (a, learned.get(a), b, learned.get(b))


def test_refit_auc_is_close_to_the_true_tables(refit):
    m = refit.diagnostics.set_index(["model", "metric"])
    true = m.loc[("seed", "roc_auc")]
    fitted = m.loc[("refit", "roc_auc")]
    # The true table cannot be beaten in expectation; the refit's interval must reach it.
    assert fitted["hi"] >= true["lo"], (fitted.to_dict(), true.to_dict())
    assert fitted["estimate"] > 0.85
