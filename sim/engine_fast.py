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
* A change to ``sim.engine.Engine`` or ``sim.model._FollowUp`` that changes what a
  policy handled here does must be made here too, or ``eligible`` must exclude it.
* ``tests/test_engine_fast.py`` runs both engines on the same draws for the policies
  handled here and requires identical episodes, leads, event logs and team statistics;
  the engine's own equivalence tests (``Engine.EAGER``) compare the Python engine with
  this one whenever a case is eligible. Run them, and ``tests/test_expected.py``, after
  any change.
* Compiled once per machine (``cache=True`` keeps the machine code beside this file);
  ``ENABLED = False`` (or the environment variable ``SMARKETING_PYTHON_ENGINE=1``) runs
  the reference engine everywhere.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
from numba import njit
from numba.typed import List

from sim.calendar import BusinessClock, working_intervals
from sim.engine import Engine
from sim.episodes import HOT, MQL, NOT_QUALIFIED, OPEN, QUALIFIED, UNREACHED, Draws, Episodes
from sim.scenario import REASONS, Scenario

ENABLED = os.environ.get("SMARKETING_PYTHON_ENGINE", "") not in ("1", "true", "yes")

DAY = 1440.0
# Event kinds (the callbacks of sim.engine and sim.pool) and agenda kinds.
DONE, BELL, ALARM = 0, 1, 2
PUSH, ENTER = 0, 1
# Decay curve kinds (sim.scenario.DecayCurve.kind).
DECAY_KINDS = {"none": 0, "exponential": 1, "power": 2, "mixture": 3}
# Stage codes of sim.model.STAGES written by the follow-up.
SAL, RECYCLED, DISQUALIFIED = 2, 8, 9
NOT_ICP = REASONS.index("not_icp")
# The state lives in a few arrays, for every array passed to a compiled function costs
# two atomic reference-count updates per call (these were most of the time).
# S, floats: the clock and statistics, then parameters.
(NOW, EVENT_TIME, DUE, ALARM_AT, Q_LAST, AREA_ATT, AREA_FIRST, BUSY,
 WARM, HORIZON, BEFORE_HORIZON, PRIORITY, PASSES, NURTURE_ON, MAX_ATTEMPTS, NO_DECAY, SHARE,
 PC_HOT, PC_MQL, PQ_HOT, PQ_MQL) = range(21)
C_DECAY, Q_DECAY = 21, 29  # two decay curves of 8 values each (``_curve``)
S_SIZE = 37
# G, integers: counters and queue pointers.
(WAITING, WAITING_FIRST, PEAK_ATT, PEAK_FIRST, EID, SEQ, F_POS, IDLE_COUNT, IDLE_SEQ, STOPPED, USED_FIRST,
 N_EVENTS, N_AGENDA, N_ROWS, N_LOG, QH_HEAD, QH_TAIL, QR_HEAD, QR_TAIL) = range(19)
# LI, per lead: (n, 6) integers.
L_WAITING, L_ATTEMPT, L_EPISODE, L_ROW, L_RESULT, L_BAND = range(6)
# WF, per worker floats: duty interval now or next [since, until), idle until (NaN: not idle).
W_SINCE, W_UNTIL, W_IDLE = range(3)
# WI, per worker integers: duty pointer, lead in hand, idle order, number of duty intervals.
W_PTR, W_CURRENT, W_IDLE_SEQ, W_NINT = range(4)
# Rows of passes: integers RI, floats RF.
R_LEAD, R_NUMBER, R_BAND, R_OWNER, R_ATTEMPTS, R_OUTCOME = range(6)
R_ENTERED, R_FIRST_TOUCH, R_DONE_AT = range(3)


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


# ---- heaps ------------------------------------------------------------------------------
# The event heap and the agenda are binary heaps of rows (time, number, kind, who, extra)
# in a float64 array kept in a one-element list (so that it can grow), ordered by (time,
# number): numbers are unique, so any heap pops the rows in the order heapq does.
# (numba's heapq on a typed list of tuples took ten times as long.)
@njit(inline="always")
def _hpush(H, G, slot, t, num, kind, who, extra):
    arr = H[0]
    n = G[slot]
    if n == arr.shape[0]:
        grown = np.empty((2 * n, 5))
        grown[:n] = arr
        H[0] = grown
        arr = grown
    j = n
    while j > 0:
        p = (j - 1) >> 1
        if arr[p, 0] < t or (arr[p, 0] == t and arr[p, 1] < num):
            break
        for c in range(5):
            arr[j, c] = arr[p, c]
        j = p
    arr[j, 0] = t
    arr[j, 1] = num
    arr[j, 2] = kind
    arr[j, 3] = who
    arr[j, 4] = extra
    G[slot] = n + 1


