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


@pytest.mark.parametrize("shape", ["salesforce", "hubspot"])
def test_holdout_backtest_passes_a_true_twin_and_fails_a_wrong_one(exports, base, tmp_path, shape):
    export = exports[1] if shape == "salesforce" else exports[2]
    table, overall, fit = holdout_backtest(export, MAPS / f"{shape}.yaml", base=base, replications=4, seed=3)
    assert overall == "pass", table
    assert {"pass", "not testable"} >= set(table["verdict"]) - {"fail"}
    wrong = {"arrivals.leads_per_week": fit.scenario.arrivals.leads_per_week * 1.6}
    table2, overall2, _ = holdout_backtest(export, MAPS / f"{shape}.yaml", base=base, replications=4, seed=3,
                                           overrides=wrong)
    assert overall2 == "fail"
    assert table2.set_index("kpi").loc["leads_per_week", "verdict"] == "fail"
    if shape == "hubspot":
        return
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
    # Closings were recorded only from 2017-03-01 (deals engaged since Oct 2016 show none before):
    # outcomes and cycle lengths are read from the deals engaged on or after it.
    assert rep.loc["recorded_from[closed_at]", "value"] == "2017-03-01"
    assert "engaged" not in rep.loc["win[enterprise]", "reason"] and "from 2017-03-01" in rep.loc["win[enterprise]", "reason"]
    seg = maven_fit.segments
    prod = seg[(seg["by"] == "product") & (seg["quantity"] == "win_rate")]
    assert len(prod) == 7 and (prod["ci_low"] <= prod["estimate"]).all()
    assert any("500 row(s) without a creation date" in n for n in maven_fit.notes)
    # Opportunities per week over the engage-date window, not over every date column's span.
    weeks = (pd.Timestamp("2017-12-27") - pd.Timestamp("2016-10-20")).days / 7
    assert maven_fit.scenario.arrivals.leads_per_week == pytest.approx(8300 / weeks, rel=0.01)
    assert np.isfinite(rep.loc["days_to_close[enterprise]", "value"])


def _verdicts(*rows):
    return pd.DataFrame([dict(kpi=f"k{i}", verdict=v, note=n) for i, (v, n) in enumerate(rows)])


def test_overall_verdict_needs_enough_kpis_tested():
    from calibration.backtest import overall_verdict

    few = _verdicts(("pass", ""), ("pass", ""), *[("not testable", "not in this export")] * 11)
    v = overall_verdict(few)
    assert v.startswith("not testable: only 2 of 13 KPIs testable (k0, k1; rule: at least 7 for a pass)")
    assert "not in this export for 11" in v
    assert overall_verdict(_verdicts(*[("pass", "")] * 7, *[("not testable", "x")] * 6)) == "pass"
    bad = _verdicts(("fail", "outside the Bonferroni-widened interval too"), *[("not testable", "x")] * 12)
    assert overall_verdict(bad) == "fail"  # a failure is informative however little was tested
    assert overall_verdict(_verdicts(*[("not testable", "x")] * 3)).startswith("not testable: only 0 of 3")


def test_maven_backtest_is_not_a_pass_and_says_why(tmp_path):
    from calibration.backtest import opportunity_only

    if not MAVEN.exists():
        pytest.skip(f"{MAVEN} not present")
    table, overall, _ = holdout_backtest(MAVEN, MAPS / "maven_crm.yaml", replications=3, seed=3)
    t = table.set_index("kpi")
    assert overall.startswith("not testable: only ") and "rule: at least 7 for a pass" in overall, overall
    assert "rows are opportunities, not leads" in t.loc["leads_per_week", "note"]
    for k in ("pipeline_per_week_usd", "won_per_week"):
        assert t.loc[k, "verdict"] == "not testable" and "assumed lead-to-opportunity rates" in t.loc[k, "note"]
    assert t.loc["mql_per_week", "note"] == "not in this export"
    assert t.loc["win_rate", "verdict"] != "not testable"
    scn = tmp_path / "s.yaml"
    scn.write_text("name: x\n")
    save_backtest(table, overall, tmp_path, scenario_path=scn)
    assert scn.read_text().startswith("# backtest: not testable: only ")
    lead_rows = pd.DataFrame({"created_at": pd.to_datetime(["2024-01-01"]), "opportunity_at": pd.to_datetime(["2024-01-02"])})
    assert not opportunity_only(lead_rows) and opportunity_only(lead_rows.assign(opportunity_at=lead_rows["created_at"]))
