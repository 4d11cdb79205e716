"""The speed-to-lead curve as an export shows it: the probability that a routed lead is
qualified as a function of its first-touch delay, per score band, fitted by maximum
likelihood with Wald intervals (see ``calibration.history`` for what an export can and
cannot tell about it)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from common.errors import LabError
from common.intervals import LEVEL, clip_interval, normal_quantile
from sim.scenario import BANDS_ROUTED

Z = normal_quantile(LEVEL)  # normal quantile of the decay fit's Wald intervals (the helper's z for LEVEL)


@dataclass
class DecayFit:
    """``P(qualified | band, d) = p_band * (1 + d / d0) ** -alpha``, fitted by maximum
    likelihood; ``cov_`` is the covariance of ``theta_`` = (logit p_band..., log d0,
    log alpha)."""

    bands: list[str]
    theta_: np.ndarray
    cov_: np.ndarray
    n_: int
    loglik_: float

    @property
    def d0(self) -> float:
        return float(math.exp(self.theta_[-2]))

    @property
    def alpha(self) -> float:
        return float(math.exp(self.theta_[-1]))

    def p(self, band: str) -> float:
        return float(special.expit(self.theta_[self.bands.index(band)]))

    def table(self) -> pd.DataFrame:
        """parameter / estimate / se (on the fitting scale) / 95% Wald interval."""
        se = np.sqrt(np.clip(np.diag(self.cov_), 0, None))
        rows = []
        for j, b in enumerate(self.bands):
            t = self.theta_[j]
            rows.append(dict(parameter=f"p_{b}", estimate=special.expit(t), se_link=se[j],
                             ci_low=special.expit(t - Z * se[j]), ci_high=special.expit(t + Z * se[j])))
        for j, name in ((-2, "d0_minutes"), (-1, "alpha")):
            t = self.theta_[j]
            with np.errstate(over="ignore"):  # a flat curve: d0 and its interval run off to inf
                lo, est, hi = np.exp([t - Z * se[j], t, t + Z * se[j]])
            rows.append(dict(parameter=name, estimate=float(est), se_link=se[j], ci_low=float(lo), ci_high=float(hi)))
        return pd.DataFrame(rows)

    def curve(self, d) -> pd.DataFrame:
        """Q(d) with a pointwise 95% interval (delta method on log Q)."""
        d = np.asarray(d, dtype=float)
        a, d0 = self.alpha, self.d0
        logq = -a * np.log1p(d / d0)
        g_d0 = a * (d / d0) / (1 + d / d0)  # d log Q / d log d0
        g_a = logq                          # d log Q / d log alpha
        V = self.cov_[-2:, -2:]
        var = g_d0**2 * V[0, 0] + 2 * g_d0 * g_a * V[0, 1] + g_a**2 * V[1, 1]
        se = np.sqrt(np.clip(var, 0, None))
        lo, hi = clip_interval(np.exp(logq - Z * se), np.exp(logq + Z * se), 0.0, 1.0)
        return pd.DataFrame({"delay_minutes": d, "q": np.exp(logq), "ci_low": lo, "ci_high": hi})


def _hessian(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    k = x.size
    H = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            H[i, j] = H[j, i] = (f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)) / (4 * h * h)
    return H


def fit_decay(delay_minutes, band, qualified, bands=BANDS_ROUTED) -> DecayFit:
    """Maximum-likelihood fit of the band-controlled power-law decay (see ``DecayFit``).

    Raises ``LabError`` when there are too few qualified leads, or no spread of delays,
    to identify the curve."""
    d = np.clip(np.asarray(delay_minutes, dtype=float), 0, None)
    b = np.asarray(band, dtype=object)
    y = np.asarray(qualified, dtype=float)
    bands = [x for x in bands if (b == x).any()]
    if y.sum() < 20 or (1 - y).sum() < 20 or not bands:
        raise LabError(f"decay fit: {int(y.sum())} qualified of {y.size} mature routed leads with a first touch "
                       "(rule: at least 20 qualified and 20 not qualified)")
    if np.mean(d > 60) < 0.02:
        raise LabError(f"decay fit: only {np.mean(d > 60):.1%} of first touches came after an hour "
                       "(rule: at least 2%); the delays do not spread enough to identify the decay")
    idx = np.array([bands.index(x) if x in bands else -1 for x in b])
    keep = idx >= 0
    d, y, idx = d[keep], y[keep], idx[keep]
    nb = len(bands)

    def nll(th):
        logp = -np.logaddexp(0, -th[:nb])[idx]  # log expit
        logq = -math.exp(th[-1]) * np.log1p(d / math.exp(th[-2]))
        lp = np.minimum(logp + logq, -1e-12)
        return -float(np.sum(y * lp + (1 - y) * np.log(-np.expm1(lp))))

    x0 = np.concatenate([special.logit(np.clip([y[idx == j].mean() * 1.2 for j in range(nb)], 0.01, 0.99)),
                         [math.log(max(np.median(d[d > 0]) if (d > 0).any() else 60.0, 1.0)), 0.0]])
    best = None
    for start_d0 in (x0[-2], math.log(30.0), math.log(600.0)):  # a few starts: d0 and alpha trade off
        x = x0.copy()
        x[-2] = start_d0
        res = optimize.minimize(nll, x, method="BFGS", options={"gtol": 1e-7, "maxiter": 2000})
        res = optimize.minimize(nll, res.x, method="Nelder-Mead",
                                options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
        if best is None or res.fun < best.fun:
            best = res
    H = _hessian(nll, best.x)
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        cov = np.full_like(H, np.nan)
    if not np.all(np.isfinite(np.diag(cov))) or np.any(np.diag(cov) < 0):
        cov = np.linalg.pinv(H)
    return DecayFit(bands=bands, theta_=best.x, cov_=cov, n_=int(y.size), loglik_=-float(best.fun))
