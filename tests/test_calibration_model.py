"""Scoring model, points maths, diagnostics, thresholds and stability: properties and
ground truth from a generator with known logistic weights."""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from calibration.diagnostics import evaluate
from calibration.model import MISSING, LeadScoringModel
from calibration.points import apportion, criteria_sheet, points_rows, points_table_from_model
from calibration.stability import band_migration, psi
from calibration.synthetic import TRUE_WEIGHTS, make_export, true_logit
from calibration.thresholds import choose_thresholds, threshold_curve
from common.errors import LabError
from sim.scoring import MISSING_VALUE, PointsTable

FEATURES = ["employee_count", "demo_requests", "pricing_page_visits", "content_downloads", "web_visits",
            "industry_fit", "seniority", "channel"]
NUMERIC = FEATURES[:5]


@pytest.fixture(scope="module")
def synth():
    df = make_export(30000, seed=7)
    y = (df["outcome"] == "won").to_numpy().astype(int)
    return df, y


@pytest.fixture(scope="module")
def fitted(synth):
    df, y = synth
    m = LeadScoringModel(numeric=NUMERIC, categorical=FEATURES[5:], random_state=0).fit(df[FEATURES][:20000], y[:20000])
    return m


def test_estimator_contract(synth, fitted):
    df, y = synth
    m = LeadScoringModel(n_bins=4)
    assert clone(m).get_params()["n_bins"] == 4
    with pytest.raises(NotFittedError):
        m.predict_proba(df[FEATURES])
    with pytest.raises(ValueError, match="'n_bins' parameter of LeadScoringModel"):
        LeadScoringModel(n_bins=1).fit(df[FEATURES], y)
    # C is the grid value with the lowest cross-validated log loss, every value tried.
    assert set(fitted.cv_scores_) == {0.01, 0.1, 1.0, 10.0}
    assert fitted.C_ == min(fitted.cv_scores_, key=fitted.cv_scores_.get)
    # Calibrated in the large on the 10,000 held-out leads: the mean predicted probability
    # matches the observed rate within 3 sd (holdout binomial noise plus the training
    # intercept's, sqrt(p (1 - p) (1/10000 + 1/20000))).
    p = fitted.predict_proba(df[FEATURES][20000:])[:, 1]
    rate = y[20000:].mean()
    assert abs(p.mean() - rate) <= 3 * np.sqrt(rate * (1 - rate) * (1 / 10000 + 1 / 20000)), (p.mean(), rate)
    # ... and it tracks the generator's own probabilities lead by lead.
    truth = 1 / (1 + np.exp(-true_logit(df[20000:])))
    assert np.corrcoef(p, truth)[0, 1] > 0.95


def test_works_in_a_pipeline(synth):
    df, y = synth
    pipe = make_pipeline(FunctionTransformer(lambda X: X[FEATURES]), LeadScoringModel(Cs=(1.0,)))
    scores = cross_val_score(pipe, df.iloc[:6000], y[:6000], cv=3, scoring="roc_auc")
    assert scores.min() > 0.6


def test_aggregated_fit_equals_plain_logistic_regression(synth):
    # Fitting on (pattern, class) counts is the same likelihood as fitting on rows.
    from sklearn.linear_model import LogisticRegression
    df, y = synth
    m = LeadScoringModel(numeric=NUMERIC, categorical=FEATURES[5:], Cs=(1.0,)).fit(df[FEATURES][:5000], y[:5000])
    X = m.transform(df[FEATURES][:5000])
    lr = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(X, y[:5000])
    np.testing.assert_allclose(m.coef_, lr.coef_.ravel(), atol=2e-3)


