"""From logistic coefficients to an integer points table on a scale the user chooses.

The model's log-odds is a sum of per-level weights (``calibration.model``):
``eta(x) = b0 + sum_j beta_j[level_j(x)]``. Every level of every criterion becomes a row,
the ``(missing)`` level included (a category's rare and unseen values share it, listed as
``(any other value)``), so the ranges cover every value with no gap. Within a criterion
the weakest level seen in training is the zero-point reference; ``(missing)`` is an
ordinary level measured against it (it can convert well: it then earns points, it is
never the reference). Two scales:

- ``minmax`` (default): the lowest possible total lands exactly on ``score_min`` (0)
  and the highest exactly on ``score_max`` (100). The range is shared out between
  criteria in proportion to their weight ranges ``r_j = max beta_j - min beta_j`` (whole
  points, largest remainders), and each level earns
  ``round((beta_j[l] - min beta_j) / r_j * R_j)``, so each criterion spans exactly
  ``0 .. R_j`` and the totals exactly ``score_min .. score_max``.
- ``pdo``: ``pdo`` points double the odds: ``round(pdo / ln 2 * (beta_j[l] - min beta_j))``;
  totals run from 0 to whatever the weights give.

Either way the score is (up to rounding) ``factor * (eta(x) - eta0)`` with ``eta0`` the
log-odds of the lead at every zero level, so it ranks leads as the model does, and a
cut-off ``t`` means the probability ``1 / (1 + exp(-(eta0 + t / factor)))``: that is
recorded per band. Rounding is monotone, so it never reverses two levels of a
criterion (it may tie them). Neither scale can fail because one level converts
unusually well.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from calibration.model import MISSING
from common.errors import LabError
from sim.scoring import MISSING_VALUE, OTHER_VALUE, PointsTable, Thresholds

SCALES = ("minmax", "pdo")


def apportion(total: int, weights) -> np.ndarray:
    """Whole numbers summing exactly to ``total`` in proportion to ``weights``
    (largest remainder method)."""
    w = np.asarray(weights, float)
    if total == 0 or w.sum() <= 0:
        return np.zeros(len(w), dtype=int)
    quota = total * w / w.sum()
    out = np.floor(quota).astype(int)
    order = np.argsort(-(quota - out), kind="stable")
    out[order[: total - out.sum()]] += 1
    return out


def reference_levels(levels: pd.DataFrame) -> pd.DataFrame:
    """``levels`` with unseen levels given the weakest seen weight (an unseen
    ``(missing)`` level then scores like the reference) and a ``seen`` column."""
    if "n_train" in levels:
        seen = levels["n_train"] > 0
    else:
        seen = pd.Series(True, index=levels.index)
    out = levels.assign(seen=seen)
    floor = out[out["seen"]].groupby("criterion")["coef"].min()
    fill = out["criterion"].map(floor)
    out["coef"] = np.where(out["seen"] | fill.isna(), out["coef"], fill)
    return out


def points_rows(levels: pd.DataFrame, *, scale: str = "minmax", score_min: float = 0.0,
                score_max: float = 100.0, pdo: float | None = None, decimals: int = 0) -> tuple[pd.DataFrame, dict]:
    """criterion / value / points rows for every level (pure function) and the scaling.

    ``levels`` has columns criterion, value, kind, coef and n_train with one ``MISSING``
    value per criterion (``LeadScoringModel.levels()``). Criteria whose levels all weigh
    the same change no score and are left out (listed in the returned dict).
    """
    if scale not in SCALES:
        raise LabError(f"points scaling: scale: one of {', '.join(SCALES)}; got {scale!r}")
    lv = reference_levels(levels)
    lo = lv.groupby("criterion", sort=False)["coef"].min()
    width = lv.groupby("criterion", sort=False)["coef"].max() - lo
    flat = width[width <= 1e-9].index.tolist()
    width = width[width > 1e-9]
    if width.empty:
        raise LabError("points scaling: the model gives every lead the same score (no criterion separates "
                       "converting leads); nothing to scale")
    info = {"scale": scale, "no_effect": flat}
    if scale == "minmax":
        span = score_max - score_min
        if not (span > 0 and float(span).is_integer() and float(score_min).is_integer()):
            raise LabError(f"points scaling: score range: whole numbers with max above min; "
                           f"got {score_min:g}-{score_max:g}")
        share = pd.Series(apportion(int(span), width.to_numpy()), index=width.index)
        per = share / width
        factor = span / width.sum()
        info.update(score_min=float(score_min), score_max=float(score_max), factor=float(factor))
    else:
        if pdo is None or not pdo > 0:
            raise LabError(f"points scaling: pdo: must be positive; got {pdo}")
        per = pd.Series(pdo / math.log(2), index=width.index)
        factor = pdo / math.log(2)
        info.update(factor=float(factor))
    info["pdo"] = float(factor * math.log(2))
    out = lv[lv["criterion"].isin(width.index)].copy()
    out["points"] = np.round(per.reindex(out["criterion"]).to_numpy()
                             * (out["coef"].to_numpy() - lo.reindex(out["criterion"]).to_numpy()), decimals) + 0.0
    if scale == "minmax" and score_min:
        # The lowest total must be score_min: the widest criterion carries the offset.
        out.loc[out["criterion"] == width.idxmax(), "points"] += float(score_min)
    rows = []
    for r in out.itertuples():
        if r.value == MISSING:
            rows.append((r.criterion, MISSING_VALUE, r.points))
            if r.kind == "category":
                rows.append((r.criterion, OTHER_VALUE, r.points))
        else:
            rows.append((r.criterion, r.value, r.points))
    rows = pd.DataFrame(rows, columns=["criterion", "value", "points"])
    info["score_range"] = [float(rows.groupby("criterion")["points"].min().sum()),
                           float(rows.groupby("criterion")["points"].max().sum())]
    return rows, info


def eta_zero(levels: pd.DataFrame, intercept: float) -> float:
    """Log-odds of the lead at every criterion's zero level: ``b0 + sum_j min beta_j``."""
    lv = reference_levels(levels)
    return float(intercept + lv.groupby("criterion")["coef"].min().sum())


