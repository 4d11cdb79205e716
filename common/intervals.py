"""Every interval the lab reports, in one place, so that a figure from few data points
always carries its uncertainty the same way.

Rules (DEVELOPERS.md, "honest numbers"):

- Below 2 observations a mean has no interval: ``low`` and ``high`` are NaN, shown
  as "n/a", never ``[x, x]``.
- A KPI with bounds (a share in [0, 1], a count or an amount at or above 0) gets an
  interval inside those bounds.
- A group smaller than ``SMALL_N`` is flagged (``small_n``) in every table that shows it:
  its normal-theory interval is rough and its estimate moves a lot from quarter to quarter.

Which interval for which figure:

========================================  ===============================================
mean over replications (or paired diffs)  Student t: ``mean +- t(n-1) sd / sqrt(n)``
proportion ``k / n`` of one sample        Wilson score interval (Wilson 1927; Brown, Cai
                                          & DasGupta 2001 recommend it over Wald)
Poisson count ``k`` over an exposure      exact (Garwood 1936): chi-square quantiles
sample quantile                           distribution-free, from order statistics
exponential mean with censoring           exact chi-square on the number of events
standard deviation of a normal sample     chi-square on the variance
Wald interval of a fitted parameter       ``normal_quantile`` (z) times its standard error
========================================  ===============================================
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95
SMALL_N = 30


def normal_quantile(level: float = LEVEL) -> float:
    """z such that +-z holds ``level`` of a standard normal (1.96 for 95%): Wald intervals."""
    return float(stats.norm.ppf(0.5 + level / 2))


def small_n(n) -> np.ndarray | bool:
    """True where a group has fewer than ``SMALL_N`` observations."""
    return np.asarray(n) < SMALL_N if np.ndim(n) else bool(n < SMALL_N)


def t_half_width(sd, n, level: float = LEVEL):
    """Half-width ``t(n-1) sd / sqrt(n)``; NaN where ``n < 2`` (no spread to measure)."""
    sd = np.asarray(sd, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.t.ppf(0.5 + level / 2, np.where(n >= 2, n - 1, np.nan))
        half = t * sd / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return float(half) if half.ndim == 0 else half


def mean_interval(x, level: float = LEVEL, lower: float | None = None,
                  upper: float | None = None) -> tuple[float, float, float, int]:
    """Mean of ``x`` (NaNs dropped) with its t-interval, cut to ``[lower, upper]``.

    Returns ``(mean, low, high, n)``; ``low``/``high`` are NaN below 2 values."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(x.mean())
    half = t_half_width(x.std(ddof=1) if n > 1 else math.nan, n, level)
    lo, hi = clip_interval(m - half, m + half, lower, upper)
    return m, float(lo), float(hi), n


def clip_interval(low, high, lower: float | None = None, upper: float | None = None):
    """Cut an interval to what the quantity can take (NaN stays NaN)."""
    low = np.asarray(low, dtype=float)
    high = np.asarray(high, dtype=float)
    if lower is not None:
        low = np.where(np.isnan(low), low, np.maximum(low, lower))
        high = np.where(np.isnan(high), high, np.maximum(high, lower))
    if upper is not None:
        low = np.where(np.isnan(low), low, np.minimum(low, upper))
        high = np.where(np.isnan(high), high, np.minimum(high, upper))
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def summarise_means(frame: pd.DataFrame, by: list[str], value_cols: list[str], level: float = LEVEL,
                    bounds: dict[str, tuple[float | None, float | None]] | None = None) -> pd.DataFrame:
    """Mean and t-interval of each of ``value_cols`` per group of ``by``: one row per
    (group, column) with ``kpi, mean, sd, n, ci_low, ci_high, small_n``.

    ``bounds`` maps a column to the range its interval is cut to (see ``clip_interval``)."""
    long = frame.melt(id_vars=by, value_vars=value_cols, var_name="kpi", value_name="value")
    long["value"] = long["value"].astype(float)
    g = long.groupby(by + ["kpi"], sort=False)["value"]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    half = t_half_width(out["sd"].to_numpy(), out["n"].to_numpy(), level)
    lo = out["mean"].to_numpy() - half
    hi = out["mean"].to_numpy() + half
    bounds = bounds or {}
    for j, k in enumerate(out["kpi"]):
        b = bounds.get(k)
        if b is not None:
            lo[j], hi[j] = clip_interval(lo[j], hi[j], *b)
    out["ci_low"], out["ci_high"] = lo, hi
    out["small_n"] = small_n(out["n"].to_numpy())
    return out


