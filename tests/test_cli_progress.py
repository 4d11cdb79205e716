"""Long runs talk: notebook runs say how far they are (bars on a terminal, plain lines in
a log), and ``lab sweep`` prints each policy's difference from the baseline with its
95% interval, not only the levels."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.errors import LabError
from lab.cli import main
from lab.notebook_jobs import Job
from lab.notebook_progress import Progress, progress_mode
from lab.notebook_run import run_notebook

HERE = Path(__file__).parent / "notebooks"
FAILS = HERE / "fails.ipynb"
SMALL = "name: small\ncalendar:\n  horizon_days: 21\n  warmup_days: 7\narrivals:\n  leads_per_week: 120\n"
POLICIES = ("base: small.yaml\npolicies:\n  - name: baseline\n  - name: sdrs_8\n    set: {team.sdrs: 8}\n"
            "  - name: sla_15min\n    set: {sla.mql_minutes: 15}\n")


# ------------------------------------------------------------------- the modes


def test_progress_modes_follow_the_terminal(capsys):
    assert progress_mode(True) == "bars" and progress_mode(False) == "lines"
    assert progress_mode("off") == "off"
    assert progress_mode(None) == "lines"  # stderr is captured here: no terminal
    with pytest.raises(LabError, match=r"progress must be one of bars, lines, off, True, False or None; got 'loud'"):
        progress_mode("loud")


def _feed(reporter):
    reporter.event(0, "started", {})
    reporter.event(1, "started", {})
    reporter.event(0, "cell", {"n": 7, "total": 23})
    reporter.event(1, "cell", {"n": 2, "total": 9})
    reporter.event(0, "finished", {"status": "ok", "seconds": 41.23})
    reporter.event(1, "finished", {"status": "failed", "seconds": 3.0})
    reporter.skipped("05_scenario_report", "an earlier stage failed")
    reporter.close()


LABELS = {0: "03_sla_policies", 1: "04_threshold_policies"}


def test_a_terminal_gets_a_bar_per_running_notebook_cell_by_cell(capsys):
    _feed(Progress("bars", LABELS, total=3))
    err = capsys.readouterr().err
    for shown in ("03_sla_policies: started", "04_threshold_policies: started", "03_sla_policies: cell 7/23",
                  "04_threshold_policies: cell 2/9", "03_sla_policies: finished in 41.2 s",
                  "04_threshold_policies: failed after 3.0 s", "05_scenario_report: skipped, an earlier stage failed",
                  "notebooks: 100%"):
        assert shown in err, shown


def test_a_log_gets_plain_lines_and_no_bars(capsys):
    _feed(Progress("lines", LABELS, total=3))
    assert capsys.readouterr().err.splitlines() == [
        "03_sla_policies: started",
        "04_threshold_policies: started",
        "03_sla_policies: finished in 41.2 s (1 of 3 done)",
        "04_threshold_policies: failed after 3.0 s (2 of 3 done)",
        "05_scenario_report: skipped, an earlier stage failed (3 of 3 done)",
    ]


def test_off_says_nothing(capsys):
    _feed(Progress("off", LABELS, total=3))
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------- real runs


def test_each_cell_is_reported_as_it_starts(tmp_path):
    events = []
    record = run_notebook(FAILS, {}, tmp_path, progress=lambda kind, data: events.append((kind, data)))
    assert record.status == "ok"
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "started" and kinds[-2:] == ["rendering", "finished"] and events[-1][1]["status"] == "ok"
    cells = [(d["n"], d["total"]) for kind, d in events if kind == "cell"]
    total = len(__import__("nbformat").read(Path(tmp_path) / record.ipynb, as_version=4).cells)
    assert cells == [(n, total) for n in range(1, total + 1)]  # the injected parameters counted


def test_report_in_a_log_says_each_notebook_started_finished_failed_or_skipped(tmp_path, capsys, monkeypatch):
    """Two notebooks at once (worker processes send their events to the parent), then a
    failing stage and a skipped one: one plain line each, no bar."""
    import lab.pipeline

    monkeypatch.setattr(lab.pipeline, "main_jobs", lambda out, **chain: [
        Job(FAILS, {}, name_hint="north"), Job(FAILS, {"message": "x"}, name_hint="south"),
        Job(FAILS, {"fail": True}, name_hint="bad", stage=1),
        Job(FAILS, {}, name_hint="later", stage=2)])
    assert main(["report", "--out", str(tmp_path), "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "%|" not in err and not re.search(r"cell \d+/", err)
    for hint in ("north", "south"):
        assert f"fails [{hint}]: started" in lines
        assert any(re.fullmatch(rf"fails \[{hint}\]: finished in \d+\.\d s \([12] of 4 done\)", ln) for ln in lines)
    i = lines.index("fails [bad]: started")
    assert re.fullmatch(r"fails \[bad\]: failed after \d+\.\d s \(3 of 4 done\)", lines[i + 1])
    assert lines[i + 2] == "fails [later]: skipped, an earlier stage failed (4 of 4 done)"
    assert lines[i + 3].startswith("failed: fails: notebook fails.ipynb failed at cell 4")


# ------------------------------------------------------------------- sweep


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "small.yaml").write_text(SMALL)
    (root / "policies.yaml").write_text(POLICIES)
    return root / "policies.yaml"


def test_sweep_prints_differences_from_the_baseline_with_intervals(policy_file, capsys):
    assert main(["sweep", str(policy_file), "-r", "3", "--jobs", "1", "--out", str(policy_file.parent / "out")]) == 0
    out, err = capsys.readouterr()
    # no terminal: no replications bar, one line for the run
    assert "%|" not in err and re.search(r"^ran 9 replications \(3 policies\) in \d+\.\d s$", err, re.M)
    levels, rest = out.split("difference from baseline (policy minus baseline, paired by replication; "
                             "mean [95% interval]):\n")
    assert "sql_count" in levels and "wrote " in levels
    table = rest.split("\n\n")[0].splitlines()
    for kpi in ("sql_count", "pipeline_usd", "expected_revenue_usd", "net_value_per_quarter_usd",
                "sla_attainment_hot", "response_median_minutes"):
        assert kpi in table[0]
    rows = {line.split()[0]: line for line in table[2:]}
    assert list(rows) == ["sdrs_8", "sla_15min"]  # the baseline is not compared with itself
    # three more SDRs cost money every quarter; every cell is "effect [low, high]"
    assert re.search(r"-\$\d+k \[-\$\d+k, -\$\d+k\]", rows["sdrs_8"])
    assert re.search(r"[+-]?\d+\.\d pts \[[+-]?\d+\.\d pts, [+-]?\d+\.\d pts\]", rows["sla_15min"])
    assert len(re.findall(r"\[[^]]+, [^]]+\]", rows["sdrs_8"])) == 6


def test_sweep_baseline_must_name_a_policy(policy_file, capsys, tmp_path):
    rc = main(["sweep", str(policy_file), "--baseline", "today", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert (f"error: --baseline: {policy_file} has no policy named 'today' (rule: one of its policies: "
            f"baseline, sdrs_8, sla_15min); got 'today'") in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------- interrupted


RUNNER = """
import sys
from pathlib import Path
import lab.pipeline
from lab.cli import main
from lab.notebook_jobs import Job
slow = Path(sys.argv[1])
lab.pipeline.main_jobs = lambda out, **chain: [Job(slow, {}, name_hint="a"), Job(slow, {}, name_hint="b")]
sys.exit(main(["report", "--out", sys.argv[2], "--jobs", "2"]))
"""


def test_an_interrupted_parallel_report_leaves_no_work_file(tmp_path):
    """Ctrl-C while two notebooks run in worker processes: the workers are killed before
    they can tidy up, so the parent removes their work files; nothing is left half-written."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("pause: float = 60.0  # seconds")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import time\ntime.sleep(pause)")]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    slow = tmp_path / "slow.ipynb"
    nbformat.write(nb, slow)
    out = tmp_path / "reports"
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(slow), str(out)], stderr=err,
                                stdout=subprocess.DEVNULL, start_new_session=True, cwd=Path(__file__).parents[1])
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and err_path.read_text().count(": started") < 2:
                time.sleep(0.2)
            assert err_path.read_text().count(": started") == 2, err_path.read_text()
            assert len(list(out.glob(".*.part.ipynb"))) == 2
            # at once, while the kernels start: the moment a killed worker has no time to tidy up
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole process group
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = err_path.read_text()
    assert rc == 130 and text.splitlines()[-1].startswith("error: interrupted by SIGINT"), text
    assert not list(out.rglob("*.ipynb")) and not list(out.rglob("*.html")), sorted(out.rglob("*"))
