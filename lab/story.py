"""The leadership report in plain sentences, written from the numbers of a sweep.

``recommend`` picks the policy with the best expected pipeline (or another objective)
among those whose SLA attainment and SDR utilisation stay within limits, and measures
its effect against the baseline on common random numbers: replication ``r`` of every
policy sees the same leads (``sim.experiment``), so the effect is the mean of the paired
differences and its 95% interval is ``mean +- t(n-1) sd / sqrt(n)`` of those differences,
narrower than the two policies' separate intervals suggest.

``headline``, ``threshold_story`` and ``assumptions_and_risks`` turn the numbers into
Markdown a director reads in a minute; ``policy_table`` lays the policies side by side.
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.paths import display_path
from sim.kpis import kpi as kpi_def

# KPI names, units, plain labels and kinds (which pick the number format) live in
# sim.kpis, the lab's one KPI vocabulary.
EFFECT_KPIS = ["sql_count", "pipeline_usd", "won_count", "expected_revenue_usd"]
TABLE_KPIS = ["mql_per_week", "response_median_minutes", "response_p90_minutes", "sla_attainment_hot",
              "sla_attainment_mql", "sql_count", "opportunity_count", "pipeline_usd", "won_count",
              "expected_revenue_usd", "sdr_utilisation"]


# ------------------------------------------------------------------ formatting


def fmt(kpi: str, value: float, signed: bool = False) -> str:
    """A KPI value the way a reader expects it: $1.2M, 87%, 4.1 h, 614."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    kind = kpi_def(kpi).kind
    sign = "+" if signed and value > 0 else "-" if signed and value < 0 else ""
    v = abs(value) if signed else value
    if kind == "money":
        a = abs(v)
        text = f"${v / 1e6:,.2f}M" if a >= 1e6 else f"${v / 1e3:,.0f}k" if a >= 1e3 else f"${v:,.0f}"
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


def label(kpi: str, capital: bool = False) -> str:
    """The KPI in plain words ("pipeline created"); ``capital`` for the start of a line."""
    text = kpi_def(kpi).label
    return text[:1].upper() + text[1:] if capital else text


def _bounds(kpi: str, low: float, high: float) -> tuple[float, float]:
    # A t-interval over few replications can cross what a KPI can take (a negative count,
    # a share above 100%): show the interval cut to the possible range.
    from common.intervals import clip_interval

    return clip_interval(low, high, *kpi_def(kpi).bounds)


def policy_table(summary: pd.DataFrame, policies=None, kpis=None, intervals: bool = True) -> pd.DataFrame:
    """Policies side by side: one row per KPI in plain words, 'mean (low - high)' cells
    (the mean alone with ``intervals=False``, for a page with many policies)."""
    kpis = kpis or TABLE_KPIS
    policies = list(policies) if policies is not None else list(dict.fromkeys(summary["policy"]))
    s = summary[summary["kpi"].isin(kpis) & summary["policy"].isin(policies)]
    cells = {}
    for r in s.itertuples():
        lo, hi = _bounds(r.kpi, r.ci_low, r.ci_high)
        cells[(r.kpi, r.policy)] = (f"{fmt(r.kpi, r.mean)} ({fmt(r.kpi, lo)} - {fmt(r.kpi, hi)})" if intervals
                                    else fmt(r.kpi, r.mean))
    rows = [k for k in kpis if any((k, p) in cells for p in policies)]
    out = pd.DataFrame([[cells.get((k, p), "") for p in policies] for k in rows],
                       index=[label(k) for k in rows], columns=policies)
    out.index.name = "95% interval in brackets" if intervals else "mean over replications"
    return out


# ------------------------------------------------------------------ effects


def effects(kpis: pd.DataFrame, policy: str, baseline: str = "baseline", names=None,
            level: float = 0.95) -> pd.DataFrame:
    """Effect of ``policy`` against ``baseline`` per KPI, paired by replication.

    Returns one row per KPI: baseline mean, policy mean, difference, its interval
    (t-interval of the paired differences, ``common.intervals.mean_interval``; NaN below
    2 pairs) and the relative change.
    """
    from common.intervals import mean_interval

    names = names or EFFECT_KPIS
    a = kpis[kpis["policy"] == baseline].set_index("replication")
    b = kpis[kpis["policy"] == policy].set_index("replication")
    common = a.index.intersection(b.index)
    rows = []
    for k in names:
        d = (b.loc[common, k] - a.loc[common, k]).astype(float).dropna()
        # No bounds: a difference can be negative. Below 2 pairs low / high are NaN (n/a).
        mean, low, high, n = mean_interval(d.to_numpy(), level)
        base = float(a.loc[common, k].mean())
        rows.append({"kpi": k, "baseline": base, "policy": float(b.loc[common, k].mean()), "effect": mean,
                     "low": low, "high": high, "relative": mean / base if base else float("nan"),
                     "n": n})
    return pd.DataFrame(rows)


