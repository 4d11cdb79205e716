"""Run parameterised notebooks: validate, execute with papermill, render with nbconvert.

A notebook's signature is its first cell tagged ``parameters``, one typed and commented
line per parameter (``n_leads: int = 2000  # leads per month``). ``run_notebook`` checks
the values against it before anything runs, executes a copy through papermill, renders
one self-contained HTML file (outputs only, images embedded, stderr dropped) and records
the run in ``runs.jsonl`` and ``index.html`` of the output folder. A failing cell keeps
the executed notebook under ``failed/`` and leaves the previous good report in place.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import yaml

from sim.errors import LabError
from sim.io import atomic_path, code_version
from sim.paths import NOTEBOOKS, REPORTS

try:  # POSIX: serialise ledger appends across processes; elsewhere O_APPEND must do
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

# nbformat imports jsonschema, which imports rfc3987_syntax when installed; that compiles
# about forty grammars on import (2-7 s in every process that runs a notebook) only to
# check 'iri' string formats, which no notebook schema uses. Without it jsonschema skips them.
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)

TEMPLATES = Path(__file__).with_name("templates")
LEDGER = "runs.jsonl"
INDEX = "index.html"
FAILED = "failed"
KERNEL = "smarketing-lab"


class Param(NamedTuple):
    """One line of a ``parameters`` cell: declared type, default as written, help text."""

    type: str
    default: str
    help: str


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


# ----------------------------------------------------------------- parameters


def resolve_notebook(name: str | Path) -> Path:
    """A path to a notebook, or a stem (or unique prefix) of one in ``notebooks/``."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    if path.suffix != ".ipynb" and len(path.parts) == 1:
        exact = NOTEBOOKS / f"{name}.ipynb"
        if exact.is_file():
            return exact
        matches = sorted(NOTEBOOKS.glob(f"{glob_escape(str(name))}*.ipynb"))
        if len(matches) == 1:
            return matches[0]
    available = ", ".join(sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))) or "none"
    raise LabError(f"notebook '{name}': no such file, and no unique match in {NOTEBOOKS} "
                   f"(available: {available})")


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def notebook_parameters(path: str | Path) -> dict[str, Param]:
    """The notebook's parameters, read by papermill from the cell tagged ``parameters``.

    Returns
    -------
    dict
        name -> ``Param(type, default, help)``; ``type`` as declared (``""`` when the
        line has no annotation), ``default`` as source text.
    """
    import papermill

    path = resolve_notebook(path)
    try:
        found = papermill.inspect_notebook(str(path))
    except ValueError as exc:  # papermill needs the kernel to know the language
        raise LabError(f"notebook {path.name}: cannot read its parameters ({exc}); "
                       f"save it once from JupyterLab so it records its kernel") from None
    return {name: Param(_declared(p.get("inferred_type_name")), str(p.get("default", "")),
                        str(p.get("help", "") or ""))
            for name, p in found.items()}


def _declared(type_name) -> str:
    # papermill says "None" when a parameter line has no annotation
    return "" if type_name in (None, "None") else str(type_name).replace("typing.", "")


def signature(params: dict[str, Param]) -> str:
    """``name: type, ...``, as listed in every parameter error."""
    if not params:
        return "none (the notebook has no cell tagged 'parameters')"
    return ", ".join(f"{n}: {p.type or _base_type(p)[0]}" for n, p in params.items())


def _base_type(p: Param) -> tuple[str, bool]:
    """The type to check against and whether ``None`` is allowed.

    ``Optional[int]``/``int | None`` -> ``("int", True)``, ``list[str]`` -> ``("list", False)``;
    an unannotated line takes the type of its default; ``"any"`` when that fails too.
    """
    declared = p.type.replace(" ", "")
    optional = False
    m = re.fullmatch(r"Optional\[(.+)\]", declared)
    if m:
        declared, optional = m.group(1), True
    parts = [t for t in declared.split("|") if t]
    if "None" in parts:
        optional, parts = True, [t for t in parts if t != "None"]
    declared = parts[0] if len(parts) == 1 else ""
    base = re.split(r"\[", declared, maxsplit=1)[0].lower()
    if base in ("int", "float", "bool", "str", "list", "dict", "tuple"):
        return base, optional
    if not declared:
        try:
            default = ast.literal_eval(p.default)
        except (ValueError, SyntaxError):
            return "any", True
        if default is None:
            return "any", True
        return type(default).__name__, optional
    return "any", optional


_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


