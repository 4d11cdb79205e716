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


for _module in ("lab.cli_sim", "lab.cli_calibration", "lab.cli_history", "lab.cli_notebooks", "lab.cli_plan"):
    importlib.import_module(_module).register(app)


def _value_of(param, argv: list[str]) -> str | None:
    """The value the user gave for ``param`` on the command line, for the message."""
    opts = list(getattr(param, "opts", []) or []) + list(getattr(param, "secondary_opts", []) or [])
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if opt.startswith("--") and arg.startswith(opt + "="):
                return arg[len(opt) + 1:]
    return None


def _click():
    """The exceptions of the click Typer runs on (recent Typer versions carry their own
    copy of click)."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def _aborts() -> tuple:
    """What an interrupted command raises: click's ``Abort`` (Typer >= 0.2x vendors click
    without it and keeps its own in ``typer.exceptions``) and ``KeyboardInterrupt``."""
    found = [getattr(_click(), "Abort", None)]
    try:
        from typer.exceptions import Abort
    except ImportError:  # pragma: no cover - older Typer: click's Abort is the one
        Abort = None
    found.append(Abort)
    return tuple(dict.fromkeys(c for c in found if c is not None)) + (KeyboardInterrupt,)


def usage_message(exc, argv: list[str]) -> str:
    """Click's usage error as one line: the option, the rule and the value given."""
    click = _click()
    param = getattr(exc, "param", None)
    text = " ".join(exc.format_message().split())
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) and param is not None:
        import re

        hint = " / ".join(getattr(param, "opts", []) or []) or (param.name or "value").upper()
        value = _value_of(param, argv)
        text = re.sub(r"^Invalid value for [^:]*: ", "", text)
        got = f"; got {value!r}" if value is not None else ""
        return f"{hint}: {text.rstrip('.')}{got}"
    command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "lab"
    return f"{command}: {text.rstrip('.')} (see '{command} --help')"


class _Signals:
    """SIGINT and SIGTERM stop the run through ``KeyboardInterrupt`` (so every ``finally``
    and clean-up runs); the signal is remembered for the one-line message."""

    def __init__(self):
        self.got = None
        self.saved = {}

    def _handler(self, signum, frame):
        self.got = signum
        raise KeyboardInterrupt

    def __enter__(self):
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.saved[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        import signal

        for sig, old in self.saved.items():
            signal.signal(sig, old)
        return False


def _interrupted(signum) -> int:
    import signal

    name = signal.Signals(signum).name if signum else "SIGINT"
    print(f"error: interrupted by {name}: the run stopped; outputs are swapped in whole or not at all, "
          f"so no partial output was left and any previous output is as it was", file=sys.stderr)
    return 128 + (signum or signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input becomes one message on stderr and exit code 2 (a usage
    error too, with the option and the value given); an interrupt (Ctrl-C, SIGTERM) one
    line and 128 + the signal number; a disk error one line and exit 1."""
    click = _click()

    argv = list(sys.argv[1:] if argv is None else argv)
    with _Signals() as sig:
        try:
            code = app(args=argv, prog_name="lab", standalone_mode=False)
        except LabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except click.NoArgsIsHelpError as exc:
            print(exc.format_message())
            return exc.exit_code
        except click.ClickException as exc:
            print(f"error: {usage_message(exc, argv)}", file=sys.stderr)
            return exc.exit_code
        except _aborts():
            return _interrupted(sig.got)
        except OSError as exc:  # the disk or the system, not the input: one line all the same
            from common.files import os_problem

            where = f"{exc.filename}: " if exc.filename else ""
            print(f"error: {where}{os_problem(exc)}", file=sys.stderr)
            return 1
        except MemoryError:
            print("error: out of memory (make the run smaller: fewer leads per week, replications or --jobs)",
                  file=sys.stderr)
            return 1
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if sig.got is not None or code == 130:
        return _interrupted(sig.got)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
