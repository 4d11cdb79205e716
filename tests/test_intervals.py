"""common/intervals.py: each interval has the coverage its theory promises, and the rules
(n/a below 2 observations, bounds, small groups) hold.

Coverage checks simulate 2000 intervals with a fixed seed; the observed coverage of a
95% interval then has a binomial sd of sqrt(0.95 * 0.05 / 2000) = 0.0049, and is
accepted within 3 sd of what the theory gives (0.95, or the interval's exact coverage
where it is discrete)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from common.intervals import (
    SMALL_N,
    clip_interval,
    exponential_mean_interval,
    format_interval,
    mean_interval,
    poisson_rate_interval,
    proportion_interval,
    quantile_interval,
    small_n,
    summarise_means,
    t_half_width,
)

DRAWS = 2000
SD = math.sqrt(0.95 * 0.05 / DRAWS)


# ------------------------------------------------------------------ t-interval of a mean


def test_t_interval_covers_a_normal_mean_95_percent_with_five_observations():
    rng = np.random.default_rng(20240601)
    mu, sigma = 10.0, 3.0
    x = rng.normal(mu, sigma, size=(DRAWS, 5))
    inside = 0
    for row in x:
        _, lo, hi, n = mean_interval(row)
        assert n == 5
        inside += lo <= mu <= hi
    assert abs(inside / DRAWS - 0.95) <= 3 * SD, inside / DRAWS
    # The normal z (1.96) would undercover badly with 4 degrees of freedom: t(4) = 2.776.
    assert t_half_width(1.0, 5) == pytest.approx(2.7764451 / math.sqrt(5), rel=1e-6)


def test_below_two_observations_a_mean_has_no_interval():
    assert math.isnan(t_half_width(2.0, 1))
    m, lo, hi, n = mean_interval([4.2])
    assert (m, n) == (4.2, 1) and math.isnan(lo) and math.isnan(hi)
    m, lo, hi, n = mean_interval([np.nan, 7.0, np.nan])  # NaNs are not observations
    assert (m, n) == (7.0, 1) and math.isnan(lo) and math.isnan(hi)
    m, lo, hi, n = mean_interval([])
    assert n == 0 and all(math.isnan(v) for v in (m, lo, hi))
    assert format_interval(lo, hi) == "n/a"
    assert format_interval(1.0, 2.5) == "[1, 2.5]"
    half = t_half_width(np.array([1.0, 1.0, 1.0]), np.array([1, 2, 3]))
    assert math.isnan(half[0]) and half[1] == pytest.approx(stats.t.ppf(0.975, 1) / math.sqrt(2))


def test_summarise_means_flags_small_groups_and_gives_na_for_one_replication():
    frame = pd.DataFrame({"policy": ["a"] * 3 + ["b"], "share": [0.98, 0.99, 1.0, 0.5], "count": [1, 2, 0, 4]})
    out = summarise_means(frame, ["policy"], ["share", "count"], bounds={"share": (0, 1), "count": (0, None)})
    out = out.set_index(["policy", "kpi"])
    b = out.loc[("b", "share")]
    assert b["n"] == 1 and math.isnan(b["ci_low"]) and math.isnan(b["ci_high"])
    a = out.loc[("a", "share")]
    # mean 0.99, t(2) sd / sqrt(3) = 4.303 * 0.01 / 1.732 = 0.0248: the upper end is cut at 1.
    assert a["ci_low"] == pytest.approx(0.99 - stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3))
    assert a["ci_high"] == 1.0
    assert out.loc[("a", "count"), "ci_low"] == 0.0  # mean 1 - 2.48 would be negative
    assert out["small_n"].all()  # 3 and 1 replications, both below SMALL_N
    assert list(out.columns[-3:]) == ["ci_low", "ci_high", "small_n"]


def test_clip_interval_respects_bounds_and_keeps_nan():
    assert clip_interval(-0.2, 1.3, 0.0, 1.0) == (0.0, 1.0)
    assert clip_interval(-5.0, -1.0, 0.0) == (0.0, 0.0)
    lo, hi = clip_interval(math.nan, math.nan, 0.0, 1.0)
    assert math.isnan(lo) and math.isnan(hi)
    lo, hi = clip_interval(np.array([-1.0, 0.2]), np.array([0.5, 2.0]), 0.0, 1.0)
    np.testing.assert_array_equal(lo, [0.0, 0.2])
    np.testing.assert_array_equal(hi, [0.5, 1.0])
    _, lo, hi, _ = mean_interval([0.0, 0.0, 3.0], lower=0.0)
    assert lo == 0.0 and hi == pytest.approx(1 + stats.t.ppf(0.975, 2) * math.sqrt(3) / math.sqrt(3))


def test_small_n_threshold():
    assert SMALL_N == 30
    assert small_n(29) is True and small_n(30) is False
    np.testing.assert_array_equal(small_n(np.array([0, 29, 30, 1000])), [True, True, False, False])


# ------------------------------------------------------------------ Wilson


@pytest.mark.parametrize("n", [1, 5, 30])
def test_wilson_stays_inside_zero_one_at_the_edges(n):
    # The score interval's end at k = 0 (k = n) is 0 (1) exactly in theory; in floating
    # point it may land one ulp inside, never outside.
    p, lo, hi = proportion_interval(0, n)
    assert p == 0.0 and 0.0 <= lo <= 1e-12 and 0.0 < hi < 1.0
    p, lo, hi = proportion_interval(n, n)
    assert p == 1.0 and 1.0 - 1e-12 <= hi <= 1.0 and 0.0 < lo < 1.0
    # k = 0 of n: the upper end is z^2 / (n + z^2) (Wilson 1927).
    z = stats.norm.ppf(0.975)
    assert proportion_interval(0, n)[2] == pytest.approx(z**2 / (n + z**2))
    assert all(math.isnan(v) for v in proportion_interval(0, 0))


def test_wilson_coverage_is_near_95_percent():
    # Simulated: n = 50, p = 0.2.
    rng = np.random.default_rng(7)
    n, p = 50, 0.2
    k = rng.binomial(n, p, DRAWS)
    inside = sum(lo <= p <= hi for _, lo, hi in (proportion_interval(int(x), n) for x in k))
    assert abs(inside / DRAWS - 0.95) <= 3 * SD, inside / DRAWS
    # Exact: the coverage of a discrete interval oscillates with p; averaged over p in
    # [0.1, 0.9] Wilson's is close to nominal, and its dips stay above 0.92 for n >= 30
    # (Brown, Cai & DasGupta 2001, fig. 4-5).
    for n in (30, 50, 100):
        ks = np.arange(n + 1)
        iv = np.array([proportion_interval(int(x), n)[1:] for x in ks])
        ps = np.linspace(0.1, 0.9, 161)
        cov = np.array([stats.binom.pmf(ks, n, q)[(iv[:, 0] <= q) & (q <= iv[:, 1])].sum() for q in ps])
        assert abs(cov.mean() - 0.95) < 0.005, (n, cov.mean())
        assert cov.min() > 0.92, (n, cov.min())


def test_bonferroni_level_widens_the_interval():
    _, lo, hi = proportion_interval(30, 100)
    _, jlo, jhi = proportion_interval(30, 100, level=1 - 0.05 / 5)
    assert jlo < lo and hi < jhi


# ------------------------------------------------------------------ exact Poisson


def test_exact_poisson_interval_matches_the_tables():
    # Garwood (1936) 95% limits, as tabulated (e.g. Ulm 1990; Sahai & Khurshid 1993).
    assert poisson_rate_interval(0, 1.0) == pytest.approx((0.0, 0.0, 3.689), abs=1e-3)
    est, lo, hi = poisson_rate_interval(10, 1.0)
    assert est == 10 and lo == pytest.approx(4.795, abs=1e-3) and hi == pytest.approx(18.39, abs=1e-2)
    # A rate over an exposure divides the count's limits by the exposure.
    assert poisson_rate_interval(10, 4.0) == pytest.approx((2.5, 4.795 / 4, 18.39 / 4), abs=3e-3)


def test_exact_poisson_interval_covers_at_least_95_percent():
    rng = np.random.default_rng(11)
    mu = 4.0
    k = rng.poisson(mu, DRAWS)
    inside = np.mean([lo <= mu <= hi for _, lo, hi in (poisson_rate_interval(int(x), 1.0) for x in k)])
    # Exact intervals are conservative: coverage is at least 95%.
    exact = sum(stats.poisson.pmf(x, mu) for x in range(60)
                if poisson_rate_interval(x, 1.0)[1] <= mu <= poisson_rate_interval(x, 1.0)[2])
    assert exact >= 0.95
    assert abs(inside - exact) <= 3 * math.sqrt(exact * (1 - exact) / DRAWS), (inside, exact)


# ------------------------------------------------------------------ order statistics


def test_quantile_interval_covers_the_true_median():
    rng = np.random.default_rng(5)
    n = 25
    x = rng.exponential(1.0, size=(DRAWS, n))
    median = math.log(2.0)
    inside = np.mean([lo <= median <= hi for _, lo, hi in (quantile_interval(row, 0.5) for row in x)])
    # The interval [X(r), X(s)] holds the median with probability P(r <= B <= s - 1),
    # B ~ Binomial(n, 1/2), whatever the distribution: >= 95% by construction.
    r = int(stats.binom.ppf(0.025, n, 0.5))
    s = int(stats.binom.ppf(0.975, n, 0.5)) + 1
    exact = stats.binom.cdf(s - 1, n, 0.5) - stats.binom.cdf(r - 1, n, 0.5)
    assert exact >= 0.95
    assert abs(inside - exact) <= 3 * math.sqrt(exact * (1 - exact) / DRAWS), (inside, exact)
    assert all(math.isnan(v) for v in quantile_interval([], 0.5))


# ------------------------------------------------------------------ censored exponential


def test_exponential_mean_interval_is_exact():
    rng = np.random.default_rng(3)
    theta = 20.0
    x = rng.exponential(theta, size=(DRAWS, 6))
    inside = np.mean([lo <= theta <= hi for _, lo, hi, _ in (exponential_mean_interval(row) for row in x)])
    assert abs(inside - 0.95) <= 3 * SD, inside
    # Censored exposures add time at risk, not events.
    m, lo, hi, k = exponential_mean_interval([10.0, 30.0], [60.0])
    assert (m, k) == (50.0, 2)
    assert lo == pytest.approx(200 / stats.chi2.ppf(0.975, 4)) and hi == pytest.approx(200 / stats.chi2.ppf(0.025, 4))
    m, lo, hi, k = exponential_mean_interval([], [5.0, 7.0])
    assert k == 0 and math.isnan(m) and format_interval(lo, hi) == "n/a"


# ------------------------------------------------------------------ callers


def test_effects_interval_is_the_paired_t_interval_and_na_below_two_pairs():
    from lab.story import effects

    kpis = pd.DataFrame({"policy": ["baseline"] * 3 + ["fast"] * 3, "replication": [0, 1, 2] * 2,
                         "sql_count": [10.0, 12.0, 14.0, 9.0, 12.5, 12.0]})
    row = effects(kpis, "fast", names=["sql_count"]).iloc[0]
    d = np.array([-1.0, 0.5, -2.0])  # paired differences: may be negative, no bounds
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert row["n"] == 3 and row["effect"] == pytest.approx(d.mean())
    assert row["low"] == pytest.approx(d.mean() - half) and row["high"] == pytest.approx(d.mean() + half)
    assert row["low"] < 0
    one = effects(kpis[kpis["replication"] == 0], "fast", names=["sql_count"]).iloc[0]
    assert one["n"] == 1 and one["effect"] == -1.0 and math.isnan(one["low"]) and math.isnan(one["high"])


def test_story_bounds_cut_intervals_to_what_a_kpi_can_take():
    from lab.story import _bounds

    assert _bounds("sla_attainment", -0.1, 1.2) == (0.0, 1.0)  # a share
    assert _bounds("sql_count", -3.0, 5.0) == (0.0, 5.0)       # a count
    assert _bounds("unknown_kpi", -3.0, 5.0) == (-3.0, 5.0)    # no known bounds
    lo, hi = _bounds("pipeline_usd", math.nan, math.nan)       # n/a stays n/a
    assert math.isnan(lo) and math.isnan(hi)


def test_compound_poisson_sum_interval_covers_the_true_total_at_least_95_percent():
    # Pipeline: a Poisson number of opportunities (mean 60 over the exposure) with
    # lognormal amounts (median $30k, sigma 0.8: more skewed than the baseline's 0.5). The true
    # total per exposure is 60 x E[amount]. Fay and Feuer's gamma interval is
    # conservative: over 4,000 draws it must cover at least 95% (less 3 binomial sd,
    # 1.0 point) and not be uselessly wide (below 99%). The normal interval on the same
    # variance covers 93.3% here and fails the first bound.
    from common.intervals import poisson_sum_interval

    rng = np.random.default_rng(12)
    truth = 60 * 30_000 * np.exp(0.8 ** 2 / 2) / 2.0
    hits = 0
    for _ in range(4000):
        a = 30_000 * np.exp(0.8 * rng.standard_normal(rng.poisson(60)))
        _, lo, hi = poisson_sum_interval(a, 2.0)
        hits += lo <= truth <= hi
    assert 0.95 - 3 * math.sqrt(0.95 * 0.05 / 4000) <= hits / 4000 < 0.99