@njit(inline="always")
def _hpop(H, G, slot):
    arr = H[0]
    n = G[slot] - 1
    G[slot] = n
    t, num, kind, who, extra = arr[0, 0], arr[0, 1], arr[0, 2], arr[0, 3], arr[0, 4]
    if n > 0:
        lt, ln = arr[n, 0], arr[n, 1]
        j = 0
        while True:
            c = 2 * j + 1
            if c >= n:
                break
            r = c + 1
            if r < n and (arr[r, 0] < arr[c, 0] or (arr[r, 0] == arr[c, 0] and arr[r, 1] < arr[c, 1])):
                c = r
            if lt < arr[c, 0] or (lt == arr[c, 0] and ln < arr[c, 1]):
                break
            for q in range(5):
                arr[j, q] = arr[c, q]
            j = c
        for q in range(5):
            arr[j, q] = arr[n, q]
    return t, num, kind, who, extra


@njit(cache=True)
def _grow(H, used):
    """Double the rows of the array in holder ``H`` when ``used`` fills it."""
    arr = H[0]
    if used == arr.shape[0]:
        grown = np.empty((2 * used, arr.shape[1]), dtype=arr.dtype)
        grown[:used] = arr
        H[0] = grown


@njit(inline="always")
def _decay(S, o, d):
    # The spelling of sim.scenario.DecayCurve.scalar, term for term (same rounding).
    k = int(S[o])
    if k == 0:
        return 1.0
    if k == 1:
        return math.exp(-d / S[o + 1])
    if k == 2:
        return (1.0 + d / S[o + 6]) ** -S[o + 7]
    return S[o + 3] * math.exp(-d / S[o + 1]) + S[o + 4] * math.exp(-d / S[o + 2]) + S[o + 5]


@njit(inline="always")
def _hold_until(S, G, t):
    # Pool.hold_until
    dt = t - S[Q_LAST]
    S[AREA_ATT] += G[WAITING] * dt
    S[AREA_FIRST] += G[WAITING_FIRST] * dt
    if G[WAITING] > G[PEAK_ATT]:
        G[PEAK_ATT] = G[WAITING]
    if G[WAITING_FIRST] > G[PEAK_FIRST]:
        G[PEAK_FIRST] = G[WAITING_FIRST]
    S[Q_LAST] = t


@njit(inline="always")
def _on_duty(WF, WI, WD, k, now):
    # Pool.on_duty
    if WF[k, W_SINCE] <= now < WF[k, W_UNTIL]:
        return True
    j = WI[k, W_PTR]
    nint = WI[k, W_NINT]
    while j < nint and WD[1, k, j] <= now:
        j += 1
    WI[k, W_PTR] = j
    if j < nint:
        WF[k, W_SINCE] = WD[0, k, j]
        WF[k, W_UNTIL] = WD[1, k, j]
        return WD[0, k, j] <= now
    return False


@njit(inline="always")
def _set_idle(G, WF, WI, k, until):
    WF[k, W_IDLE] = until
    WI[k, W_IDLE_SEQ] = G[IDLE_SEQ]
    G[IDLE_SEQ] += 1
    G[IDLE_COUNT] += 1


@njit(inline="always")
def _at(S, G, AGh, t, kind, i, b):
    # Engine.at: an agenda item.
    G[SEQ] += 1
    _hpush(AGh, G, N_AGENDA, t, G[SEQ], kind, i, b)
    if t < S[DUE]:
        S[DUE] = t


