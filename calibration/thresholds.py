"""Hot / MQL cut-offs that respect the SDR team's capacity.

For a cut-off ``t`` on the points score, on labelled leads (ideally the holdout):

    routed(t)    = V * P(score >= t)                 leads per week sent to SDRs
    qualified(t) = V * P(score >= t and converted)   expected qualified leads per week
    precision(t) = qualified(t) / routed(t)          conversion rate of routed leads

with ``V`` the weekly lead volume. ``qualified`` never grows with ``t`` (raising the
bar only drops leads), so the best feasible MQL cut-off is the lowest one whose routed
volume fits the number of leads the team can work within the SLA per week; the Hot
cut-off likewise for the leads it can reach within the Hot SLA (immediate contact).
Nurture keeps the seeds' gap of 15 points below MQL. The whole curve is returned so a
notebook can show volume against quality and where the seeds' 75 / 60 / 45 sit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.errors import LabError
from sim.scoring import Thresholds

SEED = Thresholds()


@dataclass
class ThresholdChoice:
    thresholds: Thresholds
    curve: pd.DataFrame
    rule: str
    feasible: bool


def threshold_curve(scores, y, weekly_volume: float, capacity: float | None = None,
                    value_per_qualified: float = 1.0) -> pd.DataFrame:
    """Volume vs quality for every integer cut-off from the lowest to the highest score.

    Columns: cutoff, share_routed, routed_per_week, precision, qualified_per_week,
    pipeline_per_week (qualified x ``value_per_qualified``), capture (share of all
    conversions at or above the cut-off), utilisation (routed / capacity), seed_band
    ("hot" / "mql" / "nurture" on the seeds' 75 / 60 / 45 rows).
    """
    s = np.asarray(scores, float)
    y = np.asarray(y, float)
    if len(s) == 0 or len(s) != len(y):
        raise LabError(f"threshold curve: need as many outcomes as scores; got {len(s)} scores, {len(y)} outcomes")
    if not weekly_volume > 0:
        raise LabError(f"threshold curve: weekly_volume must be positive; got {weekly_volume}")
    lo, hi = np.floor(s.min()), np.ceil(s.max()) + 1
    cut = np.union1d(np.arange(lo, hi + 1), [SEED.hot, SEED.mql, SEED.nurture])
    # Leads at or above each cut-off, from the sorted scores (one pass, no loop).
    order = np.sort(s)
    above = len(s) - np.searchsorted(order, cut, side="left")
    conv_sorted = np.cumsum(y[np.argsort(s, kind="stable")][::-1])[::-1]
    idx = np.searchsorted(order, cut, side="left")
    conv_above = np.where(idx < len(s), conv_sorted[np.minimum(idx, len(s) - 1)], 0.0)
    n, total = len(s), y.sum()
    out = pd.DataFrame({"cutoff": cut, "share_routed": above / n})
    out["routed_per_week"] = weekly_volume * out["share_routed"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["precision"] = np.where(above > 0, conv_above / np.maximum(above, 1), np.nan)
    out["qualified_per_week"] = weekly_volume * conv_above / n
    out["pipeline_per_week"] = out["qualified_per_week"] * value_per_qualified
    out["capture"] = conv_above / total if total else np.nan
    out["utilisation"] = out["routed_per_week"] / capacity if capacity else np.nan
    out["seed_band"] = np.select([cut == SEED.hot, cut == SEED.mql, cut == SEED.nurture], ["hot", "mql", "nurture"], "")
    return out


def choose_thresholds(scores, y, weekly_volume: float, capacity: float, hot_capacity: float | None = None,
                      value_per_qualified: float = 1.0) -> ThresholdChoice:
    """Lowest cut-offs whose routed volume fits ``capacity`` (MQL) and ``hot_capacity`` (Hot).

    Parameters
    ----------
    weekly_volume : leads arriving per week.
    capacity : leads per week the SDR team can work within the SLA (Hot + MQL).
    hot_capacity : leads per week it can contact immediately; None keeps the seeds' gap
        (Hot = MQL + 15).
    """
    if not capacity > 0:
        raise LabError(f"thresholds: capacity must be positive leads per week; got {capacity}")
    if hot_capacity is not None and not 0 < hot_capacity <= capacity:
        raise LabError(f"thresholds: hot_capacity must be in (0, capacity={capacity}]; got {hot_capacity}")
    curve = threshold_curve(scores, y, weekly_volume, capacity, value_per_qualified)
    fits = curve[curve["routed_per_week"] <= capacity]
    feasible = bool(len(fits))
    mql = float(fits["cutoff"].min()) if feasible else float(curve["cutoff"].max())
    if hot_capacity is None:
        hot = mql + (SEED.hot - SEED.mql)
    else:
        hot_fits = curve[curve["routed_per_week"] <= hot_capacity]
        hot = max(mql, float(hot_fits["cutoff"].min()) if len(hot_fits) else float(curve["cutoff"].max()))
    th = Thresholds(hot=hot, mql=mql, nurture=mql - (SEED.mql - SEED.nurture))
    rule = (f"MQL = lowest cut-off routing <= {capacity:,.0f} leads/week of {weekly_volume:,.0f} (expected qualified "
            "pipeline falls as the cut-off rises, so the lowest feasible one maximises it); "
            + ("Hot = MQL + 15 (seeds' gap)" if hot_capacity is None else
               f"Hot = lowest cut-off routing <= {hot_capacity:g} leads/week for immediate contact")
            + "; Nurture = MQL - 15")
    curve["chosen"] = np.select([curve["cutoff"] == th.hot, curve["cutoff"] == th.mql], ["hot", "mql"], "")
    return ThresholdChoice(thresholds=th, curve=curve, rule=rule if feasible else
                           rule + f"; no cut-off fits the capacity, so MQL is the highest score {mql:g}",
                           feasible=feasible)
