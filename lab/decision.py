"""The decision: which policy to adopt, weighed in money, and why each other one was not.

Every policy of a sweep is simulated on common random numbers: replication ``r`` of
every policy sees the same leads (``sim.experiment``), so a policy's effect is the mean
of its paired differences from today's process and the 95% interval is
``mean +- t(n-1) sd / sqrt(n)`` of those differences (``common.intervals.mean_interval``),
narrower than the two policies' separate intervals suggest.

The rule (``recommend``): among the policies that keep the SLA and workload limits,
take the one with the highest mean **net value per quarter** (``sim.economics``: gross
profit of the expected revenue its leads create, minus team and marketing cost); adopt
it only if its gain over today's process is clear of zero at 95%, else keep today's
process. Each other policy's verdict says in money why it was not chosen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from common.intervals import mean_interval
from common.money import fmt_money
from sim.kpis import kpi as kpi_def

#: What the recommendation maximises by default.
OBJECTIVE = "net_value_per_quarter_usd"
#: The effects quoted for the chosen policy, money first.
EFFECT_KPIS = ["net_value_per_quarter_usd", "pipeline_per_quarter_usd", "expected_revenue_per_quarter_usd",
               "gross_profit_per_quarter_usd", "team_cost_per_quarter_usd", "sql_per_week", "won_per_week"]


def effects(kpis: pd.DataFrame, policy: str, baseline: str = "baseline", names=None,
            level: float = 0.95) -> pd.DataFrame:
    """Effect of ``policy`` against ``baseline`` per KPI, paired by replication.

    Returns one row per KPI: baseline mean, policy mean, difference, its interval
    (t-interval of the paired differences; NaN below 2 pairs), the relative change and n.
    """
    names = names or EFFECT_KPIS
    a = kpis[kpis["policy"] == baseline].set_index("replication")
    b = kpis[kpis["policy"] == policy].set_index("replication")
    common = a.index.intersection(b.index)
    rows = []
    for k in names:
        if k not in a or k not in b:
            continue
        d = (b.loc[common, k] - a.loc[common, k]).astype(float).dropna()
        mean, low, high, n = mean_interval(d.to_numpy(), level)  # no bounds: a difference can be negative
        if n >= 2 and float(d.std(ddof=1)) == 0.0:
            low = high = mean  # a cost the policy sets exactly (no noise): the interval is the value
        base = float(a.loc[common, k].mean())
        rows.append({"kpi": k, "baseline": base, "policy": float(b.loc[common, k].mean()), "effect": mean,
                     "low": low, "high": high, "relative": mean / base if base else float("nan"), "n": n})
    return pd.DataFrame(rows, columns=["kpi", "baseline", "policy", "effect", "low", "high", "relative", "n"])


def _vs(value: float, limit: float) -> str:
    """A share beside its limit, with the decimals that show which side it is on
    ("79.96%" rather than "80% is below 80%")."""
    text = f"{value:.0%}"
    return text if text != f"{limit:.0%}" else f"{value:.2%}"


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


def money_sentence(e: pd.DataFrame, with_net: bool = True) -> str:
    """A policy's trade in money per quarter: "+$0.90M pipeline for +$71k of team cost a
    quarter: net -$40k (95% interval -$60k to -$20k)" (without the net part when
    ``with_net`` is false, for text that quotes the net value already)."""
    row = {r.kpi: r for r in e.itertuples()}
    if row and all(r.effect == 0 and r.low == r.high for r in row.values()):
        return "no change in pipeline, revenue or cost (the team works exactly as today)"
    parts = []
    if "pipeline_per_quarter_usd" in row:
        parts.append(f"{fmt_money(row['pipeline_per_quarter_usd'].effect, True)} pipeline")
    cost = row.get("team_cost_per_quarter_usd")
    if cost is not None and cost.effect >= 1:
        parts.append(f"for {fmt_money(cost.effect, True)} of team cost")
    elif cost is not None and cost.effect <= -1:
        parts.append(f"with {fmt_money(-cost.effect)} less team cost")
    text = " ".join(parts) + " a quarter" if parts else ""
    net = row.get(OBJECTIVE) if with_net else None
    if net is not None:
        ci = (f" (95% interval {fmt_money(net.low, True)} to {fmt_money(net.high, True)})"
              if net.low == net.low and net.low != net.high else "")
        text += f"{': ' if text else ''}net {fmt_money(net.effect, True)} a quarter{ci}"
    return text


@dataclass
class Recommendation:
    """The chosen policy, its effect against today's process and why the others were not chosen."""

    policy: str
    baseline: str
    objective: str
    limits: Limits
    effects: pd.DataFrame
    candidates: pd.DataFrame  # policy, objective mean, effect, low, high, within_limits, reasons, verdict
    titles: dict = field(default_factory=dict)
    descriptions: dict = field(default_factory=dict)
    changes: dict = field(default_factory=dict)
    compared: str = ""  # the policy ``effects`` describes: the pick, or the best alternative when keeping today
    replications: int = 0

    @property
    def is_baseline(self) -> bool:
        return self.policy == self.baseline

    def title(self, policy: str) -> str:
        return self.titles.get(policy) or policy

    def effect(self, kpi: str) -> pd.Series | None:
        e = self.effects[self.effects["kpi"] == kpi]
        return None if e.empty else e.iloc[0]


