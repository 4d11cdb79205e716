"""The lab's one error type for bad input: a readable message, no traceback at the CLI."""
from __future__ import annotations

from typing import Callable


class LabError(ValueError):
    """Bad input: the message names the file, field or row, the rule and the value."""


def plain(value):
    """``value`` without numpy's dress: ``np.int64(2)`` -> ``2``, arrays -> lists (for
    messages, which show the value as the user wrote it)."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return value


def shown(value, limit: int = 80) -> str:
    """``repr`` of a value for a message: plain Python, cut short when long."""
    text = repr(plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_message(exc, source: str | Callable[[tuple], str],
                       unknown: str = "unknown field (check the spelling)") -> str:
    """A pydantic ``ValidationError`` as the lab's message: one line per problem,
    ``<source>: <field path>: <rule>; got <value>`` (values that are whole mappings or
    lists are not repeated). ``source`` may be a function of the field path, for
    problems that come from different places (a file, a ``--set`` option)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = unknown if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        got = "" if isinstance(value, (dict, list)) else f"; got {shown(value)}"
        src = source(tuple(err["loc"])) if callable(source) else source
        lines.append(f"{src}: {loc}: {msg}{got}")
    return "\n".join(lines)
