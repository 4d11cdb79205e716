"""What a fit to history returns: ``FittedFunnel``, the fitted scenario beside the tidy
tables it was estimated from (with 95% intervals and small-sample flags), and how it is
written (scenario YAML with a provenance header) and summarised for the command line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from calibration.decay_fit import DecayFit, Z
from sim.scenario import Scenario


@dataclass
class FittedFunnel:
    """What ``fit_scenario`` estimated: tidy tables with 95% intervals and the scenario.

    Tables: ``volume`` (leads and MQLs per week), ``profile`` (168 hour-of-week weights),
    ``channels`` (share and attributes per channel), ``response`` (first-response delay
    quantiles), ``decay`` (parameters) and ``decay_fit`` (curve with ``.curve(d)``),
    ``conversion`` (stage rates by band / segment), ``durations`` and ``deal_sizes``.
    Every table with a group size ``n`` has a ``small_n`` flag beside it (``n`` below
    ``common.intervals.SMALL_N``: a rough interval, an estimate that moves a lot)."""

    scenario: Scenario
    source: str
    sha256: str
    rows: int
    start: pd.Timestamp
    end: pd.Timestamp
    volume: pd.DataFrame
    profile: np.ndarray
    channels: pd.DataFrame
    response: pd.DataFrame
    decay: pd.DataFrame
    decay_fit: DecayFit | None
    conversion: pd.DataFrame
    durations: pd.DataFrame
    deal_sizes: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    #: One row per scenario parameter: fitted (estimate, n, 95% interval, shrinkage) or
    #: assumed (the base scenario's value and why). See ``calibration.fit_report``.
    report: pd.DataFrame | None = None
    #: Win rate, won deal size and days to close by category (channel, industry, ...).
    segments: pd.DataFrame | None = None
    #: What joined and what did not, for a multi-table export.
    joins: object = None

    def scenario_dict(self) -> dict:
        import json

        return json.loads(self.scenario.model_dump_json())

    def header(self) -> str:
        from common.files import code_version, now_utc

        lines = [f"Scenario fitted to history by calibration.history.fit_scenario ({now_utc()})",
                 f"source: {self.source}", f"source sha256: {self.sha256}", f"rows: {self.rows}",
                 f"period: {self.start} .. {self.end} (local, {self.scenario.calendar.timezone})",
                 f"code version: {code_version()}"]
        lines += [f"note: {n}" for n in self.notes]
        return "".join(f"# {ln}\n" for ln in lines)

    def write(self, path) -> Path:
        """Write the scenario YAML atomically, with a provenance header; returns the path."""
        from common.files import atomic_write_text

        text = self.header() + yaml.safe_dump(self.scenario_dict(), sort_keys=False)
        return atomic_write_text(path, text)

    def summary(self) -> str:
        """A few lines for the command line."""
        s = self.scenario
        lines = [f"{self.source}: {self.rows} leads, {self.start:%Y-%m-%d} .. {self.end:%Y-%m-%d}",
                 f"leads/week {s.arrivals.leads_per_week:.1f}; channels "
                 + ", ".join(f"{k} {v.share:.2f}" for k, v in s.arrivals.channels.items())]
        r = self.response.set_index("quantile")
        if len(r):
            lines.append("first response (min): " + ", ".join(f"p{int(q * 100)} {r.loc[q, 'minutes']:.0f}" for q in r.index))
        if len(self.decay):
            lines.append("decay P(qualified | band, d) = pq_band (1 + d/d0)^-alpha K_band(d) (p_band: at d = 0):")
            for _, row in self.decay.iterrows():
                lines.append(f"  {row['parameter']:<11} {row['estimate']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}]")
            if self.decay_fit is not None and self.decay_fit.rules is not None:
                for b in self.decay_fit.bands:
                    lines.append(f"  {'pq_' + b:<11} {self.decay_fit.q(b):.4g} [{self.decay_fit.q(b, -Z):.4g}, "
                                 f"{self.decay_fit.q(b, Z):.4g}] (qualify_prob)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
