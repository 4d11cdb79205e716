"""A synthetic CRM export with known logistic weights, in the simulator's per-lead layout
(``data/mappings/sim_leads.yaml``): ground truth for tests and the benchmark.

The true log-odds of winning is ``B0 + sum of TRUE_WEIGHTS`` over the criteria a lead
meets, so a refit can be checked against the true ranking of the weights and the true
model's AUC.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: (criterion, predicate description) -> true log-odds weight. Ordered strongest first.
TRUE_WEIGHTS = {
    "demo_requests>=1": 1.6,
    "seniority=c_level/vp": 1.2,
    "pricing_page_visits>=3": 0.9,
    "employee_count 100-1000": 0.7,
    "seniority=director": 0.5,
    "industry_fit=target": 0.35,
    "content_downloads>=1": 0.2,
}
B0 = -3.0
CHANNELS = ["web", "paid_search", "events", "referral", "outbound"]
INDUSTRIES = ["software", "fintech", "healthcare", "retail", "manufacturing", "education", "media", "logistics"]
REGIONS = ["na", "uk", "dach", "nordics", "apac"]
SENIORITY = ["c_level", "vp", "director", "manager", "individual"]


def true_logit(df: pd.DataFrame) -> np.ndarray:
    """The generating model's log-odds for each lead."""
    emp = df["employee_count"].to_numpy()
    sen = df["seniority"].to_numpy()
    terms = {
        "demo_requests>=1": df["demo_requests"].to_numpy() >= 1,
        "seniority=c_level/vp": np.isin(sen, ["c_level", "vp"]),
        "pricing_page_visits>=3": df["pricing_page_visits"].to_numpy() >= 3,
        "employee_count 100-1000": (emp >= 100) & (emp <= 1000),
        "seniority=director": sen == "director",
        "industry_fit=target": df["industry_fit"].to_numpy() == "target",
        "content_downloads>=1": df["content_downloads"].to_numpy() >= 1,
    }
    return B0 + sum(TRUE_WEIGHTS[k] * v for k, v in terms.items())


