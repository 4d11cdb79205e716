"""The lab's one error type for bad input: a readable message, no traceback at the CLI."""


class LabError(ValueError):
    """Bad input: the message names the file, field or row, the rule and the value."""


def validation_message(exc, source: str, unknown: str = "unknown field (check the spelling)") -> str:
    """A pydantic ``ValidationError`` as the lab's message: one line per problem,
    ``<source>: <field path>: <rule>; got <value>`` (values that are whole mappings or
    lists are not repeated)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = unknown if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if isinstance(value, (dict, list)) else f"; got {value!r}"
        lines.append(f"{source}: {loc}: {msg}{shown}")
    return "\n".join(lines)
