"""The simulator against queueing theory: Erlang C, Little's law, infinite servers,
monotonicity in staff. Tolerances of the statistical checks are t-intervals over
independent replications with a Bonferroni correction for the number of checks in a
test; the bookkeeping identities (Little's law on one run) are exact."""
import math

import numpy as np
import pytest
from scipy import stats

from sim.calendar import BusinessClock
from sim.model import run_replication
from common.paths import SCENARIOS
from sim.scenario import load_scenario

DAY = 1440.0


def erlang_c(c: int, a: float) -> float:
    """P(wait > 0) in M/M/c with offered load a = lambda / mu (Erlang C formula)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def mmc(c: int, mean_service: float, horizon_days: int = 8):
    return load_scenario(
        SCENARIOS / "mmc.yaml",
        {"team.sdrs": c, "team.handling_time.mean_minutes": mean_service,
         "calendar.horizon_days": horizon_days, "calendar.warmup_days": 1},
    )


def _ci(x, level):
    x = np.asarray(x)
    h = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - h, x.mean() + h


def _ci_controlled(y, controls, level):
    """Interval for E[y] from replications, with control variates (Lavenberg and Welch
    1981; Law, Simulation Modeling and Analysis, section 11.3): per-replication
    quantities of known mean 0 that move with y. The intercept of the least-squares fit
    of y on [1, controls] estimates E[y]; its standard error gives a t-interval with
    n - 1 - q degrees of freedom."""
    y = np.asarray(y, dtype=float)
    Z = np.column_stack([np.ones(len(y)), *controls])
    beta, *_ = np.linalg.lstsq(Z, y, rcond=None)
    dof = len(y) - Z.shape[1]
    s2 = float(((y - Z @ beta) ** 2).sum()) / dof
    se = math.sqrt(s2 * np.linalg.inv(Z.T @ Z)[0, 0])
    h = stats.t.ppf(0.5 + level / 2, dof) * se
    return beta[0] - h, beta[0] + h


# c, mean service (minutes), replications, horizon (days, the first one warm-up). Arrivals
# are 1 a minute, so utilisation is 0.80, 0.85, 0.83. The horizons give each case about
# the same interval half-width relative to its Erlang C mean wait (see the test).
ERLANG_CASES = [(2, 1.6, 24, 36), (4, 3.4, 24, 52), (6, 5.0, 24, 64)]


@pytest.mark.parametrize("c,mean_service,reps,days", ERLANG_CASES)
def test_mmc_matches_erlang_c(c, mean_service, reps, days):
    """P(wait > 0), mean wait and P(wait > 2 min) of M/M/c against Erlang C.

    Independent replications; per replication the mean over the leads that entered
    after the warm-up day and more than two hours before the horizon (their touches have
    all ended by then). Two control variates of known mean 0 per replication - the
    relative excess of the mean handling time of those leads over 1/mu, and of their
    number over lambda times the window - absorb most of the run-to-run swing of the
    load, which is what makes waits vary; they halve the variance. Interval: t at level
    1 - 0.05/3 (three checks). The half-width of the mean-wait interval achieved with
    these seeds is 2.1% of the Erlang C mean wait Wq for c=2, 2.25% for c=4 and 2.15%
    for c=6 (without the controls it would be 3.0%, 3.5%, 2.8%); it is asserted to be
    under 2.5%, so a simulator whose mean wait were 5% off would fall outside it."""
    lam, mu = 1.0, 1.0 / mean_service  # per minute
    a = lam / mu
    pw = erlang_c(c, a)
    t = 2.0
    theory = {
        "p_wait": pw,
        "mean_wait": pw / (c * mu - lam),
        "p_wait_gt_t": pw * math.exp(-(c * mu - lam) * t),
    }
    scn = mmc(c, mean_service, days)
    clock, table = BusinessClock(scn.calendar), scn.points_table()
    warm, end = scn.calendar.warmup_days * DAY, days * DAY - 120.0
    per_rep = {k: [] for k in theory}
    load = ([], [])  # the control variates: handling and arrivals, relative excess
    for rep in range(reps):
        e = run_replication(scn, rep, clock=clock, table=table).episodes
        e = e[(e["entered"] >= warm) & (e["entered"] < end)]
        w = e["response_minutes"].to_numpy()
        handled = (e["done_at"] - e["first_touch"]).to_numpy()
        assert not np.isnan(w).any() and not np.isnan(handled).any()
        per_rep["p_wait"].append((w > 1e-9).mean())
        per_rep["mean_wait"].append(w.mean())
        per_rep["p_wait_gt_t"].append((w > t).mean())
        load[0].append(handled.mean() * mu - 1.0)
        load[1].append(len(w) / (lam * (end - warm)) - 1.0)
    level = 1 - 0.05 / len(theory)
    for k, value in theory.items():
        lo, hi = _ci_controlled(per_rep[k], load, level)
        assert lo <= value <= hi, f"c={c} {k}: Erlang C {value:.4f} outside [{lo:.4f}, {hi:.4f}]"
    lo, hi = _ci_controlled(per_rep["mean_wait"], load, level)
    half = (hi - lo) / 2 / theory["mean_wait"]
    assert half < 0.025, f"c={c}: mean-wait interval half-width {half:.2%} of Wq; a 5% bias could hide in it"


# ---- Little's law, exactly, on one replication ---------------------------------------------
SHIFTS = [{"name": "early", "people": 2, "start_hour": 7, "end_hour": 12},
          {"name": "late", "people": 2, "start_hour": 12, "end_hour": 20}]
LITTLE_CASES = {
    "baseline": ("baseline.yaml", {}),
    "mmc": ("mmc.yaml", {"calendar.horizon_days": 30}),
    "shifts, round robin, reassign, cap, AE": ("baseline.yaml", {
        "calendar.horizon_days": 49, "team.sdrs": 4, "team.shifts": SHIFTS, "routing.policy": "round_robin",
        "routing.reassign_on_sla_breach": True, "sla.mql_minutes": 30, "team.capacity_cap": 5,
        "team.escalate_hot_to_ae": True, "team.aes": 1}),
}


def _overlap(a, b, lo, hi):
    """Length of [a, b) inside [lo, hi), elementwise."""
    return np.clip(np.minimum(b, hi) - np.maximum(a, lo), 0.0, None)


def _max_held(start, stop, lo, hi):
    """Largest number of intervals [start, stop) open together for a positive time in [lo, hi)."""
    t = np.r_[start, stop]
    d = np.r_[np.ones(len(start)), -np.ones(len(stop))]
    times, inv = np.unique(t, return_inverse=True)
    level = np.cumsum(np.bincount(inv, weights=d))  # held on [times[j], times[j + 1])
    until = np.r_[times[1:], np.inf]
    held = (until > lo) & (times < hi)
    return int(level[held].max(initial=0))


@pytest.mark.parametrize("case", list(LITTLE_CASES))
def test_littles_law_holds_exactly_on_each_replication(case):
    """L = lambda W with nothing left over, per team, on one replication.

    A pass waits for its first touch in its team's queue from ``entered`` (the engine
    routes a pass to its team - SDRs, or AEs for escalated Hot leads - the instant it
    enters; round-robin passes wait in their owner's queue, and a reassignment moves
    them without changing the count) until ``first_touch``, or until the horizon if it
    was never touched. So the area under the number waiting over [warm-up end, horizon],
    ``mean_waiting_first_touch * window_minutes``, is the sum over the passes of the part
    of [entered, first_touch or horizon) inside that window, to rounding (rtol 1e-9);
    the maximum is the most such intervals open together for a positive time in it.
    Attempts waiting include the first touches, so their statistics are never smaller."""
    path, over = LITTLE_CASES[case]
    scn = load_scenario(SCENARIOS / path, over)
    r = run_replication(scn, 0)
    e = r.episodes
    warm, horizon = scn.calendar.warmup_days * DAY, scn.calendar.horizon_days * DAY
    for name, p in r.pools.items():
        assert p["window_minutes"] == horizon - warm
        mine = e[e["pool"] == name]
        start = mine["entered"].to_numpy()
        stop = mine["first_touch"].fillna(horizon).to_numpy()
        assert len(mine) > 500 and (stop > start).sum() > 100
        area = _overlap(start, stop, warm, horizon).sum()
        assert p["mean_waiting_first_touch"] * p["window_minutes"] == pytest.approx(area, rel=1e-9, abs=1e-9)
        assert p["max_waiting_first_touch"] == _max_held(start, stop, warm, horizon)
        assert p["mean_waiting_attempts"] >= p["mean_waiting_first_touch"] - 1e-12
        assert p["max_waiting_attempts"] >= p["max_waiting_first_touch"]
        if scn.team.max_attempts == 1:  # the only attempt is the first touch
            assert p["mean_waiting_attempts"] == pytest.approx(p["mean_waiting_first_touch"], rel=1e-12)
            assert p["max_waiting_attempts"] == p["max_waiting_first_touch"]
        elif name == "sdr":
            assert p["mean_waiting_attempts"] > p["mean_waiting_first_touch"]


@pytest.mark.parametrize("case", list(LITTLE_CASES))
def test_busy_and_duty_minutes_cover_the_window(case):
    """With one attempt per pass, each touched pass is one touch, [first_touch, done_at)
    (or to the horizon if it is still in progress there): the team's busy minutes are
    the sum of the parts of those touches inside [warm-up end, horizon). Duty minutes
    are the working minutes of the window times the staff (no shifts here)."""
    path, over = LITTLE_CASES[case]
    over = {**over, "team.max_attempts": 1}
    over.pop("team.shifts", None)
    scn = load_scenario(SCENARIOS / path, over)
    r = run_replication(scn, 0)
    e = r.episodes
    warm, horizon = scn.calendar.warmup_days * DAY, scn.calendar.horizon_days * DAY
    clock = BusinessClock(scn.calendar)
    staff = {"sdr": scn.team.sdrs, "ae": scn.team.aes}
    for name, p in r.pools.items():
        mine = e[(e["pool"] == name) & e["first_touch"].notna()]
        busy = _overlap(mine["first_touch"].to_numpy(), mine["done_at"].fillna(horizon).to_numpy(), warm, horizon)
        assert p["busy_minutes"] == pytest.approx(busy.sum(), rel=1e-9)
        assert p["duty_minutes"] == pytest.approx(staff[name] * float(clock.business_delay(warm, horizon)), rel=1e-12)
        assert 0.0 < p["busy_minutes"] / p["duty_minutes"] <= 1.0


def test_unlimited_team_never_queues():
    scn = load_scenario(SCENARIOS / "baseline.yaml", {"team.unlimited": True, "calendar.horizon_days": 28})
    r = run_replication(scn, 0)
    assert len(r.episodes) > 500
    assert (r.episodes["response_minutes"] == 0).all()
    assert r.pools["sdr"]["mean_waiting_attempts"] == 0.0 and r.pools["sdr"]["max_waiting_attempts"] == 0


def test_more_sdrs_never_lengthen_any_wait_fifo():
    # FCFS multi-server queues with service times attached to customers: adding a server
    # never delays any customer (Wolff, Stochastic Modeling and the Theory of Queues, 1989).
    prev = None
    for c in (5, 6, 7, 9):
        scn = mmc(c, 5.0, horizon_days=3)
        w = run_replication(scn, 0).episodes.sort_values("lead")["response_minutes"].to_numpy()
        w = np.where(np.isnan(w), np.inf, w)  # still waiting at the horizon: an infinite wait
        if prev is not None:
            assert np.all(w <= prev + 1e-9)
            assert np.any(w < prev - 1e-9)  # and the extra server does shorten some wait
        prev = w


def test_more_sdrs_shorten_mean_response_on_the_baseline():
    means = []
    for sdrs in (3, 4, 5, 7):
        scn = load_scenario(SCENARIOS / "baseline.yaml", {"team.sdrs": sdrs, "calendar.horizon_days": 42})
        e = run_replication(scn, 0).episodes
        means.append(e["response_minutes"].mean())
    assert all(b < a for a, b in zip(means, means[1:])), means


def test_business_clock_counts_only_working_minutes():
    scn = load_scenario(SCENARIOS / "baseline.yaml")
    clk = BusinessClock(scn.calendar)
    # Friday 2026-01-09 17:00 to Monday 2026-01-12 10:00 is 1 h + 1 h of work.
    fri_17 = 4 * 1440 + 17 * 60
    mon_10 = 7 * 1440 + 10 * 60
    assert clk.business_delay(fri_17, mon_10) == pytest.approx(120.0)
    # The inverse: 90 business minutes after Friday 17:00 is Monday 09:30.
    assert clk.wall_time_after(fri_17, 90.0) == pytest.approx(7 * 1440 + 9 * 60 + 30)
    # Martin Luther King Day (2026-01-19) is a holiday in the baseline.
    assert clk.business_delay(14 * 1440, 15 * 1440) == 0.0


# ---- earliest deadline first ------------------------------------------------------------------
def _edf_engine(c: int, hot_minutes: float, mql_minutes: float, handle: np.ndarray, policy: str = "edf",
                days: int = 30):
    """An engine on the M/M/c scenario (always open, wall-clock SLA, one touch, no decay,
    nothing re-enters) with ``c`` SDRs, the given SLAs and handling minutes per lead;
    the arrivals are fed to ``Engine.run`` directly."""
    from sim.engine import Engine
    from sim.episodes import Draws

    scn = load_scenario(SCENARIOS / "mmc.yaml", {
        "team.sdrs": c, "routing.policy": policy, "sla.hot_minutes": hot_minutes, "sla.mql_minutes": mql_minutes,
        "calendar.horizon_days": days, "calendar.warmup_days": 1})
    n = len(handle)
    draws = Draws(u_touch=np.full((1, 1, n), 0.5), handle=np.asarray(handle, float).reshape(1, 1, n), handle_ae=None)
    return Engine(scn, BusinessClock(scn.calendar), n, np.zeros(n, dtype=np.int64), draws, lambda *a: None)


def _run_engine(c, hot, mql, times, bands, handle, policy="edf"):
    eng = _edf_engine(c, hot, mql, handle, policy, days=int(times[-1] // DAY) + 30)
    ep = eng.run(np.asarray(times, float), np.arange(len(times)), np.asarray(bands))
    cols = ep.columns()
    start = np.full(len(times), np.nan)
    start[cols["lead"]] = cols["first_touch"]
    return start


def _edf_reference(c, sla, times, bands, handle):
    """Non-preemptive earliest deadline first on ``c`` identical servers, by its
    recursion: whenever a server is free and leads wait, it takes the one with the
    earliest deadline (arrival + SLA of its band), ties in arrival order; a server freed
    at time t sees every lead arrived at or before t."""
    import heapq

    n, free, start = len(times), [0.0] * c, np.full(len(times), np.nan)
    waiting, j = [], 0
    heapq.heapify(free)
    while j < n or waiting:
        t = free[0]
        if not waiting and times[j] > t:
            t = times[j]
        while j < n and times[j] <= t:
            heapq.heappush(waiting, (times[j] + sla[bands[j]], j))
            j += 1
        _, i = heapq.heappop(waiting)
        heapq.heappop(free)
        start[i] = t
        heapq.heappush(free, t + handle[i])
    return start


def test_edf_single_server_follows_the_hand_computed_schedule():
    """One SDR, 10-minute touches, Hot SLA 15 and MQL SLA 60 minutes (wall clock).
    Arrivals: MQL at 0 (deadline 60), MQL at 1 (61), Hot at 2 (17), Hot at 3 (18), Hot at
    25 (40). By hand: lead 0 is alone at 0 and runs to 10; at 10 the earliest deadline is
    lead 2 (17), at 20 lead 3 (18), at 30 lead 4 (40, arrived at 25) before lead 1 (61),
    which goes last at 40. FIFO would serve 0, 1, 2, 3, 4 at 0, 10, 20, 30, 40."""
    times, bands = [0.0, 1.0, 2.0, 3.0, 25.0], [1, 1, 0, 0, 0]
    handle = np.full(5, 10.0)
    assert _run_engine(1, 15, 60, times, bands, handle).tolist() == [0.0, 40.0, 10.0, 20.0, 30.0]
    assert _run_engine(1, 15, 60, times, bands, handle, "fifo").tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]


@pytest.mark.parametrize("c", [1, 2, 3])
def test_edf_equals_its_recursion_on_random_arrivals(c):
    """The engine's deadline discipline against the recursion above, to the last bit,
    on 3,000 leads with random bands, Poisson arrivals near saturation and exponential
    touches."""
    rng = np.random.default_rng(c)
    n = 3000
    times = np.cumsum(rng.exponential(1.0, n))
    bands = rng.integers(0, 2, n)
    handle = rng.exponential(0.9 * c, n)
    got = _run_engine(c, 5.0, 30.0, times, bands, handle)
    want = _edf_reference(c, (5.0, 30.0), times, bands, handle)
    np.testing.assert_array_equal(got, want)


def test_edf_conserves_the_total_wait_with_equal_touches():
    """Conservation (Kleinrock 1965): with identical touch times on c servers, the k-th
    touch starts at the same time under any discipline that never idles with work
    waiting, so the sum of the waits is the same under EDF, priority and FIFO, exactly,
    while who waits changes."""
    rng = np.random.default_rng(5)
    n = 4000
    times = np.cumsum(rng.exponential(1.0, n))
    bands = rng.integers(0, 2, n)
    handle = np.full(n, 1.9)
    waits = {p: _run_engine(2, 5.0, 20.0, times, bands, handle, p) - times for p in ("edf", "priority", "fifo")}
    assert waits["edf"].sum() == pytest.approx(waits["fifo"].sum(), rel=1e-12)
    assert waits["priority"].sum() == pytest.approx(waits["fifo"].sum(), rel=1e-12)
    hot = bands == 0
    assert waits["priority"][hot].mean() < waits["edf"][hot].mean() < waits["fifo"][hot].mean()


def test_edf_mm1_mean_waits_match_conservation_and_cobham():
    """M/M/1, lambda 0.8, mu 1, 30% Hot. Any non-preemptive discipline that ignores touch
    times keeps the M/M/1 mean wait rho / (mu - lambda) = 4 (conservation law); with a gap
    between the SLAs larger than any wait, EDF is priority by band and the Hot mean wait
    is Cobham's R / (1 - rho_hot) with R = lambda E[S^2] / 2 = 0.8 (R / ((1 - rho_hot)
    (1 - rho)) = 6.25 for MQLs). Twelve replications of 30,000 leads, the first 5,000 left out;
    t-intervals at 1 - 0.05/4."""
    lam, mu, p_hot = 0.8, 1.0, 0.3
    rho, rho1, R = lam / mu, p_hot * lam / mu, lam / mu**2
    theory = {"edf_all": rho / (mu - lam), "prio_hot": R / (1 - rho1), "prio_mql": R / ((1 - rho1) * (1 - rho))}
    per = {k: [] for k in theory}
    per["edf_hot_below_fifo"] = []
    for rep in range(12):
        rng = np.random.default_rng(100 + rep)
        n = 30_000
        times = np.cumsum(rng.exponential(1 / lam, n))
        bands = (rng.random(n) >= p_hot).astype(np.int64)
        handle = rng.exponential(1 / mu, n)
        keep = slice(5000, None)
        w = _run_engine(1, 2.0, 8.0, times, bands, handle) - times
        per["edf_all"].append(w[keep].mean())
        per["edf_hot_below_fifo"].append(w[keep][bands[keep] == 0].mean() - w[keep].mean())
        w = _run_engine(1, 0.0 + 1e-6, 1e6, times, bands, handle) - times
        b = bands[keep]
        per["prio_hot"].append(w[keep][b == 0].mean())
        per["prio_mql"].append(w[keep][b == 1].mean())
    level = 1 - 0.05 / 4
    for k, value in theory.items():
        lo, hi = _ci(per[k], level)
        assert lo <= value <= hi, f"{k}: theory {value:.3f} outside [{lo:.3f}, {hi:.3f}]"
        assert (hi - lo) / 2 < 0.1 * value  # tight enough that a 15% error would show
    assert _ci(per["edf_hot_below_fifo"], level)[1] < 0  # Hot leads wait less than average under EDF
