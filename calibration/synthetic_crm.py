"""Simulated history written the way real CRMs export it, with a known truth.

``write_salesforce`` writes ``Lead.csv``, ``Opportunity.csv`` and ``Task.csv`` (API field
names, UTC ISO-8601 timestamps ``2026-01-05T14:03:00.000Z``; ``Task`` holds calls and
emails, including pre-MQL marketing emails that are *not* the first response);
``write_hubspot`` writes ``contacts.csv`` and ``deals.csv`` (property labels as
headers, day-first local dates ``05/01/2026 14:03`` without a time zone, a UTF-8 BOM,
semicolons and decimal commas as a European Excel saves them). The shipped mappings
``data/mappings/salesforce.yaml`` and ``hubspot.yaml`` read them back.

``simulated_history(scenario, seed)`` returns the simulator's own lead table
(``sim.crm.crm_export``): the truth an import of those files must reproduce, and the
scenario is the truth a fit must recover; ``true_parameters(scenario)`` names that truth
the way the fit report names its parameters. ``deals_from`` (both writers) leaves out the
deals created before a date, as a CRM migration does (deals recorded only from then on).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

RATING = {"hot": "Hot", "mql": "Warm", "nurture": "Cool", "cold": "Cold"}
HS_STAGE = {"won": "closedwon", "lost": "closedlost", "no_decision": "closedlost_nodecision", "open": "contractsent"}
SF_STAGE = {"won": "Closed Won", "lost": "Closed Lost", "no_decision": "No Decision", "open": "Negotiation"}


def simulated_history(scenario, seed: int = 11) -> pd.DataFrame:
    """One replication of ``scenario`` as the simulator's CRM export (aware timestamps)."""
    from sim.crm import crm_export
    from sim.model import run_replication

    return crm_export(run_replication(scenario, 0, seed=seed).leads, scenario)


def _utc_iso(s: pd.Series) -> pd.Series:
    t = pd.to_datetime(s, utc=True)
    return t.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z").where(t.notna(), "")


def _opp_ids(leads: pd.DataFrame) -> pd.Series:
    has = leads["opportunity_at"].notna()
    return pd.Series(np.where(has, "006" + leads["lead_id"].str[1:], ""), index=leads.index)


