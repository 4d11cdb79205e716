"""Does a policy change what the team does, or only how attainment is measured?

An SLA target moves the work only through a mechanism that reads the deadline
(DOMAIN.md section 9): earliest-deadline-first queueing (``routing.policy: edf``), or a
breach action (``routing.on_breach``: reassign or escalate; today's round-robin
reassignment). A policy whose only changes are SLA fields, on a scenario where no such
mechanism reads them, gives the same history to the last digit on common random
numbers: ``lab sweep`` and the reports flag it as measurement only.
"""
from __future__ import annotations

from sim.scenario import Scenario

MEASUREMENT_ONLY = "measurement only: no mechanism changes what the team does"

# Fields that only set targets and how they are counted.
_TARGET_FIELDS = ("sla.",)


def _flat(doc: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_fields(base: Scenario, policy: Scenario) -> list[str]:
    """Dotted names of the fields whose values differ between two scenarios (the name,
    description, seed and replications of a run are not policy)."""
    a, b = _flat(base.model_dump(mode="json")), _flat(policy.model_dump(mode="json"))
    skip = {"name", "description", "seed", "replications"}
    return sorted(k for k in set(a) | set(b) if k not in skip and a.get(k) != b.get(k))


def deadline_mechanisms(scn: Scenario) -> list[str]:
    """The mechanisms of ``scn`` that read the SLA deadline, in words (empty: none)."""
    r, out = scn.routing, []
    if scn.team.unlimited:
        return out  # nobody ever waits: no deadline can change anything
    if r.policy == "edf":
        out.append("the queue is worked by time left to the SLA (earliest deadline first)")
    if r.on_breach == "reassign" or (r.on_breach is None and r.reassign_on_sla_breach and r.policy == "round_robin"):
        out.append("a lead still waiting at its deadline goes to the next available rep")
    if r.on_breach == "escalate":
        out.append(f"a lead still waiting at its deadline is escalated to the {r.escalate_to} pool")
    return out


def measurement_only(base: Scenario, policy: Scenario) -> bool:
    """True when ``policy`` differs from ``base`` in SLA targets or clocks only, and no
    mechanism of the policy reads the deadline: the team does exactly what it does under
    ``base`` and only the attainment measured changes."""
    changed = changed_fields(base, policy)
    if not changed or not all(k.startswith(_TARGET_FIELDS) for k in changed):
        return False
    # sla.disposition_target_days never reaches the queue; the response targets and
    # clocks do only through a deadline mechanism.
    return not deadline_mechanisms(policy)


def describe_change(base: Scenario, policy: Scenario) -> str:
    """One line on what a policy changes in the team's behaviour, for tables and reports."""
    changed = changed_fields(base, policy)
    if not changed:
        return "no change"
    if measurement_only(base, policy):
        return MEASUREMENT_ONLY
    mech = deadline_mechanisms(policy)
    if all(k.startswith(_TARGET_FIELDS) for k in changed):
        return "the SLA moves the work: " + "; ".join(mech)
    return "changes " + ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")


def mechanism_table(scenarios: dict[str, Scenario], baseline: str = "baseline"):
    """One row per policy: what it changes and whether it is measurement only
    (``baseline``: the policy standing for today; the first one if absent)."""
    import pandas as pd

    names = list(scenarios)
    base = scenarios.get(baseline) or scenarios[names[0]]
    return pd.DataFrame([{"policy": n, "measurement_only": measurement_only(base, s),
                          "mechanism": describe_change(base, s)} for n, s in scenarios.items()]).set_index("policy")
