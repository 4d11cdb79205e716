"""The engine of ``sim.engine`` compiled (numba) for the common policies: one SDR team
working a shared FIFO or Hot-first queue, with no action on an SLA breach.

Why: a baseline replication spends about 80% of its time in the engine's Python event
handling (about 34,000 events a quarter); the same steps compiled take a few
milliseconds. What it runs is ``sim.engine.Engine``'s algorithm, step for step - the
same event heap ordered by (time, number), the same agenda merged with the sorted fresh
arrivals, the same alarm rule, the same order in which idle workers are woken, the
follow-up of ``sim.model._FollowUp`` after each pass - so it gives the same history to
the last bit. ``sim.engine`` stays the reference and the only engine of every other
policy (round robin, earliest deadline first, breach actions, AE escalation, an
unlimited team, regional routing).

Rules
-----
* A change to ``sim.engine.Engine``, ``sim.pool.Pool`` or ``sim.model._FollowUp`` that
  changes what a policy handled here does must be made here too (``sim.engine_kernel``),
  or ``eligible`` must exclude it.
* ``tests/test_engine_fast.py`` runs both engines on the same draws for the policies
  handled here and requires identical episodes, leads, event logs and team statistics;
  the engine's own equivalence tests (``Engine.EAGER``) compare the Python engine with
  this one whenever a case is eligible. Run them, and ``tests/test_expected.py``, after
  any change.
* Compiled once per machine (``cache=True`` keeps the machine code beside ``sim/engine_kernel.py``);
  ``ENABLED = False`` (or the environment variable ``SMARKETING_PYTHON_ENGINE=1``) runs
  the reference engine everywhere.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np

from sim.calendar import BusinessClock, per_sdr, shift_duty
from sim.engine import Engine
from sim.engine_kernel import (
    ALARM_AT, AREA_ATT, AREA_FIRST, BEFORE_HORIZON, BUSY, C_DECAY, DECAY_KINDS, DUE, G_SIZE, HORIZON, MAX_ATTEMPTS,
    N_LOG, N_ROWS, NO_DECAY, NURTURE_ON, PASSES, PC_HOT, PC_MQL, PEAK_ATT, PEAK_FIRST, PQ_HOT, PQ_MQL, PRIORITY,
    Q_DECAY, Q_LAST, R_ATTEMPTS, R_BAND, R_DONE_AT, R_ENTERED, R_FIRST_TOUCH, R_LEAD, R_NUMBER, R_OUTCOME, R_OWNER,
    S_SIZE, SHARE, USED_FIRST, W_CURRENT, W_NINT, W_SINCE, W_UNTIL, WARM, L_BAND, L_EPISODE, L_ROW, _run,
)
from sim.episodes import OPEN, Draws, Episodes
from sim.scenario import REASONS, Scenario

ENABLED = os.environ.get("SMARKETING_PYTHON_ENGINE", "") not in ("1", "true", "yes")

def eligible(scn: Scenario) -> bool:
    """Does ``scn`` use only what the compiled engine runs (see the module docstring)?"""
    r, t = scn.routing, scn.team
    return (ENABLED and not Engine.EAGER and r.policy in ("fifo", "priority") and r.on_breach is None
            and not t.escalate_hot_to_ae and not t.unlimited and t.sdrs >= 1
            and getattr(r, "route_by", None) is None)


def warm_up(scenarios) -> None:
    """Load the compiled engine in this process (from numba's cache, or compile it) with a
    two-day run of the first scenario it takes; processes forked afterwards share it."""
    from sim.model import run_replication

    for scn in scenarios:
        if eligible(scn):
            cal = scn.calendar.model_copy(update={"horizon_days": 2, "warmup_days": 1})
            run_replication(scn.model_copy(update={"calendar": cal}), 0)
            return


def _curve(c) -> np.ndarray:
    """A decay curve as (kind, tau, tau_slow, weight_fast, slow share, floor, d0, alpha)."""
    return np.array([DECAY_KINDS[c.kind], c.tau_minutes, c.tau_slow_minutes, c.weight_fast,
                     1.0 - c.weight_fast - c.floor, c.floor, c.d0_minutes, c.alpha], dtype=np.float64)


def _announce_compile() -> None:
    """Say so on a terminal when this call will compile the engine (no machine code loaded
    here and none valid in numba's cache beside this file): half a minute of silence
    otherwise looks like a hang. Not in logs, notebooks or captured output, whose readers
    see the run's own progress lines. Reads numba's cache index through private names; if
    they change, nothing is said."""
    try:
        cold = sys.stderr.isatty() and not _run.signatures and not _run._cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - a message is all that is at stake
        cold = False
    if cold:
        print("Compiling the simulator's fast engine (once per machine, about half a minute)...",
              file=sys.stderr, flush=True)


class _Stats:
    """``Pool.stats`` of the compiled run."""

    def __init__(self, d: dict):
        self._d = d

    def stats(self) -> dict:
        return dict(self._d)


class FastEngine:
    """``sim.engine.Engine`` for the scenarios of ``eligible``, with its interface
    (``run``, ``sdr.stats()``, ``release``, the counts); the follow-up (``sim.model``'s
    ``_FollowUp``) is run inside and writes into the object passed as ``on_done``."""

    def __init__(self, scn: Scenario, clock: BusinessClock, n_leads: int, band: np.ndarray, draws: Draws, on_done, **_routing):
        self.scn, self.follow = scn, on_done
        self.n = n_leads
        self.band0 = np.ascontiguousarray(band, dtype=np.int64)
        self.draws = draws
        self.horizon = scn.calendar.horizon_days * 1440.0
        self.warm = min(scn.calendar.warmup_days * 1440.0, self.horizon)
        self.ae = self.overflow = None
        self.reassigned = self.breaches = self.escalated = 0
        self.sdr: _Stats | None = None

    def run(self, times: np.ndarray, leads: np.ndarray, bands: np.ndarray) -> Episodes:
        scn, n, follow = self.scn, self.n, self.follow
        team = scn.team
        warm, horizon = self.warm, self.horizon
        duty = per_sdr(shift_duty(scn.calendar, team, scn.calendar.horizon_days + 60), team)  # as Engine's
        m = len(duty)
        width = max(1, max(len(d) for d in duty))
        WD = np.full((2, m, width), np.inf)  # duty interval starts, ends
        WI = np.zeros((m, 4), dtype=np.int64)
        WI[:, W_CURRENT] = -1
        WF = np.full((m, 3), np.nan)
        for k, d in enumerate(duty):
            WI[k, W_NINT] = len(d)
            if d:
                WD[0, k, :len(d)] = [s for s, _ in d]
                WD[1, k, :len(d)] = [e for _, e in d]
            WF[k, W_SINCE] = d[0][0] if d else math.inf
            WF[k, W_UNTIL] = d[0][1] if d else -math.inf
        duty_minutes = sum(max(0.0, min(e, horizon) - max(s, warm)) for d in duty for s, e in d)
        LI = np.zeros((n, 5), dtype=np.int64)
        LI[:, L_EPISODE] = -1
        LI[:, L_ROW] = -1
        LI[:, L_BAND] = self.band0
        LF = np.zeros(n)
        leads = np.ascontiguousarray(leads, dtype=np.int64)
        bands = np.ascontiguousarray(bands, dtype=np.int64)
        times = np.ascontiguousarray(times, dtype=np.float64)
        n_first = len(leads)
        # Rows of passes: the first passes, known in bulk, then room for later ones.
        cap = n_first + max(1024, n_first // 4)
        RI = np.empty((cap, 6), dtype=np.int64)
        RI[:n_first, R_LEAD] = leads
        RI[:n_first, R_NUMBER] = 0
        RI[:n_first, R_BAND] = bands
        RI[:n_first, R_OWNER] = -1
        RI[:n_first, R_ATTEMPTS] = 0
        RI[:n_first, R_OUTCOME] = OPEN
        RF = np.empty((cap, 3))
        RF[:n_first, R_ENTERED] = times
        RF[:n_first, R_FIRST_TOUCH:] = np.nan
        S = np.zeros(S_SIZE)
        S[DUE] = times[0] if n_first else math.inf
        S[ALARM_AT] = math.inf
        S[Q_LAST] = warm
        S[WARM], S[HORIZON], S[BEFORE_HORIZON] = warm, horizon, math.nextafter(horizon, -math.inf)
        S[PRIORITY] = scn.routing.policy == "priority"
        S[PASSES] = self.draws.u_touch.shape[1]
        S[NURTURE_ON] = scn.nurture.enabled and scn.nurture.engagement_events_per_week > 0
        S[MAX_ATTEMPTS] = team.max_attempts
        dc, dq = scn.decay.contact, scn.decay.qualification
        S[NO_DECAY] = dc.kind == "none" and dq.kind == "none"
        S[SHARE] = team.no_contact_handling_share
        cp, qp = scn.conversion.contact_prob, scn.conversion.qualify_prob
        S[PC_HOT], S[PC_MQL], S[PQ_HOT], S[PQ_MQL] = cp["hot"], cp["mql"], qp["hot"], qp["mql"]
        S[C_DECAY:C_DECAY + 8] = _curve(dc)
        S[Q_DECAY:Q_DECAY + 8] = _curve(dq)
        G = np.zeros(G_SIZE, dtype=np.int64)
        G[N_ROWS] = n_first
        QB = np.empty((2, n + 1), dtype=np.int64)
        # Heaps (``_hpush``): the events' rows are (time, number, kind, worker, alarm time), the
        # agenda's (time, number, kind, lead, band).
        EV = np.empty((4 * m + int(WI[:, W_NINT].sum()) + 16, 5))
        AF, AI, AG = np.append(times, math.inf), np.stack([leads, bands]), np.empty((1024, 5))
        cv = scn.conversion
        recycle = np.array([cv.recycle_after_days.get(r, math.nan) for r in REASONS], dtype=np.float64)
        cross = np.stack([np.asarray(c, dtype=np.float64) for c in follow.cross])
        Fo = (follow.u_sal, follow.u_reason, follow.disp_days, np.array(follow.accept, dtype=np.float64),
              np.asarray(follow.mix_cum, dtype=np.float64), recycle, cross, follow.sal_at, follow.decided_at,
              follow.handoff_at, follow.reason, follow.state)
        LG = np.empty((cap, 4))  # stage changes: lead, stage code, time, reason
        gaps = np.asarray(np.diff(team.attempt_offsets_minutes()), dtype=np.float64)
        if len(gaps) == 0:
            gaps = np.zeros(1)
        _announce_compile()
        RI, RF, LG = _run(S, G, LI, LF, WF, WI, WD, QB, self.draws.u_touch, self.draws.handle, EV, RI, RF,
                          AF, AI, AG, Fo, LG, gaps)

        LG = LG[:int(G[N_LOG])]
        follow.log = (LG[:, 0].astype(np.int64), LG[:, 1].astype(np.int64), LG[:, 2].copy(), LG[:, 3].astype(np.int64))
        window = horizon - warm
        self.sdr = _Stats(dict(
            busy_minutes=float(S[BUSY]), duty_minutes=duty_minutes, window_minutes=window,
            mean_waiting_first_touch=float(S[AREA_FIRST]) / window, mean_waiting_attempts=float(S[AREA_ATT]) / window,
            max_waiting_first_touch=int(G[PEAK_FIRST]), max_waiting_attempts=int(G[PEAK_ATT]), max_open_per_person=0))
        ep = Episodes.__new__(Episodes)
        ep.first = (leads, bands, times, np.zeros(n_first, dtype=np.int64))
        ep.n_first = n_first
        ep.used_first = int(G[USED_FIRST])
        rows = int(G[N_ROWS])
        RI, RF = RI[:rows], RF[:rows]
        ep.lead, ep.number, ep.band = (RI[n_first:, c].tolist() for c in (R_LEAD, R_NUMBER, R_BAND))
        ep.entered = RF[n_first:, R_ENTERED].tolist()
        ep.pool = [0] * len(ep.lead)
        ep.first_touch, ep.done_at = RF[:, R_FIRST_TOUCH].copy(), RF[:, R_DONE_AT].copy()
        ep.owner, ep.attempts, ep.outcome = (RI[:, c].copy() for c in (R_OWNER, R_ATTEMPTS, R_OUTCOME))
        return ep

    def release(self):
        self.draws = self.follow = None
