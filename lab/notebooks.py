"""Run parameterised notebooks: validate, execute with papermill, render with nbconvert.

``run_notebook`` checks the values against the notebook's ``parameters`` cell before
anything runs (``lab.notebook_params``), executes a copy through papermill, renders one
self-contained HTML file (outputs only, images embedded, stderr dropped) and records the
run in the output folder's ``runs.jsonl`` and ``index.html`` (``lab.run_index``). A
failing cell keeps the executed notebook under ``failed/`` and leaves the previous good
report in place. ``run_many`` runs several at once, each in its own process.
"""
from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

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
                 progress: bool = False, timeout: int | None = None) -> RunRecord:
    """Execute a notebook with papermill and render it to one self-contained HTML file.

    Writes ``<stem>__<hint>__<YYYYMMDD-HHMMSS>.html`` and the executed ``.ipynb`` beside
    it, then refreshes the stable copy ``<stem>__<hint>.html``; ``hint`` is ``name_hint``,
    else the stem of a ``scenario`` parameter, else ``default``. The run is appended to
    ``runs.jsonl`` and ``index.html`` is rewritten.

    Raises
    ------
    LabError
        Bad parameters, before anything runs.
    NotebookError
        A cell failed: the executed notebook is kept under ``failed/``, the previous
        reports are left untouched and the failed run is recorded.
    """
    import nbformat
    import papermill

    path = resolve_notebook(path)
    declared = notebook_parameters(path)
    values = validate_parameters(path, params or {}, declared)
    out_dir = _output_folder(out_dir)
    scenario = parameter_value(declared, values, "scenario")
    hint = _slug(name_hint or (Path(str(scenario)).stem if scenario else "default"))
    run_id, part = _claim(out_dir, path.stem, hint)
    t0 = datetime.now(timezone.utc)
    record = RunRecord(run_id=run_id, notebook=path.stem, hint=hint, params=values,
                       seed=parameter_value(declared, values, "seed"), status="ok",
                       started=t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       code_version=code_version(), out_dir=str(out_dir))
    phase = "execution"
    try:
        with _kernel_env():
            papermill.execute_notebook(
                str(path), str(part), parameters=values, kernel_name=kernel or default_kernel(),
                progress_bar=progress, cwd=str(path.parent),  # as JupyterLab runs it
                execution_timeout=timeout, kernel_manager_class=_kernel_manager_class(),
                # figures at twice the pixels, shown at the same size: sharp in the report
                extra_arguments=["--InlineBackend.figure_formats=retina"])
        record.duration_s = round((datetime.now(timezone.utc) - t0).total_seconds(), 1)
        phase = "rendering"
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
        raise NotebookError(record.error, record) from None
    except BaseException:  # interrupted: nothing of this run is left behind
        part.unlink(missing_ok=True)
        raise
    _record(out_dir, record)
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


def _run_job(i: int, job: Job, out_dir: str, kernel: str | None) -> tuple[int, RunRecord]:
    try:
        return i, run_notebook(job.notebook, job.params, out_dir, job.name_hint, kernel)
    except NotebookError as exc:
        return i, exc.record


def run_many(jobs: Iterable[Job], out_dir: str | Path = REPORTS, n_jobs: int = 2,
             kernel: str | None = None, progress: bool = True) -> list[RunRecord]:
    """Run notebooks in parallel processes, stage by stage, with a progress bar.

    Every job's parameters are validated before the first one starts. A failed job does
    not stop the others of its stage; later stages are then skipped (status
    ``"skipped"``, not recorded in the ledger) since they would read missing results.

    Returns
    -------
    list of RunRecord
        In the order of ``jobs``.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    jobs = list(jobs)
    for job in jobs:
        validate_parameters(job.notebook, job.params)
    out_dir = str(Path(out_dir).resolve())
    records: list[RunRecord | None] = [None] * len(jobs)
    with tqdm(total=len(jobs), desc="notebooks", unit="nb", disable=not progress) as bar:
        for stage in sorted({job.stage for job in jobs}):
            batch = [(i, job) for i, job in enumerate(jobs) if job.stage == stage]
            if any(r is not None and r.status != "ok" for r in records):
                for i, job in batch:
                    records[i] = _skipped(job, out_dir)
                bar.update(len(batch))
                continue
            workers = min(n_jobs, len(batch))
            if workers <= 1:
                results = (_run_job(i, job, out_dir, kernel) for i, job in batch)
            else:  # one process per running notebook; each starts its own kernel
                results = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")(
                    delayed(_run_job)(i, job, out_dir, kernel) for i, job in batch)
            for i, record in results:
                records[i] = record
                bar.set_postfix_str(f"{record.notebook}: {record.status}", refresh=False)
                bar.update()
    return records


def _skipped(job: Job, out_dir: str) -> RunRecord:
    stem = Path(str(job.notebook)).stem
    return RunRecord(run_id="", notebook=stem, hint=_slug(job.name_hint or "default"),
                     params=dict(job.params), seed=None, status="skipped", started="",
                     error="skipped: an earlier stage failed", out_dir=out_dir)


def _record(out_dir: Path, record: RunRecord) -> None:
    append_run(out_dir, {k: v for k, v in asdict(record).items() if k != "out_dir"})
