"""The part of the funnel that contends for capacity: SDR (and AE) queues on business
hours, on a SimPy-shaped event loop of its own.

Only the work of a team needs events. A touch in progress is one timed event whose
callback finishes it and hands the worker its next lead; a shift start is one event. The
events wait in the engine's own heap (``Engine.schedule``, the loop in ``Engine.run``),
processed in the order SimPy would process them; SimPy's ``Timeout`` objects, callback
lists and ``step`` cost more than the work of many events.
Everything else that happens at a known time - a new lead becoming routable (from a
pre-sampled, sorted array), a later attempt on the cadence, a recycle or nurture
re-entry, an SLA timer - waits in an agenda and is applied in time order, each item at
its own time stamp, just before the next event that could be affected by it. Between two
events nothing else changes the queues, so this gives the same history as one event per
item would. An extra event (an alarm) is scheduled for the next agenda item only while a
worker on duty sits idle and could take it. On the M/M/c case this makes about 1.4
events per lead, against 6 in a process-per-lead SimPy model (benchmarks/).

Everything random was drawn before the run, per lead, from its own stream (``sim.model``),
so a policy change never reshuffles which lead is contacted or how long a call takes.

Rules for changing the engine
-----------------------------
* Every callback - a touch ending (``Pool._done_callback``), a shift bell
  (``Pool._bell_callback``), an alarm (``Engine._alarm``) - first calls
  ``Engine.event_begins(now)``, the one step that applies the agenda items due at or
  before ``now`` (each at its own time) and sets ``Engine.now``; only then does it act.
  A new kind of event must do the same. After acting, a callback calls ``Engine.arm``
  (the touch callback behind a cheap guard) so that an idle worker is woken at the next
  item.
* An item applied late, at the next event, must not be one that could have started a
  touch earlier: ``arm`` keeps an alarm at the next item whenever a worker who is idle
  will still be on duty then. A change that lets an item wake a worker in a new way must
  keep that true (the equivalence tests below find out if it does not). Arming more
  often than needed is safe (an alarm that wakes nobody changes nothing): with routing
  groups (``routing.route_by``) ``arm`` still asks about every idle worker, of any group.
* Routing groups: a lead is pushed to its group's queues (``Pool.queues``/``heaps``
  indexed by ``Engine.lead_group``), a worker pops only from its own group's
  (``Pool.wgroup``), a push or a breach wakes only an idle worker of the lead's group
  (``_wake_any(g)``), and round robin rotates within the group. Without route_by there is
  one group, 0, and the history is today's.
* Time zones never reach the engine: a shift in another zone is a list of duty
  intervals in run minutes (``sim.calendar.working_intervals``), and a lead from a zoned
  region arrives at its run minute (``sim.arrivals``).
* Every agenda item is stamped in wall-clock run minutes (minutes since the start,
  nights and weekends included): arrivals and first routing (``Engine.run``), a later
  attempt ``attempt_gaps_minutes`` after the previous touch ended, a recycle
  ``recycle_after_days`` after the sales decision, a nurture re-entry when the re-scored
  lead crosses the MQL cut-off, the end of a touch of an unlimited team. An SLA timer
  (round-robin reassignment) is the one item defined on business time when
  ``sla.clock`` is ``business``: its deadline is converted to wall-clock run minutes
  with ``BusinessClock.wall_time_after`` when it is set (``Engine.sla_deadline``), on
  the clock ``sim.calendar.SlaClocks`` gives the pass (the office's, or with the owner's
  schedule its owner's shift, its routing group's or the team's hours), the one the KPIs
  judge it on.
  Duty intervals and shift bells are wall-clock run minutes too.
* Events are scheduled only through ``Engine.schedule``, which stores the time as SimPy
  did (now + (t - now)) and orders equal times by scheduling order; the committed
  expected results (``tests/expected``) were made by the SimPy loop and must not move.
* The horizon: the loop (``Engine.run``) processes no event at or after it (a touch
  ending exactly there is still in progress); no bell or alarm is set at or after it;
  ``enter`` and ``reenter`` drop passes that would begin at or after it. Then every
  pool's ``next_job`` becomes ``_stay_idle`` - nobody starts anything any more - and the
  agenda is applied up to just before the horizon, so passes that fell due after the
  last event are recorded as waiting (open). Team statistics close at the horizon.
* Team statistics (``Pool.stats``) cover [warm-up end, horizon]: queue-length areas are
  added where a count changes (``push``, ``next_job``; inlined there, the hot path) and
  only from ``warm`` on; busy minutes are clipped to the window when the touch starts.
* After any change run the equivalence tests, which compare this engine with
  ``Engine.EAGER`` (an event per agenda item) and require identical histories:
  ``tests/test_sim_behaviour.py::test_agenda_gives_the_history_of_an_event_per_item``
  and ``tests/test_sim_behaviour.py::test_agenda_matches_event_per_item_for_any_policy``;
  then the theory tests, ``tests/test_sim_theory.py`` (Erlang C, Little's law exactly
  per replication, busy and duty minutes, monotonicity in staff).
* This engine is the reference. ``sim.engine_fast`` runs the same algorithm compiled for
  the common policies (one team, a shared FIFO or Hot-first queue, no breach action;
  ``sim.engine_fast.eligible``), and ``sim.model`` uses it whenever it can. A change here
  to what those policies do must be made there too, or ``eligible`` must exclude it;
  ``tests/test_engine_fast.py`` requires identical histories from both, and the
  equivalence tests above compare this engine's ``EAGER`` mode with the compiled one on
  every case it takes (``EAGER`` itself always runs here).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from heapq import heappop, heappush

import numpy as np
from itertools import count

from sim.calendar import BusinessClock, SlaClocks, working_intervals
from sim.scenario import Scenario

# outcomes of an SDR episode (one pass of a lead through the queue)
OPEN, QUALIFIED, NOT_QUALIFIED, UNREACHED = 0, 1, 2, 3
HOT, MQL = 0, 1
INF = math.inf
NAN = math.nan


@dataclass
class Draws:
    """Random numbers drawn before the run, indexed by lead, episode and attempt."""

    # Attempt-major (A, E, n) so that adding attempts or passes never changes the draws
    # of the earlier ones: common random numbers across policies.
    u_touch: np.ndarray      # (A, E, n) uniform: contact / qualification
    handle: np.ndarray       # (A, E, n) SDR handling minutes
    handle_ae: np.ndarray | None  # (A, E, n) AE handling minutes; None without AE escalation


# Draw arrays up to this many values are turned into Python lists before the run; larger
# ones (big runs) are read a pass at a time (``Engine.start_touch``).
EAGER_DRAWS = 2_000_000


def per_lead(draws: np.ndarray | None) -> list | None:
    """Draws (A, E, n) as lists [lead][pass][attempt], or None when there are too many."""
    if draws is None or draws.size > EAGER_DRAWS:
        return None
    return draws.transpose(2, 1, 0).tolist()


class Episodes:
    """One row per pass of a lead through a queue, filled by the engine.

    Rows ``0 .. n_first - 1`` are the leads' first passes, fed in before the run in
    arrival order (their lead, band and entry time are known in bulk); later passes
    (recycles, nurture re-entries) are appended as they begin. What happens during a
    pass (first touch, owner, attempts, outcome, end) is written into plain lists."""

    def __init__(self, leads: np.ndarray, bands: np.ndarray, times: np.ndarray, pools: np.ndarray):
        self.first = (leads, bands, times, pools)
        n = len(leads)
        self.n_first = n
        self.used_first = 0
        self.lead, self.number, self.band, self.entered, self.pool = [], [], [], [], []  # later passes
        self.first_touch = [NAN] * n
        self.owner = [-1] * n
        self.attempts = [0] * n
        self.outcome = [OPEN] * n
        self.done_at = [NAN] * n

    def add(self, lead: int, number: int, band: int, entered: float, pool: int) -> int:
        """A later pass begins; returns its row."""
        self.lead.append(lead); self.number.append(number); self.band.append(band)
        self.entered.append(entered); self.pool.append(pool)
        self.first_touch.append(NAN); self.owner.append(-1); self.attempts.append(0)
        self.outcome.append(OPEN); self.done_at.append(NAN)
        return len(self.first_touch) - 1

    def set_pool(self, row: int, code: int):
        """The pass moves to another team (escalated on an SLA breach)."""
        if row < self.n_first:
            self.first[3][row] = code
        else:
            self.pool[row - self.n_first] = code

    def columns(self) -> dict[str, np.ndarray]:
        """Field -> values, one per pass, in the order passes began (by entry time)."""
        leads, bands, times, pools = self.first
        m = self.used_first  # first passes still to come at the horizon never began
        keep = np.r_[np.arange(m), np.arange(self.n_first, self.n_first + len(self.lead))]
        cols = {
            "lead": np.r_[leads[:m], np.asarray(self.lead, dtype=np.int64)],
            "number": np.r_[np.zeros(m, dtype=np.int64), np.asarray(self.number, dtype=np.int64)],
            "band": np.r_[bands[:m], np.asarray(self.band, dtype=np.int64)],
            "entered": np.r_[times[:m], np.asarray(self.entered, dtype=float)],
            "first_touch": np.asarray(self.first_touch, dtype=float)[keep],
            "owner": np.asarray(self.owner, dtype=np.int64)[keep],
            "attempts": np.asarray(self.attempts, dtype=np.int64)[keep],
            "outcome": np.asarray(self.outcome, dtype=np.int64)[keep],
            "done_at": np.asarray(self.done_at, dtype=float)[keep],
            "pool": np.r_[pools[:m], np.asarray(self.pool, dtype=np.int64)],
        }
        if self.lead:
            order = np.argsort(cols["entered"], kind="stable")
            cols = {k: v[order] for k, v in cols.items()}
        return cols


class Pool:
    """A team of workers (SDRs or AEs) and its queue discipline."""

    def __init__(self, engine: "Engine", code: int, people: int,
                 duty: list[list[tuple[float, float]]], handle: np.ndarray, policy: str,
                 unlimited: bool = False, breach: str | None = None, clock: BusinessClock | None = None,
                 worker_clocks: list | None = None, on_duty_only: bool = False,
                 worker_group: list[int] | None = None, lead_group: list[int] | None = None,
                 group_clocks: list | None = None):
        self.eng, self.code = engine, code
        self.n = people
        # Handling draws (A, E, n), read per lead and pass: as lists [lead][pass][attempt]
        # when small (numpy is slow on scalars); on a big run a pass's A values are copied
        # out at its first touch (``Engine.start_touch``), for most leads of a big run are
        # never touched and a list of every draw would cost 32 bytes each.
        self.handle = handle
        self.h_lead = per_lead(handle)
        self.cur_h: dict[int, list] = {}  # lead -> handling minutes per attempt of its pass now
        self.rr = policy == "round_robin"
        self.shared_hot = policy == "priority"
        self.edf = policy == "edf"
        self.unlimited = unlimited
        # What an SLA breach of a first touch in this team does (None: nothing, or
        # today's round-robin reassignment, ``Engine.reassign``); see ``_breach``.
        self.breach = breach
        # A shared queue from which a lead can leave before it is taken (earliest deadline
        # first, or a breach that moves it) is a heap of (key, ticket, lead); an entry is
        # live while its ticket is the lead's (``Engine.ticket``).
        self.heap_mode = not self.rr and (self.edf or breach in ("reassign", "escalate"))
        self.on_duty_only = on_duty_only
        # Routing groups (``routing.route_by``): worker k serves group ``wgroup[k]`` and
        # lead i belongs to ``lgroup[i]``; each group has its own shared queues (or heap)
        # and its own rotation. One group (0) for everybody without route_by.
        self.G = max(worker_group) + 1 if worker_group else 1
        self.wgroup = worker_group or [0] * people
        self.lgroup = lead_group
        self.members = [[k for k in range(people) if self.wgroup[k] == g] for g in range(self.G)]
        self.heaps: list = [[] for _ in range(self.G)]
        self.queues = [(deque(), deque()) for _ in range(self.G)]  # shared queues per group: Hot, MQL
        # Business clocks of the SLA deadlines (``sim.calendar.SlaClocks``): the team's,
        # each group's and each worker's own (owner schedule).
        self.clock = clock or engine.clock
        self.worker_clocks = worker_clocks
        self.group_clocks = group_clocks
        self.own = [deque() for _ in range(people)]  # round-robin personal queues
        self.open_count = [0] * people
        self.rr_next = [0] * self.G  # position of the next rep in each group's rotation
        self.max_open = 0  # most leads one SDR held at once (round-robin)
        self.idle: dict[int, float] = {}       # idle worker -> on duty until (-1: off duty)
        self.current = [-1] * people            # lead in hand
        self.starts = [[s for s, _ in d] for d in duty]
        self.ends = [[e for _, e in d] for d in duty]
        self.ptr = [0] * people
        # The duty interval each worker is in (or next): [since, until).
        self.since = [d[0][0] if d else INF for d in duty]
        self.until = [d[0][1] if d else -INF for d in duty]
        # Statistics over the window [warm, horizon] of every other KPI (see ``stats``).
        warm, horizon = engine.warm, engine.horizon
        self.warm, self.horizon = warm, horizon
        self.busy_minutes = 0.0  # handling minutes inside the window
        self.duty_minutes = sum(max(0.0, min(e, horizon) - max(s, warm)) for d in duty for s, e in d)
        # Two queue lengths, each integrated over the window (for the mean) with its
        # maximum. ``waiting``: attempts due and waiting for a worker (first touches and
        # later attempts whose cadence time has come); ``waiting_first``: of those, the
        # first touches (passes entered, not touched yet). The areas run from ``q_last``,
        # which starts at ``warm``: a change before the window adds nothing.
        self.waiting = 0
        self.waiting_first = 0
        self.q_last = warm
        self.area_attempts = 0.0
        self.area_first = 0.0
        self.peak_attempts = 0
        self.peak_first = 0
        # One callback per worker, made once: called when the worker's touch ends.
        self.done_cb = [self._done_callback(k) for k in range(people)]

    def _done_callback(self, k: int):
        eng, current, finish, next_job = self.eng, self.current, self.eng.finish_touch, self.next_job
        begins = self.eng.event_begins

        def done(_arg):
            begins(eng.event_time)  # its first step, as every callback's
            i = current[k]
            current[k] = -1
            finish(self, i, k)
            next_job(k)
            if eng.due < eng.alarm_at and (self.idle or eng.always_arm):
                eng.arm()
        return done

    # ---- queue bookkeeping -------------------------------------------------------
    def hold_until(self, t: float):
        """The queue lengths have held since ``q_last``; add them to the areas up to ``t``
        (> ``q_last``). Called from ``push`` and ``next_job`` whenever a count changes."""
        dt = t - self.q_last
        self.area_attempts += self.waiting * dt
        self.area_first += self.waiting_first * dt
        if self.waiting > self.peak_attempts:
            self.peak_attempts = self.waiting
        if self.waiting_first > self.peak_first:
            self.peak_first = self.waiting_first
        self.q_last = t

    def stats(self) -> dict:
        """Team statistics over the window [warm-up end, horizon], the window of every
        other KPI (after the run).

        busy_minutes: handling minutes inside the window (a touch across either end
          counts its part inside). duty_minutes: on-duty minutes inside the window.
        window_minutes: horizon - warm-up end.
        mean_waiting_first_touch: time-average, over the window, of the number of passes
          of this team that have entered (at ``entered``, when they were routed to it)
          and have had no first touch yet; times window_minutes it is the sum over the
          passes of the part of [entered, first_touch or horizon) inside the window.
        mean_waiting_attempts: the same for attempts due and waiting for a worker: the
          first touches plus later attempts whose cadence time has come.
        max_waiting_first_touch, max_waiting_attempts: the largest value each count holds
          for a positive time inside the window (a lead taken the instant it is pushed
          never counts).
        max_open_per_person: most leads one SDR owned at once (round-robin), whole run.
        An unlimited team never queues: its counts stay 0 and its busy minutes are not
        counted."""
        if self.horizon > self.q_last:
            self.hold_until(self.horizon)
        window = self.horizon - self.warm
        return dict(
            busy_minutes=self.busy_minutes,
            duty_minutes=self.duty_minutes,
            window_minutes=window,
            mean_waiting_first_touch=self.area_first / window,
            mean_waiting_attempts=self.area_attempts / window,
            max_waiting_first_touch=self.peak_first,
            max_waiting_attempts=self.peak_attempts,
            max_open_per_person=self.max_open,
        )

    def on_duty(self, k: int, now: float) -> bool:
        """Is worker ``k`` on duty at ``now`` (moves its duty pointer forward)."""
        if self.since[k] <= now < self.until[k]:
            return True
        ends, j = self.ends[k], self.ptr[k]
        while j < len(ends) and ends[j] <= now:
            j += 1
        self.ptr[k] = j
        if j < len(ends):
            self.since[k], self.until[k] = self.starts[k][j], ends[j]
            return self.starts[k][j] <= now
        return False

    def push(self, i: int, fresh: bool):
        """A lead (index ``i``) becomes workable: a new episode (fresh) or its next attempt."""
        eng = self.eng
        if self.unlimited:
            eng.start_touch(self, i, -1)
            return
        now = eng.now
        if now > self.q_last:
            self.hold_until(now)
        self.waiting += 1
        if fresh:
            self.waiting_first += 1
        eng.waiting[i] = True
        g = self.lgroup[i] if self.lgroup is not None else 0
        if self.rr:
            k = eng.owner[i] if not fresh else self._assign(g)
            if k < 0:
                self.queues[g][eng.band[i]].append(i)
                if fresh and self.breach:
                    eng.at(self.deadline(i, -1, True), self._breach, i, eng.row[i])
                self._wake_any(g)
                return
            eng.owner[i] = k
            self.own[k].append(i)
            if fresh:
                self._own(k)
                if eng.reassign:
                    eng.at(eng.sla_deadline(i, self.worker_clocks[k] if self.worker_clocks else None),
                           self._sla_check, i, k)
                elif self.breach:
                    eng.at(self.deadline(i, k, True), self._breach, i, eng.row[i])
            if self.idle.get(k, -1.0) > now:
                del self.idle[k]
                self.next_job(k)
            return
        if self.heap_mode:
            eng.tickets += 1
            ticket = eng.ticket[i] = eng.tickets
            if self.edf:
                key = self.deadline(i, -1, fresh)
            else:
                key = HOT if self.shared_hot and eng.band[i] == HOT else MQL
            heappush(self.heaps[g], (key, ticket, i))
            if fresh and self.breach:
                eng.at(key if self.edf else self.deadline(i, -1, True), self._breach, i, eng.row[i])
        else:
            self.queues[g][HOT if self.shared_hot and eng.band[i] == HOT else MQL].append(i)
            if fresh and self.breach:
                eng.at(self.deadline(i, -1, True), self._breach, i, eng.row[i])
        if self.idle:
            self._wake_any(g)

    def deadline(self, i: int, k: int, fresh: bool) -> float:
        """The SLA deadline (wall-clock run minutes) of lead ``i``'s attempt now pushed:
        a first touch is due ``sla`` minutes after the pass entered, a later attempt
        ``sla`` minutes after it fell due (its key under earliest deadline first).
        Business minutes count on owner ``k``'s own clock, else on the lead's group's or
        the team's (the rule of ``sim.calendar.SlaClocks``)."""
        eng = self.eng
        if fresh and self.worker_clocks is None and eng.row[i] < eng.ep.n_first:
            return eng.first_deadline[eng.row[i]]
        t0 = eng.entered[i] if fresh else eng.now
        sla = eng.sla[eng.band[i]]
        if not eng.business_sla:
            return t0 + sla
        if self.worker_clocks and k >= 0:
            clock = self.worker_clocks[k]
        elif self.group_clocks is not None:
            clock = self.group_clocks[self.lgroup[i]]
        else:
            clock = self.clock
        return clock.wall_time_after_scalar(t0, sla)

    def _assign(self, g: int) -> int:
        """The rep of group ``g`` a new lead goes to: the next in the group's rotation
        (under the cap; on duty now with ``assign_on_duty_only``), or -1 (shared queue)."""
        cap = self.eng.cap
        members = self.members[g]
        m = len(members)
        pos = self.rr_next[g]
        if self.on_duty_only:  # the next rep in the rotation who is working now and under the cap
            now = self.eng.now
            for step in range(m):
                j = (pos + step) % m
                k = members[j]
                if (cap is None or self.open_count[k] < cap) and (
                        self.since[k] <= now < self.until[k] or self.on_duty(k, now)):
                    self.rr_next[g] = (j + 1) % m
                    return k
            return -1  # nobody working and free: the shared queue, for the first rep free
        for step in range(m):
            j = (pos + step) % m
            k = members[j]
            if cap is None or self.open_count[k] < cap:
                self.rr_next[g] = (j + 1) % m
                return k
        return -1  # everyone at their cap: the lead waits in the shared queue

    def _sla_check(self, i: int, k: int):
        eng = self.eng
        if eng.waiting[i] and eng.owner[i] == k and eng.attempt[i] == 0:
            eng.owner[i] = -1  # reassigned: any SDR free now may take it
            self.open_count[k] -= 1
            eng.reassigned += 1
            g = self.wgroup[k]
            self.queues[g][eng.band[i]].append(i)
            self._wake_any(g)

    def _breach(self, i: int, row: int):
        """The SLA deadline of lead ``i``'s first touch (pass ``row``) has come: if it is
        still waiting for it here, count the breach and act (``Routing.on_breach``)."""
        eng = self.eng
        if not eng.waiting[i] or eng.row[i] != row or eng.attempt[i] != 0 or eng.owner[i] == -2:
            return
        eng.breaches += 1
        act = self.breach
        if act == "reassign":  # to the next available rep of the lead's group
            g = self.lgroup[i] if self.lgroup is not None else 0
            if self.rr:
                k = eng.owner[i]
                if k < 0:
                    return  # already in the shared queue: any rep free takes it
                eng.owner[i] = -1
                self.open_count[k] -= 1
                self.queues[g][eng.band[i]].append(i)
            else:  # to the front of the shared queue, after earlier breaches
                eng.tickets += 1
                ticket = eng.ticket[i] = eng.tickets
                heappush(self.heaps[g], (-INF, ticket, i))
            eng.reassigned += 1
            if self.idle:
                self._wake_any(g)
        elif act == "escalate":
            now = eng.now
            if now > self.q_last:
                self.hold_until(now)
            self.waiting -= 1
            self.waiting_first -= 1
            if self.rr:
                k = eng.owner[i]
                if k >= 0:
                    self.open_count[k] -= 1
            else:
                eng.ticket[i] = -1
            eng.owner[i] = -2  # held by another team: no entry here is live any more
            target = eng.escalation
            eng.ep.set_pool(row, target.code)
            eng.escalated += 1
            target.push(i, True)

    def _wake_any(self, g: int = 0):
        """Wake the first idle worker on duty of group ``g`` (the one group without routing)."""
        now = self.eng.now
        wgroup = self.wgroup if self.G > 1 else None
        for k, until in self.idle.items():
            if until > now and (wgroup is None or wgroup[k] == g):
                del self.idle[k]
                self.next_job(k)
                return

    def idle_on_duty_after(self, t: float) -> bool:
        """Is a worker idle now who will still be on duty at ``t``? Any group's: an
        alarm for an item that no idle worker of its group can take changes nothing (the
        alarm applies the item and the worker stays idle), so asking about every group
        is safe, and cheaper than finding the next item's group."""
        for until in self.idle.values():
            if until > t:
                return True
        return False

    def pop(self, k: int):
        """The lead worker ``k`` takes next, or None (from its own group's queues)."""
        if self.heap_mode:
            heap, ticket = self.heaps[self.wgroup[k]], self.eng.ticket
            while heap:
                _, t, i = heappop(heap)
                if ticket[i] == t:
                    return i
            return None
        if not self.rr:
            # FIFO or priority: each queued entry is one waiting attempt, Hot queue first.
            hot, rest = self.queues[self.wgroup[k]]
            return hot.popleft() if hot else rest.popleft() if rest else None
        eng = self.eng
        waiting = eng.waiting
        q = self.own[k]
        while q:
            i = q.popleft()
            if waiting[i] and eng.owner[i] == k:
                return i
        if eng.cap is not None and self.open_count[k] >= eng.cap:
            return None  # at the cap: finish own leads before taking shared ones
        for q in self.queues[self.wgroup[k]]:
            while q:
                # A shared entry may be stale: the lead was reassigned after its owner took it.
                i = q.popleft()
                if waiting[i]:
                    o = eng.owner[i]
                    if o < 0:
                        if o == -2:
                            continue  # escalated to another team
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
        if self.since[k] <= now < self.until[k] or self.on_duty(k, now):
            i = self.pop(k)
            if i is not None:
                if now > self.q_last:
                    self.hold_until(now)
                self.waiting -= 1
                h = eng.start_touch(self, i, k)  # a first touch also lowers waiting_first
                end = now + h  # busy: the part of [now, end) inside [warm, horizon)
                if now < self.warm or end > self.horizon:
                    self.busy_minutes += max(0.0, min(end, self.horizon) - max(now, self.warm))
                else:
                    self.busy_minutes += h
                self.current[k] = i
                # ``eng.schedule(now + h, self.done_cb[k])``, inlined: the hot path
                et = eng.event_time
                delay = now + h - et
                if delay < 0:
                    raise ValueError(f"Negative delay {delay}")
                heappush(eng.queue, (et + delay, next(eng.eid), self.done_cb[k], None))
                return
            self.idle[k] = self.until[k]
        elif self.ptr[k] < len(self.ends[k]):
            self.idle[k] = -1.0  # off duty: the shift bell wakes it
        # else: no more shifts in the horizon

    def shift_bells(self):
        """Shift starts, as timed events: a worker idle off duty starts looking."""
        eng = self.eng
        for k in range(self.n):
            for s in self.starts[k]:
                if 0.0 < s < eng.horizon:
                    eng.schedule(s, self._bell_callback(k))

    def _bell_callback(self, k: int):
        eng = self.eng

        def bell(_arg):
            eng.event_begins(eng.event_time)
            if k in self.idle:
                del self.idle[k]
                self.next_job(k)
            eng.arm()
        return bell


