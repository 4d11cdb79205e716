"""A notebook's signature: the parameters of its cell tagged ``parameters``.

One typed and commented line per parameter (``n_leads: int = 2000  # leads per month``),
read by papermill. Values are checked against it before anything runs; strings from the
command line are converted to the declared type.
"""
from __future__ import annotations

import ast
import difflib
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

from common.errors import LabError, shown
from common.paths import NOTEBOOKS, ROOT

# nbformat imports jsonschema, which imports rfc3987_syntax when installed; that compiles
# about forty grammars on import (2-7 s in every process that runs a notebook) only to
# check 'iri' string formats, which no notebook schema uses. Without it jsonschema skips them.
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)


class Param(NamedTuple):
    """One line of a ``parameters`` cell: declared type, default as written, help text."""

    type: str
    default: str
    help: str


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


# Ranges of the parameters every notebook names the same way: a value outside is refused
# before anything runs (a notebook would otherwise treat 0 as "use the default").
RANGES: dict[str, tuple[float | None, float | None, str]] = {  # name -> (low, high, ends: "[]" "()" ...)
    "replications": (1, None, "[]"),
    "n_jobs": (1, None, "[]"),
    "seed": (0, None, "[]"),
    "horizon_days": (1, 3660, "[]"),
    "holdout": (0, 1, "()"),
    "capacity": (0, None, "[]"),
    "pdo": (0, None, "[]"),
    "current_mql": (0, None, "[]"),
    "hot_offset": (0, None, "[]"),
    "nurture_offset": (0, None, "[]"),
    "min_sla_hot": (0, 1, "[]"),
    "min_sla": (0, 1, "[]"),
    "max_utilisation": (0, 1, "(]"),
}


def _check_range(name: str, value, zero_means_default: bool = False) -> None:
    """Raise ValueError with the rule when a known parameter is out of its range.
    ``zero_means_default``: the notebook documents 0 as "use the default" ("(0: ...)" in
    the parameter's comment), so 0 is accepted below a lower bound of 1."""
    import math

    if name not in RANGES or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high, ends = RANGES[name]
    if zero_means_default and low == 1:
        low = 0
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a finite number")
    below = low is not None and (value < low or (ends[0] == "(" and value == low))
    above = high is not None and (value > high or (ends[1] == ")" and value == high))
    if not (below or above):
        return
    lo = f"{'above' if ends[0] == '(' else 'at least'} {low:g}"
    hi = f"{'below' if ends[1] == ')' else 'at most'} {high:g}" if high is not None else ""
    raise ValueError(f"{lo} and {hi}" if hi else lo)


def validate_parameters(path: str | Path, params: dict,
                        declared: dict[str, Param] | None = None) -> dict:
    """Check ``params`` against the notebook's ``parameters`` cell and coerce them.

    Command-line strings are converted to the declared type (int, float, bool, str;
    list and dict parsed as YAML/JSON). Unknown names and values that do not fit are
    refused in one LabError that lists the accepted parameters with their types.

    Parameters
    ----------
    declared : dict, optional
        The notebook's parameters when already read (``notebook_parameters``).

    Returns
    -------
    dict
        The values to inject, converted.
    """
    path = resolve_notebook(path)
    declared = notebook_parameters(path) if declared is None else declared
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
            _check_range(name, values[name], "(0:" in (declared[name].help or ""))
        except ValueError as exc:
            problems.append(f"parameter '{name}' must be {exc}, got {shown(value)}")
    if problems:
        raise LabError(f"{path.name}: {'; '.join(problems)}. "
                       f"Accepted parameters: {signature(declared)}")
    return values


def effective_parameters(declared: dict[str, Param], values: dict) -> list[dict]:
    """Every parameter with the value the run used, for the report header."""
    rows = []
    for name, p in declared.items():
        if name in values:
            # Python, like the defaults beside it; files inside the project relative to it,
            # so a report does not show the machine it ran on.
            shown, is_set = repr(values[name]).replace(str(ROOT) + "/", ""), True
        else:
            shown, is_set = p.default, False
        rows.append({"name": name, "type": p.type, "value": shown, "help": p.help, "set": is_set})
    return rows


def parameter_value(declared: dict[str, Param], values: dict, name: str):
    """The value a run uses for ``name``: as given, else the default, else None."""
    if name in values:
        return values[name]
    if name in declared:
        try:
            return ast.literal_eval(declared[name].default)
        except (ValueError, SyntaxError):
            return declared[name].default
    return None
