"""The simulator against queueing theory: Erlang C, Little's law, infinite servers,
monotonicity in staff. Tolerances are confidence intervals over replications with a
Bonferroni correction for the number of checks in a test."""
import math

import numpy as np
import pytest
from scipy import stats

from sim.calendar import BusinessClock
from sim.model import run_replication
from common.paths import SCENARIOS
from sim.scenario import load_scenario

REPS = 12


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


def waits(scn, rep):
    r = run_replication(scn, rep)
    e = r.episodes
    warm, end = scn.calendar.warmup_days * 1440, (scn.calendar.horizon_days - 1) * 1440
    w = e.loc[(e["entered"] >= warm) & (e["entered"] < end), "response_minutes"].to_numpy()
    assert not np.isnan(w).any()
    return w, r


def _ci(x, level):
    x = np.asarray(x)
    h = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - h, x.mean() + h


@pytest.mark.parametrize("c,mean_service", [(2, 1.6), (4, 3.4), (6, 5.0)])
def test_mmc_matches_erlang_c(c, mean_service):
    lam, mu = 1.0, 1.0 / mean_service  # per minute
    a = lam / mu
    pw = erlang_c(c, a)
    t = 2.0
    theory = {
        "p_wait": pw,
        "mean_wait": pw / (c * mu - lam),
        "p_wait_gt_t": pw * math.exp(-(c * mu - lam) * t),
    }
    scn = mmc(c, mean_service)
    per_rep = {k: [] for k in theory}
    for rep in range(REPS):
        w, _ = waits(scn, rep)
        per_rep["p_wait"].append((w > 1e-9).mean())
        per_rep["mean_wait"].append(w.mean())
        per_rep["p_wait_gt_t"].append((w > t).mean())
    level = 1 - 0.05 / 9  # nine checks across the parametrised cases
    for k, value in theory.items():
        lo, hi = _ci(per_rep[k], level)
        assert lo <= value <= hi, f"c={c} {k}: Erlang C {value:.4f} outside [{lo:.4f}, {hi:.4f}]"


def test_littles_law_queue_length_equals_rate_times_wait():
    scn = mmc(4, 3.4)
    lq, lam_wq = [], []
    for rep in range(REPS):
        r = run_replication(scn, rep)
        e = r.episodes
        horizon = scn.calendar.horizon_days * 1440
        # Time-average number waiting over the whole run vs arrival rate x mean wait of
        # the leads that arrived in it (waits of the last few still open are negligible).
        lq.append(r.pools["sdr"]["mean_queue"])
        w = e["response_minutes"].fillna(horizon - e["entered"]).to_numpy()
        lam_wq.append(w.sum() / horizon)
    d = np.asarray(lq) - np.asarray(lam_wq)
    lo, hi = _ci(d, 0.99)
    assert lo <= 0 <= hi or abs(d.mean()) < 1e-3 * np.mean(lq)


def test_unlimited_team_never_queues():
    scn = load_scenario(SCENARIOS / "baseline.yaml", {"team.unlimited": True, "calendar.horizon_days": 28})
    r = run_replication(scn, 0)
    assert len(r.episodes) > 500
    assert (r.episodes["response_minutes"] == 0).all()


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
        prev = w


def test_more_sdrs_shorten_mean_response_on_the_baseline():
    means = []
    for sdrs in (3, 4, 5, 7):
        scn = load_scenario(SCENARIOS / "baseline.yaml", {"team.sdrs": sdrs, "calendar.horizon_days": 42})
        e = run_replication(scn, 0).episodes
        means.append(e["response_minutes"].mean())
    assert all(b <= a for a, b in zip(means, means[1:])), means


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
