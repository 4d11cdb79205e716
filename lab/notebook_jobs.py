"""Running several notebooks at once: ``Job`` and ``run_many``.

The jobs of one stage run in parallel, each in its own process with its own kernel
(``lab.notebook_run.run_notebook``), and the stages in order, so a later stage may read
what an earlier one wrote; a failed job skips the later stages. Worker processes send
their progress events to the parent through a manager queue (``_Channel``), so every
line and bar is drawn from one place (``lab.notebook_progress``), and an interrupted run
has its work files removed by the parent.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from lab.notebook_params import validate_parameters
from lab.notebook_progress import Progress, progress_mode
from lab.notebook_run import NotebookError, RunRecord, run_notebook, slug
from common.paths import REPORTS


@dataclass(frozen=True)
class Job:
    """One notebook to run: parameters, an output-name hint and its stage in a chain.

    ``run_many`` runs the jobs of one stage in parallel and the stages in order, so a
    later stage may read what an earlier one wrote.
    """

    notebook: str | Path
    params: dict = field(default_factory=dict)
    name_hint: str | None = None
    stage: int = 0


def _run_job(i: int, job: Job, out_dir: str, kernel: str | None,
             emit: Callable | None = None) -> tuple[int, RunRecord]:
    try:
        return i, run_notebook(job.notebook, job.params, out_dir, job.name_hint, kernel,
                               progress=emit or "off")
    except NotebookError as exc:
        return i, exc.record


class _Send:
    """A worker's events, tagged with its job's index, put on the parent's queue.

    Progress never stops a run: if the parent no longer listens (it was interrupted),
    the events are dropped.
    """

    def __init__(self, queue, i: int):
        self.queue, self.i = queue, i

    def __call__(self, kind: str, data: dict) -> None:
        try:
            self.queue.put((self.i, kind, data))
        except Exception:  # noqa: BLE001 - a closed queue: nobody to tell
            pass


class _Channel:
    """Events from worker processes to the parent: for its ``Progress``, and to know
    which work files an interrupted run must remove.

    A manager queue (started before any kernel, ignoring Ctrl-C so the parent decides
    when it stops) carries them; while a stage runs, one thread of the parent takes them
    off, so every line and bar is drawn from one place.
    """

    def __init__(self):
        import signal
        from multiprocessing.managers import SyncManager

        self.take: Callable | None = None
        self.manager = SyncManager()
        self.manager.start(signal.signal, (signal.SIGINT, signal.SIG_IGN))
        self.queue = self.manager.Queue()

    def sender(self, i: int) -> _Send:
        return _Send(self.queue, i)

    @contextmanager
    def stage(self, take: Callable):
        """Hand the events of the jobs run inside to ``take(i, kind, data)``; all of them
        are handed over on leaving."""
        self.take = take
        thread = threading.Thread(target=self._drain, name="lab-progress", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            try:  # after the stage's results: every event of the stage is already queued
                self.queue.put(None)
            except Exception:  # noqa: BLE001 - the manager is gone (interrupted)
                pass
            thread.join(timeout=30)

    def _drain(self) -> None:
        while True:
            try:
                item = self.queue.get()
            except Exception:  # noqa: BLE001 - the manager is gone
                return
            if item is None:
                return
            self.take(*item)

    def close(self) -> None:
        self.manager.shutdown()


def _labels(jobs: list[Job]) -> dict[int, str]:
    """What the progress calls each job: its notebook, and its name hint when one
    notebook runs more than once ("fails [north]")."""
    stems = [Path(str(job.notebook)).stem for job in jobs]
    return {i: stem if stems.count(stem) == 1 else f"{stem} [{slug(job.name_hint or 'default')}]"
            for i, (stem, job) in enumerate(zip(stems, jobs))}


def run_many(jobs: Iterable[Job], out_dir: str | Path = REPORTS, n_jobs: int = 2,
             kernel: str | None = None, progress: bool | str | None = None) -> list[RunRecord]:
    """Run notebooks in parallel processes, stage by stage, saying how far they are.

    Every job's parameters are validated before the first one starts. A failed job does
    not stop the others of its stage; later stages are then skipped (status
    ``"skipped"``, not recorded in the ledger) since they would read missing results.
    ``progress`` is a mode of ``progress_mode``: bars (per notebook, per cell), plain
    lines (started, finished in N s, failed, skipped) or nothing.

    Returns
    -------
    list of RunRecord
        In the order of ``jobs``.
    """
    from joblib import Parallel, delayed

    jobs = list(jobs)
    for job in jobs:
        validate_parameters(job.notebook, job.params)
    mode = progress_mode(progress)
    out_dir = str(Path(out_dir).resolve())
    records: list[RunRecord | None] = [None] * len(jobs)
    stages = [[(i, job) for i, job in enumerate(jobs) if job.stage == stage]
              for stage in sorted({job.stage for job in jobs})]
    parallel = any(min(n_jobs, len(batch)) > 1 for batch in stages)
    channel = _Channel() if parallel else None  # its process is forked before any thread or kernel
    reporter = Progress(mode, _labels(jobs), total=len(jobs))
    working: dict[int, str] = {}  # job -> its work file, from started to finished

    def note(i: int, kind: str, data: dict) -> None:
        if kind == "started":
            working[i] = data["part"]
        elif kind == "finished":
            working.pop(i, None)
        reporter.event(i, kind, data)

    try:
        for batch in stages:
            if any(r is not None and r.status != "ok" for r in records):
                for i, job in batch:
                    records[i] = _skipped(job, out_dir)
                    reporter.skipped(reporter.labels[i], "an earlier stage failed")
                continue
            workers = min(n_jobs, len(batch))
            if workers <= 1:
                for i, job in batch:
                    records[i] = _run_job(i, job, out_dir, kernel, lambda kind, data, i=i: note(i, kind, data))[1]
                continue
            with channel.stage(note):
                # one process per running notebook; each starts its own kernel
                for i, record in Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")(
                        delayed(_run_job)(i, job, out_dir, kernel, channel.sender(i)) for i, job in batch):
                    records[i] = record
    except BaseException:
        # Interrupted: the workers are killed before they can remove their work files,
        # so the parent does; an interrupted run leaves nothing behind.
        for part in working.values():
            Path(part).unlink(missing_ok=True)
        raise
    finally:
        if channel is not None:
            channel.close()
        reporter.close()
    return records


def _skipped(job: Job, out_dir: str) -> RunRecord:
    stem = Path(str(job.notebook)).stem
    return RunRecord(run_id="", notebook=stem, hint=slug(job.name_hint or "default"),
                     params=dict(job.params), seed=None, status="skipped", started="",
                     error="skipped: an earlier stage failed", out_dir=out_dir)