def test_refit_recovers_ranking_of_true_weights_and_auc(synth, fitted):
    df, y = synth
    table, info = points_table_from_model(fitted)
    pts = table.rows.set_index(["criterion", "value"])["points"]

    def level(crit, value):
        return pts.get((crit, value), 0.0)
    lv = fitted.levels().set_index(["criterion", "value"])
    emp = lv.loc["employee_count"]
    # Points earned for each true criterion (against its weakest level).
    got = {
        "demo_requests>=1": level("demo_requests", ">=1"),
        "seniority=c_level/vp": (level("seniority", "c_level") + level("seniority", "vp")) / 2,
        "pricing_page_visits>=3": level("pricing_page_visits", ">=3"),
        "employee_count 100-1000": np.median([level("employee_count", v) for v in emp.index
                                              if v != MISSING and _inside(v, 150, 900)]),
        "seniority=director": level("seniority", "director"),
        "industry_fit=target": level("industry_fit", "target"),
    }
    order_true = [k for k in TRUE_WEIGHTS if k in got]
    order_got = sorted(got, key=got.get, reverse=True)
    assert order_got == order_true, got
    # Holdout AUC of the rounded table is within the bootstrap CI of the true model's AUC.
    test = slice(20000, None)
    d = evaluate(y[test], {"truth": {"score": true_logit(df[test])},
                           "table": {"score": table.score(df[test]), "points": True}}, reference="truth",
                 n_boot=200, seed=1)
    delta = d.deltas.set_index("metric").loc["roc_auc"]
    assert delta.lo <= 0 <= delta.hi + 0.005, delta


def _inside(label, lo, hi):
    from sim.scoring import parse_range
    a, b = parse_range(label)
    return a <= lo and b > hi or (lo <= a and b <= hi + 1)


def test_points_are_exactly_the_model_log_odds_before_rounding(synth, fitted):
    df, _ = synth
    levels = fitted.levels()
    rows, info = points_rows(levels, scale="pdo", pdo=17.0 * math.log(2), decimals=9)
    table = PointsTable(rows)
    eta = fitted.decision_function(df[FEATURES])
    from calibration.points import eta_zero
    np.testing.assert_allclose(table.score(df), 17.0 * (eta - eta_zero(levels, fitted.intercept_)), atol=1e-6)


def test_minmax_scale_spans_exactly_the_chosen_range_with_every_level_listed(synth, fitted):
    df, _ = synth
    for lo, hi in ((0, 100), (0, 1000), (10, 90)):
        table, info = points_table_from_model(fitted, score_min=lo, score_max=hi)
        assert (table.min_points, table.max_points) == (lo, hi)
        assert info["score_range"] == [lo, hi]
        assert table.rows["points"].apply(float.is_integer).all()
        for c in table.criteria:  # every value earns the points of exactly one row
            assert table.is_complete(c) and not table.gaps(c), c
    s = table.score(df)
    assert s.min() >= 10 and s.max() <= 90
    sheet = criteria_sheet(table)
    assert "Demo requests at least 1: +" in sheet and "Hot: 75 or more" in sheet


def test_monotone_counts_and_readable_ranges(fitted):
    lv = fitted.levels()
    for c, trend in fitted.trends_.items():
        if trend in ("ascending", "descending"):
            beta = lv[(lv.criterion == c) & (lv.value != MISSING)]["coef"].to_numpy()
            step = np.diff(beta) * (1 if trend == "ascending" else -1)
            assert (step >= -1e-9).all(), (c, beta)
    assert fitted.trends_["demo_requests"] == "ascending"
    assert all(len(c) + 1 <= fitted.n_bins for c in fitted.cut_points_.values())


def test_apportion_sums_exactly():
    assert apportion(100, [1, 1, 1]).sum() == 100
    assert list(apportion(10, [3, 1])) == [8, 2]


def test_missing_level_that_converts_well_is_scored_not_the_reference():
    levels = pd.DataFrame({"criterion": ["a"] * 3 + ["b"] * 2, "value": ["x", "y", MISSING, "p", MISSING],
                           "kind": ["range"] * 3 + ["category"] * 2, "coef": [0.0, 1.0, 2.0, 0.5, 0.0],
                           "n_train": [5, 5, 5, 5, 5]})
    rows, info = points_rows(levels)
    pts = rows.set_index(["criterion", "value"])["points"]
    assert pts[("a", "x")] == 0 and pts[("a", MISSING_VALUE)] == 80 and pts[("b", "p")] == 20
    assert info["score_range"] == [0, 100]


