"""Replications and sweeps: many runs of many policies, serial, on local processes or on a
dask.distributed cluster, with identical numbers every way.

Local processes are forked from this one where the system allows it (Linux), after the
compiled engine is loaded here (``sim.engine_fast.warm_up``): a fresh worker would spend
about a second importing and loading it before its first replication, which on a sweep of
a few dozen 0.2-second replications was most of the gain. Elsewhere joblib's workers.

Replication ``r`` of every policy uses the same random streams (``sim.model.streams``),
so policies are compared on common random numbers and their differences are sharper
than their separate intervals suggest.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from sim.calendar import BusinessClock
from common.errors import LabError
from common.intervals import format_interval
from common.files import code_version, now_utc
from sim.kpis import replication_kpis, summarise
from sim.engine_fast import eligible as fast_engine_eligible, warm_up
from sim.model import run_replication
from sim.scenario import Scenario


SCHEDULER_TIMEOUT_S = 10
CHUNKS_PER_WORKER = 8  # chunks of replications per local worker in a sweep (``_execute``)
# A replication on the reference engine (round robin, earliest deadline first, breach
# actions; sim.engine) costs about this many of the compiled engine's (benchmarks/).
REFERENCE_ENGINE_COST = 3.0

# Peak memory of one replication, measured (``ru_maxrss``, 1e4 to 1e6 leads; see
# ``estimate_memory``): a fixed part, plus per lead a base, a part per attempt and pass
# through the queue (the touch and handling draws) and a part per pass.
MEMORY_BASE_BYTES = 250 * 2**20
BYTES_PER_LEAD = 1100
BYTES_PER_LEAD_ATTEMPT_PASS = 100
BYTES_PER_LEAD_PASS = 80
BYTES_PER_KEPT_LEAD = 1500      # lead and event tables kept for the output
BYTES_PER_REPLICATION_ROW = 8 * 2**10  # one KPI row and its task


@dataclass
class Task:
    policy: str
    scenario: Scenario
    replication: int
    seed: int
    keep_tables: bool = False


def run_task(task: Task, clock: BusinessClock | None = None,
             table=None) -> tuple[dict, pd.DataFrame | None, pd.DataFrame | None]:
    """One replication of one policy: its KPI row and, if asked, its lead and event tables.
    ``clock`` and ``table`` (the scenario's business clock and points table) are built
    when not given."""
    clock = clock or BusinessClock(task.scenario.calendar)
    rep = run_replication(task.scenario, task.replication, seed=task.seed, clock=clock, table=table)
    row = {"policy": task.policy, "replication": task.replication, "seed": task.seed}
    row.update(replication_kpis(task.scenario, rep, clock))
    if not task.keep_tables:
        return row, None, None
    leads = rep.leads.assign(policy=task.policy, replication=task.replication)
    events = rep.events.assign(policy=task.policy, replication=task.replication)
    return row, leads, events


def run_tasks(tasks: list[Task], _built: dict | None = None) -> list[tuple]:
    """Several replications in one call (a worker's chunk of a sweep): each scenario's
    business clock and points table (a YAML file read) are built once, not once per
    replication. The tasks of one policy share one ``Scenario`` object, which pickle
    sends once per chunk."""
    built = {} if _built is None else _built
    out = []
    for t in tasks:
        key = id(t.scenario)
        if key not in built:
            built[key] = (t.scenario, BusinessClock(t.scenario.calendar), t.scenario.points_table())
        out.append(run_task(t, *built[key][1:]))
    return out


def scenario_hash(scn: Scenario) -> str:
    return hashlib.sha256(scn.model_dump_json().encode()).hexdigest()[:16]


@dataclass
class SweepResult:
    """KPIs per replication, their summary, and provenance."""

    kpis: pd.DataFrame
    summary: pd.DataFrame
    scenarios: dict[str, Scenario]
    meta: dict
    leads: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)

    def table(self, kpis: list[str] | None = None) -> pd.DataFrame:
        """Policies side by side: 'mean [low, high]' per KPI (rows) and policy (columns);
        'mean n/a' where there is no interval (fewer than 2 replications)."""
        from sim.kpis import HEADLINE

        s = self.summary[self.summary["kpi"].isin(kpis or HEADLINE)]
        cell = s.apply(lambda r: f"{r['mean']:,.3g} {format_interval(r['ci_low'], r['ci_high'])}", axis=1)
        wide = s.assign(cell=cell).pivot(index="kpi", columns="policy", values="cell")
        order = [k for k in (kpis or HEADLINE) if k in wide.index]
        return wide.loc[order, list(self.scenarios)]


def expected_leads(scn: Scenario) -> float:
    """Leads a replication of ``scn`` creates on average (Poisson arrivals)."""
    return scn.arrivals.leads_per_week * scn.calendar.horizon_days / 7.0


def replication_bytes(scn: Scenario) -> float:
    """Estimated peak memory of one replication of ``scn`` (bytes)."""
    passes = 1 + scn.nurture.max_reentries
    per_lead = (BYTES_PER_LEAD + BYTES_PER_LEAD_ATTEMPT_PASS * scn.team.max_attempts * passes
                + BYTES_PER_LEAD_PASS * passes)
    n = expected_leads(scn)
    return n * per_lead + 6 * n**0.5 * per_lead  # the mean plus six standard deviations


def available_memory() -> float:
    """Memory the system can give now (bytes): MemAvailable on Linux, else physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return float("inf")


def _size(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:,.1f} {unit}" if b < 1e6 else f"{b:.3g} {unit}"
        b /= 1024
    return f"{b:.3g} PiB"  # pragma: no cover


def estimate_memory(scenarios: dict[str, Scenario], replications: int | None = None, n_jobs: int = 1,
                    keep_tables: bool | str = False, scheduler: str | None = None,
                    limit: float | None = None) -> float:
    """Refuse, before anything is allocated, a run that would not fit in memory.

    The estimate is the largest replication times the replications held at once (one per
    local worker), plus the tables kept for the output and one KPI row per replication.
    A dask cluster runs replications on its own workers, so only the kept tables count.

    Returns the estimate (bytes); raises ``LabError`` naming the scenario, the field that
    drives the size, the estimate and the memory available.
    """
    limit = available_memory() if limit is None else limit
    tasks = {name: (replications or s.replications) for name, s in scenarios.items()}
    total_tasks = sum(tasks.values())
    worst = max(scenarios, key=lambda k: replication_bytes(scenarios[k]))
    scn = scenarios[worst]
    at_once = 0 if scheduler else min(max(n_jobs, 1), total_tasks)
    kept = 0.0
    for name, s in scenarios.items():
        copies = tasks[name] if keep_tables is True else (1 if keep_tables else 0)
        kept += copies * expected_leads(s) * BYTES_PER_KEPT_LEAD
    need = (MEMORY_BASE_BYTES * max(at_once, 1) + at_once * replication_bytes(scn) + kept
            + total_tasks * BYTES_PER_REPLICATION_ROW)
    if need > limit:
        source = getattr(scn, "_source", None) or f"scenario '{worst}'"
        n = expected_leads(scn)
        one = MEMORY_BASE_BYTES + replication_bytes(scn) + (expected_leads(scn) * BYTES_PER_KEPT_LEAD
                                                           if keep_tables else 0)
        passes = 1 + scn.nurture.max_reentries
        if one > limit and passes * BYTES_PER_LEAD_ATTEMPT_PASS * scn.team.max_attempts > 10 * BYTES_PER_LEAD:
            field, value = "nurture.max_reentries", f"{scn.nurture.max_reentries:,}"  # draws per pass
        elif one > limit:  # a single replication is too big: the volume is the cause
            field, value = "arrivals.leads_per_week", f"{scn.arrivals.leads_per_week:g}"
        else:
            field, value = "replications", f"{total_tasks:,} replications in all"
        raise LabError(
            f"{source}: {field}: this run would need about {_size(need)} of memory "
            f"({n:.3g} leads per replication over horizon_days={scn.calendar.horizon_days}, "
            f"{total_tasks:,} replication(s), {max(at_once, 1)} at once; rule: the estimate must fit in the "
            f"{_size(limit)} available); got {value}")
    return need


def run_sweep(scenarios: dict[str, Scenario], replications: int | None = None, seed: int | None = None,
              n_jobs: int = 1, scheduler: str | None = None, keep_tables: bool | str = False,
              progress: bool = True) -> SweepResult:
    """Run every policy ``replications`` times.

    Parameters
    ----------
    scenarios : policy name -> scenario (one entry for a plain simulation).
    replications, seed : override the scenarios' own values when given.
    n_jobs : local worker processes (joblib); ignored when ``scheduler`` is given.
    scheduler : address of a dask.distributed scheduler ("tcp://host:8786").
    keep_tables : keep lead and event tables (True: all, "first": first replication only).
    """
    if seed is not None and seed < 0:
        raise LabError(f"--seed: a seed must be a non-negative integer; got {seed}")
    estimate_memory(scenarios, replications, n_jobs, keep_tables, scheduler)
    tasks = []
    for name, scn in scenarios.items():
        reps = replications or scn.replications
        s = scn.seed if seed is None else seed
        for r in range(reps):
            keep = keep_tables is True or (keep_tables == "first" and r == 0)
            tasks.append(Task(name, scn, r, s, keep))
    results = _execute(tasks, n_jobs, scheduler, progress)
    kpis = pd.DataFrame([r[0] for r in results])
    leads = [r[1] for r in results if r[1] is not None]
    events = [r[2] for r in results if r[2] is not None]
    first = next(iter(scenarios.values()))
    meta = {
        "code_version": code_version(),
        "created_at": now_utc(),
        "seed": first.seed if seed is None else seed,
        "replications": {n: replications or s.replications for n, s in scenarios.items()},
        "policies": list(scenarios),
        "scenario_hashes": {n: scenario_hash(s) for n, s in scenarios.items()},
        "workers": "dask:" + scheduler if scheduler else _local_workers(n_jobs),
    }
    return SweepResult(
        kpis=kpis,
        summary=summarise(kpis, "policy"),
        scenarios=dict(scenarios),
        meta=meta,
        leads=pd.concat(leads, ignore_index=True) if leads else None,
        events=pd.concat(events, ignore_index=True) if events else None,
    )


def run_scenario(scn: Scenario, **kw) -> SweepResult:
    """Replications of a single scenario (see ``run_sweep``)."""
    return run_sweep({scn.name: scn}, **kw)


def _execute(tasks: list[Task], n_jobs: int, scheduler: str | None, progress: bool):
    bar = tqdm(total=len(tasks), desc="replications", unit="run", disable=not progress)
    try:
        if scheduler:
            from dask.distributed import Client, as_completed

            try:
                client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                raise LabError(f"--scheduler {scheduler}: could not reach a dask scheduler there within "
                               f"{SCHEDULER_TIMEOUT_S} s ({type(exc).__name__}: {exc})") from None
            with client:
                futures = client.map(run_task, tasks, pure=False)
                index = {f.key: k for k, f in enumerate(futures)}
                out = [None] * len(tasks)
                for fut in as_completed(futures):
                    out[index[fut.key]] = fut.result()
                    bar.update()
                return out
        if n_jobs == 1:
            out, built = [], {}  # ``built`` keeps each scenario alive while its id is a key
            for t in tasks:
                out.extend(run_tasks([t], built))
                bar.update()
            return out
        from joblib import Parallel, delayed, effective_n_jobs

        n_jobs = effective_n_jobs(n_jobs)
        # Contiguous chunks, several per worker: fewer round trips and one clock and points
        # table per chunk, yet small enough that the workers finish together.
        size = max(1, math.ceil(len(tasks) / (n_jobs * CHUNKS_PER_WORKER)))
        chunks = [tasks[a:a + size] for a in range(0, len(tasks), size)]
        # The dearest chunks go first (longest processing time first), so that no worker is
        # left with a slow policy's chunk while the other idles; results keep task order.
        order = sorted(range(len(chunks)), key=lambda c: -sum(_cost(t.scenario) for t in chunks[c]))
        done: list = [None] * len(chunks)
        fork = _fork_context()
        if fork is not None:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            from concurrent.futures.process import BrokenProcessPool

            warm_up([t.scenario for t in tasks])
            try:
                with ProcessPoolExecutor(max_workers=min(n_jobs, len(chunks)), mp_context=fork) as pool:
                    futures = {pool.submit(run_tasks, chunks[c]): c for c in order}
                    for fut in as_completed(futures):
                        done[futures[fut]] = fut.result()
                        bar.update(len(done[futures[fut]]))
            except BrokenProcessPool:
                raise LabError(WORKER_DIED.format(n_jobs=n_jobs)) from None
        else:
            from joblib.externals.loky.process_executor import TerminatedWorkerError

            par = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=1)
            try:
                for c, res in zip(order, par(delayed(run_tasks)(chunks[c]) for c in order)):
                    done[c] = res
                    bar.update(len(res))
            except TerminatedWorkerError:
                raise LabError(WORKER_DIED.format(n_jobs=n_jobs)) from None
        return [row for res in done for row in res]
    finally:
        bar.close()


WORKER_DIED = ("--jobs {n_jobs}: a worker process died while running replications (killed, or out of memory); "
               "nothing was written; rerun with fewer --jobs or a smaller run (fewer leads per week or replications)")


def _local_workers(n_jobs: int) -> str:
    """How local replications ran, for the run's record: serial, forked or joblib workers."""
    from joblib import effective_n_jobs

    n = effective_n_jobs(n_jobs)
    if n == 1:
        return "serial"
    return f"{'forked' if _fork_context() is not None else 'joblib'}:{n}"


def _cost(scn: Scenario) -> float:
    """Relative cost of one replication of ``scn``, for ordering a sweep's chunks."""
    return expected_leads(scn) * (1.0 if fast_engine_eligible(scn) else REFERENCE_ENGINE_COST)


def _fork_context():
    """The "fork" start method where the system has it (not Windows; macOS lists it but
    its system libraries are not safe to fork), else None."""
    import multiprocessing as mp
    import sys

    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return None


def meta_json(result: SweepResult) -> str:
    doc = dict(result.meta)
    doc["scenarios"] = {n: json.loads(s.model_dump_json()) for n, s in result.scenarios.items()}
    return json.dumps(doc, indent=2, default=str)
