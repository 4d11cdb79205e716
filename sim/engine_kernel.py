"""The compiled kernel of ``sim.engine_fast``: ``sim.engine.Engine``'s algorithm for one
team on a shared FIFO or Hot-first queue, in numba, over state packed into a few arrays.

Each function names the reference step it reproduces (``Pool.next_job``,
``Engine.apply_until``, ...); the rules for changing it are in ``sim.engine_fast``. The
state lives in a few arrays, for every array passed to a compiled function costs two
atomic reference-count updates per call (these were most of the time); the slots of each
array are named below.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.typed import List

from sim.episodes import HOT, MQL, NOT_QUALIFIED, OPEN, QUALIFIED, UNREACHED
from sim.scenario import REASONS

DAY = 1440.0
# Event kinds (the callbacks of sim.engine and sim.pool) and agenda kinds.
DONE, BELL, ALARM = 0, 1, 2
PUSH, ENTER = 0, 1
# Decay curve kinds (sim.scenario.DecayCurve.kind).
DECAY_KINDS = {"none": 0, "exponential": 1, "power": 2, "mixture": 3}
# Stage codes of sim.model.STAGES written by the follow-up.
SAL, RECYCLED, DISQUALIFIED = 2, 8, 9
NOT_ICP = REASONS.index("not_icp")
# S, floats: the clock and statistics, then parameters.
(NOW, EVENT_TIME, DUE, ALARM_AT, Q_LAST, AREA_ATT, AREA_FIRST, BUSY,
 WARM, HORIZON, BEFORE_HORIZON, PRIORITY, PASSES, NURTURE_ON, MAX_ATTEMPTS, NO_DECAY, SHARE,
 PC_HOT, PC_MQL, PQ_HOT, PQ_MQL) = range(21)
C_DECAY, Q_DECAY = 21, 29  # two decay curves of 8 values each (``_curve``)
S_SIZE = 37
# G, integers: counters and queue pointers.
(WAITING, WAITING_FIRST, PEAK_ATT, PEAK_FIRST, EID, SEQ, F_POS, IDLE_COUNT, IDLE_SEQ, STOPPED, USED_FIRST,
 N_EVENTS, N_AGENDA, N_ROWS, N_LOG, QH_HEAD, QH_TAIL, QR_HEAD, QR_TAIL) = range(19)
G_SIZE = 19
# LI, per lead: (n, 5) integers (whether a lead waits is the reference engine's bookkeeping
# for shared-queue entries that go stale; a FIFO or Hot-first queue has none).
L_ATTEMPT, L_EPISODE, L_ROW, L_RESULT, L_BAND = range(5)
# WF, per worker floats: duty interval now or next [since, until), idle until (NaN: not idle).
W_SINCE, W_UNTIL, W_IDLE = range(3)
# WI, per worker integers: duty pointer, lead in hand, idle order, number of duty intervals.
W_PTR, W_CURRENT, W_IDLE_SEQ, W_NINT = range(4)
# Rows of passes: integers RI, floats RF.
R_LEAD, R_NUMBER, R_BAND, R_OWNER, R_ATTEMPTS, R_OUTCOME = range(6)
R_ENTERED, R_FIRST_TOUCH, R_DONE_AT = range(3)


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
