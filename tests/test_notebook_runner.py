"""The notebook runner: parameters checked before a run, clean self-contained HTML,
failed runs kept apart from good reports, parallel runs recorded in one index."""
from __future__ import annotations

import json
import re
from html import unescape
import threading
from pathlib import Path

import nbformat
import pytest

from lab import notebook_jobs, notebook_params, notebook_run, run_index
from lab.cli import main
from lab.cli_notebooks import parse_param_args
from common.errors import LabError
from common.files import code_version

HERE = Path(__file__).parent / "notebooks"
PLOT = HERE / "plot_report.ipynb"
FAILS = HERE / "fails.ipynb"
ACCEPTED = "Accepted parameters: title: str, n_points: int, scale: float, seed: int, show_table: bool, bands: list"


# ------------------------------------------------------------------ parameters


def test_parameters_read_from_the_tagged_cell():
    params = notebook_params.notebook_parameters(PLOT)
    assert list(params) == ["title", "n_points", "scale", "seed", "show_table", "bands"]
    assert params["n_points"] == ("int", "20", "number of points on the curve")
    kind, default, help_ = params["bands"]
    assert (kind, default, help_) == ("list", '["A", "B", "C"]', "score bands shown in the table")


def test_command_line_strings_are_converted_to_the_declared_types():
    values = notebook_params.validate_parameters(PLOT, {
        "title": "42", "n_points": "30", "scale": "2", "show_table": "no", "bands": "[A, B]"})
    assert values == {"title": "42", "n_points": 30, "scale": 2.0, "show_table": False, "bands": ["A", "B"]}
    assert notebook_params.validate_parameters(PLOT, {"bands": '["x"]', "scale": 3})["scale"] == 3.0


def test_unknown_names_are_refused_with_the_accepted_list():
    with pytest.raises(LabError, match=r"plot_report.ipynb: unknown parameter 'n_point' "
                                       r"\(did you mean 'n_points'\?\)") as err:
        notebook_params.validate_parameters(PLOT, {"n_point": "3"})
    assert ACCEPTED in str(err.value)


