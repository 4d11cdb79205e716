"""What a policy costs and what it is worth (sim.economics), checked by hand."""
from __future__ import annotations

import math

import pytest

from common.paths import SCENARIOS
from sim.economics import QUARTER_WEEKS, money_kpis, off_hours_per_week, team_cost_per_week_usd
from sim.scenario import load_scenario

HOUR_USD = 95_000.0 / 2080.0  # the default loaded SDR hour


def test_office_team_cost_by_hand():
    scn = load_scenario(SCENARIOS / "baseline.yaml")
    # 5 SDRs x 45 paid hours (9-18, Mon-Fri, no premium) + 2 AEs at $200k a year.
    want = 5 * 45 * HOUR_USD + 2 * 200_000.0 / 52.0
    assert team_cost_per_week_usd(scn) == pytest.approx(want, rel=1e-12)


def test_shift_premium_by_hand():
    # 7-15 has two hours before 9 each weekday; 13-21 three after 18; Saturday is all off-hours.
    assert off_hours_per_week(range(5), 7, 15) == 10
    assert off_hours_per_week(range(5), 13, 21) == 15
    assert off_hours_per_week([5], 9, 18) == 9
    scn = load_scenario(SCENARIOS / "baseline.yaml", {"team.shifts": [
        {"name": "early", "people": 3, "days": [0, 1, 2, 3, 4], "start_hour": 7, "end_hour": 15},
        {"name": "late", "people": 2, "days": [0, 1, 2, 3, 4], "start_hour": 13, "end_hour": 21}]})
    sdr = 3 * HOUR_USD * (40 + 0.15 * 10) + 2 * HOUR_USD * (40 + 0.15 * 15)
    assert team_cost_per_week_usd(scn) == pytest.approx(sdr + 2 * 200_000.0 / 52.0, rel=1e-12)


def test_net_value_identity_and_quarter_scaling():
    scn = load_scenario(SCENARIOS / "baseline.yaml")
    k = {"expected_revenue_usd": 1_000_000.0, "marketing_spend_usd": 50_000.0, "pipeline_usd": 3e6,
         "revenue_won_usd": 2e5}
    m = money_kpis(k, scn, weeks=6.5)
    assert m["gross_profit_usd"] == pytest.approx(750_000.0)
    assert m["team_cost_usd"] == pytest.approx(team_cost_per_week_usd(scn) * 6.5)
    assert m["net_value_usd"] == pytest.approx(750_000.0 - m["team_cost_usd"] - 50_000.0)
    # Half a quarter doubles to a quarter.
    assert QUARTER_WEEKS == 13
    for name in ("net_value", "team_cost", "pipeline", "expected_revenue"):
        src = m.get(f"{name}_usd", k.get(f"{name}_usd"))
        assert m[f"{name}_per_quarter_usd"] == pytest.approx(2 * src)
    assert math.isnan(money_kpis(k, scn, weeks=0)["net_value_per_quarter_usd"])
