"""Simulator benchmark (issue 2, section 7): run with ``python benchmarks/bench_simulator.py``.

Side by side on the M/M/c case (200,000 leads, c = 6, utilisation 0.83): leads per second
in this simulator (a whole replication: leads drawn and scored, queues worked, lead and
episode tables built), in ciw on the same model, and in a plain process-per-lead SimPy
model; then seconds per replication of the full baseline quarter, and a policy sweep
(100 policies x 20 replications by default) on all cores. Each M/M/c contender runs once
untimed (imports, caches) and then ``--repeat`` times; the best time counts, as timeit
does. Figures are printed; no target is asserted here (speed is not a test).

Targets (issue 2, kept by issue 12): >= 3x ciw and >= 1.5x plain SimPy on M/M/c; baseline
quarter < 0.25 s per replication; 100 x 20 sweep < 5 min on 2 cores. ``--cpu`` times the
M/M/c contenders in CPU seconds of their process instead of wall seconds: on a machine
shared with other jobs the wall clock measures the load as much as the code. The
side-by-side figures against an earlier commit are in ``benchmarks/bench_replication.py``;
results in ``benchmarks/results_simulator.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import simpy

from sim.experiment import run_sweep
from common.files import code_version
from sim.model import run_replication
from common.paths import SCENARIOS
from sim.scenario import load_policies, load_scenario

LAM, MEAN_SERVICE, C = 1.0, 5.0, 6  # per minute; rho = LAM * MEAN_SERVICE / C = 0.83
TIMER = time.perf_counter  # the contenders' clock (``--cpu``: time.process_time)


def best(run, n: int, repeat: int) -> tuple[float, float]:
    """Leads per second of the fastest of ``repeat`` timed runs (after one untimed run).

    Each contender returns (leads, mean wait, seconds) and times what it counts as the
    run: the lab a whole replication, the others their event loop only."""
    run(min(n, 20_000))
    rates, wait = [], float("nan")
    for _ in range(repeat):
        leads, wait, seconds = run(n)
        rates.append(leads / seconds)
    return max(rates), wait


def lab_mmc(n: int) -> tuple[int, float, float]:
    days = int(np.ceil(n / LAM / 1440))
    scn = load_scenario(SCENARIOS / "mmc.yaml", {"calendar.horizon_days": days, "calendar.warmup_days": 1,
                                                 "team.sdrs": C, "team.handling_time.mean_minutes": MEAN_SERVICE})
    t = TIMER()
    r = run_replication(scn, 0)
    dt = TIMER() - t
    return len(r.leads), float(r.episodes["response_minutes"].mean()), dt


def ciw_mmc(n: int) -> tuple[int, float, float]:
    import ciw

    net = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(LAM)],
                             service_distributions=[ciw.dists.Exponential(1 / MEAN_SERVICE)],
                             number_of_servers=[C])
    ciw.seed(1)
    sim = ciw.Simulation(net)
    t = TIMER()
    sim.simulate_until_max_time(n / LAM)
    dt = TIMER() - t
    recs = sim.get_all_records()
    return len(recs), float(np.mean([r.waiting_time for r in recs])), dt


def simpy_mmc(n: int) -> tuple[int, float, float]:
    rng = np.random.default_rng(1)
    env = simpy.Environment()
    sdrs = simpy.Resource(env, capacity=C)
    waits = []

    def lead(env, service):
        arrive = env.now
        with sdrs.request() as req:
            yield req
            waits.append(env.now - arrive)
            yield env.timeout(service)

    def source(env):
        gaps = rng.exponential(1 / LAM, n)
        services = rng.exponential(MEAN_SERVICE, n)
        for g, s in zip(gaps, services):
            yield env.timeout(g)
            env.process(lead(env, s))

    env.process(source(env))
    t = TIMER()
    env.run()
    dt = TIMER() - t
    return n, float(np.mean(waits)), dt


def baseline_quarter(reps: int) -> float:
    scn = load_scenario(SCENARIOS / "baseline.yaml")
    run_replication(scn, 0)  # warm caches and imports
    t = time.perf_counter()
    leads = 0
    for r in range(reps):
        leads += len(run_replication(scn, r).leads)
    return (time.perf_counter() - t) / reps, leads / reps


def sweep(policies: int, reps: int, jobs: int) -> float:
    _, pols = load_policies(SCENARIOS / "policies.yaml")
    names = list(pols)
    chosen = {f"{names[k % len(names)]}#{k}": pols[names[k % len(names)]] for k in range(policies)}
    t = time.perf_counter()
    run_sweep(chosen, replications=reps, n_jobs=jobs, progress=True)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--leads", type=int, default=200_000)
    ap.add_argument("--baseline-reps", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="timed M/M/c runs per contender (best counts)")
    ap.add_argument("--sweep-policies", type=int, default=100)
    ap.add_argument("--sweep-reps", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--cpu", action="store_true", help="time the M/M/c contenders in CPU seconds")
    a = ap.parse_args()
    global TIMER
    if a.cpu:
        TIMER = time.process_time
    import ciw

    print(f"smarketing-lab {code_version()}, Python {platform.python_version()}, simpy {simpy.__version__}, "
          f"ciw {ciw.__version__}, "
          f"{os.cpu_count()} cores ({platform.processor() or platform.machine()})")
    print(f"M/M/c, {a.leads:,} leads, c = {C}, utilisation {LAM * MEAN_SERVICE / C:.2f} "
          f"(Erlang C mean wait 2.94 min)")
    rows = [(name, *best(fn, a.leads, a.repeat))
            for name, fn in (("smarketing-lab", lab_mmc), ("ciw", ciw_mmc), ("plain SimPy", simpy_mmc))]
    for name, rate, wq in rows:
        print(f"  {name:16s} {rate:10,.0f} leads/{'CPU-' if a.cpu else ''}s   mean wait {wq:5.2f} min")
    print(f"  speed-up: {rows[0][1] / rows[1][1]:.2f}x ciw, {rows[0][1] / rows[2][1]:.2f}x plain SimPy")
    sec, n = baseline_quarter(a.baseline_reps)
    print(f"baseline quarter: {sec:.3f} s per replication ({n:,.0f} leads)")
    total = a.sweep_policies * a.sweep_reps
    dt = sweep(a.sweep_policies, a.sweep_reps, a.jobs)
    print(f"sweep: {a.sweep_policies} policies x {a.sweep_reps} replications on {a.jobs} workers: {dt:.1f} s "
          f"({dt / total:.3f} s per replication; 100 x 20 would take about {dt / total * 2000 / 60:.1f} min)")


if __name__ == "__main__":
    main()