@dataclass
class Limits:
    """What a policy must keep to be recommended (means over replications)."""

    min_sla_hot: float = 0.8
    min_sla: float = 0.8
    max_utilisation: float = 0.85

    def check(self, means: pd.Series) -> list[str]:
        """Plain reasons the policy breaks the limits (empty: within limits)."""
        why = []
        if means.get("sla_attainment_hot", 1.0) < self.min_sla_hot:
            why.append(f"Hot-lead SLA attainment {_vs(means['sla_attainment_hot'], self.min_sla_hot)} "
                       f"is below {self.min_sla_hot:.0%}")
        if means.get("sla_attainment", 1.0) < self.min_sla:
            why.append(f"SLA attainment {_vs(means['sla_attainment'], self.min_sla)} is below {self.min_sla:.0%}")
        if means.get("sdr_utilisation", 0.0) > self.max_utilisation:
            why.append(f"SDRs would be busy {_vs(means['sdr_utilisation'], self.max_utilisation)} of their time, "
                       f"above {self.max_utilisation:.0%}")
        return why


def _vs(value: float, limit: float) -> str:
    """A share beside its limit, with the decimal that shows which side it is on
    ("79.96%" rather than "80% is below 80%")."""
    text = f"{value:.0%}"
    return text if text != f"{limit:.0%}" else f"{value:.2%}"


@dataclass
class Recommendation:
    """The chosen policy, its effect against the baseline and why the others were not chosen."""

    policy: str
    baseline: str
    objective: str
    limits: Limits
    effects: pd.DataFrame
    candidates: pd.DataFrame  # policy, objective mean, within_limits, reasons
    descriptions: dict = field(default_factory=dict)
    changes: dict = field(default_factory=dict)
    compared: str = ""  # the policy ``effects`` describes: the pick, or the runner-up when the pick is the baseline

    @property
    def is_baseline(self) -> bool:
        return self.policy == self.baseline

    def effect(self, kpi: str) -> pd.Series | None:
        e = self.effects[self.effects["kpi"] == kpi]
        return None if e.empty else e.iloc[0]


def recommend(kpis: pd.DataFrame, baseline: str = "baseline", objective: str = "pipeline_usd",
              limits: Limits | None = None, policies=None) -> Recommendation:
    """The policy with the best mean ``objective`` among those within ``limits``.

    A policy is preferred to the baseline only if its effect on the objective is
    positive with 95% confidence (the interval of the paired difference is above zero);
    otherwise the baseline stays. ``policies`` is the policy set (``PolicySet``) for the
    descriptions and settings the text quotes.
    """
    limits = limits or Limits()
    if baseline not in set(kpis["policy"]):
        raise ValueError(f"recommend: baseline policy '{baseline}' is not in the sweep "
                         f"(policies: {sorted(set(kpis['policy']))})")
    if objective not in kpis:
        raise ValueError(f"recommend: objective '{objective}' is not a KPI of the sweep")
    means = kpis.drop(columns=["seed"], errors="ignore").groupby("policy", sort=False).mean(numeric_only=True)
    rows = []
    for p, m in means.iterrows():
        why = limits.check(m)
        e = effects(kpis, p, baseline, [objective]).iloc[0] if p != baseline else None
        sure = e is not None and e["low"] > 0
        if not why and p != baseline and not sure:
            why = [f"its gain in {label(objective)} is not clear of zero at 95%"]
        rows.append({"policy": p, objective: m[objective], "within_limits": not limits.check(m),
                     "reasons": "; ".join(why)})
    cand = pd.DataFrame(rows).sort_values(objective, ascending=False, kind="stable").reset_index(drop=True)
    ok = cand[(cand["reasons"] == "") & (cand["policy"] != baseline)]
    pick = ok.iloc[0]["policy"] if len(ok) else baseline
    descriptions, changes = {}, {}
    if policies is not None:
        for pol in policies.policies:
            descriptions[pol.name] = pol.description
            changes[pol.name] = dict(pol.set)
    # Keeping the baseline still shows what the best alternative would have done.
    others = cand[cand["policy"] != baseline]
    compared = pick if pick != baseline or others.empty else others.iloc[0]["policy"]
    names = list(dict.fromkeys([objective] + EFFECT_KPIS))
    return Recommendation(policy=pick, baseline=baseline, objective=objective, limits=limits,
                          effects=effects(kpis, compared, baseline, names), candidates=cand,
                          descriptions=descriptions, changes=changes, compared=compared)


