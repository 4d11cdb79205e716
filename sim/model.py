"""One replication of the funnel: draw, queue, follow through, and tabulate.

Randomness flows from one ``SeedSequence`` per replication, spawned into one stream per
source (arrivals, attributes, handling, touches, sales, nurture, deals), so that a policy
change does not reshuffle arrivals or any other source (common random numbers).
"""
from __future__ import annotations

import gc
import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.arrivals import ENGAGEMENT, SEGMENT_NAMES, arrival_times, sample_leads, segment_code
from sim.calendar import BusinessClock
from sim.engine import Engine
from sim.engine_fast import FastEngine, eligible as fast_engine_eligible
from sim.episodes import MQL, QUALIFIED, Draws, Episodes
from sim.columns import labels, numbered
from sim.scenario import REASONS, Scenario

STREAMS = ("arrivals", "attributes", "handling", "touch", "sales", "nurture", "deals")
WEEK = 7 * 1440.0
DAY = 1440.0
NURTURE_EVENTS = 12  # engagement events drawn per nurture spell; enough for a quarter
CROSSING_BLOCK = 65_536  # leads per block of ``_FollowUp.nurture_crossings``


def streams(seed: int, replication: int) -> dict[str, np.random.Generator]:
    """Independent generators for replication ``replication`` of base seed ``seed``."""
    rep = np.random.SeedSequence(seed).spawn(replication + 1)[replication]
    return {name: np.random.default_rng(s) for name, s in zip(STREAMS, rep.spawn(len(STREAMS)))}


@dataclass
class Replication:
    """What one replication produces."""

    leads: pd.DataFrame      # one row per lead, CRM export columns plus run-time minutes
    episodes: pd.DataFrame   # one row per pass through the SDR/AE queue
    pools: dict              # per team ("sdr", "ae"): busy, duty and queue statistics over
                             # [warm-up end, horizon] (``sim.pool.Pool.stats``)
    reassigned: int
    _log: tuple = None        # the follow-up's stage changes (lead, stage, time, reason lists)
    _horizon: float = 0.0
    _events: pd.DataFrame | None = None
    breaches: int = 0         # first touches still waiting at their SLA deadline (with routing.on_breach)
    escalated: int = 0        # of those, moved to another team (routing.on_breach = escalate)
    other_pools: dict | None = None  # statistics of teams without KPIs of their own ("overflow")

    @property
    def events(self) -> pd.DataFrame:
        """One row per lead per stage change (built on first use: sweeps rarely need it)."""
        if self._events is None:
            self._events = _event_log(self.leads, self.episodes, self._log, self._horizon)
        return self._events


