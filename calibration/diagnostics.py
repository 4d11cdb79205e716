"""Holdout diagnostics with bootstrap confidence intervals.

ROC AUC, PR AUC (average precision), Brier score, log loss, a reliability curve, lift
by decile and conversion rate per band, each with a percentile bootstrap 95% interval.
The bootstrap resamples leads with replacement; a resample is a vector of counts
``w ~ Multinomial(n, 1/n)`` and every statistic is computed with those weights, so all
scorers are evaluated on the same resamples and their differences are paired (the
interval of a difference is the interval of the paired differences).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from sim.scoring import BANDS, Thresholds

METRICS = ("roc_auc", "pr_auc", "brier", "log_loss")
#: For each metric, whether larger is better (deltas are reported as new - reference).


@dataclass
class Diagnostics:
    """Tidy frames a notebook can plot directly."""

    metrics: pd.DataFrame      # model, metric, estimate, lo, hi
    deltas: pd.DataFrame       # model, reference, metric, delta, lo, hi
    reliability: pd.DataFrame  # model, bin, mean_predicted, observed, lo, hi, n
    lift: pd.DataFrame         # model, decile, n, conversions, rate, lift, lo, hi, cum_capture
    bands: pd.DataFrame        # model, band, n, share, rate, lo, hi


class _Prepared:
    """One scorer, prepared once so that a resample costs two ``bincount`` calls.

    Rows are grouped into cells: tie groups of the score, split where a decile boundary
    cuts through a tie. Every statistic is a function of the weighted positives and
    totals per cell (the probability too, when it is a function of the score, as for a
    logistic model or a Platt-scaled points score), so a resample never touches rows
    again after the two ``bincount`` calls.
    """

    def __init__(self, score, proba, y, thresholds, points: bool, n_bins: int):
        uniq, gid = np.unique(score, return_inverse=True)
        decile = _deciles(score)
        key, self.cell = np.unique(gid.astype(np.int64) * 10 + (9 - decile), return_inverse=True)
        self.n_cells = len(key)
        self.cell_group = key // 10            # ascending score
        self.group_start = np.flatnonzero(np.r_[True, np.diff(self.cell_group) != 0])
        self.cell_decile = 9 - key % 10
        self.decile = decile
        self.band = thresholds.band(uniq).astype(np.int64)[self.cell_group] if points else None
        self.p = proba
        self.rel = None
        self.row_terms = None
        if proba is not None:
            rel = _quantile_bins(proba, n_bins)
            pc = np.bincount(self.cell, weights=proba, minlength=self.n_cells) / np.bincount(self.cell)
            if np.allclose(pc[self.cell], proba, rtol=0, atol=1e-12):
                self.pc = pc
                self.pc_terms = np.vstack([pc**2, np.log(pc), np.log1p(-pc)])
                self.rel = rel[np.unique(self.cell, return_index=True)[1]]
            else:  # probability not a function of the score: per-row terms
                self.pc = None
                self.rel_rows = rel
                self.row_terms = np.vstack([(proba - y) ** 2, -(y * np.log(proba) + (1 - y) * np.log1p(-proba))])
            self.rel_of_row = rel
        self.n_bins = n_bins

    def stats(self, w, wp):
        cw = np.bincount(self.cell, weights=w, minlength=self.n_cells)
        cp = np.bincount(self.cell, weights=wp, minlength=self.n_cells)
        gp = np.add.reduceat(cp, self.group_start)
        gn = np.add.reduceat(cw, self.group_start) - gp
        # Mann-Whitney AUC, ties counted one half: sum over tie groups (ascending score)
        # of positives x (negatives strictly below + half the negatives tied).
        below = np.cumsum(gn) - gn
        out = {"roc_auc": float(np.sum(gp * (below + 0.5 * gn)) / (gp.sum() * gn.sum()))}
        # Average precision = sum_k (R_k - R_{k-1}) P_k over thresholds from the top,
        # ties as one step (as sklearn.metrics.average_precision_score).
        tp, fp = np.cumsum(gp[::-1]), np.cumsum(gn[::-1])
        out["pr_auc"] = float(np.sum(gp[::-1] * tp / np.maximum(tp + fp, 1e-300)) / tp[-1])
        W, P = cw.sum(), cp.sum()
        out["lift"] = _ratio(cp, cw, self.cell_decile, 10) / (P / W)
        if self.p is not None:
            if self.pc is not None:
                p2, lp, l1p = self.pc_terms
                # (p - y)^2 = p^2 - 2py + y for y in {0, 1}
                out["brier"] = float((_dot(cw, p2) - 2 * _dot(cp, self.pc) + P) / W)
                out["log_loss"] = float(-(_dot(cp, lp) + _dot(cw - cp, l1p)) / W)
                out["reliability"] = _ratio(cp, cw, self.rel, self.n_bins)
            else:
                b, ll = np.einsum("ki,i->k", self.row_terms, w)
                out["brier"], out["log_loss"] = float(b / W), float(ll / W)
                out["reliability"] = _ratio(wp, w, self.rel_rows, self.n_bins)
        if self.band is not None:
            out["bands"] = _ratio(cp, cw, self.band, len(BANDS))
        return out


def _dot(a, b) -> float:
    # einsum, not BLAS: a BLAS dot on a loaded 2-core machine pays for thread start-up.
    return float(np.einsum("i,i->", a, b))


def _ratio(num, den, group, k) -> np.ndarray:
    n = np.bincount(group, weights=num, minlength=k)
    d = np.bincount(group, weights=den, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / d, np.nan)


def platt(score_train, y_train, seed: int = 0) -> tuple[float, float]:
    """Probability from a points score: ``p = 1 / (1 + exp(-(a + b * score)))`` fitted on
    training data (Platt scaling), so a points table gets a Brier score and a log loss."""
    # A points score takes few values: fit on (value, class) counts, the same likelihood.
    uniq, inv = np.unique(np.asarray(score_train, float), return_inverse=True)
    y = np.asarray(y_train).astype(float)
    pos = np.bincount(inv, weights=y, minlength=len(uniq))
    neg = np.bincount(inv, minlength=len(uniq)) - pos
    x, t, w = np.r_[uniq, uniq], np.r_[np.ones(len(uniq)), np.zeros(len(uniq))], np.r_[pos, neg]
    keep = w > 0
    # Centre and scale the score so the near-unpenalised fit is well conditioned.
    mu, sd = float(uniq.mean()), float(uniq.std()) or 1.0
    lr = LogisticRegression(C=1e6, max_iter=1000, random_state=seed)
    lr.fit(((x[keep] - mu) / sd).reshape(-1, 1), t[keep], sample_weight=w[keep])
    b = float(lr.coef_[0, 0]) / sd
    return float(lr.intercept_[0]) - b * mu, b


def bootstrap_counts(n: int, n_boot: int, seed: int):
    """Yield ``n_boot`` resamples as count vectors (one fixed seed: reproducible CIs)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, n, n), minlength=n).astype(float)


