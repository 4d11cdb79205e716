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

The engine lives in three modules:

* ``sim.engine`` (this one): ``Engine`` - the agenda, the event loop, a pass from its
  entry to its outcome (``enter``, ``start_touch``, ``finish_touch``), the run - and the
  rules below.
* ``sim.pool``: ``Pool``, a team and its queue discipline - queues and routing groups,
  breach actions, duty intervals, shift bells, the touch and bell callbacks, team
  statistics. It is given its engine when it is made and does not import this module.
* ``sim.episodes``: the outcome and band codes, the pre-drawn random numbers (``Draws``,
  ``per_lead``) and the table of passes the engine fills (``Episodes``).

Rules for changing the engine
-----------------------------
A name below without a module is ``Engine``'s, in this module; ``Pool`` is
``sim.pool.Pool``.

* Every callback - a touch ending (``Pool._done_callback``), a shift bell
  (``Pool._bell_callback``), an alarm (``Engine._alarm``) - first calls
  ``Engine.event_begins(now)``, the one step that applies the agenda items due at or
  before ``now`` (each at its own time) and sets ``Engine.now``; only then does it act.
  A new kind of event must do the same, in whichever module it is made. After acting, a
  callback calls ``Engine.arm`` (the touch callback behind a cheap guard) so that an idle
  worker is woken at the next item.
* An item applied late, at the next event, must not be one that could have started a
  touch earlier: ``arm`` keeps an alarm at the next item whenever a worker who is idle
  will still be on duty then (``Pool.idle_on_duty_after``). A change that lets an item
  wake a worker in a new way must keep that true (the equivalence tests below find out
  if it does not). Arming more often than needed is safe (an alarm that wakes nobody
  changes nothing): with routing groups (``routing.route_by``) ``arm`` still asks about
  every idle worker, of any group.
* Routing groups (``sim.pool``): a lead is pushed to its group's queues
  (``Pool.queues``/``heaps`` indexed by ``Engine.lead_group``), a worker pops only from
  its own group's (``Pool.wgroup``), a push or a breach wakes only an idle worker of the
  lead's group (``Pool._wake_any(g)``), and round robin rotates within the group
  (``Pool._assign``). Without route_by there is one group, 0, and the history is today's.
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
  with ``BusinessClock.wall_time_after`` when it is set (``Engine.sla_deadline``; a
  breach action's and earliest deadline first's in ``Pool.deadline``), on
  the clock ``sim.calendar.SlaClocks`` gives the pass (the office's, or with the owner's
  schedule its owner's shift, its routing group's or the team's hours), the one the KPIs
  judge it on.
  Duty intervals and shift bells are wall-clock run minutes too.
* Events are scheduled only through ``Engine.schedule`` (inlined, the same code, in
  ``Pool.next_job``, the hot path), which stores the time as SimPy did (now + (t - now))
  and orders equal times by scheduling order; the committed expected results
  (``tests/expected``) were made by the SimPy loop and must not move.
* The horizon: the loop (``Engine.run``) processes no event at or after it (a touch
  ending exactly there is still in progress); no bell or alarm is set at or after it;
  ``enter`` and ``reenter`` drop passes that would begin at or after it. Then every
  pool's ``next_job`` becomes ``_stay_idle`` (this module) - nobody starts anything any
  more - and the agenda is applied up to just before the horizon, so passes that fell
  due after the last event are recorded as waiting (open). Team statistics close at the
  horizon.
* Team statistics (``Pool.stats``) cover [warm-up end, horizon]: queue-length areas are
  added where a count changes (``Pool.push``, ``Pool.next_job``, ``Pool._breach``;
  inlined there, the hot path) and only from ``warm`` on; busy minutes are clipped to
  the window when the touch starts (``Pool.next_job``).
* After any change run the equivalence tests, which compare this engine with
  ``Engine.EAGER`` (an event per agenda item) and require identical histories:
  ``tests/test_sim_behaviour.py::test_agenda_gives_the_history_of_an_event_per_item``
  and ``tests/test_sim_behaviour.py::test_agenda_matches_event_per_item_for_any_policy``;
  then the theory tests, ``tests/test_sim_theory.py`` (Erlang C, Little's law exactly
  per replication, busy and duty minutes, monotonicity in staff).
* This engine (``sim.engine`` with ``sim.pool``) is the reference. ``sim.engine_fast``
  runs the same algorithm compiled for the common policies (one team, a shared FIFO or
  Hot-first queue, no breach action; ``sim.engine_fast.eligible``), and ``sim.model``
  uses it whenever it can. A change here or in ``sim.pool`` to what those policies do
  must be made there too, or ``eligible`` must exclude it; ``tests/test_engine_fast.py``
  requires identical histories from both, and the equivalence tests above compare this
  engine's ``EAGER`` mode with the compiled one on every case it takes (``EAGER`` itself
  always runs here).
"""
from __future__ import annotations

import math
from heapq import heappop, heappush
from itertools import count

import numpy as np

from sim.calendar import BusinessClock, SlaClocks, per_sdr, shift_duty, working_intervals
from sim.episodes import HOT, INF, MQL, NOT_QUALIFIED, OPEN, QUALIFIED, UNREACHED, Draws, Episodes, per_lead
from sim.pool import Pool
from sim.scenario import Scenario


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
        sdr_duty = per_sdr(shift_duty(scn.calendar, team, days), team)
        policy = routing.policy
        # Routing groups: each SDR's (through its shift) and each lead's (``groups``).
        route = scn.route_groups()
        worker_group = None
        self.lead_group = None
        if route is not None:
            worker_group = per_sdr(route[0], team)
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
            self.overflow = Pool(self, 2, team.overflow_people, office * team.overflow_people, self.sdr.handle, "fifo",
                                 h_lead=self.sdr.h_lead)  # the SDRs' draws, as lists already
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
