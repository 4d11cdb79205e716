"""Charts of simulator results, for the notebooks and the leadership report.

Every function takes the tidy frames a sweep leaves behind (``SweepResult.summary``:
policy, kpi, mean, sd, n, ci_low, ci_high; ``SweepResult.leads`` or the saved CRM
export) and returns a matplotlib ``Figure``; none calls ``plt.show``. Error bars are the
95% intervals over replications that ``sim.kpis.summarise`` computes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from common.money import axis_money

BASE_COLOR = "#7f7f7f"
PICK_COLOR = "#d62728"
OTHER_COLOR = "#1f77b4"
BAND_COLORS = {"hot": "#d62728", "mql": "#1f77b4"}


def _figure(width: float = 8.0, height: float = 4.0, ncols: int = 1, nrows: int = 1):
    # Figure() rather than plt.figure(): nothing is registered with pyplot, so a notebook
    # shows exactly the figures it displays, once.
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _policies(summary: pd.DataFrame, policies=None) -> list[str]:
    if policies is not None:
        return list(policies)
    return list(dict.fromkeys(summary["policy"]))


def _kpi(summary: pd.DataFrame, kpi: str, policies: list[str]) -> pd.DataFrame:
    s = summary[summary["kpi"] == kpi].set_index("policy")
    return s.reindex(policies)


def minutes_label(m: float) -> str:
    """15 min, 4 h, 2 d: a delay in words a reader scans quickly."""
    if m < 60:
        return f"{m:g} min"
    if m < 1440:
        return f"{m / 60:g} h"
    return f"{m / 1440:g} d"


def _colors(policies, baseline: str | None, highlight: str | None) -> list[str]:
    return [PICK_COLOR if p == highlight else BASE_COLOR if p == baseline else OTHER_COLOR for p in policies]


# ------------------------------------------------------------------ response times


def response_minutes(leads: pd.DataFrame) -> pd.DataFrame:
    """Minutes from MQL to first touch per contacted lead, with its band and policy.

    Accepts the simulator's lead table (``t_mql``, ``t_first_response`` in minutes) or
    the CRM export written by ``sim.output.write_result`` (``mql_at``,
    ``first_response_at`` timestamps). Leads never touched are left out.
    """
    if "t_mql" in leads:
        minutes = leads["t_first_response"] - leads["t_mql"]
    else:
        minutes = (pd.to_datetime(leads["first_response_at"], utc=True)
                   - pd.to_datetime(leads["mql_at"], utc=True)).dt.total_seconds() / 60.0
    out = pd.DataFrame({"minutes": minutes.to_numpy(dtype=float),
                        "band": leads["band"].to_numpy(),
                        "policy": leads["policy"].to_numpy() if "policy" in leads else "run"})
    return out[np.isfinite(out["minutes"]) & (out["minutes"] >= 0)].reset_index(drop=True)


def response_time_distribution(leads: pd.DataFrame, policies=None, baseline: str | None = "baseline",
                               highlight: str | None = None, marks=(15, 240, 1440)) -> Figure:
    """Share of leads answered within each delay (an ECDF on a log axis), one line per policy.

    The higher a line, the faster leads are answered. Vertical marks show the SLA
    delays of ``marks`` (minutes).
    """
    rt = response_minutes(leads)
    policies = policies or list(dict.fromkeys(rt["policy"]))
    fig, ax = _figure(8.5, 4.2)
    ax = ax[0, 0]
    for p in policies:
        x = np.sort(rt.loc[rt["policy"] == p, "minutes"].to_numpy())
        if not x.size:
            continue
        y = np.arange(1, x.size + 1) / x.size
        emph = p in (baseline, highlight)
        color = PICK_COLOR if p == highlight else "black" if p == baseline else None
        ax.step(np.maximum(x, 0.5), y, where="post", label=p, color=color,
                lw=2.4 if emph else 1.0, alpha=1.0 if emph else 0.55)
    for m in marks:
        ax.axvline(m, color="grey", ls=":", lw=1)
        ax.text(m, 0.02, " " + minutes_label(m), color="grey", fontsize=8, rotation=90, va="bottom")
    ax.set_xscale("log")
    ticks = [t for t in (1, 5, 15, 60, 240, 1440, 4320, 10080, 43200) if t <= max(rt["minutes"].max(), 2)]
    ax.set_xticks(ticks, [minutes_label(t) for t in ticks])
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _p: ""))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("time from MQL to first touch (log scale)")
    ax.set_ylabel("leads answered within that time")
    ax.set_title("How fast leads are answered, per policy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2, loc="upper left", frameon=False)
    return fig


def response_by_band(leads: pd.DataFrame, scenarios: dict, policies=None, baseline: str | None = "baseline",
                     highlight: str | None = None, titles: dict | None = None) -> Figure:
    """Share of Hot and of MQL leads answered within each delay, in **business minutes**
    (the clock SLAs are judged on), one panel per band, with each band's SLA marked.

    ``scenarios``: policy -> Scenario (its calendar counts the business minutes; the SLA
    marks are today's, plus the highlighted policy's when it differs). Leads never
    touched are left out.
    """
    from sim.calendar import BusinessClock
    from sim.kpis import run_minutes

    titles = titles or {}
    policies = [p for p in (policies or list(dict.fromkeys(leads["policy"]))) if p in scenarios]
    fig, axes = _figure(11.0, 4.0, ncols=2)
    for ax, band, name in ((axes[0, 0], "hot", "Hot leads"), (axes[0, 1], "mql", "MQLs")):
        top = 2.0
        for p in policies:
            scn = scenarios[p]
            sub = leads[(leads["policy"] == p) & (leads["band"] == band)]
            if "t_mql" in sub:  # the simulator's own lead table: run minutes already
                t0, t1 = sub["t_mql"].to_numpy(float), sub["t_first_response"].to_numpy(float)
            else:  # the CRM export a saved run holds
                t0, t1 = run_minutes(sub["mql_at"], scn), run_minutes(sub["first_response_at"], scn)
            ok = np.isfinite(t0) & np.isfinite(t1) & (t1 >= t0)
            x = np.sort(BusinessClock(scn.calendar).business_delay(t0[ok], t1[ok]))
            if not x.size:
                continue
            top = max(top, float(x[-1]))
            y = np.arange(1, x.size + 1) / x.size
            emph = p in (baseline, highlight)
            color = PICK_COLOR if p == highlight else "black" if p == baseline else None
            ax.step(np.maximum(x, 0.5), y, where="post", label=titles.get(p) or p, color=color,
                    lw=2.4 if emph else 1.0, alpha=1.0 if emph else 0.5)
        marks = {}
        for p, who in ((baseline, "today's"), (highlight, "new")):
            if p in scenarios:
                m = float(getattr(scenarios[p].sla, f"{band}_minutes"))
                marks.setdefault(m, who)
        for m, who in marks.items():
            ax.axvline(m, color="black" if who == "today's" else PICK_COLOR, ls="--", lw=1.2)
            ax.text(m, 0.03, f" {who} SLA {minutes_label(m)}", fontsize=8, rotation=90, va="bottom")
        ax.set_xscale("log")
        ticks = [t for t in (1, 5, 15, 60, 240, 540, 2700, 10800) if t <= max(top, 2)]
        ax.set_xticks(ticks, [minutes_label(t) for t in ticks])
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _p: ""))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("business time from MQL to first touch (log scale)")
        ax.set_title(f"{name}: share answered within that business time")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("leads answered")
    axes[0, 1].legend(fontsize=7, loc="center right", frameon=False)
    return fig


# ------------------------------------------------------------------ KPIs per policy


def sla_attainment(summary: pd.DataFrame, policies=None, target: float | None = None) -> Figure:
    """SLA attainment for Hot and MQL leads per policy, with 95% intervals.

    Each policy is measured against its own SLA (a policy that relaxes the SLA meets it
    more often by construction).
    """
    policies = _policies(summary, policies)
    fig, ax = _figure(max(6.0, 0.75 * len(policies) + 2), 3.8)
    ax = ax[0, 0]
    x = np.arange(len(policies))
    width = 0.38
    for k, band in enumerate(("hot", "mql")):
        s = _kpi(summary, f"sla_attainment_{band}", policies)
        err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]]).clip(min=0)
        ax.bar(x + (k - 0.5) * width, s["mean"], width, yerr=err, capsize=3,
               color=BAND_COLORS[band], alpha=0.85, label=f"{band.upper() if band == 'mql' else 'Hot'} leads")
    if target is not None:
        ax.axhline(target, color="black", ls="--", lw=1)
        ax.text(len(policies) - 0.5, target, f" limit {target:.0%}", va="bottom", ha="right", fontsize=8)
    ax.set_xticks(x, policies, rotation=30, ha="right")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("answered within the SLA")
    ax.set_title("SLA attainment per policy (95% intervals)")
    ax.legend(fontsize=8, loc="lower left", frameon=True)
    ax.grid(axis="y", alpha=0.3)
    return fig


FUNNEL = (("mql_count", "MQLs"), ("sql_count", "SQLs"), ("opportunity_count", "opportunities"),
          ("won_count", "wins"))


def funnel(summary: pd.DataFrame, policies=None, baseline: str | None = "baseline",
           highlight: str | None = None) -> Figure:
    """Leads reaching each stage (MQL, SQL, opportunity, won) per policy, 95% intervals.

    One panel per stage, because the counts differ by orders of magnitude.
    """
    policies = _policies(summary, policies)
    fig, axes = _figure(11, max(2.8, 0.32 * len(policies) + 1.2), ncols=len(FUNNEL))
    y = np.arange(len(policies))
    colors = _colors(policies, baseline, highlight)
    for ax, (kpi, label) in zip(axes[0], FUNNEL):
        s = _kpi(summary, kpi, policies)
        err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]]).clip(min=0)
        ax.barh(y, s["mean"], xerr=err, color=colors, capsize=2, alpha=0.85)
        ax.set_title(label)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(y, policies if ax is axes[0][0] else [""] * len(policies))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    fig.suptitle("The funnel per policy: leads reaching each stage (95% intervals)")
    return fig


def kpi_errorbars(summary: pd.DataFrame, kpi: str, policies=None, baseline: str | None = "baseline",
                  highlight: str | None = None, title: str | None = None, xlabel: str | None = None,
                  as_money: bool | None = None, as_share: bool = False) -> Figure:
    """One KPI per policy: the mean and its 95% interval, the baseline as a dashed line."""
    policies = _policies(summary, policies)
    s = _kpi(summary, kpi, policies)
    fig, ax = _figure(8, max(2.5, 0.36 * len(policies) + 1.0))
    ax = ax[0, 0]
    y = np.arange(len(policies))
    colors = _colors(policies, baseline, highlight)
    for yi, (p, row), c in zip(y, s.iterrows(), colors):
        ax.errorbar(row["mean"], yi, xerr=[[max(row["mean"] - row["ci_low"], 0)], [max(row["ci_high"] - row["mean"], 0)]],
                    fmt="o", color=c, capsize=4, ms=7 if p in (baseline, highlight) else 5)
    if baseline in s.index:
        ax.axvline(s.loc[baseline, "mean"], color=BASE_COLOR, ls="--", lw=1)
    ax.set_yticks(y, policies)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    if as_money or (as_money is None and kpi.endswith("_usd")):
        ax.xaxis.set_major_formatter(FuncFormatter(axis_money))
    elif as_share:
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(xlabel or kpi)
    ax.set_title(title or f"{kpi} per policy (mean and 95% interval)")
    return fig


def utilisation(summary: pd.DataFrame, policies=None, limit: float | None = None,
                baseline: str | None = "baseline", highlight: str | None = None) -> Figure:
    """SDR utilisation per policy (share of on-duty time spent on leads), 95% intervals."""
    fig = kpi_errorbars(summary, "sdr_utilisation", policies, baseline, highlight,
                        title="How busy the SDRs are, per policy (95% intervals)",
                        xlabel="SDR utilisation (share of working time on leads)", as_share=True)
    if limit is not None:
        ax = fig.axes[0]
        ax.axvline(limit, color="black", ls="--", lw=1)
        ax.text(limit, -0.6, f" limit {limit:.0%}", fontsize=8, va="bottom")
    return fig


# ------------------------------------------------------------------ thresholds


def threshold_curve(summary: pd.DataFrame, cutoffs: dict[str, float], current: float | None = None,
                    xlabel: str = "MQL cut-off (score)") -> Figure:
    """Volume, quality, SLA strain and pipeline as the MQL cut-off moves.

    Parameters
    ----------
    summary : a sweep summary whose policies are the cut-offs.
    cutoffs : policy name -> MQL cut-off it stands for.
    current : today's cut-off, marked on every panel.
    """
    names = sorted(cutoffs, key=cutoffs.get)
    x = np.array([cutoffs[n] for n in names], float)
    panels = [
        ("mql_per_week", "MQLs per week (volume)", None),
        ("mql_to_sql_rate", "MQL -> SQL rate (quality)", "share"),
        ("sdr_utilisation", "SDR utilisation (capacity)", "share"),
        ("sla_attainment", "SLA attainment (strain)", "share"),
        ("pipeline_usd", "pipeline created", "money"),
        ("expected_revenue_usd", "expected revenue", "money"),
    ]
    fig, axes = _figure(11, 6.2, ncols=3, nrows=2)
    for ax, (kpi, title, fmt) in zip(axes.ravel(), panels):
        s = _kpi(summary, kpi, names)
        ax.fill_between(x, s["ci_low"], s["ci_high"], alpha=0.25, color=OTHER_COLOR, lw=0)
        ax.plot(x, s["mean"], marker="o", color=OTHER_COLOR)
        if current is not None:
            ax.axvline(current, color=BASE_COLOR, ls="--", lw=1)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_xlabel(xlabel, fontsize=8)
        if fmt == "share":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        elif fmt == "money":
            ax.yaxis.set_major_formatter(FuncFormatter(axis_money))
    fig.suptitle("What the cut-off buys: volume against quality under a fixed team"
                 + ("" if current is None else f" (dashed: today's cut-off {current:g})"))
    return fig


# ------------------------------------------------------------------ history and fit


def backtest(comparison: pd.DataFrame, label_col: str = "kpi", observed: str = "actual",
             simulated: str = "simulated", low: str = "sim_ci_low", high: str = "sim_ci_high") -> Figure:
    """Observed history against the fitted simulation: simulated mean and 95% interval
    per KPI as a ratio to the observed value (1 = a perfect match)."""
    c = comparison.reset_index(drop=True)
    c = c[np.isfinite(c[observed].astype(float)) & (c[observed] != 0)].reset_index(drop=True)
    ratio = c[simulated] / c[observed]
    lo = c[low] / c[observed] if low in c else ratio
    hi = c[high] / c[observed] if high in c else ratio
    fig, ax = _figure(8, max(2.5, 0.35 * len(c) + 1.0))
    ax = ax[0, 0]
    y = np.arange(len(c))
    ax.errorbar(ratio, y, xerr=[np.maximum(ratio - lo, 0), np.maximum(hi - ratio, 0)], fmt="o", capsize=3)
    ax.axvline(1.0, color="black", lw=1)
    ax.axvspan(0.9, 1.1, color="green", alpha=0.08)
    ax.set_yticks(y, c[label_col])
    ax.invert_yaxis()
    ax.set_xlabel("simulated / observed (shaded: within 10%)")
    ax.set_title("Back-test: the fitted funnel against history")
    ax.grid(axis="x", alpha=0.3)
    return fig


def weekly_history(leads: pd.DataFrame, date_col: str = "created_at") -> Figure:
    """Leads and MQLs per week of a CRM export (simulated or real)."""
    created = pd.to_datetime(leads[date_col], utc=True)
    weeks = created.dt.tz_localize(None).dt.to_period("W").dt.start_time
    per_week = pd.DataFrame({"week": weeks, "mql": leads["mql_at"].notna() if "mql_at" in leads else False})
    g = per_week.groupby("week").agg(leads=("mql", "size"), mqls=("mql", "sum"))
    fig, ax = _figure(8, 3.2)
    ax = ax[0, 0]
    ax.plot(g.index, g["leads"], marker="o", label="leads")
    ax.plot(g.index, g["mqls"], marker="o", label="MQLs")
    ax.set_title("The history: leads and MQLs per week")
    ax.set_ylabel("per week")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.autofmt_xdate()
    return fig


# ------------------------------------------------------------------ staffing plan


def staffing_frontier(candidates: pd.DataFrame, targets, chosen: str | None = None) -> Figure:
    """Weekly team cost against simulated SLA attainment, one panel per band: every
    scenario ``sim.staffing.plan_staffing`` simulated (plans, the base, hand-written
    policies), 95% intervals as error bars, the target as a dashed line, the
    cost-efficient frontier of the plans as a line and the chosen plan in red.

    ``candidates``: ``PlanResult.candidates``; ``targets``: its ``Target`` list."""
    from sim.staffing import frontier

    fig, axes = _figure(5.0 * len(targets), 4.0, ncols=len(targets))
    kinds = {"plan": (OTHER_COLOR, "o", "plans simulated"), "policy": ("#2ca02c", "s", "hand-written policies"),
             "base": (BASE_COLOR, "D", "today")}
    for ax, t in zip(axes[0], targets):
        b = t.band
        for kind, (color, marker, label) in kinds.items():
            c = candidates[candidates["kind"] == kind]
            if c.empty:
                continue
            err = np.vstack([c[f"{b}_attainment"] - c[f"{b}_low"], c[f"{b}_high"] - c[f"{b}_attainment"]])
            ax.errorbar(c["cost_per_week_usd"], c[f"{b}_attainment"], yerr=np.nan_to_num(np.clip(err, 0, None)),
                        fmt=marker, color=color, alpha=0.8, capsize=2, label=label)
        f = frontier(candidates[candidates["kind"] == "plan"], b)
        ax.plot(f["cost_per_week_usd"], f[f"{b}_attainment"], "-", color=OTHER_COLOR, alpha=0.5)
        if chosen is not None and (candidates["name"] == chosen).any():
            r = candidates[candidates["name"] == chosen].iloc[0]
            ax.plot(r["cost_per_week_usd"], r[f"{b}_attainment"], "o", ms=10, color=PICK_COLOR, label="chosen plan")
        ax.axhline(t.share, ls="--", color="k", lw=1, label=f"target {t.share:.0%}")
        ax.set_title(f"{b.upper()} answered within {minutes_label(t.minutes)}")
        ax.set_xlabel("team cost per week")
        ax.set_ylabel("simulated attainment")
        ax.xaxis.set_major_formatter(FuncFormatter(axis_money))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes[0][0].legend(fontsize=8, loc="lower right")
    return fig
