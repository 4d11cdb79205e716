"""Stage dates recorded only from some date on (a CRM migration): detected, or declared in
the mapping, and the fit reads only the cohort that is complete; the fit report says so."""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml

from calibration.fit_report import report_table, summary_lines
from calibration.history import fit_scenario
from calibration.importer import import_export
from calibration.mapping import load_mapping
from calibration.recording import expected_before
from calibration.synthetic_crm import simulated_history, true_parameters, write_salesforce
from common.errors import LabError
from common.paths import DATA, SCENARIOS
from sim.scenario import load_scenario

MAPS = DATA / "mappings"
MIGRATION = "2026-02-16"  # deals created before this date were not migrated


def test_expected_count_before_the_first_event_is_exp1_for_a_complete_record():
    """The detection statistic of a stage recorded from the start is Exp(1) (random time
    change): mean 1 and P(E >= 3) = e**-3, so E >= 10 almost never happens by chance."""
    rng = np.random.default_rng(1)
    t0, E = pd.Timestamp("2026-01-01"), []
    for _ in range(300):
        p = t0 + pd.to_timedelta(np.sort(rng.uniform(0, 100, 500)), unit="D")
        s = pd.Series(p + pd.to_timedelta(rng.exponential(10, 500), unit="D")).where(rng.random(500) < 0.5)
        end = t0 + pd.Timedelta(days=100)
        E.append(expected_before(pd.Series(p), s.where(s <= end), end)[1])
    E = np.array(E)
    assert 0.85 < E.mean() < 1.15 and 0.02 < (E >= 3).mean() < 0.09 and E.max() < 10


# 20 weeks: SQLs old enough for the 60-day opportunity window exist after the migration.
TRUTH = {"nurture.enabled": False, "team.sdrs": 3, "calendar.horizon_days": 140, "arrivals.leads_per_week": 300.0}
truth = pytest.fixture(scope="module", name="truth")(lambda: load_scenario(SCENARIOS / "baseline.yaml", TRUTH))
base = pytest.fixture(scope="module", name="base")(
    lambda: load_scenario(SCENARIOS / "baseline.yaml", {"nurture.enabled": False}))


@pytest.fixture(scope="module")
def migrated(truth, tmp_path_factory):
    leads = simulated_history(truth, seed=7)
    root = tmp_path_factory.mktemp("sf")
    return write_salesforce(leads, root / "migrated", seed=7, deals_from=MIGRATION), \
        write_salesforce(leads, root / "complete", seed=7)


def test_deals_recorded_from_a_migration_are_detected_and_the_fit_uses_the_complete_window(migrated, truth, base):
    folder, _ = migrated
    fit = fit_scenario(folder, MAPS / "salesforce.yaml", base=base)
    rep = report_table(fit).set_index("parameter")
    row = rep.loc["recorded_from[opportunity_at]"]
    assert row["status"] == "fitted" and "detected" in row["reason"] and "sql_at" in row["reason"]
    assert abs(pd.Timestamp(row["value"]) - pd.Timestamp(MIGRATION)) <= pd.Timedelta(days=1)
    start = pd.Timestamp(row["value"])
    tv = true_parameters(truth)
    for p in ("sql_to_opportunity[mid]", "win[mid]", "days_to_close[mid]"):
        r = rep.loc[p]
        assert r["status"] == "fitted" and f"from {row['value']}" in r["reason"], (p, r["reason"])
        assert r["ci_low"] <= tv[p] <= r["ci_high"], (p, r.to_dict())
    # Without the window the rate would be far off: SQLs before the migration show almost no deal.
    df = import_export(folder, MAPS / "salesforce.yaml").frame
    early = df[df["sql_at"].notna() & (df["sql_at"] < start - pd.Timedelta(days=20))]
    assert len(early) > 30 and early["opportunity_at"].notna().mean() < tv["sql_to_opportunity[mid]"] / 3
    assert any("recorded_from[opportunity_at] = " in ln and "detected" in ln for ln in summary_lines(fit))
    assert any("opportunity_at recorded only from" in n for n in fit.notes)


def test_a_complete_export_has_no_window(migrated, base):
    _, complete = migrated
    fit = fit_scenario(complete, MAPS / "salesforce.yaml", base=base)
    rep = report_table(fit)
    assert not rep["parameter"].str.startswith("recorded_from[").any()


def test_a_window_declared_in_the_mapping(migrated, base, tmp_path):
    folder, _ = migrated
    doc = yaml.safe_load((MAPS / "salesforce.yaml").read_text())
    doc["tables"]["opportunity"]["recorded_from"] = "2026-02-23"
    path = tmp_path / "sf.yaml"
    path.write_text(yaml.safe_dump(doc))
    fit = fit_scenario(folder, path, base=base)
    rep = report_table(fit).set_index("parameter")
    for col in ("opportunity_at", "closed_at"):  # every date the table feeds
        assert rep.loc[f"recorded_from[{col}]", "status"] == "declared"
        assert rep.loc[f"recorded_from[{col}]", "value"] == "2026-02-23"
    assert "from 2026-02-23" in rep.loc["win[mid]", "reason"] and "declared" in rep.loc["win[mid]", "reason"]
    assert "declared in the mapping" in summary_lines(fit)[0]


def test_recorded_from_must_name_a_date_column(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(textwrap.dedent("""\
        name: x
        columns: {id: lead_id, made: created_at, fee: amount}
        outcome: {column: o, success: [1]}
        recorded_from: {fee: 2026-01-01}
        """))
    with pytest.raises(LabError, match=r"m.yaml: .*recorded_from names \['fee'\].*not date columns"):
        load_mapping(p)
    p.write_text(p.read_text().replace("fee: 2026-01-01", "made: 2026-13-01"))
    with pytest.raises(LabError, match=r"m.yaml: recorded_from.made: .*date.*; got '2026-13-01'"):
        load_mapping(p)
