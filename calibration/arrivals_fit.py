"""Arrivals as a CRM export shows them: the hour-of-week profile of lead creation and, per
channel, its share (with per-share and simultaneous 95% intervals) and the lead attributes
``sim.arrivals.sample_leads`` draws, inverted from the leads that channel brought.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from common.intervals import LEVEL, proportion_interval, small_n
from sim.scenario import SENIORITY, Scenario


def arrival_profile(created: pd.Series, start: pd.Timestamp, end: pd.Timestamp,
                    pseudo: float = 0.5) -> np.ndarray:
    """Hour-of-week weights (Monday 00:00 first): leads per hour of week divided by how
    many times that hour occurs in the period, with ``pseudo`` leads added to every hour
    so that an hour never seen keeps a small positive rate."""
    how = (created.dt.day_of_week * 24 + created.dt.hour).to_numpy()
    counts = np.bincount(how, minlength=168).astype(float)
    hours = pd.date_range(start.floor("h"), end.floor("h"), freq="h")
    exposure = np.bincount(hours.day_of_week * 24 + hours.hour, minlength=168).astype(float)
    rate = (counts + pseudo) / np.maximum(exposure, 1.0)
    return rate / rate.sum()


def channel_mix(df: pd.DataFrame, base: Scenario) -> tuple[pd.DataFrame, dict]:
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
