"""Multi-table CRM exports: joins and their report, derived columns, dates, encodings,
export checks; the shipped Salesforce, HubSpot and Maven mappings."""
import textwrap

import numpy as np
import pandas as pd
import pytest

from calibration.csvread import read_csv_any
from calibration.dates import parse_date_column
from calibration.importer import import_export
from calibration.mapping import Mapping, load_mapping
from common.errors import LabError
from common.paths import DATA, SCENARIOS, SHARED

MAVEN = SHARED / "datasets" / "maven_crm"
MAPS = DATA / "mappings"


# ---- CSV encodings and dialects ------------------------------------------------------------
FRAME = pd.DataFrame({"id": ["a", "b"], "name": ["Müller", "Crème"], "amount": [1234.5, 12.25]})


@pytest.mark.parametrize("encoding,sep,decimal", [("utf-8", ",", "."), ("utf-8-sig", ",", "."), ("utf-16", "\t", "."),
                                                  ("cp1252", ";", ","), ("latin-1", ",", "."),
                                                  ("utf-8-sig", ";", ",")])
def test_csv_encodings_and_dialects(tmp_path, encoding, sep, decimal):
    p = tmp_path / "e.csv"
    FRAME.to_csv(p, index=False, sep=sep, decimal=decimal, encoding=encoding)
    df, dialect = read_csv_any(p)
    assert list(df.columns) == ["id", "name", "amount"]
    assert df["name"].tolist() == ["Müller", "Crème"]
    assert df["amount"].tolist() == [1234.5, 12.25]
    assert dialect.delimiter == sep and dialect.decimal == decimal


def test_csv_refuses_a_workbook_in_one_line(tmp_path):
    p = tmp_path / "e.csv"
    p.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(LabError, match=r"e.csv: cannot read as CSV: found a zip archive") as e:
        read_csv_any(p)
    assert "\n" not in str(e.value)


# ---- dates -----------------------------------------------------------------------------------
def test_day_first_proved_by_data_and_year_never_an_offset():
    out, info = parse_date_column(pd.Series(["08-03-2018", "25-03-2018 14:05", None]), "f: t: c")
    assert out.tolist()[:2] == [pd.Timestamp("2018-03-08"), pd.Timestamp("2018-03-25 14:05")]
    assert "day-first" in info.order and "row 2" in info.proof and not info.aware


def test_ambiguous_dates_refused_with_the_rows():
    with pytest.raises(LabError, match=r"f.csv: leads: Created, row 1: ambiguous date '08-03-2018'.*row 2 '01-02-2018'"):
        parse_date_column(pd.Series(["08-03-2018", "01-02-2018"]), "f.csv: leads: Created")
    with pytest.raises(LabError, match=r"row 1 '25/12/2024' is day-first and row 2 '12/25/2024' is month-first"):
        parse_date_column(pd.Series(["25/12/2024", "12/25/2024"]), "f: t: c")


def test_time_zone_per_column_and_offsets():
    out, info = parse_date_column(pd.Series(["2018-03-08 10:00"]), "w", timezone="Europe/Paris")
    assert out.iloc[0] == pd.Timestamp("2018-03-08 09:00") and info.aware
    out, info = parse_date_column(pd.Series(["2026-01-05T14:03:00.000Z"]), "w")
    assert out.iloc[0] == pd.Timestamp("2026-01-05 14:03") and info.aware
    with pytest.raises(LabError, match="unknown time zone"):
        parse_date_column(pd.Series(["2018-03-08"]), "w", timezone="Mars/Olympus")


