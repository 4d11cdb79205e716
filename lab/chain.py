"""Today's process, defined once for the whole decision chain.

The chain is export -> refit -> fitted twin -> policies -> cut-offs -> report. Every
step after the fits simulates *today's process*, and every section of the report quotes
its figures, so it is decided in one place, here, from the files the earlier steps
wrote:

* **Scenario**: the fitted twin (``02_fit_funnel`` / ``lab fit-scenario``) when its
  back-test verdict, recorded in the file's header, is a pass; otherwise the base
  scenario (``--scenario``, or the policy file's ``base:``), with the reason said.
* **Scoring table**: the table in use after the refit's champion/challenger decision
  (the refit folder's ``points.yaml`` holds it, with its cut-offs); without a refit, the
  scenario's own table.

``resolve_today`` is a pure function of those files, so notebooks 03, 04 and 05 calling
it with the same inputs get the same answer; ``Today.overrides`` is what a policy's own
settings are laid on top of.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import LabError
from common.paths import SCENARIOS, display_path


@dataclass
class Today:
    """Today's process: the scenario, the scoring table and cut-offs, and why."""

    scenario_path: Path
    scenario_source: str            # "fitted twin" or "base scenario"
    scenario_reason: str            # one sentence: why this scenario
    backtest: str | None            # the twin's back-test verdict (None: no twin)
    fitted_path: Path | None        # the twin considered (used or not)
    table_path: Path | None         # the scoring table in use (None: the scenario's own)
    table_reason: str               # the refit's decision, or why there is none
    thresholds: dict = field(default_factory=dict)  # hot / mql / nurture of the table in use
    base_path: Path | None = None

    @property
    def uses_twin(self) -> bool:
        return self.scenario_source == "fitted twin"

    @property
    def twin_failed(self) -> bool:
        """A twin exists and did not pass its back-test."""
        return self.fitted_path is not None and not self.uses_twin

    @property
    def overrides(self) -> dict:
        """Scenario settings every policy run starts from (the table in use and its cut-offs)."""
        if self.table_path is None:
            return {}
        return {"scoring.points_table": str(self.table_path), **{f"scoring.{k}": float(v)
                                                                 for k, v in self.thresholds.items()}}

    def scenario(self, overrides: dict | None = None):
        """Today's scenario, with ``overrides`` (a policy's settings) on top."""
        from sim.scenario import load_scenario

        return load_scenario(self.scenario_path, {**self.overrides, **(overrides or {})})

    def describe(self) -> dict:
        """Plain fields for a report table (project-relative paths)."""
        return {"scenario": f"{display_path(self.scenario_path)} ({self.scenario_source})",
                "why this scenario": self.scenario_reason,
                "scoring table in use": display_path(self.table_path) if self.table_path else
                "the scenario's own table",
                "why this table": self.table_reason,
                "cut-offs (Hot / MQL / Nurture)": " / ".join(f"{self.thresholds[k]:g}" for k in ("hot", "mql", "nurture"))
                if self.thresholds else "the scenario's own"}


def base_scenario_path(scenario: str | Path | None = "", policies: str | Path | None = "") -> Path:
    """The base scenario: ``scenario`` when given, else the policy file's ``base:``
    (relative to the policy file), else the shipped baseline."""
    if scenario:
        return Path(scenario)
    if policies:
        from sim.scenario import load_policies

        pset, _ = load_policies(policies)
        base = Path(pset.base)
        return base if base.is_absolute() else Path(policies).parent / base
    return SCENARIOS / "baseline.yaml"


