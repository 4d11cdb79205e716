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
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from calibration.decay_fit import (  # noqa: F401 (fit_decay: this module's API)
    DecayFit,
    Z,
    first_pass_qualified,
    fit_decay,
    fit_qualification,
)
from calibration.mapping import load_mapping
from calibration.rates import _outcome_rates, _shrink, segment_rates
from calibration.recording import annotate, in_cohort, recording_windows, report_rows
from calibration.team import row, team_size, time_zone, working_hours
from common.errors import LabError
from common.intervals import (
    LEVEL,
    SMALL_N,
    exponential_mean_interval,
    mean_interval,
    poisson_rate_interval,
    proportion_interval,
    quantile_interval,
    sd_interval,
    small_n,
    t_half_width,
)
from sim.scenario import (
    BANDS_ROUTED,
    REASONS,
    SEGMENTS,
    SENIORITY,
    Scenario,
    build_scenario,
)

MIN_PER_DAY = 1440.0
#: Pseudo-records pulling a rate fitted from few records toward its pooled value.
PRIOR_N = 10.0
#: The export columns each fitted quantity needs (for the fit report's reasons).
NEEDS = {"sal_accept": ("mql_at", "sal_at"), "sql_to_opportunity": ("sql_at", "opportunity_at"),
         "win": ("opportunity_at", "closed_at"), "no_decision": ("opportunity_at", "closed_at"),
         "days_to_close": ("opportunity_at", "closed_at"), "deal_size_median": ("opportunity_at", "amount"),
         "deal_size_sigma": ("opportunity_at", "amount"),
         "disposition_days": ("handoff_at", "decided_at", "first_response_at", "sal_at"),
         "sql_to_opportunity_days": ("sql_at", "opportunity_at")}
TIMES = ("created_at", "first_response_at", "mql_at", "handoff_at", "decided_at", "sal_at", "sql_at",
         "opportunity_at", "closed_at")


# ---- reading ------------------------------------------------------------------------------
def _raw_has_offset(path: Path, column: str) -> bool:
    """Whether the export's own ``column`` carries a time-zone offset (the importer turns
    every date into UTC and would hide that naive dates were local)."""
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            s = pd.read_parquet(path, columns=[column])[column]
        else:
            s = pd.read_csv(path, usecols=[column], nrows=2000)[column]
    except (ValueError, KeyError, OSError):
        return True
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return True
    if pd.api.types.is_datetime64_any_dtype(s):
        return False
    txt = s.dropna().astype(str).head(200)
    return bool(txt.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})\s*$", regex=True).any())


def to_local(frame: pd.DataFrame, tz: str, aware: bool = True, local: set | None = None) -> pd.DataFrame:
    """Date columns as naive local wall-clock timestamps (the simulator's clock).
    ``local``: columns already on local wall-clock time (the others are UTC-naive)."""
    out = frame.copy()
    for col in TIMES:
        if col not in out:
            continue
        s = out[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            out[col] = s.dt.tz_convert(tz).dt.tz_localize(None)
        elif (col not in local) if local is not None else aware:  # UTC-naive from the importer
            out[col] = s.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)
    return out


def read_history(export, mapping, tz: str) -> tuple[pd.DataFrame, object]:
    """Import and validate ``export`` with ``mapping`` (``calibration.importer``); return
    the lab-named frame in local time and the importer's ``LeadData``."""
    from calibration.importer import import_export

    path = Path(export)
    data = import_export(path, mapping)
    df = data.frame
    for col in ("created_at",):
        if col not in df:
            raise LabError(f"{path}: column '{col}' is needed to fit a scenario (rule: map an export "
                           f"column to '{col}' in {data.mapping.source})")
    if data.local_dates is not None:  # a multi-table export: the importer knows each column's clock
        df = to_local(df, tz, local=data.local_dates)
    else:
        src_col = next((k for k, v in data.mapping.renames if v == "created_at"), "created_at")
        df = to_local(df, tz, aware=_raw_has_offset(path, src_col))
    bad = df["created_at"].isna().to_numpy()
    if bad.any() and (bad.all() or data.mapping.tables == {}):
        i = int(np.flatnonzero(bad)[0])
        raise LabError(f"{path}: column 'created_at', row {i + 1}: creation date is missing "
                       "(rule: every lead has a creation date to fit arrivals)")
    if bad.any():  # a multi-table export: records not yet dated (e.g. deals still prospecting)
        data.flags.append(f"{data.source}: created_at: {int(bad.sum())} row(s) without a creation date left out "
                          f"of the fit (e.g. row {int(np.flatnonzero(bad)[0]) + 1})")
        df = df[~bad].copy()
    if "outcome" in df and not df["outcome"].dropna().astype(str).isin(["won", "lost", "no_decision", "open"]).all():
        df["outcome"] = pd.Series(df["_outcome_kind"]).map({"success": "won", "failure": "lost",
                                                             "open": "open"}).to_numpy()
    for col in ("first_response_at", "mql_at", "sal_at", "sql_at", "opportunity_at", "closed_at"):
        if col in df:
            early = (df[col] < df["created_at"] - pd.Timedelta(minutes=1)).to_numpy()
            if early.any():
                i = int(np.flatnonzero(early)[0])
                raise LabError(f"{path}: column '{col}', row {i + 1}: {df[col].iloc[i]} is before the lead "
                               f"was created ({df['created_at'].iloc[i]}) (rule: stages follow creation)")
    return df, data


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