def test_pdo_scaling():
    levels = pd.DataFrame({"criterion": ["a", "a", "a"], "value": ["x", "y", MISSING], "kind": "category",
                           "coef": [math.log(2), 0, 0], "n_train": [5, 5, 5]})
    rows, info = points_rows(levels, scale="pdo", pdo=20)
    assert rows.set_index("value")["points"]["x"] == 20  # doubling the odds = pdo points
    with pytest.raises(LabError, match="pdo: must be positive"):
        points_rows(levels, scale="pdo", pdo=None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=2, max_size=8), st.floats(1, 60))
def test_rounding_never_reverses_order_within_a_criterion(coefs, factor):
    levels = pd.DataFrame({"criterion": "c", "value": [f"v{i}" for i in range(len(coefs))] + [MISSING],
                           "kind": "category", "coef": coefs + [0.0], "n_train": 1})
    if np.ptp(coefs + [0.0]) < 1e-6:
        return
    rows = points_rows(levels, scale="pdo", pdo=factor)[0].set_index("value")["points"]
    pts = np.array([rows.get(f"v{i}", 0.0) for i in range(len(coefs))])
    order = np.argsort(coefs)
    assert np.all(np.diff(pts[order]) >= 0)


def _population_metrics():
    """The metrics' population values for x ~ N(0, 1), p = expit(x - 1), y ~ Bernoulli(p),
    by quadrature: scorer 'b' ranks by x, scorer 'a' by round(4 x) (ties count one half);
    both predict the true p, so both share the true Brier score E[p (1 - p)] and log loss
    E[-p log p - (1 - p) log(1 - p)]."""
    from scipy import special, stats

    g = np.linspace(-9, 9, 360_001)
    dx = g[1] - g[0]
    phi, pg = stats.norm.pdf(g), special.expit(g - 1)
    f1, f0 = phi * pg, phi * (1 - pg)
    pi = f1.sum() * dx
    f1, f0 = f1 / (f1.sum() * dx), f0 / (f0.sum() * dx)

    def auc_ap(p1, p0):  # per ascending score level: positives' and negatives' mass
        auc = np.sum(p1 * (np.cumsum(p0) - p0 + 0.5 * p0))
        s1, s0 = p1[::-1].cumsum()[::-1], p0[::-1].cumsum()[::-1]  # at or above the level
        return auc, np.sum(p1 * pi * s1 / (pi * s1 + (1 - pi) * s0))

    k = np.round(g * 4)
    edges = np.flatnonzero(np.diff(k)) + 1
    auc_a, ap_a = auc_ap(np.add.reduceat(f1 * dx, np.r_[0, edges]), np.add.reduceat(f0 * dx, np.r_[0, edges]))
    auc_b, ap_b = auc_ap(f1 * dx, f0 * dx)
    brier = np.sum(phi * pg * (1 - pg)) * dx
    ll = np.sum(phi * -(pg * np.log(pg) + (1 - pg) * np.log1p(-pg))) * dx
    return {("a", "roc_auc"): auc_a, ("a", "pr_auc"): ap_a, ("b", "roc_auc"): auc_b, ("b", "pr_auc"): ap_b,
            ("a", "brier"): brier, ("b", "brier"): brier, ("a", "log_loss"): ll, ("b", "log_loss"): ll}


