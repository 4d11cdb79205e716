"""The part of the funnel that contends for capacity: SDR (and AE) queues on business
hours, on a SimPy event loop.

Only the work of a team needs events. A touch in progress is one SimPy timeout whose
callback finishes it and hands the worker its next lead; a shift start is one timeout.
Everything else that happens at a known time - a new lead becoming routable (from a
pre-sampled, sorted array), a later attempt on the cadence, a recycle or nurture
re-entry, an SLA timer - waits in an agenda and is applied, in time order and at its own
time, just before the next event that could be affected by it. An extra event (an alarm)
is scheduled for the next agenda item only while a worker on duty is idle and might take
it. Between two events nothing can change the queues, so applying an item late, at its
own time stamp, gives the same history as an event per item would, with far fewer
events (Schruben's event-graph simplification of scheduling only what can interact;
L. Schruben, *Simulation modeling with event graphs*, CACM 26(11), 1983).

Everything random was drawn before the run, per lead, from its own stream (``sim.model``),
so a policy change never reshuffles which lead is contacted or how long a call takes.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from heapq import heappop, heappush

import numpy as np
import simpy

from sim.calendar import BusinessClock, working_intervals
from sim.decay import scalar_curve
from sim.scenario import Scenario, Team

# outcomes of an SDR episode (one pass of a lead through the queue)
OPEN, QUALIFIED, NOT_QUALIFIED, UNREACHED = 0, 1, 2, 3
HOT, MQL = 0, 1
INF = math.inf


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
    pool: list = field(default_factory=list)   # 0 SDR, 1 AE


class Pool:
    """A team of workers (SDRs or AEs) and its queue discipline."""

    def __init__(self, engine: "Engine", code: int, name: str, people: int,
                 duty: list[list[tuple[float, float]]], handle: np.ndarray, policy: str,
                 unlimited: bool = False):
        self.eng, self.env, self.code, self.name = engine, engine.env, code, name
        self.n = people
        self.handle = handle.tolist()
        self.policy = policy
        self.rr = policy == "round_robin"
        self.shared_hot = policy == "priority"
        self.unlimited = unlimited
        self.bands = (deque(), deque())        # shared queues: Hot, MQL
        self.own = [deque() for _ in range(people)]  # round-robin personal queues
        self.open_count = [0] * people
        self.rr_next = 0
        self.max_open = 0  # most leads one SDR held at once (round-robin)
        self.idle: dict[int, float] = {}       # idle worker -> on duty until (-1: off duty)
        self.current = [-1] * people            # lead in hand
        self.starts = [[s for s, _ in d] for d in duty]
        self.ends = [[e for _, e in d] for d in duty]
        self.ptr = [0] * people
        self.busy_minutes = 0.0
        self.duty_minutes = sum(min(e, engine.horizon) - s for d in duty for s, e in d if s < engine.horizon)
        self.waiting = 0
        self.q_area = 0.0
        self.q_last = 0.0
        self.q_max = 0
        # One callback per worker, made once: called when the worker's touch ends.
        self.done_cb = [self._done_callback(k) for k in range(people)]

    def _done_callback(self, k: int):
        eng = self.eng

        def done(_ev):
            eng.event_begins()
            eng.finish_touch(self, self.current[k], k)
            self.current[k] = -1
            self.next_job(k)
            eng.event_ends()
        return done

    # ---- queue bookkeeping -------------------------------------------------------
    def _count(self, delta: int):
        now = self.eng.now
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
        if self.rr:
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
            if self.idle.get(k, -1.0) > eng.now:
                del self.idle[k]
                self.next_job(k)
            return
        self.bands[HOT if self.shared_hot and eng.band[i] == HOT else MQL].append(i)
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
        if self.idle:
            now = self.eng.now
            for k, until in self.idle.items():
                if until > now:
                    del self.idle[k]
                    self.next_job(k)
                    return

    def idle_on_duty_after(self, t: float) -> bool:
        """Is a worker idle now who will still be on duty at ``t``?"""
        for until in self.idle.values():
            if until > t:
                return True
        return False

    def pop(self, k: int):
        eng = self.eng
        if self.rr:
            q = self.own[k]
            while q:
                i = q.popleft()
                if eng.waiting[i] and eng.owner[i] == k:
                    return i
            if eng.cap is not None and self.open_count[k] >= eng.cap:
                return None  # at the cap: finish own leads before taking shared ones
        for q in self.bands:
            while q:
                i = q.popleft()
                if eng.waiting[i]:
                    if self.rr and eng.owner[i] < 0:
                        eng.owner[i] = k
                        self._own(k)
                    return i
        return None

    def _own(self, k: int):
        self.open_count[k] += 1
        if self.open_count[k] > self.max_open:
            self.max_open = self.open_count[k]

    # ---- a worker's next move ------------------------------------------------------
    def next_job(self, k: int):
        """Worker ``k`` is free now: take the next lead, or wait (idle) for one or for the
        next shift."""
        eng = self.eng
        now = eng.now
        if eng.closed:
            return
        if self.on_duty(k, now):
            i = self.pop(k)
            if i is not None:
                self._count(-1)
                h = eng.start_touch(self, i, k)
                self.busy_minutes += h
                self.current[k] = i
                ev = self.env.timeout(now + h - self.env.now)
                ev.callbacks.append(self.done_cb[k])
                return
            self.idle[k] = self.ends[k][self.ptr[k]]
        elif self.ptr[k] < len(self.ends[k]):
            self.idle[k] = -1.0  # off duty: the shift bell wakes it
        # else: no more shifts in the horizon

    def shift_bells(self):
        """Shift starts, as timed SimPy events: a worker idle off duty starts looking."""
        env, eng = self.env, self.eng
        for k in range(self.n):
            for s in self.starts[k]:
                if 0.0 < s < eng.horizon:
                    env.timeout(s).callbacks.append(self._bell_callback(k))

    def _bell_callback(self, k: int):
        eng = self.eng

        def bell(_ev):
            eng.event_begins()
            if self.idle.get(k) is not None and self.current[k] < 0:
                del self.idle[k]
                self.next_job(k)
            eng.event_ends()
        return bell

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
        self.now = 0.0            # the time of what is being applied (an event or an agenda item)
        self.closed = False
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
        # The agenda: sorted fresh arrivals (a cursor) merged with a heap of timed items.
        self.agenda: list = []
        self.seq = 0
        self.f_t: list = []
        self.f_i: list = []
        self.f_b: list = []
        self.f_pos = 0
        self.alarm_at = INF
        days = scn.calendar.horizon_days + 60
        if scn.team.shifts:
            sdr_duty = [working_intervals(scn.calendar, days, s) for s in scn.team.shifts for _ in range(s.people)]
        else:
            sdr_duty = [working_intervals(scn.calendar, days)] * team.sdrs
        policy = scn.routing.policy
        self.sdr = Pool(self, 0, "sdr", team.sdrs, sdr_duty, draws.handle, policy, unlimited=team.unlimited)
        self.ae = None
        if team.escalate_hot_to_ae:
            self.ae = Pool(self, 1, "ae", team.aes, [working_intervals(scn.calendar, days)] * team.aes,
                           draws.handle_ae, "fifo")
        self.pools = [p for p in (self.sdr, self.ae) if p is not None and not p.unlimited]

    # ---- the agenda ------------------------------------------------------------------
    def at(self, t: float, fn, *args):
        """Apply ``fn(*args)`` at run time ``t`` (an agenda item, no event of its own)."""
        self.seq += 1
        heappush(self.agenda, (t, self.seq, fn, args))

    def apply_until(self, T: float):
        """Apply every agenda item due at or before ``T``, in time order, each at its time."""
        agenda, f_t = self.agenda, self.f_t
        nf = len(f_t)
        while True:
            p = self.f_pos
            tf = f_t[p] if p < nf else INF
            th = agenda[0][0] if agenda else INF
            if tf <= th:
                if tf > T:
                    return
                self.f_pos = p + 1
                self.now = tf
                self.enter(self.f_i[p], self.f_b[p])
            else:
                if th > T:
                    return
                t, _, fn, args = heappop(agenda)
                self.now = t
                fn(*args)

    def next_due(self) -> float:
        p = self.f_pos
        tf = self.f_t[p] if p < len(self.f_t) else INF
        return min(tf, self.agenda[0][0]) if self.agenda else tf

    def event_begins(self):
        """Before an event changes anything: apply what fell due since the last one."""
        now = self.env.now
        self.apply_until(now)
        self.now = now

    def event_ends(self):
        """After an event: if a worker on duty sits idle, wake it at the next agenda item."""
        t = self.next_due()
        if t >= self.alarm_at or t >= self.horizon:
            return
        for pool in self.pools:
            if pool.idle and pool.idle_on_duty_after(t):
                self.alarm_at = t
                self.env.timeout(t - self.env.now).callbacks.append(self._alarm)
                return

    def _alarm(self, _ev):
        if self.env.now >= self.alarm_at:
            self.alarm_at = INF
        self.event_begins()
        self.event_ends()

    def sla_deadline(self, i: int) -> float:
        sla = self.sla[self.band[i]]
        if self.business_sla:
            return float(self.clock.wall_time_after(self.entered[i], sla))
        return self.entered[i] + sla

    # ---- episodes ----------------------------------------------------------------------
    def enter(self, i: int, band: int):
        """Lead ``i`` becomes routable (a new episode) now."""
        now = self.now
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
        ep.outcome.append(OPEN); ep.done_at.append(math.nan); ep.pool.append(pool.code)
        pool.push(i, True)

    def reenter(self, i: int, band: int, t: float):
        if t < self.horizon:
            self.at(t, self.enter, i, band)

    def start_touch(self, pool: Pool, i: int, k: int) -> float:
        """Worker ``k`` starts attempt ``attempt[i]`` on lead ``i``; returns handling minutes.

        Whether the call connects is decided now, at the delay the lead has waited: the
        studies measure contact odds by the time of the call."""
        now = self.now
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
        if k < 0:  # unlimited team: nobody waits for anybody, the end of the touch is an agenda item
            self.at(now + h, self.finish_touch, pool, i, k)
        return h

    def finish_touch(self, pool: Pool, i: int, k: int):
        now = self.now
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
        if pool.rr and k >= 0 and self.owner[i] == k:
            pool.open_count[k] -= 1
        self.ep.outcome[r] = outcome
        self.ep.done_at[r] = now
        self.on_done(i, e, outcome, now, self.d1[i])

    # ---- run ------------------------------------------------------------------------------
    def run(self, times: np.ndarray, leads: np.ndarray, bands: np.ndarray) -> Episodes:
        """Work the queues from time 0 to the horizon; ``times`` (sorted), ``leads`` and
        ``bands`` are the leads that become routable without any earlier episode."""
        self.f_t, self.f_i, self.f_b = times.tolist(), leads.tolist(), bands.tolist()
        for pool in self.pools:
            for k in range(pool.n):
                pool.next_job(k)
            pool.shift_bells()
        self.event_ends()
        self.env.run(until=self.horizon)
        # What fell due after the last event and before the horizon is still applied: such
        # leads are open (waiting) at the horizon.
        self.closed = True
        self.apply_until(math.nextafter(self.horizon, -INF))
        self.now = self.horizon
        return self.ep
