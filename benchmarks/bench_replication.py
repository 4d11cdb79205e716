"""The speed targets of issue 12 section 3, this checkout against an earlier commit, side by
side in one run (alternating, so both see the same machine load).

    .venv/bin/python benchmarks/bench_replication.py --against 109ba37 --rounds 2 --reps 6
    .venv/bin/python benchmarks/bench_replication.py --against 109ba37 --big 1000000 --sweep 24

Each side runs in its own Python process with its own code on ``sys.path`` (the earlier
commit is checked out with ``git worktree`` into a temporary folder and removed after).

* baseline: median seconds (wall and CPU) per baseline replication and per replication's
  KPIs (target: 3x faster than 109ba37).
* ``--big N``: one quarter of about N leads (baseline.yaml with ``leads_per_week`` scaled,
  tables kept): seconds to simulate, seconds to write the tables, peak memory (targets:
  under 20 s, under 20 s, under 1.5 GB).
* ``--sweep N``: N baseline-policy replications serial and on 2 workers (target: 2
  workers at least 1.8x faster than serial).
* ``--sweep-policies N``: the lab's own sweep (every policy of policies.yaml, N
  replications each) serial and on 2 workers, this checkout only.

CPU seconds are printed beside wall seconds: on a machine shared with other jobs the
wall clock measures the load as much as the code.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import pathlib, statistics, sys, time
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root))
from sim.calendar import BusinessClock
from sim.kpis import replication_kpis
from sim.model import run_replication
from sim.scenario import load_scenario
scn = load_scenario(root / "data" / "scenarios" / "baseline.yaml")
clock = BusinessClock(scn.calendar)
run_replication(scn, 0, clock=clock)  # warm-up
rep_s, kpi_s, cpu_s = [], [], []
for r in range(int(sys.argv[2])):
    c0 = time.process_time()
    t0 = time.perf_counter(); rep = run_replication(scn, r, clock=clock); t1 = time.perf_counter()
    cpu_s.append(time.process_time() - c0)
    replication_kpis(scn, rep, clock); t2 = time.perf_counter()
    rep_s.append(t1 - t0); kpi_s.append(t2 - t1)
print(f"{statistics.median(rep_s):.3f} {statistics.median(cpu_s):.3f} {statistics.median(kpi_s):.3f} {len(rep.leads)}")
'''

CHILD_BIG = r'''
import pathlib, resource, sys, tempfile, time
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root))
from sim.experiment import run_scenario
from sim.output import write_result
from sim.scenario import load_scenario
weekly = float(sys.argv[2]) * 7 / 91
scn = load_scenario(root / "data" / "scenarios" / "baseline.yaml", [f"arrivals.leads_per_week={weekly:g}"])
c0, t0 = time.process_time(), time.perf_counter()
res = run_scenario(scn, replications=1, keep_tables=True, progress=False)
c1, t1 = time.process_time(), time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    write_result(res, pathlib.Path(tmp) / "out")
    c2, t2 = time.process_time(), time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(f"{t1 - t0:.1f} {c1 - c0:.1f} {t2 - t1:.1f} {c2 - c1:.1f} {peak:.2f} {len(res.leads)}")
'''

CHILD_SWEEP = r'''
import pathlib, sys, time
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root))
from sim.experiment import run_scenario
from sim.scenario import load_scenario
scn = load_scenario(root / "data" / "scenarios" / "baseline.yaml")
t0 = time.perf_counter()
run_scenario(scn, replications=int(sys.argv[2]), n_jobs=int(sys.argv[3]), progress=False)
print(f"{time.perf_counter() - t0:.1f}")
'''


CHILD_POLICIES = r'''
import pathlib, sys, time
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root))
from sim.experiment import run_sweep
from sim.scenario import load_policies
_, scenarios = load_policies(root / "data" / "scenarios" / "policies.yaml")
t0 = time.perf_counter()
run_sweep(scenarios, replications=int(sys.argv[2]), n_jobs=int(sys.argv[3]), progress=False)
print(f"{time.perf_counter() - t0:.1f}")
'''


def child(script: str, root: Path, *args) -> list[str]:
    done = subprocess.run([sys.executable, "-c", script, str(root), *map(str, args)], cwd=tempfile.gettempdir(),
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{root}: the benchmark child failed:\n{done.stderr}")
    return done.stdout.split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="109ba37", help="earlier commit to compare with")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--reps", type=int, default=6, help="replications per round and side")
    ap.add_argument("--big", type=int, default=0, help="leads of the big quarter (0: skip)")
    ap.add_argument("--big-old", action="store_true", help="also run the big quarter on the earlier commit (slow)")
    ap.add_argument("--sweep", type=int, default=0, help="replications of the sweep comparison (0: skip)")
    ap.add_argument("--sweep-policies", type=int, default=0, help="replications per policy of the policies.yaml sweep (0: skip)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.against], check=True)
        sides = ((args.against, old), ("this checkout", ROOT))
        try:
            rows = [(name, *child(CHILD, root, args.reps)) for _ in range(args.rounds) for name, root in sides]
            big = [(name, *child(CHILD_BIG, root, args.big)) for name, root in sides
                   if args.big and (root == ROOT or args.big_old)]
            sweep = [(name, jobs, *child(CHILD_SWEEP, root, args.sweep, jobs))
                     for name, root in sides for jobs in (1, 2)] if args.sweep else []
            sweep_p = [(jobs, *child(CHILD_POLICIES, ROOT, args.sweep_policies, jobs))
                       for jobs in (1, 2)] if args.sweep_policies else []
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    print(f"{'code':<15} {'replication s':>14} {'(CPU s)':>8} {'KPIs s':>8} {'leads':>7}")
    for name, rep, cpu, kpi, n in rows:
        print(f"{name:<15} {float(rep):>14.3f} {float(cpu):>8.3f} {float(kpi):>8.3f} {int(n):>7}")
    if big:
        print(f"\n{'code':<15} {'simulate s':>11} {'(CPU s)':>8} {'tables s':>9} {'(CPU s)':>8} {'peak GB':>8} {'leads':>9}")
        for name, sim_s, sim_c, tab_s, tab_c, peak, n in big:
            print(f"{name:<15} {sim_s:>11} {sim_c:>8} {tab_s:>9} {tab_c:>8} {peak:>8} {int(n):>9,}")
    if sweep:
        print(f"\n{'code':<15} {'workers':>7} {f'{args.sweep} replications s':>20} {'speed-up':>9}")
        serial = {}
        for name, jobs, sec in sweep:
            serial.setdefault(name, float(sec))
            print(f"{name:<15} {jobs:>7} {float(sec):>20.1f} {serial[name] / float(sec):>8.2f}x")
    if sweep_p:
        print(f"\npolicies.yaml sweep, {args.sweep_policies} replications per policy (this checkout)")
        for jobs, sec in sweep_p:
            print(f"workers {jobs}: {float(sec):.1f} s, speed-up {float(sweep_p[0][1]) / float(sec):.2f}x")


if __name__ == "__main__":
    main()