def test_diagnostics_match_sklearn_and_cis_cover_population_values():
    rng = np.random.default_rng(3)
    x = rng.normal(size=4000)
    p = 1 / (1 + np.exp(-(x - 1)))
    y = (rng.random(4000) < p).astype(int)
    s = np.round(x * 4) + 55  # a points score across the seeds' nurture and mql bands
    d = evaluate(y, {"a": {"score": s, "proba": p, "points": True}, "b": {"score": x, "proba": p}},
                 reference="a", n_boot=100)
    m = d.metrics.set_index(["model", "metric"])
    assert m.loc[("a", "roc_auc"), "estimate"] == pytest.approx(roc_auc_score(y, s))
    assert m.loc[("a", "pr_auc"), "estimate"] == pytest.approx(average_precision_score(y, s))
    assert m.loc[("b", "brier"), "estimate"] == pytest.approx(brier_score_loss(y, p))
    assert m.loc[("b", "log_loss"), "estimate"] == pytest.approx(log_loss(y, p))
    # Each bootstrap 95% interval holds the metric's population value.
    for key, true in _population_metrics().items():
        assert m.loc[key, "lo"] <= true <= m.loc[key, "hi"], (key, true, m.loc[key].to_dict())
    # Same probabilities -> paired Brier difference is exactly zero in every resample.
    dl = d.deltas.set_index("metric")
    assert abs(dl.loc["brier", "lo"]) < 1e-12 and abs(dl.loc["brier", "hi"]) < 1e-12
    # Lift deciles hold a tenth each (ties in 'a' are split at the decile boundaries); a
    # calibrated model's reliability is near the diagonal.
    assert (d.lift["n"] == 400).all() and len(d.lift) == 20
    rel = d.reliability[d.reliability.model == "b"]
    assert np.max(np.abs(rel.observed - rel.mean_predicted)) < 0.08
    # Bands by the seeds' cut-offs (45 / 60 / 75): sizes and rates counted directly.
    bands = d.bands[d.bands.model == "a"].set_index("band")
    for band, inside in (("hot", s >= 75), ("mql", (s >= 60) & (s < 75)), ("nurture", (s >= 45) & (s < 60)),
                         ("cold", s < 45)):
        assert bands.loc[band, "n"] == inside.sum(), band
        if inside.any():
            assert bands.loc[band, "rate"] == pytest.approx(y[inside].mean()), band


def test_thresholds_respect_capacity_and_maximise_pipeline():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 100, 5000).astype(float)
    y = (rng.random(5000) < s / 120).astype(int)
    curve = threshold_curve(s, y, weekly_volume=1000)
    assert curve["qualified_per_week"].is_monotonic_decreasing
    assert set(curve.loc[curve.seed_band != "", "cutoff"]) == {75.0, 60.0, 45.0}
    choice = choose_thresholds(s, y, weekly_volume=1000, capacity=300, hot_capacity=100)
    th = choice.thresholds
    c = choice.curve.set_index("cutoff")
    assert c.loc[th.mql, "routed_per_week"] <= 300 < c.loc[th.mql - 1, "routed_per_week"]
    assert c.loc[th.hot, "routed_per_week"] <= 100 < c.loc[th.hot - 1, "routed_per_week"]
    assert th.nurture == th.mql - 15
    with pytest.raises(LabError, match="capacity must be positive"):
        choose_thresholds(s, y, 1000, 0)


def test_psi_and_migration():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    assert psi([0.5, 0.5], [0.9, 0.1]) > 0.25
    mig = band_migration(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]))
    assert np.trace(mig.to_numpy()) == 4


def test_plots_return_figures():
    from calibration import plots
    rng = np.random.default_rng(0)
    x = rng.normal(size=800)
    y = (rng.random(800) < 1 / (1 + np.exp(-x))).astype(int)
    d = evaluate(y, {"m": {"score": x, "proba": 1 / (1 + np.exp(-x))}}, n_boot=20)
    curve = choose_thresholds(np.round(x * 20 + 50), y, 100, 40).curve
    changes = pd.DataFrame({"criterion": ["a", "b"], "value": ["x", "y"], "change": [3.0, -2.0]})
    rel = plots.reliability(d.reliability).axes[0]
    assert len(rel.containers) == 1  # one error-bar series per model
    np.testing.assert_allclose(np.asarray(rel.containers[0].lines[0].get_xdata(), float),
                               d.reliability["mean_predicted"])
    bars = plots.lift(d.lift).axes[0].patches
    np.testing.assert_allclose([b.get_height() for b in bars], d.lift["lift"])
    ax = plots.threshold_curve(curve, 40).axes[0]
    np.testing.assert_allclose(np.asarray(ax.lines[0].get_xdata(), float), curve["routed_per_week"])
    assert any(list(line.get_xdata()) == [40, 40] for line in ax.lines[1:])  # the capacity line
    widths = [b.get_width() for b in plots.points_changes(changes).axes[0].patches]
    assert widths == [-2.0, 3.0]  # largest change at the top
