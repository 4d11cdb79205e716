"""Fitting what an export supports and saying what it does not; the out-of-sample
back-test that can fail; Maven CRM end to end."""
import numpy as np
import pandas as pd
import pytest

from calibration.backtest import holdout_backtest, save_backtest
from calibration.fit_report import report_table, write_fit_report
from calibration.history import fit_scenario
from calibration.synthetic_crm import simulated_history, write_hubspot, write_salesforce
from common.paths import DATA, SCENARIOS, SHARED
from sim.scenario import load_scenario

MAVEN = SHARED / "datasets" / "maven_crm"
MAPS = DATA / "mappings"


@pytest.fixture(scope="module")
def truth():
    return load_scenario(SCENARIOS / "baseline.yaml", {"nurture.enabled": False, "team.sdrs": 3,
                                                       "calendar.horizon_days": 70})


@pytest.fixture(scope="module")
def base():
    return load_scenario(SCENARIOS / "baseline.yaml", {"nurture.enabled": False})


@pytest.fixture(scope="module")
def exports(truth, tmp_path_factory):
    leads = simulated_history(truth, seed=11)
    root = tmp_path_factory.mktemp("crm")
    return leads, write_salesforce(leads, root / "sf"), write_hubspot(leads, root / "hs", truth.calendar.timezone)


def test_hubspot_fit_names_what_it_assumed(exports, base, truth, tmp_path):
    _, _, hs = exports
    fit = fit_scenario(hs, MAPS / "hubspot.yaml", base=base)
    rep = report_table(fit).set_index("parameter")
    # HubSpot has no SAL date and no rejection reasons: assumed, with the reason.
    assert rep.loc["sal_accept[hot]", "status"] == "assumed" and "no sal_at" in rep.loc["sal_accept[hot]", "reason"]
    assert rep.loc["conversion.rejection_mix", "status"] == "assumed"
    lo, hi = rep.loc["arrivals.leads_per_week", ["ci_low", "ci_high"]]
    assert rep.loc["arrivals.leads_per_week", "status"] == "fitted" and lo < truth.arrivals.leads_per_week < hi * 1.05
    assert rep.loc["team.sdrs", "value"] == 3
    files = write_fit_report(fit, tmp_path)
    assert (tmp_path / "fit_report.csv").exists() and len(files) == 3


def test_few_records_are_shrunk_and_shown(exports, base):
    _, sf, _ = exports
    fit = fit_scenario(sf, MAPS / "salesforce.yaml", base=base)
    rep = report_table(fit)
    small = rep[(rep["status"] == "fitted") & (rep["n"] > 0) & (rep["n"] < 30) & rep["parameter"].str.startswith("win[")]
    assert len(small) and (small["shrinkage"] > 0).all() and small["reason"].str.contains("pulled").all()


def test_window_is_the_lead_creation_window(exports, base, truth):
    _, sf, _ = exports
    fit = fit_scenario(sf, MAPS / "salesforce.yaml", base=base, window=("2026-01-12", "2026-02-08 23:59:59"))
    lpw = fit.scenario.arrivals.leads_per_week
    assert lpw == pytest.approx(truth.arrivals.leads_per_week, rel=0.1)


def test_holdout_backtest_passes_a_true_twin_and_fails_a_wrong_one(exports, base, tmp_path):
    _, sf, _ = exports
    table, overall, fit = holdout_backtest(sf, MAPS / "salesforce.yaml", base=base, replications=4, seed=3)
    assert overall == "pass", table
    assert {"pass", "not testable"} >= set(table["verdict"]) - {"fail"}
    wrong = {"arrivals.leads_per_week": fit.scenario.arrivals.leads_per_week * 1.6}
    table2, overall2, _ = holdout_backtest(sf, MAPS / "salesforce.yaml", base=base, replications=4, seed=3,
                                           overrides=wrong)
    assert overall2 == "fail"
    assert table2.set_index("kpi").loc["leads_per_week", "verdict"] == "fail"
    scn = tmp_path / "s.yaml"
    fit.write(scn)
    save_backtest(table, overall, tmp_path, scenario_path=scn)
    assert (tmp_path / "backtest.csv").exists() and (tmp_path / "backtest.png").exists()
    assert scn.read_text().startswith("# backtest: pass")
    load_scenario(scn)


@pytest.fixture(scope="module")
def maven_fit():
    if not MAVEN.exists():
        pytest.skip(f"{MAVEN} not present")
    return fit_scenario(MAVEN, MAPS / "maven_crm.yaml")


def test_maven_fits_the_opportunity_stage_and_assumes_the_rest(maven_fit):
    rep = report_table(maven_fit).set_index("parameter")
    assert rep.loc["win[enterprise]", "status"] == "fitted"
    assert 0.55 < rep.loc["win[enterprise]", "value"] < 0.7  # open deals censored, not losses
    assert rep.loc["sql_to_opportunity[mid]", "status"] == "assumed"
    assert "no sql_at" in rep.loc["sql_to_opportunity[mid]", "reason"]
    assert rep.loc["decay.qualification", "status"] == "assumed"
    seg = maven_fit.segments
    prod = seg[(seg["by"] == "product") & (seg["quantity"] == "win_rate")]
    assert len(prod) == 7 and (prod["ci_low"] <= prod["estimate"]).all()
    assert any("500 row(s) without a creation date" in n for n in maven_fit.notes)
    # Opportunities per week over the engage-date window, not over every date column's span.
    weeks = (pd.Timestamp("2017-12-27") - pd.Timestamp("2016-10-20")).days / 7
    assert maven_fit.scenario.arrivals.leads_per_week == pytest.approx(8300 / weeks, rel=0.01)
    assert np.isfinite(rep.loc["days_to_close[enterprise]", "value"])
