"""How the notebooks show tables: one call in each notebook's first cell."""
from __future__ import annotations

import pandas as pd


def setup() -> None:
    """Wide tables in full (up to 30 columns, 160 characters a line, text never cut)."""
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_colwidth", None)
