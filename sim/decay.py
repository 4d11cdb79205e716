"""Speed-to-lead decay: how the odds of contact and qualification fall with response
delay, and a check of a preset against the published studies.

The model (per routed lead, delay ``d`` in wall-clock minutes since it became routable):

- contact on an attempt made at delay ``d``: ``p_contact[band] * C(d)``;
- qualification given contact: ``(p_qualify[band] / p_contact[band]) * Q(d1)``, where
  ``d1`` is the delay of the first touch (how warm the lead still was).

One uniform draw per attempt decides both (contacted if ``u < pc C(d)``, qualified if
``u < pq C(d) Q(d1)``), so qualified leads are always a subset of contacted ones.

The default preset (``Decay()`` in ``sim.scenario``, fitted by ``fit_study_preset``): C is
a fast exponential (tau = 3.8 min) over a floor of 0.23 %, Q a power law (d0 = 347 min,
alpha = 1.12). A pure
exponential cannot fit both the minutes-scale contact ratio (5 vs 30 min: ~100x, Lead
Response Management study, Oldroyd & InsideSales 2007) and the day-scale
qualification ratio (< 1 h vs 24 h+: > 60x, Oldroyd, McElheran & Elkington, HBR 2011).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.scenario import DecayCurve, Scenario

if TYPE_CHECKING:
    import pandas as pd


# The published comparisons (DOMAIN.md section 4) as response-time groups. Delays inside a
# group are spread uniformly over its range; "24 h+" is taken as 24-72 h.
STUDY_GROUPS = {
    "5 min": (5.0, 5.0),
    "30 min": (30.0, 30.0),
    "within 1 h": (0.0, 60.0),
    "1-2 h": (60.0, 120.0),
    "24 h+": (1440.0, 4320.0),
}

STUDY_RATIOS = {
    # (numerator group, denominator group, what, published ratio, source)
    "contact 5 vs 30 min": ("5 min", "30 min", "contact_first_call", 100.0, "LRM study 2007"),
    "qualify 5 vs 30 min": ("5 min", "30 min", "qualified", 21.0, "LRM study 2007"),
    "qualify 1 h vs 1-2 h": ("within 1 h", "1-2 h", "qualified", 7.0, "HBR 2011"),
    "qualify 1 h vs 24 h+": ("within 1 h", "24 h+", "qualified", 60.0, "HBR 2011"),
}


@dataclass
class GroupRun:
    """Leads worked at a given first-touch delay through the simulator's attempt rules."""

    group: str
    n: int
    contact_first_call: int
    contacted: int
    qualified: int


def run_groups(scn: Scenario, n_per_group: int = 200_000, seed: int = 7, band: str = "mql") -> dict[str, GroupRun]:
    """Work ``n_per_group`` leads per study group with the scenario's decay, odds and
    attempt cadence (the same rules the simulator applies), without queueing."""
    rng = np.random.default_rng(seed)
    C, Q = scn.decay.contact, scn.decay.qualification
    pc, pq = scn.conversion.contact_prob[band], scn.conversion.qualify_prob[band]
    gaps = scn.team.attempt_offsets_minutes()
    out = {}
    for g, (lo, hi) in STUDY_GROUPS.items():
        d1 = rng.uniform(lo, hi, n_per_group) if hi > lo else np.full(n_per_group, lo)
        u = rng.random((n_per_group, len(gaps)))
        contacted = np.zeros(n_per_group, dtype=bool)
        qualified = np.zeros(n_per_group, dtype=bool)
        first = None
        for a, gap in enumerate(gaps):
            d = d1 + gap
            open_ = ~contacted
            c = open_ & (u[:, a] < pc * C(d))
            qualified |= c & (u[:, a] < pq * C(d) * Q(d1))
            contacted |= c
            if a == 0:
                first = int(c.sum())
        out[g] = GroupRun(g, n_per_group, first, int(contacted.sum()), int(qualified.sum()))
    return out


def study_ratios(scn: Scenario, n_per_group: int = 200_000, seed: int = 7) -> "pd.DataFrame":
    """Simulated vs published ratios with 95% intervals (delta method on log ratios)."""
    import pandas as pd

    from common.intervals import LEVEL, normal_quantile

    z = normal_quantile(LEVEL)
    runs = run_groups(scn, n_per_group, seed)
    rows = []
    for label, (a, b, what, published, source) in STUDY_RATIOS.items():
        xa, xb = getattr(runs[a], what), getattr(runs[b], what)
        na, nb = runs[a].n, runs[b].n
        ratio = (xa / na) / (xb / nb) if xb else math.inf
        se = math.sqrt(1 / max(xa, 1) - 1 / na + 1 / max(xb, 1) - 1 / nb)
        rows.append(
            dict(comparison=label, published=published, simulated=ratio,
                 ci_low=ratio * math.exp(-z * se), ci_high=ratio * math.exp(z * se), source=source)
        )
    return pd.DataFrame(rows)


def expected_group_rates(scn: Scenario, band: str = "mql", grid: int = 400) -> dict[str, dict[str, float]]:
    """Exact expected first-call contact and eventual qualification rates per study group
    (the expectation of ``run_groups``: delays on a fine grid, attempts on the cadence)."""
    C, Q = scn.decay.contact, scn.decay.qualification
    pc, pq = scn.conversion.contact_prob[band], scn.conversion.qualify_prob[band]
    gaps = scn.team.attempt_offsets_minutes()
    out = {}
    for g, (lo, hi) in STUDY_GROUPS.items():
        d1 = np.linspace(lo, hi, grid) if hi > lo else np.array([lo])
        alive = np.ones_like(d1)  # not yet contacted before this attempt
        qual = np.zeros_like(d1)
        for gap in gaps:
            c = C(d1 + gap)
            qual += alive * pq * c * Q(d1)
            alive *= 1 - pc * c
        out[g] = {"contact_first_call": float((pc * C(d1)).mean()), "qualified": float(qual.mean())}
    return out


def fit_study_preset(scn: Scenario, band: str = "mql") -> Scenario:
    """Fit the contact curve (fast exponential over a floor) and the qualification curve
    (power law) so that the scenario reproduces the four published ratios exactly, given
    its odds and attempt cadence. Returns a copy of ``scn`` with the fitted ``decay``.

    Least squares on log ratios (Nelder-Mead on log parameters); four equations, four
    unknowns, so the fit is exact when the cadence allows it."""
    from scipy.optimize import minimize

    def curves(x):
        tau, floor, d0, alpha = np.exp(x)
        return (DecayCurve(kind="mixture", tau_minutes=tau, weight_fast=1 - floor, floor=floor),
                DecayCurve(kind="power", d0_minutes=d0, alpha=alpha))

    def loss(x):
        if np.exp(x[1]) >= 0.5:
            return 1e9
        trial = scn.model_copy(deep=True)
        trial.decay.contact, trial.decay.qualification = curves(x)
        rates = expected_group_rates(trial, band)
        return sum((math.log(rates[a][w] / rates[b][w]) - math.log(pub)) ** 2
                   for a, b, w, pub, _ in STUDY_RATIOS.values())

    x0 = np.log([4.0, 0.0025, 60.0, 0.8])
    res = minimize(loss, x0, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-12})
    fitted = scn.model_copy(deep=True)
    fitted.decay.contact, fitted.decay.qualification = curves(res.x)
    return fitted