def recommend(kpis: pd.DataFrame, baseline: str = "baseline", objective: str = OBJECTIVE,
              limits: Limits | None = None, policies=None) -> Recommendation:
    """The policy with the best mean ``objective`` among those within ``limits``, adopted
    only when its paired gain over ``baseline`` is clear of zero at 95%.

    ``policies`` is the policy set (``PolicySet``) for the titles, descriptions and
    settings the text quotes.
    """
    from common.errors import LabError

    limits = limits or Limits()
    if baseline not in set(kpis["policy"]):
        raise LabError(f"recommend: baseline: no policy {baseline!r} in the sweep (rule: today's process must be "
                       f"one of the policies run; got {baseline!r}; policies: {sorted(set(kpis['policy']))})")
    if objective not in kpis:
        raise LabError(f"recommend: objective: not a KPI of the sweep (got {objective!r})")
    means = kpis.drop(columns=["seed"], errors="ignore").groupby("policy", sort=False).mean(numeric_only=True)
    rows = []
    for p, m in means.iterrows():
        breaks = limits.check(m)
        e = effects(kpis, p, baseline, list(dict.fromkeys([objective] + EFFECT_KPIS)))
        o = e[e["kpi"] == objective].iloc[0]
        why = list(breaks)
        if p != baseline and not breaks and not (o["low"] > 0):
            why.append(f"its gain in {kpi_def(objective).label} is not clear of zero at 95%"
                       if o["effect"] > 0 else f"it adds no {kpi_def(objective).label}")
        money = money_sentence(e) if p != baseline else ""
        rows.append({"policy": p, objective: m[objective], "effect": o["effect"], "low": o["low"], "high": o["high"],
                     "within_limits": not breaks, "reasons": "; ".join(why), "money": money})
    cand = pd.DataFrame(rows).sort_values(objective, ascending=False, kind="stable").reset_index(drop=True)
    ok = cand[(cand["reasons"] == "") & (cand["policy"] != baseline)]
    pick = ok.iloc[0]["policy"] if len(ok) else baseline
    cand["verdict"] = [("recommended: " + r.money) if r.policy == pick and pick != baseline else
                       "today's process" + (" (kept)" if pick == baseline else "") if r.policy == baseline else
                       r.money if r.money.startswith("no change") and r.within_limits else
                       (r.money + ("; " if r.money else "") + r.reasons) if r.reasons else
                       (r.money + "; less net value than the recommended policy")
                       for r in cand.itertuples()]
    from lab.chain import titles as policy_titles

    titles, descriptions, changes = policy_titles(policies), {}, {}
    if policies is not None:
        for pol in policies.policies:
            descriptions[pol.name] = pol.description
            changes[pol.name] = dict(pol.set)
    others = cand[cand["policy"] != baseline]
    compared = pick if pick != baseline or others.empty else others.iloc[0]["policy"]
    names = list(dict.fromkeys([objective] + EFFECT_KPIS))
    n = int(kpis.groupby("policy").size().min())
    return Recommendation(policy=pick, baseline=baseline, objective=objective, limits=limits,
                          effects=effects(kpis, compared, baseline, names), candidates=cand, titles=titles,
                          descriptions=descriptions, changes=changes, compared=compared, replications=n)
