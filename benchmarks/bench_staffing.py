"""How long ``lab plan`` takes: the issue's command (a week of 5 shift types, the baseline
quarter, every policy of policies.yaml costed too) timed end to end.

    .venv/bin/python benchmarks/bench_staffing.py --jobs 2 --replications 10

Runs the command in a child process and prints the wall time, the CPU time of the
process and its workers, the machine's load average over the run (others' processes
share the cores: a load above the core count slows the run by about load / cores), the
plans screened and verified, and the two plans found; then the first guesses of the
integer program by Erlang C and by Erlang A with a patience equal to the contact decay's
half-life (the choice ``sim/erlang.py`` documents). Append the figures to
``benchmarks/results_staffing.md`` by hand, with the command.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["plan", "data/scenarios/baseline.yaml", "--target", "hot=5m@80%", "--target", "mql=4h@90%",
           "--compare", "data/scenarios/policies.yaml"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--replications", type=int, default=10)
    ap.add_argument("--lab", default=str(ROOT / ".venv" / "bin" / "lab"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [args.lab, *COMMAND, "-r", str(args.replications), "-j", str(args.jobs), "--out", f"{tmp}/plan"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load0, t0 = os.getloadavg()[0], time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load1 = os.getloadavg()
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = proc.stdout
    screened = re.search(r"(\d+) plans screened on (\d+) days x (\d+) replications", out)
    print(f"command: lab {' '.join(COMMAND)} -r {args.replications} -j {args.jobs}")
    print(f"cores: {os.cpu_count()}; load average at start {load0:.1f}, over the last 5 min at the end {load1[1]:.1f}")
    print(f"wall: {wall:.1f} s; CPU (process and the workers it waited for): {cpu:.1f} s")
    if screened:
        print(f"plans screened: {screened.group(1)} ({screened.group(2)} days x {screened.group(3)} replications)")
    print(out[out.find("Least-cost"):out.find("every scenario verified")].rstrip())
    first_guesses()
    return 0


def first_guesses():
    """The MILP's first plan from Erlang C and from Erlang A (patience = the half-life of
    the contact decay), for the SLA-clock hours and for every hour a shift covers."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from sim.scenario import load_scenario
    from sim.staffing import DEFAULT_PATTERNS, clock_hours, cover, demand, parse_target, requirements

    scn = load_scenario(ROOT / "data" / "scenarios" / "baseline.yaml")
    targets = [parse_target(COMMAND[3]), parse_target(COMMAND[5])]
    grid = np.linspace(0.0, 120.0, 120_001)
    half = float(grid[np.argmax(scn.decay.contact(grid) <= 0.5)])
    dem = demand(scn)
    on_shift = np.any([p.hours_of_week() for p in DEFAULT_PATTERNS], axis=0)
    for hours, covered in (("SLA-clock hours", on_shift & clock_hours(scn)), ("every shift hour", on_shift)):
        for label, patience in (("Erlang C", float("inf")), (f"Erlang A, patience {half:.2f} min", half)):
            need = requirements(dem, targets, covered, patience)
            plan = {k: v for k, v in cover(scn, need).items() if v}
            print(f"first guess, {hours}, {label}: {plan} (agents an hour {need[need > 0].min()}-{need.max()}, "
                  f"{int(need.sum())} agent-hours a week)")


if __name__ == "__main__":
    sys.exit(main())