def _coerce(base: str, optional: bool, value):
    """``value`` as ``base``; command-line strings are parsed, other values checked.

    Raises ValueError with the rule when the value does not fit.
    """
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
        return None
    if isinstance(value, str) and base not in ("str", "any"):
        text = value.strip()
        if base == "int":
            if not re.fullmatch(r"[+-]?\d+", text):
                raise ValueError("an integer")
            return int(text)
        if base == "float":
            try:
                return float(text)
            except ValueError:
                raise ValueError("a number") from None
        if base == "bool":
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError("true or false")
        try:  # list/dict/tuple: YAML reads JSON too, and "[a, b]" without quotes
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ValueError(f"a {base} in YAML or JSON") from None
    if base == "any":
        return yaml.safe_load(value) if isinstance(value, str) else value
    if base == "str" and isinstance(value, os.PathLike):
        return os.fspath(value)
    if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base in ("list", "tuple") and isinstance(value, (list, tuple)):
        return list(value)  # papermill writes a list literal either way
    expected = {"int": int, "bool": bool, "str": str, "dict": dict}.get(base)
    if expected is int and isinstance(value, bool):  # bool is an int in Python, not here
        raise ValueError("an integer")
    if expected is not None and isinstance(value, expected):
        return value
    raise ValueError(f"a {base}")


def validate_parameters(path: str | Path, params: dict) -> dict:
    """Check ``params`` against the notebook's ``parameters`` cell and coerce them.

    Command-line strings are converted to the declared type (int, float, bool, str;
    list and dict parsed as YAML/JSON). Unknown names and values that do not fit are
    refused in one LabError that lists the accepted parameters with their types.

    Returns
    -------
    dict
        The values to inject, converted.
    """
    path = resolve_notebook(path)
    return _validate(path, notebook_parameters(path), params)


def _validate(path: Path, declared: dict[str, Param], params: dict) -> dict:
    problems, values = [], {}
    for name, value in (params or {}).items():
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown parameter '{name}'{hint}")
            continue
        base, optional = _base_type(declared[name])
        try:
            values[name] = _coerce(base, optional, value)
        except ValueError as exc:
            problems.append(f"parameter '{name}' must be {exc}, got {value!r}")
    if problems:
        raise LabError(f"{path.name}: {'; '.join(problems)}. "
                       f"Accepted parameters: {signature(declared)}")
    return values


def _effective(declared: dict[str, Param], values: dict) -> list[dict]:
    """Every parameter with the value the run used, for the report header."""
    rows = []
    for name, p in declared.items():
        if name in values:
            shown, is_set = repr(values[name]), True  # Python, like the defaults beside it
        else:
            shown, is_set = p.default, False
        rows.append({"name": name, "type": p.type, "value": shown, "help": p.help, "set": is_set})
    return rows


def _value(declared: dict[str, Param], values: dict, name: str):
    if name in values:
        return values[name]
    if name in declared:
        try:
            return ast.literal_eval(declared[name].default)
        except (ValueError, SyntaxError):
            return declared[name].default
    return None


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


