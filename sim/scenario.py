"""Scenario files: one validated object per funnel, built from YAML, ``--set`` overrides
and notebook parameters alike, and policy files (named sets of overrides on a base).

A ``Scenario`` assembles the sections of ``sim.scenario_sections`` (calendar, arrivals,
scoring, team, routing, SLA, decay, conversion, nurture, economics); this module is where
the rest of the lab imports all of them from (``__all__``). Every field has a default
taken from DOMAIN.md; units are in the names (``_minutes``, ``_per_week``, ``_days``).
Unknown keys and impossible values are errors naming the file, the field, the rule and
the value.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated

import numpy as np
import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator, model_validator

from common.errors import LabError, shown, validation_message
from common.files import read_yaml
from common.paths import ROOT
from sim.scenario_sections import (
    BANDS_ROUTED, REASONS, REGIONS, SEGMENTS, SENIORITY, SLA, Arrivals, Calendar, Channel, Conversion, Decay,
    DecayCurve, Duration, Economics, Nurture, Routing, Scoring, Shift, Strict, Team,
)

__all__ = [
    "BANDS_ROUTED", "REASONS", "REGIONS", "SEGMENTS", "SENIORITY", "SLA", "Arrivals", "Calendar", "Channel",
    "Conversion", "Decay", "DecayCurve", "Duration", "Economics", "Nurture", "Policy", "PolicySet", "Routing",
    "Scenario", "Scoring", "Shift", "Strict", "Team", "apply_overrides", "backtest_verdict", "build_scenario",
    "load_policies", "load_scenario", "parse_override",
]


class Scenario(Strict):
    """A whole funnel: who arrives, who works them, how fast, and what follows."""

    name: str = "baseline"
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 2026
    replications: Annotated[int, Field(ge=1)] = 20
    calendar: Calendar = Calendar()
    arrivals: Arrivals = Arrivals()
    scoring: Scoring = Scoring()
    team: Team = Team()
    routing: Routing = Routing()
    sla: SLA = SLA()
    decay: Decay = Decay()
    conversion: Conversion = Conversion()
    nurture: Nurture = Nurture()
    economics: Economics = Economics()
    _source: str = PrivateAttr("<scenario>")  # the file (and option) it came from, for messages

    @model_validator(mode="after")
    def _routing_combinations(self):
        # Combinations of routing and team that have no meaning are refused, not ignored.
        r, t = self.routing, self.team
        if t.capacity_cap is not None and r.policy != "round_robin":
            raise ValueError(
                f"team.capacity_cap caps the leads each rep owns, and only round_robin gives leads an owner "
                f"(under {r.policy} any rep takes any waiting attempt); use routing.policy=round_robin or drop the cap")
        if r.assign_on_duty_only and r.policy != "round_robin":
            raise ValueError(f"routing.assign_on_duty_only applies to round_robin only; got policy {r.policy}")
        if self.calendar.always_open and t.shifts and any(s.timezone for s in t.shifts):
            raise ValueError(f"team.shifts: a shift's timezone sets its hours, and calendar.always_open has no hours "
                             f"(everyone is always on duty); drop the timezone or always_open; got timezone "
                             f"{next(s.timezone for s in t.shifts if s.timezone)!r}")
        self._check_route_by()
        if r.on_breach == "escalate":
            if r.escalate_to == "overflow" and t.overflow_people < 1:
                raise ValueError("routing.on_breach=escalate to overflow needs team.overflow_people >= 1")
            if r.escalate_to == "ae" and t.aes < 1:
                raise ValueError("routing.on_breach=escalate to ae needs team.aes >= 1")
        return self

    def _check_route_by(self):
        """Routing by region or segment: refuse what has no meaning (see ``Routing.route_by``)."""
        by, shifts = self.routing.route_by, self.team.shifts or []
        field = {"region": "regions", "segment": "segments"}.get(by)
        for k, s in enumerate(shifts):
            for name in ("regions", "segments"):
                if getattr(s, name) is not None and name != field:
                    raise ValueError(
                        f"team.shifts.{k}.{name}: shift '{s.name}' lists {name}, which only routing.route_by="
                        f"{name[:-1]} uses; got routing.route_by={by}")
        if by is None:
            return
        if not shifts:
            raise ValueError(f"routing.route_by={by} routes leads to shifts and team.shifts is empty; list the "
                             f"shifts with the {field} each covers")
        if self.team.unlimited:
            raise ValueError(f"routing.route_by={by} routes leads to shifts and team.unlimited has none; drop one")
        lists = [(s.name, set(getattr(s, field))) for s in shifts if getattr(s, field) is not None]
        for i, (a, la) in enumerate(lists):
            for b, lb in lists[i + 1:]:
                if la & lb and la != lb:
                    raise ValueError(
                        f"team.shifts: shifts '{a}' and '{b}' both list {sorted(la & lb)} under {field} but not the "
                        f"same {field} (rule: shifts that share one list the same ones, and work them as one "
                        f"group); got {sorted(la)} and {sorted(lb)}")
        allowed = REGIONS if by == "region" else SEGMENTS
        covered = set().union(*(lx for _, lx in lists)) if lists else set()
        if len(lists) == len(shifts) and covered != set(allowed):
            missing = [x for x in allowed if x not in covered]
            raise ValueError(
                f"team.shifts: no shift works the {field} {missing} under routing.route_by={by} (rule: list them, "
                f"or leave one shift without {field} to work what no other shift lists)")

    def route_groups(self) -> tuple[list[int], dict[str, int]] | None:
        """Routing groups (``routing.route_by``): the group of each shift (shifts listing
        the same regions or segments form one; the shifts with no list another) and the
        group of each region or segment. None without ``route_by``."""
        by = self.routing.route_by
        if by is None:
            return None
        field, allowed = ("regions", REGIONS) if by == "region" else ("segments", SEGMENTS)
        seen: dict = {}
        shift_group = [seen.setdefault(None if getattr(s, field) is None else frozenset(getattr(s, field)), len(seen))
                       for s in self.team.shifts]
        key_group = {x: g for s, g in zip(self.team.shifts, shift_group) for x in getattr(s, field) or []}
        if None in seen:
            for x in allowed:
                key_group.setdefault(x, seen[None])
        return shift_group, key_group

    def lead_groups(self, region, segment) -> np.ndarray | None:
        """Routing group of each lead from its ``region`` and ``segment`` labels (-1 for a
        label no group covers, such as a missing one); None without ``route_by``."""
        route = self.route_groups()
        if route is None:
            return None
        keys = np.asarray(region if self.routing.route_by == "region" else segment, dtype=object)
        key_group = route[1]
        return np.fromiter((key_group.get(x, -1) for x in keys), dtype=np.int64, count=len(keys))

    @model_validator(mode="after")
    def _nested_odds(self):
        # A qualified lead must have been contacted: check the odds on a delay grid.
        grid = np.concatenate([np.linspace(0, 120, 241), np.geomspace(121, 60 * 24 * 90, 200)])
        for b in BANDS_ROUTED:
            q = self.conversion.qualify_prob[b] * self.decay.qualification(grid)
            if np.any(q > 1.0):
                raise ValueError(f"qualification odds exceed 1 for band {b}")
        return self

    # ---- derived ------------------------------------------------------------------
    def points_table(self, base_dir: Path | None = None):
        """The scoring table with this scenario's cut-offs applied."""
        from sim.scoring import PointsTable, Thresholds

        path = Path(self.scoring.points_table)
        if not path.is_absolute():
            candidates = [(base_dir or ROOT) / path, ROOT / path]
            path = next((p for p in candidates if p.exists()), candidates[-1])
        try:
            table = PointsTable.load(path)
        except Exception as exc:  # missing, unreadable or malformed: name the scenario's field
            problem = str(exc).removeprefix(f"{path}: ") if isinstance(exc, LabError) else \
                f"cannot read the points table ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
            hint = f" (relative paths start at {base_dir or ROOT})" if not Path(self.scoring.points_table).is_absolute() \
                and not path.exists() else ""
            raise LabError(f"{self._source}: scoring.points_table: {problem}{hint}; "
                           f"got {shown(self.scoring.points_table)}") from None
        th = table.thresholds
        try:
            table.thresholds = Thresholds(
                hot=th.hot if self.scoring.hot is None else self.scoring.hot,
                mql=th.mql if self.scoring.mql is None else self.scoring.mql,
                nurture=th.nurture if self.scoring.nurture is None else self.scoring.nurture,
            )
        except LabError as exc:  # the scenario's cut-offs against the table's own
            raise LabError(f"{self._source}: scoring: {exc}") from None
        return table


