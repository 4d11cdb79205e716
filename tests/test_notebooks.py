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

from lab.notebooks import Job, notebook_parameters, run_many, validate_parameters
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
    "02_fit_funnel": ["Fitting the funnel to history", "What the history says", "Speed-to-lead in this history",
                      "Conversion rates", "Stage durations and deal sizes", "Back-test against history",
                      "Saving the fitted scenario"],
    "03_sla_policies": ["SLA and routing policies, side by side", "The policies compared",
                        "Running the simulations", "Policies side by side", "How fast leads are answered",
                        "SLA attainment per band", "The funnel: SQLs, opportunities and wins",
                        "Pipeline and revenue", "How busy the SDRs are",
                        "Effect of each policy against today's process"],
    "04_threshold_policies": ["Where to set the MQL cut-off", "The scoring model", "Running the cut-off grid",
                              "Volume, quality, capacity and pipeline per cut-off", "In words", "The numbers"],
    "05_scenario_report": ["What to change in lead handling, and what it buys", "The recommendation",
                           "Expected effect against today's process", "Every policy tested",
                           "Pipeline per policy", "How fast leads are answered", "SLA attainment",
                           "The funnel per policy", "Where to set the MQL cut-off", "The scoring model in use",
                           "Assumptions and risks", "Appendix: how these numbers were made"],
}
# Charts each report must carry (embedded PNGs).
MIN_IMAGES = {"00_simulate_history": 1, "02_fit_funnel": 1, "03_sla_policies": 6,
              "04_threshold_policies": 1, "05_scenario_report": 5}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The six notebooks run in chain order with small parameters; name -> (record, html)."""
    tmp = tmp_path_factory.mktemp("chain")
    runs = tmp / "runs"
    history, refit = str(runs / "history.csv"), str(runs / "refit")
    sla, thr = str(runs / "sla"), str(runs / "thr")
    mapping = str(ROOT / "data" / "mappings" / "sim_leads.yaml")
    small = {"horizon_days": 28, "replications": 2, "n_jobs": 1}
    jobs = [
        Job("00_simulate_history", {"export_path": history, "horizon_days": 56, "n_jobs": 1}, stage=0),
        Job("01_refit_scoring", {"export": history, "mapping": mapping, "model_dir": refit, "outcome": "sql",
                                 "pdo": 15.0, "capacity": 400.0}, stage=1),
        Job("02_fit_funnel", {"history": history, "mapping": mapping, "fitted_path": str(runs / "fit.yaml"),
                              "replications": 2, "n_jobs": 1}, stage=1),
        Job("03_sla_policies", {**small, "policy_names": ["baseline", "sdrs_6", "sla_24h"], "out_dir": sla},
            stage=2),
        Job("04_threshold_policies", {**small, "points_table": refit, "mql_cutoffs": [55, 60, 65],
                                      "out_dir": thr}, stage=2),
        Job("05_scenario_report", {"sla_dir": sla, "thresholds_dir": thr, "model_dir": refit}, stage=3),
    ]
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
    assert ("Recommendation: adopt" in text) or ("Keep today's process" in text)
    assert "95% interval" in text
    assert "Traceback" not in text and "Error" not in text


def test_main_chain_is_ordered_and_valid(tmp_path):
    jobs = main_jobs(tmp_path)
    assert [j.notebook for j in jobs] == NAMES
    assert [j.stage for j in jobs] == [0, 1, 1, 2, 2, 3]
    for job in jobs:  # every parameter exists with the right type
        validate_parameters(job.notebook, job.params)
    # later stages read what earlier stages write
    p = {j.notebook: j.params for j in jobs}
    assert p["01_refit_scoring"]["export"] == p["00_simulate_history"]["export_path"]
    assert p["04_threshold_policies"]["points_table"] == p["01_refit_scoring"]["model_dir"]
    assert p["05_scenario_report"]["sla_dir"] == p["03_sla_policies"]["out_dir"]
    assert p["05_scenario_report"]["thresholds_dir"] == p["04_threshold_policies"]["out_dir"]


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
    assert saved.policies == ["baseline", "sla_24h", "sdrs_6"]  # the policy file's order
    assert set(saved.kpis["replication"]) == {0, 1}
    assert saved.leads is not None and len(saved.leads)


def test_a_limit_breach_is_never_printed_as_equal_to_the_limit():
    """0.7996 against an 80% limit reads "79.96% is below 80%", never "80% is below 80%"."""
    import pandas as pd

    from lab.story import Limits

    why = Limits().check(pd.Series({"sla_attainment": 0.7996, "sla_attainment_hot": 0.57, "sdr_utilisation": 0.5}))
    assert why == ["Hot-lead SLA attainment 57% is below 80%", "SLA attainment 79.96% is below 80%"]