def _tasks(leads: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The first response as a Call or Email task, a few follow-ups after it, and a
    marketing email before the MQL for some leads (which must not count)."""
    rng = np.random.default_rng(seed)
    rows = []
    touched = leads[leads["first_response_at"].notna()]
    for lid, owner, t in zip(touched["lead_id"], touched["owner_id"], pd.to_datetime(touched["first_response_at"])):
        rows.append((lid, owner, t, rng.choice(["Call", "Email"], p=[0.7, 0.3])))
        for k in range(int(rng.integers(0, 3))):
            rows.append((lid, owner, t + pd.Timedelta(hours=float(rng.uniform(2, 72)) * (k + 1)), "Call"))
    mql = leads[leads["mql_at"].notna()]
    pre = mql.sample(frac=0.3, random_state=seed)
    for lid, t in zip(pre["lead_id"], pd.to_datetime(pre["mql_at"])):
        rows.append((lid, "marketing", t - pd.Timedelta(hours=float(rng.uniform(1, 48))), "Email"))
    # A non-call activity after the MQL (a meeting note): not a response either.
    for lid, t in zip(mql["lead_id"][:50], pd.to_datetime(mql["mql_at"])[:50]):
        rows.append((lid, "sdr", t + pd.Timedelta(minutes=1), "Task"))
    tk = pd.DataFrame(rows, columns=["WhoId", "OwnerId", "CreatedDate", "TaskSubtype"])
    tk = tk.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # exports are not in time order
    tk.insert(0, "Id", [f"00T{i:08d}" for i in range(len(tk))])
    tk["CreatedDate"] = _utc_iso(tk["CreatedDate"])
    tk["Status"] = "Completed"
    tk["ActivityDate"] = tk["CreatedDate"].str[:10]
    return tk


def true_parameters(scenario) -> dict[str, float]:
    """The scenario's values under the fit report's parameter names
    (``calibration.fit_report``): what a fit of its history must recover.

    The decay is given when the fit's model holds: a power-law qualification curve;
    then ``P(qualified | band, d) = q (1 + d / d0) ** -alpha K(d)`` (q the qualify odds,
    ``K`` the attempts' expected contact, ``calibration.decay_fit.AttemptRules``) and
    ``p_band = q K(0)`` (with no contact curve ``K(0) = (1 - (1 - c) ** A) / c``, c the
    contact odds, A the attempts). A fit recovers them when its base scenario assumes the
    scenario's contact side (curve, odds, cadence)."""
    cv, team = scenario.conversion, scenario.team
    out = {"arrivals.leads_per_week": scenario.arrivals.leads_per_week, "team.sdrs": team.sdrs,
           "calendar.open_hour": scenario.calendar.open_hour, "calendar.close_hour": scenario.calendar.close_hour,
           "deal_size_sigma[all]": cv.deal_size_sigma, "disposition_days[all]": cv.disposition_days_mean,
           "sql_to_opportunity_days[all]": cv.days_sql_to_opportunity_mean}
    total = sum(c.share for c in scenario.arrivals.channels.values())
    out |= {f"arrivals.channels[{k}].share": c.share / total for k, c in scenario.arrivals.channels.items()}
    mix = sum(cv.rejection_mix.values())
    out |= {f"conversion.rejection_mix[{r}]": v / mix for r, v in cv.rejection_mix.items()}
    for b in cv.sal_accept_prob:
        out[f"sal_accept[{b}]"] = cv.sal_accept_prob[b]
    q = scenario.decay.qualification
    if q.kind == "power":
        from calibration.decay_fit import AttemptRules

        rules = AttemptRules.of(scenario)
        out |= {"decay.d0_minutes": q.d0_minutes, "decay.alpha": q.alpha}
        for b in cv.contact_prob:
            out[f"decay.p_{b}"] = cv.qualify_prob[b] * float(rules.reach(b, 0.0))
            out[f"conversion.qualify_prob[{b}]"] = cv.qualify_prob[b]
    for s in cv.win_prob:
        out |= {f"sql_to_opportunity[{s}]": cv.sql_to_opportunity[s], f"win[{s}]": cv.win_prob[s],
                f"no_decision[{s}]": cv.no_decision_prob[s], f"days_to_close[{s}]": cv.days_to_close_mean[s],
                f"deal_size_median[{s}]": cv.deal_size_median[s]}
    return out


def _deals(leads: pd.DataFrame, deals_from) -> pd.DataFrame:
    """The leads that have a deal in the export (created on or after ``deals_from``)."""
    o = leads[leads["opportunity_at"].notna()]
    if deals_from is not None:
        o = o[pd.to_datetime(o["opportunity_at"], utc=True) >= pd.Timestamp(deals_from, tz="UTC")]
    return o


def write_salesforce(leads: pd.DataFrame, folder: str | Path, seed: int = 1, deals_from=None) -> Path:
    """Salesforce object export (Lead, Opportunity, Task) of a simulated history;
    ``deals_from``: no Opportunity row created before this date (the converted leads
    keep their ConvertedOpportunityId: it joins nothing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    opp = _opp_ids(leads)
    lead = pd.DataFrame({
        "Id": leads["lead_id"], "CreatedDate": _utc_iso(leads["created_at"]), "LeadSource": leads["channel"],
        "Status": np.where(leads["sql_at"].notna(), "Converted",
                           np.where(leads["rejection_reason"].notna(), "Unqualified", "Open")),
        "IsConverted": leads["sql_at"].notna(), "ConvertedDate": _utc_iso(leads["sql_at"]),
        "ConvertedOpportunityId": opp, "OwnerId": leads["owner_id"],
        "Company": "Co " + leads["lead_id"], "Industry": leads["industry"],
        "NumberOfEmployees": leads["employee_count"], "Title": leads["seniority"], "Country": leads["region"],
        "Rating": leads["band"].map(RATING), "MQL_Date__c": _utc_iso(leads["mql_at"]),
        "SAL_Date__c": _utc_iso(leads["sal_at"]), "Unqualified_Reason__c": leads["rejection_reason"],
        "Demo_Requests__c": leads["demo_requests"], "Pricing_Page_Visits__c": leads["pricing_page_visits"],
    })
    o = _deals(leads, deals_from)
    outcome = o["outcome"].fillna("open")
    closed = o["closed_at"].notna() & (outcome != "open")
    # An open opportunity carries its *expected* close date, 30 days out.
    close = pd.to_datetime(o["closed_at"], utc=True).where(closed, pd.to_datetime(o["opportunity_at"], utc=True)
                                                           + pd.Timedelta(days=30))
    opportunity = pd.DataFrame({
        "Id": opp[o.index], "AccountId": "001" + o["lead_id"].str[1:], "CreatedDate": _utc_iso(o["opportunity_at"]),
        "CloseDate": _utc_iso(close), "StageName": outcome.map(SF_STAGE), "Amount": o["amount"], "IsClosed": closed,
        "IsWon": outcome == "won", "LeadSource": o["channel"], "OwnerId": "AE",
    })
    lead.to_csv(folder / "Lead.csv", index=False)
    opportunity.to_csv(folder / "Opportunity.csv", index=False)
    _tasks(leads, seed).to_csv(folder / "Task.csv", index=False)
    return folder


def _local(s: pd.Series, tz: str) -> pd.Series:
    t = pd.to_datetime(s, utc=True).dt.tz_convert(tz)
    return t.dt.strftime("%d/%m/%Y %H:%M").where(t.notna(), "")


def write_hubspot(leads: pd.DataFrame, folder: str | Path, tz: str = "America/New_York", deals_from=None) -> Path:
    """HubSpot contacts + deals export of a simulated history: day-first local dates (no
    zone: the mapping names it), UTF-8 with BOM, semicolon-separated, decimal commas;
    ``deals_from``: no deal created before this date (the contacts keep their
    "Became an Opportunity Date": the deal itself was not migrated)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = leads["lead_id"].str[1:].astype(int) + 1000
    stage = np.select([leads["outcome"].isin(["won"]), leads["opportunity_at"].notna(), leads["sql_at"].notna(),
                       leads["mql_at"].notna()], ["customer", "opportunity", "salesqualifiedlead",
                                                  "marketingqualifiedlead"], "lead")
    contacts = pd.DataFrame({
        "Record ID": ids, "Create Date": _local(leads["created_at"], tz), "Original Source": leads["channel"],
        "Contact owner": leads["owner_id"], "Lifecycle Stage": stage, "Job Title": leads["seniority"],
        "Industry": leads["industry"], "Number of Employees": leads["employee_count"],
        "Became a Marketing Qualified Lead Date": _local(leads["mql_at"], tz),
        "Became a Sales Qualified Lead Date": _local(leads["sql_at"], tz),
        "Became an Opportunity Date": _local(leads["opportunity_at"], tz),
        "First Engagement Date": _local(leads["first_response_at"], tz),
        "Lead Rating": leads["band"],
    })
    o = _deals(leads, deals_from)
    outcome = o["outcome"].fillna("open")
    deals = pd.DataFrame({
        "Record ID": np.arange(len(o)) + 900000, "Deal Name": "Deal " + o["lead_id"],
        "Deal Stage": outcome.map(HS_STAGE).to_numpy(),
        "Amount": [f"{a:.2f}".replace(".", ",") if pd.notna(a) else "" for a in o["amount"]],
        "Create Date": _local(o["opportunity_at"], tz).to_numpy(),
        "Close Date": _local(o["closed_at"].where(outcome != "open"), tz).to_numpy(),
        "Deal owner": "AE", "Associated Contact IDs": ids[o.index].to_numpy(),
    })
    for name, df in (("contacts.csv", contacts), ("deals.csv", deals)):
        df.to_csv(folder / name, index=False, sep=";", encoding="utf-8-sig")
    return folder


#: The shipped mapping that reads each writer's export back.
MAPPINGS = {"salesforce": "salesforce.yaml", "hubspot": "hubspot.yaml"}


def fit_generated(truth, base, shape: str, seed: int, folder: str | Path, deals_from=None):
    """Simulate ``truth`` once (``seed``), write it as a ``shape`` export ("salesforce"
    or "hubspot") in ``folder``, and fit ``base`` to it with the shipped mapping; returns
    the ``FittedFunnel`` (its ``report`` sets the fit against ``true_parameters(truth)``)."""
    from calibration.history import fit_scenario
    from common.paths import DATA

    if shape not in MAPPINGS:
        from common.errors import LabError

        raise LabError(f"fit_generated: shape: must be one of {sorted(MAPPINGS)} (rule: a writer of this "
                       f"module); got {shape!r}")
    leads = simulated_history(truth, seed=seed)
    if shape == "salesforce":
        write_salesforce(leads, folder, seed=seed, deals_from=deals_from)
    else:
        write_hubspot(leads, folder, truth.calendar.timezone, deals_from=deals_from)
    return fit_scenario(folder, DATA / "mappings" / MAPPINGS[shape], base=base)