@njit(cache=True)
def _next_job(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, k):
    # Pool.next_job: worker k is free now; with Engine.start_touch inlined.
    if G[STOPPED]:
        return
    now = S[NOW]
    if WF[k, W_SINCE] <= now < WF[k, W_UNTIL] or _on_duty(WF, WI, WD, k, now):
        i = -1
        size = QB.shape[1]  # ring buffers of n + 1: a lead waits in one place at a time
        if G[QH_HEAD] != G[QH_TAIL]:
            i = QB[0, G[QH_HEAD]]
            G[QH_HEAD] = (G[QH_HEAD] + 1) % size
        elif G[QR_HEAD] != G[QR_TAIL]:
            i = QB[1, G[QR_HEAD]]
            G[QR_HEAD] = (G[QR_HEAD] + 1) % size
        if i >= 0:
            if now > S[Q_LAST]:
                _hold_until(S, G, now)
            G[WAITING] -= 1
            # -- Engine.start_touch: contact decided now, at the delay the lead has waited.
            LI[i, L_WAITING] = 0
            e, a, b = LI[i, L_EPISODE], LI[i, L_ATTEMPT], LI[i, L_BAND]
            r = LI[i, L_ROW]
            RI, RF = RIh[0], RFh[0]
            if a == 0:
                RF[r, R_FIRST_TOUCH] = now
                RI[r, R_OWNER] = k
                G[WAITING_FIRST] -= 1
            u = UT[a, e, i]
            if S[NO_DECAY] > 0:
                c = 1.0
                q = 1.0
            else:
                c = _decay(S, C_DECAY, now - LF[i])
                q = _decay(S, Q_DECAY, RF[r, R_FIRST_TOUCH] - LF[i])
            if u < S[PC_HOT + b] * c:
                LI[i, L_RESULT] = QUALIFIED if u < S[PQ_HOT + b] * c * q else NOT_QUALIFIED
                h = UH[a, e, i]
            else:
                LI[i, L_RESULT] = OPEN
                h = UH[a, e, i] * S[SHARE]
            # -- back in Pool.next_job
            end = now + h
            warm, horizon = S[WARM], S[HORIZON]
            if now < warm or end > horizon:
                S[BUSY] += max(0.0, min(end, horizon) - max(now, warm))
            else:
                S[BUSY] += h
            WI[k, W_CURRENT] = i
            et = S[EVENT_TIME]
            _hpush(EVh, G, N_EVENTS, et + (now + h - et), G[EID], DONE, k, 0.0)
            G[EID] += 1
            return
        _set_idle(G, WF, WI, k, WF[k, W_UNTIL])
    elif WI[k, W_PTR] < WI[k, W_NINT]:
        _set_idle(G, WF, WI, k, -1.0)


@njit(cache=True)
def _push(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, i, fresh):
    # Pool.push, shared queues without breach actions.
    now = S[NOW]
    if now > S[Q_LAST]:
        _hold_until(S, G, now)
    G[WAITING] += 1
    if fresh:
        G[WAITING_FIRST] += 1
    LI[i, L_WAITING] = 1
    size = QB.shape[1]
    if S[PRIORITY] > 0 and LI[i, L_BAND] == HOT:  # Hot first
        QB[0, G[QH_TAIL]] = i
        G[QH_TAIL] = (G[QH_TAIL] + 1) % size
    else:
        QB[1, G[QR_TAIL]] = i
        G[QR_TAIL] = (G[QR_TAIL] + 1) % size
    if G[IDLE_COUNT] > 0:  # Pool._wake_any: the first idle worker (in the order they went idle) on duty
        best, best_seq = -1, 0
        for j in range(WF.shape[0]):
            if WF[j, W_IDLE] > now and (best < 0 or WI[j, W_IDLE_SEQ] < best_seq):  # NaN: not idle
                best, best_seq = j, WI[j, W_IDLE_SEQ]
        if best >= 0:
            WF[best, W_IDLE] = np.nan
            G[IDLE_COUNT] -= 1
            _next_job(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, best)


