"""Censoring-aware estimators for stage outcomes: records still open at the export's
date are not losses.

``kaplan_meier(t, event)`` is the survival curve of a time-to-stage; ``eventual_shares(t,
cause)`` the Aalen-Johansen cumulative incidence of each competing closing (won, lost,
no decision) at the last observed time, as shares of all closings: the odds that a
deal which closes closes that way, with open deals contributing their time at risk.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def kaplan_meier(t, event) -> pd.DataFrame:
    """Kaplan-Meier survival at each event time: ``time, at_risk, events, survival``."""
    t = np.asarray(t, dtype=float)
    e = np.asarray(event, dtype=bool)
    ok = ~np.isnan(t)
    t, e = t[ok], e[ok]
    times = np.unique(t[e])
    at_risk = np.array([(t >= x).sum() for x in times])
    d = np.array([((t == x) & e).sum() for x in times])
    surv = np.cumprod(1 - d / np.maximum(at_risk, 1))
    return pd.DataFrame({"time": times, "at_risk": at_risk, "events": d, "survival": surv})


def eventual_shares(t, cause) -> dict:
    """Aalen-Johansen cumulative incidence of each cause at the last time, normalised
    to shares of all closings. ``cause`` is None (or NaN) for a censored record."""
    t = np.asarray(t, dtype=float)
    c = pd.Series(cause, dtype=object).where(pd.notna(pd.Series(cause, dtype=object)), None).to_numpy()
    ok = ~np.isnan(t)
    t, c = t[ok], c[ok]
    ev = np.array([x is not None for x in c])
    if not ev.any():
        return {}
    df = pd.DataFrame({"t": t, "c": np.where(ev, c, "__censored__")})
    counts = df.groupby(["t", "c"]).size().unstack(fill_value=0).sort_index()
    causes = [k for k in counts.columns if k != "__censored__"]
    n_t = counts.sum(axis=1).to_numpy()
    at_risk = len(df) - np.concatenate([[0], np.cumsum(n_t)[:-1]])
    d_all = counts[causes].sum(axis=1).to_numpy()
    surv_before = np.concatenate([[1.0], np.cumprod(1 - d_all / np.maximum(at_risk, 1))[:-1]])
    cif = {k: float(np.sum(surv_before * counts[k].to_numpy() / np.maximum(at_risk, 1))) for k in causes}
    total = sum(cif.values())
    return {k: v / total for k, v in cif.items()} if total > 0 else {}
