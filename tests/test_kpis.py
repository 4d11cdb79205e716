"""One KPI vocabulary for real and simulated data (sim.kpis): a run's KPIs equal the KPIs
of its own CRM export read back from disk, a small hand-made export gives the figures
worked out by hand, and every run writes the data dictionary of its KPI columns."""
import math

import numpy as np
import pandas as pd
import pytest

from calibration.history_read import read_history
from common.paths import DATA, SCENARIOS
from lab.cli import main
from sim.experiment import run_scenario
from sim.calendar import BusinessClock
from sim.kpis import KPIS, funnel_kpis, kpi, replication_kpis
from sim.output import write_result
from sim.scenario import build_scenario, load_scenario

MAPPING = DATA / "mappings" / "sim_leads.yaml"


def short(**over):
    return load_scenario(SCENARIOS / "baseline.yaml", {"calendar.horizon_days": 35, "calendar.warmup_days": 7, **over})


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    scn = short(**{"team.sdrs": 3})  # a busy team: queues, untouched passes, censored SLAs
    res = run_scenario(scn, replications=2, seed=11, keep_tables=True, progress=False)
    out = write_result(res, tmp_path_factory.mktemp("run") / "out")
    return scn, res, out


def _funnel_names(columns):
    engine_only = {"reassigned_count", "breach_count", "escalated_count", "overflow_utilisation"}
    return [c for c in columns if c in KPIS and c not in engine_only or c.startswith(("win_rate_channel_",
                                                                                       "deal_size_mean_usd_"))]


def test_kpis_of_a_run_equal_the_kpis_of_its_saved_export(written):
    """The engine-side figures are the export's figures, to the last bit: nothing the
    KPIs need is lost between a replication and its CRM export and event log on disk."""
    scn, res, out = written
    leads = pd.read_parquet(out / "leads.parquet")
    events = pd.read_parquet(out / "events.parquet")
    names = _funnel_names(res.kpis.columns)
    assert len(names) > 60
    for r in (0, 1):
        prefix = f"R{r:02d}-"
        L = leads[leads["lead_id"].str.startswith(prefix)]
        E = events[events["lead_id"].str.startswith(prefix)]
        got = funnel_kpis(L, E, scn)
        want = res.kpis[res.kpis["replication"] == r].iloc[0]
        for name in names:
            a, b = got[name], float(want[name])
            assert (math.isnan(a) and math.isnan(b)) or a == b, (r, name, a, b)
    # The figures move between replications: the comparison had something to compare.
    assert res.kpis["sql_count"].nunique() == 2


def test_kpis_of_an_export_read_through_the_importer(tmp_path):
    """Through the CSV and the importer (time-zone offsets, mapping), a lead table gives
    the same lead-level KPIs as the run measured without its event log."""
    scn = short()
    res = run_scenario(scn, replications=1, seed=5, keep_tables=True, progress=False)
    out = write_result(res, tmp_path / "out")
    df, _ = read_history(out / "leads.csv", MAPPING, scn.calendar.timezone)
    from sim.crm import crm_export

    direct = funnel_kpis(crm_export(res.leads.drop(columns=["policy", "replication"]), scn), None, scn)
    imported = funnel_kpis(df, None, scn)
    for name in ("lead_count", "mql_count", "sql_count", "won_count", "response_median_minutes",
                 "sla_attainment_hot", "sal_acceptance_rate", "disposition_mean_days", "pipeline_usd",
                 "expected_revenue_usd", "marketing_spend_usd", "win_rate_smb"):
        assert imported[name] == direct[name] or (math.isnan(imported[name]) and math.isnan(direct[name])), name


