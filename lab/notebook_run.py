"""Running one parameterised notebook: validate, execute with papermill, render, record.

``run_notebook`` checks the values against the notebook's ``parameters`` cell before
anything runs (``lab.notebook_params``), executes a copy through papermill on a kernel
of its own (``default_kernel``, IPC sockets), renders one self-contained HTML file
(``lab.notebook_render``) and records the run (``RunRecord``) in the output folder's
``runs.jsonl`` and ``index.html`` (``lab.run_index``). Outputs are written atomically:
the run works in an exclusively claimed ``.<id>.part.ipynb``; a failing cell keeps the
executed notebook under ``failed/`` and leaves the previous good report in place; an
interrupted run leaves nothing behind. Several notebooks at once: ``lab.notebook_jobs``.
"""
from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from lab.notebook_params import (
    effective_parameters,
    notebook_parameters,
    parameter_value,
    resolve_notebook,
    validate_parameters,
)
from lab.notebook_progress import Progress, cell_engine, progress_mode
from lab.notebook_render import render_html
from lab.run_index import append_run, publish
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


def output_folder(out_dir: str | Path) -> Path:
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


def slug(text: str) -> str:
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
    out_dir = output_folder(out_dir)
    scenario = parameter_value(declared, values, "scenario")
    hint = slug(name_hint or (Path(str(scenario)).stem if scenario else "default"))
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
                engine_name=cell_engine(), on_cell=lambda n, total: emit("cell", {"n": n, "total": total}))
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


def _record(out_dir: Path, record: RunRecord) -> None:
    append_run(out_dir, {k: v for k, v in asdict(record).items() if k != "out_dir"})
