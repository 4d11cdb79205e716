"""What a policy costs and what it is worth, in one place (DOMAIN.md section 8).

Every money figure the lab quotes beyond pipeline and revenue comes from here:

* **Team cost**: loaded cost per paid hour = ``sdr_cost_per_year_usd / paid_hours_per_year``;
  a person on a shift is paid its hours each week, and hours outside 9:00-18:00 on
  weekdays (all weekend hours) earn ``off_hours_premium`` on top. SDRs work their shifts
  (or the calendar's office hours), the overflow pool the office hours; AEs cost
  ``ae_cost_per_year_usd / 52`` a week each.
* **Gross profit** of a window's leads = ``gross_margin`` x their expected revenue
  (pipeline created weighted by the segment's win odds: the value the window's leads
  create, whether their deals close inside the window or after it).
* **Net value** = gross profit - team cost - marketing spend of the same window. Two
  policies are compared on the *change* in net value, so costs the policy does not move
  cancel; the change's 95% interval comes from the paired replications (``lab.story``).
* **Per quarter**: a window of ``w`` weeks is scaled by ``QUARTER_WEEKS / w``, so runs of
  any length are quoted per 13-week quarter.

The defaults in ``sim.scenario.Economics`` are assumptions (a US fully loaded SDR about
$95k a year, an AE about $200k, 2,080 paid hours, a 15% off-hours premium, 75% gross
margin): replace them with the team's own.
"""
from __future__ import annotations

from typing import Iterable

#: Weeks in the quarter every "per quarter" figure is quoted for.
QUARTER_WEEKS = 13.0
#: Weeks in a year, for yearly costs quoted per week.
WEEKS_PER_YEAR = 52.0
#: The office day whose hours earn no premium (weekdays only).
STANDARD_HOURS = (9.0, 18.0)


def hourly_cost_usd(scn) -> float:
    """Loaded cost of one SDR paid hour."""
    e = scn.economics
    return e.sdr_cost_per_year_usd / e.paid_hours_per_year


def off_hours_per_week(days: Iterable[int], start_hour: float, end_hour: float) -> float:
    """Paid hours of a weekly shift outside 9-18 on weekdays (all weekend hours, day >= 5):
    the hours that earn the off-hours premium."""
    lo, hi = STANDARD_HOURS
    off = 0.0
    for d in days:
        inside = max(0.0, min(end_hour, hi) - max(start_hour, lo)) if d < 5 else 0.0
        off += (end_hour - start_hour) - inside
    return off


def shift_cost_per_week_usd(scn, days: Iterable[int], start_hour: float, end_hour: float) -> float:
    """One person on a shift for a week: paid hours at the loaded rate, off-hours with
    the premium on top."""
    days = tuple(days)
    paid = (end_hour - start_hour) * len(days)
    return hourly_cost_usd(scn) * (paid + scn.economics.off_hours_premium * off_hours_per_week(days, start_hour, end_hour))


def sdr_cost_per_week_usd(scn) -> float:
    """Weekly cost of a scenario's SDRs (its shifts, or every SDR on the calendar's
    office hours) and its overflow pool (on the office hours)."""
    cal, team = scn.calendar, scn.team
    office = shift_cost_per_week_usd(scn, cal.working_days, cal.open_hour, cal.close_hour)
    if team.shifts:
        cost = sum(s.people * shift_cost_per_week_usd(scn, s.days, s.start_hour, s.end_hour) for s in team.shifts)
    else:
        cost = team.sdrs * office
    return cost + team.overflow_people * office


def team_cost_per_week_usd(scn) -> float:
    """Weekly cost of the whole lead-handling team: SDRs, overflow pool and AEs."""
    return sdr_cost_per_week_usd(scn) + scn.team.aes * scn.economics.ae_cost_per_year_usd / WEEKS_PER_YEAR


def per_quarter(value: float, weeks: float) -> float:
    """A figure over ``weeks`` weeks, scaled to a 13-week quarter."""
    return value * QUARTER_WEEKS / weeks if weeks > 0 else float("nan")


def money_kpis(k: dict, scn, weeks: float) -> dict[str, float]:
    """Cost, gross profit and net value of a window from its funnel KPIs ``k``
    (``expected_revenue_usd``, ``marketing_spend_usd``, ``pipeline_usd``,
    ``revenue_won_usd``), over the window and per quarter."""
    team = team_cost_per_week_usd(scn) * weeks
    gross = scn.economics.gross_margin * k["expected_revenue_usd"]
    net = gross - team - k["marketing_spend_usd"]
    out = {"team_cost_usd": team, "gross_profit_usd": gross, "net_value_usd": net}
    for name in ("pipeline_usd", "revenue_won_usd", "expected_revenue_usd", "marketing_spend_usd"):
        out[name.replace("_usd", "_per_quarter_usd")] = per_quarter(k[name], weeks)
    for name in ("team_cost_usd", "gross_profit_usd", "net_value_usd"):
        out[name.replace("_usd", "_per_quarter_usd")] = per_quarter(out[name], weeks)
    return out
