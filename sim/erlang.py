"""Erlang C: the queueing formulas workforce management staffs an interval with.

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

The lab's queues break these assumptions (business hours, several attempts per lead,
priorities, non-exponential handling), which is why ``sim.staffing`` uses them only
to propose plans and verifies every plan by simulation.
"""
from __future__ import annotations

import math


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


def agents_for_service_level(rate_per_minute: float, handling_minutes: float, within_minutes: float,
                             target_share: float, max_agents: int = 100_000) -> int:
    """Fewest agents whose Erlang C service level reaches ``target_share`` of arrivals
    answered within ``within_minutes`` (0 when nothing arrives)."""
    if not 0.0 <= target_share < 1.0:
        raise ValueError(f"target_share must be in [0, 1); got {target_share}")
    a = rate_per_minute * handling_minutes
    if a <= 0:
        return 0
    c = max(1, math.floor(a) + 1)
    while service_level(c, rate_per_minute, handling_minutes, within_minutes) < target_share:
        c += 1
        if c > max_agents:
            raise ValueError(f"more than {max_agents} agents needed for a load of {a:.1f} erlangs")
    return c