def _stay_idle(k: int):
    """A worker's next move once the horizon is reached: none."""


class Engine:
    """Runs the SDR/AE queues for one replication.

    Parameters
    ----------
    scn : the scenario.
    clock : its business clock (SLA deadlines on business time).
    n_leads : number of leads (the size of the per-lead state).
    band : band index per lead (0 Hot, 1 MQL; others never enter).
    draws : pre-drawn random numbers.
    on_done : callback ``(lead, episode_number, outcome, time, first_touch_delay)`` that
        decides what follows an episode and may call ``reenter`` (recycle, nurture).
    """

    # True: an alarm (event) at every agenda item, as an event-per-item simulator would
    # have; slower, and must give the same history (the tests check it).
    EAGER = False

    def __init__(self, scn: Scenario, clock: BusinessClock, n_leads: int, band: np.ndarray, draws: Draws, on_done,
                 groups: np.ndarray | None = None):
        self.clock, self.on_done = clock, on_done
        # The event loop (``run``): a heap of (time, number, callback, argument), popped in
        # time order and, at equal times, in the order scheduled - SimPy's order for
        # events of one priority. ``event_time`` is the time of the event being processed.
        self.queue: list = []
        self.eid = count()
        self.event_time = 0.0
        self.now = 0.0            # the time of what is being applied (an event or an agenda item)
        self.horizon = scn.calendar.horizon_days * 1440.0
        self.warm = min(scn.calendar.warmup_days * 1440.0, self.horizon)  # KPI window: [warm, horizon]
        team = scn.team
        self.band = band.tolist()
        self.max_attempts = team.max_attempts
        self.gaps = np.diff(team.attempt_offsets_minutes()).tolist()
        self.cap = team.capacity_cap
        routing = scn.routing
        # Today's rule when no breach action is named: round-robin reassigns on breach.
        self.reassign = (routing.on_breach is None and routing.reassign_on_sla_breach
                         and routing.policy == "round_robin")
        self.sla = (float(scn.sla.hot_minutes), float(scn.sla.mql_minutes))
        self.business_sla = scn.sla.clock == "business" and not scn.calendar.always_open
        self.owner_schedule = self.business_sla and scn.sla.schedule == "owner"
        # Deadlines are needed by today's reassignment, earliest deadline first, and any breach action.
        self.deadlines = self.reassign or routing.policy == "edf" or routing.on_breach is not None
        self.breaches = 0    # first touches still waiting at their SLA deadline (with a breach action)
        self.escalated = 0   # of those, moved to another team
        self.ticket = [0] * n_leads  # live queue entry of each lead (shared heaps)
        self.tickets = 0
        self.C = scn.decay.contact.scalar()
        self.Q = scn.decay.qualification.scalar()
        self.no_decay = scn.decay.contact.kind == "none" and scn.decay.qualification.kind == "none"
        cp, qp = scn.conversion.contact_prob, scn.conversion.qualify_prob
        self.pc = (cp["hot"], cp["mql"])
        self.pq = (qp["hot"], qp["mql"])
        n = n_leads
        self.waiting = [False] * n
        self.owner = [-1] * n
        self.attempt = [0] * n
        self.episode = [-1] * n     # number of the lead's current episode
        self.row = [-1] * n         # its row in ``self.ep``
        self.entered = [0.0] * n    # when the current episode began
        self.result = [OPEN] * n
        self.passes = draws.u_touch.shape[1]
        self.no_contact_share = team.no_contact_handling_share
        self.reassigned = 0
        self.ep: Episodes | None = None
        # The touch draws of the pass a lead is in, one list per lead, set at the pass's
        # first touch (``start_touch``) from ``u_lead`` or, on a big run, from ``u``.
        self.u = draws.u_touch
        self.u_lead = per_lead(draws.u_touch)
        self.cur_u: list = [None] * n
        # The agenda: sorted fresh arrivals (a cursor) merged with a heap of timed items;
        # ``due`` is the time of the earliest item.
        self.agenda: list = []
        self.seq = 0
        self.f_t: list = []
        self.f_i: list = []
        self.f_b: list = []
        self.f_pos = 0
        self.due = INF
        self.alarm_at = INF
        days = scn.calendar.horizon_days + 60
        if scn.team.shifts:
            shift_duty = [working_intervals(scn.calendar, days, s) for s in scn.team.shifts]
            sdr_duty = [d for d, s in zip(shift_duty, scn.team.shifts) for _ in range(s.people)]
        else:
            sdr_duty = [working_intervals(scn.calendar, days)] * team.sdrs
        policy = routing.policy
        # Routing groups: each SDR's (through its shift) and each lead's (``groups``).
        route = scn.route_groups()
        worker_group = None
        self.lead_group = None
        if route is not None:
            worker_group = [g for g, s in zip(route[0], scn.team.shifts) for _ in range(s.people)]
            if groups is None or len(groups) != n_leads or np.any(np.asarray(groups) < 0):
                raise ValueError(f"routing.route_by={routing.route_by}: the engine needs every lead's routing group "
                                 f"(Scenario.lead_groups); got {None if groups is None else len(groups)} for "
                                 f"{n_leads} leads")
            self.lead_group = np.asarray(groups, dtype=np.int64)
        team_clock, worker_clocks, group_clocks = clock, None, None
        self.sla_clocks = None
        if self.owner_schedule:  # business minutes on the owner's hours, its group's or the team's
            self.sla_clocks = sla_clocks = SlaClocks(scn, office=clock)
            team_clock, group_clocks = sla_clocks.team, sla_clocks.groups
            if policy == "round_robin":
                worker_clocks = sla_clocks.workers
        self.sdr = Pool(self, 0, team.sdrs, sdr_duty, draws.handle, policy, unlimited=team.unlimited,
                        breach=routing.on_breach, clock=team_clock, worker_clocks=worker_clocks,
                        on_duty_only=routing.assign_on_duty_only, worker_group=worker_group,
                        lead_group=None if self.lead_group is None else self.lead_group.tolist(),
                        group_clocks=group_clocks)
        self.hot_to_ae = team.escalate_hot_to_ae
        self.ae = None
        office = [working_intervals(scn.calendar, days)]
        if team.escalate_hot_to_ae or (routing.on_breach == "escalate" and routing.escalate_to == "ae"):
            self.ae = Pool(self, 1, team.aes, office * team.aes, draws.handle_ae, "fifo")
        self.overflow = None
        if routing.on_breach == "escalate" and routing.escalate_to == "overflow":
            self.overflow = Pool(self, 2, team.overflow_people, office * team.overflow_people, self.sdr.handle, "fifo")
        self.escalation = self.ae if routing.escalate_to == "ae" else self.overflow
        self.pools = [p for p in (self.sdr, self.ae, self.overflow) if p is not None and not p.unlimited]
        self.always_arm = len(self.pools) > 1 or self.EAGER

    # ---- the agenda ------------------------------------------------------------------
    def at(self, t: float, fn, *args):
        """Apply ``fn(*args)`` at run time ``t`` (an agenda item, no event of its own)."""
        self.seq += 1
        heappush(self.agenda, (t, self.seq, fn, args))
        if t < self.due:
            self.due = t

    def apply_until(self, T: float):
        """Apply every agenda item due at or before ``T``, in time order, each at its time."""
        agenda, f_t, f_i, f_b, enter = self.agenda, self.f_t, self.f_i, self.f_b, self.enter
        p = self.f_pos
        tf = f_t[p]  # the fresh list ends with an infinite sentinel
        th = agenda[0][0] if agenda else INF
        while True:
            if tf <= th:
                if tf > T:
                    break
                self.f_pos = p + 1
                self.now = tf
                enter(f_i[p], f_b[p], p)
                p += 1
                tf = f_t[p]
            else:
                if th > T:
                    break
                t, _, fn, args = heappop(agenda)
                self.now = t
                fn(*args)
            th = agenda[0][0] if agenda else INF
        self.due = tf if tf < th else th

    def event_begins(self, now: float):
        """The one step every callback (touch done, shift bell, alarm) takes before it acts:
        apply the agenda items due at or before ``now`` in time order, each at its own
        time, then set the engine's clock to ``now``."""
        if self.due <= now:
            self.apply_until(now)
        self.now = now

    def arm(self):
        """After an event: if a worker on duty sits idle, wake it at the next agenda item."""
        t = self.due
        if t >= self.alarm_at or t >= self.horizon:
            return
        if not self.EAGER:
            for pool in self.pools:
                if pool.idle and pool.idle_on_duty_after(t):
                    break
            else:
                return
        self.alarm_at = t
        self.schedule(t, self._alarm, t)

    def _alarm(self, t: float):
        # The alarm fires at now + (t - now) (``schedule``), which can miss t by a rounding
        # error either way; it stands for time t, so items due at t are applied then.
        if t >= self.alarm_at:
            self.alarm_at = INF  # this is the live alarm (an earlier, stale one is not)
        self.event_begins(max(self.event_time, t))
        self.arm()

    def schedule(self, t: float, callback, arg=None):
        """An event at run time ``t``: ``callback(arg)`` is called then.

        The time is stored as now + (t - now), now being ``event_time``, the sum SimPy
        forms for a timeout of delay t - now; the histories stay those of the SimPy loop
        this replaced, to the last bit (``tests/expected``)."""
        now = self.event_time
        delay = t - now
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        heappush(self.queue, (now + delay, next(self.eid), callback, arg))

    def sla_deadline(self, i: int, clock: BusinessClock | None = None) -> float:
        """Today's round-robin reassignment timer: the office's deadline of the pass's
        first touch, or the one on ``clock`` (the owner's own schedule)."""
        r = self.row[i]
        if clock is None and r < self.ep.n_first:
            return self.first_deadline[r]
        sla = self.sla[self.band[i]]
        entered = self.entered[i]
        if self.business_sla:
            return float((clock or self.clock).wall_time_after(entered, sla))
        return entered + sla

    # ---- episodes ----------------------------------------------------------------------
    def enter(self, i: int, band: int, row: int = -1):
        """Lead ``i`` becomes routable (a new episode) now; ``row`` is its row in the
        episodes when it is a first pass fed in before the run."""
        now = self.now
        if now >= self.horizon:
            return
        e = self.episode[i] + 1
        if e >= self.passes:
            return  # no more passes allowed for this lead
        self.episode[i] = e
        self.band[i] = band
        self.attempt[i] = 0
        self.owner[i] = -1
        pool = self.ae if (self.hot_to_ae and band == HOT) else self.sdr
        if row < 0:
            row = self.ep.add(i, e, band, now, pool.code)
        else:
            self.ep.used_first = row + 1
        self.row[i] = row
        self.entered[i] = now
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
        ep = self.ep
        if a == 0:
            ep.first_touch[r] = now
            ep.owner[r] = k
            if k >= 0:  # taken from the queue (an unlimited team has none)
                pool.waiting_first -= 1
            if self.u_lead is not None:
                self.cur_u[i] = self.u_lead[i][e]
                pool.cur_h[i] = pool.h_lead[i][e]
            else:
                self.cur_u[i] = self.u[:, e, i].tolist()
                pool.cur_h[i] = pool.handle[:, e, i].tolist()
        u = self.cur_u[i][a]
        if self.no_decay:
            c = q = 1.0
        else:
            entered = self.entered[i]
            c = self.C(now - entered)
            q = self.Q(ep.first_touch[r] - entered)  # how warm the lead was at the first touch
        if u < self.pc[b] * c:
            self.result[i] = QUALIFIED if u < self.pq[b] * c * q else NOT_QUALIFIED
            h = pool.cur_h[i][a]
        else:
            self.result[i] = OPEN  # no answer: a voicemail or an email, shorter than a call
            h = pool.cur_h[i][a] * self.no_contact_share
        if k < 0:  # unlimited team: nobody waits for anybody, the end of the touch is an agenda item
            self.at(now + h, self.finish_touch, pool, i, k)
        return h

    def finish_touch(self, pool: Pool, i: int, k: int):
        now = self.now
        e, a = self.episode[i], self.attempt[i]
        r = self.row[i]
        ep = self.ep
        ep.attempts[r] = a + 1
        outcome = self.result[i]
        if outcome == OPEN:
            if a + 1 < self.max_attempts:
                self.attempt[i] = a + 1
                self.at(now + self.gaps[a], pool.push, i, False)
                return
            outcome = UNREACHED
        if pool.rr and k >= 0 and self.owner[i] == k:
            pool.open_count[k] -= 1
        ep.outcome[r] = outcome
        ep.done_at[r] = now
        self.on_done(i, e, outcome, now, ep.first_touch[r] - self.entered[i])

    # ---- run ------------------------------------------------------------------------------
    def run(self, times: np.ndarray, leads: np.ndarray, bands: np.ndarray) -> Episodes:
        """Work the queues from time 0 to the horizon; ``times`` (sorted), ``leads`` and
        ``bands`` are the leads that become routable without any earlier episode."""
        self.f_t = times.tolist() + [INF]
        self.f_i, self.f_b = leads.tolist(), bands.tolist()
        pools = np.zeros(len(leads), dtype=np.int64)
        if self.hot_to_ae:
            pools[np.asarray(bands) == HOT] = self.ae.code
        self.ep = Episodes(np.asarray(leads, dtype=np.int64), np.asarray(bands, dtype=np.int64),
                           np.asarray(times, dtype=float), pools)
        if self.deadlines:  # SLA deadlines of the first passes, in bulk (on the office's, the team's or the group's clock)
            sla = np.where(np.asarray(bands) == HOT, self.sla[HOT], self.sla[MQL])
            t = np.asarray(times, dtype=float)
            if not self.business_sla:
                first = t + sla
            elif self.reassign or self.sdr.group_clocks is None:
                first = (self.clock if self.reassign else self.sdr.clock).wall_time_after(t, sla)
            else:
                first = self.sla_clocks.wall_time_after(t, sla, group=self.lead_group[np.asarray(leads, dtype=np.int64)])
            self.first_deadline = first.tolist()
        self.due = self.f_t[0]
        for pool in self.pools:
            for k in range(pool.n):
                pool.next_job(k)
            pool.shift_bells()
        self.arm()
        # The loop: no event at or after the horizon is processed.
        queue, horizon = self.queue, self.horizon
        while queue and queue[0][0] < horizon:
            t, _, callback, arg = heappop(queue)
            self.event_time = t
            callback(arg)
        # What fell due after the last event and before the horizon is still applied: such
        # leads are open (waiting) at the horizon.
        for pool in self.pools:  # the horizon: nobody starts anything any more
            pool.next_job = _stay_idle
        self.apply_until(math.nextafter(self.horizon, -INF))
        self.now = self.horizon
        return self.ep

    def release(self):
        """Drop the per-lead state and the references between engine, teams and
        callbacks, so that memory is returned at once rather than by the cyclic collector."""
        for pool in (self.sdr, self.ae, self.overflow):
            if pool is not None:
                pool.done_cb = pool.handle = pool.h_lead = pool.cur_h = pool.eng = None
        self.u = self.u_lead = self.cur_u = self.agenda = self.ep = self.on_done = None
        self.queue = None