# ---- building from files and overrides -------------------------------------------
def _format_errors(exc: ValidationError, source: str) -> str:
    return validation_message(exc, source, unknown="unknown field (not part of a scenario; check the spelling)")


def parse_override(text: str) -> tuple[str, object]:
    """``team.sdrs=8`` -> ("team.sdrs", 8); the value is read as YAML."""
    if "=" not in text:
        raise LabError(f"--set {text}: override must look like field.path=value (for example team.sdrs=8); "
                       f"got {shown(text)}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise LabError(f"--set {text}: override has no field name before '='; got {shown(text)}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(doc: dict, overrides: dict[str, object], source: str = "override") -> dict:
    """Set dotted paths in a scenario dict; a path that names no scenario field is an error."""
    doc = copy.deepcopy(doc)
    for key, value in overrides.items():
        parts = key.split(".")
        model: type[BaseModel] | None = Scenario
        node = doc
        for i, part in enumerate(parts):
            if model is not None:
                if part not in model.model_fields:
                    here = ".".join(parts[: i + 1])
                    raise LabError(
                        f"{source}: {here}: unknown field; {'.'.join(parts[:i]) or 'a scenario'} has "
                        f"{sorted(model.model_fields)}"
                    )
                ann = model.model_fields[part].annotation
                model = _model_of(ann)
                if model is None and i < len(parts) - 1 and not _is_mapping(ann):
                    here = ".".join(parts[: i + 1])
                    raise LabError(f"{source}: {here} is a single value or a list, it has no field "
                                   f"{parts[i + 1]!r} (rule: name a field, or set the whole value); got {key!r}")
            if not isinstance(node, dict):
                here = ".".join(parts[:i])
                raise LabError(f"{source}: {here} holds {shown(node)}, not fields (rule: name a field, or set "
                               f"the whole value); got {key!r}")
            if i == len(parts) - 1:
                node[part] = value
            else:
                nxt = node.get(part)
                if nxt is None:
                    nxt = {}
                elif isinstance(nxt, BaseModel):
                    nxt = nxt.model_dump()
                node[part] = nxt
                node = nxt
    return doc


def _model_of(ann):
    """The scenario section a field holds (``Team``, or ``Team | None``), else None."""
    for t in (ann, *getattr(ann, "__args__", ())):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _is_mapping(ann) -> bool:
    """Whether a field is a dict (``--set conversion.win_prob.smb=0.3`` reaches inside)."""
    import typing

    return any(t is dict or typing.get_origin(t) is dict for t in (ann, *getattr(ann, "__args__", ())))


def _parse_overrides(overrides) -> tuple[dict, dict]:
    """Overrides as a dict, and the option each came from (``--set k=v``) for messages."""
    if isinstance(overrides, (list, tuple)):
        pairs = [(o, parse_override(o)) for o in overrides]
        return {k: v for _, (k, v) in pairs}, {k: f"--set {o}" for o, (k, _) in pairs}
    return dict(overrides or {}), {}


def build_scenario(doc: dict | None = None, overrides: dict | None = None, source: str = "<scenario>",
                   labels: dict[str, str] | None = None) -> Scenario:
    """Validate a scenario dict (plus dotted overrides) into a ``Scenario``.

    ``labels`` names where each override came from (``--set team.sdrs=8``): a problem
    with an overridden field blames that option, others blame ``source``."""
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise LabError(f"{source}: a scenario must be a mapping of fields; got {type(doc).__name__}")
    labels = labels or {}
    overrides = dict(overrides or {})

    def blame(key):
        return labels.get(key, f"{source} (override)")

    for key, value in overrides.items():
        doc = apply_overrides(doc, {key: value}, source=blame(key))

    def where(loc: tuple) -> str:
        path = tuple(str(p) for p in loc)
        for key in reversed(list(overrides)):
            parts = tuple(key.split("."))
            if path[: len(parts)] == parts:
                return blame(key)
            if parts[: len(path)] == path and path:
                return f"{source} with {blame(key)}"
        return source

    try:
        scn = Scenario.model_validate(doc)
    except ValidationError as exc:
        raise LabError(_format_errors(exc, where)) from None
    scn._source = source
    return scn


def backtest_verdict(path: str | Path) -> str | None:
    """The back-test verdict a fitted scenario file carries in its header
    (``# backtest: pass | fail ... | not testable``, written by
    ``calibration.backtest.save_backtest``); None when the file records none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.startswith("#"):
                    return None
                if line.startswith("# backtest:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def load_scenario(path: str | Path, overrides: dict | list[str] | None = None) -> Scenario:
    """Read a scenario YAML file; ``overrides`` is a dict or a list of ``k=v`` strings
    (a problem with one of those blames its ``--set`` option). An empty file is refused;
    the points table is read now, so that a bad one is named before anything runs."""
    overrides, labels = _parse_overrides(overrides)
    scn = build_scenario(read_yaml(path, allow_empty=False, what="scenario file"), overrides,
                         source=str(path), labels=labels)
    scn.points_table()
    return scn


class Policy(Strict):
    """One policy of a policy file: a short ``name`` (an identifier for commands and
    files), a ``title`` and a one-line ``description`` for reports, and the scenario
    settings it changes (``set``)."""

    name: str
    title: str = ""
    description: str = ""
    set: dict[str, object] = {}


class PolicySet(Strict):
    """A policy file: a base scenario and the policies to compare as overrides of it."""

    base: str = "baseline.yaml"
    replications: Annotated[int, Field(ge=1)] | None = None
    policies: list[Policy]

    @field_validator("policies")
    @classmethod
    def _unique(cls, v):
        names = [p.name for p in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"policy names must be unique; repeated {sorted(dup)}")
        if not v:
            raise ValueError("list at least one policy")
        return v


def load_policies(path: str | Path, overrides: dict | list[str] | None = None) -> tuple[PolicySet, dict[str, Scenario]]:
    """Read a policy file; return it and one validated scenario per policy (in order)."""
    path = Path(path)
    try:
        pset = PolicySet.model_validate(read_yaml(path, allow_empty=False, what="policy file"))
    except ValidationError as exc:
        raise LabError(_format_errors(exc, str(path))) from None
    base_path = (path.parent / pset.base) if not Path(pset.base).is_absolute() else Path(pset.base)
    if not base_path.exists():
        raise LabError(f"{path}: base: scenario file not found (rule: a path relative to the policy "
                       f"file's folder); got {shown(pset.base)}")
    base_doc = read_yaml(base_path, allow_empty=False, what="scenario file")
    overrides, labels = _parse_overrides(overrides)
    scenarios, tables = {}, set()
    for pol in pset.policies:
        source = f"{path} (policy '{pol.name}')"
        merged = {**overrides, **pol.set}
        if pset.replications is not None:
            merged.setdefault("replications", pset.replications)
        scn = build_scenario(base_doc, merged, source=source,
                             labels={**labels, **{k: source for k in pol.set}})
        scn.name = pol.name
        if scn.scoring.points_table not in tables:  # a bad table is named before anything runs
            scn.points_table()
            tables.add(scn.scoring.points_table)
        scenarios[pol.name] = scn
    return pset, scenarios