def resolve_today(scenario: str | Path | None = "", policies: str | Path | None = "",
                  fitted: str | Path | None = "", model_dir: str | Path | None = "") -> Today:
    """Decide today's process from the chain's files (see the module docstring).

    Parameters
    ----------
    scenario : the base scenario ("" : the policy file's ``base:``, else baseline.yaml).
    policies : the policy file (for its ``base:``).
    fitted : the fitted twin's scenario file ("" or missing: no twin).
    model_dir : the refit folder or a points table ("" or missing: the scenario's table).
    """
    from sim.scenario import backtest_verdict

    base = base_scenario_path(scenario, policies)
    if not base.exists():
        raise LabError(f"{base}: scenario file not found (rule: the base scenario of the chain must exist)")
    fitted_path = Path(fitted) if fitted and Path(fitted).exists() else None
    verdict = backtest_verdict(fitted_path) if fitted_path else None
    if fitted_path is None:
        path, source = base, "base scenario"
        reason = ("no fitted twin was given" if not fitted else
                  f"no fitted twin at {display_path(fitted)} (run the funnel fit first)")
    elif verdict and verdict.split()[0] == "pass":
        path, source = fitted_path, "fitted twin"
        reason = "the twin fitted to the export passed its out-of-sample back-test"
    else:
        path, source = base, "base scenario"
        reason = (f"the twin fitted to the export did not pass its back-test ({verdict}); the policies run on "
                  f"the base scenario instead" if verdict else
                  "the fitted twin carries no back-test verdict, so it is not trusted; the policies run on the base "
                  "scenario instead")
    table_path, thresholds, table_reason = None, {}, "no refit was given: the scenario's own table"
    if model_dir and Path(model_dir).exists():
        from lab.story import find_points_table
        from sim.scoring import PointsTable

        table_path = find_points_table(model_dir).resolve()
        th = PointsTable.load(table_path).thresholds
        thresholds = {"hot": float(th.hot), "mql": float(th.mql), "nurture": float(th.nurture)}
        meta = Path(model_dir) / "model.json"
        table_reason = "the table given"
        if meta.exists():
            table_reason = json.loads(meta.read_text()).get("decision") or table_reason
    elif model_dir:
        table_reason = f"no refit at {display_path(model_dir)}: the scenario's own table"
    return Today(scenario_path=Path(path).resolve(), scenario_source=source, scenario_reason=reason, backtest=verdict,
                 fitted_path=fitted_path, table_path=table_path, table_reason=table_reason, thresholds=thresholds,
                 base_path=base.resolve())


def policy_scenarios(today: Today, policies: str | Path, names=None, overrides: dict | None = None):
    """One scenario per policy of the file: today's scenario with the policy's settings
    (and ``overrides``, e.g. the horizon) on top. Returns ``(PolicySet, {name: Scenario})``
    in the file's order, restricted to ``names`` when given."""
    from sim.scenario import load_policies

    pset, _ = load_policies(policies)  # validates the file and its policies on the base
    unknown = [n for n in (names or []) if n not in {p.name for p in pset.policies}]
    if unknown:
        raise LabError(f"{policies}: policy_names: no policy named {unknown[0]!r} (rule: a name listed in the "
                       f"file; got {unknown[0]!r}; the file has {[p.name for p in pset.policies]})")
    out = {}
    for p in pset.policies:
        if names and p.name not in names:
            continue
        scn = today.scenario({**(overrides or {}), **p.set})
        scn.name = p.name
        out[p.name] = scn
    return pset, out


def shifted_cutoffs(thresholds: dict, deltas) -> dict[str, dict]:
    """Cut-off grid around today's: every cut-off moved together by each delta (points),
    so the gaps between Hot, MQL and Nurture stay today's. Name -> thresholds."""
    out = {}
    for d in deltas:
        th = {k: float(v) + float(d) for k, v in thresholds.items()}
        out[f"mql_{th['mql']:g}"] = th
    return out


def replications_for(pset, replications: int, scenario) -> int:
    """Replications per policy: ``replications`` when positive, else the policy file's
    ``replications:``, else the scenario's own (the same rule as ``lab sweep``)."""
    if replications and replications > 0:
        return int(replications)
    if pset is not None and pset.replications:
        return int(pset.replications)
    return int(scenario.replications)


def titles(pset) -> dict[str, str]:
    """Policy name -> the title a report shows (the name when the file gives none)."""
    return {p.name: p.title or p.name for p in pset.policies} if pset is not None else {}


def table_file(scn) -> Path:
    """The scoring table file a scenario uses (relative paths start at the project root,
    as ``Scenario.points_table`` reads them)."""
    from common.paths import ROOT

    p = Path(scn.scoring.points_table)
    return p if p.is_absolute() else ROOT / p
