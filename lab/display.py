"""How the notebooks show tables: one call in each notebook's first cell."""
from __future__ import annotations

import pandas as pd


def setup() -> None:
    """Wide tables in full (up to 30 columns, 160 characters a line, text never cut)."""
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_colwidth", None)


def chart(fig, alt: str, width_px: int = 900):
    """Show a matplotlib figure as an image with alt text (for screen readers, and what a
    reader sees if the image cannot load), at most ``width_px`` wide so it fits a page."""
    import base64
    import html
    import io

    import matplotlib.pyplot as plt
    from IPython.display import HTML

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    text = html.escape(alt, quote=True)
    return HTML(f'<img src="data:image/png;base64,{data}" alt="{text}" title="{text}" '
                f'style="max-width:min(100%, {width_px}px); height:auto">')
