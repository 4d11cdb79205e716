"""The part of the funnel that contends for capacity: SDR (and AE) queues on business
hours, worked by SimPy processes.

Only touches need the event queue. Each SDR is a long-lived SimPy process that takes the
next lead its routing rule offers, spends a sampled handling time on it, and records the
outcome; arrivals are one process fed by a pre-sampled, sorted array; later attempts,
recycles and nurture re-entries are timed callbacks. Everything random was drawn before
the run, per lead, from its own stream (``sim.model``), so a policy change never
reshuffles which lead is contacted or how long a call takes.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.calendar import BusinessClock, working_intervals
from sim.decay import scalar_curve
from sim.scenario import Scenario, Team

# outcomes of an SDR episode (one pass of a lead through the queue)
OPEN, QUALIFIED, NOT_QUALIFIED, UNREACHED = 0, 1, 2, 3
HOT, MQL = 0, 1


def attempt_delays(team: Team) -> np.ndarray:
    """Minutes from the first touch to each attempt, following the cadence (the last gap
    repeats when there are more attempts than gaps)."""
    gaps = list(team.attempt_gaps_minutes) or [1440.0]
    g = [gaps[min(i, len(gaps) - 1)] for i in range(team.max_attempts - 1)]
    return np.concatenate([[0.0], np.cumsum(g)])


@dataclass
class Draws:
    """Random numbers drawn before the run, indexed by lead, episode and attempt."""

    # Attempt-major (A, E, n) so that adding attempts or passes never changes the draws
    # of the earlier ones: common random numbers across policies.
    u_touch: np.ndarray      # (A, E, n) uniform: contact / qualification
    handle: np.ndarray       # (A, E, n) SDR handling minutes
    handle_ae: np.ndarray | None  # (A, E, n) AE handling minutes; None without AE escalation


@dataclass
class Episodes:
    """One row per pass of a lead through the queue (filled by the engine)."""

    lead: list = field(default_factory=list)
    number: list = field(default_factory=list)
    band: list = field(default_factory=list)
    entered: list = field(default_factory=list)
    first_touch: list = field(default_factory=list)
    owner: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    outcome: list = field(default_factory=list)
    done_at: list = field(default_factory=list)
    pool: list = field(default_factory=list)


class Pool:
    """A team of workers (SDRs or AEs) and its queue discipline."""

    def __init__(self, engine: "Engine", name: str, people: int, duty: list[list[tuple[float, float]]],
                 handle: np.ndarray, policy: str, unlimited: bool = False):
        self.eng, self.env, self.name = engine, engine.env, name
        self.n = people
        self.handle = handle.tolist()
        self.policy = policy
        self.unlimited = unlimited
        self.bands = (deque(), deque())        # shared queues: Hot, MQL
        self.own = [deque() for _ in range(people)]  # round-robin personal queues
        self.open_count = [0] * people
        self.rr_next = 0
        self.max_open = 0  # most leads one SDR held at once (round-robin)
        self.idle: dict[int, simpy.Event] = {}
        self.idle_until = [0.0] * people
        self.starts = [[s for s, _ in d] for d in duty]
        self.ends = [[e for _, e in d] for d in duty]
        self.ptr = [0] * people
        self.busy_minutes = 0.0
        self.duty_minutes = sum(min(e, engine.horizon) - s for d in duty for s, e in d if s < engine.horizon)
        self.waiting = 0
        self.q_area = 0.0
        self.q_last = 0.0
        self.q_max = 0
        if not unlimited:
            for k in range(people):
                self.env.process(self.worker(k))
            self.env.process(self.bell())

    # ---- queue bookkeeping -------------------------------------------------------
    def _count(self, delta: int):
        now = self.env.now
        self.q_area += self.waiting * (now - self.q_last)
        self.q_last = now
        self.waiting += delta
        if self.waiting > self.q_max:
            self.q_max = self.waiting

    def on_duty(self, k: int, now: float) -> bool:
        ends, j = self.ends[k], self.ptr[k]
        while j < len(ends) and ends[j] <= now:
            j += 1
        self.ptr[k] = j
        return j < len(ends) and self.starts[k][j] <= now

    def push(self, i: int, fresh: bool):
        """A lead (index ``i``) becomes workable: a new episode (fresh) or its next attempt."""
        eng = self.eng
        if self.unlimited:
            eng.start_touch(self, i, -1)
            return
        self._count(+1)
        eng.waiting[i] = True
        if self.policy == "round_robin":
            k = eng.owner[i] if not fresh else self._assign()
            if k < 0:
                self.bands[eng.band[i]].append(i)
                self._wake_any()
                return
            eng.owner[i] = k
            self.own[k].append(i)
            if fresh:
                self._own(k)
                if eng.reassign:
                    eng.at(eng.sla_deadline(i), self._sla_check, i, k)
            if k in self.idle and self.idle_until[k] > self.env.now:
                self.idle.pop(k).succeed()
            return
        self.bands[HOT if self.policy == "priority" and eng.band[i] == HOT else MQL].append(i)
        self._wake_any()

    def _assign(self) -> int:
        cap = self.eng.cap
        for step in range(self.n):
            k = (self.rr_next + step) % self.n
            if cap is None or self.open_count[k] < cap:
                self.rr_next = (k + 1) % self.n
                return k
        return -1  # everyone at their cap: the lead waits in the shared queue

    def _sla_check(self, i: int, k: int):
        eng = self.eng
        if eng.waiting[i] and eng.owner[i] == k and eng.attempt[i] == 0:
            eng.owner[i] = -1  # reassigned: any SDR free now may take it
            self.open_count[k] -= 1
            eng.reassigned += 1
            self.bands[eng.band[i]].append(i)
            self._wake_any()

    def _wake_any(self):
        now = self.env.now
        for k, ev in self.idle.items():
            if self.idle_until[k] > now:
                del self.idle[k]
                ev.succeed()
                return

    def pop(self, k: int):
        eng = self.eng
        if self.policy == "round_robin":
            q = self.own[k]
            while q:
                i = q.popleft()
                if eng.waiting[i] and eng.owner[i] == k:
                    return i
        if self.policy == "round_robin" and eng.cap is not None and self.open_count[k] >= eng.cap:
            return None  # at the cap: finish own leads before taking shared ones
        for q in self.bands:
            while q:
                i = q.popleft()
                if eng.waiting[i]:
                    if self.policy == "round_robin" and eng.owner[i] < 0:
                        eng.owner[i] = k
                        self._own(k)
                    return i
        return None

    def _own(self, k: int):
        self.open_count[k] += 1
        if self.open_count[k] > self.max_open:
            self.max_open = self.open_count[k]

    # ---- processes ---------------------------------------------------------------
    def worker(self, k: int):
        env, eng = self.env, self.eng
        timeout, start, finish, pop, count = env.timeout, eng.start_touch, eng.finish_touch, self.pop, self._count
        while True:
            now = env.now
            if self.on_duty(k, now):
                i = pop(k)
                if i is not None:
                    count(-1)
                    h = start(self, i, k)
                    self.busy_minutes += h
                    yield timeout(h)
                    finish(self, i, k)
                    continue
                self.idle_until[k] = self.ends[k][self.ptr[k]]
            elif self.ptr[k] >= len(self.ends[k]):
                return  # no more shifts in the horizon
            else:
                self.idle_until[k] = -1.0
            ev = env.event()
            self.idle[k] = ev
            yield ev

    def bell(self):
        """Wakes idle workers when their shift starts (they then look at the queue)."""
        env = self.env
        starts = sorted({(s, k) for k in range(self.n) for s in self.starts[k]})
        for s, k in starts:
            if s > env.now:
                yield env.timeout(s - env.now)
            ev = self.idle.pop(k, None)
            if ev is not None:
                ev.succeed()

    def stats(self) -> dict:
        self._count(0)
        T = max(self.q_last, 1e-9)
        return dict(
            busy_minutes=self.busy_minutes,
            duty_minutes=self.duty_minutes,
            mean_queue=self.q_area / T,
            max_queue=self.q_max,
            max_open_per_person=self.max_open,
        )


class Engine:
    """Runs the SDR/AE queues for one replication.

    Parameters
    ----------
    scn : the scenario.
    band : band index per lead (0 Hot, 1 MQL; others never enter).
    draws : pre-drawn random numbers.
    on_done : callback ``(lead, episode_number, outcome, time, first_touch_delay)`` that
        decides what follows an episode and may call ``reenter`` (recycle, nurture).
    """

    def __init__(self, scn: Scenario, clock: BusinessClock, n_leads: int, band: np.ndarray, draws: Draws, on_done):
        self.scn, self.clock, self.draws, self.on_done = scn, clock, draws, on_done
        self.env = simpy.Environment()
        self.horizon = scn.calendar.horizon_days * 1440.0
        team = scn.team
        self.band = band.tolist()
        self.max_attempts = team.max_attempts
        self.gaps = np.diff(attempt_delays(team)).tolist()
        self.cap = team.capacity_cap
        self.reassign = scn.routing.reassign_on_sla_breach and scn.routing.policy == "round_robin"
        self.sla = (float(scn.sla.hot_minutes), float(scn.sla.mql_minutes))
        self.business_sla = scn.sla.clock == "business" and not scn.calendar.always_open
        self.C = scalar_curve(scn.decay.contact)
        self.Q = scalar_curve(scn.decay.qualification)
        cp, qp = scn.conversion.contact_prob, scn.conversion.qualify_prob
        self.pc = (cp["hot"], cp["mql"])
        self.pq = (qp["hot"], qp["mql"])
        n = n_leads
        self.waiting = [False] * n
        self.owner = [-1] * n
        self.attempt = [0] * n
        self.episode = [-1] * n     # number of the lead's current episode
        self.row = [-1] * n         # its row in ``self.ep``
        self.entered = [0.0] * n
        self.d1 = [0.0] * n         # delay of the first touch of the current episode
        self.result = [OPEN] * n
        self.passes = draws.u_touch.shape[1]
        self.no_contact_share = team.no_contact_handling_share
        self.reassigned = 0
        self.ep = Episodes()
        # Plain nested lists: indexing numpy arrays by scalars in the event loop is slow.
        self.u = draws.u_touch.tolist()
        days = scn.calendar.horizon_days + 60
        if scn.team.shifts:
            sdr_duty = [working_intervals(scn.calendar, days, s) for s in scn.team.shifts for _ in range(s.people)]
        else:
            sdr_duty = [working_intervals(scn.calendar, days)] * team.sdrs
        policy = scn.routing.policy
        self.sdr = Pool(self, "sdr", team.sdrs, sdr_duty, draws.handle, policy, unlimited=team.unlimited)
        self.ae = None
        if team.escalate_hot_to_ae:
            self.ae = Pool(self, "ae", team.aes, [working_intervals(scn.calendar, days)] * team.aes,
                           draws.handle_ae, "fifo")

    # ---- scheduling helpers ----------------------------------------------------------
    def at(self, t: float, fn, *args):
        """Call ``fn(*args)`` at run time ``t`` (a timed callback, no process needed)."""
        ev = self.env.timeout(max(0.0, float(t) - self.env.now))
        ev.callbacks.append(lambda _ev: fn(*args))

    def sla_deadline(self, i: int) -> float:
        sla = self.sla[self.band[i]]
        if self.business_sla:
            return float(self.clock.wall_time_after(self.entered[i], sla))
        return self.entered[i] + sla

    # ---- episodes ----------------------------------------------------------------------
    def enter(self, i: int, band: int):
        """Lead ``i`` becomes routable (a new episode) now."""
        now = self.env.now
        if now >= self.horizon:
            return
        e = self.episode[i] + 1
        if e >= self.passes:
            return  # no more passes allowed for this lead
        self.episode[i] = e
        self.band[i] = band
        self.attempt[i] = 0
        self.entered[i] = now
        self.owner[i] = -1
        pool = self.ae if (self.ae is not None and band == HOT) else self.sdr
        ep = self.ep
        self.row[i] = len(ep.lead)
        ep.lead.append(i); ep.number.append(e); ep.band.append(band); ep.entered.append(now)
        ep.first_touch.append(math.nan); ep.owner.append(-1); ep.attempts.append(0)
        ep.outcome.append(OPEN); ep.done_at.append(math.nan); ep.pool.append(pool.name)
        pool.push(i, True)

    def reenter(self, i: int, band: int, t: float):
        if t < self.horizon:
            self.at(t, self.enter, i, band)

    def start_touch(self, pool: Pool, i: int, k: int) -> float:
        """Worker ``k`` starts attempt ``attempt[i]`` on lead ``i``; returns handling minutes.

        Whether the call connects is decided now, at the delay the lead has waited: the
        studies measure contact odds by the time of the call."""
        now = self.env.now
        self.waiting[i] = False
        e, a, b = self.episode[i], self.attempt[i], self.band[i]
        r = self.row[i]
        d = now - self.entered[i]
        if a == 0:
            self.d1[i] = d
            self.ep.first_touch[r] = now
            self.ep.owner[r] = k
        u = self.u[a][e][i]
        c = self.C(d)
        if u < self.pc[b] * c:
            self.result[i] = QUALIFIED if u < self.pq[b] * c * self.Q(self.d1[i]) else NOT_QUALIFIED
            h = pool.handle[a][e][i]
        else:
            self.result[i] = OPEN  # no answer: a voicemail or an email, shorter than a call
            h = pool.handle[a][e][i] * self.no_contact_share
        if k < 0:  # unlimited team: no worker process, complete by callback
            self.at(now + h, self.finish_touch, pool, i, k)
        return h

    def finish_touch(self, pool: Pool, i: int, k: int):
        now = self.env.now
        e, a = self.episode[i], self.attempt[i]
        r = self.row[i]
        self.ep.attempts[r] = a + 1
        outcome = self.result[i]
        if outcome == OPEN:
            if a + 1 < self.max_attempts:
                self.attempt[i] = a + 1
                self.at(now + self.gaps[a], pool.push, i, False)
                return
            outcome = UNREACHED
        if pool.policy == "round_robin" and k >= 0 and self.owner[i] == k:
            pool.open_count[k] -= 1
        self.ep.outcome[r] = outcome
        self.ep.done_at[r] = now
        self.on_done(i, e, outcome, now, self.d1[i])

    # ---- run ------------------------------------------------------------------------------
    def arrivals(self, times: np.ndarray, leads: np.ndarray, bands: np.ndarray):
        """Feeds the pre-sampled arrivals into the queues, one event per lead."""
        env = self.env
        enter = self.enter
        for t, i, b in zip(times.tolist(), leads.tolist(), bands.tolist()):
            if t > env.now:
                yield env.timeout(t - env.now)
            enter(i, b)

    def run(self, times: np.ndarray, leads: np.ndarray, bands: np.ndarray) -> Episodes:
        self.env.process(self.arrivals(times, leads, bands))
        self.env.run(until=self.horizon)
        return self.ep
