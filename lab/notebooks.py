"""Run parameterised notebooks: validate, execute with papermill, render with nbconvert.

``run_notebook`` checks the values against the notebook's ``parameters`` cell before
anything runs (``lab.notebook_params``), executes a copy through papermill, renders one
self-contained HTML file (outputs only, images embedded, stderr dropped) and records the
run in the output folder's ``runs.jsonl`` and ``index.html`` (``lab.run_index``). A
failing cell keeps the executed notebook under ``failed/`` and leaves the previous good
report in place. ``run_many`` runs several at once, each in its own process.

Long runs talk on stderr (``Progress``): on a terminal a line per notebook started and
finished with its elapsed seconds, above one bar per running notebook ("03_sla_policies:
cell 7/23"); in a log (CI, cron) one plain line per notebook started, finished, failed or
skipped, and no bars. Cells are counted through a papermill engine hook (``_engine``);
parallel runs send their events to the parent, the one process that draws.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from lab.notebook_params import (  # noqa: F401  (re-exported: the runner's one import)
    Param, effective_parameters, notebook_parameters, parameter_value, resolve_notebook,
    signature, validate_parameters)
from lab.run_index import TEMPLATES, append_run, duration, publish, read_ledger, when, write_index  # noqa: F401
from common.errors import LabError
from common.files import code_version
from common.paths import REPORTS

FAILED = "failed"
KERNEL = "smarketing-lab"


class NotebookError(LabError):
    """A notebook run failed; ``record`` is the failed run as written to the ledger."""

    def __init__(self, message: str, record: RunRecord):
        super().__init__(message)
        self.record = record


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


@dataclass
class RunRecord:
    """One line of ``runs.jsonl``; paths are relative to the output folder."""

    run_id: str
    notebook: str
    hint: str
    params: dict
    seed: Any
    status: str  # "ok", "failed" (or "skipped" in run_many's answer, never in the ledger)
    started: str
    duration_s: float = 0.0
    code_version: str = ""
    html: str | None = None
    latest: str | None = None
    ipynb: str | None = None
    error: str | None = None
    out_dir: str = ""

    @property
    def html_path(self) -> Path | None:
        return Path(self.out_dir) / self.html if self.html else None


# --------------------------------------------------------------------- progress

#: What a run says while it works: bars for a terminal, plain lines for a log, nothing.
PROGRESS_MODES = ("bars", "lines", "off")


def progress_mode(progress: bool | str | None) -> str:
    """``progress`` as one of ``PROGRESS_MODES``.

    ``True`` / ``False`` (what ``sys.stderr.isatty()`` answers) mean bars / lines, so a
    command that passes ``isatty()`` draws on a terminal and logs plain lines elsewhere;
    ``None`` asks stderr itself.
    """
    if progress is None:
        return "bars" if sys.stderr.isatty() else "lines"
    if progress is True or progress is False:
        return "bars" if progress else "lines"
    if progress in PROGRESS_MODES:
        return progress
    raise LabError(f"progress must be one of {', '.join(PROGRESS_MODES)}, True, False or None; got {progress!r}")


class Progress:
    """Notebook runs reported on stderr, all drawn by this one object.

    ``event(key, kind, data)`` takes a run's events: ``started`` (with its work file,
    ``part``); ``cell`` with ``n`` (the cell now running, counted from 1 over all cells,
    the injected parameters included) and ``total``; ``rendering`` (the HTML, once the
    cells ran); ``finished`` with ``status`` (``ok`` or ``failed``) and ``seconds``.
    ``skipped(label, why)`` notes a job that never ran. In ``bars`` mode the started and
    finished lines print above the bars: one per running notebook, its clock ticking
    through long cells, and, when ``total`` notebooks are announced, one over all of
    them. In ``lines`` mode nothing but the lines; in ``off`` mode nothing.
    """

    BAR = "{desc}: cell {n_fmt}/{total_fmt} |{bar}| {elapsed}"
    TICK_S = 1.0

    def __init__(self, mode: str, labels: dict, total: int | None = None):
        self.mode, self.labels, self.total, self.done = mode, labels, total, 0
        self.bars: dict = {}
        self.overall = None
        self._lock = threading.RLock()  # events come from a drain thread, ticks from another
        self._stop = threading.Event()
        if mode != "bars":
            return
        if total:
            from tqdm import tqdm

            self.overall = tqdm(total=total, desc="notebooks", unit="nb", file=sys.stderr, position=0,
                                dynamic_ncols=True)
        threading.Thread(target=self._tick, name="lab-progress-clock", daemon=True).start()

    def _tick(self) -> None:
        """Redraw the bars every second: a cell that runs for minutes still shows time passing."""
        while not self._stop.wait(self.TICK_S):
            with self._lock:
                for bar in self.bars.values():
                    bar.refresh()

    def _say(self, text: str) -> None:
        if self.mode == "bars":
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)
        elif self.mode == "lines":
            print(text, file=sys.stderr, flush=True)

    def _tally(self) -> str:
        return f" ({self.done} of {self.total} done)" if self.mode == "lines" and self.total else ""

    def _free_row(self) -> int:
        """The first screen row no running notebook's bar holds (row 0: the overall bar)."""
        taken = {bar.lab_row for bar in self.bars.values()}
        first = 1 if self.overall is not None else 0
        return next(row for row in range(first, first + len(taken) + 1) if row not in taken)

    def event(self, key, kind: str, data: dict) -> None:
        if self.mode == "off":
            return
        with self._lock:
            self._event(key, self.labels.get(key, str(key)), kind, data)

    def _event(self, key, label: str, kind: str, data: dict) -> None:
        if kind == "started":
            self._say(f"{label}: started")
            if self.mode == "bars":
                from tqdm import tqdm

                row = self._free_row()
                bar = tqdm(total=None, desc=label, bar_format=self.BAR, file=sys.stderr, leave=False,
                           position=row, dynamic_ncols=True)
                bar.lab_row = row
                self.bars[key] = bar
        elif kind == "cell" and key in self.bars:
            bar = self.bars[key]
            bar.total, bar.n = data["total"], data["n"]
            bar.refresh()
        elif kind == "rendering" and key in self.bars:
            bar = self.bars[key]
            bar.bar_format = self.BAR.replace("cell {n_fmt}/{total_fmt}", "rendering the report")
            bar.refresh()
        elif kind == "finished":
            if key in self.bars:
                self.bars.pop(key).close()
            self.done += 1
            took = f"{data['seconds']:.1f} s"
            self._say(f"{label}: " + (f"finished in {took}" if data["status"] == "ok" else f"failed after {took}")
                      + self._tally())
            if self.overall is not None:
                self.overall.update()

    def skipped(self, label: str, why: str) -> None:
        if self.mode == "off":
            return
        with self._lock:
            self.done += 1
            self._say(f"{label}: skipped, {why}{self._tally()}")
            if self.overall is not None:
                self.overall.update()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()
            if self.overall is not None:
                self.overall.close()
                self.overall = None


