"""``lab run`` and ``lab report``: notebooks executed by papermill, rendered to HTML."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from common.errors import LabError
from common.paths import REPORTS

_PARAM_FLAGS = ("-p", "--param", "--parameter")


def parse_param_args(args: list[str]) -> dict[str, str]:
    """``["-p", "name", "value", ...]`` -> ``{"name": "value"}`` (values stay strings).

    Typer has no repeatable two-value option, so the pairs arrive as extra arguments.
    """
    params, rest = {}, list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in _PARAM_FLAGS:
            raise LabError(f"unexpected argument {flag!r}: parameters are given as -p NAME VALUE")
        if len(rest) < 2:
            raise LabError(f"{flag} needs a name and a value, got {rest!r}")
        name, value = rest.pop(0), rest.pop(0)
        if name in params:
            raise LabError(f"parameter '{name}' given twice ({params[name]!r} and {value!r})")
        params[name] = value
    return params


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``report`` to the ``lab`` command."""

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def run(
        ctx: typer.Context,
        notebook: str = typer.Argument(..., help="Notebook path, or a stem in notebooks/ (e.g. 03_sla_policies)."),
        out: Path = typer.Option(REPORTS, "--out", help="Folder for the report, the executed notebook and the index."),
        name: Optional[str] = typer.Option(None, "--name", help="Name part of the output files (default: the scenario's stem)."),
        kernel: Optional[str] = typer.Option(None, "--kernel", help="Jupyter kernel (default: smarketing-lab, else python3)."),
        show_params: bool = typer.Option(False, "--show-params", help="List the notebook's parameters and exit."),
    ):
        """Run one notebook with parameters (-p NAME VALUE, repeatable); print the HTML path."""
        from lab.notebook_params import notebook_parameters
        from lab.notebook_run import run_notebook

        if show_params:
            for pname, p in notebook_parameters(notebook).items():
                print(f"{pname}: {p.type or '?'} = {p.default}  # {p.help}")
            return
        record = run_notebook(notebook, parse_param_args(ctx.args), out, name_hint=name,
                              kernel=kernel, progress=sys.stderr.isatty())
        print(record.html_path)

    @app.command()
    def report(
        out: Path = typer.Option(REPORTS, "--out", help="Folder for reports and reports/index.html."),
        export: Optional[Path] = typer.Option(None, "--export", help="Your CRM export (a file, or the folder of a "
                                              "multi-table export); default: a simulated sample history."),
        mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help="Mapping file of the export (see "
                                               "data/mappings/); needed with --export."),
        scenario: Optional[Path] = typer.Option(None, "--scenario", help="Base scenario: team, SLA, routing, costs "
                                                "(default: the policy file's base)."),
        policies: Optional[Path] = typer.Option(None, "--policies", help="Policy file to compare (default: "
                                                "data/scenarios/policies.yaml)."),
        replications: int = typer.Option(0, "--replications", "-r", min=0, help="Replications per policy and "
                                         "cut-off (0: the policy file's)."),
        seed: int = typer.Option(2026, "--seed", min=0, help="Random seed of the policy runs."),
        outcome: Optional[str] = typer.Option(None, "--outcome", help="What the scoring refit learns: success (won) "
                                              "or a stage (sql...); default sql for the sample, success for an export."),
        plan: bool = typer.Option(False, "--plan/--no-plan", help="Also search the least-cost staffing plan in "
                                  "the policy notebook (slower; lab plan does it on its own)."),
        jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Notebooks run at once."),
    ):
        """Run the whole decision chain (lab/pipeline.py) on an export - yours with --export
        and --mapping, or the shipped sample - and print the index's path."""
        from lab.notebook_jobs import run_many
        from lab.notebook_run import output_folder
        from lab.pipeline import main_jobs
        from lab.run_index import write_index

        for name, path in (("--export", export), ("--mapping", mapping), ("--scenario", scenario),
                           ("--policies", policies)):
            if path is not None and not path.exists():
                raise LabError(f"{name} {path}: file not found")
        output_folder(out)  # a file of that name, or no write permission: say so first
        chain = main_jobs(out, export=export, mapping=mapping, scenario=scenario, policies=policies,
                          replications=replications, seed=seed, outcome=outcome, plan=plan)
        records = run_many(chain, out, n_jobs=jobs, progress=sys.stderr.isatty())
        index = write_index(out)
        for r in records:  # skipped notebooks were already named as they were skipped
            if r.status == "failed":
                print(f"failed: {r.notebook}: {r.error}", file=sys.stderr)
        print(index)
        if any(r.status != "ok" for r in records):
            raise typer.Exit(1)
