"""The lead-scoring model: optimally binned numbers, one-hot categories, regularised
logistic regression, as a scikit-learn estimator that works inside a ``Pipeline``.

Every feature becomes a set of levels a CRM administrator can type into a points table:
a numeric feature is cut into a few readable ranges (``<1``, ``1-2``, ``>=3``), a category
keeps its frequent values, and each feature has one explicit ``missing`` level that also
takes rare and unseen values. Because each lead falls in exactly one level per feature,
the linear predictor is a sum of per-level weights: that is what makes the model exactly
a points table (see ``calibration.points``).

Numeric bins come from optbinning's ``OptimalBinning`` (Navas-Palencia 2020: pre-bins,
then a constraint-programming search for the bins of highest information value), with a
monotonic event-rate trend and adjacent bins merged unless their rates differ
significantly (``max_pvalue``). Counts and other ordered numbers get an ascending or
descending trend (the one the data supports); company size (``SHAPE_FREE``) may also peak
or dip. The constraint is univariate, so after the joint fit any adjacent pair of bins
whose weights still run against the feature's trend is merged and the model refitted,
until every monotone feature's weights are monotone (``monotone_merges_`` lists them).
"""
from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from sim.scoring import OTHER_VALUE

MISSING = "__missing__"
#: Numeric lab columns whose points may peak or dip (a sweet spot of company size);
#: every other numeric feature is a count or an ordered quantity and gets monotone points.
SHAPE_FREE = ("employee_count",)
#: Categories with a business order, lowest first: their points may only rise along it.
#: Neighbours whose weights run the other way are tied (one weight, equal points).
ORDINAL = {"seniority": ("individual", "manager", "director", "vp", "c_level")}