_ENGINE = "lab-cells"


def _engine() -> str:
    """papermill's nbclient engine with one hook, registered once under ``_ENGINE``:
    ``on_cell(n, total)`` is called as each cell starts (``n`` from 1)."""
    from papermill.engines import NBClientEngine, papermill_engines

    if papermill_engines._engines.get(_ENGINE) is None:
        class CellProgressEngine(NBClientEngine):
            @classmethod
            def execute_managed_notebook(cls, nb_man, kernel_name, on_cell=None, **kwargs):
                if on_cell is not None:
                    start = nb_man.cell_start

                    def cell_start(cell, cell_index=None, **kw):
                        start(cell, cell_index, **kw)
                        if cell_index is not None:
                            on_cell(cell_index + 1, len(nb_man.nb.cells))

                    nb_man.cell_start = cell_start
                return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

        papermill_engines.register(_ENGINE, CellProgressEngine)
    return _ENGINE


# ---------------------------------------------------------------------- running


def default_kernel() -> str:
    """The project's kernel when it runs this interpreter, else ``python3``.

    jupyter_client starts ``python3`` with ``sys.executable``, so both choices run the
    venv's Python even when the venv is not activated (pytest, cron, CI).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except (NoSuchKernel, IndexError, OSError):
        return "python3"
    here = os.path.dirname(os.path.abspath(sys.executable))
    return KERNEL if os.path.dirname(os.path.abspath(argv0)) == here else "python3"


@contextmanager
def _kernel_env():
    """The environment the kernel inherits while a notebook runs.

    ``lab`` sets ``MPLBACKEND=Agg`` for itself; a kernel that inherited it would draw
    no inline figures, so the kernel gets the inline backend instead.
    """
    wanted = {"MPLBACKEND": "module://matplotlib_inline.backend_inline",
              "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_MANAGER = []


def _kernel_manager_class():
    """A kernel manager that talks to its kernel over IPC sockets on POSIX.

    TCP would pick free ports per kernel, which parallel runs can race for, and the
    kernel warns that TCP traffic is unencrypted; local sockets avoid both. Each kernel
    gets its own socket prefix: jupyter_client's default (``kernel-ipc`` in the working
    directory) would be shared by kernels started at once from different processes.
    """
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    if os.name == "nt":  # pragma: no cover - no IPC transport on Windows
        return AsyncKernelManager
    if not _MANAGER:
        class IPCKernelManager(AsyncKernelManager):
            @default("transport")
            def _default_transport(self):
                return "ipc"

            @default("ip")
            def _default_ip(self):
                return os.path.join(tempfile.gettempdir(), f"lab-kernel-{uuid.uuid4().hex[:12]}")

        _MANAGER.append(IPCKernelManager)
    return _MANAGER[0]


def _output_folder(out_dir: str | Path) -> Path:
    """The report folder, made if missing; a file of that name or an unwritable place is
    one ``LabError`` before anything runs."""
    from common.files import os_problem

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LabError(f"{out_dir}: exists and is a file, not a report folder (rule: --out names a folder; "
                       f"choose another name or remove the file)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise LabError(f"{out_dir}: cannot write reports here: {os_problem(exc)}") from None
    return out_dir.resolve()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")[:60] or "default"


def _claim(out_dir: Path, stem: str, hint: str) -> tuple[str, Path]:
    """A run id no other run (in this or another process) has, and its work file.

    The work file ``.<id>.part.ipynb`` is created exclusively and later renamed to the
    kept notebook (good or failed), so from the claim on one of the three always
    exists: two runs started in the same second get ``-2``, ``-3``... and never clash.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        run_id = f"{stem}__{hint}__{stamp}" + (f"-{n}" if n > 1 else "")
        part = out_dir / f".{run_id}.part.ipynb"  # papermill wants the .ipynb suffix
        try:
            os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        if (out_dir / f"{run_id}.ipynb").exists() or (out_dir / FAILED / f"{run_id}.ipynb").exists():
            part.unlink()
            continue
        return run_id, part
    raise RuntimeError(f"no free run name for {stem}__{hint} in {out_dir}")