def _interval(kpi: str, e: pd.Series) -> str:
    return f"{fmt(kpi, e['effect'], signed=True)} (95% interval {fmt(kpi, e['low'], signed=True)} to " \
           f"{fmt(kpi, e['high'], signed=True)})"


def _setting(key: str, value) -> str:
    if isinstance(value, list):
        return f"`{key}` as in the policy file"
    return f"`{key}` = {value}"


def headline(rec: Recommendation, summary: pd.DataFrame | None = None, horizon_weeks: float | None = None) -> str:
    """The opening of the report: what to change, what it buys, at what cost, in Markdown."""
    per = f" over the {horizon_weeks:.0f} measured weeks" if horizon_weeks else " over the simulated period"
    if rec.is_baseline:
        runner = rec.candidates[rec.candidates["policy"] != rec.baseline].head(1)
        text = (f"**Keep today's process ({rec.baseline}).** No policy tested beat it on "
                f"{label(rec.objective)} with 95% confidence while keeping SLA attainment and SDR "
                f"workload within limits.")
        if len(runner):
            r = runner.iloc[0]
            text += (f" The closest, **{r['policy']}**, was set aside because {r['reasons'] or 'it did not clear the bar'};"
                     f" the table below shows what it would change.")
        return text
    desc = rec.descriptions.get(rec.policy) or ""
    change = rec.changes.get(rec.policy) or {}
    how = "; ".join(_setting(k, v) for k, v in change.items())
    parts = [f"**Recommendation: adopt the {rec.policy} policy**" + (f" ({desc})" if desc else "") + "."]
    if how:
        parts.append(f"In the scenario this means {how}.")
    main = rec.effect(rec.objective)
    parts.append(f"Compared with today's process it is expected to add {_interval(rec.objective, main)} "
                 f"of {label(rec.objective)}{per}, a change of {main['relative']:+.0%}.")
    others = [k for k in EFFECT_KPIS if k != rec.objective]
    bits = []
    for k in others:
        e = rec.effect(k)
        if e is not None:
            bits.append(f"{label(k)} {_interval(k, e)}")
    if bits:
        parts.append("Alongside: " + "; ".join(bits) + ".")
    if summary is not None:
        s = summary[summary["policy"] == rec.policy].set_index("kpi")["mean"]
        b = summary[summary["policy"] == rec.baseline].set_index("kpi")["mean"]
        parts.append(
            f"Hot leads are answered within their SLA {fmt('sla_attainment_hot', s.get('sla_attainment_hot'))} "
            f"of the time (today {fmt('sla_attainment_hot', b.get('sla_attainment_hot'))}) and SDRs are busy "
            f"{fmt('sdr_utilisation', s.get('sdr_utilisation'))} of their working time "
            f"(today {fmt('sdr_utilisation', b.get('sdr_utilisation'))}).")
    sdrs = change.get("team.sdrs")
    if sdrs is not None:
        parts.append(f"It needs a different team size ({sdrs} SDRs): weigh the extra headcount against "
                     f"the added pipeline before deciding.")
    return " ".join(parts)


def why_not(rec: Recommendation) -> pd.DataFrame:
    """Every policy with its objective and, for those not chosen, the reason in words."""
    c = rec.candidates.copy()
    c[label(rec.objective)] = [fmt(rec.objective, v) for v in c[rec.objective]]
    c["verdict"] = np.where(c["policy"] == rec.policy, "recommended",
                            np.where(c["policy"] == rec.baseline, "today's process", c["reasons"]))
    return c[["policy", label(rec.objective), "verdict"]].set_index("policy")


# ------------------------------------------------------------------ thresholds


