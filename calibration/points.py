"""From logistic coefficients to an integer points table on the seeds' scale.

The model's log-odds is a sum of per-level weights (``calibration.model``):
``eta(x) = b0 + sum_j beta_j[level_j(x)]``. A points table has no intercept and gives
0 points to a value no row matches (a missing value included), so each criterion needs
a zero level z_j: its missing level when training data had missing values (exact), else
its weakest level (all points >= 0, as in the seeds' table; a missing value then scores
like the weakest level):

    points_j[l] = round(factor * (beta_j[l] - beta_j[z_j]))
    score(x)    = sum_j points_j[level_j(x)]  ~=  factor * (eta(x) - eta0)
    eta0        = b0 + sum_j beta_j[z_j]      (the lead at every criterion's zero level)

so the score is an affine function of the log-odds and ranks leads as the model does
(up to rounding). ``factor`` is the points that multiply the odds by e; one of:

- ``pdo``: points to double the odds, ``factor = pdo / ln 2`` (optbinning's scorecard
  scaling; the offset is fixed by the zero-for-missing rule above);
- ``anchor`` (default): keep the meaning of the MQL cut-off: choose the probability
  ``p*`` above which the wanted share of leads lies (by default the share the seeds'
  table made MQL or Hot) and put it at ``anchor_score`` (60):
  ``factor = anchor_score / (logit(p*) - eta0)``, hence ``pdo = factor * ln 2``.
  Hot (75) and Nurture (45) then sit 15 points, i.e. ``15 / factor`` log-odds, either side.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from calibration.model import MISSING
from common.errors import LabError
from sim.scoring import PointsTable, Thresholds


def scale_factor(eta0: float, *, pdo: float | None = None, anchor_p: float | None = None,
                 anchor_score: float = 60.0) -> float:
    """Points per unit of log-odds; see the module docstring for both formulas."""
    if (pdo is None) == (anchor_p is None):
        raise LabError("points scaling: give exactly one of pdo or anchor_p")
    if pdo is not None:
        if not pdo > 0:
            raise LabError(f"points scaling: pdo must be positive; got {pdo}")
        return pdo / math.log(2)
    if not 0 < anchor_p < 1:
        raise LabError(f"points scaling: anchor probability must be in (0, 1); got {anchor_p}")
    gap = math.log(anchor_p / (1 - anchor_p)) - eta0
    if gap <= 0:
        raise LabError(
            f"points scaling: the anchor probability {anchor_p:.3f} (log-odds {gap + eta0:.2f}) is not above "
            f"the all-missing lead's log-odds {eta0:.2f}, so no positive scale puts it at {anchor_score:g} "
            "points; use pdo scaling or a smaller MQL share")
    return anchor_score / gap


def points_rows(levels: pd.DataFrame, factor: float, decimals: int = 0) -> pd.DataFrame:
    """Tidy criterion / value / points rows from per-level coefficients (pure function).

    ``levels`` has columns criterion, value, coef, n_train and one ``MISSING`` value per
    criterion (``LeadScoringModel.levels()``). Points are ``round(factor * (coef -
    coef_zero), decimals)`` with the zero level of the module docstring. Rounding is monotone, so within a criterion it never reverses the order
    of two values (it may tie them). Rows worth 0 points are left out: they change no
    score.
    """
    base = zero_levels(levels)
    out = levels[levels["value"] != MISSING].copy()
    out["points"] = np.round(factor * (out["coef"].to_numpy() - base.reindex(out["criterion"]).to_numpy()),
                             decimals)
    out["points"] = out["points"] + 0.0  # turn -0.0 into 0.0
    out = out[out["points"] != 0]
    return out[["criterion", "value", "points"]].reset_index(drop=True)


def zero_levels(levels: pd.DataFrame) -> pd.Series:
    """Coefficient of each criterion's zero level (see the module docstring)."""
    missing = sorted(set(levels["criterion"]) - set(levels.loc[levels["value"] == MISSING, "criterion"]))
    if missing:
        raise LabError(f"points: criteria {missing} have no missing level")
    seen = levels["n_train"] > 0 if "n_train" in levels else pd.Series(True, index=levels.index)
    is_missing = levels["value"] == MISSING
    zero = {}
    for crit, grp in levels.groupby("criterion", sort=False):
        miss = grp[is_missing[grp.index]]
        if seen[miss.index].any() or not seen[grp.index].any():
            zero[crit] = float(miss["coef"].iloc[0])
        else:
            zero[crit] = float(grp.loc[seen[grp.index] & ~is_missing[grp.index], "coef"].min())
    return pd.Series(zero, name="coef")


def eta_zero(levels: pd.DataFrame, intercept: float) -> float:
    """Log-odds of the lead at every criterion's zero level: ``b0 + sum_j beta_j[z_j]``."""
    return float(intercept + zero_levels(levels).sum())


def points_table_from_model(model, *, X_train: pd.DataFrame | None = None, mql_share: float | None = None,
                            pdo: float | None = None, anchor_score: float = 60.0,
                            thresholds: Thresholds | None = None, decimals: int = 0,
                            source: str = "refit") -> tuple[PointsTable, dict]:
    """Points table for a fitted ``LeadScoringModel``.

    With ``mql_share`` (and ``X_train``), the probability anchor ``p*`` is the
    ``1 - mql_share`` quantile of the model's predicted probability on ``X_train``;
    with ``pdo``, the fixed points-to-double-the-odds. Returns the table and a dict of
    the scaling used (factor, pdo, eta0, anchor) for the artifact.
    """
    levels = model.levels()
    eta0 = eta_zero(levels, model.intercept_)
    info = {"eta0": eta0, "anchor_score": anchor_score}
    if pdo is None:
        if mql_share is None or X_train is None:
            raise LabError("points scaling: give pdo, or mql_share with the training data")
        if not 0 < mql_share < 1:
            raise LabError(f"points scaling: mql_share must be in (0, 1); got {mql_share}")
        p = model.predict_proba(X_train)[:, 1]
        anchor_p = float(np.quantile(p, 1 - mql_share))
        factor = scale_factor(eta0, anchor_p=anchor_p, anchor_score=anchor_score)
        info.update(method="anchor", mql_share=mql_share, anchor_p=anchor_p)
    else:
        factor = scale_factor(eta0, pdo=pdo)
        info.update(method="pdo")
    info.update(factor=factor, pdo=factor * math.log(2))
    rows = points_rows(levels, factor, decimals)
    return PointsTable(rows, thresholds or Thresholds(), source=source), info


def table_applicability(table: PointsTable, frame: pd.DataFrame) -> tuple[bool, list[str]]:
    """Whether every criterion of ``table`` is a column of ``frame``; and which are not."""
    missing = [c for c in table.criteria if c not in frame.columns]
    return not missing, missing


def share_at_or_above(table: PointsTable, frame: pd.DataFrame, cutoff: float) -> float | None:
    """Share of leads the table scores at or above ``cutoff`` (None when not applicable)."""
    ok, _ = table_applicability(table, frame)
    return float(np.mean(table.score(frame) >= cutoff)) if ok else None