def _hand_made():
    """Five leads on an always-open calendar starting 2026-01-05 (a Monday), window =
    days 0-7, SLA 60 min (Hot) and 240 min (MQL) on the wall clock."""
    scn = build_scenario({
        "calendar": {"start_date": "2026-01-05", "horizon_days": 7, "warmup_days": 0, "always_open": True},
        "sla": {"hot_minutes": 60, "mql_minutes": 240, "clock": "wall"},
        "arrivals": {"leads_per_week": 5, "channels": {"web": {"share": 1.0, "cost_per_lead": 100.0}}},
        "conversion": {"win_prob": {"smb": 0.2, "mid": 0.3, "enterprise": 0.4}},
    })
    T = lambda d, h=0, m=0: pd.Timestamp("2026-01-05") + pd.Timedelta(days=d, hours=h, minutes=m)  # noqa: E731
    NaT = pd.NaT
    leads = pd.DataFrame({
        "lead_id": ["A", "B", "C", "D", "E"],
        "created_at": [T(0), T(1), T(2), T(6, 23), T(8)],  # E after the window
        "channel": ["web"] * 5,
        "employee_count": [50, 500, 5000, 50, 50],
        "band": ["hot", "mql", "mql", "hot", "hot"],
        "mql_at": [T(0), T(1), T(2), T(6, 23), T(8)],
        # A answered in 30 min; B in 5 h; C never; D waits past the window's end
        "first_response_at": [T(0, 0, 30), T(1, 5), NaT, NaT, T(8, 0, 1)],
        "handoff_at": [T(0, 1), T(1, 6), NaT, NaT, NaT],
        "decided_at": [T(2), T(3), NaT, NaT, NaT],
        "sal_at": [T(2), NaT, NaT, NaT, NaT],
        "sql_at": [T(3), NaT, NaT, NaT, NaT],
        "opportunity_at": [T(4), NaT, NaT, NaT, NaT],
        "closed_at": [T(6), NaT, NaT, NaT, NaT],
        "outcome": ["won", "open", "open", "open", "open"],
        "rejection_reason": [None, "no_timing", None, None, None],
        "amount": [10_000.0, np.nan, np.nan, np.nan, np.nan],
    })
    return scn, leads


def test_hand_made_export_gives_the_hand_worked_figures():
    scn, leads = _hand_made()
    k = funnel_kpis(leads, None, scn)
    assert k["lead_count"] == 4 and k["leads_per_week"] == 4.0
    assert k["mql_count"] == 4 and k["hot_share_of_mql"] == 0.5
    # Hot: A met (30 <= 60); D entered 60 min before the end, still waiting: its deadline
    # (the end itself) has not passed, so it is not counted. MQL: B missed (300 > 240);
    # C waited 5 days, past its deadline: counted, missed.
    assert k["sla_attainment_hot"] == 1.0
    assert k["sla_attainment_mql"] == 0.0
    assert k["sla_attainment"] == pytest.approx(1 / 3, rel=1e-12)
    assert k["untouched_share"] == 0.5
    assert k["response_median_minutes"] == pytest.approx(165.0)  # (30 + 300) / 2
    # Within 15 minutes: A, B, C and D all counted (D waited 60 min > 15 by the end); none met.
    assert k["within_15_minutes_share"] == 0.0
    # Within an hour: D entered exactly 60 min before the end: not yet counted. A of A, B, C.
    assert k["within_1_hour_share"] == pytest.approx(1 / 3)
    assert k["sal_acceptance_rate"] == 0.5  # A accepted, B rejected
    assert k["rejection_share_no_timing"] == 1.0
    assert k["disposition_mean_days"] == pytest.approx(((2 * 1440 - 60) + (2 * 1440 - 360)) / 2 / 1440)
    assert k["sql_count"] == 1 and k["mql_to_sql_rate"] == 0.25
    assert k["won_count"] == 1 and k["win_rate"] == 1.0 and k["win_rate_smb"] == 1.0
    assert math.isnan(k["win_rate_mid"])
    assert k["pipeline_usd"] == 10_000 and k["expected_revenue_usd"] == pytest.approx(2_000)
    assert k["marketing_spend_usd"] == 400.0 and k["marketing_roi"] == pytest.approx(5.0)
    assert k["days_opportunity_to_close"] == 2.0


def test_stages_after_the_window_have_not_happened_yet():
    scn, leads = _hand_made()
    k = funnel_kpis(leads, None, scn, end=pd.Timestamp("2026-01-08"))  # days 0-3
    assert k["lead_count"] == 3
    assert k["sql_count"] == 0  # A's SQL date is day 3: not yet
    assert k["sal_acceptance_rate"] == 1.0  # A decided (day 2); B's decision on day 3 is not inside [0, 3)
    assert k["won_count"] == 0 and math.isnan(k["win_rate"])


def test_data_dictionary_is_written_next_to_the_tables(written):
    _, res, out = written
    d = pd.read_csv(out / "kpi_dictionary.csv")
    kpi_cols = [c for c in res.kpis.columns if c not in ("policy", "replication", "seed")]
    assert list(d["name"]) == kpi_cols
    assert d["unit"].notna().all() and d["meaning"].notna().all()
    assert (d["meaning"].str.len() > 10).all()