# ---- the fitted funnel ----------------------------------------------------------------------
@dataclass
class FittedFunnel:
    """What ``fit_scenario`` estimated: tidy tables with 95% intervals and the scenario.

    Tables: ``volume`` (leads and MQLs per week), ``profile`` (168 hour-of-week weights),
    ``channels`` (share and attributes per channel), ``response`` (first-response delay
    quantiles), ``decay`` (parameters) and ``decay_fit`` (curve with ``.curve(d)``),
    ``conversion`` (stage rates by band / segment), ``durations`` and ``deal_sizes``.
    Every table with a group size ``n`` has a ``small_n`` flag beside it (``n`` below
    ``common.intervals.SMALL_N``: a rough interval, an estimate that moves a lot)."""

    scenario: Scenario
    source: str
    sha256: str
    rows: int
    start: pd.Timestamp
    end: pd.Timestamp
    volume: pd.DataFrame
    profile: np.ndarray
    channels: pd.DataFrame
    response: pd.DataFrame
    decay: pd.DataFrame
    decay_fit: DecayFit | None
    conversion: pd.DataFrame
    durations: pd.DataFrame
    deal_sizes: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    #: One row per scenario parameter: fitted (estimate, n, 95% interval, shrinkage) or
    #: assumed (the base scenario's value and why). See ``calibration.fit_report``.
    report: pd.DataFrame | None = None
    #: Win rate, won deal size and days to close by category (channel, industry, ...).
    segments: pd.DataFrame | None = None
    #: What joined and what did not, for a multi-table export.
    joins: object = None

    def scenario_dict(self) -> dict:
        import json

        return json.loads(self.scenario.model_dump_json())

    def header(self) -> str:
        from common.files import code_version, now_utc

        lines = [f"Scenario fitted to history by calibration.history.fit_scenario ({now_utc()})",
                 f"source: {self.source}", f"source sha256: {self.sha256}", f"rows: {self.rows}",
                 f"period: {self.start} .. {self.end} (local, {self.scenario.calendar.timezone})",
                 f"code version: {code_version()}"]
        lines += [f"note: {n}" for n in self.notes]
        return "".join(f"# {ln}\n" for ln in lines)

    def write(self, path) -> Path:
        """Write the scenario YAML atomically, with a provenance header; returns the path."""
        from common.files import atomic_write_text

        text = self.header() + yaml.safe_dump(self.scenario_dict(), sort_keys=False)
        return atomic_write_text(path, text)

    def summary(self) -> str:
        """A few lines for the command line."""
        s = self.scenario
        lines = [f"{self.source}: {self.rows} leads, {self.start:%Y-%m-%d} .. {self.end:%Y-%m-%d}",
                 f"leads/week {s.arrivals.leads_per_week:.1f}; channels "
                 + ", ".join(f"{k} {v.share:.2f}" for k, v in s.arrivals.channels.items())]
        r = self.response.set_index("quantile")
        if len(r):
            lines.append("first response (min): " + ", ".join(f"p{int(q * 100)} {r.loc[q, 'minutes']:.0f}" for q in r.index))
        if len(self.decay):
            lines.append("decay P(qualified | band, d) = pq_band (1 + d/d0)^-alpha K_band(d) (p_band: at d = 0):")
            for _, row in self.decay.iterrows():
                lines.append(f"  {row['parameter']:<11} {row['estimate']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}]")
            if self.decay_fit is not None and self.decay_fit.rules is not None:
                for b in self.decay_fit.bands:
                    lines.append(f"  {'pq_' + b:<11} {self.decay_fit.q(b):.4g} [{self.decay_fit.q(b, -Z):.4g}, "
                                 f"{self.decay_fit.q(b, Z):.4g}] (qualify_prob)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---- fitting ---------------------------------------------------------------------------------
def _profile(created: pd.Series, start: pd.Timestamp, end: pd.Timestamp, pseudo: float = 0.5) -> np.ndarray:
    """Hour-of-week weights (Monday 00:00 first): leads per hour of week divided by how
    many times that hour occurs in the period, with ``pseudo`` leads added to every hour
    so that an hour never seen keeps a small positive rate."""
    how = (created.dt.day_of_week * 24 + created.dt.hour).to_numpy()
    counts = np.bincount(how, minlength=168).astype(float)
    hours = pd.date_range(start.floor("h"), end.floor("h"), freq="h")
    exposure = np.bincount(hours.day_of_week * 24 + hours.hour, minlength=168).astype(float)
    rate = (counts + pseudo) / np.maximum(exposure, 1.0)
    return rate / rate.sum()


def _channels(df: pd.DataFrame, base: Scenario) -> tuple[pd.DataFrame, dict]:
    """Share and lead attributes per channel, inverted through ``sim.arrivals.sample_leads``
    (web visits are 1 + Poisson; pricing visits are 1.8x as frequent after a demo request)."""
    from sim.arrivals import TARGET_INDUSTRIES, TARGET_REGIONS

    ch = df["channel"].fillna("unknown").astype(str) if "channel" in df else pd.Series("all", index=df.index)
    n = len(df)
    rows, out = [], {}
    # The shares are one multinomial: besides each share's own 95% interval, give
    # simultaneous 95% intervals for the whole mix (Bonferroni over the k channels).
    joint_level = 1 - (1 - LEVEL) / max(ch.nunique(), 1)
    for name, g in df.groupby(ch, sort=True):
        p, lo, hi = proportion_interval(len(g), n)
        _, jlo, jhi = proportion_interval(len(g), n, level=joint_level)
        c = base.arrivals.channels.get(name)
        c = c.model_dump() if c is not None else type(next(iter(base.arrivals.channels.values())))().model_dump()
        c["share"] = p
        if "employee_count" in g and g["employee_count"].notna().sum() >= 2:
            le = np.log(g["employee_count"].dropna().clip(lower=1).to_numpy(float))
            c["employee_count_median"] = float(np.exp(le.mean()))
            c["employee_count_sigma"] = float(max(le.std(ddof=1), 0.05))
        if "industry_fit" in g and g["industry_fit"].notna().any():
            c["target_industry_share"] = float((g["industry_fit"].dropna() == "target").mean())
        elif "industry" in g and g["industry"].notna().any():
            c["target_industry_share"] = float(g["industry"].dropna().isin(TARGET_INDUSTRIES).mean())
        if "region_fit" in g and g["region_fit"].notna().any():
            c["target_region_share"] = float((g["region_fit"].dropna() == "target").mean())
        elif "region" in g and g["region"].notna().any():
            c["target_region_share"] = float(g["region"].dropna().isin(TARGET_REGIONS).mean())
        if "seniority" in g:
            sen = g["seniority"].dropna()
            sen = sen[sen.isin(SENIORITY)]
            if len(sen):
                vc = sen.value_counts()
                c["seniority"] = {s: float(vc.get(s, 0)) / len(sen) for s in SENIORITY}
                c["seniority"][SENIORITY[-1]] = 1.0 - sum(c["seniority"][s] for s in SENIORITY[:-1])
        demo = float((g["demo_requests"].fillna(0) > 0).mean()) if "demo_requests" in g else c["demo_request_rate"]
        c["demo_request_rate"] = demo
        if "pricing_page_visits" in g:
            c["pricing_page_visits_mean"] = float(g["pricing_page_visits"].fillna(0).mean()) / (1 + 0.8 * demo)
        if "web_visits" in g:
            c["web_visits_mean"] = max(float(g["web_visits"].fillna(1).mean()) - 1.0, 0.0)
        for col in ("content_downloads", "webinars"):
            if col in g:
                c[f"{col}_mean"] = float(g[col].fillna(0).mean())
        out[name] = c
        rows.append(dict(channel=name, n=len(g), small_n=small_n(len(g)), share=p, ci_low=lo, ci_high=hi,
                         joint_ci_low=jlo, joint_ci_high=jhi,
                         **{k: v for k, v in c.items() if k not in ("share", "seniority")}))
    return pd.DataFrame(rows), out


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
    profile = _profile(df["created_at"], start, last)
    channels, channel_docs = _channels(df, base)

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
    report = _fixed_rows(volume, channels, decay_fit, decay_tab, df, base, notes, owner_row, conversion,
                         contact_why, first_why)
    report += hour_rows + [tz_row]
    scn = _build(base, Path(export), start, days, n / weeks, profile, channel_docs, decay_fit, conversion,
                 durations, deal_sizes, owners, notes, report, absent, calendar=hours | {"timezone": tz})
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


def _fixed_rows(volume, channels, decay_fit, decay_tab, df, base, notes, owner_row, conversion,
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


def _build(base: Scenario, export: Path, start, days, leads_per_week, profile, channel_docs, decay_fit,
           conversion, durations, deal_sizes, owners, notes, report: list | None = None,
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
