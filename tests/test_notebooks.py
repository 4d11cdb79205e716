"""Every notebook of notebooks/ runs through papermill with small parameters, in the
order of the main chain, and renders a report with no code and every section.

The chain runs once per test session (about two minutes on two cores): a short simulated
history, the refit and the funnel fit on it, three SLA policies and three cut-offs over
two replications, and the leadership report read from their saved outputs.
"""
from __future__ import annotations

import html
import json
import re

import nbformat
import pytest

from lab.notebook_jobs import run_many
from lab.notebook_params import notebook_parameters, validate_parameters
from lab.pipeline import main_jobs
from common.errors import LabError
from common.paths import NOTEBOOKS, ROOT

NAMES = ["00_simulate_history", "01_refit_scoring", "02_fit_funnel", "03_sla_policies",
         "04_threshold_policies", "05_scenario_report"]

SECTIONS = {
    "00_simulate_history": ["A simulated lead history", "The funnel that produced it", "Simulating the history",
                            "What the history looks like"],
    "01_refit_scoring": ["Refitting the lead-scoring points", "Fitting the new weights",
                         "How well each model ranks held-out leads", "Conversion by score decile",
                         "Conversion by band", "The new points table", "Cut-offs the team can absorb",
                         "Compared with the model in use", "Saving the model"],
    "02_fit_funnel": ["Fitting the funnel to history", "What the history says", "The shared dashboard on this export", "Speed-to-lead in this history",
                      "Conversion rates", "Stage durations and deal sizes", "Back-test against history",
                      "Saving the fitted scenario"],
    "03_sla_policies": ["SLA, routing and staffing policies, side by side", "Today's process, the starting point",
                        "The policies compared", "Which policies change what the team does",
                        "Running the simulations", "Money per quarter", "Difference from today's process",
                        "Service: how fast leads are answered", "SLA attainment per band",
                        "The funnel: SQLs, opportunities and wins", "How busy the SDRs are"],
    "04_threshold_policies": ["Where to set the MQL cut-off", "The scoring model and today's cut-offs",
                              "Running the cut-off grid", "Volume, quality, capacity and money per cut-off",
                              "In words", "The numbers"],
    "05_scenario_report": ["What to change in lead handling, and what it is worth", "The decision",
                           "Every policy tested", "Today's process", "Money per quarter, per policy",
                           "Service: how fast leads are answered", "The funnel per policy",
                           "Where to set the MQL cut-off", "The scoring model in use",
                           "How far to trust the model of the funnel", "Assumptions and risks", "Glossary",
                           "Appendix: how these numbers were made"],
}
# Charts each report must carry (embedded PNGs).
MIN_IMAGES = {"00_simulate_history": 1, "02_fit_funnel": 1, "03_sla_policies": 5,
              "04_threshold_policies": 1, "05_scenario_report": 5}
