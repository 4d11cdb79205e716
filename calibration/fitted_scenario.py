"""The fitted numbers written over the base scenario, and the fit report's rows.

``build_fitted_scenario`` sets each fitted value in a copy of the base scenario and
validates it, keeping the base's value (and saying why) where the export could not tell;
``fixed_report_rows`` writes the fit-report rows of the parameters it does not read one
by one (volume, channels, decay with the contact side it assumes, rejection mix, team
size). See ``calibration.fit_report`` for the report itself.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from calibration.decay_fit import Z
from calibration.team import row
from common.intervals import SMALL_N
from sim.scenario import BANDS_ROUTED, SEGMENTS, Scenario, build_scenario

#: The export columns each fitted quantity needs (for the fit report's reasons).
NEEDS = {"sal_accept": ("mql_at", "sal_at"), "sql_to_opportunity": ("sql_at", "opportunity_at"),
         "win": ("opportunity_at", "closed_at"), "no_decision": ("opportunity_at", "closed_at"),
         "days_to_close": ("opportunity_at", "closed_at"), "deal_size_median": ("opportunity_at", "amount"),
         "deal_size_sigma": ("opportunity_at", "amount"),
         "disposition_days": ("handoff_at", "decided_at", "first_response_at", "sal_at"),
         "sql_to_opportunity_days": ("sql_at", "opportunity_at")}


def fixed_report_rows(volume, channels, decay_fit, decay_tab, df, base, notes, owner_row, conversion,
                      contact_why: str = "", first_why: str = "") -> list[dict]:
    """Report rows of the parameters not read through ``_est``: volume, channels, decay
    (with the contact side it assumes), rejection mix and team size."""
    rows = []
    v = volume.set_index("quantity")
    rows.append(row("arrivals.leads_per_week", v.loc["leads_per_week", "estimate"], "fitted",
                    "leads created per week of the lead-creation window",
                    estimate=v.loc["leads_per_week", "estimate"], ci_low=v.loc["leads_per_week", "ci_low"],
                    ci_high=v.loc["leads_per_week", "ci_high"], n=int(v.loc["leads_per_week", "n"])))
    for _, c in channels.iterrows():
        rows.append(row(f"arrivals.channels[{c['channel']}].share", c["share"], "fitted", "",
                        estimate=c["share"], ci_low=c["ci_low"], ci_high=c["ci_high"], n=int(c["n"])))
    if "channel" not in df:
        rows[-1]["reason"] = "no channel column: one channel 'all'"
    if decay_fit is not None:
        flat = (f"no power-law bend seen (d0 {decay_fit.d0:.3g} min, alpha {decay_fit.alpha:.3g}): over the delays "
                f"seen Q is exp(-d alpha / d0), alpha / d0 = {60 * decay_fit.alpha / decay_fit.d0:.3g} per hour "
                "(with the assumed contact curve few leads are answered late, so the export shows Q mostly over "
                "the first minutes): no interval; ")
        for _, d in decay_tab.iterrows():
            why = flat + first_why if d["parameter"] in ("d0_minutes", "alpha") and not decay_fit.identified \
                else first_why
            rows.append(row(f"decay.{d['parameter']}", d["estimate"], "fitted", why, estimate=d["estimate"],
                            ci_low=d["ci_low"], ci_high=d["ci_high"], n=decay_fit.n_))
        for b in decay_fit.bands:
            rows.append(row(f"conversion.qualify_prob[{b}]", decay_fit.q(b), "fitted",
                            f"given the assumed contact side (decay.contact, contact_prob, attempts); {first_why}",
                            estimate=decay_fit.q(b), ci_low=decay_fit.q(b, -Z), ci_high=decay_fit.q(b, Z),
                            n=decay_fit.n_))
        no_log = "an export has no attempt log (no contact dates, no attempt count)"
        kind = decay_fit.rules.contact.kind if decay_fit.rules is not None else "none"
        rows.append(row("decay.contact", kind, "assumed", f"{no_log}; {contact_why}"))
        for b in decay_fit.bands:
            rows.append(row(f"conversion.contact_prob[{b}]", base.conversion.contact_prob[b], "assumed",
                            f"{no_log}; base scenario's value"))
        rows.append(row("team.max_attempts", base.team.max_attempts, "assumed", f"{no_log}; base scenario's value"))
        rows.append(row("team.attempt_gaps_minutes", " ".join(f"{g:g}" for g in base.team.attempt_gaps_minutes),
                        "assumed", f"{no_log}; base scenario's cadence"))
    else:
        missing = [c for c in ("mql_at", "first_response_at") if c not in df or df[c].notna().sum() == 0]
        why = (f"no {' / '.join(missing)} in this export" if missing
               else next((n for n in notes if n.startswith("decay not fitted")), "decay not identifiable"))
        rows.append(row("decay.qualification", str(base.decay.qualification.kind), "assumed",
                        f"{why}; base scenario's curve"))
    rej = conversion[conversion["quantity"] == "rejection_share"]
    if rej["n"].max() > 0:
        for _, r in rej.iterrows():
            rows.append(row(f"conversion.rejection_mix[{r['group']}]", r["estimate"], "fitted", "",
                            estimate=r["estimate"], ci_low=r["ci_low"], ci_high=r["ci_high"], n=int(r["n"])))
    else:
        rows.append(row("conversion.rejection_mix", "base", "assumed",
                        "no rejection reasons in this export; base scenario's mix"))
    rows.append(owner_row)
    return rows


def _est_(table: pd.DataFrame, quantity: str, group: str, default: float, notes: list, lo=None, hi=None,
         report: list | None = None, reason: str = "", absent=frozenset()) -> float:
    r = table[(table["quantity"] == quantity) & (table["group"] == group)]
    v = float(r["estimate"].iloc[0]) if len(r) else math.nan
    row = dict(parameter=f"{quantity}[{group}]", value=default, status="assumed", estimate=math.nan,
               ci_low=math.nan, ci_high=math.nan, n=int(r["n"].iloc[0]) if len(r) else 0,
               raw_estimate=math.nan, shrinkage=0.0, reason="")
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        lacking = [c for c in NEEDS.get(quantity, ()) if c in absent]
        why = reason or (f"no {' / '.join(lacking)} in this export" if lacking else "") or (f"no {quantity.replace('_', ' ')} records for {group} in this export" if len(r) == 0
                         or row["n"] == 0 else f"the estimate {v:g} is outside its range")
        notes.append(f"{quantity}[{group}]: no usable data; kept the base value {default:g}")
        row["reason"] = f"{why}; base scenario's value"
        if report is not None:
            report.append(row)
        return default
    one = r.iloc[0]
    row.update(value=v, status="fitted", estimate=v, ci_low=float(one.get("ci_low", math.nan)),
               ci_high=float(one.get("ci_high", math.nan)),
               raw_estimate=float(one.get("raw_estimate", v)) if pd.notna(one.get("raw_estimate", v)) else v,
               shrinkage=float(one.get("shrinkage", 0.0)) if pd.notna(one.get("shrinkage", 0.0)) else 0.0)
    if isinstance(one.get("reason"), str):
        row["reason"] = one["reason"]  # how it was measured (e.g. a fallback)
    if row["shrinkage"] > 0:
        row["reason"] = (f"{row['n']} records (< {SMALL_N}): pulled {row['shrinkage']:.0%} toward the pooled value "
                         f"(raw {row['raw_estimate']:.3g})")
    if report is not None:
        report.append(row)
    return v


def build_fitted_scenario(base: Scenario, export: Path, start, days, leads_per_week, profile, channel_docs,
                          decay_fit, conversion, durations, deal_sizes, owners, notes, report: list | None = None,
                          absent: set = frozenset(), calendar: dict | None = None) -> Scenario:
    """The fitted numbers written over the base scenario, validated; ``report`` gets one
    row per parameter, fitted or assumed (``calibration.fit_report``); ``calendar``:
    calendar fields read from the export (hours, working days, time zone)."""
    from functools import partial

    _est = partial(_est_, report=report, absent=absent)
    doc = base.model_dump(mode="json")
    cal = doc["calendar"]
    cal.update(calendar or {})
    cal["start_date"] = str(start.date())
    cal["horizon_days"] = int(days)
    cal["warmup_days"] = int(min(cal["warmup_days"], days - 1))
    doc["name"] = f"fitted_{export.stem}"
    doc["description"] = f"Fitted to {export.name} by calibration.history.fit_scenario."
    doc["arrivals"] = {"leads_per_week": float(leads_per_week), "profile": [float(w) for w in profile],
                       "channels": channel_docs}
    if owners > 0 and doc["team"].get("shifts") is None and not doc["team"].get("unlimited"):
        doc["team"]["sdrs"] = owners
    cv = doc["conversion"]
    if decay_fit is not None:
        # The contact side (curve, odds, cadence) stays the base's: it is what the fit
        # assumed (``calibration.decay_fit``), unless the export contradicted the curve.
        if decay_fit.rules is None or decay_fit.rules.flat:
            doc["decay"]["contact"] = {"kind": "none"}
        doc["decay"]["qualification"] = {"kind": "power", "d0_minutes": decay_fit.d0, "alpha": decay_fit.alpha}
        for b in decay_fit.bands:
            cv["qualify_prob"][b] = min(decay_fit.q(b), cv["contact_prob"][b])  # pq <= pc by construction
    for b in BANDS_ROUTED:
        cv["sal_accept_prob"][b] = _est(conversion, "sal_accept", b, cv["sal_accept_prob"][b], notes, 0, 1)
    rej = conversion[conversion["quantity"] == "rejection_share"]
    if rej["n"].max() > 0:
        cv["rejection_mix"] = {r: float(v) for r, v in zip(rej["group"], rej["estimate"])}
    for s in SEGMENTS:
        cv["sql_to_opportunity"][s] = _est(conversion, "sql_to_opportunity", s, cv["sql_to_opportunity"][s], notes, 0, 1)
        w = _est(conversion, "win", s, cv["win_prob"][s], notes, 0, 1)
        nd = _est(conversion, "no_decision", s, cv["no_decision_prob"][s], notes, 0, 1)
        cv["win_prob"][s], cv["no_decision_prob"][s] = w, min(nd, 1 - w)
        cv["days_to_close_mean"][s] = _est(durations, "days_to_close", s, cv["days_to_close_mean"][s], notes, 1e-6)
        cv["deal_size_median"][s] = _est(deal_sizes, "deal_size_median", s, cv["deal_size_median"][s], notes, 1e-6)
    cv["disposition_days_mean"] = _est(durations, "disposition_days", "all", cv["disposition_days_mean"], notes, 1e-6)
    cv["days_sql_to_opportunity_mean"] = _est(durations, "sql_to_opportunity_days", "all",
                                              cv["days_sql_to_opportunity_mean"], notes, 1e-6)
    cv["deal_size_sigma"] = _est(deal_sizes, "deal_size_sigma", "all", cv["deal_size_sigma"], notes, 1e-6)
    return build_scenario(doc, source=f"scenario fitted to {export}")
