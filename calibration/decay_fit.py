"""The speed-to-lead curve as an export shows it: the probability that a routed lead is
qualified as a function of its first-touch delay, per score band, fitted by maximum
likelihood with Wald intervals (see ``calibration.history`` for what an export can and
cannot tell about it).

The model (``sim.decay``'s attempt rules, with the contact side assumed): a lead first
touched at delay ``d1`` is called at ``d_j = d1 + o_j`` (``o_j`` the cadence's offsets,
``sim.scenario.Team.attempt_offsets_minutes``) until it answers, each call answering
with odds ``pc * C(d_j)``; once it answers at call ``j`` it is qualified with odds
``(pq / pc) * Q(d1)``. Hence::

    P(qualified | band, d1) = pq * Q(d1) * K(d1),
    K(d1) = sum_j prod_{i<j} (1 - pc C(d_i)) * C(d_j)

``C``, ``pc`` and the offsets are taken as given (``AttemptRules``: an export has no
attempt log); ``log K`` enters the likelihood as a fixed offset, and only ``pq`` per band
and ``Q(d) = (1 + d / d0) ** -alpha`` are estimated. ``pq`` is fitted as
``pc * expit(theta)``, so that ``pq <= pc`` (a qualified lead was contacted)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from common.errors import LabError
from common.intervals import LEVEL, clip_interval, normal_quantile
from sim.scenario import BANDS_ROUTED, DecayCurve

Z = normal_quantile(LEVEL)  # normal quantile of the decay fit's Wald intervals (the helper's z for LEVEL)
#: The flat contact curve set aside the base's only when the export favours it by more
#: than this log-likelihood: with equal numbers of parameters the BIC approximation of
#: the log Bayes factor is the log-likelihood difference, and ``2 ln B > 10`` is "very
#: strong" evidence (Kass & Raftery 1995, J. Am. Stat. Assoc. 90:773, section 3.2).
LOG_BAYES_VERY_STRONG = 5.0


#: The largest ``d0`` fitted (minutes, about two years): beyond it the power law is its
#: exponential limit over any delay an export holds, and d0 and alpha are not separable.
FLAT_D0 = 1e6
#: Days after the cadence's last attempt that a first pass's hand-off may still come
#: (attempts wait in the queue for the team's hours: a weekend and a holiday).
FIRST_PASS_SLACK_DAYS = 3.0


def first_pass_qualified(df: pd.DataFrame, qualified: pd.Series, base, absent=frozenset()) -> tuple[pd.Series, str]:
    """Whether each lead was qualified on its first pass through the SDR queue (the
    outcome the decay model describes), and how that was read.

    With ``handoff_at``: handed to sales within the cadence's last attempt offset plus
    ``FIRST_PASS_SLACK_DAYS`` of the first touch; a later hand-off comes from a re-entry
    (nurture, recycling), whose first touch the export does not keep. (On the
    simulator's baseline history, 91 days, seed 7: this keeps 903 of 904 first-pass
    qualifications and takes in 11 later ones. Counting every pass, 93 leads qualified
    weeks later count at their first delay: of the leads first touched after an hour,
    4.6% "qualified" against 0.19% on the first pass and 0.24% by the model.) Without
    it: ``qualified`` (any pass), and the reason says so."""
    if {"handoff_at", "first_response_at"} & set(absent):
        return qualified, ("no handoff_at in this export: qualified on any pass (a re-entry from nurture or "
                           "recycling that qualified later counts against its first delay)")
    h = float(base.team.attempt_offsets_minutes()[-1]) / 1440.0 + FIRST_PASS_SLACK_DAYS
    gap = (df["handoff_at"] - df["first_response_at"]).dt.total_seconds() / 86400.0
    return (df["handoff_at"].notna() & (gap <= h)), (f"qualified on the first pass: handed to sales within {h:.3g} "
                                                     f"days of the first touch (the cadence's last attempt + "
                                                     f"{FIRST_PASS_SLACK_DAYS:g} days)")


@dataclass(frozen=True)
class AttemptRules:
    """The contact side of the decay, assumed (not fitted): contact curve ``C``, contact
    odds per band ``pc`` and the attempt offsets (minutes after the first touch)."""

    contact: DecayCurve
    contact_prob: dict
    offsets: tuple

    @classmethod
    def of(cls, scn, flat: bool = False) -> AttemptRules:
        """The rules of scenario ``scn`` (``flat``: with ``C = 1`` instead of its curve)."""
        return cls(DecayCurve(kind="none") if flat else scn.decay.contact, dict(scn.conversion.contact_prob),
                   tuple(float(o) for o in scn.team.attempt_offsets_minutes()))

    @property
    def flat(self) -> bool:
        return self.contact.kind == "none"

    def reach(self, band: str, d) -> np.ndarray:
        """``K(d)``: the expected sum over attempts of ``C(d_j)`` while not yet contacted
        (the recursion of ``sim.decay.expected_group_rates``), so that
        ``P(qualified | d) = pq Q(d) K(d)`` and ``pc K(d)`` is the odds of any contact."""
        d = np.asarray(d, dtype=float)
        pc = self.contact_prob[band]
        alive, k = np.ones_like(d), np.zeros_like(d)
        for o in self.offsets:
            c = self.contact(d + o)
            k = k + alive * c
            alive = alive * (1 - pc * c)
        return k


@dataclass
class DecayFit:
    """``P(qualified | band, d) = pq_band * Q(d) * K_band(d)``, ``Q(d) = (1 + d / d0) **
    -alpha``, fitted by maximum likelihood; ``K`` comes from ``rules`` (``None``: ``K = 1``
    and ``pq`` unbounded below 1, the curve as the export shows it). ``cov_`` is the
    covariance of ``theta_`` = (logit(pq_band / ceiling_band)..., log d0, log alpha)."""

    bands: list[str]
    theta_: np.ndarray
    cov_: np.ndarray
    n_: int
    loglik_: float
    rules: AttemptRules | None = None

    @property
    def d0(self) -> float:
        return float(math.exp(self.theta_[-2]))

    @property
    def alpha(self) -> float:
        return float(math.exp(self.theta_[-1]))

    @property
    def identified(self) -> bool:
        """Whether the data showed the power law's bend: ``d0`` below ``FLAT_D0`` minutes
        and a finite Wald covariance. Otherwise ``d0`` stopped at ``FLAT_D0`` (the curve is
        ``exp(-d alpha / d0)`` over any delay seen: flat, or exponential) and ``d0``,
        ``alpha`` have no meaningful interval."""
        se = np.diag(self.cov_)[-2:]
        return self.d0 < FLAT_D0 * (1 - 1e-9) and bool(np.all(np.isfinite(se)) and np.all(se > 0))

    def _scale(self, band: str) -> tuple[float, float]:
        """(ceiling of pq, K(0)) of ``band``."""
        if self.rules is None:
            return 1.0, 1.0
        return float(self.rules.contact_prob[band]), float(self.rules.reach(band, 0.0))

    def q(self, band: str, shift: float = 0.0) -> float:
        """The fitted qualify odds ``pq`` (``conversion.qualify_prob``); ``shift``: on the
        fitting scale, in standard errors."""
        j = self.bands.index(band)
        se = math.sqrt(max(self.cov_[j, j], 0.0)) if shift else 0.0
        return self._scale(band)[0] * float(special.expit(self.theta_[j] + shift * se))

    def p(self, band: str, shift: float = 0.0) -> float:
        """``P(qualified | band, d = 0)``: ``pq K(0)``."""
        return self.q(band, shift) * self._scale(band)[1]

    def table(self) -> pd.DataFrame:
        """parameter / estimate / se (on the fitting scale) / 95% Wald interval: ``p_band``
        (qualified at d = 0), ``d0_minutes`` and ``alpha``."""
        se = np.sqrt(np.clip(np.diag(self.cov_), 0, None))
        rows = []
        for j, b in enumerate(self.bands):
            rows.append(dict(parameter=f"p_{b}", estimate=self.p(b), se_link=se[j],
                             ci_low=self.p(b, -Z), ci_high=self.p(b, Z)))
        for j, name in ((-2, "d0_minutes"), (-1, "alpha")):
            t = self.theta_[j]
            with np.errstate(over="ignore"):  # a flat curve: d0 and its interval run off to inf
                lo, est, hi = np.exp([t - Z * se[j], t, t + Z * se[j]])
            if not self.identified:  # on a ridge at infinity the Wald interval means nothing
                lo = hi = math.nan
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


def fit_decay(delay_minutes, band, qualified, bands=BANDS_ROUTED, rules: AttemptRules | None = None) -> DecayFit:
    """Maximum-likelihood fit of the band-controlled power-law decay (see ``DecayFit``
    and the module docstring); ``rules``: the assumed contact side (``None``: ``K = 1``).

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
    # The fixed offset log(ceiling K(d1)) of each lead (0 without rules).
    offset = np.zeros_like(d)
    if rules is not None:
        for j, x in enumerate(bands):
            m = idx == j
            with np.errstate(divide="ignore"):
                offset[m] = np.log(rules.contact_prob[x] * rules.reach(x, d[m]))

    def nll(th):
        logp = -np.logaddexp(0, -th[:nb])[idx]  # log expit
        logq = -math.exp(th[-1]) * np.log1p(d / math.exp(th[-2]))
        lp = np.minimum(logp + logq + offset, -1e-12)
        return -float(np.sum(y * lp + (1 - y) * np.log(-np.expm1(lp))))

    # Start pq / ceiling at the qualified leads over their expected number with Q = 1 (ratio estimator).
    k0 = np.exp(offset)
    x0 = np.concatenate([special.logit(np.clip([y[idx == j].sum() / max(k0[idx == j].sum(), 1e-9) * 1.2
                                                for j in range(nb)], 0.01, 0.99)),
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
    x = best.x
    if x[-2] > math.log(FLAT_D0):
        # d0 and alpha run off together along the ridge (1 + d/d0)^-alpha -> exp(-d alpha/d0):
        # stop d0 at FLAT_D0 (the same curve over any delay seen) and refit the rest.
        cap = math.log(FLAT_D0)
        z0 = np.delete(x, -2)
        z0[-1] = x[-1] + cap - x[-2]  # keep alpha / d0
        res = optimize.minimize(lambda z: nll(np.insert(z, len(z) - 1, cap)), z0, method="Nelder-Mead",
                                options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
        x = np.insert(res.x, len(res.x) - 1, cap)
        best = optimize.OptimizeResult(x=x, fun=min(res.fun, nll(x)))
    H = _hessian(nll, best.x)
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        cov = np.full_like(H, np.nan)
    if not np.all(np.isfinite(np.diag(cov))) or np.any(np.diag(cov) < 0):
        cov = np.linalg.pinv(H)
    return DecayFit(bands=bands, theta_=best.x, cov_=cov, n_=int(y.size), loglik_=-float(best.fun), rules=rules)


def fit_qualification(delay_minutes, band, qualified, base) -> tuple[DecayFit, str]:
    """Fit ``Q`` and ``pq`` with the base scenario's attempt rules (``AttemptRules.of``).

    The base's contact curve is kept unless the export contradicts it: the same fit with
    a flat contact curve (``C = 1``, as many parameters) is tried too, and replaces it
    only when its log-likelihood is higher by more than ``LOG_BAYES_VERY_STRONG``.
    Returns the fit and a sentence saying which contact curve it rests on and why."""
    rules = AttemptRules.of(base)
    fit = fit_decay(delay_minutes, band, qualified, rules=rules)
    if rules.flat:
        return fit, "the base scenario has no contact curve (decay.contact none)"
    flat = fit_decay(delay_minutes, band, qualified, rules=AttemptRules.of(base, flat=True))
    gain = flat.loglik_ - fit.loglik_
    if gain > LOG_BAYES_VERY_STRONG:
        return flat, (f"the export contradicts the base scenario's contact curve ({base.decay.contact.kind}): "
                      f"a flat one fits it better by {gain:.1f} in log-likelihood (rule: keep the base's unless "
                      f"a flat curve gains more than {LOG_BAYES_VERY_STRONG:g}); contact curve set to none")
    return fit, (f"the base scenario's contact curve ({base.decay.contact.kind}); a flat one would change the "
                 f"log-likelihood by {gain:+.1f} (rule: kept unless it gains more than {LOG_BAYES_VERY_STRONG:g})")