def evaluate(y, scorers: dict[str, dict], thresholds: Thresholds = Thresholds(), *, reference: str | None = None,
             n_boot: int = 200, seed: int = 0, alpha: float = 0.05, n_bins: int = 10) -> Diagnostics:
    """Diagnostics of several scorers on the same labelled leads.

    Parameters
    ----------
    y : 0/1 outcomes.
    scorers : name -> {"score": ranking score, "proba": probability or None,
        "points": True when ``score`` is a points score to band with ``thresholds``}.
    reference : name of the scorer the others are compared with (paired deltas).
    """
    y = np.asarray(y).astype(float)
    n = len(y)
    prep = {}
    for name, sc in scorers.items():
        p = None if sc.get("proba") is None else np.clip(np.asarray(sc["proba"], float), 1e-12, 1 - 1e-12)
        prep[name] = _Prepared(np.asarray(sc["score"], float), p, y, sc.get("thresholds", thresholds),
                               bool(sc.get("points")), n_bins)

    def stats(w):
        wp = w * y
        return {name: pr.stats(w, wp) for name, pr in prep.items()}

    point = stats(np.ones(n))
    boots = [stats(w) for w in bootstrap_counts(n, n_boot, seed)]
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]

    def ci(name, key):
        vals = np.array([b[name][key] for b in boots], float)
        with warnings.catch_warnings():  # an empty band has no rate in any resample
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanpercentile(vals, q, axis=0)

    metrics, deltas, rel_rows, lift_rows, band_rows = [], [], [], [], []
    for name, pr in prep.items():
        p, dec, rel, band = pr.p, pr.decile, getattr(pr, "rel_of_row", None), pr.band
        for m in METRICS:
            if m in point[name]:
                lo, hi = ci(name, m)
                metrics.append((name, m, point[name][m], lo, hi))
                if reference and name != reference and m in point.get(reference, {}):
                    d = np.array([b[name][m] - b[reference][m] for b in boots])
                    dl, dh = np.nanpercentile(d, q)
                    deltas.append((name, reference, m, point[name][m] - point[reference][m], dl, dh))
        if p is not None:
            lo, hi = ci(name, "reliability")
            for k in range(n_bins):
                sel = rel == k
                rel_rows.append((name, k + 1, float(p[sel].mean()) if sel.any() else np.nan,
                                 point[name]["reliability"][k], lo[k], hi[k], int(sel.sum())))
        lo, hi = ci(name, "lift")
        base = y.mean()
        conv = np.bincount(dec, weights=y, minlength=10)
        cnt = np.bincount(dec, minlength=10)
        cum = np.cumsum(conv) / conv.sum()
        for k in range(10):
            lift_rows.append((name, k + 1, int(cnt[k]), int(conv[k]), point[name]["lift"][k] * base,
                              point[name]["lift"][k], lo[k], hi[k], cum[k]))
        if band is not None:
            lo, hi = ci(name, "bands")
            cnt = np.bincount(pr.band, weights=np.bincount(pr.cell), minlength=len(BANDS))
            for k, b in enumerate(BANDS):
                band_rows.append((name, b, int(cnt[k]), float(cnt[k] / n), point[name]["bands"][k], lo[k], hi[k]))
    return Diagnostics(
        metrics=pd.DataFrame(metrics, columns=["model", "metric", "estimate", "lo", "hi"]),
        deltas=pd.DataFrame(deltas, columns=["model", "reference", "metric", "delta", "lo", "hi"]),
        reliability=pd.DataFrame(rel_rows, columns=["model", "bin", "mean_predicted", "observed", "lo", "hi", "n"]),
        lift=pd.DataFrame(lift_rows, columns=["model", "decile", "n", "conversions", "rate", "lift", "lo", "hi",
                                              "cum_capture"]),
        bands=pd.DataFrame(band_rows, columns=["model", "band", "n", "share", "rate", "lo", "hi"]),
    )


def _deciles(score: np.ndarray) -> np.ndarray:
    """Decile 0 = the top 10% by score. Ties are split by position (stable order), so
    every decile holds a tenth of the leads even when a points score has few values."""
    order = np.argsort(-score, kind="stable")
    dec = np.empty(len(score), dtype=np.int64)
    dec[order] = np.minimum((np.arange(len(score)) * 10) // len(score), 9)
    return dec


def _quantile_bins(p: np.ndarray, k: int) -> np.ndarray:
    edges = np.unique(np.quantile(p, np.linspace(0, 1, k + 1)[1:-1]))
    return np.searchsorted(edges, p, side="right").astype(np.int64)
