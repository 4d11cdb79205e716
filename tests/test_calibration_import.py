"""Importer and mapping validation: every bad input raises LabError naming what is wrong."""
import textwrap

import pandas as pd
import pytest

from calibration.importer import import_export, parse_dates
from calibration.mapping import load_mapping
from common.errors import LabError

MAPPING = """
name: tiny
columns: {ID: lead_id, Created: created_at, Src: channel}
outcome: {column: Result, success: [won], failure: [lost], open: [open]}
post_outcome: [Notes]
features: [Visits]
numeric: [Visits]
"""


def _write(tmp_path, rows, mapping=MAPPING, name="export.csv"):
    (tmp_path / "m.yaml").write_text(textwrap.dedent(mapping))
    df = pd.DataFrame(rows)
    path = tmp_path / name
    df.to_parquet(path) if name.endswith(".parquet") else df.to_csv(path, index=False)
    return path, tmp_path / "m.yaml"


def _rows(n=6):
    return {"ID": [f"a{i}" for i in range(n)], "Created": [f"2024-01-{i + 1:02d}" for i in range(n)],
            "Src": ["web", "Select", "ads", "web", "", "ads"][:n], "Visits": list(range(n)),
            "Result": ["won", "lost"] * (n // 2), "Notes": ["x"] * n}


def test_good_export_renames_and_clears_placeholders(tmp_path):
    data = import_export(*_write(tmp_path, _rows()))
    df = data.frame
    assert list(df["lead_id"]) == [f"a{i}" for i in range(6)]
    assert df["channel"].isna().tolist() == [False, True, False, False, True, False]
    assert str(df["created_at"].dtype).startswith("datetime64")
    assert data.numeric == ["Visits"] and data.categorical == ["channel"]
    assert "Notes" in data.post_outcome and "Notes" not in data.features
    t = data.target()
    assert t.y[t.mask].tolist() == [1, 0, 1, 0, 1, 0]


def test_parquet_reads_the_same(tmp_path):
    from_csv = import_export(*_write(tmp_path, _rows())).frame
    from_parquet = import_export(*_write(tmp_path, _rows(), name="e.parquet")).frame
    pd.testing.assert_frame_equal(from_parquet, from_csv)


def test_missing_required_column(tmp_path):
    rows = _rows()
    del rows["Src"]
    with pytest.raises(LabError, match=r"export.csv: missing required column\(s\) \['Src'\]"):
        import_export(*_write(tmp_path, rows))


def test_unparseable_date(tmp_path):
    rows = _rows()
    rows["Created"][3] = "yesterday"
    with pytest.raises(LabError, match=r"column 'created_at', row 4: unparseable date 'yesterday'"):
        import_export(*_write(tmp_path, rows))


def test_ambiguous_day_month_refused_with_hint(tmp_path):
    rows = _rows()
    rows["Created"] = ["03/04/2024", "01/02/2024", "05/06/2024", "07/08/2024", "09/10/2024", "11/12/2024"]
    with pytest.raises(LabError, match=r"row 1: ambiguous date '03/04/2024'.*set date_format"):
        import_export(*_write(tmp_path, rows))


def test_day_first_inferred_when_a_day_exceeds_12_and_date_format_honoured(tmp_path):
    s = pd.Series(["03/04/2024", "25/12/2024"])
    out = parse_dates(s, "created_at", "f.csv")
    assert out.tolist() == [pd.Timestamp("2024-04-03"), pd.Timestamp("2024-12-25")]
    out = parse_dates(pd.Series(["03/04/2024"]), "created_at", "f.csv", date_format="%m/%d/%Y")
    assert out.iloc[0] == pd.Timestamp("2024-03-04")
    with pytest.raises(LabError, match="mix day-first and month-first"):
        parse_dates(pd.Series(["25/12/2024", "12/25/2024"]), "created_at", "f.csv")


def test_iso_with_offsets_become_utc():
    out = parse_dates(pd.Series(["2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00Z"]), "c", "f")
    assert out.iloc[0] == out.iloc[1] == pd.Timestamp("2024-01-01 08:00")


def test_duplicate_lead_ids(tmp_path):
    rows = _rows()
    rows["ID"][4] = "a1"
    with pytest.raises(LabError, match=r"duplicate lead id 'a1' at rows \[2, 5\]"):
        import_export(*_write(tmp_path, rows))


def test_unknown_outcome_value(tmp_path):
    rows = _rows()
    rows["Result"][2] = "maybe"
    with pytest.raises(LabError, match=r"column 'Result', row 3: unknown outcome value 'maybe'"):
        import_export(*_write(tmp_path, rows))


def test_empty_export(tmp_path):
    path, m = _write(tmp_path, _rows())
    path.write_text("ID,Created,Src,Visits,Result,Notes\n")
    with pytest.raises(LabError, match="the export is empty"):
        import_export(path, m)
    path.write_text("")
    with pytest.raises(LabError, match="the export is empty"):
        import_export(path, m)


def test_single_class(tmp_path):
    rows = _rows()
    rows["Result"] = ["lost"] * 6
    data = import_export(*_write(tmp_path, rows))
    with pytest.raises(LabError, match="has a single class"):
        data.target()


def test_non_numeric_and_negative_counts(tmp_path):
    rows = _rows()
    rows["Visits"] = [1, 2, "many", 4, 5, 6]
    with pytest.raises(LabError, match=r"column 'Visits', row 3: expected a number; got 'many'"):
        import_export(*_write(tmp_path, rows))


def test_mapping_unknown_key_and_conflicts(tmp_path):
    (tmp_path / "bad.yaml").write_text(MAPPING + "colums: {}\n")
    with pytest.raises(LabError, match=r"bad.yaml: colums: unknown key"):
        load_mapping(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text(MAPPING.replace("post_outcome: [Notes]", "post_outcome: [Visits]"))
    with pytest.raises(LabError, match=r"\['Visits'\] are listed both as features and as post_outcome"):
        load_mapping(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text(MAPPING.replace("Src: channel", "Src: chanel"))
    with pytest.raises(LabError, match=r"bad.yaml: columns: unknown lab column\(s\) \['chanel'\]"):
        load_mapping(tmp_path / "bad.yaml")
    with pytest.raises(LabError, match="mapping file not found"):
        load_mapping(tmp_path / "nope.yaml")


def test_stage_target_within_days_censors_recent_leads(tmp_path):
    rows = _rows()
    rows["SQL"] = ["2024-01-02", None, "2024-01-04", None, None, "2024-01-07"]
    m = MAPPING.replace("Src: channel}", "Src: channel, SQL: sql_at}")
    data = import_export(*_write(tmp_path, rows, m))
    t = data.target("sql", within_days=3)
    # The export ends 2024-01-07: leads created after 01-04 cannot have had 3 days.
    assert t.mask.tolist() == [True, True, True, True, False, False]
    assert t.y.tolist()[:4] == [1, 0, 1, 0]
    with pytest.raises(LabError, match="outcome must be one of"):
        data.target("demo")


def test_shipped_mappings_validate():
    from common.paths import DATA
    # (value, kind): 1, 1.0, "1" and True are one value; a value the mapping does not name is None.
    kinds = {"x_education.yaml": [(1, "success"), (1.0, "success"), ("1", "success"), (True, "success"),
                                  (0, "failure"), ("2", None)],
             "sim_leads.yaml": [("won", "success"), ("Lost", "failure"), ("no_decision", "failure"),
                                ("open", "open"), ("maybe", None)]}
    for name, expected in kinds.items():
        m = load_mapping(DATA / "mappings" / name)
        assert [(v, m.outcome_kind(v)) for v, _ in expected] == expected, name
