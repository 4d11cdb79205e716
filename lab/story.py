"""The leadership report in plain sentences and narrow tables, from the numbers of a sweep.

The decision itself (which policy, its paired effects, the limits) is ``lab.decision``;
this module writes it in words: ``headline``, ``threshold_story`` and
``assumptions_and_risks`` as Markdown a director reads in a minute, ``decision_table``,
``kpi_rows`` and ``cutoff_table`` with policies as rows so they fit a page, and the saved
sweeps and models the report reads (``load_sweep``, ``points_overview``, ``provenance``).
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass

import pandas as pd

from common.money import fmt_money
from common.paths import display_path
from sim.kpis import kpi as kpi_def
# The rule and its effects live in lab.decision; this module writes them in words. The
# report notebook calls ``recommend`` through this module, with the rest of its calls.
from lab.decision import OBJECTIVE, Limits, Recommendation, effects, money_sentence, recommend  # noqa: F401


# ------------------------------------------------------------------ formatting


def fmt(kpi: str, value: float, signed: bool = False) -> str:
    """A KPI value the way a reader expects it: $1.2M, 87%, 4.1 h, 614."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    kind = kpi_def(kpi).kind
    sign = "+" if signed and value > 0 else "-" if signed and value < 0 else ""
    v = abs(value) if signed else value
    if kind in ("money", "net_money"):
        return fmt_money(value, signed)
    elif kind == "share":
        text = f"{v * 100:.0f}%" if not signed else f"{v * 100:.1f} pts"
    elif kind == "minutes":
        text = f"{v:.0f} min" if abs(v) < 60 else f"{v / 60:.1f} h" if abs(v) < 1440 else f"{v / 1440:.1f} days"
    elif kind == "ratio":
        text = f"{v:.2f}x"
    elif kind in ("count", "rate"):
        text = f"{v:,.0f}" if abs(v) >= 10 else f"{v:,.1f}"
    elif kind == "days":
        text = f"{v:,.1f} days"
    else:
        text = f"{v:,.3g}"
    return sign + text


def md(text: str) -> str:
    """Text for a Markdown cell: dollar signs escaped, so "$5M to $6M" is never read as
    mathematics (Jupyter's Markdown treats $...$ as LaTeX)."""
    return text.replace("\\$", "$").replace("$", "\\$")


def label(kpi: str, capital: bool = False) -> str:
    """The KPI in plain words ("pipeline created"); ``capital`` for the start of a line."""
    text = kpi_def(kpi).label
    return text[:1].upper() + text[1:] if capital else text


def _bounds(kpi: str, low: float, high: float) -> tuple[float, float]:
    # A t-interval over few replications can cross what a KPI can take (a negative count,
    # a share above 100%): show the interval cut to the possible range.
    from common.intervals import clip_interval

    return clip_interval(low, high, *kpi_def(kpi).bounds)


def _means(summary: pd.DataFrame, policy: str) -> pd.Series:
    return summary[summary["policy"] == policy].set_index("kpi")["mean"]