@pytest.mark.parametrize("name, value, rule", [
    ("n_points", "ten", "an integer"),
    ("n_points", "2.5", "an integer"),
    ("n_points", True, "an integer"),
    ("scale", "steep", "a number"),
    ("show_table", "maybe", "true or false"),
    ("bands", "{a: 1}", "a list"),
    ("title", 3, "a str"),
])
def test_wrong_types_are_refused_with_the_rule_and_the_value(name, value, rule):
    with pytest.raises(LabError, match=re.escape(f"parameter '{name}' must be {rule}, got {value!r}")) as err:
        notebook_params.validate_parameters(PLOT, {name: value})
    assert ACCEPTED in str(err.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(LabError, match=r"unknown parameter 'colour'; parameter 'seed' must be an integer"):
        notebook_params.validate_parameters(PLOT, {"colour": "red", "seed": "x"})


def test_untyped_and_optional_parameters(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("limit: Optional[int] = None  # cap, none for no cap\n"
                                     "rate = 0.5  # untyped: checked against the default's type")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path = tmp_path / "untyped.ipynb"
    nbformat.write(nb, path)
    assert notebook_params.validate_parameters(path, {"limit": "none", "rate": "1"}) == {"limit": None, "rate": 1.0}
    assert notebook_params.validate_parameters(path, {"limit": "7"}) == {"limit": 7}
    with pytest.raises(LabError, match="parameter 'rate' must be a number"):
        notebook_params.validate_parameters(path, {"rate": "fast"})


def test_notebooks_resolve_by_path_stem_or_unique_prefix(monkeypatch):
    monkeypatch.setattr("lab.notebook_params.NOTEBOOKS", HERE)
    assert notebook_params.resolve_notebook("plot_report") == PLOT
    assert notebook_params.resolve_notebook("fa") == FAILS
    assert notebook_params.resolve_notebook(str(PLOT)) == PLOT.resolve()
    with pytest.raises(LabError, match=r"notebook 'nope': no such file.*available: fails, plot_report"):
        notebook_params.resolve_notebook("nope")


def test_param_pairs_from_the_command_line():
    assert parse_param_args(["-p", "a", "1", "--param", "b", "-0.5"]) == {"a": "1", "b": "-0.5"}
    with pytest.raises(LabError, match="needs a name and a value"):
        parse_param_args(["-p", "a"])
    with pytest.raises(LabError, match="unexpected argument 'extra'"):
        parse_param_args(["extra"])


def test_bad_parameters_stop_the_cli_before_anything_runs(tmp_path, capsys):
    rc = main(["run", str(PLOT), "-p", "n_points", "many", "--out", str(tmp_path)])
    assert rc == 2
    assert "parameter 'n_points' must be an integer, got 'many'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------- one run


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    record = notebook_run.run_notebook(PLOT, {"n_points": "30", "title": "Speed to lead"}, out)
    return record, record.html_path.read_text()


def test_outputs_are_named_after_notebook_hint_and_time(good_run):
    record, _ = good_run
    out = Path(record.out_dir)
    assert re.fullmatch(r"plot_report__default__\d{8}-\d{6}", record.run_id)
    assert (out / f"{record.run_id}.html").is_file() and (out / f"{record.run_id}.ipynb").is_file()
    assert (out / "plot_report__default.html").read_bytes() == (out / f"{record.run_id}.html").read_bytes()
    assert not list(out.glob(".*.part*")), "no work files left behind"


def test_html_shows_outputs_only(good_run):
    _, html = good_run
    assert "data:image/png;base64," in html
    assert "STDOUT-MARKER" in html and 'class="dataframe"' in html
    for hidden in ("STDERR-MARKER", "WARNING-MARKER", "import matplotlib", "rng.normal",
                   "jp-InputPrompt", "jp-InputArea-editor", "In&nbsp;[", "Out["):
        assert hidden not in html, hidden


def test_html_is_self_contained(good_run):
    _, html = good_run
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script src" not in html


def test_html_header_records_parameters_seed_and_code_version(good_run):
    record, html = good_run
    assert record.params == {"n_points": 30, "title": "Speed to lead"} and record.seed == 7
    assert code_version() in html and record.run_id in html
    header, rest = unescape(html).split('<article class="body">')
    assert "<code>n_points=30</code>" in header and "<code>title='Speed to lead'</code>" in header
    assert "<dt>Seed</dt><dd>7</dd>" in header
    appendix = rest.split('id="run-parameters"')[1]
    for name, value in [("n_points", "30"), ("scale", "1.5"), ("seed", "7"), ("title", "'Speed to lead'")]:
        assert f"<code>{name}</code>" in appendix and f"<code>{value}</code>" in appendix


def test_executed_notebook_holds_the_injected_parameters(good_run):
    record, _ = good_run
    nb = nbformat.read(Path(record.out_dir) / record.ipynb, as_version=4)
    assert nb.metadata.papermill.parameters == {"n_points": 30, "title": "Speed to lead"}


# ----------------------------------------------------------- a failing run


def test_failing_cell_keeps_the_notebook_and_the_previous_report(tmp_path, capsys):
    good = notebook_run.run_notebook(FAILS, {"fail": False}, tmp_path)
    latest = tmp_path / good.latest
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.html") if p.name != "index.html"}

    rc = main(["run", str(FAILS), "-p", "fail", "true", "-p", "message", "SLA file missing",
               "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    # stderr is no terminal here: one plain line as the run starts and fails, then the error
    started, failed, error = err.splitlines()
    assert started == "fails: started" and re.fullmatch(r"fails: failed after \d+\.\d s", failed)
    assert re.match(r"error: notebook fails.ipynb failed at cell 4 \(In \[4\]: 'if fail:'\): "
                    r"RuntimeError: SLA file missing; executed notebook kept at .*failed/fails__default__", error)
    assert "Traceback" not in err

    kept = list((tmp_path / "failed").glob("fails__default__*.ipynb"))
    assert len(kept) == 1
    assert "SLA file missing" in kept[0].read_text()
    after = {p.name: p.read_bytes() for p in tmp_path.glob("*.html") if p.name != "index.html"}
    assert after == before and latest.read_bytes() == before[latest.name]

    runs = run_index.read_ledger(tmp_path)
    assert [r["status"] for r in runs] == ["ok", "failed"]
    assert runs[1]["ipynb"] == f"failed/{kept[0].name}" and "SLA file missing" in runs[1]["error"]
    index = (tmp_path / "index.html").read_text()
    assert 'class="status failed"' in index and 'class="status ok"' in index
    assert f'href="failed/{kept[0].name}"' in index and f'href="{good.latest}"' in index


def test_same_second_runs_get_distinct_names(tmp_path):
    first, part1 = notebook_run._claim(tmp_path, "nb", "h")
    second, part2 = notebook_run._claim(tmp_path, "nb", "h")
    assert first != second and part1.exists() and part2.exists()


# ---------------------------------------------------- parallel runs and index


def test_parallel_runs_all_land_in_the_index(tmp_path):
    jobs = [notebook_jobs.Job(FAILS, {"message": "x"}, name_hint="north"),
            notebook_jobs.Job(FAILS, {}, name_hint="south")]
    records = notebook_jobs.run_many(jobs, tmp_path, n_jobs=2, progress=False)
    assert [(r.hint, r.status) for r in records] == [("north", "ok"), ("south", "ok")]
    assert sorted(r["hint"] for r in run_index.read_ledger(tmp_path)) == ["north", "south"]
    index = (tmp_path / "index.html").read_text()
    assert index.count('class="status ok"') == 4  # latest table + all-runs table
    assert "fails__north.html" in index and "fails__south.html" in index
    assert 'message=&#34;x&#34;' in index


def test_ledger_appends_from_many_writers_stay_whole(tmp_path):
    def write(i):
        notebook_run._record(tmp_path, notebook_run.RunRecord(run_id=f"r{i}", notebook="nb", hint=f"h{i}",
                                                              params={"i": i}, seed=None, status="ok",
                                                              started=f"2024-01-01T00:00:{i:02d}Z"))
    threads = [threading.Thread(target=write, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["run_id"] for line in lines) == sorted(f"r{i}" for i in range(24))
    assert (tmp_path / "index.html").read_text().count("<td>nb</td>") == 48


def test_report_runs_the_chain_and_fails_when_a_job_fails(tmp_path, capsys, monkeypatch):
    import lab.pipeline

    monkeypatch.setattr(lab.pipeline, "main_jobs", lambda out, **chain: [
        notebook_jobs.Job(FAILS, {"fail": True}), notebook_jobs.Job(FAILS, {}, name_hint="later", stage=1)])
    rc = main(["report", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert out.strip() == str(tmp_path / "index.html")
    assert "failed: fails: notebook fails.ipynb failed at cell 4" in err
    assert "fails [later]: skipped, an earlier stage failed" in err  # said once, as it happens
    assert [r["status"] for r in run_index.read_ledger(tmp_path)] == ["failed"]


def test_report_with_an_empty_chain_writes_the_index(tmp_path, capsys, monkeypatch):
    import lab.pipeline

    monkeypatch.setattr(lab.pipeline, "main_jobs", lambda out, **chain: [])
    assert main(["report", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "index.html")
    assert "No runs yet" in (tmp_path / "index.html").read_text()


@pytest.mark.parametrize("installed, expected", [
    ("here", notebook_run.KERNEL),      # the project's kernel runs this interpreter: use it
    ("elsewhere", "python3"),  # it runs another Python: fall back to python3 (sys.executable)
    (None, "python3"),         # not installed
])
def test_default_kernel_runs_this_interpreter(monkeypatch, tmp_path, installed, expected):
    import sys

    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

    python = {"here": sys.executable, "elsewhere": str(tmp_path / "other-venv" / "bin" / "python")}

    def get_kernel_spec(self, name):
        if installed is None or name != notebook_run.KERNEL:
            raise NoSuchKernel(name)
        return KernelSpec(argv=[python[installed], "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name=name, language="python")

    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", get_kernel_spec)
    assert notebook_run.default_kernel() == expected


def test_report_header_shows_project_files_relative_to_the_project():
    """No machine path in a report: files inside the project are shown relative to it,
    files elsewhere (a team's own export) as given."""
    from common.paths import ROOT
    from lab.notebook_params import Param, effective_parameters

    declared = {"scenario": Param("str", "'x'", ""), "export": Param("str", "'y'", "")}
    rows = effective_parameters(declared, {"scenario": str(ROOT / "data" / "scenarios" / "baseline.yaml"),
                                           "export": "/srv/crm/leads.csv"})
    assert [r["value"] for r in rows] == ["'data/scenarios/baseline.yaml'", "'/srv/crm/leads.csv'"]


def test_display_path_is_relative_inside_the_project_only():
    from common.paths import ROOT, display_path

    assert display_path(ROOT / "reports" / "runs" / "refit" / "points.yaml") == "reports/runs/refit/points.yaml"
    assert display_path("/srv/crm/leads.csv") == "/srv/crm/leads.csv"
