"""The lab's one error type for bad input: a readable message, no traceback at the CLI."""


class LabError(ValueError):
    """Bad input: the message names the file, field or row, the rule and the value."""