def make_export(n: int, seed: int = 0, start: str = "2024-01-01", days: int = 365) -> pd.DataFrame:
    """``n`` leads created over ``days`` days, outcomes drawn from the true model.

    Independent streams per source of randomness (``SeedSequence.spawn``), so changing one
    part of the generator does not reshuffle the others.
    """
    r = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    t0 = pd.Timestamp(start)
    created = t0 + pd.to_timedelta(np.sort(r[0].uniform(0, days * 86400, n)).round(), unit="s")
    industry = r[1].choice(INDUSTRIES, n)
    region = r[1].choice(REGIONS, n, p=[0.4, 0.15, 0.15, 0.1, 0.2])
    df = pd.DataFrame({
        "lead_id": np.char.add("L", np.arange(1, n + 1).astype(str)),
        "created_at": created,
        "channel": r[1].choice(CHANNELS, n, p=[0.35, 0.25, 0.1, 0.1, 0.2]),
        "employee_count": np.round(np.exp(r[1].normal(5.0, 1.6, n))).astype(int) + 1,
        "industry": industry,
        "industry_fit": np.where(np.isin(industry, INDUSTRIES[:3]), "target", "other"),
        "region": region,
        "region_fit": np.where(np.isin(region, REGIONS[:2]), "target", "other"),
        "seniority": r[1].choice(SENIORITY, n, p=[0.05, 0.1, 0.2, 0.3, 0.35]),
        "demo_requests": r[2].poisson(0.15, n),
        "pricing_page_visits": r[2].poisson(1.2, n),
        "content_downloads": r[2].poisson(0.7, n),
        "web_visits": r[2].poisson(3.0, n),
        "webinars": r[2].poisson(0.3, n),
    })
    eta = true_logit(df)
    won = r[3].random(n) < 1 / (1 + np.exp(-eta))
    u = r[4].random(n)
    # Sales stages: every winner went through SQL and opportunity; some losers did too.
    sql = won | (u < 0.25)
    opp = won | (u < 0.10)
    day = pd.to_timedelta(1, unit="D")
    gap = pd.to_timedelta(r[5].exponential(3.0, n), unit="D")
    df["score"] = 0
    df["band"] = "cold"
    df["first_response_at"] = created + pd.to_timedelta(r[5].exponential(60, n), unit="min")
    df["owner_id"] = r[5].integers(1, 9, n).astype(str)
    df["mql_at"] = created + 0.1 * day
    df["handoff_at"] = created + 0.2 * day
    df["decided_at"] = created + 0.5 * day
    df["sal_at"] = (created + 0.5 * day).where(sql | (u < 0.5))
    df["sql_at"] = (created + gap).where(sql)
    df["opportunity_at"] = (created + 2 * gap).where(opp)
    df["closed_at"] = (created + 3 * gap + 20 * day).where(opp)
    outcome = np.where(won, "won", np.where(opp & (u < 0.05), "no_decision", "lost"))
    df["outcome"] = outcome
    df["stage"] = np.where(won, "won", np.where(sql, "sql", "recycled"))
    df["rejection_reason"] = np.where(sql, "", r[5].choice(["not_icp", "no_intent", "no_timing"], n))
    df["amount"] = np.where(won, np.round(r[5].lognormal(9.5, 0.6, n)), np.nan)
    for c in ("created_at", "first_response_at", "mql_at", "handoff_at", "decided_at", "sal_at", "sql_at",
              "opportunity_at", "closed_at"):
        df[c] = df[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return df


#: A generator whose true weights are monotone in every count and ordinal field:
#: (criterion, level label, predicate on the column) -> log-odds weight, with probe values
#: (one per true level) to read a table's points at each level.
MONOTONE_TRUTH = {
    "b0": -3.5,
    "levels": {
        "demo_requests": [(lambda x: x == 1, 1.0), (lambda x: x >= 2, 1.5)],
        "pricing_page_visits": [(lambda x: (x >= 1) & (x <= 2), 0.4), (lambda x: x >= 3, 0.9)],
        "content_downloads": [(lambda x: (x >= 1) & (x <= 2), 0.2), (lambda x: x >= 3, 0.5)],
        "web_visits": [(lambda x: (x >= 3) & (x <= 5), 0.3), (lambda x: x >= 6, 0.5)],
        "employee_count": [(lambda x: (x >= 50) & (x < 200), 0.3), (lambda x: (x >= 200) & (x < 1000), 0.6),
                           (lambda x: x >= 1000, 0.9)],
        "seniority": [(lambda x: x == "manager", 0.3), (lambda x: x == "director", 0.6), (lambda x: x == "vp", 1.0),
                      (lambda x: x == "c_level", 1.2)],
        "industry_fit": [(lambda x: x == "target", 0.35)],
        "region_fit": [(lambda x: x == "target", 0.2)],
    },
    "probes": {
        "demo_requests": [0, 1, 3], "pricing_page_visits": [0, 2, 4], "content_downloads": [0, 1, 4],
        "web_visits": [1, 4, 8], "employee_count": [20, 100, 500, 2000],
        "seniority": ["individual", "manager", "director", "vp", "c_level"],
        "industry_fit": ["other", "target"], "region_fit": ["other", "target"],
    },
}


def monotone_logit(df: pd.DataFrame) -> np.ndarray:
    """The monotone generator's log-odds for each lead."""
    eta = np.full(len(df), MONOTONE_TRUTH["b0"])
    for col, levels in MONOTONE_TRUTH["levels"].items():
        x = df[col].to_numpy()
        for pred, w in levels:
            eta = eta + w * pred(x)
    return eta


def true_points(factor: float) -> dict[tuple[str, object], float]:
    """True points of each probe value, ``factor`` points per unit of log-odds, each
    criterion's weakest level at 0."""
    out = {}
    for col, values in MONOTONE_TRUTH["probes"].items():
        x = np.asarray(values, dtype=object if isinstance(values[0], str) else float)
        w = sum(wt * pred(x).astype(float) for pred, wt in MONOTONE_TRUTH["levels"][col])
        out.update({(col, v): float(factor * p) for v, p in zip(values, w)})
    return out


def make_monotone_export(n: int, seed: int = 0, **kw) -> pd.DataFrame:
    """``make_export``'s leads with outcomes drawn from the monotone truth instead."""
    df = make_export(n, seed=seed, **kw)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(7)[6])
    won = rng.random(n) < 1 / (1 + np.exp(-monotone_logit(df)))
    df["outcome"] = np.where(won, "won", "lost")
    df["stage"] = np.where(won, "won", df["stage"].where(df["stage"] != "won", "sql"))
    df["amount"] = np.where(won, df["amount"].fillna(10000.0), np.nan)
    return df