def headline(rec: Recommendation, summary: pd.DataFrame | None = None) -> str:
    """The decision in a paragraph: what to change, what it is worth a quarter net of its
    cost, what it does to the SLA and the team's workload (Markdown)."""
    n_pol = len(rec.candidates) - 1
    reps = f" Each figure is the mean of {rec.replications} simulated quarters per policy, on the same leads."
    broken = rec.limits.check(_means(summary, rec.baseline)) if summary is not None else []
    if rec.is_baseline and broken:
        text = (f"**Today's process breaks the limits, and none of the {n_pol} policies tested fixes it:** "
                f"{'; '.join(broken)}. Keep today's process only until a policy that meets the limits is found "
                f"(try more SDRs, other shifts or higher cut-offs, or `lab plan` for the least-cost team that meets "
                f"the SLA).")
        others = rec.candidates[rec.candidates["policy"] != rec.baseline].head(1)
        if len(others):
            r = others.iloc[0]
            text += f" The policy with the most net value, **{rec.title(r['policy'])}**: {r['verdict']}."
        return text + reps
    if rec.is_baseline:
        text = (f"**Keep today's process.** None of the {n_pol} policies tested adds net value (gross profit minus "
                f"team and marketing cost) with 95% confidence while keeping SLA attainment and SDR workload "
                f"within limits.")
        others = rec.candidates[rec.candidates["policy"] != rec.baseline].head(1)
        if len(others):
            r = others.iloc[0]
            desc = rec.descriptions.get(r["policy"]) or ""
            text += (f" The closest, **{rec.title(r['policy'])}**" + (f" ({desc})" if desc else "")
                     + f": {r['verdict']}.")
        if summary is not None:
            b = _means(summary, rec.baseline)
            text += (f" Today, Hot leads are answered within their SLA {fmt('sla_attainment_hot', b.get('sla_attainment_hot'))}"
                     f" of the time and SDRs are busy "
                     f"{fmt('sdr_utilisation', b.get('sdr_utilisation'))} of their working time.")
        return text + reps
    desc = rec.descriptions.get(rec.policy) or ""
    net = rec.effect(rec.objective)
    parts = [f"**Recommendation: {rec.title(rec.policy)}**" + (f" ({desc})" if desc else "") + ".",
             f"It adds **{fmt(rec.objective, net['effect'], signed=True)} of {label(rec.objective)}** "
             f"(95% interval {fmt(rec.objective, net['low'], signed=True)} to "
             f"{fmt(rec.objective, net['high'], signed=True)}) against today's process: "
             f"{money_sentence(rec.effects, with_net=False)}."]
    if summary is not None:
        s, b = _means(summary, rec.policy), _means(summary, rec.baseline)
        parts.append(
            f"Hot leads are answered within their SLA {fmt('sla_attainment_hot', s.get('sla_attainment_hot'))} "
            f"of the time (today {fmt('sla_attainment_hot', b.get('sla_attainment_hot'))}) and SDRs are busy "
            f"{fmt('sdr_utilisation', s.get('sdr_utilisation'))} of their working time "
            f"(today {fmt('sdr_utilisation', b.get('sdr_utilisation'))}).")
    return " ".join(parts) + reps


def twin_banner(today) -> str:
    """A warning for the top of the report when the fitted twin was not used (Markdown, or "")."""
    if today is None or not today.twin_failed:
        return ""
    return (f"> **Warning: these results come from the base scenario, not from a model of your own funnel.** "
            f"{today.scenario_reason[:1].upper() + today.scenario_reason[1:]}. Treat the money figures as "
            f"illustrative until a fitted twin passes its back-test.")


#: Today's figures every section quotes, in this order.
TODAY_KPIS = ["mql_per_week", "sla_attainment_hot", "sla_attainment_mql", "response_median_business_minutes",
              "sdr_utilisation", "sql_per_week", "pipeline_per_quarter_usd", "expected_revenue_per_quarter_usd",
              "gross_profit_per_quarter_usd", "team_cost_per_quarter_usd"]


def today_figures(summary: pd.DataFrame, baseline: str = "baseline", kpis=None) -> pd.DataFrame:
    """Today's process in figures (mean and 95% interval per KPI), from one sweep's
    baseline: the one place the report's "today" numbers come from."""
    s = summary[(summary["policy"] == baseline) & summary["kpi"].isin(kpis or TODAY_KPIS)].set_index("kpi")
    rows = []
    for k in kpis or TODAY_KPIS:
        if k not in s.index:
            continue
        r = s.loc[k]
        lo, hi = _bounds(k, r["ci_low"], r["ci_high"])
        rows.append({"": label(k, capital=True), "today": fmt(k, r["mean"]),
                     "95% interval": f"{fmt(k, lo)} to {fmt(k, hi)}", "kpi": k, "mean": float(r["mean"])})
    return pd.DataFrame(rows).set_index("")


