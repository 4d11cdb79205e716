"""The run ledger (``runs.jsonl``) and ``index.html``: every notebook run, its
parameters and status, newest first. Appends are serialised by a file lock, so runs in
parallel processes never interleave lines or overwrite each other's index.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from common.files import atomic_path
from common.paths import REPORTS

try:  # POSIX: serialise ledger appends across processes; elsewhere O_APPEND must do
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

TEMPLATES = Path(__file__).with_name("templates")
STYLESHEET = TEMPLATES / "report" / "static" / "report.css"
LEDGER = "runs.jsonl"
INDEX = "index.html"


def publish(path: Path, text: str) -> Path:
    """Write atomically, readable by all like any report (the temporary file is 0600)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
    return path


def when(iso: str) -> str:
    """``2024-05-01T09:30:12Z`` -> ``2024-05-01 09:30:12 UTC`` for readers."""
    return iso.replace("T", " ").replace("Z", " UTC") if iso else ""


def duration(seconds: float) -> str:
    seconds = float(seconds or 0)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


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


def append_run(out_dir: Path, row: dict) -> None:
    """Append a run to ``runs.jsonl`` and rewrite ``index.html``, under the lock so that
    parallel runs neither interleave lines nor overwrite each other's index."""
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
                     "duration": duration(r.get("duration_s")), "when": when(r.get("started", "")),
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
        css=STYLESHEET.read_text())
    return publish(out_dir / INDEX, html)