def test_every_kpi_has_a_unit_kind_and_bounds():
    for name, k in KPIS.items():
        assert k.unit and k.meaning and k.kind in ("share", "count", "rate", "money", "net_money", "minutes", "days", "ratio"), name
        if k.kind == "share":
            assert k.bounds == (0.0, 1.0)
    assert kpi("sdr_utilisation").bounds == (0.0, 1.0)
    assert kpi("deal_size_mean_usd_partner").unit == "USD"


def test_summary_intervals_are_cut_to_what_the_kpi_can_take_and_na_below_two(written):
    from sim.kpis import summarise

    _, res, _ = written
    s = summarise(res.kpis.assign(policy="p"), "policy").set_index("kpi")
    shares = [k for k in s.index if kpi(k).kind == "share"]
    ok = s.loc[shares, ["ci_low", "ci_high"]].dropna()
    assert len(ok) > 10 and (ok["ci_low"] >= 0).all() and (ok["ci_high"] <= 1).all()
    one = summarise(res.kpis[res.kpis["replication"] == 0], "policy")
    assert one["ci_low"].isna().all() and one["ci_high"].isna().all()


def test_simulate_with_one_replication_prints_na_for_intervals(tmp_path, capsys):
    rc = main(["simulate", str(SCENARIOS / "baseline.yaml"), "-r", "1", "--out", str(tmp_path / "one"),
               "--set", "calendar.horizon_days=21", "--set", "calendar.warmup_days=7"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "n/a" in out and "[" not in out.split("\n", 3)[-1]


def test_sla_on_the_owners_schedule_counts_the_teams_hours():
    """A Hot lead created at 07:30 on a Monday and first touched at 07:50, by a team whose
    shift starts at 07:00: 20 business minutes on the team's own clock (past a 15-minute
    SLA), 0 on the 9-18 office clock (met)."""
    doc = {"calendar": {"start_date": "2026-01-05", "horizon_days": 7, "warmup_days": 0},
           "sla": {"hot_minutes": 15, "mql_minutes": 240, "clock": "business"},
           "team": {"sdrs": 2, "shifts": [{"name": "early", "people": 2, "days": [0, 1, 2, 3, 4], "start_hour": 7,
                                "end_hour": 15}]},
           "arrivals": {"leads_per_week": 5, "channels": {"web": {"share": 1.0}}}}
    t = pd.Timestamp("2026-01-05 07:30")
    leads = pd.DataFrame({"lead_id": ["A"], "created_at": [t], "channel": ["web"], "band": ["hot"],
                          "mql_at": [t], "first_response_at": [t + pd.Timedelta(minutes=20)]})
    office = funnel_kpis(leads, None, build_scenario(doc))
    owner = funnel_kpis(leads, None, build_scenario({**doc, "sla": {**doc["sla"], "schedule": "owner"}}))
    assert office["sla_attainment_hot"] == 1.0 and office["response_median_business_minutes"] == 0.0
    assert owner["sla_attainment_hot"] == 0.0 and owner["response_median_business_minutes"] == pytest.approx(20.0)
    assert owner["response_median_minutes"] == office["response_median_minutes"] == pytest.approx(20.0)


def test_breaches_escalations_and_the_overflow_team_are_kpis():
    """On a breach the lead moves to a one-person overflow team: every escalation is a
    breach acted on, and the overflow team's utilisation is measured on its own hours."""
    from sim.model import run_replication

    scn = load_scenario(SCENARIOS / "baseline.yaml", {"routing.on_breach": "escalate", "team.overflow_people": 1,
                                                      "sla.mql_minutes": 30, "calendar.horizon_days": 28})
    rep = run_replication(scn, 0, seed=3)
    k = replication_kpis(scn, rep, BusinessClock(scn.calendar))
    assert k["breach_count"] == rep.breaches > 0
    assert 0 < k["escalated_count"] == rep.escalated <= k["breach_count"]
    o = rep.other_pools["overflow"]
    assert 0 < k["overflow_utilisation"] == o["busy_minutes"] / o["duty_minutes"] <= 1
    base = replication_kpis(load_scenario(SCENARIOS / "baseline.yaml", {"calendar.horizon_days": 28}),
                            run_replication(load_scenario(SCENARIOS / "baseline.yaml", {"calendar.horizon_days": 28}),
                                            0, seed=3), BusinessClock(scn.calendar))
    assert base["breach_count"] == base["escalated_count"] == 0 and "overflow_utilisation" not in base
