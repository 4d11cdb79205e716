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
    to shares of all closings. ``cause`` is None (or NaN) for a censored record.

    At each distinct time ``t_j`` with ``r_j`` at risk and ``d_kj`` closings of cause k:
    ``CIF_k = sum_j S(t_j-) d_kj / r_j``, ``S`` the Kaplan-Meier survival of any closing."""
    t = np.asarray(t, dtype=float)
    c = pd.Series(cause, dtype=object)
    c = c.where(pd.notna(c), None).to_numpy()
    ok = ~np.isnan(t)
    t, c = t[ok], c[ok]
    ev = np.array([x is not None for x in c], dtype=bool)
    if not ev.any():
        return {}
    causes = sorted({str(x) for x in c[ev]})
    times, inv = np.unique(t, return_inverse=True)
    n_t = np.bincount(inv, minlength=times.size)
    at_risk = t.size - np.concatenate([[0], np.cumsum(n_t)[:-1]])
    d = {k: np.bincount(inv[ev & (c.astype(str) == k)], minlength=times.size) for k in causes}
    d_all = sum(d.values())
    surv_before = np.concatenate([[1.0], np.cumprod(1 - d_all / np.maximum(at_risk, 1))[:-1]])
    cif = {k: float(np.sum(surv_before * d[k] / np.maximum(at_risk, 1))) for k in causes}
    total = sum(cif.values())
    return {k: v / total for k, v in cif.items()} if total > 0 else {}