@njit(cache=True)
def _apply_until(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, AF, AI, AGh, T):
    # Engine.apply_until: every agenda item due at or before T, in time order, each at its
    # own time; with Engine.enter inlined for both of its callers.
    p = G[F_POS]
    tf = AF[p]  # the fresh arrivals end with an infinite sentinel
    th = AGh[0][0, 0] if G[N_AGENDA] > 0 else np.inf
    while True:
        if tf <= th:
            if tf > T:
                break
            G[F_POS] = p + 1
            S[NOW] = tf
            i, b, r = AI[0, p], AI[1, p], p
            p += 1
            tf = AF[p]
        else:
            if th > T:
                break
            t, _, kf, fi, fb = _hpop(AGh, G, N_AGENDA)
            S[NOW] = t
            i, b = int(fi), int(fb)
            r = -1
            if kf == PUSH:  # a later attempt falls due
                _push(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, i, False)
                th = AGh[0][0, 0] if G[N_AGENDA] > 0 else np.inf
                continue
        # -- Engine.enter: lead i becomes routable now (a new pass); r >= 0 for a first pass.
        now = S[NOW]
        if now < S[HORIZON]:
            e = LI[i, L_EPISODE] + 1
            if e < S[PASSES]:
                LI[i, L_EPISODE] = e
                LI[i, L_BAND] = b
                LI[i, L_ATTEMPT] = 0
                if r < 0:  # a later pass: a new row
                    r = G[N_ROWS]
                    _grow(RIh, r)
                    _grow(RFh, r)
                    RI, RF = RIh[0], RFh[0]
                    RI[r, R_LEAD] = i
                    RI[r, R_NUMBER] = e
                    RI[r, R_BAND] = b
                    RI[r, R_OWNER] = -1
                    RI[r, R_ATTEMPTS] = 0
                    RI[r, R_OUTCOME] = OPEN
                    RF[r, R_ENTERED] = now
                    RF[r, R_FIRST_TOUCH] = np.nan
                    RF[r, R_DONE_AT] = np.nan
                    G[N_ROWS] = r + 1
                else:
                    G[USED_FIRST] = r + 1
                LI[i, L_ROW] = r
                LF[i] = now
                _push(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, i, True)
        th = AGh[0][0, 0] if G[N_AGENDA] > 0 else np.inf
    S[DUE] = tf if tf < th else th


@njit(inline="always")
def _arm(S, G, WF, EVh):
    # Engine.arm: after an event, wake an idle worker on duty at the next agenda item.
    t = S[DUE]
    if t >= S[ALARM_AT] or t >= S[HORIZON] or G[IDLE_COUNT] == 0:
        return
    found = False
    for j in range(WF.shape[0]):
        if WF[j, W_IDLE] > t:  # NaN (not idle) compares False
            found = True
            break
    if found:
        S[ALARM_AT] = t
        now = S[EVENT_TIME]
        _hpush(EVh, G, N_EVENTS, now + (t - now), G[EID], ALARM, -1, t)
        G[EID] += 1