class _FollowUp:
    """Decides what follows an SDR episode (SAL, recycle, nurture) inside the run."""

    def __init__(self, scn: Scenario, n: int, score: np.ndarray, fit_points: np.ndarray, mql_cut: float,
                 rng_sales: np.random.Generator, rng_nurture: np.random.Generator, passes: int):
        self.scn = scn
        cv = scn.conversion
        self.accept = (cv.sal_accept_prob["hot"], cv.sal_accept_prob["mql"])
        mix = np.array([cv.rejection_mix.get(r, 0.0) for r in REASONS])
        self.mix_cum = np.cumsum(mix / mix.sum())
        # Sales draws per (pass, lead): acceptance, reason, disposition delay.
        self.u_sal = rng_sales.random((passes, n))
        self.u_reason = rng_sales.random((passes, n))
        self.disp_days = rng_sales.exponential(cv.disposition_days_mean, (passes, n))
        self.mql_cut = mql_cut
        # Spell 0 starts from the full score at creation; later spells from the fit points
        # alone (the engagement that made the lead an MQL is spent).
        # Kept as arrays (read one value per nurture spell, ``.item``): a list per lead
        # would cost 32 bytes a value on a big run.
        self.cross = [self.nurture_crossings(rng_nurture, spell, score if spell == 0 else fit_points)
                      for spell in range(passes + 1)]
        self.sal_at = np.full(n, np.nan)
        self.decided_at = np.full(n, np.nan)
        self.handoff_at = np.full(n, np.nan)
        self.reason = np.full(n, -1, dtype=np.int8)
        self.state = np.zeros(n, dtype=np.int8)  # a CODE of STAGES
        # Stage changes decided here, as four parallel lists (lead, stage code, time,
        # reason): no tuple per change for the garbage collector to scan.
        self.log: tuple[list, list, list, list] = ([], [], [], [])
        self._note_lead, self._note_stage, self._note_time, self._note_reason = (x.append for x in self.log)
        self.engine: Engine | None = None
        self.nurture_on = scn.nurture.enabled and scn.nurture.engagement_events_per_week > 0

    def nurture_crossings(self, rng: np.random.Generator, spell: int, s0: np.ndarray) -> np.ndarray:
        """Minutes from the start of a nurture spell until each lead's score first reaches
        the MQL cut-off (inf if not within ``NURTURE_EVENTS`` engagement events).

        Engagement arrives as a Poisson process (``engagement_events_per_week``), each
        event adding ``points_per_event``; the score decays linearly
        (``score_decay_points_per_week``). Drawn spell by spell, in bulk."""
        nu = self.scn.nurture
        n = len(s0)
        if not nu.enabled or nu.engagement_events_per_week <= 0:
            return np.full(n, np.inf)
        gaps = rng.exponential(1.0, (NURTURE_EVENTS, n))  # drawn at once: the stream's order
        gaps /= nu.engagement_events_per_week
        s0 = np.asarray(s0, dtype=float)
        gain = np.arange(1, NURTURE_EVENTS + 1)[:, None] * nu.points_per_event
        out = np.empty(n)
        # Column blocks: each lead's sums are its own, so blocks give the same numbers as
        # one pass over all leads, without its (NURTURE_EVENTS, n) temporaries.
        for a in range(0, n, CROSSING_BLOCK):
            b = min(a + CROSSING_BLOCK, n)
            t = np.cumsum(gaps[:, a:b], axis=0)  # running sums in event order, as a scalar loop adds them
            ok = s0[None, a:b] + gain - nu.score_decay_points_per_week * t >= self.mql_cut
            first = ok.argmax(axis=0)
            out[a:b] = np.where(ok.any(axis=0), t[first, np.arange(b - a)] * WEEK, np.inf)
        return out

    def note(self, i: int, code: int, t: float, reason: int):
        self._note_lead(i); self._note_stage(code); self._note_time(t); self._note_reason(reason)

    def __call__(self, i: int, e: int, outcome: int, now: float, d1: float):
        eng = self.engine
        band = eng.band[i]
        if outcome == QUALIFIED:
            decided = now + self.disp_days[e, i] * DAY
            self.handoff_at[i] = now
            self.decided_at[i] = decided
            if self.u_sal[e, i] < self.accept[band]:
                self.sal_at[i] = decided
                self.state[i] = CODE["sal"]
                self.note(i, CODE["sal"], decided, -1)
                return
            r = int(np.searchsorted(self.mix_cum, self.u_reason[e, i], side="right"))
            r = min(r, len(REASONS) - 1)
            self.reason[i] = r
            reason = REASONS[r]
            if reason == "not_icp":
                self.state[i] = CODE["disqualified"]
                self.note(i, CODE["disqualified"], decided, r)
                return
            self.state[i] = CODE["recycled"]
            self.note(i, CODE["recycled"], decided, r)
            days = self.scn.conversion.recycle_after_days.get(reason)
            if days is not None:  # revisit after N days (no_timing, blocker)
                eng.reenter(i, band, decided + days * DAY)
                return
            if self.nurture_on:  # no_intent, wrong_role: nurture, re-score
                self._nurture(i, e, decided)
            return
        # Contacted but not qualified, or never reached: back to marketing nurture.
        self.state[i] = RECYCLED
        self.note(i, RECYCLED, now, -1)
        if self.nurture_on:
            self._nurture(i, e, now)

    def _nurture(self, i: int, e: int, start: float):
        # Re-scored on new engagement only: the engagement points that made it an MQL
        # are spent, the fit points stay.
        t = start + self.cross[e + 1].item(i)
        if t < math.inf:
            self.engine.reenter(i, MQL, t)