def threshold_story(summary: pd.DataFrame, cutoffs: dict[str, float], current: float,
                    limits: Limits | None = None, objective: str = "pipeline_usd") -> str:
    """What moving the MQL cut-off does, and the best cut-off the team can absorb."""
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
        text += (f" The cut-off with the most {label(objective)} that the team can absorb is "
                 f"**{cutoffs[best]:g}** ({fmt(objective, m.loc[best, objective])}")
        if here is not None and here != best:
            text += f", against {fmt(objective, m.loc[here, objective])} at today's {current:g})."
        elif here == best:
            text += "), today's setting."
        else:
            text += ")."
        broke = [n for n in names if n not in ok]
        if broke:
            text += (" Cut-offs of " + ", ".join(f"{cutoffs[n]:g}" for n in broke)
                     + " break a limit: " + limits.check(means.loc[broke[0]])[0] + f" at {cutoffs[broke[0]]:g}.")
    return text


# ------------------------------------------------------------------ caveats


def assumptions_and_risks(rec: Recommendation, kpis: pd.DataFrame, scenario=None) -> str:
    """Assumptions behind the numbers and the risks of acting on them, as Markdown bullets."""
    n = int(kpis.groupby("policy").size().min())
    lines = ["**Assumptions**", ""]
    if scenario is not None:
        cal = scenario.calendar
        lines.append(f"- Demand: about {scenario.arrivals.leads_per_week:,.0f} inbound leads a week, "
                     f"{scenario.team.sdrs} SDRs working {cal.open_hour:g}:00-{cal.close_hour:g}:00 "
                     f"({cal.timezone}), over {cal.horizon_days} days of which the first {cal.warmup_days} "
                     f"are a warm-up left out of the figures.")
        lines.append("- Speed-to-lead: the chance of reaching and qualifying a lead falls with the response "
                     "delay along curves set to reproduce the published studies (HBR 2011; Lead Response "
                     "Management 2007), not this company's own data.")
    lines += [f"- Every figure is the mean of {n} simulated replications; intervals are 95% intervals over "
              f"those replications, and policies are compared on the same simulated leads.",
              "- Conversion rates, deal sizes and stage durations are the scenario's, fitted to history where "
              "the fitted-funnel notebook was run; markets that shift invalidate them.",
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
    """The recommended policy's effect per KPI in words: today, with the change, the difference."""
    rows = []
    for e in rec.effects.itertuples():
        rows.append({"": label(e.kpi, capital=True),
                     "today": fmt(e.kpi, e.baseline),
                     f"with {rec.compared}": fmt(e.kpi, e.policy),
                     "difference": fmt(e.kpi, e.effect, signed=True),
                     "95% interval": f"{fmt(e.kpi, e.low, signed=True)} to {fmt(e.kpi, e.high, signed=True)}",
                     "change": f"{e.relative:+.0%}" if e.relative == e.relative else ""})
    return pd.DataFrame(rows).set_index("")


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

    @property
    def measured_weeks(self) -> float | None:
        """Weeks of the horizon after the warm-up (the period the KPIs cover)."""
        for s in self.meta.get("scenarios", {}).values():
            cal = s["calendar"]
            return (cal["horizon_days"] - cal["warmup_days"]) / 7.0
        return None


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


def provenance(*sweeps: SavedSweep, model: str | Path | None = None) -> pd.DataFrame:
    """Where each input came from: folder, seed, replications, policies and code version."""
    rows = []
    for s in sweeps:
        reps = s.meta.get("replications") or {}
        rows.append({"input": s.path.name, "folder": display_path(s.path), "seed": s.meta.get("seed"),
                     "replications per policy": ", ".join(sorted({str(v) for v in reps.values()})),
                     "policies": ", ".join(s.policies), "code version": s.meta.get("code_version"),
                     "created": s.meta.get("created_at")})
    if model is not None:
        try:
            p = find_points_table(model)
            rows.append({"input": "scoring model", "folder": display_path(p)})
        except FileNotFoundError as exc:
            rows.append({"input": "scoring model", "folder": str(exc)})
    return pd.DataFrame(rows, dtype=object).set_index("input").fillna("")


def cutoff_grid(table, mql_cutoffs, current_mql: float = 0.0, step: float = 5.0, half_width: int = 2):
    """The MQL cut-offs to try and today's cut-off, on the scale of ``table``.

    An empty ``mql_cutoffs`` centres the grid on the table's own MQL cut-off (a refitted
    table carries the cut-offs chosen for the team's capacity, which need not be 60);
    ``current_mql`` of 0 or less means the table's own cut-off."""
    own = float(table.thresholds.mql)
    grid = [float(m) for m in mql_cutoffs] or [own + step * k for k in range(-half_width, half_width + 1)]
    return grid, (own if current_mql <= 0 else float(current_mql))