#: A small policy file for the chain: today, a hire and a measurement-only change.
POLICIES = """\
base: {base}
replications: 2
policies:
  - {{name: baseline, title: Today's process, description: five SDRs on office hours}}
  - {{name: sla_24h, title: 24-hour MQL SLA, description: a relaxed MQL target only, set: {{sla.mql_minutes: 1440}}}}
  - {{name: sdrs_6, title: 6 SDRs, description: one more SDR, set: {{team.sdrs: 6}}}}
"""


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The whole chain as ``lab report`` assembles it (``main_jobs``), small: a 56-day
    history, three policies and five cut-offs over two replications of 56 days;
    name -> (record, html)."""
    tmp = tmp_path_factory.mktemp("chain")
    policies = tmp / "policies.yaml"
    policies.write_text(POLICIES.format(base=ROOT / "data" / "scenarios" / "baseline.yaml"))
    jobs = main_jobs(tmp / "reports", policies=policies, horizon_days=56, plan=False)
    records = run_many(jobs, tmp / "reports", n_jobs=2, progress=False)
    return {r.notebook: (r, r.html_path.read_text() if r.html_path else "") for r in records}


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_renders_every_section(chain, name):
    record, page = chain[name]
    assert record.status == "ok", record.error
    text = re.sub(r"\s+", " ", _text(page))
    missing = [s for s in SECTIONS[name] if s not in text]
    assert not missing, f"{name}: sections missing from the report: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_report_shows_no_code(chain, name):
    record, page = chain[name]
    assert record.status == "ok", record.error
    # markdown cells render inside jp-InputArea too; code shows as an editor or highlighted source
    assert "jp-CodeMirrorEditor" not in page and 'class="highlight' not in page and "jp-InputPrompt" not in page
    assert not re.search(r"In\s*(&nbsp;|\s)*\[\d*\]", page)
    assert "import " not in _text(page).split("Appendix")[0]  # no source leaked into the body
    assert page.count("data:image/png;base64") >= MIN_IMAGES.get(name, 0)


def test_report_recommends_in_plain_words(chain):
    _, page = chain["05_scenario_report"]
    text = _text(page)
    assert ("Recommendation: " in text) or ("Keep today's process" in text)
    assert "net value" in text and "95% interval" in text and "a quarter" in text
    assert "Traceback" not in text and "Error" not in text
    # Readable names, no identifiers or machine paths.
    assert "6 SDRs" in text and "team.sdrs" not in text and "sla_24h" not in text.split("Appendix")[0]
    decision = text.split("The decision")[1].split("Today's process")[0]
    assert "/tmp/" not in decision and ("Recommendation" in decision or "Keep today" in decision)


def test_main_chain_is_ordered_and_valid(tmp_path):
    jobs = main_jobs(tmp_path)
    assert [j.notebook for j in jobs] == NAMES
    assert [j.stage for j in jobs] == [0, 1, 1, 2, 2, 3]
    for job in jobs:  # every parameter exists with the right type
        validate_parameters(job.notebook, job.params)
    # later stages read what earlier stages write, and every step defines today the same way
    p = {j.notebook: j.params for j in jobs}
    assert p["01_refit_scoring"]["export"] == p["00_simulate_history"]["export_path"] == p["02_fit_funnel"]["history"]
    today = ("policies", "scenario", "fitted_scenario", "model_dir")
    for later in ("03_sla_policies", "04_threshold_policies", "05_scenario_report"):
        assert [p[later][k] for k in today] == [p["03_sla_policies"][k] for k in today]
    assert p["03_sla_policies"]["model_dir"] == p["01_refit_scoring"]["model_dir"]
    assert p["03_sla_policies"]["fitted_scenario"] == p["02_fit_funnel"]["fitted_path"]
    assert p["05_scenario_report"]["sla_dir"] == p["03_sla_policies"]["out_dir"]
    assert p["05_scenario_report"]["thresholds_dir"] == p["04_threshold_policies"]["out_dir"]
    for k in ("replications", "seed", "horizon_days"):  # the cut-off grid's today is the policy run's today
        assert p["03_sla_policies"][k] == p["04_threshold_policies"][k]
    # The history the twin learns from is never the leads the policies are judged on.
    assert p["00_simulate_history"]["seed"] != p["03_sla_policies"]["seed"]


def test_report_runs_on_a_teams_own_export(tmp_path):
    """``lab report --export --mapping``: no simulated history; the export feeds both fits."""
    export, mapping = tmp_path / "crm.csv", tmp_path / "m.yaml"
    export.write_text("x\n")
    mapping.write_text("x: 1\n")
    jobs = main_jobs(tmp_path, export=export, mapping=mapping)
    assert [j.notebook for j in jobs] == NAMES[1:]
    p = {j.notebook: j.params for j in jobs}
    assert p["01_refit_scoring"]["export"] == p["02_fit_funnel"]["history"] == str(export.resolve())
    assert p["01_refit_scoring"]["outcome"] == "success"
    with pytest.raises(LabError, match="needs its mapping file"):
        main_jobs(tmp_path, export=export)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_signature_is_documented_and_outputs_are_clear(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    for line in code[0].source.splitlines():
        assert re.fullmatch(r"\w+: [\w\[\], |]+ = .+  # .+", line), f"{name}: undocumented parameter line {line!r}"
    params = notebook_parameters(NOTEBOOKS / f"{name}.ipynb")
    assert params and all(p.type and p.help for p in params.values())
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{name} is committed with outputs; clear them"
    assert nb.metadata["kernelspec"]["name"] == "smarketing-lab"


@pytest.mark.parametrize("name", NAMES)
def test_bad_parameters_are_refused_with_the_signature(name):
    params = notebook_parameters(NOTEBOOKS / f"{name}.ipynb")
    with pytest.raises(LabError, match=r"unknown parameter 'no_such_knob'.*Accepted parameters: "):
        validate_parameters(name, {"no_such_knob": 1})
    typed = next((n for n, p in params.items() if p.type in ("int", "float")), None)
    if typed:
        with pytest.raises(LabError, match=rf"parameter '{typed}' must be .*got 'many'"):
            validate_parameters(name, {typed: "many"})


def test_sweep_outputs_feed_the_report(chain):
    record, _ = chain["03_sla_policies"]
    out = json.loads(json.dumps(record.params))["out_dir"]
    from lab.story import load_sweep

    saved = load_sweep(out)
    assert saved.policies == ["baseline", "sla_24h", "sdrs_6"]  # the policy file's order (and its replications)
    assert set(saved.kpis["replication"]) == {0, 1}
    assert saved.leads is not None and len(saved.leads)


def test_a_limit_breach_is_never_printed_as_equal_to_the_limit():
    """0.7996 against an 80% limit reads "79.96% is below 80%", never "80% is below 80%"."""
    import pandas as pd

    from lab.story import Limits

    why = Limits().check(pd.Series({"sla_attainment": 0.7996, "sla_attainment_hot": 0.57, "sdr_utilisation": 0.5}))
    assert why == ["Hot-lead SLA attainment 57% is below 80%", "SLA attainment 79.96% is below 80%"]


# ---- one chain, one "today" -------------------------------------------------------------------
class _Tables(__import__("html.parser").parser.HTMLParser):
    """The tables of a page as lists of rows of cell texts (header cells included)."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(page: str) -> list[list[list[str]]]:
    t = _Tables()
    t.feed(page)
    return t.tables


