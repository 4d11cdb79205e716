"""Fitting the simulator to history: from a CRM export (one row per lead) estimate the
arrival pattern, channel mix, response times, the decay of qualification with response
delay, stage conversion rates and durations, and deal sizes; write them as a scenario the
simulator runs as is (``calibration.backtest`` then checks it against the history it
came from).

What an export can and cannot tell
----------------------------------
- It has no attempt log (no contact timestamp, no attempt count), so the contact curve
  ``C`` of ``sim.decay``, the contact odds ``pc`` and the attempt cadence cannot be
  separated from the qualification curve ``Q``: they are assumed, the base scenario's
  (the fit report says so), and they set how much work each lead gives the SDRs. Given
  them, the fit estimates ``Q`` and the qualify odds ``pq`` per score band from whether
  a routed lead was qualified (handed to sales: ``sal_at`` or a ``rejection_reason``)
  and its first-touch delay ``d`` (wall-clock minutes from ``mql_at`` to
  ``first_response_at``)::

      P(qualified | band, d) = pq_band * (1 + d / d0) ** -alpha * K_band(d)

  where ``K`` (the attempts' expected contact, ``calibration.decay_fit``) is a fixed
  offset; by maximum likelihood, with Wald intervals from the observed information
  (numerical Hessian, on the logit / log scale, then transformed back). The written
  scenario keeps the base's contact curve and odds and takes ``Q`` and ``qualify_prob``
  from the fit. Only when the export contradicts the base's contact curve (a flat one
  fits it very much better: ``calibration.decay_fit.fit_qualification``) is the contact
  curve set to ``none``, and the fit report says why.
- The export keeps a lead's first touch but only its last hand-off: a lead that re-enters
  the queue later (nurture, recycling) and qualifies on a later pass would count as
  qualified at its first delay. The decay is fitted on first-pass qualifications (a
  hand-off within the attempt cadence of the first touch,
  ``calibration.decay_fit.first_pass_qualified``); without ``handoff_at`` on any pass,
  biased upwards at long delays under heavy re-entry, and the fit report says so.
- Disposition (``conversion.disposition_days_mean``): the time from the hand-off to
  sales' decision, ``decided_at - handoff_at``, exponential (as the simulator draws it)
  with hand-offs still undecided at the export's end right-censored; an export without
  those dates falls back on ``sal_at - first_response_at`` of accepted leads, which
  also holds the attempts before the hand-off (longer), and the fit report says so.
- Right-censoring at the export's end: rates whose outcome takes time use only cohorts
  old enough for that outcome to have happened (``mature_days`` for qualification and
  sales' decision, ``opp_window_days`` for SQL -> opportunity); the opportunity -> close
  duration is a censored-exponential maximum-likelihood estimate (open opportunities
  contribute their exposure); win / no-decision shares are taken among closed deals.

Timestamps are read in the time zone the mapping declares for the main table (where the
team sits), else in the base scenario's (``base.calendar.timezone``): exports whose dates
carry an offset are converted to it; naive dates are taken to be local already. Team
size, working hours and the zone are read by ``calibration.team``; stage dates recorded
only from some date on restrict the cohorts they feed (``calibration.recording``).

Where the parts live: reading the export, ``calibration.history_read``; arrivals
(profile, channel mix), ``calibration.arrivals_fit``; the decay, ``calibration.decay_fit``;
stage outcome rates, ``calibration.rates``; writing the numbers over the base scenario
with one fit-report row each, ``calibration.fitted_scenario``; what a fit returns,
``calibration.fitted_funnel``. This module measures the rest (response times, stage
rates, durations, deal sizes) in ``fit_scenario``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.arrivals_fit import arrival_profile, channel_mix
from calibration.decay_fit import first_pass_qualified, fit_qualification
from calibration.fitted_funnel import FittedFunnel
from calibration.fitted_scenario import build_fitted_scenario, fixed_report_rows
from calibration.history_read import TIMES, read_history
from calibration.mapping import load_mapping
from calibration.rates import _outcome_rates, _shrink, segment_rates
from calibration.recording import annotate, in_cohort, recording_windows, report_rows
from calibration.team import team_size, time_zone, working_hours
from common.errors import LabError
from common.intervals import (
    exponential_mean_interval,
    mean_interval,
    poisson_rate_interval,
    proportion_interval,
    quantile_interval,
    sd_interval,
    small_n,
    t_half_width,
)
from sim.scenario import BANDS_ROUTED, REASONS, SEGMENTS, Scenario

#: Pseudo-records pulling a rate fitted from few records toward its pooled value.
PRIOR_N = 10.0


# ---- small estimators -----------------------------------------------------------------------
def _rate_row(table: str, group: str, k, n) -> dict:
    p, lo, hi = proportion_interval(int(k), int(n))
    return dict(quantity=table, group=group, estimate=p, ci_low=lo, ci_high=hi, n=int(n), small_n=small_n(int(n)))


def segment_of(frame: pd.DataFrame) -> pd.Series:
    """The simulator's segments from employee count (``sim.arrivals.segment_of``); 'mid'
    when the export has no employee count."""
    from sim.arrivals import segment_of as seg

    if "employee_count" not in frame:
        return pd.Series("mid", index=frame.index, dtype=object)
    e = frame["employee_count"].astype(float)
    out = pd.Series(seg(e.fillna(1).to_numpy()), index=frame.index, dtype=object)
    return out.where(e.notna(), "mid")


# ---- fitting ---------------------------------------------------------------------------------
def fit_scenario(export, mapping, base: Scenario | str | Path | None = None, mature_days: float = 21.0,
                 opp_window_days: float = 60.0, window: tuple | None = None, as_of=None,
                 prior_n: float = PRIOR_N) -> FittedFunnel:
    """Fit a scenario to a CRM export; see the module docstring for the model and caveats.

    Parameters
    ----------
    export : CSV or Parquet file, one row per lead.
    mapping : mapping file (or ``calibration.mapping.Mapping``) naming its columns.
    base : scenario (object or YAML path) supplying everything an export cannot tell:
        calendar hours, team hours and handling, routing, SLA, scoring, nurture,
        economics, contact odds and channel costs. Default:
        ``data/scenarios/baseline.yaml`` (its nurture settings in particular: an export
        cannot separate nurture re-entries from first passes).
    mature_days : only MQLs at least this old at the export's end count for
        qualification and sales' decision (right-censoring).
    opp_window_days : only SQLs at least this old count for SQL -> opportunity.
    window : ``(start, end)`` of the lead-creation window to fit (default: the first and
        last creation dates in the export); leads created outside it are left out, and
        volumes are per week of this window.
    as_of : the export's date, where right-censoring happens (default: the last date in
        any date column).
    prior_n : strength, in records, of the pull of a rate fitted from fewer than
        ``common.intervals.SMALL_N`` records toward its pooled (or base) value.

    Returns
    -------
    FittedFunnel
    """
    from sim.scenario import load_scenario

    if base is None:
        from common.paths import ROOT

        path = ROOT / "data" / "scenarios" / "baseline.yaml"
        base = load_scenario(path) if path.exists() else Scenario()
    elif not isinstance(base, Scenario):
        base = load_scenario(base)
    mapping = load_mapping(mapping)
    tz, tz_row = time_zone(mapping, base)  # a zone the mapping declares is where the team sits
    df, data = read_history(export, mapping, tz)
    notes: list[str] = list(data.flags)
    # Columns this export lacks (or never fills) are added empty: what needs them is then
    # not fitted, and the fit report says which column was missing.
    absent = {c for c in (*TIMES, "amount") if c not in df or df[c].notna().sum() == 0}
    for c in absent:
        if c not in df:
            df[c] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]") if c in TIMES else np.nan
    end = pd.Timestamp(as_of) if as_of is not None else max(df[c].max() for c in TIMES
                                                           if c in df and df[c].notna().any())
    if window is not None:
        w0, w1 = pd.Timestamp(window[0]), pd.Timestamp(window[1])
        outside = (df["created_at"] < w0) | (df["created_at"] > w1)
        if outside.all():
            raise LabError(f"{export}: created_at: no lead created in the window {w0} .. {w1} "
                           f"(rule: the window holds leads); got {df['created_at'].min()} .. {df['created_at'].max()}")
        if outside.any():
            notes.append(f"window {w0:%Y-%m-%d} .. {w1:%Y-%m-%d}: {int(outside.sum())} lead(s) created outside it left out")
        df = df[~outside].copy()
    if as_of is not None:  # what happened after the export's date is not known yet
        for c in TIMES:
            if c != "created_at" and c in df:
                late = df[c] > end
                if late.any():
                    df.loc[late, c] = pd.NaT
                    if c == "closed_at" and "outcome" in df:
                        df.loc[late, "outcome"] = "open"
    start = df["created_at"].min().floor("D") if window is None else pd.Timestamp(window[0])
    last = df["created_at"].max() if window is None else pd.Timestamp(window[1])
    # Volumes are per week of the lead-creation window, not of the span of every date column.
    days = max(1, math.ceil((max(last, end) - start) / pd.Timedelta(days=1)))
    weeks = max((last - start) / pd.Timedelta(days=1), 1.0) / 7.0
    df["segment"] = segment_of(df)
    # Stage dates recorded only from some date on: each rate reads only the cohort that is complete.
    windows = recording_windows(df, data.mapping, end)
    notes += [f"{w.column} recorded only from {w.start:%Y-%m-%d} ({w.reason})" for w in windows.values()]
    cohort = {c: in_cohort(df, windows, c) for c in ("qualification", "response", "sql", "opportunity",
                                                     "disposition")}

    # Volume and shape of arrivals.
    n = len(df)
    mql = df[df["mql_at"].notna()] if "mql_at" in df else df.iloc[:0]
    vol = []
    for name, k in (("leads_per_week", n), ("mql_per_week", len(mql))):
        rate, lo, hi = poisson_rate_interval(k, weeks)
        vol.append(dict(quantity=name, estimate=rate, ci_low=lo, ci_high=hi, n=k, small_n=small_n(k)))
    volume = pd.DataFrame(vol)
    profile = arrival_profile(df["created_at"], start, last)
    channels, channel_docs = channel_mix(df, base)

    # Response time: first touch after becoming an MQL, wall-clock minutes.
    delay = ((df["first_response_at"] - df["mql_at"]).dt.total_seconds() / 60.0) \
        if "first_response_at" in df and "mql_at" in df \
        else pd.Series(np.nan, index=df.index)
    rt = delay[cohort["response"]].dropna().clip(lower=0).to_numpy()
    response = pd.DataFrame([dict(quantile=q, minutes=m, ci_low=lo, ci_high=hi, n=rt.size, small_n=small_n(rt.size))
                             for q in (0.25, 0.5, 0.75, 0.9, 0.95) for m, lo, hi in [quantile_interval(rt, q)]])

    # Qualification vs first-touch delay, by band, in mature cohorts.
    band = df["band"].astype(object).where(df["band"].isin(BANDS_ROUTED), None) if "band" in df \
        else pd.Series("mql", index=df.index, dtype=object)
    sal = df["sal_at"].notna() if "sal_at" in df else pd.Series(False, index=df.index)
    rej = df["rejection_reason"].notna() if "rejection_reason" in df else pd.Series(False, index=df.index)
    qualified = sal | rej
    mql_at = df["mql_at"] if "mql_at" in df else pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    mature = mql_at.notna() & (mql_at <= end - pd.Timedelta(days=mature_days)) & band.notna() \
        & cohort["qualification"]
    sample = mature & delay.notna()
    decay_fit, decay_tab = None, pd.DataFrame(columns=["parameter", "estimate", "se_link", "ci_low", "ci_high"])
    contact_why = ""
    first, first_why = first_pass_qualified(df, qualified, base, absent)
    try:
        decay_fit, contact_why = fit_qualification(delay[sample].to_numpy(), band[sample].to_numpy(),
                                                   first[sample].to_numpy(), base)
        decay_tab = decay_fit.table()
        if not decay_fit.identified:
            notes.append(f"decay: no power-law bend seen (d0 = {decay_fit.d0:.3g} min, alpha = {decay_fit.alpha:.3g}): "
                         f"over the delays seen the curve is exp(-d alpha / d0), alpha / d0 = "
                         f"{60 * decay_fit.alpha / decay_fit.d0:.3g} per hour (flat when ~0), and the Wald intervals "
                         "of d0 and alpha are not meaningful; read decay_fit.curve(d)")
    except LabError as exc:
        notes.append(f"decay not fitted, base scenario's kept: {exc}")

    # Stage rates.
    conv = []
    for b in BANDS_ROUTED:
        m = mature & (band == b)
        conv.append(_rate_row("mql_to_sal_decision", b, (qualified & m).sum(), m.sum()))
        dec = m & qualified
        conv.append(_rate_row("sal_accept", b, (dec & sal & ~rej).sum(), dec.sum()))
    rejected = df.loc[mature & rej, "rejection_reason"] if "rejection_reason" in df else pd.Series(dtype=object)
    for r in REASONS:
        conv.append(_rate_row("rejection_share", r, (rejected == r).sum(), len(rejected)))
    if "sql_at" in df:
        sql = df[df["sql_at"].notna() & (df["sql_at"] <= end - pd.Timedelta(days=opp_window_days)) & cohort["sql"]]
        has_opp = sql["opportunity_at"].notna() if "opportunity_at" in sql else pd.Series(False, index=sql.index)
        for s in SEGMENTS:
            m = sql["segment"] == s
            conv.append(_rate_row("sql_to_opportunity", s, (has_opp & m).sum(), m.sum()))
    opp = df[df["opportunity_at"].notna() & cohort["opportunity"]]
    for s in SEGMENTS:
        o = opp[opp["segment"] == s]
        for q, r in _outcome_rates(o, end).items():
            conv.append(r | {"quantity": q, "group": s})
    conversion = _shrink(pd.DataFrame(conv), prior_n)
    segments = segment_rates(opp, end, [c for c in ("channel", "industry", "region", "owner_id", *data.mapping.features)
                                        if c in opp])

    # Durations (days).
    dur = [_disposition(df, sal & ~rej, cohort["disposition"], end, absent)]
    if "sql_at" in df:
        o = sql[has_opp]
        x = ((o["opportunity_at"] - o["sql_at"]).dt.total_seconds() / 86400.0).to_numpy()
        m, lo, hi, k = exponential_mean_interval(x)
        dur.append(dict(quantity="sql_to_opportunity_days", group="all", estimate=m, ci_low=lo, ci_high=hi, n=k))
    for s in SEGMENTS:
        o = opp[opp["segment"] == s]
        done = o["closed_at"].notna()
        obs = ((o.loc[done, "closed_at"] - o.loc[done, "opportunity_at"]).dt.total_seconds() / 86400.0).to_numpy()
        cens = ((end - o.loc[~done, "opportunity_at"]).dt.total_seconds() / 86400.0).to_numpy()
        m, lo, hi, k = exponential_mean_interval(obs, cens)
        dur.append(dict(quantity="days_to_close", group=s, estimate=m, ci_low=lo, ci_high=hi, n=k))
    durations = pd.DataFrame(dur, columns=["quantity", "group", "estimate", "ci_low", "ci_high", "n", "reason"])
    durations.insert(durations.columns.get_loc("n") + 1, "small_n", small_n(durations["n"].to_numpy()))
    durations["reason"] = durations["reason"].fillna("")  # how a duration was measured (a fallback)

    # Deal sizes: lognormal per segment, one pooled sigma.
    deal = []
    resid = []
    amt = opp[opp["amount"].notna() & (opp["amount"] > 0)] if "amount" in opp else opp.iloc[:0]
    for s in SEGMENTS:
        la = np.log(amt.loc[amt["segment"] == s, "amount"].to_numpy(float))
        if la.size >= 2:
            # t-interval of the mean log amount, back to dollars: an interval for the median.
            half = t_half_width(la.std(ddof=1), la.size)
            deal.append(dict(quantity="deal_size_median", group=s, estimate=math.exp(la.mean()),
                             ci_low=math.exp(la.mean() - half), ci_high=math.exp(la.mean() + half), n=la.size))
            resid.append(la - la.mean())
    if resid:
        r = np.concatenate(resid)
        dof = r.size - len(resid)
        sig = math.sqrt((r**2).sum() / max(dof, 1))
        lo, hi = sd_interval(sig, dof)
        deal.append(dict(quantity="deal_size_sigma", group="all", estimate=sig, ci_low=lo, ci_high=hi, n=r.size))
    deal_sizes = pd.DataFrame(deal, columns=["quantity", "group", "estimate", "ci_low", "ci_high", "n"])
    deal_sizes["small_n"] = small_n(deal_sizes["n"].to_numpy())

    owners, owner_row = team_size(df, base)
    hours, hour_rows = working_hours(df, base)
    if "band" in df and len(mql) >= 100 and not mql["band"].isin(["nurture", "cold"]).any() and base.nurture.enabled:
        # Every MQL was Hot or MQL on arrival: nothing re-entered from nurture.
        base = base.model_copy(deep=True)
        base.nurture.enabled = False
        notes.append("no MQL came from the nurture or cold bands: nurture re-entry disabled")
    report = fixed_report_rows(volume, channels, decay_fit, decay_tab, df, base, notes, owner_row, conversion,
                               contact_why, first_why)
    report += hour_rows + [tz_row]
    scn = build_fitted_scenario(base, Path(export), start, days, n / weeks, profile, channel_docs, decay_fit,
                                conversion, durations, deal_sizes, owners, notes, report, absent,
                                calendar=hours | {"timezone": tz})
    annotate(report, windows)
    report += report_rows(windows)
    return FittedFunnel(scenario=scn, source=str(export), sha256=data.sha256, rows=n, start=start, end=end,
                        volume=volume, profile=profile, channels=channels, response=response, decay=decay_tab,
                        decay_fit=decay_fit, conversion=conversion, durations=durations,
                        deal_sizes=deal_sizes, notes=notes, report=pd.DataFrame(report), segments=segments,
                        joins=data.joins)


def _disposition(df: pd.DataFrame, accepted: pd.Series, cohort: pd.Series, end, absent) -> dict:
    """The ``disposition_days`` row: mean days from hand-off to sales' decision.

    With ``handoff_at`` and ``decided_at``: the exponential maximum-likelihood mean (the
    simulator draws dispositions exponential) with hand-offs undecided at ``end``
    right-censored, chi-square interval (``exponential_mean_interval``). Without them:
    the mean of ``sal_at - first_response_at`` over accepted leads (t-interval), which
    also holds the attempts before the hand-off; ``reason`` says which was used."""
    if not {"handoff_at", "decided_at"} & set(absent):
        ho = df["handoff_at"].notna() & cohort
        done = ho & df["decided_at"].notna()
        obs = ((df.loc[done, "decided_at"] - df.loc[done, "handoff_at"]).dt.total_seconds() / 86400.0).clip(lower=0)
        cens = ((end - df.loc[ho & ~done, "handoff_at"]).dt.total_seconds() / 86400.0).clip(lower=0)
        m, lo, hi, k = exponential_mean_interval(obs.to_numpy(), cens.to_numpy())
        if k > 0:
            return dict(quantity="disposition_days", group="all", estimate=m, ci_low=lo, ci_high=hi, n=k,
                        reason=f"hand-off to sales' decision (decided_at - handoff_at), exponential; "
                               f"{int((ho & ~done).sum())} hand-off(s) undecided at the export's end right-censored")
    acc = df[accepted & df["first_response_at"].notna() & cohort]
    x = ((acc["sal_at"] - acc["first_response_at"]).dt.total_seconds() / 86400.0).to_numpy()
    m, lo, hi, k = mean_interval(x, lower=0.0)
    lacking = " / ".join(c for c in ("handoff_at", "decided_at") if c in absent) or "decided hand-off"
    return dict(quantity="disposition_days", group="all", estimate=m, ci_low=lo, ci_high=hi, n=k,
                reason=f"no {lacking} in this export: first response to sal_at of accepted leads, which also "
                       "holds the attempts before the hand-off (longer than the disposition)")