# ---- mapping files ---------------------------------------------------------------------------
def test_duplicate_keys_in_a_mapping_are_errors(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("name: x\ncolumns: {a: lead_id}\noutcome: {column: o, success: [1]}\ncolumns: {b: lead_id}\n")
    with pytest.raises(LabError, match=r"m.yaml: line 4.*(duplicate key|given twice).*'columns'|m.yaml: line 4.*'columns'.*given twice"):
        load_mapping(p)


def test_shipped_multitable_mappings_validate():
    for name in ("salesforce", "hubspot", "maven_crm"):
        m = load_mapping(MAPS / f"{name}.yaml")
        assert m.tables and m.main_table


# ---- a small two-table export ---------------------------------------------------------------
TWO = """
name: two
tables:
  leads: {file: leads.csv, key: ID}
  deals: {file: deals.csv, join: {column: Lead, to: ID, kind: one_to_many, normalize: [case, spaces]}}
columns: {ID: lead_id, Created: created_at}
derived:
  amount: {table: deals, column: Amount, rule: first, order_by: Opened}
  opportunity_at: {table: deals, column: Opened, rule: first}
outcome: {column: deals.Stage, success: [Won], failure: [Lost], open: [Open], unmatched: Open}
"""


def _two(tmp_path, leads=None, deals=None, mapping=TWO):
    leads = leads or {"ID": ["A 1", "b2", "c3"], "Created": ["2024-01-02", "2024-01-03", "2024-01-04"]}
    deals = deals or {"Lead": ["a1", "A1", "zz"], "Stage": ["Lost", "Won", "Won"], "Amount": [5, 7, 9],
                      "Opened": ["2024-01-05", "2024-01-06", "2024-01-07"]}
    pd.DataFrame(leads).to_csv(tmp_path / "leads.csv", index=False)
    pd.DataFrame(deals).to_csv(tmp_path / "deals.csv", index=False)
    (tmp_path / "m.yaml").write_text(textwrap.dedent(mapping))
    return tmp_path, tmp_path / "m.yaml"


def test_one_to_many_join_with_rules_and_report(tmp_path):
    data = import_export(*_two(tmp_path))
    f = data.frame.set_index("lead_id")
    assert f.loc["A 1", "outcome"] == "Won" and f.loc["b2", "outcome"] == "Open"  # any deal won; no deal: open
    assert f.loc["A 1", "amount"] == 5 and f.loc["A 1", "opportunity_at"] == pd.Timestamp("2024-01-05")
    row = data.joins.table().iloc[0]
    assert row["table_unmatched"] == 1 and row["table_unmatched_examples"] == ["zz"]
    assert row["main_unmatched"] == 2


def test_unnormalised_keys_get_a_hint(tmp_path):
    data = import_export(*_two(tmp_path, mapping=TWO.replace(", normalize: [case, spaces]", "")))
    assert "match after normalising" in data.joins.table().iloc[0]["hint"]


def test_export_checks_name_table_column_row_rule_value(tmp_path):
    deals = {"Lead": ["a1"], "Stage": ["Won"], "Amount": [-5], "Opened": ["2024-01-05"]}
    with pytest.raises(LabError, match=r"leads.csv: leads: amount, row 1: an amount cannot be negative.*; got -5"):
        import_export(*_two(tmp_path, deals=deals))
    leads = {"ID": ["A 1"], "Created": ["2099-01-02"]}
    with pytest.raises(LabError, match=r"leads.csv: leads: created_at, row 1: a date after the export's date"):
        import_export(*_two(tmp_path, leads=leads))
    leads = {"ID": ["A 1", "A 1"], "Created": ["2024-01-02", "2024-01-02"]}
    with pytest.raises(LabError, match=r"leads.csv: leads: ID, row 1: key repeated"):
        import_export(*_two(tmp_path, leads=leads))
    (tmp_path / "deals.csv").unlink()
    with pytest.raises(LabError, match=r"deals.csv: deals: table file not found"):
        import_export(tmp_path, tmp_path / "m.yaml")


# ---- generated Salesforce / HubSpot exports with a known truth ---------------------------------
@pytest.fixture(scope="module")
def truth():
    from calibration.synthetic_crm import simulated_history
    from sim.scenario import load_scenario

    scn = load_scenario(SCENARIOS / "baseline.yaml", {"calendar.horizon_days": 28})
    return simulated_history(scn, seed=5), scn


@pytest.mark.parametrize("shape", ["salesforce", "hubspot"])
def test_generated_exports_import_to_the_truth(truth, shape, tmp_path):
    from calibration import synthetic_crm

    leads, scn = truth
    if shape == "salesforce":
        synthetic_crm.write_salesforce(leads, tmp_path)
    else:
        synthetic_crm.write_hubspot(leads, tmp_path, scn.calendar.timezone)
    data = import_export(tmp_path, MAPS / f"{shape}.yaml")
    f = data.frame
    if shape == "hubspot":
        f = f.assign(lead_id="L" + (f["lead_id"].astype(int) - 1000).map("{:06d}".format))
    f = f.set_index("lead_id")
    t = leads.set_index("lead_id").reindex(f.index)
    for c in ("created_at", "mql_at", "first_response_at", "sql_at", "opportunity_at", "closed_at"):
        exp = pd.to_datetime(t[c], utc=True).dt.tz_localize(None)
        diff = (f[c] - exp).abs().dt.total_seconds()
        assert ((diff <= 60) | (f[c].isna() & exp.isna())).all() and (f[c].isna() == exp.isna()).all(), c
    assert np.allclose(f["amount"].astype(float), t["amount"].astype(float), equal_nan=True)
    assert (f["outcome"].astype(str) == t["outcome"].astype(str)).all()


# ---- Maven CRM (real, four tables) -----------------------------------------------------------
@pytest.fixture(scope="module")
def maven():
    if not MAVEN.exists():
        pytest.skip(f"{MAVEN} not present")
    return import_export(MAVEN, MAPS / "maven_crm.yaml")


def test_maven_join_report(maven):
    rep = maven.joins.table().set_index("table")
    assert rep.loc["accounts", "main_without_key"] == 1425
    assert rep.loc["products", "main_matched"] == 8800  # GTXPro mapped to GTX Pro
    assert len(maven.frame) == 8800 and maven.frame["industry"].eq("technology").any()
    assert not maven.frame["industry"].eq("technolgy").any()


def test_maven_gtxpro_caught_without_the_key_map(maven):
    doc = maven.mapping.model_dump()
    doc["tables"]["products"]["join"]["keys"] = {}
    data = import_export(MAVEN, Mapping(**doc))
    row = data.joins.table().set_index("table").loc["products"]
    assert row["main_unmatched"] == 1480 and "'GTXPro' ~ 'GTX Pro'" in row["hint"]