@njit(cache=True)
def _run(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EV, RI, RF, AF, AI, AG, Fo, LG, gaps):
    """Engine.run from its first ``next_job`` calls to the horizon; the follow-up of
    sim.model._FollowUp inlined at the end of a pass. Returns the rows of passes (RI, RF)
    and the stage changes (LG), grown as needed from the arrays given."""
    # Growable arrays sit in one-element lists made here (made from Python, a typed list
    # compiles its methods at first use in every process).
    EVh, RIh, RFh, AGh, LGh = List([EV]), List([RI]), List([RF]), List([AG]), List([LG])
    u_sal, u_reason, disp_days, accept, mix_cum, recycle_days, cross, sal_at, decided_at, handoff_at, reason, state = Fo
    horizon = S[HORIZON]
    m = WF.shape[0]
    for k in range(m):
        _next_job(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, k)
    for k in range(m):  # Pool.shift_bells
        for j in range(WI[k, W_NINT]):
            s = WD[0, k, j]
            if 0.0 < s < horizon:
                _hpush(EVh, G, N_EVENTS, S[EVENT_TIME] + (s - S[EVENT_TIME]), G[EID], BELL, k, 0.0)
                G[EID] += 1
    _arm(S, G, WF, EVh)
    while G[N_EVENTS] > 0 and EVh[0][0, 0] < horizon:
        t, _, kf, fk, targ = _hpop(EVh, G, N_EVENTS)
        k = int(fk)
        S[EVENT_TIME] = t
        if kf == ALARM:  # Engine._alarm
            if targ >= S[ALARM_AT]:
                S[ALARM_AT] = np.inf
            t = max(t, targ)
        # Engine.event_begins
        if S[DUE] <= t:
            _apply_until(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, AF, AI, AGh, t)
        S[NOW] = t
        if kf == BELL:
            if WF[k, W_IDLE] == WF[k, W_IDLE]:  # idle
                WF[k, W_IDLE] = np.nan
                G[IDLE_COUNT] -= 1
                _next_job(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, k)
            _arm(S, G, WF, EVh)
            continue
        if kf == ALARM:
            _arm(S, G, WF, EVh)
            continue
        # DONE: Engine.finish_touch, then the worker's next move.
        i = WI[k, W_CURRENT]
        WI[k, W_CURRENT] = -1
        e, a = LI[i, L_EPISODE], LI[i, L_ATTEMPT]
        r = LI[i, L_ROW]
        RIh[0][r, R_ATTEMPTS] = a + 1
        outcome = LI[i, L_RESULT]
        done = True
        if outcome == OPEN:
            if a + 1 < S[MAX_ATTEMPTS]:
                LI[i, L_ATTEMPT] = a + 1
                _at(S, G, AGh, t + gaps[a], PUSH, i, 0)
                done = False
            else:
                outcome = UNREACHED
        if done:
            RIh[0][r, R_OUTCOME] = outcome
            RFh[0][r, R_DONE_AT] = t
            # -- sim.model._FollowUp.__call__: what follows a finished pass.
            band = LI[i, L_BAND]
            _grow(LGh, G[N_LOG])
            LG = LGh[0]
            j = G[N_LOG]
            G[N_LOG] = j + 1
            nurture_from = np.nan
            if outcome == QUALIFIED:
                decided = t + disp_days[e, i] * DAY
                handoff_at[i] = t
                decided_at[i] = decided
                LG[j, 0] = i
                LG[j, 2] = decided
                if u_sal[e, i] < accept[band]:
                    sal_at[i] = decided
                    state[i] = SAL
                    LG[j, 1] = SAL
                    LG[j, 3] = -1
                else:
                    u = u_reason[e, i]
                    rr = 0
                    while rr < len(mix_cum) and mix_cum[rr] <= u:  # searchsorted(side="right")
                        rr += 1
                    rr = min(rr, len(recycle_days) - 1)
                    reason[i] = rr
                    LG[j, 3] = rr
                    if rr == NOT_ICP:
                        state[i] = DISQUALIFIED
                        LG[j, 1] = DISQUALIFIED
                    else:
                        state[i] = RECYCLED
                        LG[j, 1] = RECYCLED
                        days = recycle_days[rr]
                        if days == days:  # revisit after N days
                            tr = decided + days * DAY
                            if tr < horizon:
                                _at(S, G, AGh, tr, ENTER, i, band)
                        elif S[NURTURE_ON] > 0:
                            nurture_from = decided
            else:  # contacted but not qualified, or never reached: back to nurture
                state[i] = RECYCLED
                LG[j, 0] = i
                LG[j, 1] = RECYCLED
                LG[j, 2] = t
                LG[j, 3] = -1
                if S[NURTURE_ON] > 0:
                    nurture_from = t
            if nurture_from == nurture_from:  # re-scored on new engagement only
                tn = nurture_from + cross[e + 1, i]
                if tn < np.inf and tn < horizon:
                    _at(S, G, AGh, tn, ENTER, i, MQL)
        _next_job(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, k)
        if S[DUE] < S[ALARM_AT] and G[IDLE_COUNT] > 0:
            _arm(S, G, WF, EVh)
    G[STOPPED] = 1  # the horizon: nobody starts anything any more
    _apply_until(S, G, LI, LF, WF, WI, WD, QB, UT, UH, EVh, RIh, RFh, AF, AI, AGh, S[BEFORE_HORIZON])
    S[NOW] = horizon
    if horizon > S[Q_LAST]:
        _hold_until(S, G, horizon)
    return RIh[0], RFh[0], LGh[0]


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
        self.scn, self.clock, self.follow = scn, clock, on_done
        self.n = n_leads
        self.band0 = np.ascontiguousarray(band, dtype=np.int64)
        self.draws = draws
        self.horizon = scn.calendar.horizon_days * 1440.0
        self.warm = min(scn.calendar.warmup_days * 1440.0, self.horizon)
        self.ae = self.overflow = None
        self.reassigned = self.breaches = self.escalated = 0
        self.sdr: _Stats | None = None

    def _duty(self) -> list[list[tuple[float, float]]]:
        # The duty intervals of Engine.__init__, worker by worker.
        scn = self.scn
        days = scn.calendar.horizon_days + 60
        if scn.team.shifts:
            groups = [working_intervals(scn.calendar, days, s) for s in scn.team.shifts]
            return [g for g, s in zip(groups, scn.team.shifts) for _ in range(s.people)]
        return [working_intervals(scn.calendar, days)] * scn.team.sdrs

    def run(self, times: np.ndarray, leads: np.ndarray, bands: np.ndarray) -> Episodes:
        scn, n, follow = self.scn, self.n, self.follow
        team = scn.team
        warm, horizon = self.warm, self.horizon
        duty = self._duty()
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
        LI = np.zeros((n, 6), dtype=np.int64)
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
        G = np.zeros(19, dtype=np.int64)
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
