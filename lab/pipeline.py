"""The main chain of notebooks behind ``lab report`` (and ``make report``).

``main_jobs`` is where the chain is assembled: a simulated history, the scoring refit,
the fitted funnel, the SLA and threshold policy runs and the leadership report, each a
``Job`` whose ``stage`` orders it after the runs whose outputs it reads. Jobs of one
stage run in parallel.
"""
from __future__ import annotations

from pathlib import Path

from lab.notebooks import Job


def main_jobs(out_dir: str | Path) -> list[Job]:
    """The notebook jobs of the main chain, writing under ``out_dir``.

    Parameters
    ----------
    out_dir : path
        The reports folder; jobs may pass paths below it to later stages.

    Returns
    -------
    list of Job
        Empty until the notebooks of ``notebooks/`` are added to the chain.
    """
    return []
