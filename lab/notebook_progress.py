"""What notebook runs say while they work, on stderr: ``Progress`` and its modes.

On a terminal (``bars``) a line per notebook started and finished with its elapsed
seconds, above one bar per running notebook ("03_sla_policies: cell 7/23"); in a log
(``lines``: CI, cron) one plain line per notebook started, finished, failed or skipped,
and no bars; ``off``: nothing. Cells are counted through a papermill engine hook
(``cell_engine``); parallel runs (``lab.notebook_jobs``) send their events to the
parent, the one process that draws.
"""
from __future__ import annotations

import sys
import threading

from common.errors import LabError


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


def cell_engine() -> str:
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
