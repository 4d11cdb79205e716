"""The ``lab`` command: one entry point for RevOps, analysts and the report.

Sub-commands live beside this file, one module per area, each registering on ``app``:
``lab.cli_sim`` (simulate, sweep), ``lab.cli_calibration`` (refit, fit-scenario) and
``lab.cli_notebooks`` (run, report). Bad input (``LabError``) prints one readable line
and exits 2; it never shows a traceback.
"""
from __future__ import annotations

import importlib
import sys

import typer

from common.errors import LabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="smarketing-lab: test SLA, routing, staffing and scoring policies before rollout.",
)

@app.callback()
def _root():
    """smarketing-lab: test SLA, routing, staffing and scoring policies before rollout."""


@app.command()
def version():
    """Print the code version recorded in every output."""
    from common.files import code_version

    print(code_version())


for _module in ("lab.cli_sim", "lab.cli_calibration", "lab.cli_history", "lab.cli_notebooks"):
    importlib.import_module(_module).register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input becomes one message on stderr and exit code 2."""
    try:
        app(args=argv, prog_name="lab")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # click's own usage errors exit 2 with a message
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
