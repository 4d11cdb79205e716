"""One baseline replication and its KPIs, this checkout against an earlier commit, side by
side in one run (alternating, so both see the same machine load).

    .venv/bin/python benchmarks/bench_replication.py --against 109ba37 --rounds 2 --reps 6

Each side runs in its own Python process with its own code on ``sys.path`` (the earlier
commit is checked out with ``git worktree`` into a temporary folder and removed after).
Prints the median seconds per replication and per replication's KPIs.
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
rep_s, kpi_s = [], []
for r in range(int(sys.argv[2])):
    t0 = time.perf_counter(); rep = run_replication(scn, r, clock=clock); t1 = time.perf_counter()
    replication_kpis(scn, rep, clock); t2 = time.perf_counter()
    rep_s.append(t1 - t0); kpi_s.append(t2 - t1)
print(f"{statistics.median(rep_s):.3f} {statistics.median(kpi_s):.3f} {len(rep.leads)}")
'''


def measure(root: Path, reps: int) -> tuple[float, float, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(reps)], cwd=tempfile.gettempdir(),
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="109ba37", help="earlier commit to compare with")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--reps", type=int, default=6, help="replications per round and side")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.against], check=True)
        try:
            rows = []
            for _ in range(args.rounds):
                for name, root in ((args.against, old), ("this checkout", ROOT)):
                    rows.append((name, *measure(root, args.reps)))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    print(f"{'code':<15} {'replication s':>14} {'KPIs s':>8} {'leads':>7}")
    for name, rep, kpi, n in rows:
        print(f"{name:<15} {rep:>14.3f} {kpi:>8.3f} {n:>7}")


if __name__ == "__main__":
    main()