def decision_table(rec: Recommendation, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per policy (readable name): net value against today with its interval, the
    Hot SLA, SDR workload and the verdict in money. Narrow enough for a 1,280 px page."""
    rows = []
    for r in rec.candidates.itertuples():
        m = _means(summary, r.policy)
        net = "" if r.policy == rec.baseline else (
            f"{fmt(rec.objective, r.effect, signed=True)} ({fmt(rec.objective, r.low, signed=True)} to "
            f"{fmt(rec.objective, r.high, signed=True)})")
        rows.append({"policy": rec.title(r.policy), "what changes": rec.descriptions.get(r.policy) or "",
                     "net value a quarter vs today (95% interval)": net,
                     "Hot SLA met": fmt("sla_attainment_hot", m.get("sla_attainment_hot")),
                     "SDRs busy": fmt("sdr_utilisation", m.get("sdr_utilisation")),
                     "verdict": r.verdict})
    return pd.DataFrame(rows).set_index("policy")


def kpi_rows(summary: pd.DataFrame, policies, kpis, titles: dict | None = None) -> pd.DataFrame:
    """Policies as rows, a few KPIs as columns (means): a table that stays narrow however
    many policies there are."""
    titles = titles or {}
    s = summary[summary["policy"].isin(policies)]
    means = s.pivot(index="policy", columns="kpi", values="mean")
    out = pd.DataFrame({label(k): [fmt(k, means.loc[p, k]) if k in means else "" for p in policies] for k in kpis},
                       index=[titles.get(p) or p for p in policies])
    out.index.name = "policy"
    return out


def effects_overview(kpis: pd.DataFrame, policies, baseline: str = "baseline", titles: dict | None = None,
                     names=None) -> pd.DataFrame:
    """Each policy's difference from today per KPI, "+$120k (+$80k to +$160k)", paired by
    replication; policies as rows so the table stays narrow."""
    titles = titles or {}
    names = names or ["net_value_per_quarter_usd", "pipeline_per_quarter_usd", "team_cost_per_quarter_usd",
                      "sql_per_week", "sla_attainment_hot"]
    rows = {}
    for p in policies:
        if p == baseline:
            continue
        e = effects(kpis, p, baseline, names).set_index("kpi")
        rows[titles.get(p) or p] = {label(k, capital=True): f"{fmt(k, e.loc[k, 'effect'], signed=True)} "
                                    f"({fmt(k, e.loc[k, 'low'], signed=True)} to {fmt(k, e.loc[k, 'high'], signed=True)})"
                                    for k in names if k in e.index}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "difference from today (95% interval)"
    return out


def titled(summary: pd.DataFrame, titles: dict) -> pd.DataFrame:
    """A sweep summary with policies named by their titles (for charts a director reads)."""
    return summary.assign(policy=summary["policy"].map(lambda p: titles.get(p) or p))


def effect_summary(kpis: pd.DataFrame, policies, baseline: str, kpi: str, titles: dict | None = None) -> pd.DataFrame:
    """Each policy's paired difference from today in ``kpi`` as a summary-shaped table
    (policy, kpi, mean, ci_low, ci_high), for a chart of differences."""
    titles = titles or {}
    rows = []
    for p in policies:
        if p == baseline:
            continue
        e = effects(kpis, p, baseline, [kpi]).iloc[0]
        rows.append({"policy": titles.get(p) or p, "kpi": kpi, "mean": e["effect"], "ci_low": e["low"],
                     "ci_high": e["high"]})
    return pd.DataFrame(rows)


def cutoff_table(sweep, current: float, objective: str = OBJECTIVE) -> pd.DataFrame:
    """The cut-off grid, a row per cut-off (today's marked): volume, quality, strain,
    pipeline, and the change in ``objective`` against today's cut-off with its interval."""
    cutoffs = sweep.cutoffs
    order = sorted(cutoffs, key=cutoffs.get)
    titles = {n: f"MQL from {c:g}" + (" (today)" if c == current else "") for n, c in cutoffs.items()}
    out = kpi_rows(sweep.summary, order, ["mql_per_week", "mql_to_sql_rate", "sla_attainment_hot", "sdr_utilisation",
                                          "pipeline_per_quarter_usd"], titles)
    here = next((n for n in order if cutoffs[n] == current), None)
    if here is not None:
        col = []
        for n in order:
            e = effects(sweep.kpis, n, here, [objective]).iloc[0]
            col.append("" if n == here else f"{fmt(objective, e['effect'], signed=True)} "
                       f"({fmt(objective, e['low'], signed=True)} to {fmt(objective, e['high'], signed=True)})")
        out[f"{label(objective)} vs today (95% interval)"] = col
    return out


#: Money levels per policy. Net value is shown only as a change against today (its level
#: nets the whole marketing budget against one window's leads and reads as a loss).
MONEY_KPIS = ["pipeline_per_quarter_usd", "expected_revenue_per_quarter_usd", "gross_profit_per_quarter_usd",
              "team_cost_per_quarter_usd", "marketing_spend_per_quarter_usd"]
SERVICE_KPIS = ["mql_per_week", "response_median_business_minutes", "response_p90_business_minutes",
                "sla_attainment_hot", "sla_attainment_mql", "sdr_utilisation"]


# ------------------------------------------------------------------ thresholds


def threshold_story(summary: pd.DataFrame, cutoffs: dict[str, float], current: float,
                    limits: Limits | None = None, objective: str = OBJECTIVE, kpis: pd.DataFrame | None = None) -> str:
    """What moving the MQL cut-off does, and the best cut-off the team can absorb (with
    ``kpis``, its gain against today's cut-off with the paired 95% interval)."""
    limits = limits or Limits()
    means = summary.pivot(index="policy", columns="kpi", values="mean")
    names = sorted((n for n in cutoffs if n in means.index), key=cutoffs.get)
    if not names:
        return "No threshold runs to describe."
    ok = [n for n in names if not limits.check(means.loc[n])]
    best = max(ok, key=lambda n: means.loc[n, objective]) if ok else None
    lo, hi = names[0], names[-1]
    m = means
    text = (f"Across MQL cut-offs from {cutoffs[lo]:g} to {cutoffs[hi]:g}, MQL volume runs from "
            f"{fmt('mql_per_week', m.loc[lo, 'mql_per_week'])} to {fmt('mql_per_week', m.loc[hi, 'mql_per_week'])} "
            f"a week, the MQL -> SQL rate from {fmt('mql_to_sql_rate', m.loc[lo, 'mql_to_sql_rate'])} to "
            f"{fmt('mql_to_sql_rate', m.loc[hi, 'mql_to_sql_rate'])}, and SDR utilisation from "
            f"{fmt('sdr_utilisation', m.loc[lo, 'sdr_utilisation'])} to {fmt('sdr_utilisation', m.loc[hi, 'sdr_utilisation'])}.")
    if best is None:
        text += " No cut-off in the grid keeps SLA attainment and SDR workload within limits."
    else:
        here = next((n for n in names if cutoffs[n] == current), None)
        text += f" The cut-off with the most {label(objective)} that the team can absorb is **{cutoffs[best]:g}**"
        if here == best:
            text += ", today's setting."
        elif here is not None and kpis is not None:  # the change against today's cut-off, paired
            e = effects(kpis, best, here, [objective]).iloc[0]
            text += (f": {fmt(objective, e['effect'], signed=True)} against today's {current:g} (95% interval "
                     f"{fmt(objective, e['low'], signed=True)} to {fmt(objective, e['high'], signed=True)}).")
        elif here is not None:
            text += f" ({fmt(objective, m.loc[best, objective])}, against {fmt(objective, m.loc[here, objective])} " \
                    f"at today's {current:g})."
        else:
            text += f" ({fmt(objective, m.loc[best, objective])})."
        broke = [n for n in names if n not in ok]
        if broke:
            text += (" Cut-offs of " + ", ".join(f"{cutoffs[n]:g}" for n in broke)
                     + " break a limit: " + limits.check(means.loc[broke[0]])[0] + f" at {cutoffs[broke[0]]:g}.")
    return text


# ------------------------------------------------------------------ caveats


def assumptions_and_risks(rec: Recommendation, kpis: pd.DataFrame, scenario=None, today=None) -> str:
    """Assumptions behind the numbers and the risks of acting on them, as Markdown bullets."""
    n = int(kpis.groupby("policy").size().min())
    lines = ["**Assumptions**", ""]
    if today is not None:
        lines.append(f"- The funnel: {today.scenario_source} ({today.scenario_reason}).")
    if scenario is not None:
        cal, e = scenario.calendar, scenario.economics
        lines.append(f"- Demand: about {scenario.arrivals.leads_per_week:,.0f} inbound leads a week, "
                     f"{scenario.team.sdrs} SDRs working {cal.open_hour:g}:00-{cal.close_hour:g}:00 "
                     f"({cal.timezone}), over {cal.horizon_days} days of which the first {cal.warmup_days} "
                     f"are a warm-up left out of the figures.")
        lines.append(f"- Costs (the scenario's `economics`; replace the defaults with your own): an SDR costs "
                     f"{fmt_money(e.sdr_cost_per_year_usd)} a year fully loaded ({e.paid_hours_per_year:,.0f} paid hours), "
                     f"an AE {fmt_money(e.ae_cost_per_year_usd)}; hours outside 9:00-18:00 on weekdays earn a "
                     f"{e.off_hours_premium:.0%} premium; gross margin {e.gross_margin:.0%}.")
        lines.append("- Speed-to-lead: the chance of reaching and qualifying a lead falls with the response "
                     "delay along the scenario's decay curve (fitted to the export when the twin is used; otherwise "
                     "set to reproduce the published studies, HBR 2011 and Lead Response Management 2007).")
    lines += [f"- Every figure is the mean of {n} simulated quarters per policy; intervals are 95% intervals over "
              f"those replications, and policies are compared on the same simulated leads.",
              "- Net value counts the gross profit of the expected revenue the period's leads create; deals close "
              "months later, so the cash arrives later than the cost.",
              "", "**Risks**", ""]
    rows = rec.effects
    unclear = rows[(rows["low"] <= 0) & (rows["high"] >= 0)]
    if len(unclear) and not rec.is_baseline:
        lines.append("- The effect on " + ", ".join(label(k) for k in unclear["kpi"])
                     + " is not clear of zero: expect anything from a small loss to a gain there.")
    means = kpis.drop(columns=["seed"], errors="ignore").groupby("policy").mean(numeric_only=True)
    u = means.loc[rec.policy, "sdr_utilisation"] if "sdr_utilisation" in means else float("nan")
    if u == u and u > rec.limits.max_utilisation - 0.1:
        lines.append(f"- SDRs would be busy {u:.0%} of their time, close to the {rec.limits.max_utilisation:.0%} "
                     f"limit: a surge in leads would lengthen queues quickly.")
    lines.append("- SLA attainment is measured against each policy's own SLA: a policy that relaxes the SLA "
                 "meets it more often without answering anyone faster; compare response times too.")
    lines.append("- The simulation models the team and the funnel, not people: adoption, training and "
                 "morale effects of a change are outside it. Pilot with one team before rolling out.")
    return "\n".join(lines)


def effect_table(rec: Recommendation) -> pd.DataFrame:
    """The chosen policy's effect per KPI in words: today, with the change, the difference
    and its 95% interval from the paired replications."""
    rows = []
    for e in rec.effects.itertuples():
        level = kpi_def(e.kpi).kind != "net_money"  # a net value is shown as a change only
        rows.append({"": label(e.kpi, capital=True),
                     "today": fmt(e.kpi, e.baseline) if level else "",
                     f"with {rec.title(rec.compared)}": fmt(e.kpi, e.policy) if level else "",
                     "difference (95% interval)": f"{fmt(e.kpi, e.effect, signed=True)} ({fmt(e.kpi, e.low, signed=True)}"
                                                  f" to {fmt(e.kpi, e.high, signed=True)})"})
    return pd.DataFrame(rows).set_index("")


GLOSSARY = {
    "pipeline created": "the amounts of the opportunities opened from the period's leads",
    "revenue won": "the amounts of the deals those leads closed won inside the period (most deals close later)",
    "expected revenue": "pipeline created weighted by the win odds of each deal's segment: the revenue the "
                        "period's leads are expected to bring, whenever their deals close",
    "gross profit": "expected revenue times the gross margin",
    "team cost": "loaded cost of the SDRs (with the off-hours premium), the overflow pool and the AEs",
    "net value": "gross profit minus team cost and marketing spend; policies are compared on its change",
    "per quarter": "a simulated period scaled to 13 weeks",
    "SLA attainment": "the share of leads first touched within the SLA, counted in business minutes on the SLA's "
                      "clock; leads still waiting past their deadline count as missed",
    "business minutes": "minutes inside working hours (nights, weekends and holidays do not count)",
    "95% interval": "the range the true figure lies in with 95% confidence, given the simulated quarters; a "
                    "difference from today whose interval excludes zero is a real effect",
    "replication": "one simulated quarter; every policy sees the same leads in the same replication",
}


def glossary() -> str:
    """The report's defined terms as a Markdown list."""
    return "\n".join(f"- **{k}**: {v}." for k, v in GLOSSARY.items())


# ------------------------------------------------------------------ saved outputs


@dataclass
class SavedSweep:
    """A sweep read back from the folder ``sim.output.write_result`` wrote."""

    path: Path
    kpis: pd.DataFrame
    summary: pd.DataFrame
    meta: dict
    leads: pd.DataFrame | None = None

    @property
    def policies(self) -> list[str]:
        return list(self.meta.get("policies") or dict.fromkeys(self.summary["policy"]))

    @property
    def cutoffs(self) -> dict[str, float]:
        """Policy -> the MQL cut-off its scenario used."""
        return {n: float(s["scoring"]["mql"]) for n, s in self.meta.get("scenarios", {}).items()
                if s.get("scoring", {}).get("mql") is not None}

    def scenarios(self) -> dict:
        """Policy -> the Scenario it was simulated with (rebuilt from ``run.json``)."""
        from sim.scenario import build_scenario

        return {n: build_scenario(doc, source=f"{self.path}/run.json ({n})")
                for n, doc in self.meta.get("scenarios", {}).items()}

def load_sweep(path) -> SavedSweep:
    """Read ``kpis``, ``summary``, ``run.json`` and, if saved, ``leads`` of a sweep folder."""
    import json

    path = Path(path)
    if not (path / "run.json").exists():
        raise FileNotFoundError(f"{path}: no saved sweep here (run.json missing); run the policy notebook first")
    leads = path / "leads.parquet"
    return SavedSweep(path=path, kpis=pd.read_parquet(path / "kpis.parquet"),
                      summary=pd.read_parquet(path / "summary.parquet"),
                      meta=json.loads((path / "run.json").read_text()),
                      leads=pd.read_parquet(leads) if leads.exists() else None)


def find_points_table(model: str | Path) -> Path:
    """The points table of a saved model: the file itself, or the table inside a model folder."""
    from sim.scoring import PointsTable

    model = Path(model)
    if model.is_file():
        return model
    names = ["points.yaml", "points_table.yaml", "points.csv", "points_table.csv"]
    found = [model / n for n in names if (model / n).exists()]
    found += sorted(p for p in model.glob("*.y*ml") if p not in found)
    for p in found:
        try:
            PointsTable.load(p)
            return p
        except Exception:  # not a points table (a manifest, diagnostics...): keep looking
            continue
    raise FileNotFoundError(f"{model}: no points table found (looked for {', '.join(names)})")


def points_overview(model: str | Path) -> pd.DataFrame:
    """The points table in use, criterion by criterion, as a CRM admin would type it."""
    from sim.scoring import PointsTable

    path = find_points_table(model)
    table = PointsTable.load(path)
    rows = table.rows[["criterion", "value", "points"]].copy()
    rows["criterion"] = rows["criterion"].str.replace("_", " ")
    rows["points"] = [f"{p:g}" for p in rows["points"]]
    rows = rows.sort_values(["criterion"], kind="stable")
    th = table.thresholds
    rows.attrs["thresholds"] = th
    return rows.set_index(["criterion", "value"])


def provenance(*sweeps: SavedSweep, model: str | Path | None = None, export=None, mapping=None,
               today=None) -> pd.DataFrame:
    """Where each input came from: the export and mapping, the scenario and scoring table
    of today's process, and each saved run's folder, seed, replications and code version
    (paths relative to the project when inside it)."""
    rows = []
    for name, path in (("CRM export", export), ("mapping", mapping)):
        if path:
            rows.append({"input": name, "file or folder": display_path(path)})
    if today is not None:
        rows.append({"input": "scenario", "file or folder": display_path(today.scenario_path),
                     "notes": f"{today.scenario_source}: {today.scenario_reason}"})
    if model is not None:
        try:
            rows.append({"input": "scoring table", "file or folder": display_path(find_points_table(model))})
        except FileNotFoundError as exc:
            rows.append({"input": "scoring table", "file or folder": str(exc)})
    for s in sweeps:
        reps = s.meta.get("replications") or {}
        rows.append({"input": s.path.name, "file or folder": display_path(s.path), "seed": s.meta.get("seed"),
                     "replications per policy": ", ".join(sorted({str(v) for v in reps.values()})),
                     "notes": ", ".join(s.policies), "code version": s.meta.get("code_version"),
                     "created": s.meta.get("created_at")})
    return pd.DataFrame(rows, dtype=object).set_index("input").fillna("")


def trust_section(today):
    """What the back-test of the fitted twin said, for the report: a sentence shown now,
    and the per-KPI table returned (None when there is no twin or no saved back-test)."""
    from IPython.display import Markdown, display

    if today is None or today.fitted_path is None:
        display(Markdown("No model of the funnel was fitted to an export: conversion rates, response behaviour and "
                         "deal sizes are the base scenario's assumptions."))
        return None
    csv = Path(today.fitted_path).with_suffix("") / "backtest.csv"
    verdict = today.backtest or "no back-test recorded"
    use = "was used for every figure above" if today.uses_twin else "was **not** used: the figures above come from the base scenario"
    display(Markdown(f"The twin fitted to the export (`{display_path(today.fitted_path)}`) was back-tested out of sample: "
                     f"fitted on the earlier leads, it simulated the later ones. Verdict: **{verdict}**. It {use}."))
    if not csv.exists():
        return None
    bt = pd.read_csv(csv)
    rows = []
    for r in bt.itertuples():
        k = r.kpi
        known = True
        try:
            kpi_def(k)
        except Exception:  # a KPI outside the vocabulary: show the raw numbers
            known = False
        f = (lambda v: fmt(k, v)) if known else (lambda v: f"{v:,.3g}")
        rows.append({"KPI": label(k, capital=True) if known else k, "actual": f(r.actual),
                     "twin (95% prediction interval)": f"{f(r.simulated)} ({f(r.pi_low)} to {f(r.pi_high)})"
                     if r.verdict != "not testable" else "", "verdict": r.verdict})
    return pd.DataFrame(rows).set_index("KPI")