OUTCOMES = ("open", "won", "lost", "no_decision")
STAGES = ("lead", "mql", "sal", "sql", "opportunity", "won", "lost", "no_decision", "recycled", "disqualified")
CODE = {s: k for k, s in enumerate(STAGES)}
RECYCLED = CODE["recycled"]


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector. A replication allocates hundreds of thousands
    of small objects that live until it ends; the collector would scan them again and
    again and find nothing to free (reference counting frees the rest)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_replication(scn: Scenario, replication: int = 0, seed: int | None = None,
                    clock: BusinessClock | None = None, table=None) -> Replication:
    """Simulate one replication of ``scn``; returns its tables (see ``Replication``)."""
    with gc_paused():
        return _replication(scn, replication, seed, clock, table)


def _replication(scn: Scenario, replication: int, seed: int | None, clock: BusinessClock | None,
                 table) -> Replication:
    seed = scn.seed if seed is None else seed
    rng = streams(seed, replication)
    clock = clock or BusinessClock(scn.calendar)
    table = table or scn.points_table()
    horizon = scn.calendar.horizon_days * DAY

    t = arrival_times(scn, rng["arrivals"])
    leads = sample_leads(scn, t, rng["attributes"])
    t = leads["t_created"].to_numpy()  # region time zones move and trim arrivals (sim.arrivals)
    n = len(leads)
    pts = table.points_matrix(leads)
    score = pts.to_numpy().sum(axis=1)
    eng_cols = [c for c in pts.columns if c in ENGAGEMENT]
    fit_points = score - pts[eng_cols].to_numpy().sum(axis=1)
    band0 = table.thresholds.band(score)

    team = scn.team
    passes = 1 + scn.nurture.max_reentries
    A = team.max_attempts
    draws = Draws(
        u_touch=rng["touch"].random((A, passes, n)),
        handle=team.handling_time.sample(rng["handling"], (A, passes, n)),
        handle_ae=(team.ae_handling_time.sample(rng["handling"], (A, passes, n))
                   if team.escalate_hot_to_ae or (scn.routing.on_breach == "escalate"
                                                  and scn.routing.escalate_to == "ae") else None),
    )
    follow = _FollowUp(scn, n, score, fit_points, table.thresholds.mql, rng["sales"], rng["nurture"], passes)
    # The compiled engine where the scenario's policies allow it; the same history (sim.engine_fast).
    engine_cls = FastEngine if fast_engine_eligible(scn) else Engine
    engine = engine_cls(scn, clock, n, np.where(band0 <= MQL, band0, MQL), draws, follow,
                        groups=scn.lead_groups(leads["region"], leads["segment"]))
    follow.engine = engine

    # Routed at creation: Hot and MQL. Nurture and Cold enter later, if engagement
    # lifts them over the MQL cut-off before the horizon.
    routed = np.flatnonzero(band0 <= MQL)
    later = np.flatnonzero(band0 > MQL)
    t_later = t[later] + follow.cross[0][later]
    later, t_later = later[t_later < horizon], t_later[t_later < horizon]
    times = np.concatenate([t[routed], t_later])
    idx = np.concatenate([routed, later])
    bands = np.concatenate([band0[routed], np.full(len(later), MQL)])
    order = np.argsort(times, kind="stable")
    ep = engine.run(times[order], idx[order], bands[order])

    episodes = _episodes_frame(ep, clock)
    pools = {"sdr": engine.sdr.stats()}
    if engine.ae is not None:
        pools["ae"] = engine.ae.stats()
    other = {"overflow": engine.overflow.stats()} if engine.overflow is not None else None
    # The queue's draws and state are spent: let them go before the lead table is built
    # (on a million leads they are a few hundred MB).
    engine.release()
    del draws, ep, times, idx, bands, order
    follow.engine = None
    follow.u_sal = follow.u_reason = follow.disp_days = follow.cross = None
    leads_out = _follow_through(scn, leads, score, band0, episodes, follow, rng["deals"], horizon)
    return Replication(leads_out, episodes, pools, engine.reassigned, follow.log, horizon,
                       breaches=engine.breaches, escalated=engine.escalated, other_pools=other)


