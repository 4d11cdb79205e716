"""A team of workers (SDRs or AEs) and its queue discipline: shared FIFO, Hot-first or
earliest-deadline-first queues, or round robin with personal queues and a cap; routing
groups; SLA breach actions (reassign, escalate); duty intervals and shift bells; the
team's statistics over the KPI window.

A ``Pool`` is driven by the ``sim.engine.Engine`` it is given when it is made
(``Pool.eng``; this module does not import the engine): it reads the engine's per-lead
state and clock and calls its ``event_begins``, ``arm``, ``at``, ``schedule``,
``sla_deadline``, ``start_touch`` and ``finish_touch``. What every change here must
preserve - each callback's first step, when an alarm is armed, routing groups, the
horizon, team statistics - and the equivalence tests that prove it are in the rules of
``sim.engine``'s docstring ("Rules for changing the engine"). ``sim.engine_fast``
compiles the shared FIFO and Hot-first paths of this module step for step: a change to
those must be made there too.
"""
from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from typing import TYPE_CHECKING

from sim.episodes import HOT, INF, MQL, per_lead

if TYPE_CHECKING:
    import numpy as np

    from sim.calendar import BusinessClock
    from sim.engine import Engine


class Pool:
    """A team of workers (SDRs or AEs) and its queue discipline, driven by ``engine``
    (see the module's docstring and the rules in ``sim.engine``'s)."""

    def __init__(self, engine: Engine, code: int, people: int,
                 duty: list[list[tuple[float, float]]], handle: np.ndarray, policy: str,
                 unlimited: bool = False, breach: str | None = None, clock: BusinessClock | None = None,
                 worker_clocks: list | None = None, on_duty_only: bool = False,
                 worker_group: list[int] | None = None, lead_group: list[int] | None = None,
                 group_clocks: list | None = None, h_lead: list | None = None):
        self.eng, self.code = engine, code
        self.n = people
        # Handling draws (A, E, n), read per lead and pass: as lists [lead][pass][attempt]
        # when small (numpy is slow on scalars); on a big run a pass's A values are copied
        # out at its first touch (``Engine.start_touch``), for most leads of a big run are
        # never touched and a list of every draw would cost 32 bytes each.
        self.handle = handle
        self.h_lead = per_lead(handle) if h_lead is None else h_lead
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
