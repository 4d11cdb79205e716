"""Stage outcome rates of a fit: win and no-decision odds with open deals right-censored,
the pull of small groups toward their pooled rate, and the rates by category (channel,
industry, product...) with 95% intervals."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from common.intervals import (LEVEL, SMALL_N, exponential_mean_interval, mean_interval, normal_quantile,
                              small_n)

Z = normal_quantile(LEVEL)  # the Wilson interval's z for LEVEL


def _outcome_rates(o: pd.DataFrame, end) -> dict:
    """Win and no-decision odds of opportunities with open ones right-censored: the
    Aalen-Johansen cumulative incidence of each closing at the last observed time, over
    that of any closing (equal to the share among closed deals when nothing is open).
    Wilson intervals on the number of closed deals."""
    from calibration.survival import eventual_shares

    if "closed_at" not in o or "outcome" not in o or len(o) == 0:
        return {q: dict(estimate=math.nan, ci_low=math.nan, ci_high=math.nan, n=0, small_n=True)
                for q in ("win", "no_decision")}
    done = o["closed_at"].notna().to_numpy()
    t = np.where(done, (o["closed_at"] - o["opportunity_at"]).dt.total_seconds() / 86400.0,
                 (end - o["opportunity_at"]).dt.total_seconds() / 86400.0)
    cause = np.where(done, o["outcome"].astype(object).to_numpy(), None)
    share = eventual_shares(t, cause)
    k = int(done.sum())
    out = {}
    for q, name in (("win", "won"), ("no_decision", "no_decision")):
        p = share.get(name, 0.0) if k else math.nan
        # Wilson around the censoring-aware share, on the closed deals' count
        _, lo, hi = _wilson_at(p, k) if k else (math.nan, math.nan, math.nan)
        out[q] = dict(estimate=p, ci_low=lo, ci_high=hi, n=k, small_n=small_n(k))
    return out


def _wilson_at(p: float, n: int) -> tuple[float, float, float]:
    z = Z
    den = 1 + z**2 / n
    mid = (p + z**2 / (2 * n)) / den
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z**2 / (4 * n * n)) / den
    return p, max(0.0, mid - half), min(1.0, mid + half)


def _shrink(conv: pd.DataFrame, prior_n: float) -> pd.DataFrame:
    """Rates fitted from fewer than ``SMALL_N`` records are pulled toward the pooled rate
    of the same quantity: ``(k + m p0) / (n + m)`` with ``m = prior_n``; the share of
    the prior (``m / (n + m)``) is the ``shrinkage`` column, the raw rate is kept."""
    conv = conv.copy()
    conv["raw_estimate"] = conv["estimate"]
    conv["shrinkage"] = 0.0
    for q, g in conv.groupby("quantity"):
        if q == "rejection_share":
            continue
        k = (g["estimate"].fillna(0) * g["n"]).sum()
        n = g["n"].sum()
        if n == 0:
            continue
        p0 = k / n
        few = g.index[(g["n"] > 0) & (g["n"] < SMALL_N)]
        for i in few:
            ni, pi = conv.at[i, "n"], conv.at[i, "estimate"]
            w = prior_n / (ni + prior_n)
            conv.at[i, "estimate"] = (1 - w) * pi + w * p0
            conv.at[i, "shrinkage"] = w
    return conv


def segment_rates(opp: pd.DataFrame, end, columns) -> pd.DataFrame:
    """Win rate (censoring-aware), deal size and days to close by each category column
    (channel, industry, product...), with 95% intervals and small-group flags."""
    from calibration.survival import eventual_shares

    rows = []
    t0 = opp["opportunity_at"]
    closed = opp["closed_at"] if "closed_at" in opp else pd.Series(pd.NaT, index=opp.index)
    done = closed.notna().to_numpy()
    # Days to the close, or (open) to the export's date: right-censored exposure.
    days = np.where(done, (closed - t0).dt.total_seconds(), (end - t0).dt.total_seconds()) / 86400.0
    outcome = opp["outcome"].astype(object).to_numpy() if "outcome" in opp else np.full(len(opp), None)
    amount = opp["amount"].to_numpy(float) if "amount" in opp else np.full(len(opp), np.nan)
    won_amount = (outcome == "won") & ~np.isnan(amount)
    for col in columns:
        codes, values = pd.factorize(opp[col].astype(object).fillna("(missing)"), sort=True)
        for j, value in enumerate(values):
            g = codes == j
            k = int((g & done).sum())
            share = eventual_shares(days[g], np.where(done[g], outcome[g], None)).get("won", 0.0) if k else math.nan
            _, lo, hi = _wilson_at(share, k) if k else (math.nan, math.nan, math.nan)
            rows.append(dict(by=col, group=str(value), quantity="win_rate", estimate=share, ci_low=lo, ci_high=hi,
                             n=k, small_n=small_n(k)))
            m, lo, hi, n = mean_interval(amount[g & won_amount], lower=0.0)
            rows.append(dict(by=col, group=str(value), quantity="won_deal_size_mean", estimate=m, ci_low=lo,
                             ci_high=hi, n=n, small_n=small_n(n)))
            if "closed_at" in opp:
                m, lo, hi, n = exponential_mean_interval(days[g & done], days[g & ~done])
                rows.append(dict(by=col, group=str(value), quantity="days_to_close_mean", estimate=m, ci_low=lo,
                                 ci_high=hi, n=n, small_n=small_n(n)))
    return pd.DataFrame(rows, columns=["by", "group", "quantity", "estimate", "ci_low", "ci_high", "n", "small_n"])