def proportion_interval(k, n, level: float = LEVEL) -> tuple[float, float, float]:
    """Proportion ``k / n`` with its Wilson score interval; NaNs when ``n = 0``."""
    k, n = float(k), float(n)
    if n <= 0:
        return math.nan, math.nan, math.nan
    z = normal_quantile(level)
    p = k / n
    den = 1 + z**2 / n
    mid = (p + z**2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n * n)) / den
    return p, max(0.0, mid - half), min(1.0, mid + half)


def poisson_rate_interval(k, exposure, level: float = LEVEL) -> tuple[float, float, float]:
    """Rate ``k / exposure`` of a Poisson count with the exact (Garwood) interval."""
    k = int(k)
    a = 1 - level
    lo = stats.chi2.ppf(a / 2, 2 * k) / 2 if k > 0 else 0.0
    hi = stats.chi2.ppf(1 - a / 2, 2 * k + 2) / 2
    return k / exposure, float(lo) / exposure, float(hi) / exposure


def poisson_sum_interval(values, exposure: float = 1.0, level: float = LEVEL) -> tuple[float, float, float]:
    """Total of ``values`` per ``exposure`` when the number of values is a Poisson count
    (a compound Poisson sum: pipeline is the amounts of a random number of
    opportunities), with the gamma interval of Fay and Feuer (1997, Statistics in
    Medicine 16:791) for weighted Poisson sums: the lower end from a gamma with the sum's
    mean and variance (sum of squares), the upper end with one more largest value added.

    The normal interval on the same variance covered 93.3% at a 95% level on lognormal
    amounts (sigma 0.8, 60 opportunities); this one covers 97% there
    (``tests/test_intervals.py``). With a dozen opportunities or fewer and very skewed
    amounts (sigma 1.2) it falls to about 89%. NaN below 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    y = float(x.sum())
    total = y / exposure
    if x.size < 2 or y <= 0:
        return total, math.nan, math.nan
    v, top = float((x ** 2).sum()), float(x.max())
    a = 1 - level
    lo = stats.gamma.ppf(a / 2, y * y / v, scale=v / y)
    hi = stats.gamma.ppf(1 - a / 2, (y + top) ** 2 / (v + top * top), scale=(v + top * top) / (y + top))
    return total, float(lo) / exposure, float(hi) / exposure


def quantile_interval(x, q: float, level: float = LEVEL) -> tuple[float, float, float]:
    """Sample quantile with a distribution-free interval from order statistics (the
    ranks between which the ``q`` quantile lies with probability ``level``, binomial)."""
    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    a = 1 - level
    lo = int(stats.binom.ppf(a / 2, n, q))
    hi = int(stats.binom.ppf(1 - a / 2, n, q))
    return float(np.quantile(x, q)), float(x[max(lo - 1, 0)]), float(x[min(hi, n - 1)])


def exponential_mean_interval(durations, exposures=(), level: float = LEVEL) -> tuple[float, float, float, int]:
    """Mean of an exponential duration from observed ``durations`` and right-censored
    ``exposures`` (MLE: total time at risk / events) with the exact chi-square interval
    on the number of events. Returns ``(mean, low, high, events)``."""
    k = int(np.size(durations))
    total = float(np.sum(durations) + np.sum(exposures))
    if k == 0:
        return math.nan, math.nan, math.nan, 0
    a = 1 - level
    return total / k, 2 * total / stats.chi2.ppf(1 - a / 2, 2 * k), 2 * total / stats.chi2.ppf(a / 2, 2 * k), k


def sd_interval(sd: float, dof: int, level: float = LEVEL) -> tuple[float, float]:
    """Interval for a normal standard deviation estimated with ``dof`` degrees of freedom
    (chi-square on the variance: ``sd * sqrt(dof / chi2(1 - a/2, dof))`` .. ``a/2``)."""
    if dof < 1:
        return math.nan, math.nan
    a = 1 - level
    return sd * math.sqrt(dof / stats.chi2.ppf(1 - a / 2, dof)), sd * math.sqrt(dof / stats.chi2.ppf(a / 2, dof))


def format_interval(low, high, fmt=lambda v: f"{v:,.3g}") -> str:
    """``[low, high]`` or ``n/a`` when there is no interval."""
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)) \
            or (isinstance(high, float) and math.isnan(high)):
        return "n/a"
    return f"[{fmt(low)}, {fmt(high)}]"