def _failure_message(path: Path, exc: Exception, kept: Path | None) -> str:
    """One line: notebook, cell, exception name and message; no traceback."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        # cell_index counts papermill's injected-parameters cell: it matches the kept notebook
        where = (f"cell {exc.cell_index} (In [{exc.exec_count}]: "
                 f"{_first_line(exc.source, 60)!r})")
        what = f"{exc.ename}: {_first_line(exc.evalue)}"
    else:
        where, what = "execution", f"{type(exc).__name__}: {_first_line(exc)}"
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
    values = _validate(path, declared, params or {})
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    scenario = _value(declared, values, "scenario")
    hint = _slug(name_hint or (Path(str(scenario)).stem if scenario else "default"))
    run_id, part = _claim(out_dir, path.stem, hint)
    t0 = datetime.now(timezone.utc)
    record = RunRecord(run_id=run_id, notebook=path.stem, hint=hint, params=values,
                       seed=_value(declared, values, "seed"), status="ok",
                       started=t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       code_version=code_version(), out_dir=str(out_dir))
    try:
        with _kernel_env():
            papermill.execute_notebook(
                str(path), str(part), parameters=values, kernel_name=kernel or default_kernel(),
                progress_bar=progress, cwd=str(path.parent),  # as JupyterLab runs it
                execution_timeout=timeout, kernel_manager_class=_kernel_manager_class(),
                # figures at twice the pixels, shown at the same size: sharp in the report
                extra_arguments=["--InlineBackend.figure_formats=retina"])
        record.duration_s = round((datetime.now(timezone.utc) - t0).total_seconds(), 1)
        html = render_html(nbformat.read(part, as_version=4), record, _effective(declared, values))
        _publish(out_dir / f"{run_id}.html", html)
        os.replace(part, out_dir / f"{run_id}.ipynb")
        latest = f"{path.stem}__{hint}.html"
        _publish(out_dir / latest, html)
        record.html, record.ipynb, record.latest = f"{run_id}.html", f"{run_id}.ipynb", latest
    except Exception as exc:  # a failing cell, a dead kernel, a timeout, a render error
        kept = out_dir / FAILED / f"{run_id}.ipynb"
        kept.parent.mkdir(exist_ok=True)
        os.replace(part, kept)
        record.status, record.ipynb = "failed", f"{FAILED}/{run_id}.ipynb"
        record.duration_s = round((datetime.now(timezone.utc) - t0).total_seconds(), 1)
        # an empty work file means papermill stopped before writing (e.g. no such kernel)
        record.error = _failure_message(path, exc, kept if kept.stat().st_size else None)
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
        """Leave out what a reader should not see: stderr (warnings included), papermill's
        error banners, stray ``<matplotlib...>`` reprs and code cells left empty."""

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
              "hint": record.hint, "run_id": record.run_id, "started": _when(record.started),
              "duration": _duration(record.duration_s), "code_version": record.code_version,
              "seed": record.seed, "parameters": parameters or []}
    body, _ = exporter.from_notebook_node(nb, resources={"lab_run": header})
    return body


def _publish(path: Path, text: str) -> Path:
    """Write atomically, readable by all like any report (the temporary file is 0600)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
    return path


def _when(iso: str) -> str:
    """``2024-05-01T09:30:12Z`` -> ``2024-05-01 09:30:12 UTC`` for readers."""
    return iso.replace("T", " ").replace("Z", " UTC") if iso else ""


def _duration(seconds: float) -> str:
    seconds = float(seconds or 0)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# ------------------------------------------------------------ ledger and index


@contextmanager
def _locked(out_dir: Path):
    """Hold the output folder's ledger lock (one writer at a time across processes)."""
    with open(out_dir / ".runs.lock", "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _record(out_dir: Path, record: RunRecord) -> None:
    """Append the run to ``runs.jsonl`` and rewrite ``index.html``, under the lock so that
    parallel runs neither interleave lines nor overwrite each other's index."""
    row = {k: v for k, v in asdict(record).items() if k != "out_dir"}
    line = json.dumps(row, default=str) + "\n"
    with _locked(out_dir):
        fd = os.open(out_dir / LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write of a whole line
            os.fsync(fd)
        finally:
            os.close(fd)
        _write_index(out_dir)


def read_ledger(out_dir: str | Path = REPORTS) -> list[dict]:
    """The runs recorded in ``runs.jsonl``, oldest first."""
    path = Path(out_dir) / LEDGER
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a killed writer: skip, keep the rest
            continue
    return runs


def write_index(out_dir: str | Path = REPORTS) -> Path:
    """Rewrite ``index.html`` from ``runs.jsonl``: latest report per notebook, every run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _locked(out_dir):
        return _write_index(out_dir)


def _write_index(out_dir: Path) -> Path:
    import jinja2

    runs = sorted(read_ledger(out_dir), key=lambda r: r.get("started", ""), reverse=True)
    rows, latest = [], {}
    for r in runs:
        link = r.get("html") if r.get("status") == "ok" else r.get("ipynb")
        rows.append({**r, "link": link, "link_text": "report" if r.get("status") == "ok" else "failed notebook",
                     "duration": _duration(r.get("duration_s")), "when": _when(r.get("started", "")),
                     "params_text": ", ".join(f"{k}={json.dumps(v, default=str)}"
                                              for k, v in (r.get("params") or {}).items()) or "defaults"})
        key = (r.get("notebook"), r.get("hint"))
        entry = latest.setdefault(key, {**rows[-1], "good_link": None})
        if entry["good_link"] is None and r.get("status") == "ok":
            entry["good_link"] = r.get("latest") or r.get("html")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    html = env.get_template("index.html.j2").render(
        runs=rows, latest=sorted(latest.values(), key=lambda r: (r["notebook"], r["hint"])),
        n_failed=sum(r.get("status") == "failed" for r in runs),
        updated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        css=(TEMPLATES / "report" / "static" / "report.css").read_text())
    return _publish(out_dir / INDEX, html)


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
