"""Erlang C and Erlang A: the queueing formulas workforce management staffs an interval with.

M/M/c: Poisson arrivals at ``rate_per_minute``, exponential handling of mean
``handling_minutes``, ``agents`` identical servers, first come first served, nobody
abandons. The offered load is ``a = rate_per_minute * handling_minutes`` erlangs; the
queue is stable when ``agents > a``. Formulas (Gross & Harris, Fundamentals of Queueing
Theory, section 2.3; Koole, Call Center Optimization, chapter 5):

* Erlang B by its recursion ``B(0) = 1``, ``B(k) = a B(k-1) / (k + a B(k-1))`` (stable
  for thousands of agents, unlike the factorial form);
* Erlang C, the probability of waiting, ``C = c B / (c - a (1 - B))``;
* service level, the probability of a first touch within ``t`` minutes,
  ``SL(t) = 1 - C exp(-(c - a) t / h)``;
* mean wait ``C h / (c - a)``.

Erlang A (Palm's M/M/n+M; Garnett, Mandelbaum & Reiman 2002, the model workforce
management uses when callers hang up) adds exponential patience of mean ``1/theta``: a
waiting arrival whose patience runs out leaves unserved, so any load is stable
(``erlang_a``; formulas in its docstring, checked against the birth-death chain solved
numerically in ``tests/test_staffing.py``).

**Which one the lab staffs with.** In the lab a lead never hangs up: its odds of being
reached decay with delay (``scenario.decay``), but a lead gone cold stays in the queue,
is still called, and costs *more* work (a no-contact touch, then follow-up attempts up to
``team.max_attempts``). Erlang A with a patience equal to the decay's half-life (2.6
minutes for the default contact curve) treats "gone cold" as abandonment: it takes the
cold leads' work off the queue, which the team in the lab still carries, and counts them
as missed, which the SLA measure does not (a late first touch is a miss either way). On
the baseline both give the same first guess (3 people on the day shift for
hot=5m@80%, mql=4h@90%; 2-3 agents an hour either way), while the simulation's cheapest
plan is 3 on the day shift and 2 at weekends (``benchmarks/results_staffing.md``): the
first guess errs by the backlog at opening, not by abandonment. So
``sim.staffing`` staffs with Erlang C by default, proposes a second set of plans that
staff the off-clock hours (the error that matters), and keeps Erlang A for teams whose
leads do drop out (``plan_staffing(patience_minutes=...)``, ``lab plan --patience``).
The lab's queues break both models' assumptions (business hours, several attempts per
lead, priorities, non-exponential handling), which is why ``sim.staffing`` uses them only
to propose plans and verifies every plan by simulation.
"""
from __future__ import annotations

import math

import numpy as np


def erlang_b(agents: int, load_erlangs: float) -> float:
    """Blocking probability of M/M/c/c (Erlang B) by the stable recursion."""
    if agents < 0 or load_erlangs < 0:
        raise ValueError(f"agents and load must be non-negative; got {agents}, {load_erlangs}")
    b = 1.0
    for k in range(1, agents + 1):
        b = load_erlangs * b / (k + load_erlangs * b)
    return b


def erlang_c(agents: int, load_erlangs: float) -> float:
    """Probability that an arrival waits in M/M/c (Erlang C); 1 when ``agents <= load``."""
    if load_erlangs <= 0:
        return 0.0
    if agents <= load_erlangs:
        return 1.0
    b = erlang_b(agents, load_erlangs)
    return agents * b / (agents - load_erlangs * (1.0 - b))


def service_level(agents: int, rate_per_minute: float, handling_minutes: float, within_minutes: float) -> float:
    """P(wait <= ``within_minutes``) in M/M/c; 0 when the queue is unstable."""
    a = rate_per_minute * handling_minutes
    if a <= 0:
        return 1.0
    if agents <= a:
        return 0.0
    return 1.0 - erlang_c(agents, a) * math.exp(-(agents - a) * within_minutes / handling_minutes)


def mean_wait_minutes(agents: int, rate_per_minute: float, handling_minutes: float) -> float:
    """Mean wait in M/M/c (inf when unstable)."""
    a = rate_per_minute * handling_minutes
    if a <= 0:
        return 0.0
    if agents <= a:
        return math.inf
    return erlang_c(agents, a) * handling_minutes / (agents - a)


# ---- Erlang A: M/M/n+M, arrivals who abandon ---------------------------------------------------
def _log_series(s: float, z: float) -> float:
    """``log M(s, z)``, ``M(s, z) = sum_{k>=0} z^k / ((s+1)(s+2)...(s+k))
    = e^z z^-s Gamma(s+1) P(s, z)`` (the confluent series of the regularised lower
    incomplete gamma function ``P``), in logs so that heavy loads do not overflow: by
    ``scipy.special.gammainc`` where ``P`` is representable, by the series (short there,
    as ``z`` is far below ``s``) where it underflows."""
    from scipy.special import gammainc, gammaln

    if z <= 0:
        return 0.0
    p = float(gammainc(s, z))
    if p > 1e-280:
        return z - s * math.log(z) + float(gammaln(s + 1.0)) + math.log(p)
    n = z + 12.0 * math.sqrt(z) + 60.0
    if s + 1.0 > z:  # terms fall at least by z / (s + 1) each: 50 nats is past double precision
        n = min(n, 60.0 + 50.0 / math.log((s + 1.0) / z))
    k = np.arange(1, int(n))
    terms = np.concatenate([[0.0], np.cumsum(math.log(z) - np.log(s + k))])
    top = terms.max()
    return float(top + math.log(np.exp(terms - top).sum()))