def points_table_from_model(model, *, scale: str = "minmax", score_min: float = 0.0, score_max: float = 100.0,
                            pdo: float | None = None, thresholds: Thresholds | None = None, decimals: int = 0,
                            source: str = "refit") -> tuple[PointsTable, dict]:
    """Points table for a fitted ``LeadScoringModel``, and a dict of the scaling used
    (scale, factor, pdo, eta0, score range) for the artifact."""
    levels = model.levels()
    rows, info = points_rows(levels, scale=scale, score_min=score_min, score_max=score_max, pdo=pdo,
                             decimals=decimals)
    info["eta0"] = eta_zero(levels, model.intercept_) - (score_min / info["factor"] if scale == "minmax" else 0)
    table = PointsTable(rows, thresholds or Thresholds(), source=source)
    return table, info


def cutoff_meaning(thresholds: Thresholds, info: dict) -> dict:
    """Each cut-off's log-odds and probability of the outcome under the model's scale."""
    out = {}
    for band in ("hot", "mql", "nurture"):
        t = float(getattr(thresholds, band))
        z = info["eta0"] + t / info["factor"]
        out[band] = {"points": t, "log_odds": z, "probability": 1 / (1 + math.exp(-z))}
    return out


def table_applicability(table: PointsTable, frame: pd.DataFrame) -> tuple[bool, list[str]]:
    """Whether every criterion of ``table`` is a column of ``frame``; and which are not."""
    missing = [c for c in table.criteria if c not in frame.columns]
    return not missing, missing


def criteria_sheet(table: PointsTable, labels: dict[str, str] | None = None) -> str:
    """The table in plain language, one line per row ("Employee count 100-1,000: +25"),
    then the band rules: what an administrator types into the CRM."""
    labels = labels or {}
    lines = []
    for crit, grp in table.rows.groupby("criterion", sort=False):
        name = labels.get(crit, crit.replace("_", " ").capitalize())
        for r in grp.itertuples():
            lines.append(f"{name} {_plain_value(r.value)}: {r.points:+g}")
        lines.append("")
    th = table.thresholds
    lines += ["Bands (total points):", f"  Hot: {th.hot:g} or more",
              f"  MQL: {th.mql:g} to {th.hot:g} (not included)" if th.hot > th.mql else f"  MQL: {th.mql:g} or more",
              f"  Nurture: {th.nurture:g} to {th.mql:g} (not included)", f"  Cold: below {th.nurture:g}"]
    return "\n".join(lines) + "\n"


def _plain_value(value: str) -> str:
    import re

    v = str(value)
    if v == MISSING_VALUE:
        return "blank (missing)"
    if v == OTHER_VALUE:
        return "any other value"
    m = re.fullmatch(r">=(\S+) and <(\S+)", v)
    if m:
        return f"{_n(m.group(1))} to {_n(m.group(2))} (not included)"
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)-(-?\d+(?:\.\d+)?)", v)
    if m:
        return f"{_n(m.group(1))}-{_n(m.group(2))}"
    m = re.fullmatch(r"(>=|<=|<|>)(\S+)", v)
    if m:
        word = {">=": "at least", "<": "below", "<=": "at most", ">": "above"}[m.group(1)]
        return f"{word} {_n(m.group(2))}"
    if re.fullmatch(r"-?\d+(?:\.\d+)?", v):
        return f"exactly {_n(v)}"
    return f"= {v}"


def _n(text: str) -> str:
    x = float(text)
    return f"{int(x):,}" if x.is_integer() else f"{x:,g}"
