"""What the engine reads and writes, lead by lead: the outcomes of a pass and the bands,
the random numbers drawn before the run (``Draws``, read per lead with ``per_lead``), and
``Episodes``, one row per pass of a lead through a queue, which the engine
(``sim.engine``, ``sim.engine_fast``) fills and ``sim.model`` turns into a table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
# ones (big runs) are read a pass at a time (``sim.engine.Engine.start_touch``).
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
