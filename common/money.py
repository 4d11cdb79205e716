"""Money as the lab writes it, everywhere: reports, charts and the command line.

One home for the format so that a figure reads the same in a table, on a chart axis and
in a sentence: the sign before the dollar sign (-$40k, never $-40k), thousands as k and
millions as M where a reader scans, whole dollars where a reader checks a plan's cost.
"""
from __future__ import annotations


def fmt_money(value: float, signed: bool = False, exact: bool = False, million_digits: int = 2) -> str:
    """$1.23M, $285k, $950; ``signed``: +$40k / -$40k; ``exact``: $8,057 / -$49,229.

    NaN is "n/a". A value that rounds to zero carries no sign."""
    value = float(value)
    if value != value:
        return "n/a"
    a = abs(value)
    if exact:
        text = f"${a:,.0f}"
    elif a >= 1e6:
        text = f"${a / 1e6:,.{million_digits}f}M"
    elif a >= 1e3:
        text = f"${a / 1e3:,.0f}k"
    else:
        text = f"${a:,.0f}"
    sign = "-" if value < 0 and round(a) > 0 else ("+" if signed and value > 0 else "")
    return sign + text


def axis_money(x: float, _pos=None) -> str:
    """$1.2M, $350k, $900: the labels of a money axis (matplotlib's ``FuncFormatter``)."""
    return fmt_money(x, million_digits=1)