def erlang_a(agents: int, rate_per_minute: float, handling_minutes: float, patience_minutes: float,
             within_minutes: float | None = None) -> dict[str, float]:
    """Palm's M/M/n+M (Erlang A; Garnett, Mandelbaum & Reiman 2002): Poisson arrivals,
    exponential handling, ``agents`` servers and exponential patience of mean
    ``patience_minutes``; a waiting arrival whose patience runs out leaves unserved.

    Returns ``p_wait`` P(W > 0), ``p_abandon`` P(Ab), ``mean_wait_minutes`` (time in queue
    over all arrivals) and, with ``within_minutes`` = t, ``service_level``: the share of
    all arrivals answered within t (those who abandon count as missed). With
    ``x = n mu / theta``, ``y = lambda / theta``, ``rho = lambda / (n mu)``, Erlang B ``E``
    at ``a = lambda / mu``, ``M = M(x, y)`` (``_log_series``) and ``P(s, z)`` the
    regularised lower incomplete gamma function:

    * ``P(W > 0) = E M / (1 + (M - 1) E)``;
    * ``P(Ab | W > 0) = 1 - 1/rho + 1/(rho M)``; mean wait ``P(Ab) / theta`` (Little);
    * a waiting arrival's offered wait V has density proportional to
      ``exp(y (1 - e^{-theta v}) - n mu v)``, so answered within t with probability
      ``P(W > 0) / rho * (P(x+1, y) - P(x+1, y e^{-theta t})) / P(x, y)``.

    ``patience_minutes = math.inf`` gives Erlang C. Any load is stable: the impatient leave.
    """
    if not patience_minutes > 0:
        raise ValueError(f"patience_minutes must be positive; got {patience_minutes}")
    if agents < 0:
        raise ValueError(f"agents must be non-negative; got {agents}")
    lam = rate_per_minute
    a = lam * handling_minutes
    t = within_minutes
    if a <= 0:
        return {"p_wait": 0.0, "p_abandon": 0.0, "mean_wait_minutes": 0.0, "service_level": 1.0}
    if math.isinf(patience_minutes):
        return {"p_wait": erlang_c(agents, a), "p_abandon": 0.0,
                "mean_wait_minutes": mean_wait_minutes(agents, lam, handling_minutes),
                "service_level": None if t is None else service_level(agents, lam, handling_minutes, t)}
    theta = 1.0 / patience_minutes
    if agents == 0:  # everyone waits, nobody is answered
        return {"p_wait": 1.0, "p_abandon": 1.0, "mean_wait_minutes": patience_minutes,
                "service_level": None if t is None else 0.0}
    nmu = agents / handling_minutes
    x, y, rho = nmu / theta, lam / theta, lam / nmu
    e = erlang_b(agents, a)
    log_m = _log_series(x, y)
    # P(W > 0) = E M / (1 + (M - 1) E) = 1 / (1 + (1 - E) / (E M)), in logs for large M.
    p_wait = 0.0 if e <= 0 else 1.0 / (1.0 + math.exp(math.log1p(-e) - math.log(e) - log_m))
    p_ab = p_wait * (1.0 - 1.0 / rho + math.exp(-log_m) / rho)
    out = {"p_wait": p_wait, "p_abandon": p_ab, "mean_wait_minutes": p_ab / theta, "service_level": None}
    if t is not None:
        # (P(x+1, y) - P(x+1, z)) / P(x, y) = (1 - 1/M) - R(z), z = y e^{-theta t}, where
        # P(x+1, z) / P(x, y) = e^{-n mu t} z/(x+1) e^{y-z} M(x+1, z) / M(x, y).
        z = y * math.exp(-theta * t)
        log_r = -nmu * t + (math.log(z) if z > 0 else -math.inf) - math.log(x + 1.0) \
            - y * math.expm1(-theta * t) + _log_series(x + 1.0, z) - log_m
        answered = -math.expm1(-log_m) - math.exp(log_r)
        out["service_level"] = min(1.0, max(0.0, 1.0 - p_wait + p_wait / rho * answered))
    return out


def agents_for_service_level(rate_per_minute: float, handling_minutes: float, within_minutes: float,
                             target_share: float, max_agents: int = 100_000,
                             patience_minutes: float = math.inf) -> int:
    """Fewest agents whose service level reaches ``target_share`` of arrivals answered
    within ``within_minutes`` (0 when nothing arrives): Erlang C, or Erlang A when a
    finite ``patience_minutes`` is given (abandoning arrivals count as missed)."""
    if not 0.0 <= target_share < 1.0:
        raise ValueError(f"target_share must be in [0, 1); got {target_share}")
    a = rate_per_minute * handling_minutes
    if a <= 0:
        return 0
    if math.isinf(patience_minutes):
        c = max(1, math.floor(a) + 1)
        sl = lambda c: service_level(c, rate_per_minute, handling_minutes, within_minutes)  # noqa: E731
    else:
        c = 1
        sl = lambda c: erlang_a(c, rate_per_minute, handling_minutes, patience_minutes,  # noqa: E731
                                within_minutes)["service_level"]
    while sl(c) < target_share:
        c += 1
        if c > max_agents:
            raise ValueError(f"more than {max_agents} agents needed for a load of {a:.1f} erlangs")
    return c
