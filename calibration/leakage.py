"""The leakage guard: features known only after the outcome must not score leads.

Two rules, run on the training rows only:

1. single feature: a candidate whose out-of-fold single-feature ROC AUC exceeds
   ``max_single_auc`` (0.95) is refused. The feature is target-encoded per level
   (numeric ones binned) with 2-fold out-of-fold means, so a many-valued column cannot
   score well by memorising rows; AUC is taken as ``max(AUC, 1 - AUC)``.
2. too good to be true: if a quick model on all candidates reaches a validation AUC
   above ``max_model_auc`` (0.95: lead scoring on pre-outcome data rarely does), the
   column whose removal lowers that AUC most is refused, and so on until the AUC falls
   below the limit. This catches a column like X Education's ``Tags`` (single AUC 0.92,
   but 0.98 with the rest) that rule 1 alone misses.

Columns listed under the mapping's ``leakage.allow`` pass both rules.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from calibration.model import LeadScoringModel
from common.errors import LabError


@dataclass
class LeakageReport:
    """Per-feature evidence: single AUC, AUC drop when removed (rule 2), verdict."""

    table: pd.DataFrame
    model_auc: float
    refused: list[str]

    def raise_if_refused(self, source: str):
        if not self.refused:
            return
        t = self.table.set_index("feature")
        why = "; ".join(f"'{c}' ({t.loc[c, 'rule']})" for c in self.refused)
        raise LabError(f"{source}: leakage guard refused feature(s) {why}. A column that predicts the outcome "
                       "this well is usually filled in after it: list it under post_outcome in the mapping, "
                       "or under leakage.allow to keep it on purpose")


def single_feature_auc(x: pd.Series, y: np.ndarray, seed: int = 0, n_bins: int = 20) -> float:
    """Out-of-fold target-encoding AUC of one feature, oriented (>= 0.5)."""
    if pd.api.types.is_numeric_dtype(x):
        v = x.to_numpy(dtype=float)
        ok = ~np.isnan(v)
        level = np.full(len(v), -1, dtype=np.int64)
        if ok.any():
            edges = np.unique(np.quantile(v[ok], np.linspace(0, 1, n_bins + 1)[1:-1]))
            level[ok] = np.searchsorted(edges, v[ok], side="right")
    else:
        level = pd.factorize(x.astype("string").str.lower(), use_na_sentinel=True)[0].astype(np.int64)
    level = level + 1  # missing is level 0
    fold = np.random.default_rng(seed).integers(0, 2, len(y))
    enc = np.empty(len(y))
    prior = y.mean()
    k = level.max() + 1
    for f in (0, 1):
        tr = fold != f
        pos = np.bincount(level[tr], weights=y[tr], minlength=k)
        cnt = np.bincount(level[tr], minlength=k)
        # Smoothed mean (m-estimate, m = 10) so a level seen twice cannot look perfect.
        enc[~tr] = ((pos + 10 * prior) / (cnt + 10))[level[~tr]]
    auc = roc_auc_score(y, enc)
    return float(max(auc, 1 - auc))


def check_leakage(X: pd.DataFrame, y: np.ndarray, numeric: list[str], categorical: list[str], *,
                  max_single_auc: float = 0.95, max_model_auc: float = 0.95, allow=(), seed: int = 0,
                  max_rows: int = 100_000, n_suspects: int = 5) -> LeakageReport:
    """Run both rules on training data; see the module docstring."""
    y = np.asarray(y).astype(np.int8)
    rng = np.random.default_rng(seed)
    if len(y) > max_rows:  # the verdicts are stable long before a million rows
        idx = np.sort(rng.choice(len(y), max_rows, replace=False))
        X, y = X.iloc[idx], y[idx]
    features = list(numeric) + list(categorical)
    rows = {c: {"feature": c, "single_auc": single_feature_auc(X[c], y, seed), "auc_drop": np.nan,
                "allowed": c in allow, "rule": ""} for c in features}
    refused = []
    for c, r in rows.items():
        if r["single_auc"] > max_single_auc and not r["allowed"]:
            r["rule"] = f"single-feature AUC {r['single_auc']:.3f} > {max_single_auc}"
            refused.append(c)
    kept = [c for c in features if c not in refused]
    valid = rng.random(len(y)) < 0.3
    model_auc = _quick_auc(X, y, kept, numeric, valid, seed)
    first_auc = model_auc
    while model_auc > max_model_auc:
        # Only the strongest single features are tried for removal: a leaker that lifts
        # the model this much is also strong on its own (Tags: 0.92 alone).
        suspects = [c for c in table_order(rows) if c in kept and not rows[c]["allowed"]][:n_suspects]
        drops = {c: model_auc - _quick_auc(X, y, [k for k in kept if k != c], numeric, valid, seed)
                 for c in suspects}
        if not drops:
            break
        worst = max(drops, key=drops.get)
        for c, d in drops.items():
            rows[c]["auc_drop"] = d if np.isnan(rows[c]["auc_drop"]) else rows[c]["auc_drop"]
        rows[worst]["rule"] = (f"model AUC {model_auc:.3f} > {max_model_auc} with it, "
                               f"{model_auc - drops[worst]:.3f} without it")
        refused.append(worst)
        kept.remove(worst)
        model_auc -= drops[worst]
    table = pd.DataFrame(list(rows.values())).sort_values("single_auc", ascending=False, ignore_index=True)
    table["refused"] = table["feature"].isin(refused)
    return LeakageReport(table=table, model_auc=first_auc, refused=refused)


def table_order(rows: dict) -> list[str]:
    return sorted(rows, key=lambda c: -rows[c]["single_auc"])


def _quick_auc(X, y, cols, numeric, valid, seed) -> float:
    if not cols:
        return 0.5
    m = LeadScoringModel(numeric=[c for c in cols if c in numeric], categorical=[c for c in cols if c not in numeric],
                         Cs=(1.0,), random_state=seed)
    m.fit(X.loc[~valid, cols], y[~valid])
    return float(roc_auc_score(y[valid], m.decision_function(X.loc[valid, cols])))
