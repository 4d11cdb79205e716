"""Paths defined once (cookiecutter-data-science practice)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SCENARIOS = DATA / "scenarios"
NOTEBOOKS = ROOT / "notebooks"
REPORTS = ROOT / "reports"
SHARED = ROOT.parent / "shared"


def display_path(path) -> str:
    """A path as a report shows it: relative to the project when inside it (no machine
    paths in what people read), as given otherwise."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