def _episodes_frame(ep: Episodes, clock: BusinessClock) -> pd.DataFrame:
    c = ep.columns()
    df = pd.DataFrame(
        {
            "lead": np.asarray(c["lead"], dtype=np.int64),
            "episode": np.asarray(c["number"], dtype=np.int16),
            "band": labels(("hot", "mql"), np.asarray(c["band"], dtype=np.int8)),
            "entered": np.asarray(c["entered"], dtype=float),
            "first_touch": np.asarray(c["first_touch"], dtype=float),
            "owner": np.asarray(c["owner"], dtype=np.int32),
            "attempts": np.asarray(c["attempts"], dtype=np.int16),
            "outcome": labels(("open", "qualified", "not_qualified", "unreached"), np.asarray(c["outcome"], dtype=np.int8)),
            "done_at": np.asarray(c["done_at"], dtype=float),
            "pool": labels(("sdr", "ae", "overflow"), np.asarray(c["pool"], dtype=np.int8)),
        }
    )
    df["response_minutes"] = df["first_touch"] - df["entered"]
    touched = df["first_touch"].notna().to_numpy()
    bm = np.full(len(df), np.nan)
    bm[touched] = clock.business_delay(df["entered"].to_numpy()[touched], df["first_touch"].to_numpy()[touched])
    df["response_business_minutes"] = bm
    return df


def _follow_through(scn: Scenario, leads: pd.DataFrame, score, band0, episodes: pd.DataFrame,
                    follow: _FollowUp, rng: np.random.Generator, horizon: float):
    """SQL -> opportunity -> close for accepted leads, sampled in bulk (no contention)."""
    n = len(leads)
    cv = scn.conversion
    # Draw for every lead so the numbers do not depend on which leads were accepted.
    u_opp = rng.random(n)
    u_close = rng.random(n)
    sql_delay = rng.exponential(1.0, n) * DAY
    opp_delay = rng.exponential(cv.days_sql_to_opportunity_mean, n) * DAY
    close_z = rng.exponential(1.0, n)
    amount_z = rng.standard_normal(n)

    seg_idx = segment_code(leads["employee_count"].to_numpy())
    by_seg = lambda d: np.array([d[s] for s in SEGMENT_NAMES])[seg_idx]  # noqa: E731
    p_opp = by_seg(cv.sql_to_opportunity)
    p_win = by_seg(cv.win_prob)
    p_nd = by_seg(cv.no_decision_prob)
    close_days = by_seg(cv.days_to_close_mean)
    med = by_seg(cv.deal_size_median)

    sal_at = follow.sal_at
    accepted = np.isfinite(sal_at) & (sal_at < horizon)
    sql_at = np.where(accepted, sal_at + sql_delay, np.nan)
    sql_ok = np.isfinite(sql_at) & (sql_at < horizon)
    opp = sql_ok & (u_opp < p_opp)
    opp_at = np.where(opp, sql_at + opp_delay, np.nan)
    opp_ok = np.isfinite(opp_at) & (opp_at < horizon)
    amount = np.where(opp_ok, np.round(med * np.exp(cv.deal_size_sigma * amount_z), -2), np.nan)
    close_at = np.where(opp_ok, opp_at + close_z * close_days * DAY, np.nan)
    closed = opp_ok & (close_at < horizon)
    # 0 open, 1 won, 2 lost, 3 no decision (OUTCOMES)
    outcome = np.where(~closed, 0, np.where(u_close < p_win, 1, np.where(u_close < p_win + p_nd, 3, 2)))

    # Per-lead summaries of the queue episodes (rows of a lead are in episode order).
    lead = episodes["lead"].to_numpy()
    number = episodes["episode"].to_numpy()
    first = number == 0
    mql_at = np.full(n, np.nan)
    mql_at[lead[first]] = episodes["entered"].to_numpy()[first]
    owner = np.full(n, -1)
    owner[lead[first]] = episodes["owner"].to_numpy()[first]
    first_resp = np.full(n, np.nan)
    np.fmin.at(first_resp, lead, episodes["first_touch"].to_numpy())  # fmin skips NaN
    n_passes = np.bincount(lead, minlength=n)
    last = number == n_passes[lead] - 1
    last_open = np.zeros(n, dtype=bool)
    last_open[lead[last]] = (episodes["outcome"] == "open").to_numpy()[last]

    # Final stage: the furthest thing that happened before the horizon.
    stage = np.full(n, CODE["lead"], dtype=np.int8)
    stage[n_passes > 0] = CODE["mql"]
    st = follow.state
    stage[(st == CODE["recycled"]) & ~last_open] = CODE["recycled"]
    stage[(st == CODE["disqualified"]) & ~last_open] = CODE["disqualified"]
    pending = np.isfinite(follow.decided_at) & (follow.decided_at >= horizon)
    stage[pending] = CODE["mql"]  # handed to sales, no decision yet at the horizon
    stage[accepted] = CODE["sal"]
    stage[sql_ok] = CODE["sql"]
    stage[opp_ok] = CODE["opportunity"]
    stage[closed] = np.asarray([0, CODE["won"], CODE["lost"], CODE["no_decision"]])[outcome[closed]]

    cols = {
        "score": score,
        "band": labels(("hot", "mql", "nurture", "cold"), band0),
        "t_mql": mql_at,
        "t_first_response": first_resp,
        "owner_id": numbered("SDR", owner, 2),
        "t_sal": np.where(accepted, sal_at, np.nan),
        "t_handoff": follow.handoff_at,
        "t_decided": follow.decided_at,
        "t_sql": np.where(sql_ok, sql_at, np.nan),
        "t_opportunity": np.where(opp_ok, opp_at, np.nan),
        "t_closed": np.where(closed, close_at, np.nan),
        "outcome": labels(OUTCOMES, outcome),
        "stage": labels(STAGES, stage),
        "rejection_reason": labels(REASONS, follow.reason),
        "amount": amount,
        "passes": n_passes,
    }
    # One concatenation (no copy of the attributes first): lead_id, attributes, outcomes.
    ids = pd.DataFrame({"lead_id": numbered("L", np.arange(n), 6)}, index=leads.index)
    return pd.concat([ids, leads, pd.DataFrame(cols, index=leads.index)], axis=1)