def _rows(tables, first: str) -> list[tuple[list[str], list[str]]]:
    """(header, row) of every table with a row starting with ``first``."""
    out = [(next(h for h in t if len(h) >= len(r) and h[0] != first), r)
           for t in tables for r in t if r and r[0] == first]
    assert out, f"no table row starts with {first!r}"
    return out


def _today(chain):
    from lab.chain import resolve_today

    p = chain["05_scenario_report"][0].params
    return resolve_today(p["scenario"], p["policies"], p["fitted_scenario"], p["model_dir"])


def test_every_section_quotes_the_same_today(chain):
    from lab.story import load_sweep, today_figures

    p = chain["05_scenario_report"][0].params
    sla, thr = load_sweep(p["sla_dir"]), load_sweep(p["thresholds_dir"])
    mql = float(sla.meta["scenarios"]["baseline"]["scoring"]["mql"])
    here = next(n for n, c in thr.cutoffs.items() if c == mql)
    # The saved tables: the cut-off grid's today is the policy run's today, replication by replication.
    a = sla.kpis[sla.kpis["policy"] == "baseline"].drop(columns="policy").reset_index(drop=True)
    b = thr.kpis[thr.kpis["policy"] == here].drop(columns="policy").reset_index(drop=True)
    assert a.equals(b)
    # The rendered report: the figures of "Today's process" reappear, digit for digit, in the
    # money table's row of today and in the cut-off table's row of today's cut-off.
    tables = _tables(chain["05_scenario_report"][1])
    figures = today_figures(sla.summary)
    today = dict(zip(figures.index, figures["today"]))
    checked = 0
    for first in ("Today's process", f"MQL from {mql:g} (today)"):
        for header, row in _rows(tables, first):
            for col, cell in zip(header[1:], row[1:]):
                key = col[:1].upper() + col[1:]
                if key in today:
                    assert cell == today[key], (first, col, cell, today[key])
                    checked += 1
    assert checked >= 8  # four money figures, four cut-off figures
    # The headline quotes today's Hot SLA and workload with the same rounding.
    text = _text(chain["05_scenario_report"][1])
    hot = today["SLA attainment, Hot leads"]
    assert f"(today {hot})" in text or f"Today, Hot leads are answered within their SLA {hot}" in text


def test_the_table_in_use_is_the_one_the_policies_ran_with(chain):
    import json as _json
    from pathlib import Path

    from lab.story import load_sweep
    from sim.scoring import PointsTable

    today = _today(chain)
    p = chain["05_scenario_report"][0].params
    refit = _json.loads((Path(p["model_dir"]) / "model.json").read_text())
    assert today.table_path == (Path(p["model_dir"]) / "points.yaml").resolve()
    for folder in (p["sla_dir"], p["thresholds_dir"]):
        for name, doc in load_sweep(folder).meta["scenarios"].items():
            assert Path(doc["scoring"]["points_table"]).resolve() == today.table_path, (folder, name)
    text = re.sub(r"\s+", " ", _text(chain["05_scenario_report"][1]))
    section = text.split("The scoring model in use")[-1].split("How far to trust")[0]
    assert refit["decision"] in section and str(today.table_path) in section
    rows = PointsTable.load(today.table_path).rows
    assert all(f"{v:g}" in section for v in rows["points"])
    th = PointsTable.load(today.table_path).thresholds
    assert f"{th.hot:g} / {th.mql:g} / {th.nurture:g}" in text


def test_the_policies_run_on_the_fitted_twin_when_its_backtest_passes(chain):
    from lab.story import load_sweep
    from sim.scenario import backtest_verdict, load_scenario

    p = chain["05_scenario_report"][0].params
    verdict = backtest_verdict(p["fitted_scenario"])
    assert verdict is not None, "the funnel fit must record its back-test verdict in the fitted scenario"
    used = load_sweep(p["sla_dir"]).meta["scenarios"]["baseline"]
    twin = load_scenario(p["fitted_scenario"])
    pages = {n: re.sub(r"\s+", " ", _text(chain[n][1])) for n in ("03_sla_policies", "04_threshold_policies",
                                                                   "05_scenario_report")}
    if verdict.split()[0] == "pass":
        assert used["arrivals"]["leads_per_week"] == twin.arrivals.leads_per_week
        assert all("Warning" not in t for t in pages.values())
        assert "fitted twin" in pages["05_scenario_report"]
    else:  # the base scenario, and a banner wherever its results are used
        assert used["arrivals"]["leads_per_week"] != twin.arrivals.leads_per_week
        assert all("did not pass its back-test" in t for t in pages.values())