class LeadScoringModel(ClassifierMixin, BaseEstimator):
    """Binned, one-hot, L2-regularised logistic regression for lead scoring.

    Parameters
    ----------
    numeric : list of str or None
        Columns to bin; None means every numeric column of ``X``.
    categorical : list of str or None
        Columns to one-hot; None means every other column of ``X``.
    n_bins : int
        At most this many ranges per numeric column (missing not counted).
    min_bin_size : float
        Smallest share of training rows in a range.
    max_pvalue : float
        Adjacent ranges whose conversion rates do not differ at this significance
        (optbinning's z-test) are merged.
    shape_free : list of str
        Numeric columns allowed to peak or dip; the others are monotone.
    ordinal : dict of str to sequence of str, or None
        Categorical columns with a business order (lowest first) whose points must not
        fall along it; None means ``ORDINAL`` (seniority).
    min_frequency : float
        A category seen in a smaller share of training rows joins the missing level.
    max_categories : int
        At most this many categories per column are kept (the most frequent).
    Cs : sequence of float
        Inverse regularisation strengths tried; the one with the best cross-validated
        log loss is kept (``C_``).
    cv : int
        Folds for choosing C (a single C skips cross-validation).
    max_iter : int
        lbfgs iterations.
    random_state : int
        Seeds the fold assignment.
    cv_max_rows : int
        Above this many rows, C is chosen on a random subsample of this size.
    """

    _parameter_constraints = {
        "numeric": [list, tuple, None],
        "categorical": [list, tuple, None],
        "n_bins": [Interval(Integral, 2, 50, closed="both")],
        "min_bin_size": [Interval(Real, 0, 0.5, closed="right")],
        "max_pvalue": [Interval(Real, 0, 1, closed="right")],
        "shape_free": [list, tuple],
        "ordinal": [dict, None],
        "min_frequency": [Interval(Real, 0, 0.5, closed="both")],
        "max_categories": [Interval(Integral, 2, None, closed="left")],
        "Cs": [list, tuple],
        "cv": [Interval(Integral, 2, 20, closed="both")],
        "max_iter": [Interval(Integral, 10, None, closed="left")],
        "random_state": ["random_state"],
        "cv_max_rows": [Interval(Integral, 100, None, closed="left")],
    }

    def __init__(self, numeric=None, categorical=None, n_bins=6, min_bin_size=0.02, max_pvalue=0.05,
                 shape_free=SHAPE_FREE, ordinal=None, min_frequency=0.005, max_categories=30, Cs=(0.01, 0.1, 1.0, 10.0), cv=3,
                 max_iter=2000, random_state=0, cv_max_rows=50_000):
        self.numeric = numeric
        self.categorical = categorical
        self.n_bins = n_bins
        self.min_bin_size = min_bin_size
        self.max_pvalue = max_pvalue
        self.shape_free = shape_free
        self.ordinal = ordinal
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter
        self.random_state = random_state
        self.cv_max_rows = cv_max_rows

    # ---- fitting -------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Learn the levels, choose C by cross-validated log loss, fit; returns self."""
        self._validate_params()
        # The design is narrow (a few hundred levels): BLAS threads only add start-up cost,
        # which on a busy 2-core machine made lbfgs ten times slower.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        if not len(self.Cs) or any(not (float(c) > 0) for c in self.Cs):
            raise ValueError(f"The 'Cs' parameter of LeadScoringModel must be positive numbers. Got {self.Cs!r} instead.")
        X = _frame(X)
        y = np.asarray(y).astype(int).ravel()
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"LeadScoringModel needs two classes in y; got {self.classes_.tolist()}")
        y = (y == self.classes_[1]).astype(np.int8)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        numeric = list(self.numeric) if self.numeric is not None else \
            [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
        categorical = list(self.categorical) if self.categorical is not None else \
            [c for c in X.columns if c not in numeric]
        self.feature_names_in_ = np.asarray(numeric + categorical, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.cut_points_, self.trends_ = {}, {}
        for c in numeric:
            trend = "auto" if c in self.shape_free else "auto_asc_desc"
            self.cut_points_[c], self.trends_[c] = self._optimal_cuts(X[c], y, w, trend)
        self.categories_ = {c: _frequent(X[c], self.min_frequency, self.max_categories) for c in categorical}
        # Ordinal categories: the kept ones in business order, and a tie map (level ->
        # the level whose weight it shares; identity until a tie is needed).
        order = ORDINAL if self.ordinal is None else self.ordinal
        self.ordinal_order_ = {}
        self.tie_map_ = {}
        for c in categorical:
            if c in order:
                lower = [str(k).lower() for k in self.categories_[c]]
                seq = [lower.index(str(v).lower()) for v in order[c] if str(v).lower() in lower]
                if len(seq) > 1:
                    self.ordinal_order_[c] = seq
                    self.tie_map_[c] = np.arange(len(self.categories_[c]) + 1)
        codes = self._codes(X)
        keys, inv = _patterns(codes)
        folds = np.random.default_rng(self.random_state).integers(0, self.cv, len(y))
        self.C_, self.cv_scores_ = self._choose_C(codes, inv, y, w, folds)
        self.monotone_merges_ = []
        while True:
            lr = self._fit_aggregated(codes, inv, y, w, self.C_)
            self.coef_ = lr.coef_.ravel().copy()
            self.intercept_ = float(lr.intercept_[0])
            self.level_counts_ = np.bincount(self._flat(codes).indices, minlength=len(self.coef_))
            if not self._merge_violations():
                return self
            codes = self._codes(X)
            keys, inv = _patterns(codes)

    def _optimal_cuts(self, s: pd.Series, y, w, trend: str):
        """Readable cut points of one numeric column and the trend of its bins' rates."""
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(x)
        if ok.sum() < 2 or np.nanmin(x) == np.nanmax(x) or len(np.unique(y[ok])) < 2:
            return np.array([]), "none"
        import warnings

        from optbinning import OptimalBinning

        ob = OptimalBinning(dtype="numerical", solver="cp", monotonic_trend=trend, max_n_bins=self.n_bins,
                            min_bin_size=self.min_bin_size, max_pvalue=self.max_pvalue)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ob.fit(x[ok], y[ok], sample_weight=w[ok])
        cuts = _readable_cuts(np.asarray(ob.splits, float), x[ok])
        code = np.searchsorted(cuts, x[ok], side="right")
        rate = np.bincount(code, weights=w[ok] * y[ok], minlength=len(cuts) + 1) / np.maximum(
            np.bincount(code, weights=w[ok], minlength=len(cuts) + 1), 1e-300)
        d = np.diff(rate)
        kind = "none" if not len(d) else "ascending" if (d >= 0).all() else "descending" if (d <= 0).all() \
            else "peak" if rate.argmax() not in (0, len(rate) - 1) else "valley"
        return cuts, kind

    def _merge_violations(self) -> bool:
        """Drop one cut per monotone feature whose adjacent weights run against its trend,
        and tie one pair of neighbours per ordinal category whose weights fall along its
        order; True when anything changed (the caller refits)."""
        offsets, _ = self._offsets
        changed = False
        for j, c in enumerate(self.feature_names_in_):
            seq = self.ordinal_order_.get(c)
            if seq is None:
                continue
            tie = self.tie_map_[c]
            beta = self.coef_[offsets[j] + tie[seq]]
            step = np.diff(beta)
            if (step >= -1e-9).all():
                continue
            i = int(np.argmin(step))
            lo, hi = tie[seq[i]], tie[seq[i + 1]]
            tie[tie == hi] = lo  # the higher level now shares the lower one's weight
            cats = self.categories_[c]
            self.monotone_merges_.append({"feature": c, "tied": [str(cats[seq[i]]), str(cats[seq[i + 1]])],
                                          "trend": "ascending"})
            changed = True
        for j, c in enumerate(self.feature_names_in_):
            trend = self.trends_.get(c)
            cuts = self.cut_points_.get(c)
            if trend not in ("ascending", "descending") or cuts is None or not len(cuts):
                continue
            k = len(cuts) + 1
            beta = self.coef_[offsets[j]:offsets[j] + k]
            step = np.diff(beta) * (1 if trend == "ascending" else -1)
            if (step >= -1e-9).all():
                continue
            i = int(np.argmin(step))
            self.monotone_merges_.append({"feature": c, "cut_removed": float(cuts[i]), "trend": trend})
            self.cut_points_[c] = np.delete(cuts, i)
            changed = True
        return changed

    def _choose_C(self, codes, inv, y, w, folds):
        if len(self.Cs) == 1:
            return float(self.Cs[0]), {float(self.Cs[0]): np.nan}
        if len(y) > self.cv_max_rows:
            # With this many leads the penalty barely matters; choose C on a random
            # subsample (same pattern ids, other rows weighted 0) and fit on all.
            keep = np.random.default_rng(self.random_state).random(len(y)) < self.cv_max_rows / len(y)
            w = w * keep
        scores = {}
        for C in self.Cs:
            loss = 0.0
            for k in range(self.cv):
                tr = folds != k
                lr = self._fit_aggregated(codes, inv, y, w * tr, float(C))
                ev = ~tr & (w > 0)
                eta = self._flat(codes[ev]) @ lr.coef_.ravel() + lr.intercept_[0]
                loss += _weighted_log_loss(y[ev], eta, w[ev])
            scores[float(C)] = loss / max(w.sum(), 1e-300)
        return min(scores, key=scores.get), scores

    def _fit_aggregated(self, codes, inv, y, w, C):
        # Leads sharing one level pattern are interchangeable in the likelihood, so fit on
        # (pattern, class) groups weighted by their counts: exact, and fast on a million rows.
        n_pat = inv.max() + 1
        pos = np.bincount(inv, weights=w * y, minlength=n_pat)
        neg = np.bincount(inv, weights=w * (1 - y), minlength=n_pat)
        first = np.zeros(n_pat, dtype=np.int64)
        first[inv[::-1]] = np.arange(len(inv))[::-1]
        design = self._flat(codes[first])
        Xa = sparse.vstack([design, design]).tocsr()
        ya = np.r_[np.ones(n_pat), np.zeros(n_pat)]
        wa = np.r_[pos, neg]
        keep = wa > 0
        # Newton-Cholesky: a few hundred columns and many rows, so a handful of Newton
        # steps beat hundreds of lbfgs gradient evaluations.
        lr = LogisticRegression(C=C, max_iter=self.max_iter, solver="newton-cholesky", tol=1e-8)
        # Weights are counts; scaling them to mean 1 keeps C comparable across data sizes.
        scale = wa[keep].sum() / len(y) if len(y) else 1.0
        lr.fit(Xa[keep], ya[keep], sample_weight=wa[keep] / max(scale, 1e-12))
        return lr

    # ---- encoding ------------------------------------------------------------------
    @property
    def _offsets(self):
        sizes = [len(self.cut_points_[c]) + 2 if c in self.cut_points_ else len(self.categories_[c]) + 1
                 for c in self.feature_names_in_]
        return np.r_[0, np.cumsum(sizes)[:-1]], int(np.sum(sizes))

    def _codes(self, X: pd.DataFrame) -> np.ndarray:
        """Level index per lead and feature; the last level of each feature is missing."""
        out = np.empty((len(X), len(self.feature_names_in_)), dtype=np.int32)
        for j, c in enumerate(self.feature_names_in_):
            if c not in X.columns:
                raise ValueError(f"X lacks column {c!r} the model was fitted with")
            if c in self.cut_points_:
                cuts = self.cut_points_[c]
                x = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float)
                code = np.searchsorted(cuts, x, side="right")
                code[np.isnan(x)] = len(cuts) + 1
            else:
                cats = self.categories_[c]
                # Categories match case-insensitively, as in sim.scoring.PointsTable.
                code = category_codes(X[c], cats).astype(np.int32)
                code[code < 0] = len(cats)
                tie = getattr(self, "tie_map_", {}).get(c)
                if tie is not None:
                    code = tie[code].astype(np.int32)
            out[:, j] = code
        return out

    def _flat(self, codes: np.ndarray) -> sparse.csr_matrix:
        offsets, width = self._offsets
        n, f = codes.shape
        idx = (codes + offsets).ravel()
        return sparse.csr_matrix((np.ones(n * f), idx, np.arange(0, n * f + 1, f)), shape=(n, width))

    def transform(self, X) -> sparse.csr_matrix:
        """One-hot level indicators (one column per row of :meth:`levels`)."""
        check_is_fitted(self)
        return self._flat(self._codes(_frame(X)))

    # ---- prediction ----------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Log-odds of conversion."""
        check_is_fitted(self)
        return self.transform(X) @ self.coef_ + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        eta = self.decision_function(X)
        p = 1.0 / (1.0 + np.exp(-eta))
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    # ---- inspection ----------------------------------------------------------------
    def levels(self) -> pd.DataFrame:
        """One row per (feature, level): the points-table ``value`` text, kind, coef, n."""
        check_is_fitted(self)
        rows = []
        for c in self.feature_names_in_:
            if c in self.cut_points_:
                labels = range_labels(self.cut_points_[c])
                kind = "range"
            else:
                labels = list(self.categories_[c])
                kind = "category"
            rows += [(c, v, kind) for v in labels] + [(c, MISSING, kind)]
        out = pd.DataFrame(rows, columns=["criterion", "value", "kind"])
        # A tied ordinal level shows the weight (and the training count) of the level it
        # shares it with; its own column is never used.
        offsets, _ = self._offsets
        take = np.arange(len(self.coef_))
        for j, c in enumerate(self.feature_names_in_):
            tie = self.tie_map_.get(c) if hasattr(self, "tie_map_") else None
            if tie is not None:
                take[offsets[j]:offsets[j] + len(tie)] = offsets[j] + tie
        out["coef"] = self.coef_[take]
        out["n_train"] = self.level_counts_[take]
        return out


def range_labels(cuts) -> list[str]:
    """Labels of the bins ``[-inf, c1), [c1, c2), ..., [ck, inf)`` in the points-table
    syntax: ``"1-2"`` covers 1 and 2 (``[1, 3)``) between integer cuts, ``">=0.5 and <2"``
    otherwise; with no cut at all the one level is ``OTHER_VALUE`` (any value that is not blank)."""
    cuts = [float(c) for c in cuts]
    if not cuts:
        return [OTHER_VALUE]

    def num(v):
        return f"{int(v)}" if v.is_integer() else f"{v:g}"

    labels = [f"<{num(cuts[0])}"]
    for a, b in zip(cuts, cuts[1:]):
        if a.is_integer() and b.is_integer():
            labels.append(num(a) if b - 1 == a else f"{num(a)}-{num(b - 1)}")
        else:
            labels.append(f">={num(a)} and <{num(b)}")
    labels.append(f">={num(cuts[-1])}")
    return labels


def _readable_cuts(splits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cut points a person can type: for whole-number data the next integer (the same
    partition of the data: 2.5 splits 0-2 from 3+ as 3 does), else two significant
    digits; cuts that leave a range empty are dropped."""
    if not len(splits):
        return np.array([])
    if np.all(x == np.round(x)):
        cuts = np.ceil(splits)
    else:
        mag = 10.0 ** (np.floor(np.log10(np.maximum(np.abs(splits), 1e-12))) - 1)
        cuts = np.round(splits / mag) * mag
    cuts = np.unique(cuts)
    cuts = cuts[(cuts > x.min()) & (cuts <= x.max())]
    code = np.searchsorted(cuts, x, side="right")
    filled = np.bincount(code, minlength=len(cuts) + 1) > 0
    return cuts[filled[1:] & filled[:-1]] if len(cuts) else cuts


def category_codes(s: pd.Series, categories) -> np.ndarray:
    """Index of each value in ``categories`` (stripped, case-insensitive), -1 if absent.

    Values are factorized first so that only the distinct ones are normalised: on a
    million rows that is milliseconds instead of seconds of string work."""
    codes, uniq = pd.factorize(s, use_na_sentinel=True)
    norm = pd.Index(pd.Series(uniq, dtype=object).astype(str).str.strip().str.lower())
    lookup = pd.Index([str(k).lower() for k in categories]).get_indexer(norm)
    out = np.full(len(codes), -1, dtype=np.int64)
    ok = codes >= 0
    out[ok] = lookup[codes[ok]]
    return out


def _frequent(s: pd.Series, min_frequency: float, max_categories: int) -> list[str]:
    # Spellings that differ only in case ("google", "Google") are one category, shown
    # with its most frequent spelling.
    text = _as_text(s).dropna()
    spell = text.value_counts()
    counts = spell.groupby(spell.index.str.lower(), sort=False).sum().sort_values(ascending=False, kind="stable")
    shown = {k.lower(): k for k in spell.index[::-1]}
    counts = counts[counts >= max(1, min_frequency * len(s))]
    return [shown[k] for k in counts.index[:max_categories]]


def _as_text(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip()


def _patterns(codes: np.ndarray):
    # Mixed-radix key per row, then np.unique: one id per distinct level pattern.
    radix = codes.max(axis=0).astype(np.int64) + 1
    if np.sum(np.log2(np.maximum(radix, 1))) < 62:
        key = np.zeros(len(codes), dtype=np.int64)
        for j in range(codes.shape[1]):
            key = key * radix[j] + codes[:, j]
        return np.unique(key, return_inverse=True)
    uniq, inv = np.unique(codes, axis=0, return_inverse=True)
    return uniq, inv.ravel()


def _weighted_log_loss(y, eta, w) -> float:
    # -[y log p + (1-y) log(1-p)] = log(1 + e^eta) - y*eta, computed stably.
    return float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)))


def _frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    X = np.asarray(X)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