def _event_log(leads: pd.DataFrame, episodes: pd.DataFrame, log: tuple, horizon: float) -> pd.DataFrame:
    """One row per lead per stage change, in time order, plus the first touch of each
    pass through the queue (``first_touch``). Each pass's ``mql`` and ``first_touch`` rows
    carry the band it was routed with (``routed_band``): a lead re-entering from nurture
    is routed as an MQL whatever its band at creation."""
    parts = [pd.DataFrame({"lead": np.arange(len(leads)), "stage": "lead", "t": leads["t_created"].to_numpy(),
                           "reason": -1})]
    band = episodes["band"].to_numpy()
    parts.append(pd.DataFrame({"lead": episodes["lead"].to_numpy(), "stage": "mql",
                               "t": episodes["entered"].to_numpy(), "reason": -1, "routed_band": band}))
    touched = episodes["first_touch"].notna().to_numpy()
    parts.append(pd.DataFrame({"lead": episodes["lead"].to_numpy()[touched], "stage": "first_touch",
                               "t": episodes["first_touch"].to_numpy()[touched], "reason": -1,
                               "routed_band": band[touched]}))
    if log and len(log[0]):
        lead, code, t, reason = (np.asarray(x) for x in log)
        keep = t < horizon
        parts.append(pd.DataFrame({"lead": lead[keep].astype(np.int64),
                                   "stage": np.asarray(STAGES, dtype=object)[code[keep].astype(int)],
                                   "t": t[keep].astype(float), "reason": reason[keep].astype(int)}))
    for stage, col in (("sql", "t_sql"), ("opportunity", "t_opportunity")):
        m = leads[col].notna().to_numpy()
        parts.append(pd.DataFrame({"lead": np.flatnonzero(m), "stage": stage, "t": leads[col].to_numpy()[m], "reason": -1}))
    m = leads["t_closed"].notna().to_numpy()
    parts.append(pd.DataFrame({"lead": np.flatnonzero(m), "stage": leads["outcome"].to_numpy()[m],
                               "t": leads["t_closed"].to_numpy()[m], "reason": -1}))
    ev = pd.concat(parts, ignore_index=True)
    ev = ev.sort_values(["t", "lead"], kind="stable").reset_index(drop=True)
    ev["rejection_reason"] = np.asarray(REASONS + ("",), dtype=object)[ev["reason"].to_numpy()]
    ev.loc[ev["reason"] < 0, "rejection_reason"] = None
    return ev.drop(columns="reason")