def _first_line(text, limit: int = 200) -> str:
    line = next((s for s in str(text).strip().splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _failure_message(path: Path, exc: Exception, kept: Path | None, phase: str) -> str:
    """One line: notebook, cell, exception name and message; no traceback."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        # cell_index counts papermill's injected-parameters cell: it matches the kept notebook
        where = (f"cell {exc.cell_index} (In [{exc.exec_count}]: "
                 f"{_first_line(exc.source, 60)!r})")
        what = f"{exc.ename}: {_first_line(exc.evalue)}"
    else:
        where, what = phase, f"{type(exc).__name__}: {_first_line(exc)}"
    tail = f"; executed notebook kept at {kept}" if kept else ""
    return f"notebook {path.name} failed at {where}: {what}{tail}"


def run_notebook(path: str | Path, params: dict | None = None, out_dir: str | Path = REPORTS,
                 name_hint: str | None = None, kernel: str | None = None,
                 progress: bool | str | Callable | None = "off", timeout: int | None = None) -> RunRecord:
    """Execute a notebook with papermill and render it to one self-contained HTML file.

    Writes ``<stem>__<hint>__<YYYYMMDD-HHMMSS>.html`` and the executed ``.ipynb`` beside
    it, then refreshes the stable copy ``<stem>__<hint>.html``; ``hint`` is ``name_hint``,
    else the stem of a ``scenario`` parameter, else ``default``. The run is appended to
    ``runs.jsonl`` and ``index.html`` is rewritten.

    ``progress`` is a mode of ``progress_mode`` ("bars", "lines", "off"; True / False for
    bars / lines; None: bars on a terminal, else lines), or a callable ``(kind, data)``
    that receives the run's events (``Progress.event`` describes them).

    Raises
    ------
    LabError
        Bad parameters, before anything runs.
    NotebookError
        A cell failed: the executed notebook is kept under ``failed/``, the previous
        reports are left untouched and the failed run is recorded.
    """
    path = resolve_notebook(path)
    declared = notebook_parameters(path)
    values = validate_parameters(path, params or {}, declared)
    out_dir = _output_folder(out_dir)
    scenario = parameter_value(declared, values, "scenario")
    hint = _slug(name_hint or (Path(str(scenario)).stem if scenario else "default"))
    emit, reporter = _emitter(progress, path.stem)
    run_id, part = _claim(out_dir, path.stem, hint)
    try:
        return _execute(path, declared, values, out_dir, hint, run_id, part, kernel, timeout, emit)
    finally:
        if reporter is not None:
            reporter.close()


def _emitter(progress, label: str) -> tuple[Callable, Progress | None]:
    """Where a run's events go: the caller's callable, or a ``Progress`` of its own."""
    if callable(progress):
        return progress, None
    reporter = Progress(progress_mode(progress), {None: label})
    return (lambda kind, data: reporter.event(None, kind, data)), reporter


def _execute(path: Path, declared, values: dict, out_dir: Path, hint: str, run_id: str, part: Path,
             kernel: str | None, timeout: int | None, emit: Callable) -> RunRecord:
    """``run_notebook`` from its claimed work file on: execute, render, publish, record."""
    import nbformat
    import papermill

    t0 = datetime.now(timezone.utc)
    clock = time.monotonic()
    record = RunRecord(run_id=run_id, notebook=path.stem, hint=hint, params=values,
                       seed=parameter_value(declared, values, "seed"), status="ok",
                       started=t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       code_version=code_version(), out_dir=str(out_dir))
    phase = "execution"
    try:
        emit("started", {"part": str(part)})
        with _kernel_env():
            papermill.execute_notebook(
                str(path), str(part), parameters=values, kernel_name=kernel or default_kernel(),
                progress_bar=False, cwd=str(path.parent),  # as JupyterLab runs it
                execution_timeout=timeout, kernel_manager_class=_kernel_manager_class(),
                # figures at twice the pixels, shown at the same size: sharp in the report
                extra_arguments=["--InlineBackend.figure_formats=retina"],
                engine_name=_engine(), on_cell=lambda n, total: emit("cell", {"n": n, "total": total}))
        record.duration_s = round((datetime.now(timezone.utc) - t0).total_seconds(), 1)
        phase = "rendering"
        emit("rendering", {})
        html = render_html(nbformat.read(part, as_version=4), record, effective_parameters(declared, values))
        publish(out_dir / f"{run_id}.html", html)
        os.replace(part, out_dir / f"{run_id}.ipynb")
        latest = f"{path.stem}__{hint}.html"
        publish(out_dir / latest, html)
        record.html, record.ipynb, record.latest = f"{run_id}.html", f"{run_id}.ipynb", latest
    except Exception as exc:  # a failing cell, a dead kernel, a timeout, a render error
        kept = out_dir / FAILED / f"{run_id}.ipynb"
        kept.parent.mkdir(exist_ok=True)
        if part.exists():  # else it was already moved into place, and stays there
            os.replace(part, kept)
        record.status = "failed"
        record.ipynb = f"{FAILED}/{run_id}.ipynb" if kept.exists() else f"{run_id}.ipynb"
        record.duration_s = round((datetime.now(timezone.utc) - t0).total_seconds(), 1)
        # an empty work file means papermill stopped before writing (e.g. no such kernel)
        record.error = _failure_message(path, exc, kept if kept.exists() and kept.stat().st_size else None,
                                        phase)
        _record(out_dir, record)
        emit("finished", {"status": "failed", "seconds": time.monotonic() - clock})
        raise NotebookError(record.error, record) from None
    except BaseException:  # interrupted: nothing of this run is left behind
        part.unlink(missing_ok=True)
        raise
    _record(out_dir, record)
    emit("finished", {"status": "ok", "seconds": time.monotonic() - clock})
    return record


# -------------------------------------------------------------------- rendering


def _report_preprocessor():
    from nbconvert.preprocessors import Preprocessor

    class DropNoise(Preprocessor):
        """Leave out what a reader should not see: stderr (warnings included), stray
        ``<matplotlib...>`` reprs and code cells left with no output."""

        def preprocess(self, nb, resources):
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = [o for o in cell.get("outputs", []) if _shown(o)]
            nb.cells = [c for c in nb.cells if c.cell_type != "code" or c.outputs]
            return nb, resources

    return DropNoise()


_STRAY_REPR = re.compile(r"^\[?<(matplotlib|Figure)\b")


def _shown(output) -> bool:
    if output.get("output_type") == "stream":
        return output.get("name") != "stderr"
    if output.get("output_type") == "execute_result":
        data = output.get("data", {})
        return not (set(data) == {"text/plain"} and _STRAY_REPR.match(data["text/plain"]))
    return True


def render_html(nb, record: RunRecord, parameters: list[dict] | None = None) -> str:
    """One self-contained HTML page of an executed notebook: outputs only, no prompts,
    images inline, stderr left out, headed by the run's parameters, seed and code version.

    Cells tagged ``remove-cell`` are dropped and ``remove-output`` cells lose their outputs.
    """
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(
        template_name="report", extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        embed_images=True)
    exporter.register_preprocessor(TagRemovePreprocessor(
        remove_cell_tags={"remove-cell", "remove_cell"},
        remove_all_outputs_tags={"remove-output", "remove_output"}), enabled=True)
    exporter.register_preprocessor(_report_preprocessor(), enabled=True)
    header = {"title": f"{record.notebook} · {record.hint}", "notebook": record.notebook,
              "hint": record.hint, "run_id": record.run_id, "started": when(record.started),
              "duration": duration(record.duration_s), "code_version": record.code_version,
              "seed": record.seed, "parameters": parameters or []}
    body, _ = exporter.from_notebook_node(nb, resources={"lab_run": header})
    return body


# --------------------------------------------------------------------- parallel


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
    return {i: stem if stems.count(stem) == 1 else f"{stem} [{_slug(job.name_hint or 'default')}]"
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
    return RunRecord(run_id="", notebook=stem, hint=_slug(job.name_hint or "default"),
                     params=dict(job.params), seed=None, status="skipped", started="",
                     error="skipped: an earlier stage failed", out_dir=out_dir)


def _record(out_dir: Path, record: RunRecord) -> None:
    append_run(out_dir, {k: v for k, v in asdict(record).items() if k != "out_dir"})
